//! The RPCs of the contract, as one closed set: cache keys, TTLs, page tokens, metric
//! labels and invalidation all name an RPC through [`Rpc`], never through a string.

use crate::error::Upstream;

/// One RPC of `fingerprint.gateway.v1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rpc {
    /// `FingerprintService/GetEvent`.
    GetEvent,
    /// `FingerprintService/GetVisits`.
    GetVisits,
    /// `FingerprintService/SearchEvents`.
    SearchEvents,
    /// `FingerprintService/StreamEvents`.
    StreamEvents,
    /// `FingerprintService/UpdateEvent`.
    UpdateEvent,
    /// `FingerprintService/DeleteVisitorData`.
    DeleteVisitorData,
    /// `FingerprintService/UnsealEvent`.
    UnsealEvent,
    /// `FingerprintService/VerifyWebhookSignature`.
    VerifyWebhookSignature,
    /// `StytchService/LookupTelemetry`.
    LookupTelemetry,
    /// `StytchService/ListRules`.
    ListRules,
    /// `StytchService/ListVerdictReasons`.
    ListVerdictReasons,
    /// `StytchService/SetRule`.
    SetRule,
    /// `StytchService/SetVerdictReasonOverride`.
    SetVerdictReasonOverride,
    /// `FingerprintService/AnalyzeRequest`.
    AnalyzeRequest,
    /// Envoy's `envoy.service.auth.v3.Authorization/Check` (the edge decisions).
    Check,
}

/// Fully qualified name of `FingerprintService`.
pub const FINGERPRINT_SERVICE: &str = "fingerprint.gateway.v1.FingerprintService";
/// Fully qualified name of `StytchService`.
pub const STYTCH_SERVICE: &str = "fingerprint.gateway.v1.StytchService";
/// Fully qualified name of Envoy's external authorization service.
pub const ENVOY_AUTHZ_SERVICE: &str = "envoy.service.auth.v3.Authorization";

// === impl Rpc ===

impl Rpc {
    /// Every RPC, in a fixed order (its index is [`Rpc::index`]).
    pub const ALL: [Rpc; 15] = [
        Rpc::GetEvent,
        Rpc::GetVisits,
        Rpc::SearchEvents,
        Rpc::StreamEvents,
        Rpc::UpdateEvent,
        Rpc::DeleteVisitorData,
        Rpc::UnsealEvent,
        Rpc::VerifyWebhookSignature,
        Rpc::LookupTelemetry,
        Rpc::ListRules,
        Rpc::ListVerdictReasons,
        Rpc::SetRule,
        Rpc::SetVerdictReasonOverride,
        Rpc::AnalyzeRequest,
        Rpc::Check,
    ];

    /// Whether the RPC changes data upstream (granted only by name; audited).
    pub const fn is_mutation(self) -> bool {
        matches!(
            self,
            Self::UpdateEvent
                | Self::DeleteVisitorData
                | Self::SetRule
                | Self::SetVerdictReasonOverride
        )
    }

    /// The method name, as in the `.proto`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::GetEvent => "GetEvent",
            Self::GetVisits => "GetVisits",
            Self::SearchEvents => "SearchEvents",
            Self::StreamEvents => "StreamEvents",
            Self::UpdateEvent => "UpdateEvent",
            Self::DeleteVisitorData => "DeleteVisitorData",
            Self::UnsealEvent => "UnsealEvent",
            Self::VerifyWebhookSignature => "VerifyWebhookSignature",
            Self::LookupTelemetry => "LookupTelemetry",
            Self::ListRules => "ListRules",
            Self::ListVerdictReasons => "ListVerdictReasons",
            Self::SetRule => "SetRule",
            Self::SetVerdictReasonOverride => "SetVerdictReasonOverride",
            Self::AnalyzeRequest => "AnalyzeRequest",
            Self::Check => "Check",
        }
    }

    /// The HTTP/2 path of the method: `/package.Service/Method`.
    pub const fn path(self) -> &'static str {
        match self {
            Self::GetEvent => "/fingerprint.gateway.v1.FingerprintService/GetEvent",
            Self::GetVisits => "/fingerprint.gateway.v1.FingerprintService/GetVisits",
            Self::SearchEvents => "/fingerprint.gateway.v1.FingerprintService/SearchEvents",
            Self::StreamEvents => "/fingerprint.gateway.v1.FingerprintService/StreamEvents",
            Self::UpdateEvent => "/fingerprint.gateway.v1.FingerprintService/UpdateEvent",
            Self::DeleteVisitorData => {
                "/fingerprint.gateway.v1.FingerprintService/DeleteVisitorData"
            }
            Self::UnsealEvent => "/fingerprint.gateway.v1.FingerprintService/UnsealEvent",
            Self::VerifyWebhookSignature => {
                "/fingerprint.gateway.v1.FingerprintService/VerifyWebhookSignature"
            }
            Self::LookupTelemetry => "/fingerprint.gateway.v1.StytchService/LookupTelemetry",
            Self::ListRules => "/fingerprint.gateway.v1.StytchService/ListRules",
            Self::ListVerdictReasons => "/fingerprint.gateway.v1.StytchService/ListVerdictReasons",
            Self::SetRule => "/fingerprint.gateway.v1.StytchService/SetRule",
            Self::SetVerdictReasonOverride => {
                "/fingerprint.gateway.v1.StytchService/SetVerdictReasonOverride"
            }
            Self::AnalyzeRequest => "/fingerprint.gateway.v1.FingerprintService/AnalyzeRequest",
            Self::Check => "/envoy.service.auth.v3.Authorization/Check",
        }
    }

    /// The RPC served at an HTTP/2 path, if it is one of ours.
    pub fn from_path(path: &str) -> Option<Self> {
        // Every call asks this: reject foreign services with one prefix check.
        let Some(method) = path.strip_prefix("/fingerprint.gateway.v1.") else {
            return (path == "/envoy.service.auth.v3.Authorization/Check").then_some(Self::Check);
        };
        let (service, method) = method.split_once('/')?;
        let rpc = match (service, method) {
            ("FingerprintService", "GetEvent") => Self::GetEvent,
            ("FingerprintService", "GetVisits") => Self::GetVisits,
            ("FingerprintService", "SearchEvents") => Self::SearchEvents,
            ("FingerprintService", "StreamEvents") => Self::StreamEvents,
            ("FingerprintService", "UpdateEvent") => Self::UpdateEvent,
            ("FingerprintService", "DeleteVisitorData") => Self::DeleteVisitorData,
            ("FingerprintService", "UnsealEvent") => Self::UnsealEvent,
            ("FingerprintService", "VerifyWebhookSignature") => Self::VerifyWebhookSignature,
            ("FingerprintService", "AnalyzeRequest") => Self::AnalyzeRequest,
            ("StytchService", "LookupTelemetry") => Self::LookupTelemetry,
            ("StytchService", "ListRules") => Self::ListRules,
            ("StytchService", "ListVerdictReasons") => Self::ListVerdictReasons,
            ("StytchService", "SetRule") => Self::SetRule,
            ("StytchService", "SetVerdictReasonOverride") => Self::SetVerdictReasonOverride,
            _ => return None,
        };
        Some(rpc)
    }

    /// Position in [`Rpc::ALL`]; also the RPC's byte in page tokens, so never reorder.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The upstream the RPC calls; `None` for the local ones.
    pub const fn upstream(self) -> Option<Upstream> {
        match self {
            Self::GetEvent
            | Self::GetVisits
            | Self::SearchEvents
            | Self::StreamEvents
            | Self::UpdateEvent
            | Self::DeleteVisitorData
            | Self::AnalyzeRequest
            | Self::Check => Some(Upstream::Fingerprint),
            Self::LookupTelemetry
            | Self::ListRules
            | Self::ListVerdictReasons
            | Self::SetRule
            | Self::SetVerdictReasonOverride => Some(Upstream::Stytch),
            Self::UnsealEvent | Self::VerifyWebhookSignature => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip_and_indexes_are_positions() {
        for (i, rpc) in Rpc::ALL.into_iter().enumerate() {
            assert_eq!(rpc.index(), i);
            assert_eq!(Rpc::from_path(rpc.path()), Some(rpc));
            assert!(rpc.path().ends_with(&format!("/{}", rpc.name())));
            let service = if rpc == Rpc::Check {
                ENVOY_AUTHZ_SERVICE
            } else if rpc.upstream() == Some(Upstream::Stytch) {
                STYTCH_SERVICE
            } else {
                FINGERPRINT_SERVICE
            };
            assert!(rpc.path().starts_with(&format!("/{service}/")));
        }
        assert_eq!(Rpc::from_path("/x.Y/Z"), None);
    }
}

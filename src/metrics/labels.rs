//! The label sets: each a closed set of values, encoded without allocating.

use super::*;

/// A gRPC method, as a label: ours, the platform's, or `unknown`.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Method {
    /// One of the contract's RPCs.
    Rpc(Rpc),
    /// `grpc.health.v1.Health/Check`.
    HealthCheck,
    /// `grpc.health.v1.Health/Watch`.
    HealthWatch,
    /// Server reflection, v1 or v1alpha.
    Reflection,
    /// Any other path.
    Unknown,
}

/// A gRPC status code, as a label.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub(super) struct CodeLabel(pub(super) tonic::Code);

/// An upstream's HTTP status, as a label (`error` when no answer arrived).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub(super) struct HttpStatus(pub(super) Option<u16>);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct RpcLabels {
    pub(super) rpc: Method,
    pub(super) code: CodeLabel,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct RpcName {
    pub(super) rpc: Method,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct CacheLabels {
    pub(super) rpc: RpcShort,
    pub(super) result: CacheResult,
}

/// A cached RPC by its method name alone (`GetEvent`).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub(super) struct RpcShort(pub(super) Rpc);

/// Where a cached RPC's answer came from: `hit`, `miss` or `bypass`.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub(super) struct CacheResult(pub(super) &'static str);

/// Why an upstream attempt was not made.
pub(super) const NOT_SENT_REASONS: [&str; 4] = ["circuit_open", "quota", "budget", "deadline"];

/// The Redis operations, as labels.
pub(super) const REDIS_OPS: [&str; 9] = [
    "lookup",
    "lock",
    "fill",
    "unlock",
    "invalidate",
    "quota",
    "heartbeat",
    "ping",
    "decode",
];

/// The cache outcomes, in slot order.
pub(super) const CACHE_OUTCOMES: [&str; 6] =
    ["hit", "miss", "bypass", "stale", "coalesced", "shared_hit"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct UpstreamLabels {
    pub(super) upstream: UpstreamLabel,
    pub(super) status: HttpStatus,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct UpstreamName {
    pub(super) upstream: UpstreamLabel,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub(super) struct UpstreamLabel(pub(super) Upstream);

/// A word from a closed set in the code, as a label.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub(super) struct Word(pub(super) &'static str);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct NotSentLabels {
    pub(super) upstream: UpstreamLabel,
    pub(super) reason: Word,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct CallerLabels {
    pub(super) caller: String,
    pub(super) rpc: Method,
    pub(super) code: CodeLabel,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct OpLabels {
    pub(super) op: Word,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct OutcomeLabels {
    pub(super) outcome: Word,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct TransitionLabels {
    pub(super) upstream: UpstreamLabel,
    pub(super) to: Word,
}

// === impl Method ===

impl Method {
    /// The method served at an HTTP/2 path.
    pub fn from_path(path: &str) -> Self {
        if let Some(rpc) = Rpc::from_path(path) {
            return Self::Rpc(rpc);
        }
        match path {
            "/grpc.health.v1.Health/Check" => Self::HealthCheck,
            "/grpc.health.v1.Health/Watch" => Self::HealthWatch,
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
            | "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo" => Self::Reflection,
            _ => Self::Unknown,
        }
    }

    pub(super) fn index(self) -> usize {
        match self {
            Self::Rpc(rpc) => rpc.index(),
            Self::HealthCheck => Rpc::ALL.len(),
            Self::HealthWatch => Rpc::ALL.len() + 1,
            Self::Reflection => Rpc::ALL.len() + 2,
            Self::Unknown => Rpc::ALL.len() + 3,
        }
    }

    /// `package.Service/Method`, or `unknown`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Rpc(rpc) => rpc.path().trim_start_matches('/'),
            Self::HealthCheck => "grpc.health.v1.Health/Check",
            Self::HealthWatch => "grpc.health.v1.Health/Watch",
            Self::Reflection => "grpc.reflection.ServerReflection/ServerReflectionInfo",
            Self::Unknown => "unknown",
        }
    }
}

impl EncodeLabelValue for Method {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.name())
    }
}

impl EncodeLabelValue for CodeLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        write!(encoder, "{:?}", self.0)
    }
}

impl EncodeLabelValue for HttpStatus {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        match self.0 {
            Some(status) => write!(encoder, "{status}"),
            None => encoder.write_str("error"),
        }
    }
}

impl EncodeLabelValue for RpcShort {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.0.name())
    }
}

impl EncodeLabelValue for CacheResult {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.0)
    }
}

impl EncodeLabelValue for Word {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.0)
    }
}

impl EncodeLabelValue for UpstreamLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.0.label())
    }
}

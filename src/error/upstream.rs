//! Which upstream an error came from, what the call was about, and what the upstream
//! answered: its error answer and how that answer is classified.

use std::{fmt, time::Duration};

use tonic::Code;

use crate::proto::v1::ErrorReason;

/// Which upstream an error came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Upstream {
    /// fingerprint.com Server API.
    Fingerprint,
    /// Stytch Device Fingerprinting.
    Stytch,
}

/// What an upstream call was about, so a 404 names the thing that is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// One event (GetEvent, UpdateEvent).
    Event,
    /// One visitor (GetVisits under v3, DeleteVisitorData).
    Visitor,
    /// One Stytch telemetry id.
    Telemetry,
    /// A list or a setting: a 404 there means a wrong endpoint.
    Collection,
}

/// An error answer from an upstream API.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The upstream.
    pub upstream: Upstream,
    /// What the call was about.
    pub resource: Resource,
    /// HTTP status.
    pub status: u16,
    /// The upstream's error code (`error.code` for fingerprint.com, `error_type` for
    /// Stytch), shortened and scrubbed of secrets.
    pub code: Option<String>,
    /// The upstream's message, shortened and scrubbed of secrets.
    pub message: Option<String>,
    /// The upstream's id for the failed call, if it gave one.
    pub request_id: Option<String>,
    /// How long the upstream asked us to wait (`Retry-After`).
    pub retry_after: Option<Duration>,
}

// === impl Upstream ===

impl Upstream {
    /// The value of `ErrorInfo.metadata["upstream"]` (and of metric labels).
    pub fn label(self) -> &'static str {
        match self {
            Self::Fingerprint => "fingerprint",
            Self::Stytch => "stytch",
        }
    }

    /// The setting that says where the upstream is.
    pub(super) fn base_url_setting(self) -> &'static str {
        match self {
            Self::Fingerprint => "FINGERPRINT_REGION and FINGERPRINT_API_BASE_URL",
            Self::Stytch => "STYTCH_API_BASE_URL",
        }
    }

    /// The settings an operator checks when the upstream rejects the gateway's credentials.
    pub(super) fn credential_settings(self) -> &'static str {
        match self {
            Self::Fingerprint => {
                "FINGERPRINT_SECRET_API_KEY and FINGERPRINT_REGION (or FINGERPRINT_API_BASE_URL)"
            }
            Self::Stytch => "STYTCH_PROJECT_ID and STYTCH_SECRET (or STYTCH_API_BASE_URL)",
        }
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Fingerprint => "fingerprint.com",
            Self::Stytch => "Stytch",
        })
    }
}

// === impl ApiError ===

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} answered HTTP {}", self.upstream, self.status)?;
        if let Some(code) = &self.code {
            write!(f, " ({code})")?;
        }
        if let Some(message) = &self.message {
            write!(f, ": {message}")?;
        }
        Ok(())
    }
}

impl ApiError {
    /// Whether the upstream said the resource is not ready yet (409 `state_not_ready`).
    pub fn is_not_ready(&self) -> bool {
        self.classify().1 == ErrorReason::StateNotReady
    }

    /// Whether the upstream said the record does not exist.
    pub fn is_not_found(&self) -> bool {
        self.classify().0 == Code::NotFound
    }

    /// The status code and reason of this answer. Upstream codes are matched in both
    /// generations' spellings first; the HTTP status decides the rest.
    pub fn classify(&self) -> (Code, ErrorReason) {
        use ErrorReason as R;
        let code = self.code.as_deref().unwrap_or_default();
        match (self.status, code) {
            (_, "wrong_region" | "WrongRegion") => {
                (Code::FailedPrecondition, R::UpstreamWrongRegion)
            }
            (_, "subscription_not_active" | "SubscriptionNotActive") => {
                (Code::FailedPrecondition, R::UpstreamSubscriptionInactive)
            }
            (_, "feature_not_enabled" | "FeatureNotEnabled") => {
                (Code::FailedPrecondition, R::UpstreamFeatureDisabled)
            }
            (_, "route_not_found" | "use_https") => {
                (Code::FailedPrecondition, R::UpstreamEndpointMisconfigured)
            }
            (_, "state_not_ready" | "StateNotReady") => (Code::Unavailable, R::StateNotReady),
            (_, "ruleset_not_found" | "RulesetNotFound") => {
                (Code::InvalidArgument, R::RulesetNotFound)
            }
            (_, "request_read_timeout" | "RequestReadTimeout") => {
                (Code::DeadlineExceeded, R::UpstreamTimeout)
            }
            (404, "event_not_found" | "RequestNotFound") => (Code::NotFound, R::EventNotFound),
            (404, "visitor_not_found" | "VisitorNotFound") => (Code::NotFound, R::VisitorNotFound),
            (404, "telemetry_id_not_found") => (Code::NotFound, R::TelemetryIdNotFound),
            (401 | 403, _) => (Code::FailedPrecondition, R::UpstreamCredentialsRejected),
            (413, _) => (Code::InvalidArgument, R::UpstreamPayloadTooLarge),
            (400 | 422, _) => (Code::InvalidArgument, R::InvalidArgument),
            // A 404 without a JSON error code is a wrong base URL, not a missing record.
            (404, "") => (Code::FailedPrecondition, R::UpstreamEndpointMisconfigured),
            (404, _) => match self.resource {
                Resource::Event => (Code::NotFound, R::EventNotFound),
                Resource::Visitor => (Code::NotFound, R::VisitorNotFound),
                Resource::Telemetry => (Code::NotFound, R::TelemetryIdNotFound),
                Resource::Collection => {
                    (Code::FailedPrecondition, R::UpstreamEndpointMisconfigured)
                }
            },
            (409, _) => (Code::Unavailable, R::StateNotReady),
            (429, _) => (Code::ResourceExhausted, R::UpstreamRateLimited),
            (499, _) => (Code::Cancelled, R::UpstreamCancelled),
            (504, _) => (Code::DeadlineExceeded, R::UpstreamTimeout),
            (500..=599, _) => (Code::Unavailable, R::UpstreamUnavailable),
            _ => (Code::Internal, R::UpstreamUnexpectedStatus),
        }
    }
}

//! The gateway's errors, and the one place they become gRPC statuses.
//!
//! Every status carries a `google.rpc.ErrorInfo` whose `reason` is a value of the
//! contract's `ErrorReason` and whose `domain` is [`DOMAIN`], whichever upstream and
//! generation produced the failure; what the upstream said travels in the metadata.

use std::{collections::HashMap, fmt, time::Duration};

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::proto::v1::ErrorReason;

mod upstream;

pub use upstream::{ApiError, Resource, Upstream};

/// `ErrorInfo.domain` of every error the gateway returns.
pub const DOMAIN: &str = "fingerprint-gateway.internal";

/// Longest prefix of a caller's value quoted back in a message.
pub const MAX_QUOTED_CHARS: usize = 64;

/// Everything that can go wrong while answering an RPC.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field is invalid; nothing was sent upstream.
    #[error("invalid {field}: {reason}")]
    InvalidArgument {
        /// The field, as named in the proto (a path for nested fields).
        field: &'static str,
        /// What is wrong with it; quotes of the caller's value are bounded (see [`quote`]).
        reason: String,
    },
    /// The request asks for something the configured upstream generation cannot do.
    #[error("{field} is not supported by {what}")]
    Unsupported {
        /// The field, as named in the proto.
        field: &'static str,
        /// The upstream generation, e.g. "the fingerprint.com v3 API".
        what: &'static str,
    },
    /// AnalyzeRequest under the v3 Server API, which has no `/v4/edge`.
    #[error(
        "AnalyzeRequest needs the fingerprint.com v4 Server API (Automation Intelligence, POST /v4/edge); the gateway is configured for v3: set FINGERPRINT_API_VERSION=v4"
    )]
    EdgeUnsupported,
    /// A setting this call needs is not configured.
    #[error("{what} is not configured: set {setting}")]
    NotConfigured {
        /// What is missing, e.g. "fingerprint.com".
        what: &'static str,
        /// The upstream, when the missing setting is an upstream's.
        upstream: Option<Upstream>,
        /// The missing setting.
        setting: &'static str,
    },
    /// The request message is larger than the gateway reads.
    #[error("the request is larger than {limit} bytes")]
    RequestTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The caller's deadline passed before the gateway could finish.
    #[error("the caller's deadline passed during {during}")]
    DeadlineExceeded {
        /// What was under way.
        during: &'static str,
    },
    /// The upstream answered with an error status and, usually, a JSON error body.
    #[error("{0}")]
    Api(ApiError),
    /// The upstream did not answer in time.
    #[error("{upstream} did not answer within {timeout:?}")]
    Timeout {
        /// The upstream.
        upstream: Upstream,
        /// The time allowed.
        timeout: Duration,
    },
    /// The upstream started answering but did not finish in time.
    #[error(
        "{upstream} sent {received} bytes of its answer but did not finish it within {timeout:?}"
    )]
    SlowBody {
        /// The upstream.
        upstream: Upstream,
        /// The time allowed for the whole attempt.
        timeout: Duration,
        /// Body bytes that arrived.
        received: usize,
    },
    /// No connection to the upstream could be opened.
    #[error("could not connect to {upstream}: {cause}")]
    Connect {
        /// The upstream.
        upstream: Upstream,
        /// The innermost cause, e.g. "Connection refused (os error 111)".
        cause: String,
    },
    /// The connection broke before the answer's headers arrived.
    #[error("the connection to {upstream} broke before it answered: {cause}")]
    Reset {
        /// The upstream.
        upstream: Upstream,
        /// The innermost cause.
        cause: String,
    },
    /// The connection broke while the answer's body was arriving.
    #[error("{upstream}'s answer broke off after {received} bytes of its body: {cause}")]
    Truncated {
        /// The upstream.
        upstream: Upstream,
        /// Body bytes that arrived.
        received: usize,
        /// The innermost cause.
        cause: String,
    },
    /// The upstream answered with a redirect, which the gateway never follows.
    #[error(
        "{upstream} answered HTTP {status}, a redirect to {location}; the gateway never follows redirects, which would carry its credentials elsewhere"
    )]
    Redirected {
        /// The upstream.
        upstream: Upstream,
        /// The HTTP status.
        status: u16,
        /// Where it pointed, shortened and scrubbed of secrets.
        location: String,
    },
    /// The upstream's circuit breaker is open: the call failed fast, nothing was sent.
    #[error(
        "{upstream} has been failing; the gateway is not calling it for the next {retry_after:?} (circuit breaker open)"
    )]
    CircuitOpen {
        /// The upstream.
        upstream: Upstream,
        /// When the breaker lets calls through again.
        retry_after: Duration,
    },
    /// The gateway's own limit on calls to the upstream has no room within the call's
    /// deadline; nothing was sent.
    #[error(
        "the gateway's limit on {upstream} calls ({setting}) has no room before this call's deadline; room in {retry_after:?}"
    )]
    QuotaExhausted {
        /// The upstream.
        upstream: Upstream,
        /// The setting that holds the limit.
        setting: &'static str,
        /// When there will be room.
        retry_after: Duration,
    },
    /// The gateway is working on as many calls as it takes at once.
    #[error(
        "the gateway is working on its maximum of {limit} calls (GATEWAY_MAX_IN_FLIGHT); retry with backoff"
    )]
    Overloaded {
        /// The limit.
        limit: usize,
    },
    /// Authorization is enforced and the call has no accepted identity.
    #[error("unauthenticated: {why}")]
    Unauthenticated {
        /// What was missing.
        why: &'static str,
    },
    /// The caller may not call this RPC.
    #[error("caller {caller:?} lacks the permission {permission}")]
    PermissionDenied {
        /// The caller's name (or the identity it presented).
        caller: String,
        /// The missing permission, `Service/Method`.
        permission: String,
    },
    /// The caller is over its own limit.
    #[error("caller {caller:?} is over its {limit} limit in the policy")]
    CallerLimited {
        /// The caller.
        caller: String,
        /// `rate` or `max_in_flight`.
        limit: &'static str,
        /// When the rate allows the next call.
        retry_after: Option<Duration>,
    },
    /// The upstream's answer is larger than the gateway accepts.
    #[error("{upstream} answered with a body larger than {limit} bytes")]
    TooLarge {
        /// The upstream.
        upstream: Upstream,
        /// The limit in bytes.
        limit: usize,
    },
    /// The upstream answered with something that is not JSON (an HTML error page, say).
    #[error("{upstream} answered HTTP {status} with a non-JSON body ({content_type})")]
    NotJson {
        /// The upstream.
        upstream: Upstream,
        /// The HTTP status.
        status: u16,
        /// The body's content type, shortened and scrubbed of secrets.
        content_type: String,
    },
    /// The upstream's JSON answer does not have the expected shape.
    #[error("{upstream} answered with malformed JSON: {detail}")]
    Malformed {
        /// The upstream.
        upstream: Upstream,
        /// What was wrong.
        detail: String,
    },
    /// A sealed client result could not be opened.
    #[error("{0}")]
    Sealed(#[from] SealedError),
}

/// Why a sealed client result could not be opened.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
pub enum SealedError {
    /// No key is configured.
    #[error("no sealed-result key is configured: set FINGERPRINT_SEALED_RESULT_KEYS")]
    NoKeys,
    /// The input is empty or larger than accepted.
    #[error("sealed must be 1 byte to 1 MiB")]
    Size,
    /// The input does not start with the sealed-result header.
    #[error("sealed does not start with the sealed-result header 9e85dced")]
    Header,
    /// The input is too short to hold a nonce and a tag.
    #[error("sealed is too short to hold a nonce and an authentication tag")]
    Truncated,
    /// No configured key authenticates the input: wrong keys, or altered data.
    #[error("no configured key decrypts sealed: the keys do not match, or the data was altered")]
    Decrypt,
    /// The decrypted payload is not raw DEFLATE data.
    #[error("the decrypted payload is not valid DEFLATE data")]
    Compression,
    /// The payload inflates to more than accepted.
    #[error("the decrypted payload inflates to more than 8 MiB")]
    TooLarge,
    /// The payload is not JSON.
    #[error("the decrypted payload is not valid JSON")]
    Json,
    /// The payload is JSON but not an event.
    #[error("the decrypted payload is not an event (no event_id or products)")]
    NotAnEvent,
}

/// Quotes a caller's value for a message: at most [`MAX_QUOTED_CHARS`] characters,
/// then "…", so a status always fits in any client's header limit.
pub fn quote(value: &str) -> String {
    match value.char_indices().nth(MAX_QUOTED_CHARS) {
        None => format!("{value:?}"),
        Some((cut, _)) => format!("{:?}…", &value[..cut]),
    }
}

// === impl Error ===

impl Error {
    /// A validation failure of `field`.
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field,
            reason: reason.into(),
        }
    }

    /// Whether the upstream said the record does not exist (cached briefly).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Api(api) if api.is_not_found())
    }

    /// Whether another attempt of a read could succeed: transport failures, timeouts,
    /// 5xx (but 501), HTML error pages from a proxy, and 429.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Timeout { .. }
            | Self::SlowBody { .. }
            | Self::Connect { .. }
            | Self::Reset { .. }
            | Self::Truncated { .. } => true,
            Self::NotJson { status, .. } => (500..=599).contains(status) && *status != 501,
            Self::Api(api) => {
                matches!(api.status, 408 | 429 | 500 | 502 | 503 | 504)
                    || (api.status > 504 && api.status <= 599)
            }
            Self::InvalidArgument { .. }
            | Self::Unsupported { .. }
            | Self::EdgeUnsupported
            | Self::NotConfigured { .. }
            | Self::RequestTooLarge { .. }
            | Self::DeadlineExceeded { .. }
            | Self::TooLarge { .. }
            | Self::Malformed { .. }
            | Self::Redirected { .. }
            | Self::CircuitOpen { .. }
            | Self::QuotaExhausted { .. }
            | Self::Overloaded { .. }
            | Self::Unauthenticated { .. }
            | Self::PermissionDenied { .. }
            | Self::CallerLimited { .. }
            | Self::Sealed(_) => false,
        }
    }

    /// Whether this says the vendor is unwell (what a circuit breaker counts): transport
    /// failures, timeouts, 5xx and HTML error pages. A 4xx, a 429 included, is the
    /// vendor working as designed.
    pub fn is_upstream_failure(&self) -> bool {
        match self {
            Self::Api(api) => api.status >= 500,
            Self::Timeout { .. }
            | Self::SlowBody { .. }
            | Self::Connect { .. }
            | Self::Reset { .. }
            | Self::Truncated { .. }
            | Self::NotJson { .. } => self.is_retryable(),
            _ => false,
        }
    }

    /// The delay the upstream asked for (`Retry-After`), if any.
    pub fn upstream_retry_after(&self) -> Option<Duration> {
        match self {
            Self::Api(api) => api.retry_after,
            _ => None,
        }
    }

    /// The status code and reason of this error.
    pub fn classify(&self) -> (Code, ErrorReason) {
        use ErrorReason as R;
        match self {
            Self::InvalidArgument { .. } => (Code::InvalidArgument, R::InvalidArgument),
            Self::Unsupported { .. } => (Code::FailedPrecondition, R::UnsupportedByUpstream),
            Self::EdgeUnsupported => (Code::FailedPrecondition, R::EdgeUnsupported),
            Self::NotConfigured { .. } => (Code::FailedPrecondition, R::NotConfigured),
            Self::DeadlineExceeded { .. } => (Code::DeadlineExceeded, R::DeadlineExceeded),
            Self::RequestTooLarge { .. } => (Code::ResourceExhausted, R::RequestTooLarge),
            Self::Api(api) => api.classify(),
            Self::Timeout { .. } | Self::SlowBody { .. } => {
                (Code::DeadlineExceeded, R::UpstreamTimeout)
            }
            Self::Connect { .. } | Self::Reset { .. } | Self::Truncated { .. } => {
                (Code::Unavailable, R::UpstreamUnavailable)
            }
            Self::Redirected { .. } => (Code::FailedPrecondition, R::UpstreamEndpointMisconfigured),
            Self::CircuitOpen { .. } => (Code::Unavailable, R::UpstreamCircuitOpen),
            Self::QuotaExhausted { .. } => (Code::ResourceExhausted, R::UpstreamQuotaExhausted),
            Self::Overloaded { .. } => (Code::ResourceExhausted, R::Overloaded),
            Self::Unauthenticated { .. } => (Code::Unauthenticated, R::Unauthenticated),
            Self::PermissionDenied { .. } => (Code::PermissionDenied, R::PermissionDenied),
            Self::CallerLimited { .. } => (Code::ResourceExhausted, R::CallerLimited),
            Self::TooLarge { .. } => (Code::Internal, R::UpstreamResponseTooLarge),
            Self::NotJson { status, .. } => {
                // A proxy or load balancer in front of a failing upstream answers 5xx pages.
                if (500..=599).contains(status) {
                    (Code::Unavailable, R::UpstreamUnavailable)
                } else {
                    (Code::Internal, R::UpstreamMalformed)
                }
            }
            Self::Malformed { .. } => (Code::Internal, R::UpstreamMalformed),
            Self::Sealed(e) => match e {
                SealedError::NoKeys => (Code::FailedPrecondition, R::SealedNoKeys),
                SealedError::Decrypt => (Code::FailedPrecondition, R::SealedDecryptionFailed),
                SealedError::Size => (Code::InvalidArgument, R::SealedBadSize),
                SealedError::Header => (Code::InvalidArgument, R::SealedBadHeader),
                SealedError::Truncated => (Code::InvalidArgument, R::SealedTruncated),
                SealedError::Compression => (Code::InvalidArgument, R::SealedBadCompression),
                SealedError::TooLarge => (Code::InvalidArgument, R::SealedTooLarge),
                SealedError::Json => (Code::InvalidArgument, R::SealedBadJson),
                SealedError::NotAnEvent => (Code::InvalidArgument, R::SealedNotAnEvent),
            },
        }
    }

    /// The upstream involved, if any.
    fn upstream(&self) -> Option<Upstream> {
        match self {
            Self::Api(ApiError { upstream, .. })
            | Self::Timeout { upstream, .. }
            | Self::SlowBody { upstream, .. }
            | Self::Connect { upstream, .. }
            | Self::Reset { upstream, .. }
            | Self::Truncated { upstream, .. }
            | Self::Redirected { upstream, .. }
            | Self::CircuitOpen { upstream, .. }
            | Self::QuotaExhausted { upstream, .. }
            | Self::TooLarge { upstream, .. }
            | Self::NotJson { upstream, .. }
            | Self::Malformed { upstream, .. } => Some(*upstream),
            Self::NotConfigured { upstream, .. } => *upstream,
            Self::EdgeUnsupported => Some(Upstream::Fingerprint),
            Self::InvalidArgument { .. }
            | Self::Unsupported { .. }
            | Self::DeadlineExceeded { .. }
            | Self::RequestTooLarge { .. }
            | Self::Overloaded { .. }
            | Self::Unauthenticated { .. }
            | Self::PermissionDenied { .. }
            | Self::CallerLimited { .. }
            | Self::Sealed(_) => None,
        }
    }

    /// The gRPC status for this error: the only place errors become statuses.
    ///
    /// Failures that are ours or the upstream's are logged here, once, with their cause
    /// chain; caller mistakes are logged at debug level only.
    pub fn to_status(&self) -> Status {
        let (code, reason) = self.classify();
        let mut details = ErrorDetails::new();
        let mut metadata = HashMap::new();
        if let Some(upstream) = self.upstream() {
            metadata.insert("upstream".to_owned(), upstream.label().to_owned());
        }
        let message = match self {
            Self::InvalidArgument { field, reason } => {
                details.add_bad_request_violation(*field, reason.clone());
                metadata.insert("field".to_owned(), (*field).to_owned());
                self.to_string()
            }
            Self::Unsupported { field, .. } => {
                details.add_precondition_failure_violation(
                    reason.as_str_name(),
                    *field,
                    self.to_string(),
                );
                metadata.insert("field".to_owned(), (*field).to_owned());
                self.to_string()
            }
            Self::NotConfigured { setting, .. } => {
                metadata.insert("setting".to_owned(), (*setting).to_owned());
                self.to_string()
            }
            Self::Api(api) => {
                metadata.insert("http_status".to_owned(), api.status.to_string());
                if let Some(c) = &api.code {
                    metadata.insert("upstream_code".to_owned(), c.clone());
                }
                if let Some(m) = &api.message {
                    metadata.insert("upstream_message".to_owned(), m.clone());
                }
                if let Some(id) = &api.request_id {
                    details.set_request_info(id.clone(), "");
                }
                // Only a delay the upstream asked for: the gateway invents none.
                if api.retry_after.is_some() {
                    details.set_retry_info(api.retry_after);
                }
                match reason {
                    ErrorReason::UpstreamCredentialsRejected => format!(
                        "{api}; the gateway's credentials were rejected: the operator should check {}",
                        api.upstream.credential_settings()
                    ),
                    ErrorReason::UpstreamWrongRegion
                    | ErrorReason::UpstreamEndpointMisconfigured => format!(
                        "{api}; the gateway is misconfigured: the operator should check {}",
                        api.upstream.credential_settings()
                    ),
                    _ => api.to_string(),
                }
            }
            Self::NotJson { status, .. } => {
                metadata.insert("http_status".to_owned(), status.to_string());
                self.to_string()
            }
            Self::Sealed(e) => {
                if code == Code::InvalidArgument {
                    details.add_bad_request_violation("sealed", e.to_string());
                    metadata.insert("field".to_owned(), "sealed".to_owned());
                }
                self.to_string()
            }
            Self::Redirected {
                upstream, status, ..
            } => {
                metadata.insert("http_status".to_owned(), status.to_string());
                format!(
                    "{self}: the operator should check {}",
                    upstream.base_url_setting()
                )
            }
            // Delays the gateway knows: when the breaker probes again, when the quota
            // has room.
            Self::CircuitOpen { retry_after, .. } => {
                details.set_retry_info(Some(*retry_after));
                self.to_string()
            }
            Self::QuotaExhausted {
                retry_after,
                setting,
                ..
            } => {
                details.set_retry_info(Some(*retry_after));
                metadata.insert("setting".to_owned(), (*setting).to_owned());
                self.to_string()
            }
            Self::Overloaded { .. } => {
                metadata.insert("setting".to_owned(), "GATEWAY_MAX_IN_FLIGHT".to_owned());
                self.to_string()
            }
            Self::Unauthenticated { .. } => self.to_string(),
            Self::PermissionDenied { caller, permission } => {
                metadata.insert("permission".to_owned(), permission.clone());
                metadata.insert("caller".to_owned(), caller.clone());
                self.to_string()
            }
            Self::CallerLimited {
                caller,
                limit,
                retry_after,
            } => {
                metadata.insert("caller".to_owned(), caller.clone());
                metadata.insert("limit".to_owned(), (*limit).to_owned());
                if retry_after.is_some() {
                    details.set_retry_info(*retry_after);
                }
                self.to_string()
            }
            Self::EdgeUnsupported => {
                metadata.insert("setting".to_owned(), "FINGERPRINT_API_VERSION".to_owned());
                details.add_precondition_failure_violation(
                    reason.as_str_name(),
                    "FINGERPRINT_API_VERSION",
                    self.to_string(),
                );
                self.to_string()
            }
            Self::DeadlineExceeded { .. }
            | Self::RequestTooLarge { .. }
            | Self::Timeout { .. }
            | Self::SlowBody { .. }
            | Self::Connect { .. }
            | Self::Reset { .. }
            | Self::Truncated { .. }
            | Self::TooLarge { .. }
            | Self::Malformed { .. } => self.to_string(),
        };
        details.set_error_info(reason.as_str_name(), DOMAIN, metadata);
        log(self, code);
        Status::with_error_details(code, message, details)
    }
}

fn log(err: &Error, code: Code) {
    match (err, code) {
        (
            Error::InvalidArgument { .. }
            | Error::Unsupported { .. }
            | Error::EdgeUnsupported
            | Error::RequestTooLarge { .. }
            | Error::Sealed(_),
            _,
        )
        | (Error::Api(_), Code::InvalidArgument | Code::NotFound) => {
            tracing::debug!(error = %err, "request refused");
        }
        // Shed without trying: one per call would flood the log in an outage; the
        // breaker logs its transitions, and metrics count these.
        (
            Error::CircuitOpen { .. }
            | Error::QuotaExhausted { .. }
            | Error::Overloaded { .. }
            | Error::CallerLimited { .. },
            _,
        ) => tracing::debug!(error = %err, "request shed"),
        (Error::Unauthenticated { .. } | Error::PermissionDenied { .. }, _) => {
            tracing::info!(error = %err, "request refused by the policy");
        }
        _ => tracing::warn!(error = %DisplayChain(err), ?code, "request failed"),
    }
}

/// Formats an error with its whole `source()` chain.
pub struct DisplayChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for DisplayChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        err.to_status()
    }
}

#[cfg(test)]
mod tests;

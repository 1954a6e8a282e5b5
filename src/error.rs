//! The gateway's errors, and the one place they become gRPC statuses.

use std::{collections::HashMap, fmt, time::Duration};

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// Domain of `ErrorInfo` for errors the gateway raises itself.
pub const GATEWAY_DOMAIN: &str = "fingerprint-gateway";

/// Which upstream an error came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Upstream {
    /// fingerprint.com Server API.
    Fingerprint,
    /// Stytch Device Fingerprinting.
    Stytch,
}

/// Everything that can go wrong while answering an RPC.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field is invalid; nothing was sent upstream.
    #[error("invalid {field}: {reason}")]
    InvalidArgument {
        /// The field, as named in the proto.
        field: &'static str,
        /// What is wrong with it.
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
    /// The upstream has no credentials configured.
    #[error("{upstream} is disabled: {setting} is not set")]
    Disabled {
        /// The disabled upstream.
        upstream: Upstream,
        /// The missing setting.
        setting: &'static str,
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
    /// The upstream could not be reached, or the connection broke.
    #[error("could not reach {upstream}")]
    Connect {
        /// The upstream.
        upstream: Upstream,
        /// The transport failure.
        #[source]
        source: reqwest::Error,
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
        /// The body's content type.
        content_type: String,
    },
    /// A sealed client result could not be opened.
    #[error("{0}")]
    Sealed(#[from] crate::sealed::SealedError),
    /// A webhook check was asked for, but no secret is configured.
    #[error("no webhook secret is configured: set FINGERPRINT_WEBHOOK_SECRETS")]
    NoWebhookSecrets,
    /// The upstream's JSON answer does not have the expected shape.
    #[error("{upstream} answered with malformed JSON: {detail}")]
    Malformed {
        /// The upstream.
        upstream: Upstream,
        /// What was wrong.
        detail: String,
    },
}

/// An error answer from an upstream API.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The upstream.
    pub upstream: Upstream,
    /// HTTP status.
    pub status: u16,
    /// The upstream's error code (`error.code` for fingerprint.com, `error_type` for Stytch).
    pub code: Option<String>,
    /// The upstream's message, with any configured secret removed.
    pub message: Option<String>,
    /// The upstream's id for the failed call, if it gave one.
    pub request_id: Option<String>,
    /// How long the upstream asked us to wait (`Retry-After`).
    pub retry_after: Option<Duration>,
}

// === impl Upstream ===

impl Upstream {
    /// Domain used in `ErrorInfo`.
    pub fn domain(self) -> &'static str {
        match self {
            Self::Fingerprint => "api.fpjs.io",
            Self::Stytch => "stytch.com",
        }
    }

    /// The settings an operator checks when the upstream rejects the gateway's credentials.
    fn credential_settings(self) -> &'static str {
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

/// What a given upstream error means for the caller.
enum Meaning {
    BadRequest,
    Credentials,
    Misconfigured,
    NotFound,
    NotReady,
    RateLimited,
    Cancelled,
    UpstreamDown,
    UpstreamTimeout,
    GatewayBug,
}

impl ApiError {
    /// Whether the upstream said the resource is not ready yet (409 `state_not_ready`).
    pub fn is_not_ready(&self) -> bool {
        matches!(self.meaning(), Meaning::NotReady)
    }

    /// Whether the upstream said the record does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self.meaning(), Meaning::NotFound)
    }

    fn meaning(&self) -> Meaning {
        let code = self.code.as_deref().unwrap_or_default();
        match (self.status, code) {
            (_, "wrong_region" | "WrongRegion") => Meaning::Misconfigured,
            (_, "subscription_not_active" | "SubscriptionNotActive") => Meaning::Misconfigured,
            (_, "feature_not_enabled" | "FeatureNotEnabled") => Meaning::Misconfigured,
            (_, "workspace_scoped_secret_key_required" | "WorkspaceScopedSecretKeyRequired") => {
                Meaning::Misconfigured
            }
            (_, "route_not_found") => Meaning::Misconfigured,
            (_, "state_not_ready" | "StateNotReady") => Meaning::NotReady,
            (401 | 403, _) => Meaning::Credentials,
            (400 | 413 | 422, _) => Meaning::BadRequest,
            // A 404 without a JSON error code is a wrong base URL, not a missing record.
            (404, "") => Meaning::Misconfigured,
            (404, _) => Meaning::NotFound,
            (409, _) => Meaning::NotReady,
            (429, _) => Meaning::RateLimited,
            (499, _) => Meaning::Cancelled,
            (504, _) => Meaning::UpstreamTimeout,
            (500..=599, _) => Meaning::UpstreamDown,
            _ => Meaning::GatewayBug,
        }
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

    /// The gRPC status for this error: the only place errors become statuses.
    ///
    /// Failures that are ours or the upstream's are logged here, once, with their cause
    /// chain; caller mistakes are logged at debug level only.
    pub fn to_status(&self) -> Status {
        let mut details = ErrorDetails::new();
        let (code, message) = match self {
            Self::InvalidArgument { field, reason } => {
                details.add_bad_request_violation(*field, reason.clone());
                details.set_error_info("INVALID_ARGUMENT", GATEWAY_DOMAIN, HashMap::new());
                (Code::InvalidArgument, self.to_string())
            }
            Self::Unsupported { field, .. } => {
                details.add_precondition_failure_violation(
                    "UNSUPPORTED_BY_UPSTREAM",
                    *field,
                    self.to_string(),
                );
                details.set_error_info("UNSUPPORTED_BY_UPSTREAM", GATEWAY_DOMAIN, HashMap::new());
                (Code::FailedPrecondition, self.to_string())
            }
            Self::Disabled { upstream, setting } => {
                details.set_error_info(
                    "UPSTREAM_DISABLED",
                    GATEWAY_DOMAIN,
                    HashMap::from([
                        ("upstream".to_owned(), upstream.to_string()),
                        ("setting".to_owned(), (*setting).to_owned()),
                    ]),
                );
                (Code::FailedPrecondition, self.to_string())
            }
            Self::Api(api) => return api_status(api, details),
            Self::Timeout { upstream, .. } => {
                details.set_error_info("UPSTREAM_TIMEOUT", upstream.domain(), HashMap::new());
                (Code::DeadlineExceeded, self.to_string())
            }
            Self::Connect { upstream, .. } => {
                details.set_error_info("UPSTREAM_UNREACHABLE", upstream.domain(), HashMap::new());
                (Code::Unavailable, self.to_string())
            }
            Self::TooLarge { upstream, .. } => {
                details.set_error_info(
                    "UPSTREAM_BODY_TOO_LARGE",
                    upstream.domain(),
                    HashMap::new(),
                );
                (Code::Internal, self.to_string())
            }
            Self::NotJson {
                upstream, status, ..
            } => {
                details.set_error_info(
                    "UPSTREAM_NOT_JSON",
                    upstream.domain(),
                    HashMap::from([("http_status".to_owned(), status.to_string())]),
                );
                // A proxy or load balancer in front of a failing upstream answers 5xx pages.
                let code = if (500..=599).contains(status) {
                    Code::Unavailable
                } else {
                    Code::Internal
                };
                (code, self.to_string())
            }
            Self::Sealed(e) => {
                use crate::sealed::SealedError as S;
                let (code, reason) = match e {
                    S::NoKeys => (Code::FailedPrecondition, "SEALED_NO_KEYS"),
                    S::Decrypt => (Code::FailedPrecondition, "SEALED_DECRYPTION_FAILED"),
                    S::Size => (Code::InvalidArgument, "SEALED_SIZE"),
                    S::Header => (Code::InvalidArgument, "SEALED_BAD_HEADER"),
                    S::Truncated => (Code::InvalidArgument, "SEALED_TRUNCATED"),
                    S::Compression => (Code::InvalidArgument, "SEALED_BAD_COMPRESSION"),
                    S::TooLarge => (Code::InvalidArgument, "SEALED_TOO_LARGE"),
                    S::Json => (Code::InvalidArgument, "SEALED_BAD_JSON"),
                    S::NotAnEvent => (Code::InvalidArgument, "SEALED_NOT_AN_EVENT"),
                };
                if code == Code::InvalidArgument {
                    details.add_bad_request_violation("sealed", e.to_string());
                }
                details.set_error_info(reason, GATEWAY_DOMAIN, HashMap::new());
                (code, self.to_string())
            }
            Self::NoWebhookSecrets => {
                details.set_error_info("WEBHOOK_NO_SECRETS", GATEWAY_DOMAIN, HashMap::new());
                (Code::FailedPrecondition, self.to_string())
            }
            Self::Malformed { upstream, .. } => {
                details.set_error_info("UPSTREAM_MALFORMED", upstream.domain(), HashMap::new());
                (Code::Internal, self.to_string())
            }
        };
        log(self, code);
        Status::with_error_details(code, message, details)
    }
}

fn api_status(api: &ApiError, mut details: ErrorDetails) -> Status {
    let mut metadata = HashMap::from([("http_status".to_owned(), api.status.to_string())]);
    if let Some(message) = &api.message {
        metadata.insert("upstream_message".to_owned(), message.clone());
    }
    let reason = api
        .code
        .clone()
        .unwrap_or_else(|| format!("HTTP_{}", api.status));
    details.set_error_info(reason, api.upstream.domain(), metadata);
    if let Some(id) = &api.request_id {
        details.set_request_info(id.clone(), "");
    }
    let (code, message) = match api.meaning() {
        Meaning::BadRequest => (Code::InvalidArgument, api.to_string()),
        Meaning::NotFound => (Code::NotFound, api.to_string()),
        Meaning::NotReady => {
            details.set_retry_info(Some(api.retry_after.unwrap_or(Duration::from_secs(1))));
            (Code::Unavailable, api.to_string())
        }
        Meaning::RateLimited => {
            details.set_retry_info(api.retry_after);
            (Code::ResourceExhausted, api.to_string())
        }
        Meaning::Cancelled => (Code::Cancelled, api.to_string()),
        Meaning::UpstreamDown => {
            details.set_retry_info(api.retry_after);
            (Code::Unavailable, api.to_string())
        }
        Meaning::UpstreamTimeout => (Code::DeadlineExceeded, api.to_string()),
        Meaning::Credentials => (
            Code::FailedPrecondition,
            format!(
                "{api}; the gateway's credentials were rejected: the operator should check {}",
                api.upstream.credential_settings()
            ),
        ),
        Meaning::Misconfigured => (
            Code::FailedPrecondition,
            format!(
                "{api}; the gateway is misconfigured: the operator should check {}",
                api.upstream.credential_settings()
            ),
        ),
        Meaning::GatewayBug => (Code::Internal, api.to_string()),
    };
    log_api(api, code);
    Status::with_error_details(code, message, details)
}

fn log(err: &Error, code: Code) {
    match code {
        Code::InvalidArgument | Code::NotFound | Code::FailedPrecondition
            if matches!(
                err,
                Error::InvalidArgument { .. } | Error::Unsupported { .. } | Error::Sealed(_)
            ) =>
        {
            tracing::debug!(error = %err, "rejected request");
        }
        _ => tracing::warn!(error = %DisplayChain(err), ?code, "request failed"),
    }
}

fn log_api(api: &ApiError, code: Code) {
    match code {
        Code::InvalidArgument | Code::NotFound => {
            tracing::debug!(error = %api, "upstream refused request")
        }
        _ => tracing::warn!(error = %api, ?code, "upstream error"),
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

//! HTTP clients of the upstream REST APIs.
//!
//! [`Http`] is the part both share: one traced, time-bounded, size-bounded exchange
//! that turns every failure into an [`crate::error::Error`].

pub mod fingerprint;
pub mod stytch;

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use tokio::time::Instant;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use reqwest::{Method, RequestBuilder, StatusCode, header};
use serde_json::{Map, Value as Json};
use tracing::{Instrument, field};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::config::ResilienceConfig;
use crate::convert::typed::{Answer, Shape, Untyped};
use crate::error::{ApiError, Error, Resource, Upstream};
use crate::metrics::{Metrics, TraceExemplar};
use crate::resilience::{CallKind, Guards, Next};

/// What an upstream answered successfully: its JSON object.
pub type JsonObject = Map<String, Json>;

/// The shared HTTP machinery of the upstream clients.
#[derive(Debug, Clone)]
pub struct Http {
    client: reqwest::Client,
    max_body: usize,
    metrics: Arc<Metrics>,
    guards: Guards,
}

/// How to read an upstream's error body.
#[derive(Debug, Clone, Copy)]
pub enum ErrorShape {
    /// fingerprint.com: `{"error": {"code", "message"}}`, or v3's `{"error": "text"}`.
    Fingerprint,
    /// Stytch: `{"status_code", "request_id", "error_type", "error_message"}`.
    Stytch,
}

/// What one upstream call is, besides its HTTP request.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// The upstream.
    pub upstream: Upstream,
    /// What the call is about (names a 404).
    pub resource: Resource,
    /// How to read its error bodies.
    pub shape: ErrorShape,
    /// Read, write or delete: decides retries and quotas.
    pub kind: CallKind,
    /// Scrubbed from anything the upstream echoes into an error message.
    pub secrets: &'a [&'a str],
}

// === impl Http ===

impl Http {
    /// A client bounded by `policy` and `max_body`, guarded by `guards`, counting its
    /// calls in `metrics`.
    pub fn new(
        policy: &ResilienceConfig,
        max_body: usize,
        metrics: Arc<Metrics>,
        guards: Guards,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("fingerprint-gateway/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(policy.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            // Upstream redirects would carry our credentials elsewhere: never follow them.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            client,
            max_body,
            metrics,
            guards,
        })
    }

    /// The resilience state of both upstreams.
    pub fn guards(&self) -> &Guards {
        &self.guards
    }

    /// Starts a request.
    pub fn request(&self, method: Method, url: reqwest::Url) -> RequestBuilder {
        self.client.request(method, url)
    }

    /// Sends a request and returns the JSON object of a 2xx answer.
    ///
    /// Each attempt is cleared by the upstream's breaker and quota, bounded by the
    /// attempt timeout and the call's deadline; a read is tried again on a retryable
    /// failure while the policy, the budget and the deadline allow (see
    /// [`crate::resilience`]).
    pub async fn send(&self, call: Call<'_>, request: RequestBuilder) -> Result<JsonObject, Error> {
        Ok(self.send_as::<Untyped>(call, request).await?.into_json())
    }

    /// As [`Http::send`], reading a 2xx answer as `T` when it has exactly that shape
    /// (and cannot echo a credential), else as a JSON object.
    pub async fn send_as<T: Shape>(
        &self,
        call: Call<'_>,
        request: RequestBuilder,
    ) -> Result<Answer<T>, Error> {
        let upstream = call.upstream;
        let request = request.build().map_err(|e| Error::Connect {
            upstream,
            cause: cause(&e),
        })?;
        let guard = self.guards.of(upstream);
        let deadline = guard.deadline();
        let mut last: Option<Error> = None;
        for attempt in 0u32.. {
            let left = deadline.saturating_duration_since(Instant::now());
            if left < guard.min_attempt() {
                self.metrics.not_sent(upstream, "deadline");
                return Err(last.unwrap_or(Error::DeadlineExceeded {
                    during: during(upstream),
                }));
            }
            let ticket = match guard.admit(call.kind, attempt, deadline).await {
                Ok(ticket) => ticket,
                // A retry refused: what the upstream said last is the better answer.
                Err(refused) => return Err(last.unwrap_or(refused)),
            };
            // Writes carry small in-memory bodies, so every request can be cloned.
            let Some(this) = request.try_clone() else {
                return Err(Error::Connect {
                    upstream,
                    cause: "the request body cannot be resent".to_owned(),
                });
            };
            let left = deadline.saturating_duration_since(Instant::now());
            let cut_by_deadline = left < guard.attempt_timeout();
            let timeout = left.min(guard.attempt_timeout());
            let error = match self.attempt::<T>(call, this, timeout, attempt).await {
                Ok(json) => {
                    guard.breaker.record(ticket, false);
                    return Ok(json);
                }
                Err(error) => error,
            };
            let timed_out = matches!(error, Error::Timeout { .. } | Error::SlowBody { .. });
            if timed_out && cut_by_deadline {
                // The caller's deadline ended it, not the vendor's slowness.
                drop(ticket);
                return Err(Error::DeadlineExceeded {
                    during: during(upstream),
                });
            }
            guard.breaker.record(ticket, error.is_upstream_failure());
            match guard.retry(call.kind, attempt, &error, deadline) {
                Next::After(wait) => {
                    tracing::debug!(%upstream, attempt, ?wait, error = %error, "retrying");
                    last = Some(error);
                    tokio::time::sleep(wait).await;
                }
                Next::GiveUp => return Err(error),
            }
        }
        Err(last.unwrap_or(Error::DeadlineExceeded {
            during: during(upstream),
        }))
    }

    /// One attempt, in its own span (built only within a traced RPC or a sampled root).
    async fn attempt<T: Shape>(
        &self,
        call: Call<'_>,
        request: reqwest::Request,
        timeout: Duration,
        attempt: u32,
    ) -> Result<Answer<T>, Error> {
        let traced = !tracing::Span::current().is_none() || crate::telemetry::traces(None);
        let span = if !traced {
            tracing::Span::none()
        } else {
            tracing::info_span!(
                "upstream",
                otel.name = %format!("{} {}", request.method(), route_of(request.url().path())),
                otel.kind = "client",
                upstream = %call.upstream,
                http.request.method = %request.method(),
                http.request.resend_count = i64::from(attempt),
                server.address = request.url().host_str().unwrap_or_default(),
                url.path = request.url().path(),
                http.response.status_code = field::Empty,
                otel.status_code = field::Empty,
            )
        };
        self.exchange::<T>(call, request, timeout)
            .instrument(span)
            .await
    }

    async fn exchange<T: Shape>(
        &self,
        call: Call<'_>,
        mut request: reqwest::Request,
        timeout: Duration,
    ) -> Result<Answer<T>, Error> {
        let upstream = call.upstream;
        let span = tracing::Span::current();
        // W3C traceparent out: the upstream call joins the caller's trace.
        let context = span.context();
        let trace = crate::telemetry::sampled_ids(&context).map(|(t, s)| TraceExemplar::new(t, s));
        TraceContextPropagator::new().inject_context(
            &context,
            &mut opentelemetry_http::HeaderInjector(request.headers_mut()),
        );
        *request.timeout_mut() = Some(timeout);
        let started = std::time::Instant::now();
        let response = self.client.execute(request).await.map_err(|source| {
            self.metrics
                .upstream(upstream, None, started, trace.clone());
            span.record("otel.status_code", "ERROR");
            if source.is_timeout() {
                Error::Timeout { upstream, timeout }
            } else if source.is_connect() {
                Error::Connect {
                    upstream,
                    cause: cause(&source),
                }
            } else {
                Error::Reset {
                    upstream,
                    cause: cause(&source),
                }
            }
        })?;
        let status = response.status();
        span.record("http.response.status_code", status.as_u16());
        let retry_after = retry_after(response.headers());
        // Upstream text the gateway may echo: shortened, and scrubbed of secrets.
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| {
                let text = String::from_utf8_lossy(v.as_bytes()).into_owned();
                truncate(scrub(text, call.secrets), 64)
            })
            .unwrap_or_else(|| "none".to_owned());
        if status.is_redirection() {
            self.metrics
                .upstream(upstream, Some(status.as_u16()), started, trace.clone());
            span.record("otel.status_code", "ERROR");
            let location = response
                .headers()
                .get(header::LOCATION)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .map_or_else(
                    || "nowhere (no Location)".to_owned(),
                    |l| truncate(scrub(l, call.secrets), 128),
                );
            return Err(Error::Redirected {
                upstream,
                status: status.as_u16(),
                location,
            });
        }
        let body = self.read_body(upstream, response, timeout).await;
        self.metrics
            .upstream(upstream, Some(status.as_u16()), started, trace);
        let body = body.inspect_err(|_| {
            span.record("otel.status_code", "ERROR");
        })?;
        if status.is_success() {
            // Writes may answer with no body at all.
            if body.iter().all(u8::is_ascii_whitespace) {
                return Ok(Answer::Json(JsonObject::new()));
            }
            // Whatever the answer holds may reach the caller (typed or in `unmapped`):
            // no credential may ride along, so a body that may echo one is read as
            // JSON and scrubbed.
            let echoed = echoes(&body, call.secrets);
            if !echoed && let Some(typed) = T::read(&body) {
                return Ok(Answer::Typed(typed));
            }
            return match serde_json::from_slice::<Json>(&body) {
                Ok(Json::Object(mut map)) => {
                    if echoed {
                        let mut whole = Json::Object(std::mem::take(&mut map));
                        scrub_json(&mut whole, call.secrets);
                        if let Json::Object(scrubbed) = whole {
                            map = scrubbed;
                        }
                    }
                    Ok(Answer::Json(map))
                }
                Ok(_) => Err(Error::Malformed {
                    upstream,
                    detail: "expected a JSON object".to_owned(),
                }),
                Err(_) if !content_type.contains("json") => Err(Error::NotJson {
                    upstream,
                    status: status.as_u16(),
                    content_type,
                }),
                // The message was whole but the document was cut: retried like a cut body.
                Err(e) if e.is_eof() => Err(Error::Truncated {
                    upstream,
                    received: body.len(),
                    cause: "the JSON document ends before it is complete".to_owned(),
                }),
                Err(e) => Err(Error::Malformed {
                    upstream,
                    detail: e.to_string(),
                }),
            };
        }
        span.record("otel.status_code", "ERROR");
        Err(Error::Api(api_error(
            upstream,
            call.resource,
            call.shape,
            status,
            &body,
            &content_type,
            retry_after,
            call.secrets,
        )))
    }

    /// Reads the body, refusing more than `max_body` bytes.
    async fn read_body(
        &self,
        upstream: Upstream,
        mut response: reqwest::Response,
        timeout: Duration,
    ) -> Result<Vec<u8>, Error> {
        let too_large = Error::TooLarge {
            upstream,
            limit: self.max_body,
        };
        if response
            .content_length()
            .is_some_and(|n| n > self.max_body as u64)
        {
            return Err(too_large);
        }
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > self.max_body {
                        return Err(too_large);
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(body),
                Err(e) if e.is_timeout() => {
                    return Err(Error::SlowBody {
                        upstream,
                        timeout,
                        received: body.len(),
                    });
                }
                Err(source) => {
                    return Err(Error::Truncated {
                        upstream,
                        received: body.len(),
                        cause: cause(&source),
                    });
                }
            }
        }
    }
}

/// What a call was doing when its deadline passed.
fn during(upstream: Upstream) -> &'static str {
    match upstream {
        Upstream::Fingerprint => "the call to fingerprint.com",
        Upstream::Stytch => "the call to Stytch",
    }
}

/// The innermost cause of a transport failure ("Connection refused (os error 111)"):
/// the outer layers repeat the URL, which may carry what it should not.
fn cause(error: &reqwest::Error) -> String {
    let mut inner = std::error::Error::source(error);
    let mut last = None;
    while let Some(e) = inner {
        last = Some(e);
        inner = e.source();
    }
    last.map_or_else(
        || "no further detail".to_owned(),
        |e| truncate(e.to_string(), 200),
    )
}

/// The path with id-like segments replaced, for span names of low cardinality.
fn route_of(path: &str) -> String {
    let mut out = String::new();
    let mut prev = "";
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        out.push('/');
        if matches!(prev, "events" | "visitors") && seg != "search" {
            out.push_str("{id}");
        } else {
            out.push_str(seg);
        }
        prev = seg;
    }
    out
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(headers: &header::HeaderMap) -> Option<Duration> {
    let raw = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = raw.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(raw).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[allow(clippy::too_many_arguments)]
fn api_error(
    upstream: Upstream,
    resource: Resource,
    shape: ErrorShape,
    status: StatusCode,
    body: &[u8],
    content_type: &str,
    retry_after: Option<Duration>,
    secrets: &[&str],
) -> ApiError {
    let mut err = ApiError {
        upstream,
        resource,
        status: status.as_u16(),
        code: None,
        message: None,
        request_id: None,
        retry_after,
    };
    match serde_json::from_slice::<Json>(body) {
        Ok(Json::Object(mut map)) => match shape {
            ErrorShape::Fingerprint => match map.remove("error") {
                Some(Json::Object(mut e)) => {
                    err.code = take_str(&mut e, "code");
                    err.message = take_str(&mut e, "message");
                }
                Some(Json::String(message)) => err.message = Some(message),
                _ => {}
            },
            ErrorShape::Stytch => {
                err.code = take_str(&mut map, "error_type");
                err.message = take_str(&mut map, "error_message");
                err.request_id = take_str(&mut map, "request_id");
            }
        },
        _ => {
            err.message = Some(format!(
                "non-JSON error body ({})",
                content_type.split(';').next().unwrap_or_default()
            ));
        }
    }
    // Scrubbed before shortened: a cut must never leave part of a secret behind.
    err.message = err.message.map(|m| truncate(scrub(m, secrets), 512));
    err.code = err.code.map(|c| truncate(scrub(c, secrets), 128));
    err.request_id = err.request_id.map(|r| truncate(scrub(r, secrets), 128));
    err
}

fn take_str(map: &mut JsonObject, key: &str) -> Option<String> {
    match map.remove(key) {
        Some(Json::String(s)) if !s.is_empty() => Some(s),
        _ => None,
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// Removes secrets from text an upstream sent back. `secrets` holds every form in which
/// the gateway sends a credential (the key itself, a Basic-auth encoding; a Bearer
/// header holds the key as is).
fn scrub(text: String, secrets: &[&str]) -> String {
    secrets.iter().filter(|s| s.len() >= 4).fold(text, |t, s| {
        if t.contains(s) {
            t.replace(s, "[redacted]")
        } else {
            t
        }
    })
}

/// Whether a body may echo a credential: it holds one of its forms as is, or JSON
/// escapes (which could spell one).
/// Runs on every successful answer, so it searches with `memchr`'s vectorised
/// substring finder: a byte-by-byte window scan cost ~110k instructions per 3.5 KB event.
fn echoes(body: &[u8], secrets: &[&str]) -> bool {
    use memchr::memmem;
    memmem::find(body, b"\\u").is_some()
        || secrets
            .iter()
            .filter(|s| s.len() >= 4)
            .any(|s| memmem::find(body, s.as_bytes()).is_some())
}

/// Scrubs every string of a JSON value, object keys included.
fn scrub_json(value: &mut Json, secrets: &[&str]) {
    match value {
        Json::String(s) if secrets.iter().any(|x| x.len() >= 4 && s.contains(x)) => {
            *s = scrub(std::mem::take(s), secrets);
        }
        Json::Array(items) => items.iter_mut().for_each(|v| scrub_json(v, secrets)),
        Json::Object(map) => {
            let keys: Vec<String> = map
                .keys()
                .filter(|k| secrets.iter().any(|x| x.len() >= 4 && k.contains(x)))
                .cloned()
                .collect();
            for key in keys {
                if let Some(v) = map.remove(&key) {
                    map.insert(scrub(key, secrets), v);
                }
            }
            map.values_mut().for_each(|v| scrub_json(v, secrets));
        }
        _ => {}
    }
}

/// A digest that names an upstream account in cache keys and page tokens without
/// revealing its secret: the first 16 bytes of SHA-256, in hex.
pub fn account_digest(secret: &str) -> String {
    use sha2::{Digest, Sha256};
    let hash = Sha256::digest(secret.as_bytes());
    hash.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_hides_ids() {
        assert_eq!(route_of("/v4/events/abc.def"), "/v4/events/{id}");
        assert_eq!(route_of("/events/search"), "/events/search");
        assert_eq!(route_of("/visitors/x"), "/visitors/{id}");
    }

    #[test]
    fn echoes_finds_a_secret_or_an_escape_anywhere() {
        let secrets = ["sk_123456", "abc"];
        assert!(echoes(br#"{"a":"x sk_123456"}"#, &secrets));
        assert!(echoes(br#"sk_123456"#, &secrets));
        assert!(echoes(br#"{"a":"\u0073k_123456"}"#, &secrets));
        assert!(!echoes(br#"{"a":"sk_12345","b":"abc"}"#, &secrets));
        assert!(!echoes(b"", &secrets));
    }

    #[test]
    fn echoed_secrets_are_scrubbed() {
        let e = api_error(
            Upstream::Fingerprint,
            Resource::Event,
            ErrorShape::Fingerprint,
            StatusCode::FORBIDDEN,
            br#"{"error":{"code":"secret_api_key_not_found","message":"key sk_123456 unknown"}}"#,
            "application/json",
            None,
            &["sk_123456"],
        );
        assert_eq!(e.message.as_deref(), Some("key [redacted] unknown"));
        assert_eq!(e.code.as_deref(), Some("secret_api_key_not_found"));
    }
}

//! HTTP clients of the upstream REST APIs.
//!
//! [`Http`] is the part both share: one traced, time-bounded, size-bounded exchange
//! that turns every failure into an [`Error`](crate::error::Error).

pub mod fingerprint;
pub mod stytch;

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use reqwest::{Method, RequestBuilder, StatusCode, header};
use serde_json::{Map, Value as Json};
use tracing::{Instrument, field};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::error::{ApiError, Error, Resource, Upstream};
use crate::metrics::Metrics;

/// What an upstream answered successfully: its JSON object.
pub type JsonObject = Map<String, Json>;

/// The shared HTTP machinery of the upstream clients.
#[derive(Debug, Clone)]
pub struct Http {
    client: reqwest::Client,
    timeout: Duration,
    max_body: usize,
    metrics: Arc<Metrics>,
}

/// How to read an upstream's error body.
#[derive(Debug, Clone, Copy)]
pub enum ErrorShape {
    /// fingerprint.com: `{"error": {"code", "message"}}`, or v3's `{"error": "text"}`.
    Fingerprint,
    /// Stytch: `{"status_code", "request_id", "error_type", "error_message"}`.
    Stytch,
}

// === impl Http ===

impl Http {
    /// A client with the given per-call timeout and body bound, counting its calls in
    /// `metrics`.
    pub fn new(
        timeout: Duration,
        max_body: usize,
        metrics: Arc<Metrics>,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("fingerprint-gateway/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .pool_idle_timeout(Duration::from_secs(60))
            // Upstream redirects would carry our credentials elsewhere: never follow them.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            client,
            timeout,
            max_body,
            metrics,
        })
    }

    /// Starts a request.
    pub fn request(&self, method: Method, url: reqwest::Url) -> RequestBuilder {
        self.client.request(method, url).timeout(self.timeout)
    }

    /// Sends a request and returns the JSON object of a 2xx answer.
    ///
    /// `secrets` are scrubbed from anything the upstream echoes into an error message.
    pub async fn send(
        &self,
        upstream: Upstream,
        resource: Resource,
        shape: ErrorShape,
        request: RequestBuilder,
        secrets: &[&str],
    ) -> Result<JsonObject, Error> {
        let request = request
            .build()
            .map_err(|source| Error::Connect { upstream, source })?;
        // Traced only within a traced RPC (or a sampled root): otherwise no span is built.
        let traced = !tracing::Span::current().is_none() || crate::telemetry::traces(None);
        let span = if !traced {
            tracing::Span::none()
        } else {
            tracing::info_span!(
            "upstream",
            otel.name = %format!("{} {}", request.method(), route_of(request.url().path())),
            otel.kind = "client",
            upstream = %upstream,
            http.request.method = %request.method(),
            server.address = request.url().host_str().unwrap_or_default(),
            url.path = request.url().path(),
            http.response.status_code = field::Empty,
            otel.status_code = field::Empty,
            )
        };
        self.exchange(upstream, resource, shape, request, secrets)
            .instrument(span)
            .await
    }

    async fn exchange(
        &self,
        upstream: Upstream,
        resource: Resource,
        shape: ErrorShape,
        mut request: reqwest::Request,
        secrets: &[&str],
    ) -> Result<JsonObject, Error> {
        let span = tracing::Span::current();
        // W3C traceparent out: the upstream call joins the caller's trace.
        let context = span.context();
        TraceContextPropagator::new().inject_context(
            &context,
            &mut opentelemetry_http::HeaderInjector(request.headers_mut()),
        );
        let started = std::time::Instant::now();
        let response = self.client.execute(request).await.map_err(|source| {
            self.metrics.upstream(upstream, None, started);
            span.record("otel.status_code", "ERROR");
            if source.is_timeout() {
                Error::Timeout {
                    upstream,
                    timeout: self.timeout,
                }
            } else {
                Error::Connect {
                    upstream,
                    source: source.without_url(),
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
                scrub(truncate(text, 64), secrets)
            })
            .unwrap_or_else(|| "none".to_owned());
        let body = self.read_body(upstream, response).await;
        self.metrics
            .upstream(upstream, Some(status.as_u16()), started);
        let body = body?;
        if status.is_success() {
            // Writes may answer with no body at all.
            if body.iter().all(u8::is_ascii_whitespace) {
                return Ok(JsonObject::new());
            }
            return match serde_json::from_slice::<Json>(&body) {
                Ok(Json::Object(map)) => Ok(map),
                Ok(_) => Err(Error::Malformed {
                    upstream,
                    detail: "expected a JSON object".to_owned(),
                }),
                Err(_) if !content_type.contains("json") => Err(Error::NotJson {
                    upstream,
                    status: status.as_u16(),
                    content_type,
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
            resource,
            shape,
            status,
            &body,
            &content_type,
            retry_after,
            secrets,
        )))
    }

    /// Reads the body, refusing more than `max_body` bytes.
    async fn read_body(
        &self,
        upstream: Upstream,
        mut response: reqwest::Response,
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
                    return Err(Error::Timeout {
                        upstream,
                        timeout: self.timeout,
                    });
                }
                Err(source) => {
                    return Err(Error::Connect {
                        upstream,
                        source: source.without_url(),
                    });
                }
            }
        }
    }
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
    err.message = err.message.map(|m| scrub(truncate(m, 512), secrets));
    err.code = err.code.map(|c| scrub(truncate(c, 128), secrets));
    err.request_id = err.request_id.map(|r| scrub(truncate(r, 128), secrets));
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

/// Removes secrets from text an upstream sent back.
fn scrub(text: String, secrets: &[&str]) -> String {
    secrets
        .iter()
        .filter(|s| s.len() >= 4)
        .fold(text, |t, s| t.replace(s, "[redacted]"))
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

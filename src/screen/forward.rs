//! HTTP forward-auth (`/auth` on `GATEWAY_HTTP_LISTEN`) for nginx `auth_request`, Caddy
//! `forward_auth` and Traefik `ForwardAuth`: the proxy asks with the original request's
//! headers and its own description of the request; a 2xx lets the request through, a
//! refusal answers the client.
//!
//! The description, read only from a trusted proxy (`GATEWAY_EDGE_TRUSTED_PROXIES`):
//! - method: `X-Forwarded-Method` (Caddy, Traefik) or `X-Original-Method` (nginx, as
//!   configured in the README), else the asking request's own;
//! - path and query: `X-Forwarded-Uri` or `X-Original-URI`;
//! - scheme: `X-Forwarded-Proto`, else `http`; host: `X-Forwarded-Host`, else `Host`;
//! - client: `X-Real-IP`, else the nearest untrusted hop of `X-Forwarded-For`.
//!
//! These headers, `Host`'s own value when the proxy rewrote it, and the hop-by-hop
//! headers are not sent on to the vendor; every other header line is, in the order
//! HTTP/1.1 parsing kept (names arrive in lower case). Any other peer is refused
//! (403): it could describe any request it liked.

use std::net::SocketAddr;

use axum::{
    Router,
    extract::{ConnectInfo, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
    routing::any,
};

use super::{Decision, Screen, Seen};

/// Where the proxies ask.
pub const PATH: &str = "/auth";

/// Headers that describe the request rather than belong to it.
const CONVENTIONS: [&str; 9] = [
    "x-forwarded-method",
    "x-original-method",
    "x-forwarded-uri",
    "x-original-uri",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-for",
    "x-real-ip",
    "x-original-url",
];

/// Hop-by-hop and framing headers of the asking request itself.
const HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

/// The forward-auth routes (served with `ConnectInfo<SocketAddr>`).
pub fn router(screen: Screen) -> Router {
    Router::new()
        .route(PATH, any(ask))
        .route(&format!("{PATH}/{{*rest}}"), any(ask))
        .with_state(screen)
}

async fn ask(
    State(screen): State<Screen>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let peer = Some(peer.ip());
    if !screen.trusts(peer) {
        let body = serde_json::json!({
            "error": "forward-auth answers only the proxies of GATEWAY_EDGE_TRUSTED_PROXIES",
        });
        return (StatusCode::FORBIDDEN, axum::Json(body)).into_response();
    }
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let started = std::time::Instant::now();
    let host = text("x-forwarded-host")
        .or_else(|| text(header::HOST.as_str()))
        .unwrap_or_default()
        .to_owned();
    let path = text("x-forwarded-uri")
        .or_else(|| text("x-original-uri"))
        .unwrap_or("/")
        .to_owned();
    if !screen.in_scope(&host, &path) {
        return reply(&screen.out_of_scope(started));
    }
    let method = text("x-forwarded-method")
        .or_else(|| text("x-original-method"))
        .map_or_else(|| method.as_str().to_owned(), str::to_owned);
    let scheme = match text("x-forwarded-proto") {
        Some(p) if p.eq_ignore_ascii_case("https") => "https",
        _ => "http",
    };
    let client = screen.client_ip(peer, text("x-forwarded-for"), text("x-real-ip"));
    let mut lines = Vec::with_capacity(headers.len());
    for (name, value) in &headers {
        let name = name.as_str();
        if CONVENTIONS.contains(&name) || HOP.contains(&name) {
            continue;
        }
        let value = if name == "host" {
            host.clone()
        } else {
            String::from_utf8_lossy(value.as_bytes()).into_owned()
        };
        lines.push((name.to_owned(), value));
    }
    let seen = Seen {
        method,
        scheme: scheme.to_owned(),
        host,
        path,
        headers: lines,
        client,
    };
    reply(&screen.decide(seen, None, "forward_auth").await)
}

/// The answer a proxy understands: 200 to pass, the refusal status to refuse; the
/// decision headers on both.
fn reply(decision: &Decision) -> Response {
    let mut response = if decision.outcome.passes() {
        StatusCode::OK.into_response()
    } else {
        let status = StatusCode::from_u16(decision.status).unwrap_or(StatusCode::FORBIDDEN);
        let body = serde_json::json!({
            "error": "refused by the gateway's bot defense",
            "decision": decision.outcome.word(),
        });
        (status, axum::Json(body)).into_response()
    };
    for (name, value) in &decision.headers {
        if let Ok(v) = HeaderValue::from_str(value) {
            response.headers_mut().insert(*name, v);
        }
    }
    response
}

//! Envoy's external authorization (`envoy.service.auth.v3.Authorization/Check`), on the
//! gRPC port beside the gateway's own services: to a mesh it is one more gRPC service,
//! with health and reflection.
//!
//! What Envoy tells, and what becomes of it:
//! - `attributes.request.http`: `method`, `scheme`, `host` and `path` (with its query)
//!   make the URL; the headers are `header_map` when Envoy sends it (in order, values
//!   byte for byte), else the `headers` map, whose names Envoy lowercased and whose
//!   repeated lines it folded into one comma-joined value: their order, their case and
//!   the line breaks between repeats are lost, which the vendor's documentation says
//!   costs some accuracy. Pseudo-headers (`:authority`, ...) are not sent on.
//! - `attributes.source.address`: the client's address, unless it is a trusted proxy
//!   (`GATEWAY_EDGE_TRUSTED_PROXIES`), which `x-forwarded-for` may then name.
//!
//! A pass is `OkHttpResponse` whose headers overwrite any of the same names the client
//! sent, and remove the other `x-fingerprint-*` names; a refusal is
//! `DeniedHttpResponse` with `GATEWAY_EDGE_DENY_STATUS` and a small JSON body. The
//! `google.rpc.Status` is OK for a pass and PERMISSION_DENIED for a refusal, as Envoy
//! expects.

use std::net::IpAddr;

use envoy_types::ext_authz::v3::pb::{
    Authorization, CheckRequest, CheckResponse, DeniedHttpResponse, HeaderAppendAction,
    HeaderValue, HeaderValueOption, HttpResponse, HttpStatus, OkHttpResponse,
};
use envoy_types::pb::envoy::config::core::v3::address;
use envoy_types::pb::google::rpc;
use tonic::{Request, Response, Status};

use super::{Decision, HEADERS, Screen, Seen};

/// `google.rpc.Code.PERMISSION_DENIED`.
const PERMISSION_DENIED: i32 = 7;

#[tonic::async_trait]
impl Authorization for Screen {
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let started = std::time::Instant::now();
        let check = request.into_inner();
        let attributes = check.attributes.unwrap_or_default();
        let http = attributes.request.and_then(|r| r.http).unwrap_or_default();
        // The scope first: most requests of a mesh are not for /login.
        if !self.in_scope(&http.host, &http.path) {
            return Ok(Response::new(answer(&self.out_of_scope(started))));
        }
        let peer = attributes
            .source
            .and_then(|s| s.address)
            .and_then(|a| a.address)
            .and_then(|a| match a {
                address::Address::SocketAddress(s) => s.address.parse::<IpAddr>().ok(),
                _ => None,
            });
        let mut headers: Vec<(String, String)> = match http.header_map {
            Some(map) if !map.headers.is_empty() => map
                .headers
                .into_iter()
                .map(|h| {
                    let value = if h.raw_value.is_empty() {
                        h.value
                    } else {
                        String::from_utf8_lossy(&h.raw_value).into_owned()
                    };
                    (h.key, value)
                })
                .collect(),
            _ => {
                let mut lines: Vec<(String, String)> = http.headers.into_iter().collect();
                // A map has no order: a fixed one keeps the vendor's input stable.
                lines.sort();
                lines
            }
        };
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let client = self.client_ip(peer, get("x-forwarded-for"), None);
        headers.retain(|(n, _)| !n.starts_with(':'));
        let scheme = if http.scheme.is_empty() {
            "https".to_owned()
        } else {
            http.scheme
        };
        let seen = Seen {
            method: http.method,
            scheme,
            host: http.host,
            path: http.path,
            headers,
            client,
        };
        let deadline = crate::resilience::current_deadline();
        let decision = self.decide(seen, deadline, "ext_authz").await;
        Ok(Response::new(answer(&decision)))
    }
}

fn header(name: &str, value: &str) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: name.to_owned(),
            value: value.to_owned(),
            raw_value: Vec::new(),
        }),
        // Replaces whatever the client sent under the name.
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..Default::default()
    }
}

/// The `CheckResponse` of a decision.
pub fn answer(decision: &Decision) -> CheckResponse {
    let headers: Vec<HeaderValueOption> =
        decision.headers.iter().map(|(n, v)| header(n, v)).collect();
    if decision.outcome.passes() {
        let headers_to_remove = HEADERS
            .iter()
            .filter(|h| !decision.headers.iter().any(|(n, _)| n == *h))
            .map(|h| (*h).to_owned())
            .collect();
        return CheckResponse {
            status: Some(rpc::Status::default()),
            http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
                headers,
                headers_to_remove,
                ..Default::default()
            })),
            dynamic_metadata: None,
        };
    }
    let mut headers = headers;
    headers.push(header("content-type", "application/json"));
    let body = serde_json::json!({
        "error": "refused by the gateway's bot defense",
        "decision": decision.outcome.word(),
    })
    .to_string();
    CheckResponse {
        status: Some(rpc::Status {
            code: PERMISSION_DENIED,
            message: "refused by the edge policy".to_owned(),
            details: Vec::new(),
        }),
        http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus {
                code: i32::from(decision.status),
            }),
            headers,
            body,
        })),
        dynamic_metadata: None,
    }
}

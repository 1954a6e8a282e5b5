//! The audit trail: one JSON line for every mutation (UpdateEvent, DeleteVisitorData,
//! SetRule, SetVerdictReasonOverride), allowed or denied, written to a stream of its own
//! (`GATEWAY_AUDIT_LOG`: `stderr`, the default, apart from the logs on stdout; or a
//! file, appended to), so that "who deleted visitor X, and when" is answered from it
//! alone:
//!
//! ```json
//! {"audit":"fingerprint-gateway","time":"2026-11-26T17:03:23.123Z","caller":"privacy-desk",
//!  "identity_source":"token","rpc":"fingerprint.gateway.v1.FingerprintService/DeleteVisitorData",
//!  "targets":{"visitor_id":"Xa9…"},"decision":"allowed","code":"Ok",
//!  "upstream_request_id":null,"trace_id":"4bf92f35…",
//!  "span_id":"00f067aa…"}
//! ```
//!
//! Records hold ids and names, never credentials (a bearer token is never kept, only
//! the caller it belongs to).

use std::{io::Write, sync::Mutex, time::SystemTime};

use prost::Message;
use serde_json::{Value as Json, json};

use crate::proto::v1::{
    DeleteVisitorDataRequest, SetRuleRequest, SetVerdictReasonOverrideRequest, UpdateEventRequest,
};
use crate::rpc::Rpc;

/// An upstream's request id for a write, set by the service in the response's
/// extensions for the audit record.
#[derive(Debug, Clone)]
pub struct UpstreamRequestId(pub String);

/// One record.
#[derive(Debug)]
pub struct Record<'a> {
    /// The caller's name (`anonymous` without one).
    pub caller: &'a str,
    /// How the identity was established.
    pub identity_source: &'a str,
    /// The RPC.
    pub rpc: Rpc,
    /// The ids the call targets.
    pub targets: Json,
    /// `allowed` or `denied`.
    pub decision: &'static str,
    /// The call's status code.
    pub code: tonic::Code,
    /// The upstream's request id, when it gave one.
    pub upstream_request_id: Option<&'a str>,
    /// The call's trace id, when it has one.
    pub trace_id: Option<String>,
    /// The call's span id, when it has a span.
    pub span_id: Option<String>,
}

/// The trail one server writes to.
pub struct Audit {
    out: Mutex<Box<dyn Write + Send>>,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Audit")
    }
}

impl Audit {
    /// A trail to `stderr`, `stdout` or a file path (created, appended to).
    pub fn open(destination: &str) -> std::io::Result<Self> {
        let out: Box<dyn Write + Send> = match destination {
            "stderr" => Box::new(std::io::stderr()),
            "stdout" => Box::new(std::io::stdout()),
            path => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
        };
        Ok(Self {
            out: Mutex::new(out),
        })
    }

    /// Writes one record, as one line.
    pub fn write(&self, record: &Record<'_>) {
        let line = json!({
            "audit": "fingerprint-gateway",
            "time": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            "caller": record.caller,
            "identity_source": record.identity_source,
            "rpc": record.rpc.path().trim_start_matches('/'),
            "targets": record.targets,
            "decision": record.decision,
            "code": format!("{:?}", record.code),
            "upstream_request_id": record.upstream_request_id,
            "trace_id": record.trace_id,
            "span_id": record.span_id,
        });
        let mut text = line.to_string();
        text.push('\n');
        // One write per line, under the lock: concurrent records never interleave.
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        if out
            .write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            tracing::error!("an audit record could not be written");
        }
    }
}

/// The ids a mutation targets, from its request message (the bytes inside its gRPC
/// frame); `{}` when it does not decode.
pub fn targets(rpc: Rpc, message: &[u8]) -> Json {
    let cut = |s: &str| s.chars().take(256).collect::<String>();
    match rpc {
        Rpc::UpdateEvent => UpdateEventRequest::decode(message)
            .map(|r| json!({"event_id": cut(&r.event_id)}))
            .unwrap_or_else(|_| json!({})),
        Rpc::DeleteVisitorData => DeleteVisitorDataRequest::decode(message)
            .map(|r| json!({"visitor_id": cut(&r.visitor_id)}))
            .unwrap_or_else(|_| json!({})),
        Rpc::SetRule => SetRuleRequest::decode(message)
            .map(|r| match &r.identifier {
                Some(id) => {
                    let (kind, value) = crate::upstream::stytch::identifier(id);
                    json!({ kind: cut(value), "action": r.action })
                }
                None => json!({}),
            })
            .unwrap_or_else(|_| json!({})),
        Rpc::SetVerdictReasonOverride => SetVerdictReasonOverrideRequest::decode(message)
            .map(|r| json!({"verdict_reason": cut(&r.verdict_reason), "override_action": r.override_action}))
            .unwrap_or_else(|_| json!({})),
        _ => json!({}),
    }
}

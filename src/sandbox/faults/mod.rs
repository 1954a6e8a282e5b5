//! Fault rules: the sandbox misbehaving on cue, per endpoint, so that users can rehearse
//! a vendor's bad day and the tests can prove what callers see.
//!
//! A rule matches requests by path prefix (and method, if given). Each matching request
//! first waits `latency_ms`; then, with probability `rate`, the fault is applied:
//!
//! | `fault` | the answer |
//! |---|---|
//! | `none` | the normal answer (latency only) |
//! | `status` | `status` (default 503) with the upstream's JSON error body |
//! | `rate_limit` | 429 with `Retry-After: retry_after_s` (default 1) |
//! | `html` | `status` (default 502) with an HTML page, as a failing proxy sends |
//! | `garbage` | 200, `application/json`, a body that is not JSON |
//! | `truncated` | the normal answer with its JSON cut in half (a whole HTTP message) |
//! | `reset` | the normal answer's headers and half its body, then the connection drops |
//! | `drip` | the normal answer, 64 bytes every `interval_ms` (default 100) |
//! | `oversized` | 200 with a JSON object of `bytes` bytes (default 32 MiB), streamed |
//! | `outage` | nothing: the request is held unanswered (a blackholed vendor) until the rules change or the sandbox stops |
//!
//! `times` (optional) retires the rule after that many applications. The first matching
//! rule wins. Rules are set at start-up (`sandbox --faults`, or `GATEWAY_SANDBOX_FAULTS`
//! for the embedded sandbox) and at run time on the sandbox's own port:
//!
//! - `GET /__sandbox/faults`: the rules, with how often each matched and applied;
//! - `PUT /__sandbox/faults`: replace all rules with a JSON list;
//! - `POST /__sandbox/faults`: add one rule (a JSON object);
//! - `DELETE /__sandbox/faults`: remove every rule (held `outage` requests are then
//!   answered normally).
//!
//! Control requests are neither counted, recorded nor subject to the rules.

use std::{sync::Mutex, time::Duration};

use axum::{
    Json,
    body::{Body, Bytes},
    extract::State,
    http::{HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::AppState;

mod answers;

pub(super) use answers::{reshape, standalone};

/// Where the rules are read and set.
pub const CONTROL_PATH: &str = "/__sandbox/faults";

/// At most this many rules are kept.
const MAX_RULES: usize = 64;
/// How many bytes a `drip` answer sends per interval.
const DRIP_CHUNK: usize = 64;
/// The largest normal answer a rule reshapes.
const MAX_RESHAPED: usize = 64 << 20;

/// What a rule does to the requests it applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// The normal answer (added latency only).
    #[default]
    None,
    /// An error status with the upstream's JSON error body.
    Status,
    /// 429 with `Retry-After`.
    RateLimit,
    /// An error status with an HTML page.
    Html,
    /// 200 with a body that is not JSON.
    Garbage,
    /// The normal answer, its JSON cut in half.
    Truncated,
    /// Half the normal answer's body, then the connection drops.
    Reset,
    /// The normal answer, sent slowly.
    Drip,
    /// A body larger than the gateway accepts.
    Oversized,
    /// No answer at all.
    Outage,
}

/// One rule, as written in JSON.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// Path prefix the rule matches ("" matches every path).
    #[serde(default)]
    pub path: String,
    /// Method the rule matches (any if absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// What happens.
    #[serde(default)]
    pub fault: FaultKind,
    /// Chance that a matching request gets the fault, 0 to 1.
    #[serde(default = "always")]
    pub rate: f64,
    /// Added latency for every matching request, in milliseconds.
    #[serde(default)]
    pub latency_ms: u64,
    /// HTTP status (`status`, `html`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// `Retry-After` seconds (`rate_limit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_s: Option<u64>,
    /// Body size (`oversized`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Milliseconds between chunks (`drip`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<u64>,
    /// Retire the rule after this many applications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u64>,
}

/// A rule with its counters, as listed.
#[derive(Debug, Serialize)]
struct Listed<'a> {
    #[serde(flatten)]
    rule: &'a FaultRule,
    matched: u64,
    applied: u64,
}

/// The rules in force.
#[derive(Debug)]
pub struct Faults {
    rules: Mutex<Vec<Active>>,
    /// Bumped on every change and at shutdown: held `outage` requests wake on it.
    changed: tokio::sync::watch::Sender<u64>,
}

#[derive(Debug)]
struct Active {
    rule: FaultRule,
    method: Option<Method>,
    matched: u64,
    applied: u64,
}

/// What one request gets.
#[derive(Debug, Clone, Copy)]
pub(super) struct Decision {
    pub latency: Duration,
    pub fault: Option<Applied>,
}

/// A fault to apply, with its parameters resolved.
#[derive(Debug, Clone, Copy)]
pub(super) enum Applied {
    Status(StatusCode),
    RateLimit(u64),
    Html(StatusCode),
    Garbage,
    Truncated,
    Reset,
    Drip(Duration),
    Oversized(u64),
    Outage,
}

fn always() -> f64 {
    1.0
}

// === impl FaultRule ===

impl FaultRule {
    /// Checks the rule, naming the first field that is wrong.
    pub fn check(&self) -> Result<(), String> {
        if !(self.path.is_empty() || self.path.starts_with('/')) || self.path.len() > 256 {
            return Err(format!(
                "path must be empty or start with '/', at most 256 bytes: {:?}",
                self.path.chars().take(64).collect::<String>()
            ));
        }
        if let Some(m) = &self.method
            && !matches!(m.as_str(), "GET" | "POST" | "PUT" | "PATCH" | "DELETE")
        {
            return Err(format!(
                "method must be GET, POST, PUT, PATCH or DELETE: {:?}",
                m.chars().take(16).collect::<String>()
            ));
        }
        if !(0.0..=1.0).contains(&self.rate) {
            return Err(format!("rate must be between 0 and 1: {}", self.rate));
        }
        if self.latency_ms > 600_000 {
            return Err("latency_ms must be at most 600000".to_owned());
        }
        if self.times == Some(0) {
            return Err("times must be at least 1 when given".to_owned());
        }
        let only = |given: bool, field: &str, kinds: &str| {
            if given {
                Err(format!("{field} applies only to {kinds}"))
            } else {
                Ok(())
            }
        };
        let error_status = matches!(self.fault, FaultKind::Status | FaultKind::Html);
        only(
            self.status.is_some() && !error_status,
            "status",
            "fault status and html",
        )?;
        only(
            self.retry_after_s.is_some() && self.fault != FaultKind::RateLimit,
            "retry_after_s",
            "fault rate_limit",
        )?;
        only(
            self.bytes.is_some() && self.fault != FaultKind::Oversized,
            "bytes",
            "fault oversized",
        )?;
        only(
            self.interval_ms.is_some() && self.fault != FaultKind::Drip,
            "interval_ms",
            "fault drip",
        )?;
        if let Some(s) = self.status
            && !(400..=599).contains(&s)
        {
            return Err(format!("status must be 400 to 599: {s}"));
        }
        if self.retry_after_s.is_some_and(|s| s > 86_400) {
            return Err("retry_after_s must be at most 86400".to_owned());
        }
        if self.bytes.is_some_and(|b| b > 1 << 30) {
            return Err("bytes must be at most 1073741824".to_owned());
        }
        if self.interval_ms.is_some_and(|i| i == 0 || i > 60_000) {
            return Err("interval_ms must be 1 to 60000".to_owned());
        }
        Ok(())
    }

    fn applied(&self) -> Option<Applied> {
        let status = |default: StatusCode| {
            self.status
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or(default)
        };
        Some(match self.fault {
            FaultKind::None => return None,
            FaultKind::Status => Applied::Status(status(StatusCode::SERVICE_UNAVAILABLE)),
            FaultKind::RateLimit => Applied::RateLimit(self.retry_after_s.unwrap_or(1)),
            FaultKind::Html => Applied::Html(status(StatusCode::BAD_GATEWAY)),
            FaultKind::Garbage => Applied::Garbage,
            FaultKind::Truncated => Applied::Truncated,
            FaultKind::Reset => Applied::Reset,
            FaultKind::Drip => {
                Applied::Drip(Duration::from_millis(self.interval_ms.unwrap_or(100)))
            }
            FaultKind::Oversized => Applied::Oversized(self.bytes.unwrap_or(32 << 20)),
            FaultKind::Outage => Applied::Outage,
        })
    }
}

/// Reads start-up rules: a JSON list, or `@FILE` naming a file that holds one.
pub fn load_rules(text: &str) -> Result<Vec<FaultRule>, String> {
    match text.strip_prefix('@') {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read fault rules from {path}: {e}"))?;
            parse_rules(&text)
        }
        None => parse_rules(text),
    }
}

/// Parses and checks a JSON list of rules (the start-up form).
pub fn parse_rules(text: &str) -> Result<Vec<FaultRule>, String> {
    let rules: Vec<FaultRule> =
        serde_json::from_str(text).map_err(|e| format!("fault rules are not valid: {e}"))?;
    check_all(&rules)?;
    Ok(rules)
}

fn check_all(rules: &[FaultRule]) -> Result<(), String> {
    if rules.len() > MAX_RULES {
        return Err(format!("at most {MAX_RULES} fault rules"));
    }
    for (i, rule) in rules.iter().enumerate() {
        rule.check().map_err(|e| format!("fault rule {i}: {e}"))?;
    }
    Ok(())
}

// === impl Faults ===

impl Default for Faults {
    fn default() -> Self {
        Self {
            rules: Mutex::new(Vec::new()),
            changed: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl Faults {
    /// Replaces every rule (checked first; nothing changes on error).
    pub fn set(&self, rules: Vec<FaultRule>) -> Result<(), String> {
        check_all(&rules)?;
        if let Ok(mut r) = self.rules.lock() {
            *r = rules.into_iter().map(Active::new).collect();
        }
        self.bump();
        Ok(())
    }

    /// Adds one rule after the others.
    pub fn add(&self, rule: FaultRule) -> Result<(), String> {
        rule.check()?;
        let Ok(mut r) = self.rules.lock() else {
            return Err("sandbox state lost".to_owned());
        };
        if r.len() >= MAX_RULES {
            return Err(format!("at most {MAX_RULES} fault rules"));
        }
        r.push(Active::new(rule));
        drop(r);
        self.bump();
        Ok(())
    }

    /// Removes every rule.
    pub fn clear(&self) {
        if let Ok(mut r) = self.rules.lock() {
            r.clear();
        }
        self.bump();
    }

    /// Wakes every held request (the sandbox is stopping).
    pub(super) fn release(&self) {
        self.bump();
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// What a request gets, if a rule matches it.
    pub(super) fn decide(&self, method: &Method, path: &str) -> Option<Decision> {
        let mut rules = self.rules.lock().ok()?;
        let i = rules.iter().position(|a| {
            path.starts_with(a.rule.path.as_str()) && a.method.as_ref().is_none_or(|m| m == method)
        })?;
        let active = &mut rules[i];
        active.matched += 1;
        let latency = Duration::from_millis(active.rule.latency_ms);
        let fires = active.rule.rate >= 1.0 || fastrand::f64() < active.rule.rate;
        let fault = if fires { active.rule.applied() } else { None };
        if fires {
            active.applied += 1;
            if active.rule.times.is_some_and(|t| active.applied >= t) {
                rules.remove(i);
            }
        }
        Some(Decision { latency, fault })
    }

    /// Completes when the rules change or the sandbox stops.
    pub(super) async fn changed(&self) {
        let mut rx = self.changed.subscribe();
        rx.mark_unchanged();
        let _ = rx.changed().await;
    }

    fn listed(&self) -> serde_json::Value {
        let rules = self.rules.lock();
        let listed: Vec<Listed<'_>> = rules
            .as_ref()
            .map(|r| {
                r.iter()
                    .map(|a| Listed {
                        rule: &a.rule,
                        matched: a.matched,
                        applied: a.applied,
                    })
                    .collect()
            })
            .unwrap_or_default();
        json!(listed)
    }
}

impl Active {
    fn new(rule: FaultRule) -> Self {
        // Checked before: the method is one of five tokens.
        let method = rule
            .method
            .as_deref()
            .and_then(|m| Method::from_bytes(m.as_bytes()).ok());
        Self {
            rule,
            method,
            matched: 0,
            applied: 0,
        }
    }
}

// === the control endpoint ===

/// `GET /__sandbox/faults`.
pub(super) async fn list(State(state): State<AppState>) -> Response {
    Json(state.control.faults.listed()).into_response()
}

/// `PUT /__sandbox/faults`: replaces every rule.
pub(super) async fn replace(State(state): State<AppState>, body: Bytes) -> Response {
    let rules = match serde_json::from_slice::<Vec<FaultRule>>(&body) {
        Ok(r) => r,
        Err(e) => return refused(&format!("expected a JSON list of fault rules: {e}")),
    };
    match state.control.faults.set(rules) {
        Ok(()) => list(State(state)).await,
        Err(e) => refused(&e),
    }
}

/// `POST /__sandbox/faults`: adds one rule.
pub(super) async fn add(State(state): State<AppState>, body: Bytes) -> Response {
    let rule = match serde_json::from_slice::<FaultRule>(&body) {
        Ok(r) => r,
        Err(e) => return refused(&format!("expected a JSON fault rule: {e}")),
    };
    match state.control.faults.add(rule) {
        Ok(()) => list(State(state)).await,
        Err(e) => refused(&e),
    }
}

/// `DELETE /__sandbox/faults`: removes every rule.
pub(super) async fn clear(State(state): State<AppState>) -> Response {
    state.control.faults.clear();
    list(State(state)).await
}

fn refused(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": message.chars().take(512).collect::<String>() })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_checked_field_by_field() {
        let ok = parse_rules(
            r#"[{"path": "/v4/events", "fault": "status", "status": 500, "rate": 0.3},
                {"fault": "rate_limit", "retry_after_s": 2, "times": 3},
                {"path": "/v1/", "method": "POST", "latency_ms": 200}]"#,
        )
        .unwrap();
        assert_eq!(ok.len(), 3);
        assert_eq!(ok[2].fault, FaultKind::None);
        for (bad, says) in [
            (r#"[{"fault": "status", "status": 200}]"#, "status must be"),
            (
                r#"[{"fault": "drip", "status": 500}]"#,
                "status applies only",
            ),
            (r#"[{"rate": 1.5}]"#, "rate must be"),
            (r#"[{"path": "v4"}]"#, "path must be"),
            (r#"[{"method": "TRACE"}]"#, "method must be"),
            (r#"[{"fault": "explode"}]"#, "unknown variant"),
            (r#"[{"falut": "status"}]"#, "unknown field"),
            (r#"[{"times": 0}]"#, "times must be"),
        ] {
            let e = parse_rules(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn first_match_wins_and_times_retires_a_rule() {
        let faults = Faults::default();
        faults
            .set(
                parse_rules(
                    r#"[{"path": "/v4/events/", "method": "GET", "fault": "status", "times": 2},
                    {"path": "/v4/", "fault": "garbage"}]"#,
                )
                .unwrap(),
            )
            .unwrap();
        let pick = |m: &Method, p: &str| faults.decide(m, p).and_then(|d| d.fault);
        assert!(
            matches!(pick(&Method::GET, "/v4/events/e1"), Some(Applied::Status(s)) if s == 503)
        );
        assert!(matches!(
            pick(&Method::PATCH, "/v4/events/e1"),
            Some(Applied::Garbage)
        ));
        assert!(matches!(
            pick(&Method::GET, "/v4/events/e1"),
            Some(Applied::Status(_))
        ));
        // Retired after two: the next rule now matches.
        assert!(matches!(
            pick(&Method::GET, "/v4/events/e1"),
            Some(Applied::Garbage)
        ));
        assert!(
            faults
                .decide(&Method::POST, "/v1/fingerprint/lookup")
                .is_none()
        );
    }

    #[test]
    fn rate_applies_a_fault_to_about_that_share() {
        let faults = Faults::default();
        faults
            .set(parse_rules(r#"[{"fault": "status", "rate": 0.3}]"#).unwrap())
            .unwrap();
        let hits = (0..10_000)
            .filter(|_| {
                faults
                    .decide(&Method::GET, "/v4/events/x")
                    .and_then(|d| d.fault)
                    .is_some()
            })
            .count();
        assert!((2_700..3_300).contains(&hits), "{hits}");
    }
}

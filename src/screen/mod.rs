//! Bot defense at the mesh's edge: a decision for each request a proxy asks about,
//! from fingerprint.com's analysis of it (`POST /v4/edge`) and the edge policy.
//!
//! Two doors lead here: Envoy's external authorization over gRPC ([`envoy`]), and the
//! forward-auth endpoint of nginx, Caddy and Traefik over HTTP ([`forward`]). Both turn
//! what they are told into a [`Seen`] request and answer with the [`Decision`]:
//!
//! 1. outside the policy's scope (host and path prefix), it passes at once, with no
//!    vendor call;
//! 2. otherwise the request's metadata goes to `/v4/edge` (credential headers blanked
//!    by the client), within the budget (`GATEWAY_EDGE_BUDGET`, never past the
//!    caller's own deadline);
//! 3. the first rule that matches the analysis decides; the default otherwise;
//! 4. with no analysis in time (slow or failing vendor, open breaker, spent quota),
//!    `GATEWAY_EDGE_ON_FAILURE` decides: pass marked `unavailable`, or refuse.
//!
//! Every decision sets the `x-fingerprint-*` headers ([`HEADERS`]) on the request the
//! app receives, replacing any the client sent, so that they cannot be forged.

pub mod envoy;
pub mod forward;
pub mod policy;

use std::{
    net::IpAddr,
    path::PathBuf,
    sync::{Arc, RwLock},
    time::{Duration, SystemTime},
};

use serde_json::json;
use tokio::time::Instant;

use crate::audit::{Audit, Record};
use crate::cidr::Cidr;
use crate::config::EdgeConfig;
use crate::metrics::Metrics;
use crate::proto::v1::AnalyzeRequestResponse;
use crate::rpc::Rpc;
use crate::secrets::Live;
use crate::upstream::fingerprint::{EdgeQuery, FingerprintClient};
use policy::{Action, Policy};

/// The headers a decision sets on the request the app receives (every one is removed
/// from what the client sent first).
pub const HEADERS: [&str; 7] = [
    DECISION,
    "x-fingerprint-event-id",
    "x-fingerprint-bot-category",
    "x-fingerprint-bot-identity",
    "x-fingerprint-bot-name",
    "x-fingerprint-bot-provider",
    "x-fingerprint-rule",
];

/// The decision's own header: `allow`, `deny`, `flag`, `out_of_scope` or `unavailable`.
pub const DECISION: &str = "x-fingerprint-decision";

/// How a decision came out (the `outcome` label of `fpgw_edge_decisions_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A rule or the default let it pass.
    Allow,
    /// A rule or the default refused it.
    Deny,
    /// A rule let it pass, marked.
    Flag,
    /// Outside the scope: passed with no analysis.
    OutOfScope,
    /// No analysis in time; passed (`GATEWAY_EDGE_ON_FAILURE=open`).
    FailOpen,
    /// No analysis in time; refused (`GATEWAY_EDGE_ON_FAILURE=closed`).
    FailClosed,
}

/// The request a proxy asks about, as the gateway understood it.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// Its method.
    pub method: String,
    /// `http` or `https`.
    pub scheme: String,
    /// Its host (`Host` or `:authority`), maybe with a port.
    pub host: String,
    /// Its path and query.
    pub path: String,
    /// Its header lines, in order, as far as the proxy kept them.
    pub headers: Vec<(String, String)>,
    /// The client's address, when known.
    pub client: Option<IpAddr>,
}

/// What to do with a request.
#[derive(Debug, Clone)]
pub struct Decision {
    /// How it came out.
    pub outcome: Outcome,
    /// The headers to set on the request the app receives, or on the refusal.
    pub headers: Vec<(&'static str, String)>,
    /// The HTTP status of a refusal.
    pub status: u16,
}

/// The decision-maker both doors share.
#[derive(Clone)]
pub struct Screen {
    inner: Arc<Inner>,
}

struct Inner {
    client: Arc<Live<Option<Arc<FingerprintClient>>>>,
    config: EdgeConfig,
    file: PathBuf,
    policy: RwLock<Arc<Policy>>,
    loaded: RwLock<Option<SystemTime>>,
    metrics: Arc<Metrics>,
    audit: Arc<Audit>,
}

// === impl Outcome ===

impl Outcome {
    /// Its index in [`crate::metrics::EDGE_OUTCOMES`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The word of the decision header.
    pub fn word(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::Flag => "flag",
            Self::OutOfScope => "out_of_scope",
            Self::FailOpen | Self::FailClosed => "unavailable",
        }
    }

    /// Whether the request goes on to the app.
    pub fn passes(self) -> bool {
        !matches!(self, Self::Deny | Self::FailClosed)
    }
}

// === impl Screen ===

impl Screen {
    /// The screen of `config`'s policy file (read now: a broken one fails start-up);
    /// `None` when no policy file is set.
    pub fn new(
        config: &EdgeConfig,
        client: Arc<Live<Option<Arc<FingerprintClient>>>>,
        metrics: Arc<Metrics>,
        audit: Arc<Audit>,
    ) -> Result<Option<Self>, String> {
        let Some(file) = config.policy_file.clone() else {
            return Ok(None);
        };
        let at = crate::secrets::modified(&file);
        let text = std::fs::read_to_string(&file)
            .map_err(|e| format!("GATEWAY_EDGE_POLICY_FILE {}: {e}", file.display()))?;
        let policy = Policy::parse(&text)
            .map_err(|e| format!("GATEWAY_EDGE_POLICY_FILE {}: {e}", file.display()))?;
        Ok(Some(Self {
            inner: Arc::new(Inner {
                client,
                config: config.clone(),
                file,
                policy: RwLock::new(Arc::new(policy)),
                loaded: RwLock::new(at),
                metrics,
                audit,
            }),
        }))
    }

    /// Re-reads the policy file when it changed (or `force`); a broken file keeps the
    /// policy in force.
    pub fn reload(&self, force: bool) {
        let inner = &self.inner;
        let at = crate::secrets::modified(&inner.file);
        let last = inner.loaded.read().map(|l| *l).unwrap_or(None);
        if !force && at == last {
            return;
        }
        match std::fs::read_to_string(&inner.file)
            .map_err(|e| e.to_string())
            .and_then(|t| Policy::parse(&t))
        {
            Ok(policy) => {
                tracing::info!(file = %inner.file.display(), rules = policy.rule_count(), "edge policy reloaded");
                if let Ok(mut p) = inner.policy.write() {
                    *p = Arc::new(policy);
                }
            }
            Err(e) => {
                tracing::error!(file = %inner.file.display(), error = %e, "edge policy file refused; the previous policy stays in force");
            }
        }
        if let Ok(mut l) = inner.loaded.write() {
            *l = at;
        }
    }

    /// Watches the policy file: every second, and on SIGHUP.
    pub fn watch(&self) -> tokio::task::JoinHandle<()> {
        let screen = self.clone();
        tokio::spawn(async move {
            let mut recheck = crate::secrets::Recheck::new();
            loop {
                let forced = recheck.next().await;
                screen.reload(forced);
            }
        })
    }

    fn policy(&self) -> Arc<Policy> {
        self.inner
            .policy
            .read()
            .map(|p| p.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// Whether a request to `host` and `path` is analysed at all: the cheap first look
    /// a door takes before reading the rest of a request.
    pub fn in_scope(&self, host: &str, path: &str) -> bool {
        self.policy().in_scope(host, path)
    }

    /// The decision for a request outside the scope, counted.
    pub fn out_of_scope(&self, started: std::time::Instant) -> Decision {
        self.finish(
            started,
            Decision {
                outcome: Outcome::OutOfScope,
                headers: vec![(DECISION, Outcome::OutOfScope.word().to_owned())],
                status: 200,
            },
        )
    }

    /// The client address of a request that came from `peer`: the peer's own, unless
    /// the peer is a trusted proxy, which may name it (`x-real-ip`, or the nearest
    /// untrusted address of `x-forwarded-for`).
    pub fn client_ip(
        &self,
        peer: Option<IpAddr>,
        forwarded_for: Option<&str>,
        real_ip: Option<&str>,
    ) -> Option<IpAddr> {
        let trusted = |ip: IpAddr| {
            self.inner
                .config
                .trusted_proxies
                .iter()
                .any(|c: &Cidr| c.contains(ip))
        };
        let peer = peer.map(canonical);
        match peer {
            Some(p) if trusted(p) => {}
            other => return other,
        }
        if let Some(ip) = real_ip.and_then(|v| v.trim().parse::<IpAddr>().ok()) {
            return Some(canonical(ip));
        }
        let hops: Vec<IpAddr> = forwarded_for
            .unwrap_or_default()
            .split(',')
            .filter_map(|h| h.trim().parse::<IpAddr>().ok())
            .map(canonical)
            .collect();
        hops.iter()
            .rev()
            .find(|ip| !trusted(**ip))
            .or(hops.first())
            .copied()
            .or(peer)
    }

    /// Whether `peer` is a proxy whose forwarded request headers are believed.
    pub fn trusts(&self, peer: Option<IpAddr>) -> bool {
        peer.map(canonical).is_some_and(|p| {
            self.inner
                .config
                .trusted_proxies
                .iter()
                .any(|c| c.contains(p))
        })
    }

    /// The decision for `seen`, within the budget (and `deadline`, the caller's own).
    pub async fn decide(
        &self,
        seen: Seen,
        deadline: Option<Instant>,
        door: &'static str,
    ) -> Decision {
        let started = std::time::Instant::now();
        let policy = self.policy();
        if !policy.in_scope(&seen.host, &seen.path) {
            return self.out_of_scope(started);
        }
        let span = tracing::info_span!(
            "edge.decision",
            edge.door = door,
            edge.outcome = tracing::field::Empty,
            edge.rule = tracing::field::Empty,
        );
        let budget_end = Instant::now() + self.inner.config.budget;
        let end = deadline.map_or(budget_end, |d| d.min(budget_end));
        let analysis =
            tracing::Instrument::instrument(self.analyze(&seen, end), span.clone()).await;
        let decision = match analysis {
            Ok(a) => {
                let verdict = policy.judge(&seen.host, &seen.path, &a);
                let outcome = match verdict.action {
                    Action::Allow => Outcome::Allow,
                    Action::Deny => Outcome::Deny,
                    Action::Flag => Outcome::Flag,
                };
                let mut headers = vec![
                    (DECISION, outcome.word().to_owned()),
                    ("x-fingerprint-event-id", header_text(&a.event_id)),
                ];
                if let Some(bot) = &a.bot_info {
                    for (name, value) in [
                        ("x-fingerprint-bot-category", &bot.category),
                        ("x-fingerprint-bot-identity", &bot.identity),
                        ("x-fingerprint-bot-name", &bot.name),
                        ("x-fingerprint-bot-provider", &bot.provider),
                    ] {
                        if let Some(v) = value {
                            headers.push((name, header_text(v)));
                        }
                    }
                }
                if let Some(rule) = verdict.rule {
                    headers.push(("x-fingerprint-rule", rule.to_owned()));
                    span.record("edge.rule", rule);
                }
                if outcome == Outcome::Deny {
                    self.audit(&seen, &a.event_id, verdict.rule, door, &span);
                }
                Decision {
                    outcome,
                    headers,
                    status: self.inner.config.deny_status,
                }
            }
            Err(why) => {
                tracing::debug!(parent: &span, reason = %why, "no analysis within the budget");
                let outcome = if self.inner.config.fail_closed {
                    Outcome::FailClosed
                } else {
                    Outcome::FailOpen
                };
                if outcome == Outcome::FailClosed {
                    self.audit(&seen, "", None, door, &span);
                }
                Decision {
                    outcome,
                    headers: vec![(DECISION, outcome.word().to_owned())],
                    status: self.inner.config.deny_status,
                }
            }
        };
        span.record("edge.outcome", decision.outcome.word());
        self.finish(started, decision)
    }

    fn finish(&self, started: std::time::Instant, decision: Decision) -> Decision {
        self.inner
            .metrics
            .edge_decision(decision.outcome.index(), started.elapsed().as_secs_f64());
        decision
    }

    /// The vendor's analysis of `seen`, or why there is none by `end`.
    async fn analyze(&self, seen: &Seen, end: Instant) -> Result<AnalyzeRequestResponse, String> {
        let client = (*self.inner.client.get())
            .clone()
            .ok_or("fingerprint.com is not configured")?;
        let (ipv4_address, ipv6_address) = match seen.client {
            Some(IpAddr::V4(v4)) => (Some(v4.to_string()), None),
            Some(IpAddr::V6(v6)) => (None, Some(v6.to_string())),
            None => return Err("the client's address is unknown".to_owned()),
        };
        let query = EdgeQuery {
            headers: seen.headers.clone(),
            method: seen.method.clone(),
            url: format!("{}://{}{}", seen.scheme, seen.host, seen.path),
            ipv4_address,
            ipv6_address,
            linked_id: None,
            tags: None,
        };
        query.check().map_err(|e| e.to_string())?;
        let call = crate::resilience::within(end, client.analyze(&query));
        // The budget is a hard bound: a vendor that does not answer is left behind.
        match tokio::time::timeout_at(end, call).await {
            Ok((Ok(json), _)) => Ok(crate::convert::edge::from_v4(json)),
            Ok((Err(e), _)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "fingerprint.com did not answer within the budget ({:?})",
                self.inner.config.budget.min(Duration::from_secs(3600))
            )),
        }
    }

    fn audit(
        &self,
        seen: &Seen,
        event_id: &str,
        rule: Option<&str>,
        door: &'static str,
        span: &tracing::Span,
    ) {
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        let ids = crate::telemetry::sampled_ids(&span.context());
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        self.inner.audit.write(&Record {
            caller: "edge",
            identity_source: door,
            rpc: Rpc::Check,
            targets: json!({
                "host": cut(&seen.host),
                "path": cut(&seen.path),
                "method": cut(&seen.method),
                "client_ip": seen.client.map(|c| c.to_string()),
                "event_id": (!event_id.is_empty()).then(|| cut(event_id)),
                "rule": rule,
            }),
            decision: "denied",
            code: tonic::Code::PermissionDenied,
            upstream_request_id: None,
            trace_id: ids.map(|(t, _)| hex(&t)),
            span_id: ids.map(|(_, s)| hex(&s)),
        });
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// A vendor's word, made safe for a header value: visible ASCII and spaces only.
fn header_text(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(256)
        .collect()
}

/// At most 256 bytes of a request's text, for the audit trail.
fn cut(s: &str) -> String {
    let mut end = s.len().min(256);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

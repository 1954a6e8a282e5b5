//! Prometheus metrics: RPCs, the cache, and upstream calls, served as OpenMetrics text
//! on `GATEWAY_METRICS_LISTEN` (`GET /metrics`).
//!
//! Every label comes from a closed set: the contract's RPCs, health and reflection, and
//! one `unknown` for any other path, so callers cannot create series. Recording a call
//! allocates nothing once its series exists. The registry belongs to one server
//! (`serve` builds it), so tests read exact counts.

use std::{
    fmt::Write as _,
    future::Future,
    sync::{Arc, OnceLock},
    time::Instant,
};

use axum::{
    Router,
    http::{HeaderMap, header},
    response::IntoResponse,
    routing::get,
};
use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder, text::encode},
    metrics::{
        counter::Counter,
        exemplar::HistogramWithExemplars,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};
use tokio::net::TcpListener;

use crate::error::Upstream;
use crate::rpc::Rpc;

mod labels;

pub use labels::Method;
use labels::*;

type Seconds<L> = Family<L, Histogram, fn() -> Histogram>;

/// A latency histogram whose buckets keep the trace of a sampled call that fell in them.
type Traced = HistogramWithExemplars<TraceExemplar>;
type TracedSeconds<L> = Family<L, Traced, fn() -> Traced>;

/// The trace of one sampled call, kept as the OpenMetrics exemplar of the latency bucket
/// it fell in, so that a slow bucket on a dashboard leads to a slow call's trace.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TraceExemplar {
    trace_id: Hex<16>,
    span_id: Hex<8>,
}

/// Bytes written as lower-case hex, as W3C trace context writes ids.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct Hex<const N: usize>([u8; N]);

/// One server's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    rpcs: Family<RpcLabels, Counter>,
    rpc_seconds: TracedSeconds<RpcName>,
    cache: Family<CacheLabels, Counter>,
    upstream: Family<UpstreamLabels, Counter>,
    upstream_seconds: TracedSeconds<UpstreamName>,
    retries: Family<UpstreamName, Counter>,
    not_sent: Family<NotSentLabels, Counter>,
    circuit_state: Family<UpstreamName, Gauge>,
    circuit_transitions: Family<TransitionLabels, Counter>,
    shed: Counter,
    in_flight: Gauge,
    redis_up: Gauge,
    caller_rpcs: Family<CallerLabels, Counter>,
    cache_bytes: Gauge,
    cache_entries: Gauge,
    connections_open: Gauge,
    connections_accepted: Counter,
    redis_seconds: Seconds<OpLabels>,
    redis_errors: Family<OpLabels, Counter>,
    invalidation_delay: Histogram,
    edge_decisions: Vec<Counter>,
    edge_seconds: Histogram,
    // The label sets are closed: each series' handle is looked up in its family once,
    // then kept in a slot, so recording is an index and an atomic add.
    rpc_slots: Box<[OnceLock<Counter>]>,
    rpc_seconds_slots: Box<[OnceLock<Traced>]>,
    cache_slots: Box<[OnceLock<Counter>]>,
}

/// The outcomes of an edge decision, the `outcome` label's closed set.
pub const EDGE_OUTCOMES: [&str; 6] = [
    "allow",
    "deny",
    "flag",
    "out_of_scope",
    "fail_open",
    "fail_closed",
];

/// How many distinct [`Method`]s and gRPC codes there are.
const METHODS: usize = Rpc::ALL.len() + 4;
const CODES: usize = 17;
const CACHE_RESULTS: usize = CACHE_OUTCOMES.len();

fn slots<T>(n: usize) -> Box<[OnceLock<T>]> {
    (0..n).map(|_| OnceLock::new()).collect()
}

fn latency() -> Histogram {
    Histogram::new(latency_buckets())
}

fn traced_latency() -> Traced {
    Traced::new(latency_buckets())
}

fn latency_buckets() -> impl Iterator<Item = f64> {
    // 0.5 ms to ~16 s.
    exponential_buckets(0.0005, 2.0, 16)
}

// === impl Metrics ===

impl Metrics {
    /// A fresh registry with the gateway's metrics.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("fpgw");
        let rpcs = Family::<RpcLabels, Counter>::default();
        let rpc_seconds: TracedSeconds<RpcName> = Family::new_with_constructor(traced_latency);
        let cache = Family::<CacheLabels, Counter>::default();
        let upstream = Family::<UpstreamLabels, Counter>::default();
        let upstream_seconds: TracedSeconds<UpstreamName> =
            Family::new_with_constructor(traced_latency);
        registry.register(
            "rpc",
            "gRPC calls answered, by RPC and status code",
            rpcs.clone(),
        );
        registry.register(
            "rpc_duration_seconds",
            "time to answer a gRPC call",
            rpc_seconds.clone(),
        );
        registry.register(
            "cache",
            "cached read RPCs by outcome: hit (memory), shared_hit (Redis), coalesced (an identical call's fetch), miss, bypass, stale",
            cache.clone(),
        );
        registry.register(
            "upstream_requests",
            "upstream HTTP calls, by upstream and HTTP status",
            upstream.clone(),
        );
        registry.register(
            "upstream_duration_seconds",
            "time for one upstream HTTP call",
            upstream_seconds.clone(),
        );
        let retries = Family::<UpstreamName, Counter>::default();
        registry.register(
            "upstream_retries",
            "upstream attempts after a call's first (within the retry budget)",
            retries.clone(),
        );
        let not_sent = Family::<NotSentLabels, Counter>::default();
        registry.register(
            "upstream_not_sent",
            "upstream attempts not made: circuit_open, quota (no room within the deadline), budget (retry budget spent), deadline (no time left)",
            not_sent.clone(),
        );
        let circuit_state = Family::<UpstreamName, Gauge>::default();
        registry.register(
            "upstream_circuit_state",
            "each upstream's circuit breaker: 0 closed, 1 half-open, 2 open",
            circuit_state.clone(),
        );
        let circuit_transitions = Family::<TransitionLabels, Counter>::default();
        registry.register(
            "upstream_circuit_transitions",
            "circuit breaker state changes, by the state entered",
            circuit_transitions.clone(),
        );
        let shed = Counter::default();
        registry.register(
            "rpc_shed",
            "calls refused at once because GATEWAY_MAX_IN_FLIGHT calls were in flight",
            shed.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "rpc_in_flight",
            "calls the services are working on (cache hits, health and reflection not counted)",
            in_flight.clone(),
        );
        let caller_rpcs = Family::<CallerLabels, Counter>::default();
        registry.register(
            "caller_rpc",
            "gRPC calls of callers the policy names, by caller, RPC and status code (the callers are the policy's, a closed set)",
            caller_rpcs.clone(),
        );
        let cache_bytes = Gauge::default();
        registry.register(
            "cache_bytes",
            "what the in-memory cache's entries occupy, as weighed against GATEWAY_CACHE_MAX_BYTES",
            cache_bytes.clone(),
        );
        let cache_entries = Gauge::default();
        registry.register(
            "cache_entries",
            "entries in the in-memory cache, stale ones included",
            cache_entries.clone(),
        );
        let connections_open = Gauge::default();
        registry.register(
            "connections_open",
            "client connections open (at most GATEWAY_MAX_CONNECTIONS)",
            connections_open.clone(),
        );
        let connections_accepted = Counter::default();
        registry.register(
            "connections_accepted",
            "client connections accepted (connections recycled by GATEWAY_MAX_CONNECTION_AGE come back here)",
            connections_accepted.clone(),
        );
        let redis_up = Gauge::default();
        registry.register(
            "redis_up",
            "1 while the shared cache's Redis answers; 0 while it does not, or when GATEWAY_REDIS_URL is unset",
            redis_up.clone(),
        );
        let redis_seconds: Seconds<OpLabels> = Family::new_with_constructor(latency);
        registry.register(
            "redis_operation_duration_seconds",
            "time for one Redis operation, by operation",
            redis_seconds.clone(),
        );
        let redis_errors = Family::<OpLabels, Counter>::default();
        registry.register(
            "redis_errors",
            "Redis operations that failed or timed out, by operation (the call went on without Redis)",
            redis_errors.clone(),
        );
        let invalidation_delay = latency();
        registry.register(
            "invalidation_delay_seconds",
            "from a write's invalidation being published by one replica to its arrival here",
            invalidation_delay.clone(),
        );
        let edge_family = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "edge_decisions",
            "edge bot-defense decisions (Envoy ext_authz and forward-auth), by outcome: allow, deny, flag, out_of_scope, fail_open, fail_closed",
            edge_family.clone(),
        );
        let edge_decisions = EDGE_OUTCOMES
            .iter()
            .map(|o| {
                edge_family
                    .get_or_create(&OutcomeLabels { outcome: Word(o) })
                    .clone()
            })
            .collect();
        let edge_seconds = latency();
        registry.register(
            "edge_decision_duration_seconds",
            "time to take one edge decision, the vendor's analysis included",
            edge_seconds.clone(),
        );
        for upstream in [Upstream::Fingerprint, Upstream::Stytch] {
            let name = UpstreamName {
                upstream: UpstreamLabel(upstream),
            };
            // Both breakers start closed, and show so from the first scrape.
            circuit_state.get_or_create(&name).set(0);
            // Counters of rare events exist from the start, so `rate()` sees them rise
            // from zero and dashboards find them before the first one.
            let _ = retries.get_or_create(&name);
            for reason in NOT_SENT_REASONS {
                let _ = not_sent.get_or_create(&NotSentLabels {
                    upstream: UpstreamLabel(upstream),
                    reason: Word(reason),
                });
            }
        }
        for op in REDIS_OPS {
            let _ = redis_errors.get_or_create(&OpLabels { op: Word(op) });
        }
        let metrics = Self {
            registry,
            rpcs,
            rpc_seconds,
            cache,
            upstream,
            upstream_seconds,
            retries,
            not_sent,
            circuit_state,
            circuit_transitions,
            shed,
            in_flight,
            redis_up,
            caller_rpcs,
            cache_bytes,
            cache_entries,
            connections_open,
            connections_accepted,
            redis_seconds,
            redis_errors,
            invalidation_delay,
            edge_decisions,
            edge_seconds,
            rpc_slots: slots(METHODS * CODES),
            rpc_seconds_slots: slots(METHODS),
            cache_slots: slots(Rpc::ALL.len() * CACHE_RESULTS),
        };
        // What any made-up path is answered with exists from the start, so the first
        // such call adds no series either.
        let _ = metrics.rpc_counter(Method::Unknown, tonic::Code::Unimplemented);
        let _ = metrics.rpc_histogram(Method::Unknown);
        metrics
    }

    /// Counts one edge decision; `outcome` is an index into [`EDGE_OUTCOMES`].
    pub fn edge_decision(&self, outcome: usize, seconds: f64) {
        if let Some(c) = self.edge_decisions.get(outcome) {
            c.inc();
        }
        self.edge_seconds.observe(seconds);
    }

    /// Counts one call of a caller the policy names.
    pub fn caller_rpc(&self, caller: &str, method: Method, code: tonic::Code) {
        self.caller_rpcs
            .get_or_create(&CallerLabels {
                caller: caller.to_owned(),
                rpc: method,
                code: CodeLabel(code),
            })
            .inc();
    }

    /// Records one Redis operation (`op` from a closed set in the code).
    pub fn redis(&self, op: &'static str, started: Instant, ok: bool) {
        let labels = OpLabels { op: Word(op) };
        self.redis_seconds
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
        if !ok {
            self.redis_errors.get_or_create(&labels).inc();
        }
    }

    /// The in-memory cache's size.
    pub fn cache_size(&self, bytes: u64, entries: u64) {
        self.cache_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        self.cache_entries
            .set(i64::try_from(entries).unwrap_or(i64::MAX));
    }

    /// A connection was accepted.
    pub fn connection_opened(&self) {
        self.connections_accepted.inc();
        self.connections_open.inc();
    }

    /// A connection closed.
    pub fn connection_closed(&self) {
        self.connections_open.dec();
    }

    /// Whether Redis answers.
    pub fn redis_up(&self, up: bool) {
        self.redis_up.set(i64::from(up));
    }

    /// The delay of one invalidation from another replica.
    pub fn invalidation_delay(&self, seconds: f64) {
        self.invalidation_delay.observe(seconds);
    }

    /// Counts one answered RPC; a sampled call's trace becomes its bucket's exemplar.
    pub fn rpc(
        &self,
        method: Method,
        code: tonic::Code,
        started: Instant,
        trace: Option<TraceExemplar>,
    ) {
        if let Some(counter) = self.rpc_counter(method, code) {
            counter.inc();
        }
        if let Some(histogram) = self.rpc_histogram(method) {
            histogram.observe(started.elapsed().as_secs_f64(), trace, None);
        }
    }

    /// The counter of `method` answered with `code`, created on first use.
    fn rpc_counter(&self, method: Method, code: tonic::Code) -> Option<&Counter> {
        let code_index = (code as usize).min(CODES - 1);
        let slot = self.rpc_slots.get(method.index() * CODES + code_index)?;
        Some(slot.get_or_init(|| {
            self.rpcs
                .get_or_create(&RpcLabels {
                    rpc: method,
                    code: CodeLabel(code),
                })
                .clone()
        }))
    }

    /// The latency histogram of `method`, created on first use.
    fn rpc_histogram(&self, method: Method) -> Option<&Traced> {
        let slot = self.rpc_seconds_slots.get(method.index())?;
        Some(slot.get_or_init(|| {
            self.rpc_seconds
                .get_or_create(&RpcName { rpc: method })
                .clone()
        }))
    }

    /// Counts one cache outcome (`hit`, `miss` or `bypass`).
    pub fn cache(&self, rpc: Rpc, outcome: &'static str) {
        let Some(result) = CACHE_OUTCOMES.iter().position(|o| *o == outcome) else {
            return;
        };
        if let Some(slot) = self.cache_slots.get(rpc.index() * CACHE_RESULTS + result) {
            slot.get_or_init(|| {
                self.cache
                    .get_or_create(&CacheLabels {
                        rpc: RpcShort(rpc),
                        result: CacheResult(outcome),
                    })
                    .clone()
            })
            .inc();
        }
    }

    /// Counts one upstream call (`status` = None when no answer arrived); a sampled
    /// call's trace becomes its bucket's exemplar.
    pub fn upstream(
        &self,
        upstream: Upstream,
        status: Option<u16>,
        started: Instant,
        trace: Option<TraceExemplar>,
    ) {
        self.upstream
            .get_or_create(&UpstreamLabels {
                upstream: UpstreamLabel(upstream),
                status: HttpStatus(status),
            })
            .inc();
        self.upstream_seconds
            .get_or_create(&UpstreamName {
                upstream: UpstreamLabel(upstream),
            })
            .observe(started.elapsed().as_secs_f64(), trace, None);
    }

    /// Counts one retry sent to `upstream`.
    pub fn retry(&self, upstream: Upstream) {
        self.retries
            .get_or_create(&UpstreamName {
                upstream: UpstreamLabel(upstream),
            })
            .inc();
    }

    /// Counts one attempt not made, and why (`circuit_open`, `quota`, `budget`,
    /// `deadline`).
    pub fn not_sent(&self, upstream: Upstream, reason: &'static str) {
        self.not_sent
            .get_or_create(&NotSentLabels {
                upstream: UpstreamLabel(upstream),
                reason: Word(reason),
            })
            .inc();
    }

    /// Records a breaker entering `state` (`closed`, `half_open` or `open`).
    pub fn circuit(&self, upstream: Upstream, state: &'static str) {
        let value = match state {
            "open" => 2,
            "half_open" => 1,
            _ => 0,
        };
        self.circuit_state
            .get_or_create(&UpstreamName {
                upstream: UpstreamLabel(upstream),
            })
            .set(value);
        self.circuit_transitions
            .get_or_create(&TransitionLabels {
                upstream: UpstreamLabel(upstream),
                to: Word(state),
            })
            .inc();
    }

    /// Counts one call refused by the in-flight cap.
    pub fn shed(&self) {
        self.shed.inc();
    }

    /// The gauge of calls in flight.
    pub fn in_flight(&self) -> &Gauge {
        &self.in_flight
    }

    /// The OpenMetrics text exposition, exemplars included.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "metrics: encoding failed");
        }
        out
    }

    /// The exposition as the scraper asked for it (`Accept`): OpenMetrics, with
    /// exemplars, when it names `application/openmetrics-text`; else the Prometheus
    /// text format (0.0.4), which has no exemplars.
    pub fn exposition(&self, accept: Option<&str>) -> (&'static str, String) {
        let text = self.render();
        if accept.is_some_and(|a| a.contains("application/openmetrics-text")) {
            return (
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                text,
            );
        }
        (
            "text/plain; version=0.0.4; charset=utf-8",
            without_exemplars(&text),
        )
    }
}

/// OpenMetrics text as Prometheus text: no exemplars (` # {…} value` after a sample,
/// outside quotes), no `# EOF`, no `# UNIT`.
fn without_exemplars(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if line.starts_with('#') {
            out.push_str(line);
        } else {
            let mut quoted = false;
            let mut escaped = false;
            let mut end = line.len();
            for (i, c) in line.char_indices() {
                match c {
                    _ if escaped => escaped = false,
                    '\\' if quoted => escaped = true,
                    '"' => quoted = !quoted,
                    '#' if !quoted && line[..i].ends_with(' ') => {
                        end = i - 1;
                        break;
                    }
                    _ => {}
                }
            }
            out.push_str(&line[..end]);
        }
        out.push('\n');
    }
    out
}

// === impl TraceExemplar ===

impl TraceExemplar {
    /// The exemplar of a call in trace `trace_id`, span `span_id` (W3C trace context's
    /// 16 and 8 bytes).
    pub fn new(trace_id: [u8; 16], span_id: [u8; 8]) -> Self {
        Self {
            trace_id: Hex(trace_id),
            span_id: Hex(span_id),
        }
    }
}

impl<const N: usize> EncodeLabelValue for Hex<N> {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        for byte in self.0 {
            write!(encoder, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let app = Router::new().route(
        "/metrics",
        get(move |headers: HeaderMap| async move {
            let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
            let (content_type, text) = metrics.exposition(accept);
            ([(header::CONTENT_TYPE, content_type)], text).into_response()
        }),
    );
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(error = %e, "metrics server failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_paths_share_one_series() {
        let metrics = Metrics::new();
        for i in 0..500 {
            let method = Method::from_path(&format!("/made.Up/Method{i}"));
            metrics.rpc(method, tonic::Code::Unimplemented, Instant::now(), None);
        }
        let text = metrics.render();
        assert_eq!(text.matches("fpgw_rpc_total{").count(), 1, "{text}");
        assert!(text.contains(r#"fpgw_rpc_total{rpc="unknown",code="Unimplemented"} 500"#));
    }
}

//! Logs and traces: `tracing` with an OpenTelemetry layer, OTLP export when configured.
//!
//! The two are filtered apart: `RUST_LOG` decides which log lines are written, and
//! only that; the sampler (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`) decides
//! which calls are traced, and only that. A log line written inside a traced call
//! carries the call's `trace_id` and `span_id` (JSON fields, or a suffix in text), so
//! logs and traces join.
//!
//! Whether an RPC gets spans is decided up front, from the caller's `traceparent` and
//! the sampler, before any span attribute is built: an RPC that will not be traced
//! costs no span at all (a cache hit then touches tracing not once).

use std::{fmt, sync::OnceLock};

use opentelemetry::{
    Context,
    propagation::TextMapPropagator,
    trace::{TraceContextExt, TracerProvider as _},
};
use opentelemetry_sdk::{
    Resource,
    propagation::TraceContextPropagator,
    trace::{IdGenerator, RandomIdGenerator, Sampler, SdkTracerProvider},
};
use tracing::{Event, Level, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{
    EnvFilter, Layer as _,
    filter::{FilterExt as _, Targets, filter_fn},
    fmt::{
        FmtContext, FormatEvent, FormatFields,
        format::{Format, Writer},
    },
    layer::SubscriberExt,
    registry::LookupSpan,
    util::SubscriberInitExt,
};

use crate::config::{LogFormat, RootSampling, TelemetryConfig, TraceSampler};

/// Flushes and stops trace export when dropped.
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

/// A telemetry setup failure.
#[derive(Debug, thiserror::Error)]
#[error("telemetry: {0}")]
pub struct TelemetryError(String);

/// What gets traced: decided once at start-up.
#[derive(Debug, Clone, Copy)]
struct Policy {
    exporting: bool,
    sampler: TraceSampler,
}

/// Without `init` (tests, embedders): nothing is exported.
const NOT_EXPORTING: Policy = Policy {
    exporting: false,
    sampler: TraceSampler {
        parent_based: true,
        root: RootSampling::Always,
    },
};

static POLICY: OnceLock<Policy> = OnceLock::new();

/// Installs the global subscriber and propagator.
///
/// Without an exporter, only calls that arrive with a `traceparent` get spans: their
/// context flows on to the upstream, and caller-sampled ones are recorded. When
/// exporting, the sampler follows `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`
/// (default `parentbased_always_on`); the root decision is taken before a span exists,
/// so a call sampled out builds none.
pub fn init(config: &TelemetryConfig) -> Result<TelemetryGuard, TelemetryError> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let resource = Resource::builder()
        .with_service_name(config.service_name.clone())
        .build();
    let exporting = config.otlp_endpoint.is_some();
    let _ = POLICY.set(Policy {
        exporting,
        sampler: config.sampler,
    });
    // Roots reach the SDK only when `traces` already sampled them in: the SDK keeps them.
    let sampler = match (exporting, config.sampler.parent_based) {
        (false, _) => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        (true, true) => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        (true, false) => Sampler::AlwaysOn,
    };
    let mut builder = SdkTracerProvider::builder()
        .with_resource(resource)
        .with_sampler(sampler);
    if let Some(endpoint) = &config.otlp_endpoint {
        use opentelemetry_otlp::WithExportConfig;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.clone())
            .build()
            .map_err(|e| TelemetryError(e.to_string()))?;
        builder = builder.with_batch_exporter(exporter);
    }
    let provider = builder.build();
    let tracer = provider.tracer("fingerprint-gateway");
    // Spans: the gateway's own, whatever the log level. Each option turned off below
    // would cost time on every span for an attribute nobody queries (code location,
    // thread, target, two `Instant`s per poll for busy/idle time), or, for context
    // activation, a thread-local push and pop on every poll: the gateway reads a
    // span's context only to inject `traceparent` and to keep an exemplar, and asks
    // for it then.
    let spans = Targets::new().with_target(env!("CARGO_CRATE_NAME"), Level::INFO);
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_tracked_inactivity(false)
        .with_context_activation(false)
        .with_filter(spans);
    // Logs: `RUST_LOG`, and nothing else; and events only. A span the log layer
    // takes has its fields formatted when it opens, for the log lines it might hold
    // (about 5,000 instructions a call at `info`, in bench/profile.sh), while a line
    // names its call by `trace_id` and `span_id` instead.
    let logs = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info"))
        .and(filter_fn(|metadata| metadata.is_event()));
    let registry = tracing_subscriber::registry().with(otel);
    let installed = match config.log_format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .event_format(TraceIds {
                        inner: Format::default(),
                        json: false,
                    })
                    .with_filter(logs),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .event_format(TraceIds {
                        inner: Format::default().json().flatten_event(true),
                        json: true,
                    })
                    .with_filter(logs),
            )
            .try_init(),
    };
    installed.map_err(|e| TelemetryError(e.to_string()))?;
    Ok(TelemetryGuard { provider })
}

/// A log line's format, plus the trace and span ids of the traced call it is written in.
struct TraceIds<F> {
    inner: F,
    /// The inner format writes one JSON object (flattened): the ids become members.
    json: bool,
}

impl<S, N, F> FormatEvent<S, N> for TraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // Read before the inner format borrows the span's extensions.
        let Some((trace_id, span_id)) = current_ids() else {
            return self.inner.format_event(ctx, writer, event);
        };
        let mut line = String::with_capacity(256);
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        let line = line.trim_end_matches('\n');
        match line.strip_suffix('}').filter(|_| self.json) {
            Some(object) => writeln!(
                writer,
                "{object},\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\"}}"
            ),
            None => writeln!(writer, "{line} trace_id={trace_id} span_id={span_id}"),
        }
    }
}

/// The trace and span ids of the current span, when it belongs to a trace.
fn current_ids() -> Option<(opentelemetry::trace::TraceId, opentelemetry::trace::SpanId)> {
    let span = tracing::Span::current();
    if span.is_none() {
        return None;
    }
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context
        .is_valid()
        .then(|| (span_context.trace_id(), span_context.span_id()))
}

/// The trace and span ids (W3C bytes) of a span context that is sampled: what a latency
/// exemplar points at. `None` for a context that will not reach a trace backend.
pub fn sampled_ids(context: &Context) -> Option<([u8; 16], [u8; 8])> {
    let span = context.span();
    let span_context = span.span_context();
    (span_context.is_valid() && span_context.is_sampled()).then(|| {
        (
            span_context.trace_id().to_bytes(),
            span_context.span_id().to_bytes(),
        )
    })
}

/// Whether a call with this remote parent (from `traceparent`) gets spans.
pub fn traces(parent: Option<&Context>) -> bool {
    let policy = POLICY.get().copied().unwrap_or(NOT_EXPORTING);
    let has_parent = parent.is_some_and(|cx| cx.span().span_context().is_valid());
    if has_parent && (policy.sampler.parent_based || !policy.exporting) {
        // The caller's trace continues (the SDK follows its sampled flag).
        return true;
    }
    if !policy.exporting {
        return false;
    }
    match policy.sampler.root {
        RootSampling::Always => true,
        RootSampling::Never => false,
        RootSampling::Ratio(ratio) => {
            let id = u128::from_be_bytes(RandomIdGenerator::default().new_trace_id().to_bytes());
            // The low 64 bits are uniform: keep `ratio` of them.
            ((id as u64) >> 1) < (ratio.clamp(0.0, 1.0) * (1u64 << 63) as f64) as u64
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Err(e) = self.provider.shutdown() {
            eprintln!("telemetry: flushing spans failed: {e}");
        }
    }
}

/// The span of one RPC named `name` (`package.Service/Method`, from the closed set, so
/// a made-up path cannot mint span names), child of the caller's `traceparent` when
/// there is one; none at all for a call that will not be traced, so it costs nothing.
pub fn rpc_span(headers: &http::HeaderMap, name: &'static str) -> tracing::Span {
    // A static name: looking it up hashes it without parsing it first.
    static TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");
    let parent = headers.contains_key(&TRACEPARENT).then(|| {
        TraceContextPropagator::new().extract(&opentelemetry_http::HeaderExtractor(headers))
    });
    if !traces(parent.as_ref()) {
        return tracing::Span::none();
    }
    // The span name is `package.Service/Method` (the semantic conventions' RPC span
    // name), so the recommended `rpc.service` and `rpc.method` attributes would only
    // repeat it: each string attribute costs an allocation when the span opens, a copy
    // when it is exported and a decode at the collector, on every call.
    let span = tracing::info_span!(
        "rpc",
        otel.name = name,
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.grpc.status_code = tracing::field::Empty,
        upstream.attempts = tracing::field::Empty,
        enduser.id = tracing::field::Empty,
    );
    if let Some(parent) = parent {
        let _ = span.set_parent(parent);
    }
    span
}

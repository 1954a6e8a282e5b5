//! Logs and traces: `tracing` with an OpenTelemetry layer, OTLP export when configured.
//!
//! Whether an RPC gets spans is decided up front, from the caller's `traceparent` and
//! the sampler, before any span attribute is built: an RPC that will not be traced
//! costs no span at all (a cache hit then touches tracing not once).

use std::sync::OnceLock;

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
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{EnvFilter, layer::SubscriberExt, util::SubscriberInitExt};

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
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let otel = tracing_opentelemetry::layer().with_tracer(tracer);
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    let installed = match config.log_format {
        LogFormat::Text => registry.with(tracing_subscriber::fmt::layer()).try_init(),
        LogFormat::Json => registry
            .with(tracing_subscriber::fmt::layer().json().flatten_event(true))
            .try_init(),
    };
    installed.map_err(|e| TelemetryError(e.to_string()))?;
    Ok(TelemetryGuard { provider })
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
    let (service, method) = name.split_once('/').unwrap_or((name, ""));
    let span = tracing::info_span!(
        "rpc",
        otel.name = name,
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
        rpc.grpc.status_code = tracing::field::Empty,
        upstream.attempts = tracing::field::Empty,
        enduser.id = tracing::field::Empty,
    );
    if let Some(parent) = parent {
        let _ = span.set_parent(parent);
    }
    span
}

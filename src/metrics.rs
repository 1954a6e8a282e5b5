//! Prometheus metrics: RPCs, the cache, and upstream calls, served as OpenMetrics text
//! on `GATEWAY_METRICS_LISTEN` (`GET /metrics`).

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, LazyLock},
    task::{Context, Poll},
    time::Instant,
};

use axum::{Router, http::header, response::IntoResponse, routing::get};
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};
use tokio::net::TcpListener;

/// Labels of one RPC outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    /// `package.Service/Method`.
    rpc: String,
    /// gRPC status code name.
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcName {
    rpc: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    rpc: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    upstream: String,
    /// HTTP status, or "error" when no answer arrived.
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamName {
    upstream: String,
}

type Seconds<L> = Family<L, Histogram, fn() -> Histogram>;

/// The process's metrics.
pub struct Metrics {
    registry: Registry,
    rpcs: Family<RpcLabels, Counter>,
    rpc_seconds: Seconds<RpcName>,
    cache: Family<CacheLabels, Counter>,
    upstream: Family<UpstreamLabels, Counter>,
    upstream_seconds: Seconds<UpstreamName>,
}

fn latency() -> Histogram {
    // 0.5 ms to ~16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The process-wide metrics (one registry, like Prometheus' own clients).
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

// === impl Metrics ===

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("fpgw");
        let rpcs = Family::<RpcLabels, Counter>::default();
        let rpc_seconds: Seconds<RpcName> = Family::new_with_constructor(latency);
        let cache = Family::<CacheLabels, Counter>::default();
        let upstream = Family::<UpstreamLabels, Counter>::default();
        let upstream_seconds: Seconds<UpstreamName> = Family::new_with_constructor(latency);
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
            "read RPCs by cache outcome (hit, miss, bypass)",
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
        Self {
            registry,
            rpcs,
            rpc_seconds,
            cache,
            upstream,
            upstream_seconds,
        }
    }

    /// Counts one answered RPC.
    pub fn rpc(&self, rpc: &str, code: tonic::Code, started: Instant) {
        let code = format!("{code:?}");
        self.rpcs
            .get_or_create(&RpcLabels {
                rpc: rpc.to_owned(),
                code,
            })
            .inc();
        self.rpc_seconds
            .get_or_create(&RpcName {
                rpc: rpc.to_owned(),
            })
            .observe(started.elapsed().as_secs_f64());
    }

    /// Counts one cache outcome.
    pub fn cache(&self, rpc: &str, result: &str) {
        self.cache
            .get_or_create(&CacheLabels {
                rpc: rpc.to_owned(),
                result: result.to_owned(),
            })
            .inc();
    }

    /// Counts one upstream call (`status` = None when no answer arrived).
    pub fn upstream(&self, upstream: &str, status: Option<u16>, started: Instant) {
        let status = status.map_or_else(|| "error".to_owned(), |s| s.to_string());
        self.upstream
            .get_or_create(&UpstreamLabels {
                upstream: upstream.to_owned(),
                status,
            })
            .inc();
        self.upstream_seconds
            .get_or_create(&UpstreamName {
                upstream: upstream.to_owned(),
            })
            .observe(started.elapsed().as_secs_f64());
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "metrics: encoding failed");
        }
        out
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown` completes.
pub async fn serve(listener: TcpListener, shutdown: impl Future<Output = ()> + Send + 'static) {
    let app = Router::new().route(
        "/metrics",
        get(|| async {
            (
                [(
                    header::CONTENT_TYPE,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                )],
                METRICS.render(),
            )
                .into_response()
        }),
    );
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(error = %e, "metrics server failed");
    }
}

/// A tower layer that counts and times every gRPC call by its path and status.
#[derive(Clone, Copy, Debug, Default)]
pub struct RpcMetricsLayer;

/// The service [`RpcMetricsLayer`] wraps around the router.
#[derive(Clone, Debug)]
pub struct RpcMetrics<S> {
    inner: S,
}

impl<S> tower::Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcMetrics { inner }
    }
}

impl<S, B, R> tower::Service<http::Request<B>> for RpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let started = Instant::now();
        let rpc: Arc<str> = Arc::from(request.uri().path().trim_start_matches('/'));
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await;
            // Errors raised by handlers travel as `grpc-status` in the headers; a
            // successful unary answer carries it in the trailers, so no header means OK.
            let code = match &response {
                Ok(r) => r
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<i32>().ok())
                    .map_or(tonic::Code::Ok, tonic::Code::from_i32),
                Err(_) => tonic::Code::Unknown,
            };
            METRICS.rpc(&rpc, code, started);
            response
        })
    }
}

//! The one tower layer every gRPC call passes through before the services: it opens
//! the call's span (joined to the caller's `traceparent`), counts and times the call by
//! method and status, and hands cached RPCs to the cache.
//!
//! One layer rather than three keeps the per-call cost to one `Instant`, one path
//! match and one small future; a call that is not cached and not traced allocates
//! nothing here.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use http::{Request, Response};
use tonic::body::Body;

use crate::cache::{
    Cache,
    layer::{BoxFuture, CachedBody},
};
use crate::metrics::{Method, Metrics};

/// Where a handler's error status travels (a trailers-only answer's headers).
static GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");

/// The edge layer: tracing, metrics and the cache, in that order.
#[derive(Clone)]
pub struct EdgeLayer {
    cache: Cache,
    metrics: Arc<Metrics>,
}

/// The service [`EdgeLayer`] wraps around the router.
#[derive(Clone)]
pub struct Edge<S> {
    inner: S,
    cache: Cache,
    metrics: Arc<Metrics>,
}

impl EdgeLayer {
    /// The layer over `cache`, recording into `metrics`.
    pub fn new(cache: Cache, metrics: Arc<Metrics>) -> Self {
        Self { cache, metrics }
    }
}

impl<S> tower::Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Edge {
            inner,
            cache: self.cache.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

impl<S> tower::Service<Request<Body>> for Edge<S>
where
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<CachedBody>;
    type Error = Infallible;
    type Future = EdgeFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let started = Instant::now();
        let method = Method::from_path(request.uri().path());
        let span = crate::telemetry::rpc_span(request.headers(), method.name());
        let _entered = span.enter();
        let call = match method {
            Method::Rpc(rpc) if self.cache.caches(rpc) => {
                // The ready service serves this call; a clone takes its place.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                Call::Cached {
                    future: crate::cache::layer::call(
                        inner,
                        request,
                        rpc,
                        self.cache.clone(),
                        self.metrics.clone(),
                    ),
                }
            }
            _ => Call::Direct {
                future: self.inner.call(request),
            },
        };
        drop(_entered);
        EdgeFuture {
            call,
            span,
            method,
            started,
            metrics: self.metrics.clone(),
        }
    }
}

pin_project_lite::pin_project! {
    /// The call's own future: the service's, or the cache's.
    #[project = CallProj]
    pub enum Call<F> {
        /// Not cached: the service's future, unboxed.
        Direct { #[pin] future: F },
        /// Cached: the cache's (small, boxed) future.
        Cached { future: BoxFuture<Result<Response<CachedBody>, Infallible>> },
    }
}

pin_project_lite::pin_project! {
    /// A call being answered, inside its span; counted when its response headers are
    /// ready.
    pub struct EdgeFuture<F> {
        #[pin]
        call: Call<F>,
        span: tracing::Span,
        method: Method,
        started: Instant,
        metrics: Arc<Metrics>,
    }
}

impl<F> Future for EdgeFuture<F>
where
    F: Future<Output = Result<Response<Body>, Infallible>>,
{
    type Output = Result<Response<CachedBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let response = match this.call.project() {
            CallProj::Direct { future } => {
                std::task::ready!(future.poll(cx)).map(|r| r.map(CachedBody::Inner))
            }
            CallProj::Cached { future } => std::task::ready!(future.as_mut().poll(cx)),
        };
        // Errors raised by handlers travel as `grpc-status` in the headers; a
        // successful unary answer carries it in the trailers, so no header means OK.
        let code = match &response {
            Ok(r) => r
                .headers()
                .get(&GRPC_STATUS)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<i32>().ok())
                .map_or(tonic::Code::Ok, tonic::Code::from_i32),
            Err(never) => match *never {},
        };
        this.metrics.rpc(*this.method, code, *this.started);
        Poll::Ready(response)
    }
}

//! The one tower layer every gRPC call passes through before the services: it opens
//! the call's span (joined to the caller's `traceparent`), counts and times the call by
//! method and status, hands cached RPCs to the cache, and gives every other RPC its
//! deadline and its place among the calls in flight (`GATEWAY_MAX_IN_FLIGHT`; past it,
//! OVERLOADED at once).
//!
//! One layer rather than several keeps the per-call cost to one `Instant`, one path
//! match and one small future; health, reflection and untraced cache hits allocate
//! nothing here beyond that.

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
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::cache::layer::{self, BoxFuture, CachedBody, Serving};
use crate::metrics::{Method, TraceExemplar};
use crate::resilience;

/// Where a handler's error status travels (a trailers-only answer's headers).
static GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");

/// The edge layer: tracing, metrics and the cache, in that order.
#[derive(Clone)]
pub struct EdgeLayer {
    serving: Arc<Serving>,
}

/// The service [`EdgeLayer`] wraps around the router.
#[derive(Clone)]
pub struct Edge<S> {
    inner: S,
    serving: Arc<Serving>,
}

impl EdgeLayer {
    /// The layer over what every call shares.
    pub fn new(serving: Arc<Serving>) -> Self {
        Self { serving }
    }
}

impl<S> tower::Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Edge {
            inner,
            serving: self.serving.clone(),
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
        let mut caller = None;
        let call = match method {
            Method::Rpc(rpc) => {
                // The ready service serves this call; a clone takes its place.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                let serving = self.serving.clone();
                let mut request = request;
                // Who calls, whether they may, and their own limits.
                let identity = serving.auth.as_ref().map(|auth| {
                    let peer = request
                        .extensions()
                        .get::<crate::tls::PeerInfo>()
                        .and_then(|p| p.remote)
                        .map(|a| a.ip());
                    let tls = request
                        .extensions()
                        .get::<crate::tls::PeerInfo>()
                        .and_then(|p| p.identity.clone());
                    auth.identify(request.headers(), peer, tls.as_deref())
                });
                caller = identity
                    .as_ref()
                    .and_then(|i| i.caller.as_ref())
                    .map(|c| c.name.clone());
                let verdict = match (&serving.auth, &identity) {
                    (Some(auth), Some(identity)) => {
                        span.record("enduser.id", identity.name());
                        auth.authorize(identity, rpc).and_then(|()| {
                            identity
                                .caller
                                .as_ref()
                                .map_or(Ok(None), |c| c.admit().map(Some))
                        })
                    }
                    _ => Ok(None),
                };
                let future = if rpc.is_mutation() {
                    audited(inner, request, serving, rpc, identity, verdict)
                } else {
                    match verdict {
                        Err(refused) => {
                            let response = layer::refuse(&refused);
                            Box::pin(async move { Ok(response) })
                        }
                        Ok(slot) => {
                            if let Some(identity) = identity {
                                request.extensions_mut().insert(identity);
                            }
                            let future = if serving.cache.caches(rpc) {
                                layer::call(inner, request, rpc, serving)
                            } else {
                                direct(inner, request, serving)
                            };
                            match slot {
                                None => future,
                                // The caller's place is held until the answer's body
                                // ends: a stream holds it for its whole life.
                                Some(slot) => Box::pin(async move {
                                    Ok(future.await?.map(|body| body.holding_caller(slot)))
                                }),
                            }
                        }
                    }
                };
                Call::Served { future }
            }
            // Health and reflection: never bounded, never cached.
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
            serving: self.serving.clone(),
            caller,
        }
    }
}

pin_project_lite::pin_project! {
    /// The call's own future: the service's, or the cache's.
    #[project = CallProj]
    pub enum Call<F> {
        /// Health and reflection: the service's future, unboxed.
        Direct { #[pin] future: F },
        /// An RPC: the cache's or [`direct`]'s (small, boxed) future.
        Served { future: BoxFuture<Result<Response<CachedBody>, Infallible>> },
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
        serving: Arc<Serving>,
        caller: Option<Arc<str>>,
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
                std::task::ready!(future.poll(cx)).map(|r| r.map(CachedBody::service))
            }
            CallProj::Served { future } => std::task::ready!(future.as_mut().poll(cx)),
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
        // A sampled call's trace becomes its latency bucket's exemplar.
        let trace = if this.span.is_none() {
            None
        } else {
            crate::telemetry::sampled_ids(&this.span.context())
                .map(|(trace_id, span_id)| TraceExemplar::new(trace_id, span_id))
        };
        this.serving
            .metrics
            .rpc(*this.method, code, *this.started, trace);
        if let Some(caller) = this.caller.as_deref() {
            this.serving.metrics.caller_rpc(caller, *this.method, code);
        }
        if !this.span.is_none() {
            this.span.record("rpc.grpc.status_code", code as i32);
            if let Ok(r) = &response
                && let Some(n) = r.headers().get("x-upstream-attempts")
                && let Some(n) = n.to_str().ok().and_then(|n| n.parse::<u32>().ok())
            {
                this.span.record("upstream.attempts", i64::from(n));
            }
        }
        Poll::Ready(response)
    }
}

/// A mutation: decided, done (when allowed), and written to the audit trail with its
/// targets and outcome, allowed or not.
fn audited<S>(
    inner: S,
    request: Request<Body>,
    serving: Arc<Serving>,
    rpc: crate::rpc::Rpc,
    identity: Option<crate::auth::Identity>,
    verdict: Result<Option<crate::auth::CallerSlot>, crate::error::Error>,
) -> BoxFuture<Result<Response<CachedBody>, Infallible>>
where
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let (trace_id, span_id) = trace_ids(request.headers());
    Box::pin(async move {
        let (parts, body) = request.into_parts();
        let Some(bytes) = layer::read_body(body).await else {
            return Ok(layer::refuse(&crate::error::Error::RequestTooLarge {
                limit: layer::MAX_REQUEST_BYTES,
            }));
        };
        let targets = layer::single_frame(&bytes)
            .map(|m| crate::audit::targets(rpc, &m))
            .unwrap_or_else(|| serde_json::json!({}));
        let (caller, source) = identity
            .as_ref()
            .map_or((crate::auth::ANONYMOUS, "none"), |i| (i.name(), i.source));
        let caller = caller.to_owned();
        let audit = serving.audit.clone();
        let record = |decision, code, request_id: Option<&str>| {
            audit.write(&crate::audit::Record {
                caller: &caller,
                identity_source: source,
                rpc,
                targets: targets.clone(),
                decision,
                code,
                upstream_request_id: request_id,
                trace_id: trace_id.clone(),
                span_id: span_id.clone(),
            });
        };
        let slot = match verdict {
            Ok(slot) => slot,
            Err(refused) => {
                let response = layer::refuse(&refused);
                record("denied", code_of(&response), None);
                return Ok(response);
            }
        };
        let mut request = Request::from_parts(parts, Body::new(http_body_util::Full::new(bytes)));
        if let Some(identity) = identity.clone() {
            request.extensions_mut().insert(identity);
        }
        let response = direct(inner, request, serving).await?;
        let response = match slot {
            Some(slot) => response.map(|body| body.holding_caller(slot)),
            None => response,
        };
        let request_id = response
            .extensions()
            .get::<crate::audit::UpstreamRequestId>()
            .map(|r| r.0.clone());
        record("allowed", code_of(&response), request_id.as_deref());
        Ok(response)
    })
}

/// The status code of an answer whose headers are ready: a handler's error travels in
/// them; a unary success carries OK in its trailers.
fn code_of<B>(response: &Response<B>) -> tonic::Code {
    response
        .headers()
        .get(&GRPC_STATUS)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map_or(tonic::Code::Ok, tonic::Code::from_i32)
}

/// The call's trace and span ids: its span's, else the caller's `traceparent`'s trace id
/// (a call with no span of its own has no span id).
fn trace_ids(headers: &http::HeaderMap) -> (Option<String>, Option<String>) {
    use opentelemetry::trace::TraceContextExt;
    let context = tracing::Span::current().context();
    let span = context.span();
    let span_context = span.span_context();
    if span_context.is_valid() {
        return (
            Some(span_context.trace_id().to_string()),
            Some(span_context.span_id().to_string()),
        );
    }
    let trace_id = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split('-').nth(1))
        .filter(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_owned);
    (trace_id, None)
}

/// An RPC the cache does not take part in: bounded by the in-flight cap (its place held
/// until its answer's body ends) and run within its deadline.
fn direct<S>(
    mut inner: S,
    request: Request<Body>,
    serving: Arc<Serving>,
) -> BoxFuture<Result<Response<CachedBody>, Infallible>>
where
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    Box::pin(async move {
        let slot = match serving.in_flight.try_take() {
            Ok(slot) => slot,
            Err(refused) => return Ok(layer::refuse(&refused)),
        };
        let deadline = resilience::deadline_of(request.headers(), serving.default_deadline);
        let call = inner.call(request);
        let (response, attempts) = resilience::within(deadline, call).await;
        let mut response = response?;
        layer::mark_attempts(response.headers_mut(), attempts);
        Ok(response.map(|body| CachedBody::service(body).holding_call(slot)))
    })
}

//! The cache in front of the gRPC services (the edge layer calls [`call`] for every
//! cached RPC).
//!
//! It reads the request's single gRPC frame, keys the cache by the RPC and the message
//! bytes, and answers a hit straight from the stored frame: no service, codec or prost
//! work on the hot path. A miss reaches the service once for all identical concurrent
//! calls; the service's answer is collected, kept (a success or a NOT_FOUND), and
//! replayed to every waiter.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, header};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use tonic::{Code, body::Body};

use super::{Answer, Cache, CacheMode, CacheStatus, Entry, Key, Tags};
use crate::error::Error;
use crate::metrics::Metrics;
use crate::rpc::Rpc;

/// Largest request body the layer reads, tonic's own decoding limit.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// An answer body: the service's own, or one replayed from the cache.
#[derive(Debug)]
pub enum CachedBody {
    /// The service's body, untouched.
    Inner(Body),
    /// One gRPC frame (absent for a trailers-only answer), then trailers.
    Replay {
        /// The frame, until it is sent.
        data: Option<Bytes>,
        /// The trailers, until they are sent.
        trailers: Option<HeaderMap>,
    },
}

/// What a miss collected from the service: an answer to replay to every waiter.
#[derive(Debug)]
struct Collected {
    headers: HeaderMap,
    data: Bytes,
    trailers: Option<HeaderMap>,
    tags: Tags,
}

/// A boxed call future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A call to a cached RPC: answered from the cache when it holds the answer and the
/// caller allows, otherwise by `inner` once for every identical concurrent call (its
/// answer is then kept when it is a success or a NOT_FOUND).
pub fn call<S>(
    inner: S,
    request: Request<Body>,
    rpc: Rpc,
    cache: Cache,
    metrics: Arc<Metrics>,
) -> BoxFuture<Result<Response<CachedBody>, Infallible>>
where
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    // The hit path's future holds only the request and the lookup: the service's
    // (large) future exists only on a miss, in a box of its own, so a hit moves and
    // allocates little.
    Box::pin(async move {
        let mode = cache_mode(request.headers());
        if mode == CacheMode::NoStore {
            return pass(inner, request, Some((metrics, rpc))).await;
        }
        let (parts, body) = request.into_parts();
        let Some(body) = read_body(body).await else {
            return Ok(refuse(&Error::RequestTooLarge {
                limit: MAX_REQUEST_BYTES,
            }));
        };
        let Some(message) = single_frame(&body) else {
            // Compressed or several frames: the service decodes it; nothing is kept.
            let request = Request::from_parts(parts, Body::new(Full::new(body)));
            return pass(inner, request, None).await;
        };
        let key = Key::new(rpc, message);
        if mode == CacheMode::Normal
            && let Some(entry) = cache.get(&key).await
        {
            metrics.cache(rpc, CacheStatus::Hit.as_str());
            return Ok(replay(&entry.answer, CacheStatus::Hit));
        }
        let request = Request::from_parts(parts, Body::new(Full::new(body)));
        miss(
            inner,
            request,
            Miss {
                cache,
                metrics,
                key,
                mode,
            },
        )
        .await
    })
}

/// What a miss needs besides the service and the request.
struct Miss {
    cache: Cache,
    metrics: Arc<Metrics>,
    key: Key,
    mode: CacheMode,
}

/// A call the cache does not take part in; `bypass` marks it so and counts it.
fn pass<S>(
    mut inner: S,
    request: Request<Body>,
    bypass: Option<(Arc<Metrics>, Rpc)>,
) -> BoxFuture<Result<Response<CachedBody>, Infallible>>
where
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    let call = inner.call(request);
    Box::pin(async move {
        let mut response = call.await?;
        if let Some((metrics, rpc)) = bypass {
            mark(response.headers_mut(), CacheStatus::Bypass);
            metrics.cache(rpc, CacheStatus::Bypass.as_str());
        }
        Ok(response.map(CachedBody::Inner))
    })
}

/// The service answers once for every identical concurrent call; the answer is kept
/// when it is a success or a NOT_FOUND.
fn miss<S>(
    mut inner: S,
    request: Request<Body>,
    miss: Miss,
) -> BoxFuture<Result<Response<CachedBody>, Infallible>>
where
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let Miss {
        cache,
        metrics,
        key,
        mode,
    } = miss;
    let rpc = key.rpc();
    let ttl = cache.ttl(rpc);
    let not_found_ttl = cache.not_found_ttl();
    let epoch = cache.epoch_of(rpc);
    let call = inner.call(request);
    Box::pin(async move {
        let fetch = async move {
            let collected = collect(call.await).await;
            match collected.keepable(ttl, not_found_ttl) {
                Some(entry) => Ok((entry, collected)),
                None => Err(collected),
            }
        };
        if mode == CacheMode::NoCache {
            metrics.cache(rpc, CacheStatus::Bypass.as_str());
            return Ok(match fetch.await {
                Ok((entry, collected)) => {
                    cache.put(&key, entry, epoch).await;
                    collected.into_response(CacheStatus::Bypass)
                }
                Err(collected) => collected.into_response(CacheStatus::Bypass),
            });
        }
        // Only the call that runs `fetch` keeps the collected answer itself; the
        // others replay the entry (or the shared failure).
        let mut own = None;
        let load = async {
            let (entry, collected) = fetch.await?;
            own = Some(collected);
            Ok(entry)
        };
        let outcome = cache.load::<Collected, _>(&key, load).await;
        Ok(match (outcome, own) {
            (Ok(_), Some(collected)) => {
                metrics.cache(rpc, CacheStatus::Miss.as_str());
                collected.into_response(CacheStatus::Miss)
            }
            (Ok((entry, fresh)), None) => {
                let status = if fresh {
                    CacheStatus::Miss
                } else {
                    CacheStatus::Hit
                };
                metrics.cache(rpc, status.as_str());
                replay(&entry.answer, status)
            }
            (Err(shared), _) => {
                metrics.cache(rpc, CacheStatus::Miss.as_str());
                shared.replay(CacheStatus::Miss)
            }
        })
    })
}

/// How the caller lets this call use the cache (`cache-control` request metadata):
/// `no-store` wins over `no-cache`.
pub fn cache_mode(headers: &HeaderMap) -> CacheMode {
    let mut mode = CacheMode::Normal;
    for directive in headers
        .get_all("cache-control")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
    {
        if directive.eq_ignore_ascii_case("no-store") {
            return CacheMode::NoStore;
        }
        if directive.eq_ignore_ascii_case("no-cache") {
            mode = CacheMode::NoCache;
        }
    }
    mode
}

/// The whole request body, up to [`MAX_REQUEST_BYTES`]. A unary request's body is
/// nearly always one data frame: that one is kept as it is, without a copy.
async fn read_body(mut body: Body) -> Option<Bytes> {
    let mut first: Option<Bytes> = None;
    let mut more: Option<bytes::BytesMut> = None;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.ok()?.into_data() else {
            continue;
        };
        let total = first.as_ref().map_or(0, Bytes::len)
            + more.as_ref().map_or(0, bytes::BytesMut::len)
            + data.len();
        if total > MAX_REQUEST_BYTES {
            return None;
        }
        match (&mut first, &mut more) {
            (None, _) => first = Some(data),
            (Some(head), None) => {
                let mut joined = bytes::BytesMut::with_capacity(total);
                joined.extend_from_slice(head);
                joined.extend_from_slice(&data);
                more = Some(joined);
            }
            (Some(_), Some(joined)) => joined.extend_from_slice(&data),
        }
    }
    Some(match more {
        Some(joined) => joined.freeze(),
        None => first.unwrap_or_default(),
    })
}

/// The message inside a body that is exactly one uncompressed gRPC frame.
fn single_frame(body: &Bytes) -> Option<Bytes> {
    let (&flag, rest) = body.split_first()?;
    let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    (flag == 0 && rest.len() == 4 + len).then(|| body.slice(5..))
}

/// The response metadata that says where an answer came from.
static X_CACHE: HeaderName = HeaderName::from_static("x-cache");
static GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");

fn mark(headers: &mut HeaderMap, status: CacheStatus) {
    headers.insert(X_CACHE.clone(), HeaderValue::from_static(status.as_str()));
}

/// An answer replayed from the cache.
fn replay(answer: &Answer, status: CacheStatus) -> Response<CachedBody> {
    match answer {
        Answer::Message(frame) => {
            let mut headers = HeaderMap::with_capacity(2);
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/grpc"),
            );
            let mut trailers = HeaderMap::with_capacity(1);
            trailers.insert(GRPC_STATUS.clone(), HeaderValue::from_static("0"));
            response(headers, Some(frame.clone()), Some(trailers), status)
        }
        Answer::Status(headers) => response((**headers).clone(), None, None, status),
    }
}

fn response(
    mut headers: HeaderMap,
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
    status: CacheStatus,
) -> Response<CachedBody> {
    mark(&mut headers, status);
    let mut response = Response::new(CachedBody::Replay { data, trailers });
    *response.headers_mut() = headers;
    response
}

/// A request the layer cannot read, answered through the one error mapping.
fn refuse(error: &Error) -> Response<CachedBody> {
    let (parts, _) = error.to_status().into_http::<()>().into_parts();
    response(parts.headers, None, None, CacheStatus::Bypass)
}

/// Reads a service answer to its end.
async fn collect(response: Result<Response<Body>, Infallible>) -> Collected {
    let response = match response {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let (mut parts, body) = response.into_parts();
    let tags = parts.extensions.remove::<Tags>().unwrap_or_default();
    match body.collect().await {
        Ok(collected) => {
            let trailers = collected.trailers().cloned();
            Collected {
                headers: parts.headers,
                data: collected.to_bytes(),
                trailers,
                tags,
            }
        }
        // The body failed half-way: answer with its status, keep nothing.
        Err(status) => {
            let (parts, _) = status.into_http::<()>().into_parts();
            Collected {
                headers: parts.headers,
                data: Bytes::new(),
                trailers: None,
                tags: Tags::default(),
            }
        }
    }
}

// === impl Collected ===

impl Collected {
    /// The gRPC status of the answer: from the trailers, or from the headers of a
    /// trailers-only answer.
    fn code(&self) -> Code {
        let status = self
            .trailers
            .as_ref()
            .and_then(|t| t.get("grpc-status"))
            .or_else(|| self.headers.get("grpc-status"));
        status
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<i32>().ok())
            .map_or(Code::Unknown, Code::from_i32)
    }

    /// The entry to keep for this answer, if it is one to keep.
    fn keepable(
        &self,
        ttl: std::time::Duration,
        not_found_ttl: std::time::Duration,
    ) -> Option<Entry> {
        match self.code() {
            Code::Ok if !self.data.is_empty() => {
                Some(Entry::message(&self.data, self.tags.0.clone(), ttl))
            }
            Code::NotFound if self.trailers.is_none() && !not_found_ttl.is_zero() => {
                let mut headers = self.headers.clone();
                headers.remove("x-cache");
                Some(Entry::status(headers, not_found_ttl))
            }
            _ => None,
        }
    }

    fn into_response(self, status: CacheStatus) -> Response<CachedBody> {
        let data = (!self.data.is_empty()).then_some(self.data);
        response(self.headers, data, self.trailers, status)
    }

    /// The same answer for another waiter.
    fn replay(&self, status: CacheStatus) -> Response<CachedBody> {
        let data = (!self.data.is_empty()).then(|| self.data.clone());
        response(self.headers.clone(), data, self.trailers.clone(), status)
    }
}

// === impl CachedBody ===

impl HttpBody for CachedBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            Self::Inner(body) => Pin::new(body).poll_frame(cx),
            Self::Replay { data, trailers } => {
                if let Some(data) = data.take() {
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Poll::Ready(trailers.take().map(|t| Ok(Frame::trailers(t))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Inner(body) => body.is_end_stream(),
            Self::Replay { data, trailers } => data.is_none() && trailers.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Inner(body) => body.size_hint(),
            Self::Replay { data, .. } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}

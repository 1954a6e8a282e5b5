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
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, header};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use tonic::{Code, body::Body};

use super::{Cache, CacheMode, CacheStatus};
use crate::auth::CallerSlot;
use crate::entry::{Answer, Entry, Key, Tags};
use crate::error::Error;
use crate::metrics::Metrics;
use crate::resilience::{self, InFlight, Slot};
use crate::rpc::Rpc;

mod request;

pub use request::{cache_mode, max_stale, read_body, single_frame};

/// Longest a miss holds a key's lock in the shared level (it is released at once when
/// the fetch ends; this bounds a crashed holder).
const MAX_LOCK: Duration = Duration::from_secs(30);

/// Most time a call waiting on another replica's fetch keeps for its own (a vendor
/// answers in well under a second).
const OWN_FETCH: Duration = Duration::from_secs(1);

/// Largest request body the layer reads, tonic's own decoding limit.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// An answer body, with what must live exactly as long as it.
#[derive(Debug)]
pub struct CachedBody {
    source: Source,
    /// Dropped with the body: when its last frame is sent, or the call is cancelled.
    held: Held,
}

/// Where a body's frames come from.
#[derive(Debug)]
enum Source {
    /// The service's body, untouched.
    Service(Body),
    /// One gRPC frame (absent for a trailers-only answer), then trailers.
    Replay {
        /// The frame, until it is sent.
        data: Option<Bytes>,
        /// The trailers, until they are sent.
        trailers: Option<HeaderMap>,
    },
}

/// What an answer keeps alive until its body ends: a stream's places are its whole
/// life, not its headers'.
#[derive(Debug, Default)]
pub struct Held {
    /// The call's place among the calls in flight (a stream's pages are fetched while
    /// it is read).
    pub call: Option<Slot>,
    /// The call's place among its caller's own calls in flight.
    pub caller: Option<CallerSlot>,
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

/// What every call past the edge shares.
pub struct Serving {
    /// The answer cache.
    pub cache: Cache,
    /// The server's metrics.
    pub metrics: Arc<Metrics>,
    /// The bound on calls in flight.
    pub in_flight: InFlight,
    /// The deadline of calls that set none.
    pub default_deadline: Duration,
    /// Identities and the policy (`None`: no policy, no mesh, authorization off: every
    /// call is anonymous, and the hot path does not look).
    pub auth: Option<Arc<crate::auth::Auth>>,
    /// The audit trail of mutations.
    pub audit: Arc<crate::audit::Audit>,
}

/// A call to a cached RPC: answered from the cache when it holds a fresh answer and the
/// caller allows, otherwise by `inner` once for every identical concurrent call (its
/// answer is then kept when it is a success or a NOT_FOUND). When that fails the way a
/// struggling vendor fails, a stale answer still within its window is served instead.
pub fn call<S>(
    inner: S,
    request: Request<Body>,
    rpc: Rpc,
    serving: Arc<Serving>,
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
            return pass(inner, request, serving, Some(rpc)).await;
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
            return pass(inner, request, serving, None).await;
        };
        let key = Key::new(rpc, message);
        let mut stale = None;
        let mut expired = false;
        if mode == CacheMode::Normal
            && let Some(entry) = serving.cache.get(&key).await
        {
            let now = Instant::now();
            if entry.is_fresh(now) {
                serving.metrics.cache(rpc, CacheStatus::Hit.as_str());
                return Ok(replay(&entry.answer, CacheStatus::Hit));
            }
            // Past its TTL, the entry is still in the cache (for its stale window): the
            // fetch must replace it, not find it.
            expired = true;
            if entry.usable_stale(now, max_stale(&parts.headers)) {
                stale = Some(entry);
            }
        }
        let request = Request::from_parts(parts, Body::new(Full::new(body)));
        miss(
            inner,
            request,
            Miss {
                serving,
                key,
                mode,
                stale,
                expired,
            },
        )
        .await
    })
}

/// What a miss needs besides the service and the request.
struct Miss {
    serving: Arc<Serving>,
    key: Key,
    mode: CacheMode,
    /// An entry past its TTL but within its stale window, to fall back on.
    stale: Option<Entry>,
    /// The cache holds an entry past its TTL for this key (usable stale or not).
    expired: bool,
}

/// A call the cache does not take part in; `bypass` marks it so and counts it.
async fn pass<S>(
    mut inner: S,
    request: Request<Body>,
    serving: Arc<Serving>,
    bypass: Option<Rpc>,
) -> Result<Response<CachedBody>, Infallible>
where
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    let slot = match serving.in_flight.try_take() {
        Ok(slot) => slot,
        Err(refused) => return Ok(refuse(&refused)),
    };
    let deadline = resilience::deadline_of(request.headers(), serving.default_deadline);
    let call = inner.call(request);
    let (response, attempts) = resilience::within(deadline, call).await;
    let mut response = response?;
    mark_attempts(response.headers_mut(), attempts);
    if let Some(rpc) = bypass {
        mark(response.headers_mut(), CacheStatus::Bypass);
        serving.metrics.cache(rpc, CacheStatus::Bypass.as_str());
    }
    drop(slot);
    Ok(response.map(CachedBody::service))
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
        serving,
        key,
        mode,
        stale,
        expired,
    } = miss;
    let rpc = key.rpc();
    let cache = serving.cache.clone();
    let ttl = cache.ttl(rpc);
    let stale_for = cache.stale_for(rpc);
    let not_found_ttl = cache.not_found_ttl();
    let epoch = cache.epoch_of(rpc);
    let deadline = resilience::deadline_of(request.headers(), serving.default_deadline);
    Box::pin(async move {
        // Every call that waits here is in flight, the ones waiting on another's fetch
        // included: the bound covers them all.
        let _slot = match serving.in_flight.try_take() {
            Ok(slot) => slot,
            Err(refused) => {
                return Ok(fall_back(&serving, &key, stale.as_ref())
                    .await
                    .unwrap_or_else(|| refuse(&refused)));
            }
        };
        let fetch = async move {
            let collected = collect(inner.call(request).await).await;
            match collected.keepable(ttl, stale_for, not_found_ttl) {
                Some(entry) => Ok((entry, collected)),
                None => Err(collected),
            }
        };
        if mode == CacheMode::NoCache {
            serving.metrics.cache(rpc, CacheStatus::Bypass.as_str());
            let (fetched, attempts) =
                resilience::within(deadline, tokio::time::timeout_at(deadline, fetch)).await;
            let mut response = match fetched {
                Ok(Ok((entry, collected))) => {
                    Box::pin(cache.put(&key, entry, epoch)).await;
                    collected.into_response(CacheStatus::Bypass)
                }
                Ok(Err(collected)) => collected.into_response(CacheStatus::Bypass),
                Err(_) => refuse(&Error::DeadlineExceeded {
                    during: "waiting for the upstream's answer",
                }),
            };
            mark_attempts(response.headers_mut(), attempts);
            return Ok(response);
        }
        // Only the call that runs `fetch` keeps the collected answer itself; the
        // others replay the entry (or the shared failure).
        let mut own = None;
        let mut from_shared = false;
        let shared = cache.shared().cloned();
        let load = async {
            // With a shared level: its fresh entry, or another replica's fetch under
            // the key's lock; else this call fetches and fills it.
            let mut found = None;
            if let Some(shared) = &shared {
                let lock_for = deadline
                    .saturating_duration_since(tokio::time::Instant::now())
                    .min(MAX_LOCK);
                if let Ok(mut lookup) = shared.lookup(&key, true, lock_for).await {
                    if let Some(entry) = lookup.entry.take() {
                        if entry.is_fresh(Instant::now()) {
                            from_shared = true;
                            return Ok(entry);
                        }
                        // Past its TTL there: refresh it under the lock.
                        let _ = shared.lock(&key, &mut lookup, lock_for).await;
                    }
                    // Another replica's fill is waited for, but when it never comes
                    // (that fetch is slow, or its replica died holding the lock) this
                    // call keeps a quarter of the time left, at most OWN_FETCH, for a
                    // fetch of its own.
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    let wait_until = deadline - (left / 4).min(OWN_FETCH);
                    if !lookup.locked
                        && let Ok(Some(entry)) = shared.wait_for_fill(&key, wait_until).await
                    {
                        from_shared = true;
                        return Ok(entry);
                    }
                    found = Some(lookup);
                }
            }
            let fetched = fetch.await;
            if let (Some(shared), Some(lookup)) = (&shared, &found) {
                match &fetched {
                    Ok((entry, _)) => shared.fill(&key, entry, lookup).await,
                    Err(_) => shared.release(&key, lookup).await,
                }
            }
            let (entry, collected) = fetched?;
            own = Some(collected);
            Ok(entry)
        };
        let refreshing = expired;
        let (outcome, attempts) = resilience::within(
            deadline,
            // Boxed: moka's entry future is ~16 KB, and held inline it tripled the size
            // of this one, which is moved into its box on every miss.
            tokio::time::timeout_at(
                deadline,
                Box::pin(cache.load::<Collected, _>(&key, refreshing, load)),
            ),
        )
        .await;
        let mut response = match (outcome, own) {
            (Ok(Ok(_)), Some(collected)) => {
                serving.metrics.cache(rpc, CacheStatus::Miss.as_str());
                collected.into_response(CacheStatus::Miss)
            }
            (Ok(Ok((entry, fresh))), None) => {
                let (status, outcome) = if from_shared {
                    (CacheStatus::Hit, "shared_hit")
                } else if fresh {
                    (CacheStatus::Miss, "miss")
                } else {
                    // Answered by an identical call's fetch.
                    (CacheStatus::Hit, "coalesced")
                };
                serving.metrics.cache(rpc, outcome);
                replay(&entry.answer, status)
            }
            (Ok(Err(shared)), _) => {
                let fallback = if shared.serves_stale() {
                    fall_back(&serving, &key, stale.as_ref()).await
                } else {
                    None
                };
                fallback.unwrap_or_else(|| {
                    serving.metrics.cache(rpc, CacheStatus::Miss.as_str());
                    shared.replay(CacheStatus::Miss)
                })
            }
            (Err(_elapsed), _) => fall_back(&serving, &key, stale.as_ref())
                .await
                .unwrap_or_else(|| {
                    refuse(&Error::DeadlineExceeded {
                        during: "waiting for the upstream's answer",
                    })
                }),
        };
        mark_attempts(response.headers_mut(), attempts);
        Ok(response)
    })
}

/// The answer for a caller whose fetch failed: the key's entry if it turned fresh
/// meanwhile (another call refreshed it), else the stale entry it holds, if a write
/// has not dropped it since.
async fn fall_back(
    serving: &Serving,
    key: &Key,
    stale: Option<&Entry>,
) -> Option<Response<CachedBody>> {
    let stale = stale?;
    let now = Instant::now();
    let current = serving.cache.get(key).await?;
    if current.is_fresh(now) {
        serving.metrics.cache(key.rpc(), CacheStatus::Hit.as_str());
        return Some(replay(&current.answer, CacheStatus::Hit));
    }
    if !current.same_as(stale) {
        return None;
    }
    serving
        .metrics
        .cache(key.rpc(), CacheStatus::Stale.as_str());
    let mut response = replay(&stale.answer, CacheStatus::Stale);
    response
        .headers_mut()
        .insert(header::AGE, HeaderValue::from(stale.age(now).as_secs()));
    Some(response)
}

/// `x-upstream-attempts`: how many upstream requests this call made (absent when none).
pub fn mark_attempts(headers: &mut HeaderMap, attempts: u32) {
    if attempts > 0 {
        headers.insert(X_UPSTREAM_ATTEMPTS.clone(), HeaderValue::from(attempts));
    }
}

/// The response metadata that says where an answer came from.
static X_CACHE: HeaderName = HeaderName::from_static("x-cache");
static X_UPSTREAM_ATTEMPTS: HeaderName = HeaderName::from_static("x-upstream-attempts");
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
    let mut response = Response::new(CachedBody::replay(data, trailers));
    *response.headers_mut() = headers;
    response
}

/// A call refused before any service saw it, answered through the one error mapping.
pub fn refuse(error: &Error) -> Response<CachedBody> {
    let (parts, _) = error.to_status().into_http::<()>().into_parts();
    let mut response = Response::new(CachedBody::replay(None, None));
    *response.headers_mut() = parts.headers;
    response
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
        ttl: Duration,
        stale_for: Duration,
        not_found_ttl: Duration,
    ) -> Option<Entry> {
        match self.code() {
            Code::Ok if !self.data.is_empty() => Some(Entry::message(
                &self.data,
                self.tags.0.clone(),
                ttl,
                stale_for,
            )),
            Code::NotFound if self.trailers.is_none() && !not_found_ttl.is_zero() => {
                let mut headers = self.headers.clone();
                headers.remove(&X_CACHE);
                headers.remove(&X_UPSTREAM_ATTEMPTS);
                Some(Entry::status(headers, not_found_ttl))
            }
            _ => None,
        }
    }

    /// Whether this failure is one a stale answer may stand in for: the vendor failing,
    /// timing out, rate-limiting, or its breaker open (UNAVAILABLE, DEADLINE_EXCEEDED,
    /// RESOURCE_EXHAUSTED).
    fn serves_stale(&self) -> bool {
        matches!(
            self.code(),
            Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted
        )
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

impl CachedBody {
    /// The service's own body.
    pub fn service(body: Body) -> Self {
        Self {
            source: Source::Service(body),
            held: Held::default(),
        }
    }

    /// One frame (or none, for a trailers-only answer), then the trailers.
    fn replay(data: Option<Bytes>, trailers: Option<HeaderMap>) -> Self {
        Self {
            source: Source::Replay { data, trailers },
            held: Held::default(),
        }
    }

    /// The same body, holding the call's place among the calls in flight until it ends.
    pub fn holding_call(mut self, slot: Slot) -> Self {
        self.held.call = Some(slot);
        self
    }

    /// The same body, holding the call's place among its caller's calls until it ends.
    pub fn holding_caller(mut self, slot: CallerSlot) -> Self {
        if slot.holds() {
            self.held.caller = Some(slot);
        }
        self
    }
}

impl HttpBody for CachedBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match &mut self.get_mut().source {
            Source::Service(body) => Pin::new(body).poll_frame(cx),
            Source::Replay { data, trailers } => {
                if let Some(data) = data.take() {
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Poll::Ready(trailers.take().map(|t| Ok(Frame::trailers(t))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.source {
            Source::Service(body) => body.is_end_stream(),
            Source::Replay { data, trailers } => data.is_none() && trailers.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.source {
            Source::Service(body) => body.size_hint(),
            Source::Replay { data, .. } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}

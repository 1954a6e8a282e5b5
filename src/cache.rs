//! The answer cache: a moka TTL cache bounded by bytes, shared by every read RPC.
//!
//! Identical concurrent misses wait for one upstream call (moka's `or_try_insert_with`).
//! Only answers are cached: successes, and NOT_FOUND for a short while. Errors are not.
//!
//! Writes invalidate: each entry is tagged with the events and visitors its answer
//! contains, and a write drops the entries it could have changed. A read that was in
//! flight while a write completed is answered but not kept: every write bumps its
//! upstream's epoch, and an answer fetched across an epoch change is stored already
//! expired, so it cannot outlive the write that made it stale.

use std::{
    any::Any,
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use moka::{Expiry, future::Cache as Moka};

use crate::error::{ApiError, Error, Upstream};
use crate::proto::v1::{Event, GetEventResponse, GetVisitsResponse, SearchEventsResponse};
use crate::rpc::Rpc;

/// Where an answer came from; sent to callers as the `x-cache` response metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Served from the cache (including answers fetched by a concurrent identical call).
    Hit,
    /// Fetched from the upstream by this call.
    Miss,
    /// The caller asked to skip the cache (`cache-control: no-cache` or `no-store`).
    Bypass,
}

/// How a call may use the cache, from the caller's `cache-control` metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheMode {
    /// Answer from the cache when possible; keep what is fetched.
    #[default]
    Normal,
    /// `no-cache`: fetch from the upstream, then keep the fresh answer.
    NoCache,
    /// `no-store`: fetch from the upstream, and keep nothing.
    NoStore,
}

/// Something an answer contains, that a write can change.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Tag {
    /// An event id.
    Event(String),
    /// A visitor id.
    Visitor(String),
}

/// Answers say which events and visitors they contain.
pub trait Tagged {
    /// The tags of this answer; none by default.
    fn tags(&self) -> Vec<Tag> {
        Vec::new()
    }
}

/// What identifies one answer: the upstream, the RPC, the upstream identity and the
/// whole request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    rpc: Rpc,
    identity: Arc<str>,
    request: Vec<u8>,
}

/// A cached answer, with the time it may live.
#[derive(Clone)]
struct Entry {
    stored: Stored,
    tags: Arc<[Tag]>,
    ttl: Duration,
    weight: u32,
}

#[derive(Clone)]
enum Stored {
    Value(Arc<dyn Any + Send + Sync>),
    NotFound(ApiError),
}

struct PerEntryTtl;

/// The answer cache. Cheap to clone.
#[derive(Clone)]
pub struct Cache {
    inner: Option<Moka<Key, Entry>>,
    epochs: Arc<[AtomicU64; 2]>,
}

// === impl CacheStatus ===

impl CacheStatus {
    /// The `x-cache` metadata value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Bypass => "bypass",
        }
    }
}

// === impl Tagged ===

fn event_tags(e: &Event, out: &mut Vec<Tag>) {
    if !e.event_id.is_empty() {
        out.push(Tag::Event(e.event_id.clone()));
    }
    if let Some(ident) = &e.identification {
        out.push(Tag::Visitor(ident.visitor_id.clone()));
    }
}

impl Tagged for GetEventResponse {
    fn tags(&self) -> Vec<Tag> {
        let mut out = Vec::new();
        if let Some(e) = &self.event {
            event_tags(e, &mut out);
        }
        out
    }
}

impl Tagged for GetVisitsResponse {
    fn tags(&self) -> Vec<Tag> {
        let mut out = vec![Tag::Visitor(self.visitor_id.clone())];
        self.visits.iter().for_each(|e| event_tags(e, &mut out));
        out
    }
}

impl Tagged for SearchEventsResponse {
    fn tags(&self) -> Vec<Tag> {
        let mut out = Vec::new();
        self.events.iter().for_each(|e| event_tags(e, &mut out));
        out
    }
}

impl Tagged for crate::proto::v1::LookupTelemetryResponse {}
impl Tagged for crate::proto::v1::ListRulesResponse {}
impl Tagged for crate::proto::v1::ListVerdictReasonsResponse {}

// === impl Key ===

impl Key {
    /// The key of `request` to `rpc` on the upstream known as `identity`.
    pub fn new(rpc: Rpc, identity: &str, request: &impl prost::Message) -> Self {
        // prost encodes deterministically (fields in order, no maps in requests).
        Self {
            rpc,
            identity: Arc::from(identity),
            request: request.encode_to_vec(),
        }
    }

    /// The RPC this key belongs to.
    pub fn rpc(&self) -> Rpc {
        self.rpc
    }

    fn upstream(&self) -> Option<Upstream> {
        self.rpc.upstream()
    }
}

// === impl PerEntryTtl ===

impl Expiry<Key, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _key: &Key, value: &Entry, _at: Instant) -> Option<Duration> {
        Some(value.ttl)
    }
}

// === impl Cache ===

impl Cache {
    /// A cache holding at most `max_bytes` of answers; 0 disables caching.
    pub fn new(max_bytes: u64) -> Self {
        let inner = (max_bytes > 0).then(|| {
            Moka::builder()
                .max_capacity(max_bytes)
                .weigher(|_k: &Key, v: &Entry| v.weight)
                .expire_after(PerEntryTtl)
                .support_invalidation_closures()
                .build()
        });
        Self {
            inner,
            epochs: Arc::new([AtomicU64::new(0), AtomicU64::new(0)]),
        }
    }

    fn epoch(&self, upstream: Upstream) -> &AtomicU64 {
        &self.epochs[match upstream {
            Upstream::Fingerprint => 0,
            Upstream::Stytch => 1,
        }]
    }

    /// The cached answer for `key`, or the answer of `fetch`, cached for `ttl`
    /// (NOT_FOUND for `not_found_ttl`). A zero TTL skips the cache; `mode` says whether
    /// the caller lets it read or keep the answer.
    pub async fn get_or_fetch<T, F>(
        &self,
        key: Key,
        ttl: Duration,
        not_found_ttl: Duration,
        mode: CacheMode,
        fetch: F,
    ) -> Result<(T, CacheStatus), Arc<Error>>
    where
        T: prost::Message + Tagged + Clone + Send + Sync + 'static,
        F: Future<Output = Result<T, Error>>,
    {
        let cache = match self.inner.as_ref().filter(|_| !ttl.is_zero()) {
            Some(cache) if mode != CacheMode::NoStore => cache,
            _ => {
                let status = if mode == CacheMode::Normal {
                    CacheStatus::Miss
                } else {
                    CacheStatus::Bypass
                };
                return fetch.await.map(|v| (v, status)).map_err(Arc::new);
            }
        };
        let key_len = key.request.len() + key.identity.len();
        let epoch = self.epoch(key.upstream().unwrap_or(Upstream::Fingerprint));
        let load = async move {
            let started = epoch.load(Ordering::Acquire);
            let result = fetch.await;
            // A write finished while this read was in flight: answer, but do not keep.
            let stale = epoch.load(Ordering::Acquire) != started;
            let keep = |t: Duration| if stale { Duration::ZERO } else { t };
            match result {
                Ok(value) => Ok(Entry::value(value, keep(ttl), key_len)),
                Err(Error::Api(api)) if api.is_not_found() && !not_found_ttl.is_zero() => {
                    Ok(Entry::not_found(api, keep(not_found_ttl), key_len))
                }
                Err(e) => Err(e),
            }
        };
        if mode == CacheMode::NoCache {
            let entry = load.await.map_err(Arc::new)?;
            if !entry.ttl.is_zero() {
                cache.insert(key, entry.clone()).await;
            }
            return entry.open().map(|v| (v, CacheStatus::Bypass));
        }
        let entry = cache.entry(key).or_try_insert_with(load).await?;
        let status = if entry.is_fresh() {
            CacheStatus::Miss
        } else {
            CacheStatus::Hit
        };
        entry.into_value().open().map(|v| (v, status))
    }

    /// After a write to `upstream`: drops every entry of that upstream for which
    /// `affected(rpc, tags)` holds, and marks answers still in flight as stale.
    pub fn invalidate(
        &self,
        upstream: Upstream,
        affected: impl Fn(Rpc, &[Tag]) -> bool + Send + Sync + 'static,
    ) {
        self.epoch(upstream).fetch_add(1, Ordering::AcqRel);
        if let Some(cache) = &self.inner {
            let dropped = cache.invalidate_entries_if(move |k, v| {
                k.upstream() == Some(upstream) && affected(k.rpc, &v.tags)
            });
            if let Err(e) = dropped {
                // Only possible without `support_invalidation_closures`; drop everything then.
                tracing::warn!(error = %e, "cache: predicate invalidation unavailable; clearing");
                cache.invalidate_all();
            }
        }
    }
}

// === impl Entry ===

impl Entry {
    fn value<T: prost::Message + Tagged + Send + Sync + 'static>(
        value: T,
        ttl: Duration,
        key_len: usize,
    ) -> Self {
        let weight = weight(value.encoded_len() + key_len);
        Self {
            tags: value.tags().into(),
            stored: Stored::Value(Arc::new(value)),
            ttl,
            weight,
        }
    }

    fn not_found(api: ApiError, ttl: Duration, key_len: usize) -> Self {
        Self {
            weight: weight(256 + key_len),
            stored: Stored::NotFound(api),
            tags: Arc::from([]),
            ttl,
        }
    }

    /// The answer: a copy of the value, or the NOT_FOUND error again.
    fn open<T: Clone + 'static>(&self) -> Result<T, Arc<Error>> {
        match &self.stored {
            Stored::Value(any) => any.downcast_ref::<T>().cloned().ok_or_else(|| {
                // Keys include the RPC name, so one key always holds one type.
                Arc::new(Error::Malformed {
                    upstream: Upstream::Fingerprint,
                    detail: "cache entry of another type".to_owned(),
                })
            }),
            Stored::NotFound(api) => Err(Arc::new(Error::Api(api.clone()))),
        }
    }
}

/// Bytes an entry is charged for, with a floor for bookkeeping.
fn weight(bytes: usize) -> u32 {
    u32::try_from(bytes.saturating_add(128)).unwrap_or(u32::MAX)
}

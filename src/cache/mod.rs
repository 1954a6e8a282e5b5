//! The answer cache: a moka TTL cache of **encoded** answers, bounded by the bytes they
//! really occupy, shared by every cached read RPC.
//!
//! [`layer::call`] runs in front of the gRPC services (the [`crate::edge`] layer hands
//! it every cached RPC): a hit is answered from the
//! stored gRPC frame without touching the service, the codec or prost; a miss goes to
//! the service once for all identical concurrent callers (moka's
//! `or_try_insert_with`), and its encoded answer is kept. Successes are kept for the
//! RPC's TTL, NOT_FOUND as its finished status for a short while; other errors are not
//! kept.
//!
//! Writes invalidate: each entry carries the events and visitors its answer contains
//! (the service attaches them as [`Tags`]), and a write drops the entries it could have
//! changed. A read in flight while a write completed is answered but not kept: every
//! write bumps its upstream's epoch, and an answer fetched across an epoch change is
//! stored already expired, so it cannot outlive the write that made it stale.

pub mod layer;

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use moka::{Expiry, future::Cache as Moka};

use crate::config::CacheConfig;
use crate::error::Upstream;
use crate::rpc::Rpc;
use crate::shared::Shared;

/// Where an answer came from; sent to callers as the `x-cache` response metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CacheStatus {
    /// Served from the cache (including answers fetched by a concurrent identical call).
    Hit,
    /// Fetched from the upstream by this call.
    Miss,
    /// The caller asked to skip the cache (`cache-control: no-cache` or `no-store`).
    Bypass,
    /// Served past its TTL because the upstream failed (stale-if-error).
    Stale,
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

/// Something an answer contains, that a write can change: an event or a visitor, kept
/// as a 64-bit digest of its id (8 bytes an entry, not an allocation). Two ids sharing a
/// digest only make a write drop one more answer than it had to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tag(u64);

/// The tags of an answer, attached by the service to its response extensions.
#[derive(Debug, Clone, Default)]
pub struct Tags(pub Vec<Tag>);

/// What a write makes stale: every answer of `upstream` that is of one of `rpcs`, or
/// that contains one of `tags` (or all of them). A value, not a closure, so that it can
/// travel to the other replicas (see [`crate::shared`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalidation {
    /// The upstream written to.
    pub upstream: Upstream,
    /// Every answer of these RPCs is dropped.
    pub rpcs: Vec<Rpc>,
    /// Every answer containing one of these is dropped.
    pub tags: Vec<Tag>,
    /// Every answer of the upstream is dropped.
    pub all: bool,
}

/// What identifies one answer: the RPC and the request message exactly as the caller
/// encoded it. (One cache serves one set of upstream accounts.)
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    rpc: Rpc,
    request: Bytes,
    /// The slot where a stale entry's refresh is coalesced (see [`Cache::load`]).
    refresh: bool,
}

/// A kept answer.
#[derive(Debug, Clone)]
pub enum Answer {
    /// A success: its gRPC frame (flag, length, message) exactly as sent.
    Message(Bytes),
    /// A NOT_FOUND: the finished status, as the response headers that carry it.
    Status(Arc<http::HeaderMap>),
}

/// A cached answer, with what a write can change in it and the time it may live.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The answer.
    pub answer: Answer,
    tags: Arc<[Tag]>,
    /// When it was fetched.
    stored: Instant,
    /// How long it is fresh.
    ttl: Duration,
    /// How long past `ttl` it may still be served when the upstream fails.
    stale_for: Duration,
    weight: u32,
}

struct PerEntryTtl;

/// The answer cache. Cheap to clone.
#[derive(Clone)]
pub struct Cache {
    inner: Option<Moka<Key, Entry>>,
    epochs: Arc<[AtomicU64; 2]>,
    ttl: Arc<CacheConfig>,
    /// The level shared by the replicas (Redis), if configured.
    shared: Option<Arc<Shared>>,
}

/// Bytes an entry costs beyond its key, answer and tags: moka's nodes, deques and timer
/// wheel, the entry's `Arc`s and the allocator's rounding. Measured (bench/run.sh): 100,000
/// cached 721-byte GetEvent answers grew RSS by 1,283 bytes each, ~500 beyond the
/// payload; with this overhead a full 8 MiB cache grows RSS by 0.92-1.05x its bound.
const ENTRY_OVERHEAD: usize = 512;

// === impl CacheStatus ===

impl CacheStatus {
    /// The `x-cache` metadata value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Bypass => "bypass",
            Self::Stale => "stale",
        }
    }
}

// === impl Tag ===

impl Tag {
    /// The tag of an event id.
    pub fn event(id: &str) -> Self {
        Self::of(b'e', id)
    }

    /// The tag of a visitor id.
    pub fn visitor(id: &str) -> Self {
        Self::of(b'v', id)
    }

    /// The digest, as sent to other replicas.
    pub fn bits(self) -> u64 {
        self.0
    }

    /// A tag received from another replica.
    pub fn from_bits(bits: u64) -> Self {
        Self(bits)
    }

    fn of(kind: u8, id: &str) -> Self {
        use std::hash::{Hash, Hasher};
        // Fixed keys: the same id gets the same tag in every entry.
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        kind.hash(&mut hasher);
        id.hash(&mut hasher);
        Self(hasher.finish())
    }
}

// === impl Invalidation ===

impl Invalidation {
    /// Every answer of `upstream`.
    pub fn everything(upstream: Upstream) -> Self {
        Self {
            upstream,
            rpcs: Vec::new(),
            tags: Vec::new(),
            all: true,
        }
    }
}

// === impl Key ===

impl Key {
    /// The key of a request message (the bytes inside its gRPC frame) to `rpc`.
    pub fn new(rpc: Rpc, request: Bytes) -> Self {
        Self {
            rpc,
            request,
            refresh: false,
        }
    }

    /// The RPC this key belongs to.
    pub fn rpc(&self) -> Rpc {
        self.rpc
    }

    /// The request message, as the caller encoded it.
    pub fn request(&self) -> &[u8] {
        &self.request
    }

    /// The same key in an allocation of its own, so a stored key never keeps a larger
    /// receive buffer alive.
    fn owned(&self) -> Self {
        Self {
            rpc: self.rpc,
            request: Bytes::copy_from_slice(&self.request),
            refresh: self.refresh,
        }
    }

    /// The slot where refreshes of this key's stale entry meet.
    fn refresh(&self) -> Self {
        Self {
            refresh: true,
            ..self.owned()
        }
    }
}

// === impl Entry ===

impl Entry {
    /// A success, copied into an allocation of its own (so it is weighed truly), fresh
    /// for `ttl` and usable `stale_for` beyond when the upstream fails.
    pub fn message(frame: &[u8], tags: Vec<Tag>, ttl: Duration, stale_for: Duration) -> Self {
        Self::new(
            Answer::Message(Bytes::copy_from_slice(frame)),
            tags,
            ttl,
            stale_for,
        )
    }

    /// A NOT_FOUND status, carried by `headers` (never served stale: the record may
    /// exist by now).
    pub fn status(headers: http::HeaderMap, ttl: Duration) -> Self {
        Self::new(
            Answer::Status(Arc::new(headers)),
            Vec::new(),
            ttl,
            Duration::ZERO,
        )
    }

    fn new(answer: Answer, tags: Vec<Tag>, ttl: Duration, stale_for: Duration) -> Self {
        let answer_bytes = match &answer {
            Answer::Message(frame) => frame.len(),
            Answer::Status(headers) => headers
                .iter()
                .map(|(k, v)| k.as_str().len() + v.len() + 64)
                .sum(),
        };
        let tag_bytes = tags.len() * std::mem::size_of::<Tag>();
        Self {
            answer,
            weight: u32::try_from(answer_bytes + tag_bytes + ENTRY_OVERHEAD).unwrap_or(u32::MAX),
            tags: tags.into(),
            stored: Instant::now(),
            ttl,
            stale_for,
        }
    }

    /// An entry read back from the shared level, fetched `age` ago.
    pub fn restored(
        frame: &[u8],
        tags: Vec<Tag>,
        ttl: Duration,
        stale_for: Duration,
        age: Duration,
    ) -> Self {
        let mut entry = Self::message(frame, tags, ttl, stale_for);
        entry.stored = Instant::now().checked_sub(age).unwrap_or(entry.stored);
        entry
    }

    /// The success frame (`None` for a NOT_FOUND).
    pub fn frame(&self) -> Option<&[u8]> {
        match &self.answer {
            Answer::Message(frame) => Some(frame),
            Answer::Status(_) => None,
        }
    }

    /// What a write can change in it.
    pub fn tags(&self) -> &[Tag] {
        &self.tags
    }

    /// How long it is fresh.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// How long past its TTL it may be served when the upstream fails.
    pub fn stale_for(&self) -> Duration {
        self.stale_for
    }

    fn expired_at_once(mut self) -> Self {
        self.ttl = Duration::ZERO;
        self.stale_for = Duration::ZERO;
        self
    }

    /// Whether it is within its TTL.
    pub fn is_fresh(&self, now: Instant) -> bool {
        now < self.stored + self.ttl
    }

    /// Whether it may be served stale now, to a caller that accepts answers up to
    /// `max_stale` past their TTL (`None`: any the gateway keeps).
    pub fn usable_stale(&self, now: Instant, max_stale: Option<Duration>) -> bool {
        let past = now.saturating_duration_since(self.stored + self.ttl);
        past < self.stale_for && max_stale.is_none_or(|m| past <= m)
    }

    /// Time since it was fetched.
    pub fn age(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.stored)
    }

    /// Whether `other` is this very entry (not a later refresh of the same key).
    pub fn same_as(&self, other: &Entry) -> bool {
        self.stored == other.stored
    }
}

// === impl PerEntryTtl ===

impl Expiry<Key, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _key: &Key, value: &Entry, _at: Instant) -> Option<Duration> {
        // Stale entries stay (and are weighed) for their stale window too.
        Some(value.ttl.saturating_add(value.stale_for))
    }
}

// === impl Cache ===

impl Cache {
    /// A cache of at most `config.max_bytes` of answers (0 disables caching), with the
    /// TTLs of `config`.
    pub fn new(config: CacheConfig) -> Self {
        let inner = (config.max_bytes > 0).then(|| {
            Moka::builder()
                .max_capacity(config.max_bytes)
                .weigher(|k: &Key, v: &Entry| {
                    v.weight
                        .saturating_add(u32::try_from(k.request.len()).unwrap_or(u32::MAX))
                })
                .expire_after(PerEntryTtl)
                .support_invalidation_closures()
                .build()
        });
        Self {
            inner,
            epochs: Arc::new([AtomicU64::new(0), AtomicU64::new(0)]),
            ttl: Arc::new(config),
            shared: None,
        }
    }

    /// The same cache over a level shared with the other replicas.
    pub fn with_shared(mut self, shared: Arc<Shared>) -> Self {
        self.shared = Some(shared);
        self
    }

    /// The shared level, if any.
    pub fn shared(&self) -> Option<&Arc<Shared>> {
        self.shared.as_ref()
    }

    /// Whether this replica's memory may answer with `entry`: always alone; with a
    /// shared level, while it is sure to hear invalidations (see [`crate::shared`]), or
    /// else when the entry is younger than the lease (a write it could not hear came
    /// after the fetch, so the answer is stale for less than the lease).
    fn usable(&self, entry: &Entry, now: Instant) -> bool {
        self.shared
            .as_ref()
            .is_none_or(|s| s.l1_trusted() || entry.age(now) < s.lease())
    }

    /// Empties this replica's memory (it may have missed invalidations), and marks
    /// answers in flight as stale.
    pub fn clear_local(&self) {
        for epoch in self.epochs.iter() {
            epoch.fetch_add(1, Ordering::AcqRel);
        }
        if let Some(cache) = &self.inner {
            cache.invalidate_all();
        }
    }

    /// The time an answer of `rpc` is kept; zero for RPCs that are never cached.
    pub fn ttl(&self, rpc: Rpc) -> Duration {
        match rpc {
            Rpc::GetEvent => self.ttl.get_event,
            Rpc::GetVisits => self.ttl.get_visits,
            Rpc::SearchEvents => self.ttl.search_events,
            Rpc::LookupTelemetry => self.ttl.lookup_telemetry,
            Rpc::ListRules => self.ttl.list_rules,
            Rpc::ListVerdictReasons => self.ttl.list_verdict_reasons,
            Rpc::StreamEvents
            | Rpc::UpdateEvent
            | Rpc::DeleteVisitorData
            | Rpc::UnsealEvent
            | Rpc::VerifyWebhookSignature
            | Rpc::SetRule
            | Rpc::SetVerdictReasonOverride => Duration::ZERO,
        }
    }

    /// How long past its TTL an answer of `rpc` may be served when the upstream fails.
    pub fn stale_for(&self, rpc: Rpc) -> Duration {
        self.ttl.stale_if_error.get(rpc)
    }

    /// The time a NOT_FOUND answer is kept.
    pub fn not_found_ttl(&self) -> Duration {
        self.ttl.not_found
    }

    /// Whether answers of `rpc` are kept at all.
    pub fn caches(&self, rpc: Rpc) -> bool {
        self.inner.is_some() && !self.ttl(rpc).is_zero()
    }

    fn epoch(&self, upstream: Upstream) -> &AtomicU64 {
        &self.epochs[match upstream {
            Upstream::Fingerprint => 0,
            Upstream::Stytch => 1,
        }]
    }

    /// The cached answer for `key`, if there is one.
    pub async fn get(&self, key: &Key) -> Option<Entry> {
        let entry = self.inner.as_ref()?.get(key).await?;
        self.usable(&entry, Instant::now()).then_some(entry)
    }

    /// The answer for `key` from `load`, shared by every identical concurrent call and
    /// kept unless a write to the upstream completed meanwhile. `load` answers `Ok` with
    /// an entry to keep, or `Err` with what the callers get instead. `fresh` is whether
    /// this call ran `load` (a miss) rather than waiting for another's (a hit).
    ///
    /// When `key` holds a stale entry (`refreshing`), the calls meet in a slot of their
    /// own, so the stale entry stays in place until its refresh succeeds: every caller
    /// can still fall back on it if the refresh fails.
    pub async fn load<E, F>(
        &self,
        key: &Key,
        refreshing: bool,
        load: F,
    ) -> Result<(Entry, bool), Arc<E>>
    where
        E: Send + Sync + 'static,
        F: Future<Output = Result<Entry, E>>,
    {
        let epoch = self.epoch(key.rpc.upstream().unwrap_or(Upstream::Fingerprint));
        let inner = self.inner.clone();
        let guarded = async move {
            let started = epoch.load(Ordering::Acquire);
            let entry = load.await?;
            // A write finished while this read was in flight: answer, but do not keep.
            if epoch.load(Ordering::Acquire) != started {
                return Ok(entry.expired_at_once());
            }
            if !refreshing {
                return Ok(entry);
            }
            if let Some(cache) = &inner {
                cache.insert(key.owned(), entry.clone()).await;
            }
            Ok(entry.expired_at_once())
        };
        let Some(cache) = &self.inner else {
            return guarded.await.map(|e| (e, true)).map_err(Arc::new);
        };
        // An entry this replica may no longer trust must not be found instead of loaded.
        if let Some(old) = cache.get(key).await
            && !self.usable(&old, Instant::now())
        {
            cache.invalidate(key).await;
        }
        let slot = if refreshing {
            key.refresh()
        } else {
            key.owned()
        };
        let entry = cache.entry(slot).or_try_insert_with(guarded).await?;
        let fresh = entry.is_fresh();
        Ok((entry.into_value(), fresh))
    }

    /// Keeps `entry` for `key` (after a `no-cache` call fetched it), unless a write to the
    /// upstream completed since `epoch_at_start`.
    pub async fn put(&self, key: &Key, entry: Entry, epoch_at_start: u64) {
        let Some(cache) = &self.inner else { return };
        let epoch = self.epoch(key.rpc.upstream().unwrap_or(Upstream::Fingerprint));
        if epoch.load(Ordering::Acquire) == epoch_at_start {
            cache.insert(key.owned(), entry).await;
        }
    }

    /// The current write epoch of the upstream `rpc` calls.
    pub fn epoch_of(&self, rpc: Rpc) -> u64 {
        self.epoch(rpc.upstream().unwrap_or(Upstream::Fingerprint))
            .load(Ordering::Acquire)
    }

    /// After a write: drops what it made stale here and, with a shared cache, from the
    /// shared cache and every other replica's memory (before returning).
    pub async fn invalidate(&self, what: Invalidation) {
        self.invalidate_local(&what);
        if let Some(shared) = &self.shared {
            shared.invalidate(&what).await;
        }
    }

    /// Drops from this replica's memory what `what` made stale, and marks answers still
    /// in flight as stale.
    pub fn invalidate_local(&self, what: &Invalidation) {
        let upstream = what.upstream;
        self.epoch(upstream).fetch_add(1, Ordering::AcqRel);
        if let Some(cache) = &self.inner {
            let what = what.clone();
            let dropped = cache.invalidate_entries_if(move |k, v| {
                k.rpc.upstream() == Some(upstream)
                    && (what.all
                        || what.rpcs.contains(&k.rpc)
                        || v.tags.iter().any(|t| what.tags.contains(t)))
            });
            if let Err(e) = dropped {
                // Only possible without `support_invalidation_closures`; drop everything then.
                tracing::warn!(error = %e, "cache: predicate invalidation unavailable; clearing");
                cache.invalidate_all();
            }
        }
    }

    /// Entries and their summed weight, after pending maintenance (for tests and metrics).
    pub async fn usage(&self) -> (u64, u64) {
        match &self.inner {
            Some(cache) => {
                cache.run_pending_tasks().await;
                (cache.entry_count(), cache.weighted_size())
            }
            None => (0, 0),
        }
    }
}

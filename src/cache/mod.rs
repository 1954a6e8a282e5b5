//! The answer cache: a moka TTL cache of **encoded** answers, bounded by the bytes they
//! really occupy, shared by every cached read RPC.
//!
//! [`layer::call`] runs in front of the gRPC services (the edge layer, above, hands it
//! every cached RPC): a hit is answered from the
//! stored gRPC frame without touching the service, the codec or prost; a miss goes to
//! the service once for all identical concurrent callers (moka's
//! `or_try_insert_with`), and its encoded answer is kept. Successes are kept for the
//! RPC's TTL, NOT_FOUND as its finished status for a short while; other errors are not
//! kept.
//!
//! Writes invalidate: each entry carries the events and visitors its answer contains
//! (the service attaches them as [`crate::entry::Tags`]), and a write drops the entries it could have
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

use moka::{Expiry, future::Cache as Moka};

use crate::config::CacheConfig;
use crate::entry::{Entry, Invalidation, Key};
use crate::error::Upstream;
use crate::rpc::Rpc;
use crate::shared::{Local, Shared};

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

// === impl PerEntryTtl ===

impl Expiry<Key, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _key: &Key, value: &Entry, _at: Instant) -> Option<Duration> {
        // Stale entries stay (and are weighed) for their stale window too.
        Some(value.ttl().saturating_add(value.stale_for()))
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
                    v.weight()
                        .saturating_add(u32::try_from(k.request().len()).unwrap_or(u32::MAX))
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
            | Rpc::SetVerdictReasonOverride
            | Rpc::AnalyzeRequest
            | Rpc::Check => Duration::ZERO,
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
        let epoch = self.epoch(key.rpc().upstream().unwrap_or(Upstream::Fingerprint));
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
        let epoch = self.epoch(key.rpc().upstream().unwrap_or(Upstream::Fingerprint));
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

// === impl Local for Cache ===

// The shared level applies other replicas' invalidations here.
impl Local for Cache {
    fn invalidate_local(&self, what: &Invalidation) {
        let upstream = what.upstream;
        self.epoch(upstream).fetch_add(1, Ordering::AcqRel);
        if let Some(cache) = &self.inner {
            let what = what.clone();
            let dropped = cache.invalidate_entries_if(move |k, v| {
                k.rpc().upstream() == Some(upstream)
                    && (what.all
                        || what.rpcs.contains(&k.rpc())
                        || v.tags().iter().any(|t| what.tags.contains(t)))
            });
            if let Err(e) = dropped {
                // Only possible without `support_invalidation_closures`; drop everything then.
                tracing::warn!(error = %e, "cache: predicate invalidation unavailable; clearing");
                cache.invalidate_all();
            }
        }
    }

    fn clear_local(&self) {
        for epoch in self.epochs.iter() {
            epoch.fetch_add(1, Ordering::AcqRel);
        }
        if let Some(cache) = &self.inner {
            cache.invalidate_all();
        }
    }
}

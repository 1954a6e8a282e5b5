//! What the replicas share through Redis (opt-in: `GATEWAY_REDIS_URL`): a second cache
//! level (L2) under every replica's moka (L1), invalidation across replicas, one
//! upstream call for identical misses on any replica, and the vendor quotas.
//!
//! - **L2.** Answers are stored encoded, with their TTL and stale window, under
//!   `{prefix:account}:v1:e:<rpc>:<sha-256 of the request>` (the account digest and the
//!   format version keep deployments and encodings apart; the braces keep one
//!   deployment's keys in one Redis Cluster slot). With `GATEWAY_REDIS_ENCRYPTION_KEY`,
//!   values are AES-256-GCM sealed with the key as associated data, so Redis can
//!   neither read an answer nor move one to another key.
//! - **One call per key across replicas.** A miss takes a short lock on the key in the
//!   same round trip as its lookup; the others poll for the filled entry, keeping a
//!   quarter of the time their deadline leaves (at most 1 s) for a fetch of their own,
//!   and fetch themselves if the lock holder gives up or has not filled it by then.
//! - **Writes.** One script bumps the upstream's write epoch, drops the entries the
//!   write affects (sets per tag; generation counters for whole RPCs) and publishes the
//!   invalidation, all before the write answers. A fill is refused if the epoch moved
//!   since its lookup, so an answer fetched across a write on another replica is never
//!   stored either.
//! - **Lease.** Each replica publishes a heartbeat every quarter lease on the
//!   invalidation channel and trusts its L1 only until `lease` after the send time of
//!   the last heartbeat of its own that it heard back. Redis delivers a channel's
//!   messages in order, so hearing one's own heartbeat means every invalidation
//!   published before it was heard. A replica that hears nothing (Redis down,
//!   subscription lost, process paused) stops serving from L1 within the lease, and
//!   empties L1 when it subscribes again.
//! - **Never a single point of failure.** Every operation is bounded by
//!   `GATEWAY_REDIS_TIMEOUT`; on any failure the call goes on as one process would
//!   (upstream, L1 under the lease rule, local quota share).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use aes_gcm::{Aes256Gcm, KeyInit};
use redis::{Script, aio::ConnectionManager};
use sha2::{Digest, Sha256};

use crate::config::RedisConfig;
use crate::entry::{Entry, Invalidation, Key, Tag};
use crate::error::Upstream;
use crate::metrics::Metrics;
use crate::rpc::Rpc;

mod channel;
mod codec;
mod scripts;
use scripts::{FILL, INVALIDATE, LOCK, LOOKUP, RESERVE, UNLOCK};

/// The value format; a change makes a new key space (a rolling upgrade never reads
/// the other version's bytes).
const FORMAT: u8 = 1;

/// The state shared through Redis. Cheap to share (`Arc`).
pub struct Shared {
    conn: ConnectionManager,
    client: redis::Client,
    prefix: String,
    /// `{prefix:account}:v1`: follows the account when its key rotates.
    ns: std::sync::RwLock<Arc<str>>,
    channel: String,
    cipher: Option<Aes256Gcm>,
    timeout: Duration,
    lease: Duration,
    metrics: Arc<Metrics>,
    replica: u64,
    up: AtomicBool,
    base: Instant,
    /// L1 is trusted until this many nanoseconds after `base` (0: not yet).
    trusted_until: AtomicU64,
    /// Share of each rate limit allowed while Redis is down.
    pub local_quota_share: f64,
}

/// What a lookup found.
pub struct Lookup {
    /// The entry, if one is stored (fresh or within its stale window).
    pub entry: Option<Entry>,
    /// The upstream's write epoch when looked up (a fill must match it).
    epoch: u64,
    /// The RPC's generation when looked up (stored with a fill).
    generation: u64,
    /// This call holds the key's lock and must fetch (then fill or release).
    pub locked: bool,
    /// Someone (this call or another replica) held the key's lock when the entry was
    /// read, in the same atomic step.
    held: bool,
    /// The lock's owner token.
    owner: u64,
}

/// What the shared level needs of a replica's own memory (L1, the `cache` module, which
/// sits above this one and implements it): to drop what another replica's write made
/// stale, and to forget everything when invalidations may have been missed.
pub trait Local: Send + Sync + 'static {
    /// Drops what `what` made stale, and marks answers still in flight as stale.
    fn invalidate_local(&self, what: &Invalidation);
    /// Drops everything, and marks answers still in flight as stale.
    fn clear_local(&self);
}

/// Redis did not answer in time, or failed.
#[derive(Debug)]
pub struct Unavailable;

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("ns", &self.ns())
            .field("replica", &self.replica)
            .finish_non_exhaustive()
    }
}

// === impl Shared ===

impl Shared {
    /// Connects lazily (the gateway starts with Redis down) to the Redis of `config`,
    /// for the accounts identified by `account`.
    pub fn new(
        config: &RedisConfig,
        account: &str,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, String> {
        let mut info: redis::ConnectionInfo = config
            .url
            .expose()
            .parse()
            // Not the parser's message: it may quote the URL, password included.
            .map_err(|_| "GATEWAY_REDIS_URL is not a Redis URL".to_owned())?;
        if let Some(password) = &config.password {
            let redis_info = info
                .redis_settings()
                .clone()
                .set_password(password.expose());
            info = info.set_redis_settings(redis_info);
        }
        let client = match &config.ca {
            None => redis::Client::open(info),
            // A private CA instead of the public web roots.
            Some(ca) => redis::Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(ca.clone()),
                },
            ),
        }
        .map_err(|_| "GATEWAY_REDIS_URL names no usable Redis".to_owned())?;
        let manager = redis::aio::ConnectionManagerConfig::new()
            // Each operation has its own bound (`run`), the quota's a longer one.
            .set_response_timeout(None)
            .set_connection_timeout(Some(config.timeout.max(Duration::from_millis(200))))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(2));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), manager)
            .map_err(|e| format!("cannot set up the Redis connection: {:?}", e.kind()))?;
        let ns = format!("{{{}:{account}}}:v{FORMAT}", config.prefix);
        // One channel for the deployment, whatever the account: replicas that rotate a
        // key a moment apart still hear each other.
        let channel = format!("{}:v{FORMAT}:invalidations", config.prefix);
        let cipher = config
            .encryption_key
            .as_ref()
            .map(|k| Aes256Gcm::new((&k.0).into()));
        Ok(Arc::new(Self {
            conn,
            client,
            prefix: config.prefix.clone(),
            ns: std::sync::RwLock::new(ns.into()),
            channel,
            cipher,
            timeout: config.timeout,
            lease: config.lease,
            metrics,
            replica: fastrand::u64(..),
            up: AtomicBool::new(false),
            base: Instant::now(),
            trusted_until: AtomicU64::new(0),
            local_quota_share: config.local_quota_share,
        }))
    }

    /// Starts listening for invalidations (applied to the replica's memory, `local`) and
    /// sending heartbeats; the tasks end when aborted.
    pub fn start(self: &Arc<Self>, local: impl Local) -> Vec<tokio::task::JoinHandle<()>> {
        let first = self.clone();
        let check = tokio::spawn(async move {
            let mut conn = first.conn.clone();
            let ping = redis::cmd("PING");
            let reached = first
                .run_within(
                    "ping",
                    Duration::from_secs(1),
                    ping.query_async::<String>(&mut conn),
                )
                .await;
            if reached.is_err() {
                tracing::warn!(
                    "redis unreachable at start-up: serving from the upstream and this replica's memory (entries younger than the lease), with a local share of the quota, until it answers"
                );
            }
        });
        let listen = tokio::spawn(self.clone().listen(local));
        let beat = tokio::spawn(self.clone().heartbeat());
        vec![check, listen, beat]
    }

    /// Whether this replica may answer from its L1: it has heard its own heartbeat
    /// within the lease.
    pub fn l1_trusted(&self) -> bool {
        let now = self.nanos(Instant::now());
        now < self.trusted_until.load(Ordering::Acquire)
    }

    /// How long the in-memory cache is trusted without hearing invalidations.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// Whether Redis answered the last operation.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }

    fn ns(&self) -> Arc<str> {
        self.ns
            .read()
            .map(|n| n.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// Moves to the key space of `account` (the upstream credentials rotated).
    pub fn set_account(&self, account: &str) {
        let ns: Arc<str> = format!("{{{}:{account}}}:v{FORMAT}", self.prefix).into();
        let mut slot = self.ns.write().unwrap_or_else(|e| e.into_inner());
        *slot = ns;
    }

    fn entry_key(&self, key: &Key) -> String {
        let digest = Sha256::digest(key.request());
        let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        format!("{}:e:{}:{hex}", self.ns(), key.rpc().index())
    }

    fn lock_key(entry_key: &str) -> String {
        format!("{entry_key}:lock")
    }

    fn gen_key(&self, rpc: Rpc) -> String {
        format!("{}:g:{}", self.ns(), rpc.index())
    }

    fn epoch_key(&self, upstream: Upstream) -> String {
        format!("{}:x:{}", self.ns(), upstream.label())
    }

    fn tag_key(&self, upstream: Upstream, tag: Tag) -> String {
        format!("{}:t:{}:{:016x}", self.ns(), upstream.label(), tag.bits())
    }

    /// Runs one Redis operation within the timeout, recording it.
    async fn run<T, F>(&self, op: &'static str, f: F) -> Result<T, Unavailable>
    where
        F: std::future::Future<Output = redis::RedisResult<T>>,
    {
        self.run_within(op, self.timeout, f).await
    }

    async fn run_within<T, F>(
        &self,
        op: &'static str,
        timeout: Duration,
        f: F,
    ) -> Result<T, Unavailable>
    where
        F: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let started = Instant::now();
        let outcome = tokio::time::timeout(timeout, f).await;
        let ok = matches!(outcome, Ok(Ok(_)));
        self.metrics.redis(op, started, ok);
        self.set_up(ok);
        match outcome {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                tracing::debug!(op, kind = ?e.kind(), "redis operation failed");
                Err(Unavailable)
            }
            Err(_) => {
                tracing::debug!(op, ?timeout, "redis operation timed out");
                Err(Unavailable)
            }
        }
    }

    fn set_up(&self, up: bool) {
        if self.up.swap(up, Ordering::AcqRel) != up {
            self.metrics.redis_up(up);
            if up {
                tracing::info!("redis reachable: the shared cache, invalidations and quota are on");
            } else {
                tracing::warn!(
                    "redis unreachable: serving from the upstream and this replica's memory (within the lease), with a local share of the quota"
                );
            }
        }
    }

    /// Looks `key` up in L2; when it is absent and `lock` is asked, takes its lock.
    pub async fn lookup(
        &self,
        key: &Key,
        lock: bool,
        lock_for: Duration,
    ) -> Result<Lookup, Unavailable> {
        let entry_key = self.entry_key(key);
        let upstream = key.rpc().upstream().unwrap_or(Upstream::Fingerprint);
        let owner = fastrand::u64(1..);
        let mut conn = self.conn.clone();
        let script = Script::new(LOOKUP);
        let mut call = script.key(&entry_key);
        call.key(self.gen_key(key.rpc()))
            .key(self.epoch_key(upstream))
            .key(Self::lock_key(&entry_key))
            .arg(owner)
            .arg(millis(lock_for))
            .arg(if lock { "1" } else { "0" });
        let (value, generation, epoch, locked, held): (Vec<u8>, u64, u64, u8, u8) =
            self.run("lookup", call.invoke_async(&mut conn)).await?;
        let entry = if value.is_empty() {
            None
        } else {
            self.decode(&entry_key, &value, generation)
        };
        Ok(Lookup {
            entry,
            epoch,
            generation,
            locked: locked == 1,
            held: held == 1,
            owner,
        })
    }

    /// Takes the lock of `key` for a refresh of a stale entry.
    pub async fn lock(
        &self,
        key: &Key,
        found: &mut Lookup,
        lock_for: Duration,
    ) -> Result<bool, Unavailable> {
        let entry_key = self.entry_key(key);
        let mut conn = self.conn.clone();
        let script = Script::new(LOCK);
        let mut call = script.key(Self::lock_key(&entry_key));
        call.arg(found.owner).arg(millis(lock_for));
        let got: u8 = self.run("lock", call.invoke_async(&mut conn)).await?;
        found.locked = got == 1;
        Ok(found.locked)
    }

    /// Waits for another replica's fill of `key` until `deadline`: the entry once it
    /// is fresh, or `None` when the lock is gone without one (the holder gave up).
    pub async fn wait_for_fill(
        &self,
        key: &Key,
        deadline: tokio::time::Instant,
    ) -> Result<Option<Entry>, Unavailable> {
        let mut pause = Duration::from_millis(5);
        loop {
            let now = tokio::time::Instant::now();
            if now + pause >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(40));
            let found = self.lookup(key, false, Duration::ZERO).await?;
            let fresh = found.entry.filter(|e| e.is_fresh(Instant::now()));
            if fresh.is_some() {
                return Ok(fresh);
            }
            // The entry and the lock are read in one step: reading the lock apart
            // would let a fill land in between, and this call would take a lock
            // released by a fill for a lock given up, and fetch again.
            if !found.held {
                return Ok(None);
            }
        }
    }

    /// Stores `entry` for `key` (unless a write happened since `found` was looked up),
    /// and releases the lock if this call holds it.
    pub async fn fill(&self, key: &Key, entry: &Entry, found: &Lookup) {
        let entry_key = self.entry_key(key);
        let Some(value) = self.encode(&entry_key, entry, found.generation) else {
            self.release(key, found).await;
            return;
        };
        let upstream = key.rpc().upstream().unwrap_or(Upstream::Fingerprint);
        let keep = entry.ttl().saturating_add(entry.stale_for());
        let mut conn = self.conn.clone();
        let script = Script::new(FILL);
        let mut call = script.key(&entry_key);
        call.key(self.gen_key(key.rpc()))
            .key(self.epoch_key(upstream))
            .key(Self::lock_key(&entry_key));
        for tag in entry.tags() {
            call.key(self.tag_key(upstream, *tag));
        }
        call.arg(found.epoch)
            .arg(value)
            .arg(millis(keep).max(1))
            .arg(if found.locked { found.owner } else { 0 });
        let _: Result<u8, _> = self.run("fill", call.invoke_async(&mut conn)).await;
    }

    /// Releases the lock of `key` if `found` holds it (the fetch failed).
    pub async fn release(&self, key: &Key, found: &Lookup) {
        if !found.locked {
            return;
        }
        let entry_key = self.entry_key(key);
        let mut conn = self.conn.clone();
        let script = Script::new(UNLOCK);
        let mut call = script.key(Self::lock_key(&entry_key));
        call.arg(found.owner);
        let _: Result<u8, _> = self.run("unlock", call.invoke_async(&mut conn)).await;
    }

    /// Drops what a write made stale from L2 and tells every replica, before the write
    /// answers. If Redis cannot be reached, the other replicas stop trusting their L1
    /// within the lease (they cannot hear their heartbeats either).
    pub async fn invalidate(&self, what: &Invalidation) {
        let upstream = what.upstream;
        let rpcs: Vec<Rpc> = if what.all {
            Rpc::ALL
                .into_iter()
                .filter(|r| r.upstream() == Some(upstream))
                .collect()
        } else {
            what.rpcs.clone()
        };
        let mut conn = self.conn.clone();
        let script = Script::new(INVALIDATE);
        let mut call = script.key(self.epoch_key(upstream));
        for rpc in &rpcs {
            call.key(self.gen_key(*rpc));
        }
        for tag in &what.tags {
            call.key(self.tag_key(upstream, *tag));
        }
        call.arg(rpcs.len())
            .arg(&self.channel)
            .arg(self.message(what));
        let _: Result<u8, _> = self.run("invalidate", call.invoke_async(&mut conn)).await;
    }

    /// Reserves a place under `rules` for `upstream` (`scope` names the rule set) within
    /// `max_wait`: `Ok(Ok(wait))` admitted after `wait`, `Ok(Err(retry))` refused.
    pub async fn reserve(
        &self,
        upstream: Upstream,
        scope: &'static str,
        rules: &[(Duration, Duration)],
        max_wait: Duration,
    ) -> Result<Result<Duration, Duration>, Unavailable> {
        let mut conn = self.conn.clone();
        let script = Script::new(RESERVE);
        let mut call = script.prepare_invoke();
        for i in 0..rules.len() {
            call.key(format!("{}:q:{}:{scope}:{i}", self.ns(), upstream.label()));
        }
        call.arg(micros(max_wait));
        for (interval, tolerance) in rules {
            call.arg(micros(*interval)).arg(micros(*tolerance));
        }
        // A quota decision is worth a longer wait than a cache lookup: falling back to
        // the local share lets more through than the shared rate. Still bounded, and
        // within the call's deadline.
        let bound = (self.timeout * 4).min(max_wait).max(self.timeout);
        let (admitted, wait): (u8, u64) = self
            .run_within("quota", bound, call.invoke_async(&mut conn))
            .await?;
        let wait = Duration::from_micros(wait);
        Ok(if admitted == 1 { Ok(wait) } else { Err(wait) })
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(millis)
        .unwrap_or(0)
}

fn upstream_index(upstream: Upstream) -> u8 {
    match upstream {
        Upstream::Fingerprint => 0,
        Upstream::Stytch => 1,
    }
}

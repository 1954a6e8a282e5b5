//! The answer cache: a moka TTL cache bounded by bytes, shared by every read RPC.
//!
//! Identical concurrent misses wait for one upstream call (moka's `or_try_insert_with`).
//! Only answers are cached: successes, and NOT_FOUND for a short while. Errors are not.

use std::{
    any::Any,
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use moka::{Expiry, future::Cache as Moka};

use crate::error::{ApiError, Error};

/// Where an answer came from; sent to callers as the `x-cache` response metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Served from the cache (including answers fetched by a concurrent identical call).
    Hit,
    /// Fetched from the upstream by this call.
    Miss,
    /// The caller asked to skip the cache (`cache-control: no-cache`).
    Bypass,
}

/// What identifies one answer: the RPC, the upstream identity and the whole request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    rpc: &'static str,
    identity: Arc<str>,
    request: Vec<u8>,
}

/// A cached answer, with the time it may live.
#[derive(Clone)]
struct Entry {
    stored: Stored,
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

// === impl Key ===

impl Key {
    /// The key of `request` to `rpc` on the upstream known as `identity`.
    pub fn new(rpc: &'static str, identity: &str, request: &impl prost::Message) -> Self {
        // prost encodes deterministically (fields in order, no maps in requests).
        Self {
            rpc,
            identity: Arc::from(identity),
            request: request.encode_to_vec(),
        }
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
                .build()
        });
        Self { inner }
    }

    /// The cached answer for `key`, or the answer of `fetch`, cached for `ttl`
    /// (NOT_FOUND for `not_found_ttl`). A zero TTL, or `bypass`, skips the lookup.
    pub async fn get_or_fetch<T, F>(
        &self,
        key: Key,
        ttl: Duration,
        not_found_ttl: Duration,
        bypass: bool,
        fetch: F,
    ) -> Result<(T, CacheStatus), Arc<Error>>
    where
        T: prost::Message + Clone + Send + Sync + 'static,
        F: Future<Output = Result<T, Error>>,
    {
        let Some(cache) = self.inner.as_ref().filter(|_| !ttl.is_zero()) else {
            let status = if bypass {
                CacheStatus::Bypass
            } else {
                CacheStatus::Miss
            };
            return fetch.await.map(|v| (v, status)).map_err(Arc::new);
        };
        let key_len = key.request.len() + key.identity.len();
        let load = async move {
            match fetch.await {
                Ok(value) => Ok(Entry::value(value, ttl, key_len)),
                Err(Error::Api(api)) if api.is_not_found() && !not_found_ttl.is_zero() => {
                    Ok(Entry::not_found(api, not_found_ttl, key_len))
                }
                Err(e) => Err(e),
            }
        };
        if bypass {
            let entry = load.await.map_err(Arc::new)?;
            cache.insert(key, entry.clone()).await;
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

    /// Removes every cached answer.
    pub fn clear(&self) {
        if let Some(cache) = &self.inner {
            cache.invalidate_all();
        }
    }
}

// === impl Entry ===

impl Entry {
    fn value<T: prost::Message + Send + Sync + 'static>(
        value: T,
        ttl: Duration,
        key_len: usize,
    ) -> Self {
        let weight = weight(value.encoded_len() + key_len);
        Self {
            stored: Stored::Value(Arc::new(value)),
            ttl,
            weight,
        }
    }

    fn not_found(api: ApiError, ttl: Duration, key_len: usize) -> Self {
        Self {
            weight: weight(256 + key_len),
            stored: Stored::NotFound(api),
            ttl,
        }
    }

    /// The answer: a copy of the value, or the NOT_FOUND error again.
    fn open<T: Clone + 'static>(&self) -> Result<T, Arc<Error>> {
        match &self.stored {
            Stored::Value(any) => any.downcast_ref::<T>().cloned().ok_or_else(|| {
                // Keys include the RPC name, so one key always holds one type.
                Arc::new(Error::Malformed {
                    upstream: crate::error::Upstream::Fingerprint,
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

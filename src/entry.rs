//! What the cache keeps, at both of its levels: an answer ([`Entry`]) under its
//! [`Key`], tagged with what a write can change in it ([`Tag`]), and what a write makes
//! stale ([`Invalidation`]). The in-memory level (`cache`) and the level shared through
//! Redis (`shared`) both speak these types, so they live below both.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;

use crate::error::Upstream;
use crate::rpc::Rpc;

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
/// travel to the other replicas (see the `shared` module).
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
    /// The slot where a stale entry's refresh is coalesced (see `Cache::load`).
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

/// Bytes an entry costs beyond its key, answer and tags: moka's nodes, deques and timer
/// wheel, the entry's `Arc`s and the allocator's rounding. Measured (bench/run.sh): 100,000
/// cached 721-byte GetEvent answers grew RSS by 1,283 bytes each, ~500 beyond the
/// payload; with this overhead a full 8 MiB cache grows RSS by 0.92-1.05x its bound.
const ENTRY_OVERHEAD: usize = 512;

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
    pub fn owned(&self) -> Self {
        Self {
            rpc: self.rpc,
            request: Bytes::copy_from_slice(&self.request),
            refresh: self.refresh,
        }
    }

    /// The slot where refreshes of this key's stale entry meet.
    pub fn refresh(&self) -> Self {
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

    /// The same answer, expired: handed to its callers but not kept.
    pub fn expired_at_once(mut self) -> Self {
        self.ttl = Duration::ZERO;
        self.stale_for = Duration::ZERO;
        self
    }

    /// What it costs the cache's byte bound, beyond its key.
    pub fn weight(&self) -> u32 {
        self.weight
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

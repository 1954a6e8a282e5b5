//! The stored form of an answer in Redis: version, generation, fetch time, TTL, stale
//! window, tags and frame; sealed with AES-256-GCM, bound to its key, when a key is set.

use std::time::{Duration, Instant};

use aes_gcm::{Nonce, aead::Aead, aead::Payload};

use super::{FORMAT, Shared, millis, unix_millis};
use crate::entry::{Entry, Tag};

impl Shared {
    /// The stored form: version, generation, fetch time, TTL, stale window, tags, frame;
    /// sealed when a key is configured.
    pub(super) fn encode(
        &self,
        entry_key: &str,
        entry: &Entry,
        generation: u64,
    ) -> Option<Vec<u8>> {
        let frame = entry.frame()?;
        let tags = entry.tags();
        let mut plain = Vec::with_capacity(41 + tags.len() * 8 + frame.len());
        plain.push(FORMAT);
        plain.extend_from_slice(&generation.to_be_bytes());
        let stored = unix_millis().saturating_sub(millis(entry.age(Instant::now())));
        plain.extend_from_slice(&stored.to_be_bytes());
        plain.extend_from_slice(&millis(entry.ttl()).to_be_bytes());
        plain.extend_from_slice(&millis(entry.stale_for()).to_be_bytes());
        plain.extend_from_slice(&u32::try_from(tags.len()).ok()?.to_be_bytes());
        for tag in tags {
            plain.extend_from_slice(&tag.bits().to_be_bytes());
        }
        plain.extend_from_slice(frame);
        let Some(cipher) = &self.cipher else {
            return Some(plain);
        };
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).ok()?;
        let sealed = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: entry_key.as_bytes(),
                },
            )
            .ok()?;
        let mut out = Vec::with_capacity(12 + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Some(out)
    }

    /// The entry stored as `value`, if it opens, is whole, and is of the RPC's current
    /// generation (an RPC-wide invalidation bumps it).
    pub(super) fn decode(&self, entry_key: &str, value: &[u8], generation: u64) -> Option<Entry> {
        let opened;
        let plain = match &self.cipher {
            None => value,
            Some(cipher) => {
                if value.len() < 12 {
                    return self.rejected("too short to be sealed");
                }
                let (nonce, sealed) = value.split_at(12);
                match cipher.decrypt(
                    Nonce::from_slice(nonce),
                    Payload {
                        msg: sealed,
                        aad: entry_key.as_bytes(),
                    },
                ) {
                    Ok(p) => {
                        opened = p;
                        &opened
                    }
                    Err(_) => return self.rejected("it does not authenticate"),
                }
            }
        };
        let mut r = Reader(plain);
        if r.u8()? != FORMAT {
            return self.rejected("another format");
        }
        if r.u64()? != generation {
            return None;
        }
        let stored = r.u64()?;
        let ttl = Duration::from_millis(r.u64()?);
        let stale_for = Duration::from_millis(r.u64()?);
        let n = usize::try_from(r.u32()?).ok()?;
        if n > 100_000 {
            return self.rejected("too many tags");
        }
        let mut tags = Vec::with_capacity(n);
        for _ in 0..n {
            tags.push(Tag::from_bits(r.u64()?));
        }
        let age = Duration::from_millis(unix_millis().saturating_sub(stored));
        Some(Entry::restored(r.0, tags, ttl, stale_for, age))
    }

    fn rejected(&self, why: &str) -> Option<Entry> {
        tracing::warn!(
            why,
            "a shared cache value was refused and treated as absent"
        );
        self.metrics.redis("decode", Instant::now(), false);
        None
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take::<4>().map(u32::from_be_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take::<8>().map(u64::from_be_bytes)
    }
}

//! The invalidation channel: what one replica publishes (invalidations, heartbeats),
//! and what each hears (applied to its memory; its own heartbeats renew its lease).

use std::{
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use futures_util::StreamExt;

use super::{Local, Shared, unix_millis, upstream_index};
use crate::entry::{Invalidation, Tag};
use crate::error::Upstream;
use crate::rpc::Rpc;

impl Shared {
    /// `i<replica>:<unix ms>:<upstream>:<all>:<rpc indexes>:<tags>`.
    pub(super) fn message(&self, what: &Invalidation) -> String {
        let rpcs: Vec<String> = what.rpcs.iter().map(|r| r.index().to_string()).collect();
        let tags: Vec<String> = what
            .tags
            .iter()
            .map(|t| format!("{:x}", t.bits()))
            .collect();
        format!(
            "i{:x}:{}:{}:{}:{}:{}",
            self.replica,
            unix_millis(),
            upstream_index(what.upstream),
            u8::from(what.all),
            rpcs.join(","),
            tags.join(",")
        )
    }

    fn parse(&self, text: &str) -> Option<Heard> {
        if let Some(rest) = text.strip_prefix('h') {
            let (replica, sent) = rest.split_once(':')?;
            let replica = u64::from_str_radix(replica, 16).ok()?;
            return Some(Heard::Heartbeat {
                own: replica == self.replica,
                sent: sent.parse().ok()?,
            });
        }
        let rest = text.strip_prefix('i')?;
        let mut parts = rest.splitn(6, ':');
        let replica = u64::from_str_radix(parts.next()?, 16).ok()?;
        let sent_ms: u64 = parts.next()?.parse().ok()?;
        let upstream = match parts.next()? {
            "0" => Upstream::Fingerprint,
            "1" => Upstream::Stytch,
            _ => return None,
        };
        let all = parts.next()? == "1";
        let rpcs = parts
            .next()?
            .split(',')
            .filter(|s| !s.is_empty())
            .filter_map(|s| s.parse::<usize>().ok())
            .filter_map(|i| Rpc::ALL.get(i).copied())
            .collect();
        let tags = parts
            .next()?
            .split(',')
            .filter(|s| !s.is_empty())
            .filter_map(|s| u64::from_str_radix(s, 16).ok())
            .map(Tag::from_bits)
            .collect();
        Some(Heard::Invalidation {
            own: replica == self.replica,
            sent_ms,
            what: Invalidation {
                upstream,
                rpcs,
                tags,
                all,
            },
        })
    }

    /// Subscribes (again after every loss), applies invalidations to `local`, and
    /// renews the lease on each own heartbeat heard.
    pub(super) async fn listen(self: Arc<Self>, local: impl Local) {
        let mut pause = Duration::from_millis(100);
        loop {
            let subscribed = async {
                let mut pubsub = self.client.get_async_pubsub().await?;
                pubsub.subscribe(&self.channel).await?;
                redis::RedisResult::Ok(pubsub)
            };
            let pubsub = match tokio::time::timeout(Duration::from_secs(2), subscribed).await {
                Ok(Ok(p)) => p,
                _ => {
                    self.set_up(false);
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                    continue;
                }
            };
            pause = Duration::from_millis(100);
            // Invalidations may have been missed while not subscribed: start afresh.
            local.clear_local();
            tracing::info!("subscribed to invalidations; the in-memory cache starts empty");
            let mut messages = pubsub.into_on_message();
            while let Some(msg) = messages.next().await {
                let Ok(text) = std::str::from_utf8(msg.get_payload_bytes()) else {
                    continue;
                };
                match self.parse(text) {
                    Some(Heard::Heartbeat { own: true, sent }) => {
                        let until = sent.saturating_add(
                            u64::try_from(self.lease.as_nanos()).unwrap_or(u64::MAX),
                        );
                        self.trusted_until.fetch_max(until, Ordering::AcqRel);
                    }
                    Some(Heard::Invalidation {
                        own: false,
                        sent_ms,
                        what,
                    }) => {
                        local.invalidate_local(&what);
                        let delay = unix_millis().saturating_sub(sent_ms);
                        self.metrics.invalidation_delay(delay as f64 / 1000.0);
                    }
                    _ => {}
                }
            }
            // The subscription ended: L1 is distrusted once the lease runs out.
            tracing::warn!("invalidation subscription lost; resubscribing");
        }
    }

    /// Publishes a heartbeat every quarter lease.
    pub(super) async fn heartbeat(self: Arc<Self>) {
        let mut every = tokio::time::interval(self.lease / 4);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let sent = self.nanos(Instant::now());
            let mut conn = self.conn.clone();
            let message = format!("h{:x}:{sent}", self.replica);
            let mut publish = redis::cmd("PUBLISH");
            publish.arg(&self.channel).arg(message);
            let _ = self
                .run("heartbeat", publish.query_async::<i64>(&mut conn))
                .await;
        }
    }
}

/// A message heard on the channel.
enum Heard {
    Heartbeat {
        own: bool,
        sent: u64,
    },
    Invalidation {
        own: bool,
        sent_ms: u64,
        what: Invalidation,
    },
}

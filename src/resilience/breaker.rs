//! A circuit breaker per upstream, after resilience4j's: a failure rate over a sliding
//! time window, judged only once the window holds a minimum number of calls.
//!
//! - **Closed**: every call goes through, and its outcome is counted in one-second
//!   buckets. When the window holds at least `min_calls` and the failed share reaches
//!   `failure_ratio`, the breaker opens.
//! - **Open**: calls fail at once, told when the breaker will try again, for `open_for`.
//! - **Half-open**: up to `probes` calls go through at once. One failure reopens the
//!   breaker; `probes` successes close it.
//!
//! Failures are what says the vendor is unwell: connect errors, resets, timeouts, 5xx
//! and HTML error pages. A 4xx (a bad request, a missing event, a 429) is the vendor
//! working as designed and counts as a success. Every transition is logged, counted in
//! metrics, and published on a watch channel that the server mirrors into health.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{sync::watch, time::Instant};

use crate::config::BreakerConfig;
use crate::error::Upstream;
use crate::metrics::Metrics;

/// A breaker's state, as published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls fail fast.
    Open,
    /// A few probe calls go through.
    HalfOpen,
}

/// One upstream's breaker.
#[derive(Debug)]
pub struct Breaker {
    upstream: Upstream,
    config: BreakerConfig,
    inner: Mutex<Inner>,
    published: watch::Sender<BreakerState>,
    metrics: Arc<Metrics>,
}

#[derive(Debug)]
struct Inner {
    state: State,
    /// One bucket per second of the window, indexed by second modulo its length.
    buckets: Vec<Bucket>,
    started: Instant,
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// The second (since `started`) this bucket counts.
    second: u64,
    calls: u32,
    failures: u32,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed,
    Open { until: Instant },
    HalfOpen { in_flight: u32, successes: u32 },
}

/// The right to make one call; say how it went with [`Breaker::record`]. A probe
/// dropped without a verdict (its caller went away) frees its place.
#[derive(Debug)]
pub struct Ticket {
    probe: Option<Arc<Breaker>>,
}

/// How long a caller refused while half-open should wait: about one probe's answer.
const HALF_OPEN_RETRY: Duration = Duration::from_millis(500);

// === impl Breaker ===

impl Breaker {
    /// A closed breaker.
    pub fn new(upstream: Upstream, config: BreakerConfig, metrics: Arc<Metrics>) -> Self {
        let seconds = config.window.as_secs().max(1) as usize;
        Self {
            upstream,
            config,
            inner: Mutex::new(Inner {
                state: State::Closed,
                buckets: vec![Bucket::default(); seconds],
                started: Instant::now(),
            }),
            published: watch::channel(BreakerState::Closed).0,
            metrics,
        }
    }

    /// The state, published on every change.
    pub fn subscribe(&self) -> watch::Receiver<BreakerState> {
        self.published.subscribe()
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        *self.published.borrow()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The state is plain numbers: usable even if a holder panicked.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits one call, or answers how long until the breaker lets calls through.
    pub fn admit(self: &Arc<Self>) -> Result<Ticket, Duration> {
        if self.config.min_calls == 0 {
            return Ok(Ticket { probe: None });
        }
        let now = Instant::now();
        let mut inner = self.lock();
        match inner.state {
            State::Closed => Ok(Ticket { probe: None }),
            State::Open { until } if now < until => Err(until - now),
            State::Open { .. } => {
                inner.state = State::HalfOpen {
                    in_flight: 1,
                    successes: 0,
                };
                drop(inner);
                self.transition(BreakerState::HalfOpen, "letting probes through");
                Ok(Ticket {
                    probe: Some(self.clone()),
                })
            }
            State::HalfOpen {
                in_flight,
                successes,
            } => {
                if in_flight + successes >= self.config.probes {
                    return Err(HALF_OPEN_RETRY);
                }
                inner.state = State::HalfOpen {
                    in_flight: in_flight + 1,
                    successes,
                };
                Ok(Ticket {
                    probe: Some(self.clone()),
                })
            }
        }
    }

    /// Records how the call admitted with `ticket` went (`failed`: the vendor looked
    /// unwell).
    pub fn record(&self, mut ticket: Ticket, failed: bool) {
        let probe = ticket.probe.take().is_some();
        if self.config.min_calls == 0 {
            return;
        }
        let now = Instant::now();
        let mut inner = self.lock();
        match inner.state {
            State::Closed => {
                let (calls, failures) = inner.count(now, failed, self.config.window);
                let judged = calls >= self.config.min_calls
                    && f64::from(failures) >= self.config.failure_ratio * f64::from(calls);
                if failed && judged {
                    inner.open(now + self.config.open_for);
                    drop(inner);
                    self.transition(
                        BreakerState::Open,
                        &format!(
                            "{failures} of the last {calls} calls failed within {:?}; failing fast for {:?}",
                            self.config.window, self.config.open_for
                        ),
                    );
                }
            }
            State::HalfOpen {
                in_flight,
                successes,
            } if probe => {
                if failed {
                    inner.open(now + self.config.open_for);
                    drop(inner);
                    self.transition(BreakerState::Open, "a probe failed");
                } else if successes + 1 >= self.config.probes {
                    inner.close();
                    drop(inner);
                    self.transition(BreakerState::Closed, "the probes succeeded");
                } else {
                    inner.state = State::HalfOpen {
                        in_flight: in_flight.saturating_sub(1),
                        successes: successes + 1,
                    };
                }
            }
            // A call admitted before the state changed: its outcome is old news.
            State::HalfOpen { .. } | State::Open { .. } => {}
        }
    }

    /// A probe that ended without a verdict frees its place.
    fn abandon_probe(&self) {
        let mut inner = self.lock();
        if let State::HalfOpen {
            in_flight,
            successes,
        } = inner.state
        {
            inner.state = State::HalfOpen {
                in_flight: in_flight.saturating_sub(1),
                successes,
            };
        }
    }

    fn transition(&self, to: BreakerState, why: &str) {
        let label = match to {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        };
        match to {
            BreakerState::Open => tracing::warn!(
                upstream = %self.upstream,
                state = label,
                "circuit breaker opened: {why}"
            ),
            _ => tracing::info!(
                upstream = %self.upstream,
                state = label,
                "circuit breaker {label}: {why}"
            ),
        }
        self.metrics.circuit(self.upstream, label);
        self.published.send_replace(to);
    }
}

// === impl Inner ===

impl Inner {
    /// Adds one outcome to the window; answers the window's calls and failures.
    fn count(&mut self, now: Instant, failed: bool, window: Duration) -> (u32, u32) {
        let second = now.duration_since(self.started).as_secs();
        let len = self.buckets.len() as u64;
        let index = (second % len) as usize;
        if let Some(bucket) = self.buckets.get_mut(index) {
            if bucket.second != second {
                *bucket = Bucket {
                    second,
                    ..Bucket::default()
                };
            }
            bucket.calls += 1;
            bucket.failures += u32::from(failed);
        }
        let oldest = second.saturating_sub(window.as_secs().max(1) - 1);
        self.buckets
            .iter()
            .filter(|b| b.second >= oldest && b.second <= second && b.calls > 0)
            .fold((0, 0), |(c, f), b| (c + b.calls, f + b.failures))
    }

    fn open(&mut self, until: Instant) {
        self.state = State::Open { until };
    }

    fn close(&mut self) {
        self.state = State::Closed;
        // Start counting afresh: the failures that opened it are history.
        self.buckets.fill(Bucket::default());
    }
}

// === impl Ticket ===

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(breaker) = self.probe.take() {
            breaker.abandon_probe();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(min_calls: u32) -> Arc<Breaker> {
        Arc::new(Breaker::new(
            Upstream::Fingerprint,
            BreakerConfig {
                failure_ratio: 0.5,
                window: Duration::from_secs(10),
                min_calls,
                open_for: Duration::from_secs(5),
                probes: 2,
            },
            Arc::new(Metrics::new()),
        ))
    }

    fn call(b: &Arc<Breaker>, failed: bool) -> Result<(), Duration> {
        let ticket = b.admit()?;
        b.record(ticket, failed);
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn opens_on_a_failure_rate_only_past_the_minimum() {
        let b = breaker(10);
        for _ in 0..9 {
            call(&b, true).unwrap();
        }
        assert_eq!(
            b.state(),
            BreakerState::Closed,
            "9 calls are below the minimum"
        );
        call(&b, true).unwrap();
        assert_eq!(b.state(), BreakerState::Open);
        let wait = b.admit().unwrap_err();
        assert_eq!(wait, Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_healthy_majority_keeps_it_closed() {
        let b = breaker(10);
        for i in 0..100 {
            call(&b, i % 3 == 0).unwrap();
        }
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn old_failures_leave_the_window() {
        let b = breaker(10);
        for _ in 0..9 {
            call(&b, true).unwrap();
        }
        tokio::time::advance(Duration::from_secs(11)).await;
        for _ in 0..9 {
            call(&b, false).unwrap();
        }
        call(&b, true).unwrap();
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_probes_close_or_reopen_it() {
        let b = breaker(4);
        for _ in 0..4 {
            call(&b, true).unwrap();
        }
        assert_eq!(b.state(), BreakerState::Open);
        tokio::time::advance(Duration::from_secs(5)).await;
        let first = b.admit().unwrap();
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let second = b.admit().unwrap();
        assert!(b.admit().is_err(), "only two probes at once");
        b.record(first, false);
        b.record(second, false);
        assert_eq!(b.state(), BreakerState::Closed);

        for _ in 0..4 {
            call(&b, true).unwrap();
        }
        tokio::time::advance(Duration::from_secs(5)).await;
        call(&b, true).unwrap();
        assert_eq!(b.state(), BreakerState::Open, "a failed probe reopens it");
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_probe_frees_its_place() {
        let b = breaker(2);
        call(&b, true).unwrap();
        call(&b, true).unwrap();
        tokio::time::advance(Duration::from_secs(5)).await;
        let one = b.admit().unwrap();
        let two = b.admit().unwrap();
        assert!(b.admit().is_err());
        drop(one);
        let three = b.admit().unwrap();
        b.record(two, false);
        b.record(three, false);
        assert_eq!(b.state(), BreakerState::Closed);
    }
}

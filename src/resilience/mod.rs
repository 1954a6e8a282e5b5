//! Staying useful when a vendor slows down or fails.
//!
//! - **The caller's deadline bounds everything.** The edge layer reads `grpc-timeout`
//!   (or applies `GATEWAY_DEFAULT_DEADLINE`) and runs the call within [`within`]; every
//!   attempt, backoff sleep, quota wait and wait on a coalesced call ends in time for the
//!   gateway to answer before the caller gives up.
//! - **Retries of what is safe to retry** ([`Guard::retry`]): reads only, on transport
//!   failures, 5xx, HTML error pages, timeouts and 429 (when its `Retry-After` fits),
//!   with exponential backoff and full jitter, within a per-upstream retry budget
//!   (tower's `TpsBudget`: a fraction of recent calls plus a floor).
//! - **A circuit breaker per upstream** ([`breaker`]).
//! - **A quota limiter per upstream credential** ([`limiter`]).
//!
//! The retry loop itself lives with the HTTP exchange (`upstream::Http::send`); this
//! module holds the policy and the state it consults.

pub mod breaker;
pub mod connections;
pub mod limiter;

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore},
    time::Instant,
};
use tower::retry::budget::{Budget, TpsBudget};

use crate::config::ResilienceConfig;
use crate::error::{Error, Upstream};
use crate::metrics::Metrics;
use crate::shared::Shared;
pub use breaker::{Breaker, BreakerState, Ticket};
pub use limiter::Limiter;

tokio::task_local! {
    /// The call being served on this task: its deadline and the upstream attempts made.
    static CALL: Arc<CallState>;
}

/// What the retry loop needs to know about the gRPC call it works for.
#[derive(Debug)]
pub struct CallState {
    /// When the gateway must have answered (the caller's deadline, less a margin to send
    /// the answer).
    deadline: Instant,
    attempts: AtomicU32,
}

/// What kind of upstream call this is, for retries and quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// A read (GET, or a Stytch lookup or list): retried.
    Read,
    /// A write: never retried here.
    Write,
    /// A fingerprint.com delete: never retried, and under the delete quota too.
    Delete,
    /// A write that creates something each time (an edge analysis): retried only when
    /// the request never left (no connection was opened), so it is never sent twice.
    Create,
}

/// The resilience state of one upstream: its breaker, retry budget and limiters.
#[derive(Debug)]
pub struct Guard {
    upstream: Upstream,
    policy: Arc<ResilienceConfig>,
    /// The circuit breaker.
    pub breaker: Arc<Breaker>,
    budget: TpsBudget,
    limiter: Option<Limiter>,
    delete_limiter: Option<Limiter>,
    /// With a shared Redis: the quota is kept there, and these (each rate times
    /// `GATEWAY_REDIS_LOCAL_QUOTA_SHARE`) stand in while it is out of reach.
    shared: Option<(Arc<Shared>, Option<Limiter>, Option<Limiter>)>,
    drain: Arc<Drain>,
    metrics: Arc<Metrics>,
}

/// Both upstreams' guards, built once per server.
#[derive(Debug, Clone)]
pub struct Guards {
    /// fingerprint.com's.
    pub fingerprint: Arc<Guard>,
    /// Stytch's.
    pub stytch: Arc<Guard>,
}

/// When the server's drain ends, once it has begun: no attempt, backoff or wait may
/// outlast it.
#[derive(Debug, Default)]
struct Drain(std::sync::OnceLock<Instant>);

/// How long to wait before the next attempt, or why there is none.
#[derive(Debug)]
pub enum Next {
    /// Retry after this backoff.
    After(Duration),
    /// Give up: answer with the last error.
    GiveUp,
}

/// The time kept back from a call's deadline to send the answer: 1/20 of the time the
/// caller allowed, at most 20 ms.
fn margin(timeout: Duration) -> Duration {
    (timeout / 20).min(Duration::from_millis(20))
}

/// The instant by which the gateway answers a call with these request headers: the
/// caller's `grpc-timeout`, or `default`, less a margin to send the answer.
pub fn deadline_of(headers: &http::HeaderMap, default: Duration) -> Instant {
    let timeout = headers
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout)
        .unwrap_or(default);
    let now = Instant::now();
    // A caller's deadline can be years away: cap it so the arithmetic cannot overflow.
    let timeout = timeout.min(Duration::from_secs(86_400 * 365));
    now + timeout - margin(timeout)
}

/// A `grpc-timeout` value: up to 8 digits and a unit.
pub fn parse_grpc_timeout(raw: &str) -> Option<Duration> {
    let (digits, unit) = raw.split_at(raw.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Runs `call` as the gRPC call with `deadline`; answers its output and the number of
/// upstream attempts it made.
pub async fn within<F: Future>(deadline: Instant, call: F) -> (F::Output, u32) {
    let state = Arc::new(CallState {
        deadline,
        attempts: AtomicU32::new(0),
    });
    let output = CALL.scope(state.clone(), call).await;
    (output, state.attempts.load(Ordering::Relaxed))
}

/// The deadline of the call this task serves, if it runs [`within`] one.
pub fn current_deadline() -> Option<Instant> {
    CALL.try_with(|c| c.deadline).ok()
}

/// Counts one upstream attempt for the call this task serves.
fn count_attempt() {
    let _ = CALL.try_with(|c| c.attempts.fetch_add(1, Ordering::Relaxed));
}

/// `rates`, each count times `share` (at least one call per period).
fn scaled(rates: &[crate::config::Rate], share: f64) -> Vec<crate::config::Rate> {
    rates
        .iter()
        .map(|r| {
            let mut r = *r;
            // Counts are small integers; the product fits.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let count = ((f64::from(r.count) * share).floor() as u32).max(1);
            r.count = count;
            r
        })
        .collect()
}

// === impl Guards ===

impl Guards {
    /// Fresh guards for both upstreams.
    pub fn new(
        policy: &ResilienceConfig,
        metrics: &Arc<Metrics>,
        shared: Option<&Arc<Shared>>,
    ) -> Self {
        let policy = Arc::new(policy.clone());
        let drain = Arc::new(Drain::default());
        let guard = |upstream: Upstream| {
            let (rates, deletes) = match upstream {
                Upstream::Fingerprint => (
                    &policy.fingerprint_rate,
                    Some(&policy.fingerprint_delete_rate),
                ),
                Upstream::Stytch => (&policy.stytch_rate, None),
            };
            Arc::new(Guard {
                upstream,
                breaker: Arc::new(Breaker::new(upstream, policy.breaker, metrics.clone())),
                budget: TpsBudget::new(
                    Duration::from_secs(10),
                    policy.budget_min_per_second,
                    policy.budget_ratio,
                ),
                limiter: Limiter::new(rates),
                delete_limiter: deletes.and_then(|d| Limiter::new(d)),
                shared: shared.map(|s| {
                    let share = s.local_quota_share;
                    (
                        s.clone(),
                        Limiter::new(&scaled(rates, share)),
                        deletes.and_then(|d| Limiter::new(&scaled(d, share))),
                    )
                }),
                policy: policy.clone(),
                drain: drain.clone(),
                metrics: metrics.clone(),
            })
        };
        Self {
            fingerprint: guard(Upstream::Fingerprint),
            stytch: guard(Upstream::Stytch),
        }
    }

    /// From now on, every call's deadline is at most `end` (the end of the drain).
    pub fn drain_by(&self, end: Instant) {
        let _ = self.fingerprint.drain.0.set(end);
    }

    /// The guard of `upstream`.
    pub fn of(&self, upstream: Upstream) -> &Arc<Guard> {
        match upstream {
            Upstream::Fingerprint => &self.fingerprint,
            Upstream::Stytch => &self.stytch,
        }
    }
}

// === impl Guard ===

impl Guard {
    /// The upstream this guard is for.
    pub fn upstream(&self) -> Upstream {
        self.upstream
    }

    /// The deadline of the current call: the task's, or the default from now; never past
    /// the end of a drain under way.
    pub fn deadline(&self) -> Instant {
        let call = current_deadline().unwrap_or_else(|| {
            let d = self.policy.default_deadline;
            Instant::now() + d - margin(d)
        });
        match self.drain.0.get() {
            Some(end) => call.min(*end),
            None => call,
        }
    }

    /// The time one attempt may take.
    pub fn attempt_timeout(&self) -> Duration {
        self.policy.attempt_timeout
    }

    /// The time allowed to connect.
    pub fn connect_timeout(&self) -> Duration {
        self.policy.connect_timeout
    }

    /// Clears one attempt to start: the breaker admits it and the quota has room for it
    /// in time (waiting for that room when it comes before `deadline`). Counts the
    /// attempt, and a retry against the budget's deposits.
    pub async fn admit(
        &self,
        kind: CallKind,
        attempt: u32,
        deadline: Instant,
    ) -> Result<Ticket, Error> {
        let ticket = self.breaker.admit().map_err(|retry_after| {
            self.metrics.not_sent(self.upstream, "circuit_open");
            Error::CircuitOpen {
                upstream: self.upstream,
                retry_after,
            }
        })?;
        // The strict delete quota first: when it has no room, the general quota keeps
        // its own. (Room reserved in one and refused by the other is lost: never more
        // calls than a quota allows, at worst fewer.)
        let limiters = [
            (kind == CallKind::Delete)
                .then_some(self.delete_limiter.as_ref())
                .flatten()
                .map(|l| (l, "FINGERPRINT_DELETE_RATE_LIMIT")),
            self.limiter.as_ref().map(|l| (l, self.rate_setting())),
        ];
        // A turn is only worth taking with time left to make the attempt.
        let deadline = deadline.checked_sub(self.min_attempt()).unwrap_or(deadline);
        let mut until = None;
        for (i, pair) in limiters.into_iter().enumerate() {
            let Some((limiter, setting)) = pair else {
                continue;
            };
            let reserved = match &self.shared {
                None => limiter.reserve(deadline),
                Some((shared, local, local_deletes)) => {
                    let now = Instant::now();
                    let scope = if i == 0 { "delete" } else { "all" };
                    let shared_room = shared
                        .reserve(
                            self.upstream,
                            scope,
                            &limiter.rules(),
                            deadline.saturating_duration_since(now),
                        )
                        .await;
                    match shared_room {
                        Ok(Ok(wait)) => Ok((!wait.is_zero()).then(|| now + wait)),
                        Ok(Err(retry_after)) => Err(retry_after),
                        // Redis out of reach: this replica's share of the rate.
                        Err(_) => {
                            let local = if i == 0 { local_deletes } else { local };
                            local.as_ref().map_or(Ok(None), |l| l.reserve(deadline))
                        }
                    }
                }
            };
            match reserved {
                Ok(at) => until = until.max(at),
                Err(retry_after) => {
                    self.metrics.not_sent(self.upstream, "quota");
                    return Err(Error::QuotaExhausted {
                        upstream: self.upstream,
                        setting,
                        retry_after,
                    });
                }
            }
        }
        if let Some(at) = until {
            tokio::time::sleep_until(at).await;
        }
        if attempt == 0 {
            self.budget.deposit();
        } else {
            self.metrics.retry(self.upstream);
        }
        count_attempt();
        Ok(ticket)
    }

    fn rate_setting(&self) -> &'static str {
        match self.upstream {
            Upstream::Fingerprint => "FINGERPRINT_RATE_LIMIT",
            Upstream::Stytch => "STYTCH_RATE_LIMIT",
        }
    }

    /// After attempt number `attempt` (0 for the first) failed with `error`: whether
    /// and when to try again.
    pub fn retry(&self, kind: CallKind, attempt: u32, error: &Error, deadline: Instant) -> Next {
        let retryable = match kind {
            CallKind::Read => error.is_retryable(),
            CallKind::Create => matches!(error, Error::Connect { .. }),
            CallKind::Write | CallKind::Delete => false,
        };
        if !retryable {
            return Next::GiveUp;
        }
        if attempt + 1 >= self.policy.max_attempts {
            return Next::GiveUp;
        }
        let wait = match error.upstream_retry_after() {
            // The upstream said when: that, if it fits.
            Some(after) => after,
            None => self.backoff(attempt),
        };
        // The wait must leave time for an attempt worth making.
        let now = Instant::now();
        if now + wait + self.min_attempt() > deadline {
            self.metrics.not_sent(self.upstream, "deadline");
            return Next::GiveUp;
        }
        if !self.budget.withdraw() {
            self.metrics.not_sent(self.upstream, "budget");
            return Next::GiveUp;
        }
        Next::After(wait)
    }

    /// Full jitter: a random wait from zero to `base * 2^attempt`, capped.
    fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .policy
            .backoff
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.policy.backoff_max);
        ceiling.mul_f64(fastrand::f64())
    }

    /// The least time left that makes an attempt worth starting: the vendor cannot
    /// answer in less.
    pub fn min_attempt(&self) -> Duration {
        Duration::from_millis(10)
    }
}

/// The bound on calls the services work on at once (`GATEWAY_MAX_IN_FLIGHT`).
#[derive(Debug, Clone)]
pub struct InFlight {
    semaphore: Arc<Semaphore>,
    limit: usize,
    metrics: Arc<Metrics>,
}

/// One call's place among the calls in flight; freed when dropped.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    metrics: Arc<Metrics>,
}

// === impl InFlight ===

impl InFlight {
    /// At most `limit` calls at once.
    pub fn new(limit: usize, metrics: Arc<Metrics>) -> Self {
        Self {
            semaphore: Arc::new(Semaphore::new(limit)),
            limit,
            metrics,
        }
    }

    /// A place for one call, or OVERLOADED at once: calls past the bound are refused,
    /// never queued.
    pub fn try_take(&self) -> Result<Slot, Error> {
        match self.semaphore.clone().try_acquire_owned() {
            Ok(permit) => {
                self.metrics.in_flight().inc();
                Ok(Slot {
                    _permit: permit,
                    metrics: self.metrics.clone(),
                })
            }
            Err(_) => {
                self.metrics.shed();
                Err(Error::Overloaded { limit: self.limit })
            }
        }
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> usize {
        self.limit - self.semaphore.available_permits()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.metrics.in_flight().dec();
    }
}

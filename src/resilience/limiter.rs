//! The gateway's own limit on calls to one upstream credential: GCRA (the generic cell
//! rate algorithm, as in `redis-cell`), one cell per rule.
//!
//! A rule `N/period:B` spaces calls `period / N` apart and lets up to `B` go at once.
//! With the default burst of 1, no window of one period ever holds more than N calls,
//! which is what a vendor's hourly or daily quota needs. A call reserves its slot
//! before it waits for it, so callers waiting concurrently get successive slots, and a
//! call whose slot would come after its deadline reserves nothing and is refused with
//! the time when room will be.

use std::{sync::Mutex, time::Duration};

use tokio::time::Instant;

use crate::config::Rate;

/// One upstream credential's limit: every rule must have room.
#[derive(Debug)]
pub struct Limiter {
    cells: Mutex<Vec<Cell>>,
}

/// One GCRA cell.
#[derive(Debug)]
struct Cell {
    /// Time between calls: the period over the count.
    interval: Duration,
    /// How far ahead of the schedule a call may go: `(burst - 1) * interval`.
    tolerance: Duration,
    /// The theoretical arrival time of the next call.
    tat: Option<Instant>,
}

// === impl Limiter ===

impl Limiter {
    /// A limiter of `rates`; `None` when there are none.
    pub fn new(rates: &[Rate]) -> Option<Self> {
        if rates.is_empty() {
            return None;
        }
        let cells = rates
            .iter()
            .map(|r| {
                let interval = r.per / r.count.max(1);
                Cell {
                    interval,
                    tolerance: interval * r.burst.saturating_sub(1),
                    tat: None,
                }
            })
            .collect();
        Some(Self {
            cells: Mutex::new(cells),
        })
    }

    /// Each rule's emission interval and burst tolerance (for the shared limiter).
    pub fn rules(&self) -> Vec<(Duration, Duration)> {
        let cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        cells.iter().map(|c| (c.interval, c.tolerance)).collect()
    }

    /// Reserves the earliest slot every rule allows. `Ok(None)`: go now; `Ok(Some(at))`:
    /// go at `at` (before `deadline`); `Err(after)`: no slot before `deadline`, nothing
    /// reserved, room comes in `after`.
    pub fn reserve(&self, deadline: Instant) -> Result<Option<Instant>, Duration> {
        let now = Instant::now();
        // A poisoned lock only means another call panicked mid-update; the cells are
        // plain numbers, still usable.
        let mut cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        let at = cells.iter().map(|c| c.earliest(now)).max().unwrap_or(now);
        if at > deadline {
            return Err(at - now);
        }
        for cell in cells.iter_mut() {
            let tat = cell.tat.map_or(at, |t| t.max(at));
            cell.tat = Some(tat + cell.interval);
        }
        Ok((at > now).then_some(at))
    }
}

// === impl Cell ===

impl Cell {
    /// The earliest time a call conforms: `tat - tolerance`, or now.
    fn earliest(&self, now: Instant) -> Instant {
        match self.tat {
            Some(tat) => tat.checked_sub(self.tolerance).map_or(now, |t| t.max(now)),
            None => now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(count: u32, per: u64, burst: u32) -> Rate {
        Rate {
            count,
            per: Duration::from_secs(per),
            burst,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn evenly_spaced_without_burst() {
        let limiter = Limiter::new(&[rate(30, 3600, 1)]).unwrap();
        let far = Instant::now() + Duration::from_secs(86_400);
        let start = Instant::now();
        assert_eq!(limiter.reserve(far), Ok(None));
        // 30 an hour: the next slots are 2 minutes apart.
        assert_eq!(
            limiter.reserve(far),
            Ok(Some(start + Duration::from_secs(120)))
        );
        assert_eq!(
            limiter.reserve(far),
            Ok(Some(start + Duration::from_secs(240)))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn never_more_than_count_in_any_window_with_burst_one() {
        let limiter = Limiter::new(&[rate(30, 3600, 1), rate(500, 86_400, 1)]).unwrap();
        let far = Instant::now() + Duration::from_secs(10 * 86_400);
        let mut slots = Vec::new();
        for _ in 0..200 {
            let at = limiter.reserve(far).unwrap().unwrap_or_else(Instant::now);
            slots.push(at);
        }
        for (i, at) in slots.iter().enumerate() {
            let in_hour = slots[i..]
                .iter()
                .take_while(|t| **t < *at + Duration::from_secs(3600))
                .count();
            assert!(in_hour <= 30, "{in_hour} calls in one hour");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn burst_goes_at_once_then_spaces() {
        let limiter = Limiter::new(&[rate(10, 1, 5)]).unwrap();
        let far = Instant::now() + Duration::from_secs(60);
        for _ in 0..5 {
            assert_eq!(limiter.reserve(far), Ok(None));
        }
        assert!(matches!(limiter.reserve(far), Ok(Some(_))));
    }

    #[tokio::test(start_paused = true)]
    async fn refuses_without_reserving_past_the_deadline() {
        let limiter = Limiter::new(&[rate(1, 10, 1)]).unwrap();
        let soon = Instant::now() + Duration::from_secs(1);
        assert_eq!(limiter.reserve(soon), Ok(None));
        assert_eq!(limiter.reserve(soon), Err(Duration::from_secs(10)));
        // The refusal reserved nothing: the next slot is still 10 s after the first.
        let later = Instant::now() + Duration::from_secs(60);
        assert_eq!(
            limiter.reserve(later),
            Ok(Some(Instant::now() + Duration::from_secs(10)))
        );
    }
}

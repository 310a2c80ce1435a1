//! Rate limits: the counter port and its decision. Implemented in process (one node) by the
//! runtime and over Redis (shared by replicas) by `store`. Both use the generic cell rate
//! algorithm (GCRA): `limit` events per `window`, bursts up to `limit`, and an exact wait.

use std::time::Duration;

use async_trait::async_trait;

use crate::ports::StoreError;

/// What one event was told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    pub allowed: bool,
    pub limit: u64,
    /// Events still allowed right now.
    pub remaining: u64,
    /// When refused: how long until one more event is allowed.
    pub retry_after: Duration,
}

#[async_trait]
pub trait RateCounter: Send + Sync {
    /// `memory` or `redis`.
    fn backend(&self) -> &'static str;
    /// Counts one event under `key` if it is within `limit` per `window`.
    async fn hit(&self, key: &str, limit: u64, window: Duration) -> Result<RateDecision, StoreError>;
    /// Whether the counter answers (a shared one is a service of its own).
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// One GCRA step. `tat` is the stored theoretical arrival time (µs; 0 when none). Returns the
/// decision and the new `tat` to store when allowed.
pub fn gcra(now_us: i64, tat_us: i64, limit: u64, window: Duration) -> (RateDecision, Option<i64>) {
    let limit = limit.max(1);
    let window_us = i64::try_from(window.as_micros()).unwrap_or(i64::MAX).max(1);
    let interval = (window_us / i64::try_from(limit).unwrap_or(i64::MAX)).max(1);
    let new_tat = tat_us.max(now_us).saturating_add(interval);
    let allow_at = new_tat.saturating_sub(window_us);
    if now_us < allow_at {
        let wait = u64::try_from(allow_at - now_us).unwrap_or(0);
        let decision = RateDecision { allowed: false, limit, remaining: 0, retry_after: Duration::from_micros(wait) };
        return (decision, None);
    }
    let used = new_tat - now_us;
    let remaining = u64::try_from((window_us - used) / interval).unwrap_or(0);
    (RateDecision { allowed: true, limit, remaining, retry_after: Duration::ZERO }, Some(new_tat))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_burst_of_limit_then_refuses_with_the_exact_wait() {
        let window = Duration::from_secs(60);
        let mut tat = 0;
        for i in 0..60 {
            let (d, next) = gcra(1_000_000, tat, 60, window);
            assert!(d.allowed, "event {i}");
            assert_eq!(d.remaining, 59 - i);
            tat = next.expect("stored");
        }
        let (d, next) = gcra(1_000_000, tat, 60, window);
        assert!(!d.allowed);
        assert_eq!(next, None);
        assert_eq!(d.retry_after, Duration::from_secs(1));
        // One interval later, exactly one more is allowed.
        let (d, _) = gcra(2_000_000, tat, 60, window);
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
    }
}

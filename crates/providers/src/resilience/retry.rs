//! Retries with exponential backoff and full jitter, honouring `Retry-After`, all under one
//! overall deadline.

use std::future::Future;
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

use crate::ProviderError;

/// How often and how patiently to retry a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 1 means no retry.
    pub max_attempts: u32,
    /// The backoff cap before the first retry; it doubles for each later one.
    pub initial_backoff: Duration,
    /// The largest backoff cap (a longer `Retry-After` is still honoured).
    pub max_backoff: Duration,
    /// The time budget for all attempts and waits together.
    pub deadline: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(20),
            deadline: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// No retries, the given deadline.
    pub fn no_retry(deadline: Duration) -> Self {
        Self { max_attempts: 1, deadline, ..Self::default() }
    }

    /// The backoff cap before retry number `retry` (0 for the first retry):
    /// `min(max_backoff, initial_backoff · 2^retry)`.
    pub fn backoff_cap(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry);
        self.initial_backoff.saturating_mul(factor).min(self.max_backoff)
    }

    /// The wait before retry number `retry` after `error`: a uniformly random share of the cap
    /// ("full jitter", so clients that failed together do not come back together), but at least
    /// what the server asked for in `Retry-After`.
    pub fn wait_before_retry(&self, retry: u32, error: &ProviderError, rng: &mut impl Rng) -> Duration {
        let cap = self.backoff_cap(retry);
        let jittered = if cap.is_zero() { Duration::ZERO } else { rng.gen_range(Duration::ZERO..=cap) };
        jittered.max(error.retry_after().unwrap_or(Duration::ZERO))
    }

    /// Runs `attempt` until it succeeds, fails with an error that is not retryable, runs out of
    /// attempts, or the deadline passes. Each attempt gets the remaining budget as its timeout.
    /// `provider` names the provider in a timeout error.
    pub async fn run<T, F, Fut>(&self, provider: &str, mut attempt: F) -> Result<T, ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let started = Instant::now();
        let deadline_at = started + self.deadline;
        let mut retry = 0;
        loop {
            let remaining = deadline_at.saturating_duration_since(Instant::now());
            let error = match tokio::time::timeout(remaining, attempt()).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(error)) => error,
                Err(_elapsed) => {
                    let last = ProviderError::Timeout { provider: provider.to_owned(), after: started.elapsed() };
                    return Err(self.deadline_exceeded(last));
                }
            };
            if !error.is_retryable() || retry + 1 >= self.max_attempts {
                return Err(error);
            }
            let wait = self.wait_before_retry(retry, &error, &mut rand::thread_rng());
            if Instant::now() + wait >= deadline_at {
                // Waiting would leave no time to try again: say so now rather than later.
                return Err(self.deadline_exceeded(error));
            }
            tracing::warn!(provider, attempt = retry + 1, ?wait, %error, "provider call failed; retrying");
            tokio::time::sleep(wait).await;
            retry += 1;
        }
    }

    fn deadline_exceeded(&self, last: ProviderError) -> ProviderError {
        ProviderError::DeadlineExceeded { deadline: self.deadline, last: Box::new(last) }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    fn server_error(retry_after: Option<Duration>) -> ProviderError {
        ProviderError::Status { provider: "p".into(), status: 503, message: "busy".into(), retry_after }
    }

    fn policy(max_attempts: u32, deadline_ms: u64) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(4),
            deadline: Duration::from_millis(deadline_ms),
        }
    }

    #[test]
    fn backoff_caps_double_up_to_the_maximum() {
        let policy = RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(350),
            ..RetryPolicy::default()
        };
        let caps: Vec<u128> = (0..5).map(|retry| policy.backoff_cap(retry).as_millis()).collect();
        assert_eq!(caps, [100, 200, 350, 350, 350]);
        assert_eq!(policy.backoff_cap(u32::MAX), Duration::from_millis(350));
    }

    #[test]
    fn waits_are_jittered_within_the_cap_but_never_below_retry_after() {
        let policy = RetryPolicy { initial_backoff: Duration::from_millis(100), ..RetryPolicy::default() };
        let mut rng = StdRng::seed_from_u64(7);
        let waits: Vec<Duration> =
            (0..50).map(|_| policy.wait_before_retry(0, &server_error(None), &mut rng)).collect();
        assert!(waits.iter().all(|wait| *wait <= Duration::from_millis(100)));
        assert!(waits.windows(2).any(|pair| pair[0] != pair[1]), "waits should vary");
        let asked = server_error(Some(Duration::from_secs(3)));
        assert_eq!(policy.wait_before_retry(0, &asked, &mut rng), Duration::from_secs(3));
    }

    #[tokio::test]
    async fn retryable_errors_are_retried_until_success() {
        let calls = AtomicU32::new(0);
        let result = policy(3, 1_000)
            .run("p", || async {
                if calls.fetch_add(1, Ordering::SeqCst) < 2 { Err(server_error(None)) } else { Ok("answer") }
            })
            .await;
        assert_eq!(result, Ok("answer"));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn attempts_are_limited_and_the_last_error_returned() {
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = policy(2, 1_000)
            .run("p", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(server_error(None))
            })
            .await;
        assert_eq!(result, Err(server_error(None)));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn client_errors_are_not_retried() {
        let calls = AtomicU32::new(0);
        let bad_request =
            ProviderError::Status { provider: "p".into(), status: 400, message: "bad".into(), retry_after: None };
        let result: Result<(), _> = policy(5, 1_000)
            .run("p", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(bad_request.clone())
            })
            .await;
        assert_eq!(result, Err(bad_request));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_retry_after_beyond_the_deadline_stops_at_once() {
        let started = std::time::Instant::now();
        let result: Result<(), _> =
            policy(5, 200).run("p", || async { Err(server_error(Some(Duration::from_secs(60)))) }).await;
        assert!(started.elapsed() < Duration::from_millis(100));
        match result {
            Err(ProviderError::DeadlineExceeded { last, .. }) => {
                assert_eq!(*last, server_error(Some(Duration::from_secs(60))))
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_slow_attempt_is_cut_at_the_deadline() {
        let started = std::time::Instant::now();
        let result: Result<(), _> = policy(5, 50)
            .run("p", || async {
                tokio::time::sleep(Duration::from_secs(10)).await;
                Ok(())
            })
            .await;
        assert!(started.elapsed() < Duration::from_secs(1));
        match result {
            Err(ProviderError::DeadlineExceeded { last, deadline }) => {
                assert_eq!(deadline, Duration::from_millis(50));
                assert!(matches!(*last, ProviderError::Timeout { .. }));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

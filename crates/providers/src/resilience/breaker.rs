//! A per-provider circuit breaker: closed until N consecutive provider failures, then open
//! (calls fail fast) for a cool-down, then half-open (exactly one probe call goes through).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::ProviderError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitBreakerConfig {
    /// Consecutive failures that open the breaker.
    pub failure_threshold: u32,
    /// How long the breaker stays open before letting a probe through.
    pub cool_down: Duration,
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        Self { failure_threshold: 5, cool_down: Duration::from_secs(30) }
    }
}

/// The breaker's state, for health reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    Closed { consecutive_failures: u32 },
    Open { until: Instant },
    HalfOpen { probe_in_flight: bool },
}

/// Shared by all calls to one provider. Time is read from the monotonic clock at the public
/// entry points and passed down, so the state machine itself can be tested without sleeping.
#[derive(Debug)]
pub struct CircuitBreaker {
    provider: String,
    config: CircuitBreakerConfig,
    state: Arc<Mutex<CircuitState>>,
}

/// Leave to make one call. Report its outcome with [`CallPermit::record`]; a permit dropped
/// without a report (the call was cancelled) frees a half-open probe slot and changes nothing
/// else.
#[derive(Debug)]
#[must_use = "report the call's outcome with CallPermit::record"]
pub struct CallPermit {
    state: Arc<Mutex<CircuitState>>,
    config: CircuitBreakerConfig,
    probe: bool,
    recorded: bool,
}

impl CircuitBreaker {
    pub fn new(provider: impl Into<String>, config: CircuitBreakerConfig) -> Self {
        Self {
            provider: provider.into(),
            config,
            state: Arc::new(Mutex::new(CircuitState::Closed { consecutive_failures: 0 })),
        }
    }

    pub fn state(&self) -> CircuitState {
        *lock(&self.state)
    }

    /// Leave to call the provider, or `CircuitOpen` while it is considered down.
    pub fn acquire(&self) -> Result<CallPermit, ProviderError> {
        self.acquire_at(Instant::now())
    }

    pub(crate) fn acquire_at(&self, now: Instant) -> Result<CallPermit, ProviderError> {
        let mut state = lock(&self.state);
        let probe = match *state {
            CircuitState::Closed { .. } => false,
            CircuitState::Open { until } if now < until => {
                return Err(self.open_error(until.saturating_duration_since(now)));
            }
            CircuitState::Open { .. } | CircuitState::HalfOpen { probe_in_flight: false } => {
                *state = CircuitState::HalfOpen { probe_in_flight: true };
                true
            }
            CircuitState::HalfOpen { probe_in_flight: true } => return Err(self.open_error(Duration::ZERO)),
        };
        Ok(CallPermit { state: Arc::clone(&self.state), config: self.config, probe, recorded: false })
    }

    fn open_error(&self, retry_in: Duration) -> ProviderError {
        ProviderError::CircuitOpen { provider: self.provider.clone(), retry_in }
    }
}

impl CallPermit {
    /// Reports the call's outcome. Only failures that say the provider is unhealthy count
    /// ([`ProviderError::counts_against_provider`]); a client error such as 400 or 401 proves
    /// the provider answered, so it counts as healthy.
    pub fn record<T>(self, outcome: &Result<T, ProviderError>) {
        self.record_at(outcome, Instant::now());
    }

    pub(crate) fn record_at<T>(mut self, outcome: &Result<T, ProviderError>, now: Instant) {
        self.recorded = true;
        let failed = matches!(outcome, Err(error) if error.counts_against_provider());
        let mut state = lock(&self.state);
        *state = match (*state, failed) {
            (_, false) => CircuitState::Closed { consecutive_failures: 0 },
            (CircuitState::Closed { consecutive_failures }, true) => {
                let consecutive_failures = consecutive_failures.saturating_add(1);
                if consecutive_failures >= self.config.failure_threshold {
                    CircuitState::Open { until: now + self.config.cool_down }
                } else {
                    CircuitState::Closed { consecutive_failures }
                }
            }
            // A failed probe, or a call admitted before the breaker opened: (re)open.
            (CircuitState::HalfOpen { .. } | CircuitState::Open { .. }, true) => {
                CircuitState::Open { until: now + self.config.cool_down }
            }
        };
    }
}

impl Drop for CallPermit {
    fn drop(&mut self) {
        if self.probe && !self.recorded {
            let mut state = lock(&self.state);
            if *state == (CircuitState::HalfOpen { probe_in_flight: true }) {
                *state = CircuitState::HalfOpen { probe_in_flight: false };
            }
        }
    }
}

/// The state is a plain value that every update replaces whole, so a panic elsewhere cannot
/// leave it half-written: a poisoned lock is safe to use.
fn lock(state: &Mutex<CircuitState>) -> MutexGuard<'_, CircuitState> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOL_DOWN: Duration = Duration::from_secs(30);

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new("p", CircuitBreakerConfig { failure_threshold: 3, cool_down: COOL_DOWN })
    }

    fn status(status: u16) -> Result<(), ProviderError> {
        Err(ProviderError::Status { provider: "p".into(), status, message: String::new(), retry_after: None })
    }

    fn call(breaker: &CircuitBreaker, now: Instant, outcome: Result<(), ProviderError>) -> Result<(), ProviderError> {
        let permit = breaker.acquire_at(now)?;
        permit.record_at(&outcome, now);
        Ok(())
    }

    #[test]
    fn opens_after_consecutive_failures_and_fails_fast() {
        let breaker = breaker();
        let t0 = Instant::now();
        for _ in 0..3 {
            call(&breaker, t0, status(500)).unwrap();
        }
        assert_eq!(breaker.state(), CircuitState::Open { until: t0 + COOL_DOWN });
        match breaker.acquire_at(t0 + Duration::from_secs(10)) {
            Err(ProviderError::CircuitOpen { retry_in, .. }) => assert_eq!(retry_in, Duration::from_secs(20)),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_success_resets_the_count() {
        let breaker = breaker();
        let t0 = Instant::now();
        call(&breaker, t0, status(500)).unwrap();
        call(&breaker, t0, status(502)).unwrap();
        call(&breaker, t0, Ok(())).unwrap();
        call(&breaker, t0, status(500)).unwrap();
        assert_eq!(breaker.state(), CircuitState::Closed { consecutive_failures: 1 });
    }

    #[test]
    fn client_errors_never_open_it() {
        let breaker = breaker();
        let t0 = Instant::now();
        for code in [400, 401, 403, 404, 422, 400, 401] {
            call(&breaker, t0, status(code)).unwrap();
        }
        assert_eq!(breaker.state(), CircuitState::Closed { consecutive_failures: 0 });
    }

    #[test]
    fn half_open_lets_exactly_one_probe_through_and_success_closes() {
        let breaker = breaker();
        let t0 = Instant::now();
        for _ in 0..3 {
            call(&breaker, t0, status(503)).unwrap();
        }
        let later = t0 + COOL_DOWN;
        let probe = breaker.acquire_at(later).unwrap();
        assert!(matches!(breaker.acquire_at(later), Err(ProviderError::CircuitOpen { .. })));
        probe.record_at(&Ok::<(), ProviderError>(()), later);
        assert_eq!(breaker.state(), CircuitState::Closed { consecutive_failures: 0 });
        call(&breaker, later, Ok(())).unwrap();
    }

    #[test]
    fn a_failed_probe_reopens_for_another_cool_down() {
        let breaker = breaker();
        let t0 = Instant::now();
        for _ in 0..3 {
            call(&breaker, t0, status(503)).unwrap();
        }
        let later = t0 + COOL_DOWN + Duration::from_secs(1);
        call(&breaker, later, status(500)).unwrap();
        assert_eq!(breaker.state(), CircuitState::Open { until: later + COOL_DOWN });
    }

    #[test]
    fn a_cancelled_probe_frees_the_slot() {
        let breaker = breaker();
        let t0 = Instant::now();
        for _ in 0..3 {
            call(&breaker, t0, status(503)).unwrap();
        }
        let later = t0 + COOL_DOWN;
        drop(breaker.acquire_at(later).unwrap());
        assert_eq!(breaker.state(), CircuitState::HalfOpen { probe_in_flight: false });
        assert!(breaker.acquire_at(later).is_ok());
    }
}

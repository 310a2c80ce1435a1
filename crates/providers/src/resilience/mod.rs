//! Resilience around providers: retries under a deadline ([`RetryPolicy`]), a per-provider
//! [`CircuitBreaker`], the [`Resilient`] wrapper combining both, and [`Fallback`] chains.

mod breaker;
mod fallback;
mod retry;

use std::sync::Arc;

use async_trait::async_trait;

pub use breaker::{CallPermit, CircuitBreaker, CircuitBreakerConfig, CircuitState};
pub use fallback::{Fallback, FallbackTarget, should_fall_back};
pub use retry::RetryPolicy;

use crate::{Capabilities, ChatRequest, ChatResponse, EventStream, ModelProvider, ProviderError};

/// A provider with retries and a circuit breaker. Each attempt passes the breaker and reports
/// to it, so an open breaker stops the retries at once.
#[derive(Debug)]
pub struct Resilient {
    inner: Arc<dyn ModelProvider>,
    retry: RetryPolicy,
    breaker: CircuitBreaker,
}

impl Resilient {
    pub fn new(inner: Arc<dyn ModelProvider>, retry: RetryPolicy, breaker: CircuitBreakerConfig) -> Self {
        let breaker = CircuitBreaker::new(inner.name(), breaker);
        Self { inner, retry, breaker }
    }

    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }
}

#[async_trait]
impl ModelProvider for Resilient {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn circuit(&self) -> Option<CircuitState> {
        Some(self.breaker.state())
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        self.retry
            .run(self.inner.name(), || async {
                let permit = self.breaker.acquire()?;
                let outcome = self.inner.complete(request).await;
                permit.record(&outcome);
                outcome
            })
            .await
    }

    /// Retries only until the stream starts: once events flow, an error is delivered in the
    /// stream, since the caller may already have used part of the answer.
    async fn stream(&self, request: &ChatRequest) -> Result<EventStream, ProviderError> {
        self.retry
            .run(self.inner.name(), || async {
                let permit = self.breaker.acquire()?;
                let outcome = self.inner.stream(request).await;
                permit.record(&outcome);
                outcome
            })
            .await
    }
}

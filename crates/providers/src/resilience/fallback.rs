//! A fallback chain: an ordered list of (provider, model) targets, tried in turn until one
//! answers.

use std::sync::Arc;

use async_trait::async_trait;

use crate::{Capabilities, ChatRequest, ChatResponse, EventStream, ModelProvider, ProviderError};

/// One entry of a fallback chain: a provider and the model to ask it for.
#[derive(Debug, Clone)]
pub struct FallbackTarget {
    pub provider: Arc<dyn ModelProvider>,
    pub model: String,
}

impl FallbackTarget {
    pub fn new(provider: Arc<dyn ModelProvider>, model: impl Into<String>) -> Self {
        Self { provider, model: model.into() }
    }
}

/// Tries each target in order and returns the first answer, or the last error. The request's
/// `model` is replaced by each target's model; [`ChatResponse::provider`] names who answered.
#[derive(Debug)]
pub struct Fallback {
    name: String,
    targets: Vec<FallbackTarget>,
}

impl Fallback {
    /// An empty chain is a configuration error.
    pub fn new(targets: Vec<FallbackTarget>) -> Result<Self, ProviderError> {
        if targets.is_empty() {
            return Err(ProviderError::NotConfigured("a fallback chain needs at least one provider".to_owned()));
        }
        let names: Vec<&str> = targets.iter().map(|target| target.provider.name()).collect();
        Ok(Self { name: format!("fallback[{}]", names.join(",")), targets })
    }

    pub fn targets(&self) -> &[FallbackTarget] {
        &self.targets
    }

    /// Runs `call` against each target until one succeeds or an error says the others would
    /// fail the same way.
    async fn first_success<'a, T, F, Fut>(&'a self, request: &ChatRequest, call: F) -> Result<T, ProviderError>
    where
        F: Fn(&'a dyn ModelProvider, ChatRequest) -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let mut last_error = None;
        for (position, target) in self.targets.iter().enumerate() {
            let attempt = ChatRequest { model: target.model.clone(), ..request.clone() };
            match call(target.provider.as_ref(), attempt).await {
                Ok(answer) => return Ok(answer),
                Err(error) if should_fall_back(&error) => {
                    if position + 1 < self.targets.len() {
                        tracing::warn!(
                            provider = target.provider.name(),
                            model = %target.model,
                            %error,
                            "provider failed; falling back to the next one"
                        );
                    }
                    last_error = Some(error);
                }
                Err(error) => return Err(error),
            }
        }
        // `new` refuses an empty chain, so at least one error was recorded.
        Err(last_error.unwrap_or_else(|| ProviderError::NotConfigured("the fallback chain is empty".to_owned())))
    }
}

/// Whether another provider might succeed where this one failed. Yes for anything about this
/// provider's health or setup: retryable failures, an open breaker, an exhausted deadline,
/// garbled answers, missing configuration, and 401/403/404 (this provider's key, permissions
/// or model name). Also for context overflow, since the next model's window may be larger.
/// No for other client errors (400, 413, 422, ...): the request itself is wrong and would fail
/// everywhere.
pub fn should_fall_back(error: &ProviderError) -> bool {
    match error {
        ProviderError::Status { status, .. } => error.is_retryable() || matches!(status, 401 | 403 | 404),
        ProviderError::ContextOverflow { .. }
        | ProviderError::Timeout { .. }
        | ProviderError::Connection { .. }
        | ProviderError::InvalidResponse { .. }
        | ProviderError::CircuitOpen { .. }
        | ProviderError::DeadlineExceeded { .. }
        | ProviderError::NotConfigured(_) => true,
    }
}

#[async_trait]
impl ModelProvider for Fallback {
    fn name(&self) -> &str {
        &self.name
    }

    /// What every target can do, since any of them may answer.
    fn capabilities(&self) -> Capabilities {
        let all = |has: fn(Capabilities) -> bool| self.targets.iter().all(|target| has(target.provider.capabilities()));
        Capabilities { streaming: all(|c| c.streaming), tools: all(|c| c.tools), list_models: false }
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        self.first_success(request, |provider, attempt| async move { provider.complete(&attempt).await }).await
    }

    /// Falls back only until a stream starts; an error in the middle of a stream is the
    /// caller's, since part of the answer was already delivered.
    async fn stream(&self, request: &ChatRequest) -> Result<EventStream, ProviderError> {
        self.first_success(request, |provider, attempt| async move { provider.stream(&attempt).await }).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn status(status: u16) -> ProviderError {
        ProviderError::Status { provider: "p".into(), status, message: String::new(), retry_after: None }
    }

    #[test]
    fn falls_back_on_provider_problems_but_not_on_bad_requests() {
        for code in [401, 403, 404, 408, 429, 500, 503, 529] {
            assert!(should_fall_back(&status(code)), "{code}");
        }
        for code in [400, 413, 422] {
            assert!(!should_fall_back(&status(code)), "{code}");
        }
        assert!(should_fall_back(&ProviderError::CircuitOpen { provider: "p".into(), retry_in: Duration::ZERO }));
        assert!(should_fall_back(&ProviderError::Connection { provider: "p".into(), message: String::new() }));
    }

    #[test]
    fn an_empty_chain_is_refused() {
        assert!(matches!(Fallback::new(Vec::new()), Err(ProviderError::NotConfigured(_))));
    }
}

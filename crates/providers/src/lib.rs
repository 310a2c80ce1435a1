//! Model provider clients behind one narrow seam, [`ModelProvider`]: `complete`, `stream`,
//! `capabilities`. Each vendor's wire types stay inside its module (`anthropic`, `openai`,
//! `ollama`); [`resilience`] adds retries, circuit breakers and fallback chains on top, and
//! [`pricing`] turns token usage into dollars. [`config`] builds the configured providers.
//!
//! **Architecture Invariant:** this crate knows nothing of the runtime or the gateway.
//!
//! **Architecture Invariant:** this crate spawns no task; streams are built from combinators and
//! driven by whoever polls them.

pub mod anthropic;
pub mod config;
pub mod error;
mod http;
pub mod ollama;
pub mod openai;
pub mod pricing;
pub mod resilience;
mod sse;
pub mod types;

use std::pin::Pin;

use async_trait::async_trait;
use futures_util::Stream;

pub use anthropic::{AnthropicConfig, AnthropicProvider};
pub use config::{ApiKey, ProviderSettings, configured_providers, not_configured, require_providers};
pub use error::ProviderError;
pub use ollama::{OllamaConfig, OllamaProvider};
pub use openai::{MaxTokensField, OpenAiConfig, OpenAiProvider};
pub use pricing::{ModelPrice, PriceTable};
pub use resilience::{CircuitBreaker, CircuitBreakerConfig, Fallback, FallbackTarget, Resilient, RetryPolicy};
pub use types::{
    Capabilities, ChatRequest, ChatResponse, FinishReason, Message, Role, StreamEvent, ToolCall, ToolSpec, Usage,
};

/// A stream of answer events.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<StreamEvent, ProviderError>> + Send>>;

/// A model provider: one vendor endpoint with its credentials.
#[async_trait]
pub trait ModelProvider: Send + Sync {
    /// Short name used in logs, cost records and errors, e.g. `anthropic`.
    fn name(&self) -> &str;
    fn capabilities(&self) -> Capabilities;
    /// One whole answer.
    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError>;
    /// The answer as a stream of events, ending with [`StreamEvent::Done`].
    async fn stream(&self, request: &ChatRequest) -> Result<EventStream, ProviderError>;
    /// The state of the circuit breaker guarding this provider, if one does.
    fn circuit(&self) -> Option<resilience::CircuitState> {
        None
    }
}

impl std::fmt::Debug for dyn ModelProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ModelProvider({})", self.name())
    }
}

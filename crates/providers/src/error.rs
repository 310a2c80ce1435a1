//! Provider errors, classified so callers know whether trying again can help.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProviderError {
    /// The vendor answered with an error status; `message` is the vendor's own message.
    #[error("{provider} answered {status}: {message}")]
    Status { provider: String, status: u16, message: String, retry_after: Option<Duration> },
    /// The request did not fit the model's context window.
    #[error("{provider}: the request is too long for the model's context window: {message}")]
    ContextOverflow { provider: String, message: String },
    /// No answer in time.
    #[error("{provider}: timed out after {after:?}")]
    Timeout { provider: String, after: Duration },
    /// The connection failed (DNS, refused, reset, TLS).
    #[error("{provider}: connection failed: {message}")]
    Connection { provider: String, message: String },
    /// The vendor answered something we could not understand.
    #[error("{provider}: invalid response: {message}")]
    InvalidResponse { provider: String, message: String },
    /// The circuit breaker is open: recent calls failed, this one was not attempted.
    #[error("{provider}: circuit open after repeated failures; retrying in {retry_in:?}")]
    CircuitOpen { provider: String, retry_in: Duration },
    /// The overall deadline passed while retrying.
    #[error("deadline of {deadline:?} exceeded; last error: {last}")]
    DeadlineExceeded { deadline: Duration, last: Box<ProviderError> },
    /// No provider is configured (the message says how to configure one).
    #[error("{0}")]
    NotConfigured(String),
}

impl ProviderError {
    /// Whether the same request may succeed if tried again: 408, 409, 429, 5xx, timeouts and
    /// connection failures. Client errors (400, 401, 403, 404, 422) and context overflow are not.
    pub fn is_retryable(&self) -> bool {
        match self {
            ProviderError::Status { status, .. } => matches!(status, 408 | 409 | 429 | 500..=599),
            ProviderError::Timeout { .. } | ProviderError::Connection { .. } => true,
            ProviderError::ContextOverflow { .. }
            | ProviderError::InvalidResponse { .. }
            | ProviderError::CircuitOpen { .. }
            | ProviderError::DeadlineExceeded { .. }
            | ProviderError::NotConfigured(_) => false,
        }
    }

    /// Whether this failure says the provider is unhealthy (counts toward opening its breaker).
    /// A client's own mistake (400, 401, 403, 404, 422, context overflow) does not.
    pub fn counts_against_provider(&self) -> bool {
        self.is_retryable() || matches!(self, ProviderError::InvalidResponse { .. })
    }

    /// The server's requested wait, if it sent `Retry-After`.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProviderError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

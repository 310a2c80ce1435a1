//! The native API's error type, [`ApiError`]: a status, a stable code, a message and the
//! request field at fault. Natively it renders as `{"error": {"code", "message", "field"}}`.
//!
//! The OpenAI- and Anthropic-compatible surfaces never render an `ApiError` themselves: their
//! handlers return `compat::VendorError<V>` (`OpenAiError`, `AnthropicError`), which converts
//! from `ApiError` (and from the runtime's errors) with a plain `?` and writes the vendor's
//! shape, so the dialect is fixed by the handler's return type. Both go through
//! [`ApiError::render`]: 5xx answers hide internals (logged instead); 4xx answers say what was
//! wrong; `Retry-After` is set when known.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// The request field at fault, when one is.
    pub param: Option<String>,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), param: None, retry_after: None }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 422: well-formed, but the value is not acceptable.
    pub fn invalid(param: &str, message: impl Into<String>) -> Self {
        Self { param: Some(param.to_owned()), ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_value", message) }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = code;
        self
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// Asks the client to wait this many seconds (at least 1) before trying again.
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds.max(1));
        self
    }

    /// The message a client may see: 5xx answers other than 503 are logged and hidden.
    pub(crate) fn public_message(&self) -> String {
        if self.status.is_server_error() && self.status != StatusCode::SERVICE_UNAVAILABLE {
            tracing::error!(code = self.code, message = %self.message, "request failed");
            "internal error; see the server log".to_owned()
        } else {
            self.message.clone()
        }
    }

    /// The response for this error with the JSON body `body` builds from it and its public
    /// message: the one way every dialect answers (status, hidden internals, `Retry-After`).
    pub(crate) fn render<B: Serialize>(self, body: impl FnOnce(ApiError, String) -> B) -> Response {
        let status = self.status;
        let retry_after = self.retry_after;
        let message = self.public_message();
        let mut response = (status, Json(body(self, message))).into_response();
        if let Some(seconds) = retry_after
            && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.message)
    }
}

/// The native API's error body.
#[derive(Serialize, ToSchema)]
#[schema(as = NativeError)]
pub(crate) struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
#[schema(as = NativeErrorDetail)]
pub(crate) struct ErrorDetail {
    /// A stable machine-readable code, e.g. `invalid_request`, `not_found`, `conflict`.
    #[schema(value_type = String)]
    code: &'static str,
    message: String,
    /// The request field at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    field: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.render(|error, message| ErrorBody { error: ErrorDetail { code: error.code, message, field: error.param } })
    }
}

impl From<runtime::agent::AgentError> for ApiError {
    fn from(error: runtime::agent::AgentError) -> Self {
        use runtime::agent::AgentError as E;
        match &error {
            E::NotConfigured(_) => ApiError::unavailable(error.to_string()),
            E::UnknownPersona { .. } => ApiError::invalid("persona", error.to_string()),
            E::NoPersonas(_) => ApiError::new(StatusCode::CONFLICT, "no_personas", error.to_string()),
            E::InvalidTask(message) => ApiError::invalid("task", message.clone()),
            E::BudgetExhausted(_) => ApiError::new(StatusCode::PAYMENT_REQUIRED, "budget_exhausted", error.to_string()),
            E::RateLimited(limited) => ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", error.to_string())
                .with_retry_after(limited.retry_after_secs),
            E::NoSuchRun { .. } | E::NoSuchApproval { .. } => ApiError::not_found(error.to_string()),
            E::ApprovalClosed(_) | E::ApprovalMismatch(_) | E::DrivenElsewhere { .. } | E::AlreadyDriven { .. } => {
                ApiError::new(StatusCode::CONFLICT, "conflict", error.to_string())
            }
            E::SelfApproval { .. } => ApiError::forbidden(error.to_string()),
            E::Store(_)
            | E::Ledger(_)
            | E::CorruptRun { .. }
            | E::UnstorableRun { .. }
            | E::Stopped { .. }
            | E::Equipment(_) => ApiError::internal(error.to_string()),
        }
    }
}

impl From<runtime::chat::ChatError> for ApiError {
    fn from(error: runtime::chat::ChatError) -> Self {
        use runtime::chat::ChatError as E;
        match error {
            E::NotFound => ApiError::not_found(error.to_string()),
            E::Invalid(message) => ApiError::invalid("message", message),
            E::Busy => ApiError::new(StatusCode::CONFLICT, "busy", error.to_string()),
            E::Store(store) => ApiError::from(store),
            E::Ledger(ledger) => ApiError::internal(ledger.to_string()),
        }
    }
}

impl From<runtime::keys::KeyError> for ApiError {
    fn from(error: runtime::keys::KeyError) -> Self {
        use runtime::keys::KeyError;
        match error {
            KeyError::BadName(_) => ApiError::invalid("name", error.to_string()),
            KeyError::NotAdmin(_) => ApiError::forbidden(error.to_string()),
            KeyError::LevelAbove { .. } => ApiError::forbidden(error.to_string()).with_param("level"),
            KeyError::NoSuchKey { .. } => ApiError::not_found(error.to_string()),
            KeyError::AlreadyRevoked { .. } => {
                ApiError::new(StatusCode::CONFLICT, "already_revoked", error.to_string())
            }
            KeyError::Ledger(ledger) => ApiError::from(ledger),
        }
    }
}

impl From<runtime::web_users::WebAuthError> for ApiError {
    fn from(error: runtime::web_users::WebAuthError) -> Self {
        use runtime::web_users::WebAuthError as E;
        match error {
            E::BadEmail(_) => ApiError::invalid("email", error.to_string()),
            E::BadPassword(_) => ApiError::invalid("password", error.to_string()),
            E::BadName(_) => ApiError::invalid("name", error.to_string()),
            E::NotAdmin(_) => ApiError::forbidden(error.to_string()),
            E::LevelAbove { .. } => ApiError::forbidden(error.to_string()).with_param("level"),
            E::EmailTaken(_) => ApiError::new(StatusCode::CONFLICT, "conflict", error.to_string()).with_param("email"),
            E::WrongCredentials => ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", error.to_string()),
            E::Throttled(limited) => {
                let retry = limited.retry_after_secs;
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", limited.to_string())
                    .with_retry_after(retry)
            }
            E::Hash(_) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", error.to_string()),
            E::Ledger(ledger) => ApiError::from(ledger),
        }
    }
}

impl From<runtime::budget::BudgetCheckError> for ApiError {
    fn from(error: runtime::budget::BudgetCheckError) -> Self {
        match error {
            runtime::budget::BudgetCheckError::Exhausted(e) => {
                ApiError::new(StatusCode::PAYMENT_REQUIRED, "budget_exhausted", e.to_string())
            }
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl From<domain::ports::StoreError> for ApiError {
    fn from(error: domain::ports::StoreError) -> Self {
        match error {
            domain::ports::StoreError::Conflict { .. } => {
                ApiError::new(StatusCode::CONFLICT, "conflict", error.to_string())
            }
            _ => ApiError::internal(error.to_string()),
        }
    }
}

impl From<runtime::LedgerError> for ApiError {
    fn from(error: runtime::LedgerError) -> Self {
        match error {
            runtime::LedgerError::NoSuchEntry { .. } | runtime::LedgerError::EmptyLog(_) => {
                ApiError::not_found(error.to_string())
            }
            runtime::LedgerError::Tree { .. } => ApiError::invalid("size", error.to_string()),
            runtime::LedgerError::Store(store) => ApiError::from(store),
            _ => ApiError::internal(error.to_string()),
        }
    }
}

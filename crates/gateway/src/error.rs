//! The one error type handlers return, rendered in the dialect the client speaks: Nexus's own
//! (`{"error": {"code", "message"}}`), OpenAI's (`{"error": {"message", "type", "param",
//! "code"}}`) or Anthropic's (`{"type": "error", "error": {"type", "message"}}`). 5xx answers
//! hide internals; 4xx answers say what was wrong.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Which API's error shape to answer in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    #[default]
    Native,
    OpenAi,
    Anthropic,
}

impl Dialect {
    /// The dialect of a request path.
    pub fn of_path(path: &str) -> Self {
        match path {
            "/v1/chat/completions" | "/v1/models" | "/v1/embeddings" | "/v1/completions" => Dialect::OpenAi,
            "/v1/messages" => Dialect::Anthropic,
            _ => Dialect::Native,
        }
    }
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// The request field at fault, when one is.
    pub param: Option<String>,
    pub retry_after: Option<u64>,
    pub dialect: Dialect,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), param: None, retry_after: None, dialect: Dialect::Native }
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

    pub fn in_dialect(mut self, dialect: Dialect) -> Self {
        self.dialect = dialect;
        self
    }

    fn openai_type(&self) -> &'static str {
        match self.status.as_u16() {
            401 => "authentication_error",
            402 => "insufficient_quota",
            403 => "permission_error",
            404 => "not_found_error",
            429 => "rate_limit_error",
            500..=599 => "api_error",
            _ => "invalid_request_error",
        }
    }

    fn anthropic_type(&self) -> &'static str {
        match self.status.as_u16() {
            401 => "authentication_error",
            402 => "billing_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            503 | 529 => "overloaded_error",
            500..=599 => "api_error",
            _ => "invalid_request_error",
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = if self.status.is_server_error() && self.status != StatusCode::SERVICE_UNAVAILABLE {
            tracing::error!(code = self.code, message = %self.message, "request failed");
            "internal error; see the server log".to_owned()
        } else {
            self.message.clone()
        };
        let body = match self.dialect {
            Dialect::Native => {
                let mut error = json!({"code": self.code, "message": message});
                if let Some(param) = &self.param {
                    error["field"] = json!(param);
                }
                json!({ "error": error })
            }
            Dialect::OpenAi => json!({"error": {
                "message": message, "type": self.openai_type(), "param": self.param, "code": self.code,
            }}),
            Dialect::Anthropic => {
                json!({"type": "error", "error": {"type": self.anthropic_type(), "message": message}})
            }
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after
            && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
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
            E::RateLimited(limited) => {
                let mut api = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", error.to_string());
                api.retry_after = Some(limited.retry_after_secs.max(1));
                api
            }
            E::NoSuchRun { .. } | E::NoSuchApproval { .. } => ApiError::not_found(error.to_string()),
            E::ApprovalClosed(_) | E::ApprovalMismatch(_) | E::DrivenElsewhere { .. } | E::AlreadyDriven { .. } => {
                ApiError::new(StatusCode::CONFLICT, "conflict", error.to_string())
            }
            E::SelfApproval { .. } => ApiError::forbidden(error.to_string()),
            E::Store(_) | E::Ledger(_) | E::CorruptRun { .. } | E::UnstorableRun { .. } | E::Stopped { .. } => {
                ApiError::internal(error.to_string())
            }
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

pub(crate) async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no route for {}", uri.path())).in_dialect(Dialect::of_path(uri.path()))
}

pub(crate) async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
    .in_dialect(Dialect::of_path(uri.path()))
}

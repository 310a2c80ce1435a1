//! The model gateway's client-facing formats: OpenAI chat completions and Anthropic messages.
//! Each module owns its wire types and converts them to and from the runtime's neutral chat
//! types, so a request in either format can be served by any provider, streaming included.
//!
//! Errors: each surface answers in its vendor's error shape, fixed by type. A handler returns
//! [`VendorError<V>`] (`openai::OpenAiError`, `anthropic::AnthropicError`); it converts from
//! [`ApiError`], [`GatewayError`] and the runtime's agent errors, so a plain `?` renders in the
//! surface's dialect, and each module's `Body<T>` extractor rejects a bad body in it too. The
//! dialect ([`Dialect`]) only says how a vendor writes an error body; statuses, codes, hidden
//! internals and `Retry-After` are the [`ApiError`]'s.

pub(crate) mod anthropic;
pub(crate) mod openai;

use std::marker::PhantomData;

use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use runtime::auth::Principal;
use runtime::budget::BudgetState;
use runtime::llm::{CallMeta, Caller, GatewayError, LedgerAck};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// How a vendor writes an error body.
pub(crate) trait Dialect {
    /// The vendor's error body.
    type Body: Serialize;

    /// The body for `error`, whose client-visible message is `message`.
    fn body(error: ApiError, message: String) -> Self::Body;
}

/// An error answered in the dialect `V` whatever it started as: handlers of a compat surface
/// return it, and `?` converts into it.
pub(crate) struct VendorError<V> {
    error: ApiError,
    dialect: PhantomData<fn() -> V>,
}

impl<V> std::fmt::Debug for VendorError<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("VendorError").field(&self.error).finish()
    }
}

impl<V> std::fmt::Display for VendorError<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl<V: Dialect> IntoResponse for VendorError<V> {
    fn into_response(self) -> Response {
        self.error.render(V::body)
    }
}

impl<V> From<ApiError> for VendorError<V> {
    fn from(error: ApiError) -> Self {
        Self { error, dialect: PhantomData }
    }
}

impl<V> From<GatewayError> for VendorError<V> {
    fn from(error: GatewayError) -> Self {
        ApiError::from(error).into()
    }
}

impl<V> From<runtime::agent::AgentError> for VendorError<V> {
    fn from(error: runtime::agent::AgentError) -> Self {
        ApiError::from(error).into()
    }
}

/// Reads a JSON body of type `T` with [`crate::json`]'s errors, rendered in the dialect `V`
/// (each compat module's `Body<T>` extractor calls this).
pub(crate) async fn read_body<T: DeserializeOwned, V, S: Send + Sync>(
    request: Request,
    state: &S,
) -> Result<T, VendorError<V>> {
    let crate::json::Body(value) = crate::json::Body::<T>::from_request(request, state).await?;
    Ok(value)
}

/// The request header with which a caller asks to be answered only once its call's ledger
/// entry is durable (`durable`); `queued` takes the server's setting.
pub(crate) const LEDGER_ACK_HEADER: &str = "x-nexus-ledger-ack";

/// The caller a principal is, with what it asked of the ledger (`x-nexus-ledger-ack`).
pub(crate) fn caller(principal: &Principal, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let mut caller = Caller::of(principal);
    if let Some(value) = headers.get(LEDGER_ACK_HEADER) {
        let ack = value.to_str().ok().and_then(LedgerAck::parse).ok_or_else(|| {
            ApiError::bad_request(format!("header {LEDGER_ACK_HEADER} must be `durable` or `queued`"))
        })?;
        caller.durable = ack == LedgerAck::Durable;
    }
    Ok(caller)
}

/// A governed call's response: `body` with the headers describing the call, and the time spent
/// waiting for the upstream for the outermost layer to compute `x-nexus-overhead-us`
/// ([`crate::observe::overhead`]).
pub(crate) fn governed(meta: &CallMeta, body: impl IntoResponse) -> Response {
    let mut response = (meta_headers(meta), body).into_response();
    response.extensions_mut().insert(crate::observe::UpstreamWait(meta.upstream));
    response
}

/// Response headers describing a governed call.
fn meta_headers(meta: &CallMeta) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let mut put = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    put("x-nexus-provider", meta.provider.clone());
    put("x-nexus-model", meta.model.clone());
    if let Some(tier) = meta.tier {
        put(
            "x-nexus-tier",
            serde_json::to_value(tier).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
        );
    }
    put("x-nexus-cost-usd", format!("{:.8}", meta.cost_usd));
    if let Some(index) = meta.ledger_index {
        put("x-nexus-ledger-index", index.to_string());
    }
    put(LEDGER_ACK_HEADER, meta.ledger_ack.as_str().to_owned());
    put("x-nexus-budget-used", format!("{:.4}", meta.budget.fraction));
    if meta.budget.state >= BudgetState::Warning {
        let state = match meta.budget.state {
            BudgetState::Degraded => "degraded",
            BudgetState::Exhausted => "exhausted",
            _ => "warning",
        };
        put("x-nexus-budget-state", state.to_owned());
        put(
            "x-nexus-budget-warning",
            format!(
                "{:.0}% of the monthly budget (${:.2}) is spent",
                meta.budget.fraction * 100.0,
                meta.budget.limit_usd
            ),
        );
    }
    headers
}

impl From<GatewayError> for ApiError {
    fn from(error: GatewayError) -> Self {
        match &error {
            GatewayError::UnknownModel { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "model_not_found", error.to_string()).with_param("model")
            }
            GatewayError::NotConfigured(_) => ApiError::unavailable(error.to_string()),
            GatewayError::LedgerUnavailable(_) => ApiError::unavailable(error.to_string()).with_retry_after(1),
            GatewayError::Unpriced(_) => ApiError::invalid("model", error.to_string()).with_code("model_not_priced"),
            GatewayError::Budget(e) => ApiError::from(runtime::budget::BudgetCheckError::Exhausted(e.clone())),
            GatewayError::Provider(provider) => provider_error(provider),
            GatewayError::Internal(_) => ApiError::internal(error.to_string()),
        }
    }
}

/// A provider's failure in the middle of a stream, for the stream's error event.
pub(crate) fn stream_error(error: runtime::llm::ProviderError) -> ApiError {
    ApiError::from(GatewayError::Provider(error))
}

fn provider_error(error: &runtime::llm::ProviderError) -> ApiError {
    use runtime::llm::ProviderError as P;
    match error {
        P::ContextOverflow { .. } => {
            ApiError::new(StatusCode::BAD_REQUEST, "context_length_exceeded", error.to_string())
        }
        P::Status { status, .. }
            if (400..500).contains(status) && *status != 429 && *status != 401 && *status != 403 =>
        {
            // The upstream refused the request itself: the client's to fix.
            ApiError::new(StatusCode::BAD_REQUEST, "upstream_rejected", error.to_string())
        }
        P::Status { status: 429, retry_after, .. } => {
            let e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "upstream_rate_limited", error.to_string());
            match retry_after {
                Some(wait) => e.with_retry_after(wait.as_secs()),
                None => e,
            }
        }
        P::Timeout { .. } | P::DeadlineExceeded { .. } => {
            ApiError::new(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout", error.to_string())
        }
        P::NotConfigured(_) => ApiError::unavailable(error.to_string()),
        _ => ApiError::new(StatusCode::BAD_GATEWAY, "upstream_error", error.to_string()),
    }
}

/// `value` as JSON text for a stream event. The compat event types are plain structs that always
/// serialize; should one ever fail, the failure is logged and the event carries `null`.
pub(crate) fn json_text(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|error| {
        tracing::error!(%error, "a stream event could not be serialized");
        "null".to_owned()
    })
}

pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `prefix` + 24 random hex characters, for response ids.
pub(crate) fn response_id(prefix: &str) -> String {
    format!("{prefix}{}", &uuid::Uuid::new_v4().simple().to_string()[..24])
}

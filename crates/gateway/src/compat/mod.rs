//! The model gateway's client-facing formats: OpenAI chat completions and Anthropic messages.
//! Each module owns its wire types and converts them to and from the runtime's neutral chat
//! types, so a request in either format can be served by any provider, streaming included.

pub(crate) mod anthropic;
pub(crate) mod openai;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use runtime::budget::BudgetState;
use runtime::llm::{CallMeta, GatewayError};

use crate::error::{ApiError, Dialect};

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

/// A gateway failure in the client's dialect.
pub(crate) fn gateway_error(error: GatewayError, dialect: Dialect) -> ApiError {
    let api = match &error {
        GatewayError::UnknownModel { .. } => {
            ApiError::new(StatusCode::NOT_FOUND, "model_not_found", error.to_string()).with_param("model")
        }
        GatewayError::NotConfigured(_) => ApiError::unavailable(error.to_string()),
        GatewayError::LedgerUnavailable(_) => {
            let mut api = ApiError::unavailable(error.to_string());
            api.retry_after = Some(1);
            api
        }
        GatewayError::Unpriced(_) => ApiError::invalid("model", error.to_string()).with_code("model_not_priced"),
        GatewayError::Budget(e) => ApiError::from(runtime::budget::BudgetCheckError::Exhausted(e.clone())),
        GatewayError::Provider(provider) => provider_error(provider),
        GatewayError::Internal(_) => ApiError::internal(error.to_string()),
    };
    api.in_dialect(dialect)
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
            let mut e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "upstream_rate_limited", error.to_string());
            e.retry_after = retry_after.map(|d| d.as_secs().max(1));
            e
        }
        P::Timeout { .. } | P::DeadlineExceeded { .. } => {
            ApiError::new(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout", error.to_string())
        }
        P::NotConfigured(_) => ApiError::unavailable(error.to_string()),
        _ => ApiError::new(StatusCode::BAD_GATEWAY, "upstream_error", error.to_string()),
    }
}

pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `prefix` + 24 random hex characters, for response ids.
pub(crate) fn response_id(prefix: &str) -> String {
    format!("{prefix}{}", &uuid::Uuid::new_v4().simple().to_string()[..24])
}

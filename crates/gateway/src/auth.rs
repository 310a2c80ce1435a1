//! The authentication and rate-limit layer of every `/v1` route but health and token
//! exchange: a bearer API key or token becomes a [`Principal`] in the request's extensions
//! (handlers take `Extension<Principal>`), then the key's and tenant's limits are counted.
//! Refusals answer 401 with the reason or 429 with `Retry-After`, in the error type the route
//! table gives the layer: `require_auth::<ApiError>` on native routes, the vendor's
//! (`require_auth::<OpenAiError>`, …) on the compat surfaces.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use runtime::auth::AuthError;

use crate::error::ApiError;
use crate::state::AppState;

pub use runtime::auth::Principal;

pub(crate) async fn require_auth<E: From<ApiError> + IntoResponse>(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let header = request.headers().get(header::AUTHORIZATION).map(|v| v.to_str().unwrap_or("\u{0}"));
    // Anthropic clients send their key as `x-api-key`.
    let anthropic_key = request.headers().get("x-api-key").and_then(|v| v.to_str().ok()).map(|k| format!("Bearer {k}"));
    let header = header.map(str::to_owned).or(anthropic_key);
    let principal = match state.runtime.auth().authenticate_header(header.as_deref()).await {
        Ok(principal) => principal,
        Err(error) => return E::from(auth_error(error)).into_response(),
    };
    let allowed = match state.runtime.limits().request(&principal).await {
        Ok(allowed) => allowed,
        Err(limited) => {
            let error = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", limited.to_string())
                .with_retry_after(limited.retry_after_secs);
            return E::from(error).into_response();
        }
    };
    request.extensions_mut().insert(principal);
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert("x-ratelimit-limit-requests", HeaderValue::from(allowed.limit));
    headers.insert("x-ratelimit-remaining-requests", HeaderValue::from(allowed.remaining));
    response
}

pub(crate) fn auth_error(error: AuthError) -> ApiError {
    if error.is_server_error() {
        return ApiError::unavailable(error.to_string());
    }
    let code = match error {
        AuthError::Missing => "missing_credentials",
        AuthError::Expired => "token_expired",
        AuthError::RevokedKey | AuthError::UnknownKey => "invalid_api_key",
        _ => "invalid_credentials",
    };
    ApiError::new(StatusCode::UNAUTHORIZED, code, error.to_string())
}

/// Refuses callers without the admin role.
pub(crate) fn require_admin(principal: &Principal, what: &str) -> Result<(), ApiError> {
    if principal.is_admin() {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!("{what} needs an admin key (nexus keys create --role admin)")))
    }
}

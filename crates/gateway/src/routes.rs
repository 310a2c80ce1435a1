//! The route table: every path Nexus serves, in one place.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use runtime::Runtime;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::error::{method_not_allowed, not_found};
use crate::health;

/// Shared state of every handler.
pub type AppState = Arc<Runtime>;

/// The whole HTTP application.
pub fn app(runtime: Arc<Runtime>) -> Router {
    let header = axum::http::HeaderName::from_static("x-request-id");
    Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/v1/health", get(health::health))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(runtime)
        .layer(PropagateRequestIdLayer::new(header.clone()))
        .layer(TraceLayer::new_for_http())
        .layer(SetRequestIdLayer::new(header, MakeRequestUuid))
}

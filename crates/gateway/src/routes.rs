//! The route table: every path Nexus serves, in one place, and the layers around them (the
//! overhead clock, CORS, request ids, tracing, metrics, body limit, authentication and rate
//! limits).
//!
//! Each surface — native, OpenAI-compatible, Anthropic-compatible — is its own group, and its
//! authentication layer refuses in that surface's error type. Only requests that match no
//! handler (an unknown path, a wrong method) are answered by [`Surface::of_path`].

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use runtime::Runtime;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::compat::anthropic::{self, AnthropicError};
use crate::compat::openai::{self, OpenAiError};
use crate::error::ApiError;
use crate::native::{
    admin, broadcasts, chains, conversations, equipment, jobs, keys, knowledge, ledger, logs, mcp, memory, moderation,
    plugins, settings, usage, watchers,
};
use crate::state::AppState;
use crate::{auth, docs, health, observe};

/// The whole HTTP application with default settings and no metrics renderer.
pub fn app(runtime: Arc<Runtime>) -> Router {
    router(AppState::new(runtime))
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let protected = Router::new()
        .route("/v1/whoami", get(admin::whoami))
        .route("/v1/execute", post(chains::execute))
        .route("/v1/execute/stream", post(chains::execute_stream))
        .route("/v1/chains", get(chains::list_chains))
        .route("/v1/chains/{id}", get(chains::get_chain))
        .route("/v1/chains/{id}/cancel", post(chains::cancel_chain))
        .route("/v1/chains/{id}/events", get(chains::chain_events))
        .route("/v1/events", get(chains::feed))
        .route("/v1/ledger", get(ledger::page))
        .route("/v1/ledger/checkpoint", get(ledger::checkpoint))
        .route("/v1/ledger/proof/inclusion", get(ledger::inclusion))
        .route("/v1/ledger/proof/consistency", get(ledger::consistency))
        .route("/v1/ledger/bundle/{index}", get(ledger::bundle))
        .route("/v1/ledger/chains/{chain_id}", get(ledger::chain))
        .route("/v1/personas", get(admin::list_personas).post(admin::create_persona))
        .route("/v1/personas/{id}", put(admin::update_persona))
        .route("/v1/tools", get(admin::list_tools))
        .route("/v1/approvals", get(admin::list_approvals))
        .route("/v1/approvals/{id}", get(admin::get_approval))
        .route("/v1/approvals/{id}/approve", post(admin::approve))
        .route("/v1/approvals/{id}/deny", post(admin::deny))
        .route("/v1/knowledge/ingest", post(knowledge::ingest))
        .route("/v1/knowledge/query", get(knowledge::query))
        .route("/v1/knowledge/documents", get(knowledge::documents))
        .route("/v1/knowledge/documents/{id}", delete(knowledge::delete_document))
        .route("/v1/usage", get(usage::usage))
        .route("/v1/keys", get(keys::list_keys).post(keys::create_key))
        .route("/v1/keys/{id}", delete(keys::revoke_key))
        .route("/v1/broadcasts", post(broadcasts::create))
        .route("/v1/broadcasts/{id}", get(broadcasts::get))
        .route("/v1/moderation/cases", get(moderation::list_cases))
        .route("/v1/moderation/cases/{id}", get(moderation::get_case))
        .route("/v1/moderation/strictness", get(moderation::strictness))
        .route("/v1/logs", get(logs::logs))
        .route("/v1/health/components", get(health::components))
        .route("/v1/logs/stream", get(logs::stream))
        .route("/v1/equipment", get(equipment::list_equipment))
        .route("/v1/equipment/{name}", get(equipment::get_equipment))
        .route("/v1/equipment/{name}/run", post(equipment::run_equipment))
        .route("/v1/equipment/{name}/enable", post(equipment::enable_equipment))
        .route("/v1/equipment/{name}/disable", post(equipment::disable_equipment))
        .route("/v1/admin/backups", post(equipment::create_backup))
        .route("/v1/settings", get(settings::list_settings).put(settings::change_settings))
        .route("/v1/settings/{key}", get(settings::get_setting))
        .route("/mcp", post(mcp::post_mcp).get(mcp::get_mcp))
        .route("/v1/conversations", get(conversations::list_conversations))
        .route(
            "/v1/conversations/{id}",
            get(conversations::get_conversation).delete(conversations::delete_conversation),
        )
        .route("/v1/conversations/{id}/export", get(conversations::export_conversation))
        .route("/v1/memory", get(memory::list_memory).post(memory::write_memory))
        .route("/v1/memory/{id}", put(memory::supersede_memory).delete(memory::forget_memory))
        .route("/v1/memory/{id}/restore", post(memory::restore_memory))
        .route("/v1/memory/{id}/history", get(memory::memory_history))
        .route("/v1/plugins", get(plugins::list_plugins).post(plugins::add_plugin))
        .route("/v1/plugins/{name}", get(plugins::get_plugin).delete(plugins::remove_plugin))
        .route("/v1/plugins/{name}/enable", post(plugins::enable_plugin))
        .route("/v1/plugins/{name}/disable", post(plugins::disable_plugin))
        .route("/v1/jobs", get(jobs::list_jobs).post(jobs::create_job))
        .route("/v1/jobs/{id}", get(jobs::get_job))
        .route("/v1/jobs/{id}/cancel", post(jobs::cancel_job))
        .route("/v1/jobs/{id}/retry", post(jobs::retry_job))
        .route("/v1/schedules", get(jobs::list_schedules).post(jobs::create_schedule))
        .route("/v1/schedules/{id}", get(jobs::get_schedule).delete(jobs::delete_schedule))
        .route("/v1/watchers", get(watchers::list_watchers).post(watchers::create_watcher))
        .route("/v1/watchers/{id}", get(watchers::get_watcher).delete(watchers::delete_watcher))
        .route("/v1/watchers/{id}/poll", post(watchers::poll_watcher))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::require_auth::<ApiError>));
    let openai = Router::new()
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/models", get(openai::models))
        .route("/v1/embeddings", post(openai::embeddings))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::require_auth::<OpenAiError>));
    let anthropic = Router::new()
        .route("/v1/messages", post(anthropic::messages))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::require_auth::<AnthropicError>));
    let request_id = HeaderName::from_static("x-request-id");
    let max_body = state.settings.max_body_bytes;
    let cors = cors(&state.settings.cors_origins);
    let router = Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/v1/health", get(health::health))
        .route("/v1/ready", get(health::ready))
        .route("/v1/auth/token", post(admin::token))
        .route("/metrics", get(observe::metrics_text))
        .route("/openapi.json", get(docs::openapi_json))
        .route("/docs", get(docs::docs_page))
        .merge(protected)
        .merge(openai)
        .merge(anthropic)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn(observe::record))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
            let id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
            tracing::info_span!("http", method = %request.method(), uri = %request.uri().path(), request_id = %id)
        }))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid));
    let router = match cors {
        Some(cors) => router.layer(cors),
        None => router,
    };
    // Outermost: a gateway call's overhead is timed from the request's arrival.
    router.layer(middleware::from_fn(observe::overhead))
}

/// Which API a path belongs to, for the answers no handler gives (an unknown path or a wrong
/// method) and for the OpenAPI document's error bodies. Handlers never consult it: their return
/// types fix their dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Surface {
    Native,
    OpenAi,
    Anthropic,
}

impl Surface {
    pub(crate) fn of_path(path: &str) -> Self {
        match path {
            "/v1/chat/completions" | "/v1/models" | "/v1/embeddings" | "/v1/completions" => Surface::OpenAi,
            "/v1/messages" => Surface::Anthropic,
            _ => Surface::Native,
        }
    }

    fn respond(self, error: ApiError) -> Response {
        match self {
            Surface::Native => error.into_response(),
            Surface::OpenAi => OpenAiError::from(error).into_response(),
            Surface::Anthropic => AnthropicError::from(error).into_response(),
        }
    }
}

async fn not_found(uri: Uri) -> Response {
    Surface::of_path(uri.path()).respond(ApiError::not_found(format!("no route for {}", uri.path())))
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    let error = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    );
    Surface::of_path(uri.path()).respond(error)
}

fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS])
            .allow_headers([
                axum::http::header::AUTHORIZATION,
                axum::http::header::CONTENT_TYPE,
                HeaderName::from_static("x-api-key"),
                HeaderName::from_static("last-event-id"),
                HeaderName::from_static("x-nexus-ledger-ack"),
            ])
            .expose_headers([
                HeaderName::from_static("x-request-id"),
                HeaderName::from_static("x-nexus-overhead-us"),
                HeaderName::from_static("x-nexus-budget-state"),
                HeaderName::from_static("x-nexus-ledger-ack"),
                HeaderName::from_static("x-nexus-ledger-index"),
            ]),
    )
}

//! Liveness (`/health`: the process answers) and readiness (`/ready`: its database answers
//! and no in-process model is still loading — a server answers `/health` at once and loads its
//! models in the background; also names the rate-limit backend and the `nexus/auto` router in use, and each chat
//! channel's state: `unconfigured`, `starting`, `connected`, `standby`, `degraded`, `conflict`,
//! `failed`). `GET /v1/health/components` (authenticated) checks each component in depth:
//! the database's latency, the rate-limit counter, each provider's breaker, each channel, the
//! free disk.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::state::AppState;

/// Liveness (schema only; the handler builds JSON).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code, reason = "described in the OpenAPI document, never constructed")]
pub(crate) struct HealthResponse {
    /// `ok`.
    status: String,
    version: String,
}

/// Readiness (schema only; the handler builds JSON).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code, reason = "described in the OpenAPI document, never constructed")]
pub(crate) struct ReadyResponse {
    /// `ready` or `not_ready`.
    status: String,
    /// `database` (backend, status, error), `models` (per in-process model: status `loading`,
    /// `ready`, `failed` or `absent`, and detail), `rate_limits` (backend), `router` (name),
    /// `channels` (per channel: status, detail, restarts, last_inbound_at).
    #[schema(value_type = Object)]
    checks: Value,
}

#[utoipa::path(get, path = "/v1/health", tag = "operations", responses((status = 200, body = HealthResponse, description = "the process answers")))]
pub(crate) async fn health() -> Json<Value> {
    Json(json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}

#[utoipa::path(get, path = "/v1/ready", tag = "operations", responses((status = 200, body = ReadyResponse, description = "ready"), (status = 503, body = ReadyResponse, description = "the database does not answer, or a model is still loading")))]
pub(crate) async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let runtime = &state.runtime;
    let readiness = runtime.readiness().await;
    let database = match &readiness.database {
        Ok(()) => json!({"backend": readiness.backend, "status": "ok"}),
        Err(reason) => json!({"backend": readiness.backend, "status": "unavailable", "error": reason}),
    };
    let (status, overall) =
        if readiness.is_ready() { (StatusCode::OK, "ready") } else { (StatusCode::SERVICE_UNAVAILABLE, "not_ready") };
    let models: serde_json::Map<String, Value> = readiness
        .models
        .iter()
        .map(|m| {
            let mut entry = json!({"status": m.state.as_str()});
            // Anyone may read /ready: why a model failed (file paths) is for the log and the
            // operator's health components.
            let detail = match m.state {
                runtime::ModelState::Failed => Some("failed to load; the server log says why"),
                _ => m.detail.as_deref(),
            };
            if let Some(detail) = detail {
                entry["detail"] = json!(detail);
            }
            (m.name.to_owned(), entry)
        })
        .collect();
    // A channel's trouble is reported, never a reason to call the whole server unready.
    let channels: serde_json::Map<String, Value> = runtime
        .channel_health()
        .into_iter()
        .map(|c| {
            let mut entry = json!({"status": c.state.as_str(), "restarts": c.restarts});
            if let Some(detail) = c.detail {
                entry["detail"] = json!(detail);
            }
            if let Some(at) = c.last_inbound_at {
                entry["last_inbound_at"] = json!(at.to_rfc3339());
            }
            (c.channel.as_str().to_owned(), entry)
        })
        .collect();
    let checks = json!({
        "database": database,
        "models": models,
        "rate_limits": {"backend": runtime.limits().backend()},
        "router": {"name": runtime.router_name()},
        "channels": channels,
    });
    (status, Json(json!({"status": overall, "checks": checks})))
}

/// Every component's state (schema only; the handler passes the runtime's JSON on).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code, reason = "described in the OpenAPI document, never constructed")]
pub(crate) struct ComponentsResponse {
    /// `ok` or `degraded`.
    status: String,
    /// What is wrong, in one line, or that all is well.
    summary: String,
    /// `database` (ok, backend, latency_ms, error), `rate_limits` (ok, backend, error),
    /// `providers` (name, ok, circuit, serves), `channels` (channel, ok, state, detail), `disk`
    /// (ok, path, free_bytes), `router`, `settings` (ok, revision, master_key_id, error; null
    /// when this server keeps no settings), `plugins` (name, ok, state, reason: each built-in
    /// plugin and MCP server as this server sees it), `models` (name, ok, state, detail: each
    /// in-process model; the reasons of plugins and models are shown to the operator only).
    #[schema(value_type = Object)]
    components: Value,
}

#[utoipa::path(get, path = "/v1/health/components", tag = "operations",
    responses((status = 200, body = ComponentsResponse, description = "each component checked now (200 even when one is down: the body says which)")),
    security(("bearer" = [])))]
pub(crate) async fn components(
    State(state): State<AppState>,
    axum::Extension(principal): axum::Extension<runtime::auth::Principal>,
) -> Json<Value> {
    let (ok, summary, mut components) = state.runtime.components().await;
    // Why a plugin or a model fails (a server's error, a command, a file) is the operator's to read.
    let operator = principal.is_admin() && principal.tenant.as_str() == runtime::DEMO_TENANT;
    if !operator {
        for (list, field) in [("plugins", "reason"), ("models", "detail")] {
            if let Some(entries) = components.get_mut(list).and_then(Value::as_array_mut) {
                for entry in entries.iter_mut().filter_map(Value::as_object_mut) {
                    entry.remove(field);
                }
            }
        }
    }
    Json(json!({"status": if ok { "ok" } else { "degraded" }, "summary": summary, "components": components}))
}

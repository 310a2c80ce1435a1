//! Liveness (`/health`: the process answers) and readiness (`/ready`: its database answers).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::routes::AppState;

pub(crate) async fn health() -> Json<Value> {
    Json(json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}

pub(crate) async fn ready(State(runtime): State<AppState>) -> (StatusCode, Json<Value>) {
    let readiness = runtime.readiness().await;
    let (status, database) = match &readiness.database {
        Ok(()) => (StatusCode::OK, json!({"backend": readiness.backend, "status": "ok"})),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"backend": readiness.backend, "status": "unavailable", "error": reason}),
        ),
    };
    let overall = if status == StatusCode::OK { "ready" } else { "not_ready" };
    (status, Json(json!({"status": overall, "checks": {"database": database}})))
}

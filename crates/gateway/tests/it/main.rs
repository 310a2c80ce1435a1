//! The router driven in-process with `oneshot`, over a real SQLite database.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use ledger::checkpoint::CheckpointSigner;
use runtime::{Runtime, RuntimeConfig, RuntimeParts};
use serde_json::Value;
use tower::ServiceExt as _;

async fn runtime() -> (Arc<Runtime>, store::test_support::TestDatabase) {
    let db = store::test_support::sqlite().await;
    let signer = CheckpointSigner::new(ed25519_dalek::SigningKey::from_bytes(&[1; 32]));
    let rt = Runtime::start(RuntimeParts::new(Arc::clone(&db.store), signer, RuntimeConfig::default(), None))
        .await
        .expect("start");
    (Arc::new(rt), db)
}

async fn call(rt: &Arc<Runtime>, method: &str, path: &str) -> (StatusCode, Value, Option<String>) {
    let request = Request::builder().method(method).uri(path).body(Body::empty()).expect("request");
    let response = gateway::app(rt.clone()).oneshot(request).await.expect("response");
    let status = response.status();
    let request_id = response.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&bytes).expect("JSON body"), request_id)
}

#[tokio::test]
async fn health_answers_and_ready_reports_the_database() {
    let (rt, _db) = runtime().await;
    let (status, body, request_id) = call(&rt, "GET", "/health").await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("ok")));
    assert!(request_id.is_some_and(|id| !id.is_empty()), "every response carries a request id");

    let (status, body, _) = call(&rt, "GET", "/ready").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["checks"]["database"]["backend"], "sqlite");
    assert_eq!(body["checks"]["database"]["status"], "ok");

    // With the database closed, readiness fails while liveness holds.
    rt.store().close().await;
    let (status, body, _) = call(&rt, "GET", "/ready").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["status"], "not_ready");
    assert!(body["checks"]["database"]["error"].as_str().is_some_and(|e| !e.is_empty()));
    assert_eq!(call(&rt, "GET", "/health").await.0, StatusCode::OK);
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_answer_json() {
    let (rt, _db) = runtime().await;
    let (status, body, _) = call(&rt, "GET", "/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
    let (status, body, _) = call(&rt, "POST", "/health").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["error"]["code"], "method_not_allowed");
}

mod access;
mod broadcasts;
mod compat;
mod conversations;
mod dialects;
mod errors;
mod jobs;
mod keys;
mod logs;
mod mcp_server;
mod memory;
mod moderation;
mod native;
mod openapi;
mod pricing;
mod python_clients;
mod support;
mod watchers;

//! Credentials, tenants, limits and bad input, end to end on a real socket.

use domain::tenant::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Options, entries_of_kind, mount_defaults, spawn_app};

#[tokio::test]
async fn keys_and_tokens_authenticate_and_failures_say_why() {
    let app = spawn_app(Options::default()).await;
    let key = app.key("acme", Role::Member).await;

    let missing = app.client.get(app.url("/v1/whoami")).send().await.expect("send");
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    let body: Value = missing.json().await.expect("json");
    assert_eq!(body["error"]["code"], "missing_credentials");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("Bearer")));

    let wrong = app.get("/v1/whoami", "nxs_not_a_real_key").send().await.expect("send");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.json::<Value>().await.expect("json")["error"]["code"], "invalid_api_key");
    let garbage = app.get("/v1/whoami", "eyJhbGciOiJIUzI1NiJ9.e30.bad").send().await.expect("send");
    assert_eq!(garbage.status(), StatusCode::UNAUTHORIZED);

    let me: Value = app.get("/v1/whoami", &key).send().await.expect("send").json().await.expect("json");
    assert_eq!(
        (me["tenant"].as_str(), me["role"].as_str(), me["method"].as_str()),
        (Some("acme"), Some("member"), Some("api_key"))
    );

    // A key traded for a token; the token works like the key.
    let token: Value = app
        .client
        .post(app.url("/v1/auth/token"))
        .json(&json!({"api_key": key, "expires_in": 60}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(token["token_type"], "Bearer");
    assert_eq!(token["expires_in"], 60);
    let jwt = token["access_token"].as_str().expect("token");
    let me: Value = app.get("/v1/whoami", jwt).send().await.expect("send").json().await.expect("json");
    assert_eq!((me["tenant"].as_str(), me["method"].as_str()), (Some("acme"), Some("jwt")));
    let bad =
        app.client.post(app.url("/v1/auth/token")).json(&json!({"api_key": "nxs_nope"})).send().await.expect("send");
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    let bad = app
        .client
        .post(app.url("/v1/auth/token"))
        .json(&json!({"api_key": key, "expires_in": 0}))
        .send()
        .await
        .expect("send");
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // Revoked: the key and the tokens issued for it stop working at once.
    let keys = app.runtime.store().api_keys(&domain::TenantId::parse("acme").expect("tenant")).await.expect("keys");
    assert!(app.runtime.revoke_api_key(&keys[0].tenant_id, &keys[0].id).await.expect("revoke"));
    assert_eq!(app.get("/v1/whoami", &key).send().await.expect("send").status(), StatusCode::UNAUTHORIZED);
    let revoked = app.get("/v1/whoami", jwt).send().await.expect("send");
    assert_eq!(revoked.status(), StatusCode::UNAUTHORIZED);
    assert!(revoked.text().await.expect("text").contains("revoked"));
}

#[tokio::test]
async fn last_used_is_recorded_in_batches_off_the_request_path() {
    let app = spawn_app(Options::default()).await;
    let key = app.key("acme", Role::Member).await;
    let tenant = domain::TenantId::parse("acme").expect("tenant");
    assert_eq!(app.get("/v1/whoami", &key).send().await.expect("send").status(), StatusCode::OK);
    assert!(
        app.runtime.store().api_keys(&tenant).await.expect("keys")[0].last_used_at.is_none(),
        "not written per request"
    );
    assert_eq!(app.runtime.auth().flush_last_used().await.expect("flush"), 1);
    assert!(app.runtime.store().api_keys(&tenant).await.expect("keys")[0].last_used_at.is_some());
}

#[tokio::test]
async fn two_tenants_see_disjoint_data() {
    let app = spawn_app(Options::default()).await;
    mount_defaults(&app.openai, &app.anthropic).await;
    let (a, b) = (app.key("tenant-a", Role::Admin).await, app.key("tenant-b", Role::Admin).await);
    let ingested = app
        .post("/v1/knowledge/ingest", &a)
        .json(&json!({"source": "a.md", "content": "Tenant A's secret roadmap mentions zeppelins."}))
        .send()
        .await
        .expect("send");
    assert_eq!(ingested.status(), StatusCode::CREATED);
    let doc: Value = ingested.json().await.expect("json");
    let reply = app
        .post("/v1/chat/completions", &a)
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("send");
    assert_eq!(reply.status(), StatusCode::OK);

    let found: Value =
        app.get("/v1/knowledge/query?q=zeppelins", &b).send().await.expect("send").json().await.expect("json");
    assert_eq!(found["hits"].as_array().map(Vec::len), Some(0), "B cannot find A's document");
    let found: Value =
        app.get("/v1/knowledge/query?q=zeppelins", &a).send().await.expect("send").json().await.expect("json");
    assert_eq!(found["hits"].as_array().map(Vec::len), Some(1));
    let docs: Value = app.get("/v1/knowledge/documents", &b).send().await.expect("send").json().await.expect("json");
    assert_eq!(docs, json!([]));
    let id = doc["document_id"].as_str().expect("id");
    let deleted = app
        .client
        .delete(app.url(&format!("/v1/knowledge/documents/{id}")))
        .bearer_auth(&b)
        .send()
        .await
        .expect("send");
    assert_eq!(deleted.status(), StatusCode::NOT_FOUND, "another tenant's id is a 404");

    // Only A made a model call: it is in A's ledger and not in B's.
    assert_eq!(entries_of_kind(&app, &a, "model_call", 1).await.len(), 1);
    assert_eq!(entries_of_kind(&app, &b, "model_call", 1).await.len(), 0);
    let usage_b: Value = app.get("/v1/usage", &b).send().await.expect("send").json().await.expect("json");
    assert_eq!(usage_b["total"]["calls"], 0);
    let chains_b: Value = app.get("/v1/chains", &b).send().await.expect("send").json().await.expect("json");
    assert_eq!(chains_b, json!([]));
    let unknown = app.get(&format!("/v1/chains/{}", domain::ChainId::generate()), &b).send().await.expect("send");
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_input_gets_precise_errors_and_changes_nothing() {
    let app = spawn_app(Options::default()).await;
    let key = app.key("acme", Role::Admin).await;
    let tenant = domain::TenantId::parse("acme").expect("tenant");
    let before = app.runtime.ledger().size(&tenant).await.expect("size");

    let raw = |body: &'static str| app.post("/v1/personas", &key).header("content-type", "application/json").body(body);
    let malformed = raw(r#"{"name": "x", "#).send().await.expect("send");
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    assert!(
        malformed.json::<Value>().await.expect("json")["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("malformed JSON"))
    );
    let wrong_type = raw(r#"{"name": "x", "allowed_tools": "knowledge_search"}"#).send().await.expect("send");
    assert_eq!(wrong_type.status(), StatusCode::BAD_REQUEST);
    assert_eq!(wrong_type.json::<Value>().await.expect("json")["error"]["field"], "allowed_tools");
    let invalid = raw(r#"{"name": "Bad Name!", "allowed_tools": ["knowledge_search"]}"#).send().await.expect("send");
    assert_eq!(invalid.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(invalid.json::<Value>().await.expect("json")["error"]["field"], "name");
    let unknown_tool = raw(r#"{"name": "ok", "allowed_tools": ["rm_rf"]}"#).send().await.expect("send");
    assert_eq!(unknown_tool.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let huge = app
        .post("/v1/knowledge/ingest", &key)
        .json(&json!({"source": "big", "content": "x".repeat(100_000)}))
        .send()
        .await
        .expect("send");
    assert_eq!(huge.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let nowhere = app.get("/v1/nowhere", &key).send().await.expect("send");
    assert_eq!(nowhere.status(), StatusCode::NOT_FOUND);
    assert_eq!(nowhere.json::<Value>().await.expect("json")["error"]["code"], "not_found");
    let wrong_method = app.client.delete(app.url("/v1/execute")).bearer_auth(&key).send().await.expect("send");
    assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);
    let bad_query = app.get("/v1/ledger?limit=many", &key).send().await.expect("send");
    assert_eq!(bad_query.status(), StatusCode::BAD_REQUEST);
    let empty_task = app.post("/v1/execute", &key).json(&json!({"task": "  "})).send().await.expect("send");
    assert_eq!(empty_task.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // A member may not change personas.
    let member = app.key("acme", Role::Member).await;
    let forbidden =
        app.post("/v1/personas", &member).json(&json!({"name": "ok", "allowed_tools": []})).send().await.expect("send");
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);

    // Nothing above changed state: only the member key's creation was ledgered.
    assert_eq!(app.runtime.ledger().size(&tenant).await.expect("size"), before + 1);
    let personas: Value = app.get("/v1/personas", &key).send().await.expect("send").json().await.expect("json");
    assert_eq!(personas.as_array().map(Vec::len), Some(0));

    // And a valid persona goes in, versioned on update.
    let created = raw(r#"{"name": "helper", "allowed_tools": ["knowledge_search"], "resource_scopes": ["kb:*"]}"#)
        .send()
        .await
        .expect("send");
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.expect("json");
    let id = created["id"].as_str().expect("id");
    let updated: Value = app
        .client
        .put(app.url(&format!("/v1/personas/{id}")))
        .bearer_auth(&key)
        .json(&json!({"name": "helper", "allowed_tools": ["knowledge_search", "compute_stats"]}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(updated["version"], 2);
}

#[tokio::test]
async fn limits_hold_under_concurrent_load_with_retry_after() {
    let limits = runtime::limits::LimitSettings {
        key_requests_per_minute: 5,
        tenant_requests_per_minute: 100,
        tenant_chains_per_hour: 100,
    };
    let app = spawn_app(Options { limits, ..Options::default() }).await;
    let key = app.key("acme", Role::Member).await;
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let request = app.get("/v1/whoami", &key);
        calls.spawn(async move { request.send().await.expect("send") });
    }
    let (mut ok, mut limited) = (0, 0);
    while let Some(response) = calls.join_next().await {
        let response = response.expect("join");
        match response.status() {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                limited += 1;
                let wait: u64 = response.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
                assert!((1..=12).contains(&wait), "{wait}");
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((ok, limited), (5, 15));
    // Another key of the same tenant has its own allowance.
    let other = app.key("acme", Role::Member).await;
    let response = app.get("/v1/whoami", &other).send().await.expect("send");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-ratelimit-limit-requests"], "5");
}

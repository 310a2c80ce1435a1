//! Client mistakes in paths and query strings are 400 JSON errors in the native shape naming the
//! parameter, on every route (never a plain-text rejection), and renaming a persona onto a taken
//! name is 409. (The compat surfaces' shapes are checked in `dialects.rs`; none takes a query.)

use domain::tenant::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Options, spawn_app};

#[tokio::test]
async fn malformed_path_and_query_values_are_json_400s_on_every_route() {
    let app = spawn_app(Options::default()).await;
    let key = app.key("acme", Role::Admin).await;
    // Every case names the parameter at fault (`field`), query strings included.
    let cases = [
        ("/v1/ledger/bundle/-113", "index"),
        ("/v1/ledger/bundle/abc", "index"),
        ("/v1/ledger/bundle/99999999999999999999999", "index"),
        ("/v1/ledger?limit=ten", "limit"),
        ("/v1/ledger?before=-1", "before"),
        ("/v1/ledger?colour=red", "colour"),
        ("/v1/ledger/proof/inclusion?index=first", "index"),
        ("/v1/ledger/proof/inclusion", "index"),
        ("/v1/ledger/proof/inclusion?index=1&size=x", "size"),
        ("/v1/ledger/proof/consistency?old=1.5", "old"),
        ("/v1/ledger/proof/consistency", "old"),
        ("/v1/chains?limit=many", "limit"),
        ("/v1/chains?limit=5&limit=6", "limit"),
        ("/v1/keys?state=lost", "state"),
        ("/v1/knowledge/query?limit=5", "q"),
        ("/v1/knowledge/query?q=x&limit=-2", "limit"),
        ("/v1/knowledge/documents?namespace=a&namespace=b", "namespace"),
        ("/v1/usage?from=2026-01-01&bogus=1", "bogus"),
        ("/v1/approvals?state=pending", "state"),
    ];
    for (route, field) in cases {
        let reply = app.get(route, &key).send().await.expect("send");
        assert_eq!(reply.status(), StatusCode::BAD_REQUEST, "{route}");
        let content_type = reply.headers()["content-type"].to_str().expect("ascii").to_owned();
        assert!(content_type.starts_with("application/json"), "{route}: {content_type}");
        let body: Value = reply.json().await.expect("a JSON body");
        assert_eq!(body["error"]["code"], "invalid_request", "{route}: {body}");
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{route}: {body}");
        assert_eq!(body["error"]["field"], field, "{route}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(&format!("`{field}`")) || route.contains("bundle"), "{route}: {body}");
    }
    // A decision body over the limit is a JSON 413 too.
    let reply = app.post("/v1/approvals/x/approve", &key).body("x".repeat(100_000)).send().await.expect("send");
    assert_eq!(reply.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.json::<Value>().await.expect("JSON")["error"]["code"], "body_too_large");
}

#[tokio::test]
async fn a_status_filter_that_names_no_status_is_refused_naming_the_field() {
    let app = spawn_app(Options::default()).await;
    let key = app.key("acme", Role::Admin).await;
    for (route, listed) in [
        ("/v1/chains?status=complete", "planning, executing, awaiting_approval, completed"),
        ("/v1/approvals?status=aproved", "pending, approved, denied or expired"),
    ] {
        let reply = app.get(route, &key).send().await.expect("send");
        assert_eq!(reply.status(), StatusCode::UNPROCESSABLE_ENTITY, "{route}");
        let body: Value = reply.json().await.expect("a JSON body");
        assert_eq!(
            (body["error"]["code"].as_str(), body["error"]["field"].as_str()),
            (Some("invalid_value"), Some("status"))
        );
        assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains(listed)), "{route}: {body}");
    }
}

#[tokio::test]
async fn renaming_a_persona_to_a_taken_name_is_a_conflict() {
    let app = spawn_app(Options::default()).await;
    let key = app.key("acme", Role::Admin).await;
    let mut ids = Vec::new();
    for name in ["writer", "reviewer"] {
        let created = app
            .post("/v1/personas", &key)
            .json(&json!({"name": name, "allowed_tools": ["knowledge_search"]}))
            .send()
            .await
            .expect("send");
        assert_eq!(created.status(), StatusCode::CREATED);
        ids.push(created.json::<Value>().await.expect("json")["id"].as_str().expect("id").to_owned());
    }
    let rename = |name: &str| {
        app.client
            .put(app.url(&format!("/v1/personas/{}", ids[1])))
            .bearer_auth(&key)
            .json(&json!({"name": name, "allowed_tools": ["knowledge_search"]}))
    };
    let taken = rename("writer").send().await.expect("send");
    assert_eq!(taken.status(), StatusCode::CONFLICT);
    let body: Value = taken.json().await.expect("json");
    assert_eq!(body["error"]["code"], "conflict", "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("writer")), "{body}");
    // The same as creating with a taken name, and nothing changed.
    let again = app
        .post("/v1/personas", &key)
        .json(&json!({"name": "writer", "allowed_tools": []}))
        .send()
        .await
        .expect("send");
    assert_eq!(again.status(), StatusCode::CONFLICT);
    let personas: Value = app.get("/v1/personas", &key).send().await.expect("send").json().await.expect("json");
    let names: Vec<&str> = personas.as_array().expect("list").iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names.len(), 2);
    assert!(names.contains(&"reviewer") && names.contains(&"writer"), "{names:?}");
    assert_eq!(rename("editor").send().await.expect("send").status(), StatusCode::OK, "a free name is fine");
}

//! Conversations over HTTP: listed and searched, read with their messages, exported as
//! Markdown and JSON, deleted with a ledger tombstone (the export's digest, never the text);
//! another person's conversation is not found.

use std::time::{Duration, Instant};

use domain::chat::ChatTarget;
use domain::tenant::Role;
use reqwest::StatusCode;
use serde_json::Value;
use sha2::Digest as _;

use crate::support::{Options, mount_defaults, spawn_app};

#[tokio::test]
async fn conversations_are_listed_exported_and_deleted_with_a_tombstone() {
    let app = spawn_app(Options::default()).await;
    mount_defaults(&app.openai, &app.anthropic).await;
    let key = app.key("acme", Role::Member).await;
    let other = app.key("acme", Role::Member).await;
    let principal = app.runtime.auth().authenticate(&key).await.expect("principal");
    let target = ChatTarget::Model("gpt-4o-mini".into());
    let conversation = app.runtime.start_conversation(&principal, target, "Which tea is best?").await.expect("started");
    let id = conversation.id.as_str().to_owned();
    // The reply is written in the background: wait for it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let read = loop {
        let read: Value =
            app.get(&format!("/v1/conversations/{id}"), &key).send().await.expect("send").json().await.expect("json");
        if read["messages"].as_array().is_some_and(|m| m.len() == 2) {
            break read;
        }
        assert!(Instant::now() < deadline, "the reply never came: {read}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(read["messages"][0]["content"], "Which tea is best?");
    assert_eq!(read["messages"][1]["role"], "assistant");

    let listed: Value =
        app.get("/v1/conversations?q=tea", &key).send().await.expect("send").json().await.expect("json");
    assert_eq!(listed["conversations"][0]["id"], id.as_str());
    let none: Value =
        app.get("/v1/conversations?q=coffee", &key).send().await.expect("send").json().await.expect("json");
    assert_eq!(none["conversations"], serde_json::json!([]));
    let theirs = app.get(&format!("/v1/conversations/{id}"), &other).send().await.expect("send");
    assert_eq!(theirs.status(), StatusCode::NOT_FOUND, "another person's conversation is not theirs");

    let markdown = app.get(&format!("/v1/conversations/{id}/export?format=md"), &key).send().await.expect("send");
    assert_eq!(markdown.status(), StatusCode::OK);
    assert!(markdown.headers()["content-type"].to_str().expect("type").starts_with("text/markdown"));
    let markdown = markdown.text().await.expect("text");
    assert!(markdown.starts_with("# ") && markdown.contains("Which tea is best?"), "{markdown}");
    let json = app.get(&format!("/v1/conversations/{id}/export"), &key).send().await.expect("send");
    assert!(json.headers()["content-disposition"].to_str().expect("disposition").contains(".json"));
    let exported: Value = json.json().await.expect("json");
    assert_eq!(exported["messages"].as_array().map(Vec::len), Some(2));
    let bad = app.get(&format!("/v1/conversations/{id}/export?format=pdf"), &key).send().await.expect("send");
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // Deleted: gone, with a tombstone whose digest is the export's — and no text in the ledger.
    let deleted =
        app.client.delete(app.url(&format!("/v1/conversations/{id}"))).bearer_auth(&key).send().await.expect("send");
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let gone = app.get(&format!("/v1/conversations/{id}"), &key).send().await.expect("send");
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    let again =
        app.client.delete(app.url(&format!("/v1/conversations/{id}"))).bearer_auth(&key).send().await.expect("send");
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    let admin = app.key("acme", Role::Admin).await;
    let ledger: Value =
        app.get("/v1/ledger?kind=memory&limit=10", &admin).send().await.expect("send").json().await.expect("json");
    let tombstone = &ledger["entries"][0]["payload"];
    assert_eq!(
        (&tombstone["action"], &tombstone["conversation"], &tombstone["messages"]),
        (&Value::from("conversation_deleted"), &Value::from(id.as_str()), &Value::from(2))
    );
    let digest = format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(domain::canonical::canonical_json(&exported).as_bytes()))
    );
    assert_eq!(tombstone["export_digest"], digest.as_str(), "a kept export proves what was deleted");
    assert!(!ledger.to_string().contains("Which tea"), "the ledger keeps no text");
}

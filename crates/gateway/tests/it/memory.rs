//! Memory over HTTP: remembered with its id, the same text again a no-op, superseded, deleted
//! as a tombstone (gone from the list, kept in the history), restored; each change sealed with
//! a digest and never the text; another member cannot see it, an admin may name its owner;
//! budgets refuse with the reason; untrusted content never overrides what the owner confirmed.

use domain::memory::{MemoryTrust, Provenance};
use domain::tenant::Role;
use reqwest::StatusCode;
use runtime::memory::{MemoryError, MemoryWrite};
use serde_json::{Value, json};
use wiremock::MockServer;

use crate::support::{Options, spawn_app_with};

#[tokio::test]
async fn memory_is_versioned_restorable_sealed_and_private() {
    let app = spawn_app_with(Options::default(), MockServer::start().await, MockServer::start().await).await;
    let key = app.key("acme", Role::Member).await;
    let other = app.key("acme", Role::Member).await;
    let admin = app.key("acme", Role::Admin).await;

    let written =
        app.post("/v1/memory", &key).json(&json!({"content": "  Prefers  green tea "})).send().await.expect("send");
    assert_eq!(written.status(), StatusCode::CREATED);
    let item: Value = written.json().await.expect("json");
    let id = item["id"].as_str().expect("id").to_owned();
    assert_eq!(
        (&item["content"], &item["version"], &item["trust"]),
        (&json!("Prefers green tea"), &json!(1), &json!("confirmed"))
    );

    // The same text (case and spaces aside) is a no-op answering the same item.
    let again = app.post("/v1/memory", &key).json(&json!({"content": "prefers GREEN tea"})).send().await.expect("send");
    assert_eq!(again.status(), StatusCode::OK);
    let again: Value = again.json().await.expect("json");
    assert_eq!((&again["id"], &again["duplicate"], &again["version"]), (&json!(id), &json!(true), &json!(1)));

    let changed: Value = app
        .client
        .put(app.url(&format!("/v1/memory/{id}")))
        .bearer_auth(&key)
        .json(&json!({"content": "Prefers black tea"}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!((&changed["version"], &changed["content"]), (&json!(2), &json!("Prefers black tea")));

    let found: Value = app.get("/v1/memory?q=BLACK", &key).send().await.expect("send").json().await.expect("json");
    assert_eq!(found["items"].as_array().map(Vec::len), Some(1), "{found}");
    let hidden = app.get("/v1/memory?q=tea", &other).send().await.expect("send").json::<Value>().await.expect("json");
    assert_eq!(hidden["items"], json!([]), "another member's memory is not theirs to see");
    let foreign = app.get(&format!("/v1/memory/{id}/history"), &other).send().await.expect("send");
    assert_eq!(foreign.status(), StatusCode::NOT_FOUND);

    // Deleted: a tombstone; gone from the list, there with include_deleted and in the history.
    let deleted = app.client.delete(app.url(&format!("/v1/memory/{id}"))).bearer_auth(&key).send().await.expect("send");
    assert_eq!(deleted.status(), StatusCode::OK);
    assert_eq!(deleted.json::<Value>().await.expect("json")["deleted"], true);
    let listed: Value = app.get("/v1/memory", &key).send().await.expect("send").json().await.expect("json");
    assert_eq!(listed["items"], json!([]));
    let with_deleted: Value =
        app.get("/v1/memory?include_deleted=true", &key).send().await.expect("send").json().await.expect("json");
    assert_eq!(with_deleted["items"][0]["deleted"], true);
    let changed_deleted = app
        .client
        .put(app.url(&format!("/v1/memory/{id}")))
        .bearer_auth(&key)
        .json(&json!({"content": "x"}))
        .send()
        .await
        .expect("send");
    assert_eq!(changed_deleted.status(), StatusCode::UNPROCESSABLE_ENTITY, "restore it first");

    // Restored: the last text before the deletion by default, or any version asked for.
    let restored: Value = app
        .post(&format!("/v1/memory/{id}/restore"), &key)
        .json(&json!({}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(
        (&restored["version"], &restored["content"], &restored["deleted"]),
        (&json!(4), &json!("Prefers black tea"), &json!(false))
    );
    let first: Value = app
        .post(&format!("/v1/memory/{id}/restore"), &key)
        .json(&json!({"version": 1}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!((&first["version"], &first["content"]), (&json!(5), &json!("Prefers green tea")));
    let bad =
        app.post(&format!("/v1/memory/{id}/restore"), &key).json(&json!({"version": 99})).send().await.expect("send");
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.json::<Value>().await.expect("json")["error"]["field"], "version");
    let history: Value =
        app.get(&format!("/v1/memory/{id}/history"), &key).send().await.expect("send").json().await.expect("json");
    let versions: Vec<(i64, bool)> = history["items"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| (v["version"].as_i64().unwrap_or(0), v["deleted"].as_bool().unwrap_or(false)))
        .collect();
    assert_eq!(versions, [(1, false), (2, false), (3, true), (4, false), (5, false)]);

    // An admin may name the owner; a member may not.
    let owner = item["owner"].as_str().expect("owner");
    let seen: Value =
        app.get(&format!("/v1/memory?user={owner}"), &admin).send().await.expect("send").json().await.expect("json");
    assert_eq!(seen["items"][0]["id"], json!(id));
    let refused = app.get(&format!("/v1/memory?user={owner}"), &other).send().await.expect("send");
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);

    // Every change sealed: digests, never the text.
    let ledger: Value =
        app.get("/v1/ledger?kind=memory&limit=50", &admin).send().await.expect("send").json().await.expect("json");
    let actions: Vec<&str> =
        ledger["entries"].as_array().expect("entries").iter().filter_map(|e| e["payload"]["action"].as_str()).collect();
    assert_eq!(actions, ["restored", "restored", "forgotten", "superseded", "remembered"], "{ledger}");
    assert!(!ledger.to_string().contains("tea"), "the ledger keeps digests, not the text");

    // Bad input: named, nothing written.
    let empty = app.post("/v1/memory", &key).json(&json!({"content": "   "})).send().await.expect("send");
    assert_eq!(empty.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let long = app.post("/v1/memory", &key).json(&json!({"content": "x".repeat(2001)})).send().await.expect("send");
    assert_eq!(long.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(long.json::<Value>().await.expect("json")["error"]["field"], "content");
}

#[tokio::test]
async fn budgets_refuse_with_the_reason_and_untrusted_content_never_overrides_the_owner() {
    let app = spawn_app_with(Options::default(), MockServer::start().await, MockServer::start().await).await;
    let key = app.key("acme", Role::Member).await;
    let tenant = domain::TenantId::parse("acme").expect("tenant");
    // 100 items of 2,000 characters fill the 200,000-character budget.
    for i in 0..100 {
        let content = format!("{i:03} {}", "y".repeat(1996));
        let response = app.post("/v1/memory", &key).json(&json!({"content": content})).send().await.expect("send");
        assert_eq!(response.status(), StatusCode::CREATED, "item {i}");
    }
    let full = app.post("/v1/memory", &key).json(&json!({"content": "one more thing"})).send().await.expect("send");
    assert_eq!(full.status(), StatusCode::CONFLICT);
    let body: Value = full.json().await.expect("json");
    assert_eq!(body["error"]["code"], "memory_full", "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("200000")), "{body}");

    // A fact the owner confirmed, then a page the agent fetched saying otherwise.
    let mine = app.key("acme", Role::Member).await;
    let item: Value = app
        .post("/v1/memory", &mine)
        .json(&json!({"content": "My bank is Banca Uno"}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let owner = item["owner"].as_str().expect("owner").to_owned();
    let id = item["id"].as_str().expect("id").to_owned();
    let fetched = Provenance { source: Some("https://evil.example/page".into()), ..Provenance::default() };
    let write = |content: &str| MemoryWrite {
        owner: owner.clone(),
        content: content.into(),
        trust: MemoryTrust::Untrusted,
        provenance: fetched.clone(),
        by: "run".into(),
    };
    let refused = app.runtime.supersede_memory(&tenant, &id, write("My bank is EvilBank, IBAN XX00")).await;
    assert!(matches!(refused, Err(MemoryError::Outranked(_))), "{refused:?}");
    let refused = app.runtime.forget_memory(&tenant, &id, &owner, MemoryTrust::Untrusted, "run").await;
    assert!(matches!(refused, Err(MemoryError::Outranked(_))), "{refused:?}");
    // Written on its own, it is marked untrusted, with where it came from.
    let (noted, created) =
        app.runtime.remember(&tenant, write("Likes the page's newsletter")).await.expect("remembered");
    assert!(created);
    assert_eq!(noted.trust, MemoryTrust::Untrusted);
    let listed: Value =
        app.get("/v1/memory?q=newsletter", &mine).send().await.expect("send").json().await.expect("json");
    assert_eq!(listed["items"][0]["trust"], "untrusted");
    assert_eq!(listed["items"][0]["provenance"]["source"], "https://evil.example/page");
    let current: Value = app.get("/v1/memory?q=bank", &mine).send().await.expect("send").json().await.expect("json");
    assert_eq!(current["items"][0]["content"], "My bank is Banca Uno", "the confirmed item stands");
}

#[tokio::test]
async fn a_run_reads_what_is_remembered_of_its_requester() {
    use wiremock::matchers::{body_string_contains, method, path};
    let model = MockServer::start().await;
    for (phrase, content) in [
        (
            "Break the following task",
            r#"[{"action": "look it up", "tool": "knowledge_search", "params": {"query": "door colour"}, "persona": "researcher"}]"#,
        ),
        (
            "Declare your intent",
            r#"{"planned_action": "search", "tool_params": {"query": "door colour"}, "reasoning": "look it up", "confidence": 0.9}"#,
        ),
        ("Answer the user", "Teal, as you like."),
    ] {
        wiremock::Mock::given(method("POST"))
            .and(path("/chat/completions"))
            .and(body_string_contains(phrase))
            .respond_with(crate::support::openai_completion(content))
            .mount(&model)
            .await;
    }
    let app = spawn_app_with(Options::default(), model, MockServer::start().await).await;
    let key = app.key("demo", Role::Member).await;
    let other = app.key("demo", Role::Member).await;
    for (who, content) in
        [(&key, "My favourite colour is teal"), (&key, "I live in Rome"), (&other, "My favourite colour is mauve")]
    {
        let response = app.post("/v1/memory", who).json(&json!({"content": content})).send().await.expect("send");
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    let run: Value = app
        .post("/v1/execute", &key)
        .json(&json!({"task": "Which colour should I paint my door?"}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(run["status"], "completed", "{run}");
    let requests = app.openai.received_requests().await.unwrap_or_default();
    let bodies: Vec<String> = requests.iter().map(|r| String::from_utf8_lossy(&r.body).into_owned()).collect();
    let declare = bodies.iter().find(|b| b.contains("Declare your intent")).expect("a declare prompt");
    assert!(declare.contains("favourite colour is teal"), "the requester's memory is in the context: {declare}");
    assert!(!bodies.iter().any(|b| b.contains("mauve")), "another person's memory never is");
    assert!(!declare.contains("Rome"), "only what bears on the task");
}

#[tokio::test]
async fn turns_trimmed_from_a_conversation_are_kept_in_memory_first() {
    use std::time::{Duration, Instant};

    use wiremock::matchers::{body_string_contains, method, path};
    let model = MockServer::start().await;
    for (phrase, content) in [("Break the following task", "[]"), ("Answer the user", "Noted.")] {
        wiremock::Mock::given(method("POST"))
            .and(path("/chat/completions"))
            .and(body_string_contains(phrase))
            .respond_with(crate::support::openai_completion(content))
            .mount(&model)
            .await;
    }
    let app = spawn_app_with(Options::default(), model, MockServer::start().await).await;
    let key = app.key("demo", Role::Member).await;
    let principal = app.runtime.auth().authenticate(&key).await.expect("principal");
    let turn = |n: usize, word: &str| format!("Turn {n}: remember {word}. {}", "filler words here. ".repeat(80));
    let target = domain::chat::ChatTarget::Agent(None);
    let conversation =
        app.runtime.start_conversation(&principal, target, &turn(1, "aubergine")).await.expect("started");
    let id = conversation.id.clone();
    let answered = |n: usize| {
        let runtime = app.runtime.clone();
        let principal = principal.clone();
        let id = id.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let (_, messages) = runtime.conversation(&principal, &id).await.expect("read");
                if messages.len() >= n * 2 {
                    return;
                }
                assert!(Instant::now() < deadline, "turn {n} was never answered");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    answered(1).await;
    for (n, word) in [(2, "basil"), (3, "cardamom"), (4, "dill")] {
        app.runtime.say(&principal, &id, &turn(n, word)).await.expect("said");
        answered(n).await;
    }
    // The context holds about 4,000 characters: the first turns no longer fit, and are in memory.
    let kept: Value = app.get("/v1/memory?q=aubergine", &key).send().await.expect("send").json().await.expect("json");
    let item = &kept["items"][0];
    assert_eq!(item["id"], format!("conversation-{}", id.as_str()), "{kept}");
    assert_eq!(item["trust"], "agent");
    assert_eq!(item["provenance"]["message"], format!("conversation:{}", id.as_str()));
    assert!(item["version"].as_i64().is_some_and(|v| v >= 1), "{item}");
    let mut requests = app.openai.received_requests().await.unwrap_or_default();
    requests.extend(app.anthropic.received_requests().await.unwrap_or_default());
    let bodies: Vec<String> = requests.iter().map(|r| String::from_utf8_lossy(&r.body).into_owned()).collect();
    let last = bodies.iter().rfind(|b| b.contains("remember dill")).expect("the last run's model call");
    assert!(!last.contains("remember aubergine. filler"), "the first turn itself was trimmed from the context");
}

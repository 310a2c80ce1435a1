//! The native API end to end: runs (blocking, streamed, re-attached, cancelled), the ledger and
//! its proofs, approvals, OpenAPI and the docs page.

use domain::tenant::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer};

use crate::support::{Options, openai_completion, spawn_app_with, sse_events};

const PLAN: &str = "Break the following task";
const DECLARE: &str = "Declare your intent";
const ANSWER: &str = "Answer the user";

async fn model(replies: &[(&str, &str)]) -> MockServer {
    let server = MockServer::start().await;
    for (phrase, content) in replies {
        Mock::given(method("POST"))
            .and(path("/chat/completions"))
            .and(body_string_contains(*phrase))
            .respond_with(openai_completion(content))
            .mount(&server)
            .await;
    }
    server
}

async fn search_model() -> MockServer {
    model(&[
        (PLAN, r#"[{"action": "search the knowledge base", "tool": "knowledge_search", "params": {"query": "ledger"}, "persona": "researcher"}]"#),
        (DECLARE, r#"{"planned_action": "search", "tool_params": {"query": "ledger"}, "resource_targets": ["kb:default"], "reasoning": "look it up", "confidence": 0.9}"#),
        (ANSWER, "The ledger is tamper-evident."),
    ])
    .await
}

#[tokio::test]
async fn execute_returns_sealed_steps_and_the_ledger_proves_them() {
    let app = spawn_app_with(Options::default(), search_model().await, MockServer::start().await).await;
    let key = app.key("demo", Role::Member).await;
    let reply = app.post("/v1/execute", &key).json(&json!({"task": "What is the ledger?"})).send().await.expect("send");
    assert_eq!(reply.status(), StatusCode::OK);
    let run: Value = reply.json().await.expect("json");
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["result"], "The ledger is tamper-evident.");
    let seal = &run["seals"][0];
    assert_eq!((seal["tool"].as_str(), seal["status"].as_str()), (Some("knowledge_search"), Some("executed")));
    let gates: Vec<&str> = seal["gates"].as_array().expect("gates").iter().filter_map(|g| g["name"].as_str()).collect();
    assert_eq!(gates, ["scope", "intent", "ttl", "drift"]);
    assert!(seal["created_at"].as_str().is_some(), "the seal's ledger time");
    assert!(run["cost"]["input_tokens"].as_u64().is_some_and(|t| t > 0));
    let chain = run["chain_id"].as_str().expect("chain");

    let stored: Value =
        app.get(&format!("/v1/chains/{chain}"), &key).send().await.expect("send").json().await.expect("json");
    assert_eq!(stored["seals"], run["seals"]);
    let ledger: Value =
        app.get(&format!("/v1/ledger/chains/{chain}"), &key).send().await.expect("send").json().await.expect("json");
    assert_eq!(ledger["verified"], true, "{ledger}");
    let kinds: Vec<&str> =
        ledger["entries"].as_array().expect("entries").iter().filter_map(|e| e["kind"].as_str()).collect();
    assert!(kinds.contains(&"seal_intent") && kinds.contains(&"seal_result"), "{kinds:?}");

    // Proofs: inclusion of the first seal against the latest checkpoint, consistency of two sizes.
    app.runtime.ledger().publish_checkpoints().await.expect("checkpoint");
    let checkpoint: Value =
        app.get("/v1/ledger/checkpoint", &key).send().await.expect("send").json().await.expect("json");
    let size = checkpoint["size"].as_u64().expect("size");
    assert!(checkpoint["signed_note"].as_str().is_some_and(|n| n.contains("test.nexus/ledger/demo")));
    let index = ledger["entries"][0]["index"].as_u64().expect("index");
    let proof: Value = app
        .get(&format!("/v1/ledger/proof/inclusion?index={index}"), &key)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(proof["size"].as_u64(), Some(size));
    let leaf: [u8; 32] = hex_array(proof["leaf_hash"].as_str().expect("leaf"));
    let path: Vec<[u8; 32]> =
        proof["hashes"].as_array().expect("hashes").iter().map(|h| hex_array(h.as_str().expect("hex"))).collect();
    let root = hex_array(checkpoint["root_hash"].as_str().expect("root"));
    ledger::proof::verify_inclusion(&leaf, index, size, &path, &root).expect("the inclusion proof verifies");
    let consistency: Value =
        app.get("/v1/ledger/proof/consistency?old=1", &key).send().await.expect("send").json().await.expect("json");
    assert_eq!(consistency["old_size"], 1);
    let out_of_range = app
        .get(&format!("/v1/ledger/proof/inclusion?index={}&size={}", size + 5, size), &key)
        .send()
        .await
        .expect("send");
    assert_eq!(out_of_range.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let bundle = app.get(&format!("/v1/ledger/bundle/{index}"), &key).send().await.expect("send");
    assert_eq!(bundle.status(), StatusCode::OK);
    let page: Value = app.get("/v1/ledger?limit=2", &key).send().await.expect("send").json().await.expect("json");
    assert_eq!(page["entries"].as_array().map(Vec::len), Some(2));
    let next = page["next_before"].as_u64().expect("more pages");
    let older: Value = app
        .get(&format!("/v1/ledger?limit=2&before={next}"), &key)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert!(older["entries"][0]["index"].as_u64().is_some_and(|i| i < next));
}

#[tokio::test]
async fn listing_chains_by_status_returns_as_many_as_asked() {
    // Tasks naming ALPHA complete; tasks naming OMEGA fail (the planner never gives a plan).
    let server = MockServer::start().await;
    for (phrases, content) in
        [([PLAN, "ALPHA"], "[]"), ([ANSWER, "ALPHA"], "Done."), ([PLAN, "OMEGA"], "no plan today")]
    {
        Mock::given(method("POST"))
            .and(path("/chat/completions"))
            .and(body_string_contains(phrases[0]))
            .and(body_string_contains(phrases[1]))
            .respond_with(openai_completion(content))
            .mount(&server)
            .await;
    }
    let app = spawn_app_with(Options::default(), server, MockServer::start().await).await;
    let key = app.key("demo", Role::Member).await;
    // Oldest to newest; the newest two failed, so a limit applied before the filter would find
    // no completed chain among them.
    for task in ["ALPHA 1", "OMEGA 1", "ALPHA 2", "OMEGA 2", "ALPHA 3", "OMEGA 3", "OMEGA 4"] {
        let run: Value = app
            .post("/v1/execute", &key)
            .json(&json!({"task": task}))
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json");
        let expected = if task.starts_with("ALPHA") { "completed" } else { "failed" };
        assert_eq!(run["status"], expected, "{task}: {run}");
    }
    let list = |query: &'static str| {
        let app = &app;
        let key = &key;
        async move {
            let reply = app.get(&format!("/v1/chains?{query}"), key).send().await.expect("send");
            assert_eq!(reply.status(), StatusCode::OK, "{query}");
            let chains: Vec<Value> = reply.json().await.expect("json");
            chains
                .iter()
                .map(|c| (c["task"].as_str().unwrap_or_default().to_owned(), c["status"].clone()))
                .collect::<Vec<_>>()
        }
    };
    let completed = list("status=completed&limit=2").await;
    assert_eq!(
        completed,
        [("ALPHA 3".to_owned(), json!("completed")), ("ALPHA 2".to_owned(), json!("completed"))],
        "exactly two, the newest completed ones"
    );
    let failed = list("status=failed&limit=3").await;
    assert_eq!(failed.len(), 3, "{failed:?}");
    assert!(failed.iter().all(|(_, status)| *status == "failed"), "{failed:?}");
    assert_eq!(list("status=completed&limit=50").await.len(), 3);
    assert_eq!(list("status=cancelled").await.len(), 0);
    assert_eq!(list("limit=5").await.len(), 5);
}

fn hex_array(text: &str) -> [u8; 32] {
    let bytes: Vec<u8> =
        (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex")).collect();
    bytes.try_into().expect("32 bytes")
}

#[tokio::test]
async fn execute_stream_sends_seed_events_in_order_and_reattaches() {
    let app = spawn_app_with(Options::default(), search_model().await, MockServer::start().await).await;
    let key = app.key("demo", Role::Member).await;
    let reply =
        app.post("/v1/execute/stream", &key).json(&json!({"task": "What is the ledger?"})).send().await.expect("send");
    assert_eq!(reply.status(), StatusCode::OK);
    assert!(reply.headers()["content-type"].to_str().expect("ascii").starts_with("text/event-stream"));
    let events = sse_events(&reply.text().await.expect("body"));
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_deref().unwrap_or("")).collect();
    assert_eq!(
        names,
        [
            "chain_started",
            "step_started",
            "gate_result",
            "gate_result",
            "gate_result",
            "gate_result",
            "seal_created",
            "seal_created",
            "step_completed",
            "chain_completed"
        ],
    );
    let started: Value = serde_json::from_str(&events[0].1).expect("json");
    assert_eq!(started["steps"], 1);
    let gate: Value = serde_json::from_str(&events[2].1).expect("json");
    assert_eq!(
        (gate["step"].as_u64(), gate["gate"].as_str(), gate["verdict"].as_str()),
        (Some(0), Some("scope"), Some("pass"))
    );
    let done: Value = serde_json::from_str(&events[9].1).expect("json");
    assert_eq!(done["status"], "completed");
    let chain = done["chain_id"].as_str().expect("chain");

    // Re-attach: the whole history again; with Last-Event-ID only what came after it.
    let again =
        app.get(&format!("/v1/chains/{chain}/events"), &key).send().await.expect("send").text().await.expect("body");
    assert_eq!(sse_events(&again).len(), 10);
    let after = app
        .get(&format!("/v1/chains/{chain}/events"), &key)
        .header("last-event-id", "7")
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("body");
    let names: Vec<String> = sse_events(&after).into_iter().filter_map(|(n, _)| n).collect();
    assert_eq!(names, ["step_completed", "chain_completed"]);
    // Another tenant cannot attach.
    let other = app.key("other", Role::Member).await;
    assert_eq!(
        app.get(&format!("/v1/chains/{chain}/events"), &other).send().await.expect("send").status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_client_that_disconnects_does_not_stop_the_run() {
    // The planner answers slowly: the client hangs up while the run is in flight.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .and(body_string_contains(PLAN))
        .respond_with(openai_completion("[]").set_delay(std::time::Duration::from_millis(600)))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .and(body_string_contains(ANSWER))
        .respond_with(openai_completion("Hi there."))
        .mount(&server)
        .await;
    let app = spawn_app_with(Options::default(), server, MockServer::start().await).await;
    let key = app.key("demo", Role::Member).await;
    let mut reply = app.post("/v1/execute/stream", &key).json(&json!({"task": "say hi"})).send().await.expect("send");
    let first = reply.chunk().await.expect("read").expect("a first event");
    let first = String::from_utf8_lossy(&first).to_string();
    let chain = serde_json::from_str::<Value>(&sse_events(&first)[0].1)
        .ok()
        .and_then(|v| v["chain_id"].as_str().map(str::to_owned));
    drop(reply);
    // Re-attached later, the run finished without the original client.
    let chains: Value = app.get("/v1/chains", &key).send().await.expect("send").json().await.expect("json");
    let chain = chain.or_else(|| chains[0]["chain_id"].as_str().map(str::to_owned)).expect("chain id");
    let events =
        app.get(&format!("/v1/chains/{chain}/events"), &key).send().await.expect("send").text().await.expect("body");
    let last = sse_events(&events).pop().expect("events");
    assert_eq!(last.0.as_deref(), Some("chain_completed"));
    assert_eq!(serde_json::from_str::<Value>(&last.1).expect("json")["status"], "completed");
}

#[tokio::test]
async fn approvals_are_decided_by_admins_never_by_the_requester() {
    let server = model(&[
        (PLAN, r#"[{"action": "email the board", "tool": "send_email", "params": {"to": "board@example.com", "subject": "r", "body": "b"}, "persona": "communicator"}]"#),
        (DECLARE, r#"{"planned_action": "send", "tool_params": {"to": "board@example.com", "subject": "r", "body": "b"}}"#),
        (ANSWER, "Done."),
    ])
    .await;
    let app = spawn_app_with(Options::default(), server, MockServer::start().await).await;
    let requester = app.key("demo", Role::Admin).await;
    let run: Value = app
        .post("/v1/execute", &requester)
        .json(&json!({"task": "Email the board the report"}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(run["status"], "awaiting_approval", "{run}");
    let pending: Value =
        app.get("/v1/approvals?status=pending", &requester).send().await.expect("send").json().await.expect("json");
    let id = pending[0]["id"].as_str().expect("approval id").to_owned();
    assert_eq!(pending[0]["tool"], "send_email");

    // A second held run is cancelled instead: it ends `cancelled`, nothing runs.
    let second: Value = app
        .post("/v1/execute", &requester)
        .json(&json!({"task": "Email the board again"}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let second_chain = second["chain_id"].as_str().expect("chain");
    let cancelled: Value = app
        .post(&format!("/v1/chains/{second_chain}/cancel"), &requester)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(cancelled["status"], "cancelled");
    assert!(cancelled["error"].as_str().is_some_and(|e| e.contains("cancelled by key:")), "{cancelled}");
    let closed: Value =
        app.get("/v1/approvals?status=denied", &requester).send().await.expect("send").json().await.expect("json");
    assert!(
        closed
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["chain_id"] == second_chain && x["note"] == "run cancelled")),
        "{closed}"
    );

    let own = app.post(&format!("/v1/approvals/{id}/approve"), &requester).send().await.expect("send");
    assert_eq!(own.status(), StatusCode::FORBIDDEN, "never one's own request");
    let member = app.key("demo", Role::Member).await;
    assert_eq!(
        app.post(&format!("/v1/approvals/{id}/approve"), &member).send().await.expect("send").status(),
        StatusCode::FORBIDDEN
    );
    let outsider = app.key("other", Role::Admin).await;
    assert_eq!(
        app.post(&format!("/v1/approvals/{id}/deny"), &outsider).send().await.expect("send").status(),
        StatusCode::NOT_FOUND
    );

    let approver = app.key("demo", Role::Admin).await;
    let denied = app
        .post(&format!("/v1/approvals/{id}/deny"), &approver)
        .json(&json!({"note": "not today"}))
        .send()
        .await
        .expect("send");
    assert_eq!(denied.status(), StatusCode::OK);
    let after: Value = denied.json().await.expect("json");
    assert_ne!(after["status"], "awaiting_approval");
    let again = app.post(&format!("/v1/approvals/{id}/approve"), &approver).send().await.expect("send");
    assert_eq!(again.status(), StatusCode::CONFLICT, "single use");
}

#[tokio::test]
async fn openapi_docs_and_metrics_are_served() {
    let app = spawn_app_with(Options::default(), MockServer::start().await, MockServer::start().await).await;
    let spec: Value = app.client.get(app.url("/openapi.json")).send().await.expect("send").json().await.expect("json");
    assert!(spec["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")));
    for path in [
        "/v1/execute",
        "/v1/execute/stream",
        "/v1/chat/completions",
        "/v1/messages",
        "/v1/ledger/proof/inclusion",
        "/v1/usage",
    ] {
        assert!(spec["paths"][path].is_object(), "{path} documented");
    }
    assert!(spec["components"]["schemas"]["ExecuteResponse"].is_object());
    let docs = app.client.get(app.url("/docs")).send().await.expect("send").text().await.expect("html");
    assert!(docs.contains("/openapi.json") && !docs.contains("https://"), "served offline");
    let cors = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/v1/models"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .expect("send");
    assert_eq!(cors.headers()["access-control-allow-origin"], "https://app.example.com");
}

#[tokio::test]
async fn uploads_are_judged_per_file_and_nothing_partial_is_stored() {
    let app = spawn_app_with(Options::default(), MockServer::start().await, MockServer::start().await).await;
    let key = app.key("acme", Role::Member).await;
    let part = |name: &str, bytes: &[u8], mime: &str| {
        reqwest::multipart::Part::bytes(bytes.to_vec()).file_name(name.to_owned()).mime_str(mime).expect("mime")
    };
    let form = reqwest::multipart::Form::new()
        .text("namespace", "handbook")
        .part("file", part("guide.md", b"# Guide\n\nThe **ledger** keeps every seal.", "text/markdown"))
        .part("file", part("page.html", b"<html><head><title>T</title><script>x()</script></head><body><p>Checkpoints are signed.</p></body></html>", "text/html"))
        .part("file", part("fake.pdf", b"this is not a pdf", "application/pdf"))
        .part("file", part("empty.txt", b"", "text/plain"));
    let reply = app.post("/v1/knowledge/ingest", &key).multipart(form).send().await.expect("send");
    assert_eq!(reply.status(), StatusCode::MULTI_STATUS);
    let body: Value = reply.json().await.expect("json");
    assert_eq!((body["stored"].as_u64(), body["failed"].as_u64()), (Some(2), Some(2)), "{body}");
    let statuses: Vec<&str> =
        body["files"].as_array().expect("files").iter().filter_map(|f| f["status"].as_str()).collect();
    assert_eq!(statuses, ["stored", "stored", "failed", "failed"]);
    assert!(body["files"][2]["error"].as_str().is_some_and(|e| e.contains("fake.pdf")), "{body}");
    let docs: Value = app
        .get("/v1/knowledge/documents?namespace=handbook", &key)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(docs.as_array().map(Vec::len), Some(2), "only the good files are stored");
    let found: Value = app
        .get("/v1/knowledge/query?q=signed%20checkpoints&namespace=handbook", &key)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert!(
        found["hits"][0]["text"].as_str().is_some_and(|t| t.contains("Checkpoints are signed") && !t.contains("x()")),
        "{found}"
    );
    assert_eq!(found["mode"], "lexical");
    let hidden: Value = app
        .get("/v1/knowledge/query?q=ledger&namespace=secret-ns", &key)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(hidden["hits"], json!([]), "an unknown namespace is simply empty");
}

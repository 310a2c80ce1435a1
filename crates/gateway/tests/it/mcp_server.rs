//! `/mcp` against the official MCP Python SDK's client (installed from the Python package
//! index): the handshake, the tool list with its annotations, a knowledge search, a task run
//! through the engine (gated and sealed), its status, a ledger proof; a bad argument is a tool
//! error naming it, an unknown tool a protocol error, another tenant's run invisible. And the
//! raw protocol: notifications accepted, no event stream, no key refused, bad JSON a parse error.

use domain::tenant::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};
use wiremock::MockServer;
use wiremock::matchers::{body_string_contains, method, path};

use crate::python_clients::pip_install;
use crate::support::{Options, openai_completion, spawn_app_with};

const SDK: &[&str] = &["mcp==2.3.0"];

async fn model() -> MockServer {
    let server = MockServer::start().await;
    for (phrase, content) in [
        (
            "Break the following task",
            r#"[{"action": "search the knowledge base", "tool": "knowledge_search", "params": {"query": "ledger", "namespace": "handbook"}, "persona": "researcher"}]"#,
        ),
        (
            "Declare your intent",
            r#"{"planned_action": "search", "tool_params": {"query": "ledger", "namespace": "handbook"}, "reasoning": "look it up", "confidence": 0.9}"#,
        ),
        ("Answer the user", "The ledger keeps every seal."),
    ] {
        wiremock::Mock::given(method("POST"))
            .and(path("/chat/completions"))
            .and(body_string_contains(phrase))
            .respond_with(openai_completion(content))
            .mount(&server)
            .await;
    }
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_client_searches_runs_and_proves_through_mcp() {
    let Some(site) = pip_install(SDK).await else { return };
    let app = spawn_app_with(Options::default(), model().await, MockServer::start().await).await;
    let key = app.key("demo", Role::Member).await;
    let other = app.key("acme", Role::Admin).await;
    let form = reqwest::multipart::Form::new().text("namespace", "handbook").part(
        "file",
        reqwest::multipart::Part::bytes(b"# Handbook\n\nThe ledger keeps every seal, signed in checkpoints.".to_vec())
            .file_name("handbook.md")
            .mime_str("text/markdown")
            .expect("mime"),
    );
    let stored = app.post("/v1/knowledge/ingest", &key).multipart(form).send().await.expect("ingest");
    assert!(stored.status().is_success(), "{}", stored.text().await.unwrap_or_default());

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/mcp_client.py");
    let output = tokio::process::Command::new("python3")
        .arg(script)
        .env("PYTHONPATH", &site)
        .env("NEXUS_BASE", &app.base)
        .env("NEXUS_KEY", &key)
        .env("NEXUS_OTHER_KEY", &other)
        .env("NO_PROXY", "*")
        .output()
        .await
        .expect("python3 runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the MCP client script failed:\n{stderr}");
    let seen: Value = serde_json::from_slice(&output.stdout).expect("the script prints JSON");
    eprintln!("mcp client: {seen}");
    assert_eq!(seen["server"], "nexus");
    assert_eq!(seen["protocol"], "2025-11-25");
    assert_eq!(seen["tools"], json!(["knowledge_search", "run_task", "chain_status", "ledger_proof"]));
    assert_eq!(
        seen["read_only"],
        json!({"knowledge_search": true, "run_task": false, "chain_status": true, "ledger_proof": true})
    );
    assert_eq!(seen["search_error"], false);
    assert!(seen["search"]["hits"][0]["text"].as_str().is_some_and(|t| t.contains("every seal")), "{seen}");
    assert_eq!(seen["run_error"], false);
    assert_eq!(seen["run"]["status"], "completed", "{seen}");
    assert_eq!(seen["run"]["result"], "The ledger keeps every seal.");
    assert_eq!(seen["run"]["seals"][0]["tool"], "knowledge_search");
    let gates: Vec<&str> =
        seen["run"]["seals"][0]["gates"].as_array().expect("gates").iter().filter_map(|g| g["name"].as_str()).collect();
    assert_eq!(gates, ["scope", "intent", "ttl", "drift"], "the run went through the gates");
    assert_eq!(seen["status"]["status"], "completed");
    assert_eq!(seen["proof_error"], false, "{seen}");
    assert!(seen["proof"].to_string().contains("demo"), "a bundle of the caller's tenant: {seen}");
    assert_eq!(seen["bad_error"], true);
    assert!(seen["bad_text"].as_str().is_some_and(|t| t.contains("query")), "names the argument: {seen}");
    assert!(seen["unknown_tool"].as_str().is_some_and(|t| t.contains("no_such_tool")), "{seen}");
    assert_eq!(seen["other_tenant_error"], true, "another tenant's run is not found: {seen}");

    // The proof verifies offline against the tenant's log.
    let chain = seen["chain_id"].as_str().expect("chain");
    let ledger: Value =
        app.get(&format!("/v1/ledger/chains/{chain}"), &key).send().await.expect("send").json().await.expect("json");
    assert_eq!(ledger["verified"], true, "{ledger}");
}

#[tokio::test]
async fn the_raw_protocol_is_strict_and_stateless() {
    let app = spawn_app_with(Options::default(), MockServer::start().await, MockServer::start().await).await;
    let key = app.key("demo", Role::Member).await;
    let post = |body: Value| app.post("/mcp", &key).json(&body);

    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                      "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let reply = post(init).send().await.expect("send");
    assert_eq!(reply.status(), StatusCode::OK);
    assert!(reply.headers().get("mcp-session-id").is_none(), "stateless: no session");
    let body: Value = reply.json().await.expect("json");
    assert_eq!((&body["id"], &body["result"]["protocolVersion"]), (&json!(1), &json!("2025-06-18")));

    let note = post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).send().await.expect("send");
    assert_eq!(note.status(), StatusCode::ACCEPTED);
    // Any request stands alone: tools/list with no handshake first, on any replica.
    let listed: Value = post(json!({"jsonrpc": "2.0", "id": "a", "method": "tools/list"}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(listed["result"]["tools"].as_array().map(Vec::len), Some(4));
    let unknown: Value = post(json!({"jsonrpc": "2.0", "id": 2, "method": "resources/list"}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(unknown["error"]["code"], -32601);
    let batch = post(json!([{"jsonrpc": "2.0", "id": 3, "method": "ping"}])).send().await.expect("send");
    assert_eq!(batch.status(), StatusCode::BAD_REQUEST, "batches were dropped from the protocol");
    let refused: Value = batch.json().await.expect("json");
    assert!(refused["error"]["message"].as_str().is_some_and(|m| m.contains("batch")), "{refused}");

    let garbage =
        app.post("/mcp", &key).header("content-type", "application/json").body("{not json").send().await.expect("send");
    assert_eq!(garbage.status(), StatusCode::BAD_REQUEST);
    assert_eq!(garbage.json::<Value>().await.expect("json")["error"]["code"], -32700);
    let not_rpc = post(json!({"hello": "world"})).send().await.expect("send");
    assert_eq!(not_rpc.status(), StatusCode::BAD_REQUEST);
    let version = post(json!({"jsonrpc": "2.0", "id": 4, "method": "ping"}))
        .header("mcp-protocol-version", "1999-01-01")
        .send()
        .await
        .expect("send");
    assert_eq!(version.status(), StatusCode::BAD_REQUEST);
    let stream = app.get("/mcp", &key).send().await.expect("send");
    assert_eq!(stream.status(), StatusCode::METHOD_NOT_ALLOWED);
    let anonymous = app
        .client
        .post(app.url("/mcp"))
        .json(&json!({"jsonrpc": "2.0", "id": 5, "method": "ping"}))
        .send()
        .await
        .expect("send");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

//! The model gateway: OpenAI and Anthropic formats in, either vendor out, streaming included;
//! every call priced, ledgered and counted; budgets warn, degrade and refuse.

use domain::tenant::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Options, entries_of_kind, mount_defaults, spawn_app, sse_events};

/// With `gateway_ack = "queued"` a call is answered once the writer has its entry: the answer
/// says so and names no index; a caller can still ask for a durable answer, which names its
/// entry; a bad header is refused; every queued entry is committed when the server shuts down.
#[tokio::test]
async fn queued_calls_are_answered_before_their_entry_commits_and_all_commit_by_shutdown() {
    let app = spawn_app(Options { gateway_ack: runtime::llm::LedgerAck::Queued, ..Options::default() }).await;
    mount_defaults(&app.openai, &app.anthropic).await;
    let key = app.key("acme", Role::Member).await;
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});

    let queued = app.post("/v1/chat/completions", &key).json(&body).send().await.expect("send");
    assert_eq!(queued.status(), StatusCode::OK);
    assert_eq!(queued.headers()["x-nexus-ledger-ack"], "queued");
    assert!(queued.headers().get("x-nexus-ledger-index").is_none(), "no index is known yet");

    let durable = app
        .post("/v1/chat/completions", &key)
        .header("x-nexus-ledger-ack", "durable")
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(durable.status(), StatusCode::OK);
    assert_eq!(durable.headers()["x-nexus-ledger-ack"], "durable");
    let index: u64 = durable.headers()["x-nexus-ledger-index"].to_str().expect("ascii").parse().expect("an index");
    let page: Value =
        app.get("/v1/ledger?kind=model_call", &key).send().await.expect("send").json().await.expect("json");
    assert_eq!(page["entries"][0]["index"], index, "durable when answered: {page}");

    let refused = app
        .post("/v1/chat/completions", &key)
        .header("x-nexus-ledger-ack", "eventually")
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let error: Value = refused.json().await.expect("json");
    assert!(error["error"]["message"].as_str().is_some_and(|m| m.contains("x-nexus-ledger-ack")), "{error}");

    // A burst of queued calls, streamed and not, then a clean shutdown: every one is recorded.
    let mut answered = 2;
    for i in 0..20 {
        let stream = i % 2 == 0;
        let reply = app
            .post("/v1/chat/completions", &key)
            .json(&json!({"model": "gpt-4o-mini", "stream": stream, "messages": [{"role": "user", "content": format!("call {i}")}]}))
            .send()
            .await
            .expect("send");
        assert_eq!(reply.status(), StatusCode::OK);
        assert_eq!(reply.headers()["x-nexus-ledger-ack"], "queued");
        reply.bytes().await.expect("the whole answer");
        answered += 1;
    }
    // What a server's shutdown does first: the ledger writer commits what it holds.
    app.runtime.ledger().shutdown().await;
    let tenant = domain::TenantId::parse("acme").expect("tenant");
    let filter = domain::ports::RecordFilter {
        kind: Some(domain::ledger::EntryKind::ModelCall),
        ..domain::ports::RecordFilter::default()
    };
    let calls = app.runtime.ledger().page(&tenant, &filter, 1000).await.expect("read the ledger");
    assert_eq!(calls.len(), answered, "every answered call is in the ledger after shutdown");
    let now = domain::Timestamp::now().plus(std::time::Duration::from_secs(60));
    let usage = app.runtime.store().usage(&tenant, domain::Timestamp::from_micros(0), now).await.expect("usage");
    assert_eq!(usage.iter().map(|row| row.calls).sum::<u64>(), answered as u64, "each with its cost record");
}

#[tokio::test]
async fn openai_requests_are_served_by_openai_and_by_anthropic() {
    let app = spawn_app(Options::default()).await;
    mount_defaults(&app.openai, &app.anthropic).await;
    let key = app.key("acme", Role::Member).await;

    let reply = app
        .post("/v1/chat/completions", &key)
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("send");
    assert_eq!(reply.status(), StatusCode::OK);
    assert_eq!(reply.headers()["x-nexus-provider"], "openai");
    assert!(reply.headers()["x-nexus-overhead-us"].to_str().expect("ascii").parse::<u64>().is_ok());
    // The answer names its ledger entry, already durable when the answer arrives.
    let index: u64 = reply.headers()["x-nexus-ledger-index"].to_str().expect("ascii").parse().expect("an index");
    let page: Value =
        app.get("/v1/ledger?kind=model_call", &key).send().await.expect("send").json().await.expect("json");
    assert_eq!(page["entries"][0]["index"], index, "the newest model_call is the one named: {page}");
    let body: Value = reply.json().await.expect("json");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["message"]["content"], "Hello from OpenAI");
    assert_eq!(body["usage"]["total_tokens"], 1500);

    // OpenAI format in, Anthropic out (named as provider/model), blocking.
    let reply: Value = app
        .post("/v1/chat/completions", &key)
        .json(&json!({"model": "anthropic/claude-sonnet-4-5", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(reply["choices"][0]["message"]["content"], "Hello from Claude");
    assert_eq!(reply["choices"][0]["finish_reason"], "stop");
    assert_eq!(reply["usage"]["prompt_tokens"], 40);
    let sent = &app.anthropic.received_requests().await.expect("recorded")[0];
    let sent: Value = serde_json::from_slice(&sent.body).expect("anthropic wire body");
    assert_eq!((sent["model"].as_str(), sent["max_tokens"].as_u64()), (Some("claude-sonnet-4-5"), Some(50)));

    // OpenAI format in, Anthropic out, streaming, with usage.
    let reply = app
        .post("/v1/chat/completions", &key)
        .json(&json!({"model": "nexus/complex", "stream": true, "stream_options": {"include_usage": true},
                      "messages": [{"role": "user", "content": "bonjour"}]}))
        .send()
        .await
        .expect("send");
    assert_eq!(reply.headers()["x-nexus-tier"], "complex");
    let events = sse_events(&reply.text().await.expect("body"));
    let (last, rest) = events.split_last().expect("events");
    assert_eq!(last.1, "[DONE]");
    let chunks: Vec<Value> = rest.iter().map(|(_, d)| serde_json::from_str(d).expect("chunk json")).collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, "Bonjour");
    assert!(chunks.iter().any(|c| c["choices"][0]["finish_reason"] == "stop"));
    let usage = chunks.last().expect("usage chunk");
    assert_eq!(
        (usage["choices"].as_array().map(Vec::len), usage["usage"]["completion_tokens"].as_u64()),
        (Some(0), Some(12))
    );

    // Errors come back in OpenAI's shape.
    let unknown = app
        .post("/v1/chat/completions", &key)
        .json(&json!({"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .expect("send");
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let body: Value = unknown.json().await.expect("json");
    assert_eq!(
        (body["error"]["type"].as_str(), body["error"]["param"].as_str()),
        (Some("not_found_error"), Some("model"))
    );
    let bad = app
        .post("/v1/chat/completions", &key)
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "robot", "content": "x"}]}))
        .send()
        .await
        .expect("send");
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.json::<Value>().await.expect("json")["error"]["param"], "messages[0].role");
    let missing = app.post("/v1/chat/completions", &key).json(&json!({"messages": []})).send().await.expect("send");
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);
    assert_eq!(missing.json::<Value>().await.expect("json")["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn anthropic_requests_are_served_by_anthropic_and_by_openai() {
    let app = spawn_app(Options::default()).await;
    mount_defaults(&app.openai, &app.anthropic).await;
    let key = app.key("acme", Role::Member).await;

    let reply: Value = app
        .client
        .post(app.url("/v1/messages"))
        .header("x-api-key", &key)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "system": "be brief", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(
        (reply["type"].as_str(), reply["content"][0]["text"].as_str()),
        (Some("message"), Some("Hello from Claude"))
    );
    assert_eq!(reply["stop_reason"], "end_turn");

    // Anthropic format in, OpenAI out, streaming.
    let reply = app
        .post("/v1/messages", &key)
        .json(&json!({"model": "gpt-4o-mini", "max_tokens": 64, "stream": true, "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}))
        .send()
        .await
        .expect("send");
    assert_eq!(reply.status(), StatusCode::OK);
    let events = sse_events(&reply.text().await.expect("body"));
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_deref().unwrap_or("")).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let text: String = events
        .iter()
        .filter(|(n, _)| n.as_deref() == Some("content_block_delta"))
        .map(|(_, d)| {
            serde_json::from_str::<Value>(d).expect("json")["delta"]["text"].as_str().unwrap_or("").to_owned()
        })
        .collect();
    assert_eq!(text, "Hello");
    let delta: Value = serde_json::from_str(&events[5].1).expect("json");
    assert_eq!(
        (delta["delta"]["stop_reason"].as_str(), delta["usage"]["output_tokens"].as_u64()),
        (Some("end_turn"), Some(500))
    );
    let sent = &app.openai.received_requests().await.expect("recorded")[0];
    let sent: Value = serde_json::from_slice(&sent.body).expect("openai wire body");
    assert_eq!(sent["stream"], true);

    // Anthropic blocking served by OpenAI; errors in Anthropic's shape.
    let reply: Value = app
        .post("/v1/messages", &key)
        .json(&json!({"model": "nexus/normal", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(reply["content"][0]["text"], "Hello from OpenAI");
    let bad = app
        .post("/v1/messages", &key)
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .expect("send");
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let body: Value = bad.json().await.expect("json");
    assert_eq!((body["type"].as_str(), body["error"]["type"].as_str()), (Some("error"), Some("invalid_request_error")));
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("max_tokens")), "{body}");
    let unauthorized = app.client.post(app.url("/v1/messages")).json(&json!({})).send().await.expect("send");
    assert_eq!(unauthorized.json::<Value>().await.expect("json")["error"]["type"], "authentication_error");
}

#[tokio::test]
async fn every_call_is_ledgered_priced_and_reported_in_usage() {
    let app = spawn_app(Options::default()).await;
    mount_defaults(&app.openai, &app.anthropic).await;
    let key = app.key("acme", Role::Member).await;
    for stream in [false, true] {
        let reply = app
            .post("/v1/chat/completions", &key)
            .json(&json!({"model": "gpt-4o-mini", "stream": stream, "messages": [{"role": "user", "content": "count me"}]}))
            .send()
            .await
            .expect("send");
        assert_eq!(reply.status(), StatusCode::OK);
        reply.text().await.expect("drain");
    }
    // Gateway entries are written through the queue: wait for them.
    let tenant = domain::TenantId::parse("acme").expect("tenant");
    let calls = entries_of_kind(&app, &key, "model_call", 2).await;
    assert_eq!(calls.len(), 2, "{calls:?}");
    for entry in &calls {
        let p = &entry["payload"];
        assert_eq!(
            (p["route"].as_str(), p["provider"].as_str(), p["model"].as_str()),
            (Some("gateway"), Some("openai"), Some("gpt-4o-mini"))
        );
        assert_eq!(p["input_tokens"], 1000);
        assert!(p["cost_usd"].as_f64().is_some_and(|c| c > 0.0));
        assert_eq!(p["request_sha256"].as_str().map(str::len), Some(64));
    }
    let usage: Value = app.get("/v1/usage", &key).send().await.expect("send").json().await.expect("json");
    assert_eq!(usage["total"]["calls"], 2);
    assert_eq!(usage["by_model"]["gpt-4o-mini"]["input_tokens"], 2000);
    assert_eq!(usage["by_key"].as_object().map(|m| m.len()), Some(1));
    assert!(usage["budget"]["spent_usd"].as_f64().is_some_and(|s| s > 0.0));
    // The ledger with the gateway entries still verifies.
    app.runtime.ledger().publish_checkpoints().await.expect("checkpoint");
    app.runtime.verifier().tenant(&tenant, None).await.expect("verifies");
}

#[tokio::test]
async fn budgets_warn_then_degrade_auto_then_refuse() {
    // 1500 tokens at $1000 per million = $1.50 a call against an $11 budget: warning from
    // $8.80, degraded from $9.90, refused from $11.
    let app = spawn_app(Options { budget_usd: Some(11.0), openai_price: 1000.0, ..Options::default() }).await;
    mount_defaults(&app.openai, &app.anthropic).await;
    let key = app.key("acme", Role::Member).await;
    let mut alerts = app.runtime.notices();
    let call = |model: &'static str| {
        app.post("/v1/chat/completions", &key).json(&json!({"model": model, "messages": [{"role": "user", "content": "Design an architecture and compare the trade-offs of three queue designs"}]}))
    };
    let state = |reply: &reqwest::Response| {
        reply.headers().get("x-nexus-budget-state").map(|v| v.to_str().unwrap_or("").to_owned())
    };
    // Spent before each call: 0, 1.5, 3, 4.5, 6, 7.5 — under the alert.
    for _ in 0..6 {
        let reply = call("gpt-4o-mini").send().await.expect("send");
        assert_eq!((reply.status(), state(&reply)), (StatusCode::OK, None));
    }
    // 9.0 spent (82%): a warning.
    let reply = call("gpt-4o-mini").send().await.expect("send");
    assert_eq!(state(&reply).as_deref(), Some("warning"));
    assert!(reply.headers()["x-nexus-budget-warning"].to_str().expect("ascii").contains("82%"));
    // 10.5 spent (95%): degraded; nexus/auto steps a complex request down to normal.
    let reply = call("nexus/auto").send().await.expect("send");
    assert_eq!(reply.status(), StatusCode::OK);
    assert_eq!(state(&reply).as_deref(), Some("degraded"));
    assert_eq!(reply.headers()["x-nexus-tier"], "normal", "complex request stepped down");
    // 12 spent: refused, in OpenAI's shape, for the gateway and for agent runs alike.
    let refused = call("gpt-4o-mini").send().await.expect("send");
    assert_eq!(refused.status(), StatusCode::PAYMENT_REQUIRED);
    assert_eq!(refused.json::<Value>().await.expect("json")["error"]["type"], "insufficient_quota");
    let run = app.post("/v1/execute", &key).json(&json!({"task": "hello"})).send().await.expect("send");
    assert_eq!(run.status(), StatusCode::PAYMENT_REQUIRED);
    let alert = alerts.try_recv().expect("one budget alert");
    assert_eq!(alert, runtime::llm::Notice::BudgetAlert { tenant: domain::TenantId::parse("acme").expect("tenant") });
    assert!(alerts.try_recv().is_err(), "the alert is published once a month");
}

#[tokio::test]
async fn embeddings_answer_in_openai_shape_or_say_the_model_is_missing() {
    let app = spawn_app(Options::default()).await;
    let key = app.key("acme", Role::Member).await;
    let missing =
        app.post("/v1/embeddings", &key).json(&json!({"model": "x", "input": "hello"})).send().await.expect("send");
    assert_eq!(missing.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(missing.text().await.expect("body").contains("cargo xtask models"));

    let app = spawn_app(Options {
        embedder: Some(std::sync::Arc::new(crate::support::LetterEmbedder)),
        ..Options::default()
    })
    .await;
    let key = app.key("acme", Role::Member).await;
    let reply: Value = app
        .post("/v1/embeddings", &key)
        .json(&json!({"model": "text-embedding-3-small", "input": ["hello world", "bye"]}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!((reply["object"].as_str(), reply["model"].as_str()), (Some("list"), Some("letters-8")));
    assert_eq!(reply["data"][1]["index"], 1);
    assert_eq!(reply["data"][0]["embedding"].as_array().map(Vec::len), Some(8));
    assert_eq!(reply["usage"]["prompt_tokens"], 3);
    let bad =
        app.post("/v1/embeddings", &key).json(&json!({"model": "x", "input": [1, 2]})).send().await.expect("send");
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.json::<Value>().await.expect("json")["error"]["param"], "input[0]");
}

#[tokio::test]
async fn overhead_is_the_whole_request_less_the_upstream_wait_streamed_or_not() {
    use std::time::{Duration, Instant};

    use wiremock::matchers::{body_string_contains, method, path};
    use wiremock::{Mock, MockServer};

    let upstream_delay = Duration::from_millis(400);
    let openai = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .and(body_string_contains("\"stream\":true"))
        .respond_with(crate::support::openai_stream().set_delay(upstream_delay))
        .with_priority(1)
        .mount(&openai)
        .await;
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .respond_with(crate::support::openai_completion("slow").set_delay(upstream_delay))
        .with_priority(5)
        .mount(&openai)
        .await;
    let app = crate::support::spawn_app_with(Options::default(), openai, MockServer::start().await).await;
    let key = app.key("acme", Role::Member).await;
    for stream in [false, true] {
        let started = Instant::now();
        let reply = app
            .post("/v1/chat/completions", &key)
            .json(&json!({"model": "gpt-4o-mini", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .expect("send");
        let headers_after = started.elapsed();
        assert_eq!(reply.status(), StatusCode::OK);
        let overhead: u64 =
            reply.headers()["x-nexus-overhead-us"].to_str().expect("ascii").parse().expect("microseconds");
        reply.text().await.expect("drain");
        assert!(headers_after >= upstream_delay, "stream {stream}: the upstream was waited for");
        // Nexus's share: more than nothing (routing, budget, pricing, the ledger queue, the
        // body), and none of the upstream's 400 ms.
        assert!(overhead > 0, "stream {stream}");
        assert!(
            overhead < 200_000 && u128::from(overhead) < (headers_after - upstream_delay).as_micros() + 1,
            "stream {stream}: {overhead} µs of {headers_after:?}"
        );
    }
}

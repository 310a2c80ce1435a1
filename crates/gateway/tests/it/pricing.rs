//! One pricing rule: a gateway call costs what the model Nexus routed it to costs, whatever
//! model name the upstream echoes, streamed or not; a model without a price is refused before
//! the upstream is called, naming the setting that prices it, unless a default price is set.

use reqwest::StatusCode;
use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::support::{Options, entries_of_kind, spawn_app};

/// An OpenAI upstream that answers (blocking and streamed) under a model name of its own.
async fn mount_echoing(app: &crate::support::App, echoed: &str) {
    let chunk = |delta: Value, finish: Option<&str>| {
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": echoed,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let mut body = String::new();
    for event in [
        chunk(json!({"role": "assistant", "content": "hi"}), None),
        chunk(json!({}), Some("stop")),
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": echoed, "choices": [],
               "usage": {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500}}),
    ] {
        body.push_str(&format!("data: {event}\n\n"));
    }
    body.push_str("data: [DONE]\n\n");
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .and(body_string_contains("\"stream\":true"))
        .respond_with(
            ResponseTemplate::new(200).insert_header("content-type", "text/event-stream").set_body_string(body),
        )
        .with_priority(1)
        .mount(&app.openai)
        .await;
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "c", "object": "chat.completion", "created": 1, "model": echoed,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500}
        })))
        .with_priority(5)
        .mount(&app.openai)
        .await;
}

#[tokio::test]
async fn streamed_and_blocking_calls_are_priced_by_the_routed_model_not_the_echo() {
    let app = spawn_app(Options { openai_price: 2.0, ..Options::default() }).await;
    // An unknown name (no price) for one run, a cheaper known one for the other: neither counts.
    for (tenant, echoed) in [("acme", "some-upstream-alias"), ("bravo", "gpt-4.1-nano")] {
        app.openai.reset().await;
        mount_echoing(&app, echoed).await;
        let key = app.key(tenant, domain::tenant::Role::Member).await;
        let mut header_costs = Vec::new();
        for stream in [false, true] {
            let reply = app
                .post("/v1/chat/completions", &key)
                .json(
                    &json!({"model": "gpt-4o-mini", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}),
                )
                .send()
                .await
                .expect("send");
            assert_eq!(reply.status(), StatusCode::OK);
            assert_eq!(reply.headers()["x-nexus-model"], "gpt-4o-mini", "the routed model, not {echoed}");
            header_costs.push(reply.headers()["x-nexus-cost-usd"].to_str().expect("ascii").to_owned());
            reply.text().await.expect("drain");
        }
        // 1000 input and 500 output tokens at $2 per million each way.
        assert_eq!(header_costs[0], "0.00300000", "blocking, echo {echoed}");
        let calls = entries_of_kind(&app, &key, "model_call", 2).await;
        assert_eq!(calls.len(), 2, "{calls:?}");
        for entry in &calls {
            assert_eq!(entry["payload"]["model"], "gpt-4o-mini", "{entry}");
            assert_eq!(entry["payload"]["cost_usd"].as_f64(), Some(0.003), "streamed and blocking alike: {entry}");
        }
    }
}

#[tokio::test]
async fn a_model_without_a_price_is_refused_before_the_upstream_naming_the_setting() {
    let app = spawn_app(Options::default()).await;
    let key = app.key("acme", domain::tenant::Role::Member).await;
    for stream in [false, true] {
        let reply = app
            .post("/v1/chat/completions", &key)
            .json(
                &json!({"model": "gpt-unpriced-9", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}),
            )
            .send()
            .await
            .expect("send");
        assert_eq!(reply.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body: Value = reply.json().await.expect("OpenAI-shaped JSON");
        assert_eq!(body["error"]["code"], "model_not_priced", "{body}");
        assert_eq!(body["error"]["param"], "model", "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(r#"[models.prices."gpt-unpriced-9"]"#), "{message}");
        assert!(message.contains("default_price"), "{message}");
    }
    let reply = app
        .post("/v1/messages", &key)
        .json(&json!({"model": "claude-unpriced-9", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("send");
    assert_eq!(reply.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = reply.json().await.expect("Anthropic-shaped JSON");
    assert_eq!((body["type"].as_str(), body["error"]["type"].as_str()), (Some("error"), Some("invalid_request_error")));
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains(r#"[models.prices."claude-unpriced-9"]"#)));
    assert!(app.openai.received_requests().await.unwrap_or_default().is_empty(), "nothing went upstream");
    assert!(app.anthropic.received_requests().await.unwrap_or_default().is_empty(), "nothing went upstream");
}

#[tokio::test]
async fn a_configured_default_price_prices_unknown_models() {
    let app = spawn_app(Options { default_price: Some(4.0), ..Options::default() }).await;
    mount_echoing(&app, "gpt-unpriced-9").await;
    let key = app.key("acme", domain::tenant::Role::Member).await;
    let reply = app
        .post("/v1/chat/completions", &key)
        .json(&json!({"model": "gpt-unpriced-9", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("send");
    assert_eq!(reply.status(), StatusCode::OK);
    // 1500 tokens at $4 per million.
    assert_eq!(reply.headers()["x-nexus-cost-usd"], "0.00600000");
    let calls = entries_of_kind(&app, &key, "model_call", 1).await;
    assert_eq!(calls[0]["payload"]["cost_usd"].as_f64(), Some(0.006), "{calls:?}");
}

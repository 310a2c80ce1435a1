//! Every failure on a compat surface answers in that vendor's error shape — provider failures,
//! failures in the middle of a stream, bad bodies, refused credentials, rate limits, wrong
//! methods — and the native API keeps its own, query strings included.

use domain::tenant::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{Options, spawn_app, spawn_app_with, sse_events};

/// The keys of a JSON object, sorted.
fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
    keys.sort_unstable();
    keys
}

/// Checks OpenAI's `{"error": {"message", "type", "param", "code"}}` (param present, maybe
/// null) and returns the inner object.
fn openai_error(body: &Value, kind: &str) -> Value {
    assert_eq!(keys(body), ["error"], "{body}");
    let error = &body["error"];
    assert_eq!(keys(error), ["code", "message", "param", "type"], "{body}");
    assert_eq!(error["type"], kind, "{body}");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    error.clone()
}

/// Checks Anthropic's `{"type": "error", "error": {"type", "message"}}` and returns the inner
/// object.
fn anthropic_error(body: &Value, kind: &str) -> Value {
    assert_eq!(keys(body), ["error", "type"], "{body}");
    assert_eq!(body["type"], "error", "{body}");
    let error = &body["error"];
    assert_eq!(keys(error), ["message", "type"], "{body}");
    assert_eq!(error["type"], kind, "{body}");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    error.clone()
}

/// Checks the native `{"error": {"code", "message", "field"?}}` and returns the inner object.
fn native_error(body: &Value, code: &str) -> Value {
    assert_eq!(keys(body), ["error"], "{body}");
    let error = &body["error"];
    assert!(matches!(keys(error).as_slice(), ["code", "message"] | ["code", "field", "message"]), "{body}");
    assert_eq!(error["code"], code, "{body}");
    error.clone()
}

async fn json_of(reply: reqwest::Response, status: StatusCode) -> Value {
    assert_eq!(reply.status(), status, "{:?}", reply.url().path());
    let content_type = reply.headers()["content-type"].to_str().expect("ascii").to_owned();
    assert!(content_type.starts_with("application/json"), "{content_type}");
    reply.json().await.expect("a JSON body")
}

/// Upstreams that refuse: OpenAI with a 400 for the blocking call and a 429 for the streamed
/// one, Anthropic with a 500.
async fn failing_upstreams() -> (MockServer, MockServer) {
    let openai = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .and(body_string_contains("\"stream\":true"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "7")
                .set_body_json(json!({"error": {"message": "slow down", "type": "rate_limit_error"}})),
        )
        .with_priority(1)
        .mount(&openai)
        .await;
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"error": {"message": "bad tool schema", "type": "invalid_request_error", "param": "tools"}}),
        ))
        .with_priority(5)
        .mount(&openai)
        .await;
    let anthropic = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(
            ResponseTemplate::new(500)
                .set_body_json(json!({"type": "error", "error": {"type": "api_error", "message": "secret detail"}})),
        )
        .mount(&anthropic)
        .await;
    (openai, anthropic)
}

#[tokio::test]
async fn provider_failures_answer_in_each_surfaces_shape() {
    let (openai, anthropic) = failing_upstreams().await;
    let app = spawn_app_with(Options::default(), openai, anthropic).await;
    let key = app.key("acme", Role::Member).await;
    let chat = |model: &str, stream: bool| {
        app.post("/v1/chat/completions", &key)
            .json(&json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}))
    };
    let message = |model: &str, stream: bool| {
        app.post("/v1/messages", &key).json(
            &json!({"model": model, "max_tokens": 8, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}),
        )
    };

    // The upstream refused the request: the client's to fix, 400 in either shape.
    let body = json_of(chat("gpt-4o-mini", false).send().await.expect("send"), StatusCode::BAD_REQUEST).await;
    let error = openai_error(&body, "invalid_request_error");
    assert_eq!((error["code"].as_str(), error["param"].as_null()), (Some("upstream_rejected"), Some(())), "{body}");
    assert!(error["message"].as_str().is_some_and(|m| m.contains("bad tool schema")), "{body}");
    let body = json_of(message("gpt-4o-mini", false).send().await.expect("send"), StatusCode::BAD_REQUEST).await;
    anthropic_error(&body, "invalid_request_error");

    // The upstream rate-limited a stream before it started: 429 with its Retry-After.
    for (reply, openai_shape) in [
        (chat("gpt-4o-mini", true).send().await.expect("send"), true),
        (message("gpt-4o-mini", true).send().await.expect("send"), false),
    ] {
        assert_eq!(reply.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("7"));
        let body = json_of(reply, StatusCode::TOO_MANY_REQUESTS).await;
        if openai_shape {
            assert_eq!(openai_error(&body, "rate_limit_error")["code"], "upstream_rate_limited");
        } else {
            anthropic_error(&body, "rate_limit_error");
        }
    }

    // The upstream failed: 502, details kept in the log, not sent.
    for (reply, openai_shape) in [
        (chat("anthropic/claude-sonnet-4-5", false).send().await.expect("send"), true),
        (message("claude-sonnet-4-5", false).send().await.expect("send"), false),
        (message("claude-sonnet-4-5", true).send().await.expect("send"), false),
    ] {
        let body = json_of(reply, StatusCode::BAD_GATEWAY).await;
        let error = if openai_shape { openai_error(&body, "api_error") } else { anthropic_error(&body, "api_error") };
        assert!(!body.to_string().contains("secret detail"), "{body}");
        assert_eq!(error["message"], "internal error; see the server log");
    }

    // Unknown models, per surface.
    let body = json_of(chat("no-such-model", false).send().await.expect("send"), StatusCode::NOT_FOUND).await;
    assert_eq!(openai_error(&body, "not_found_error")["param"], "model");
    let body = json_of(message("no-such-model", false).send().await.expect("send"), StatusCode::NOT_FOUND).await;
    anthropic_error(&body, "not_found_error");
}

#[tokio::test]
async fn failures_in_the_middle_of_a_stream_are_events_in_the_vendors_shape() {
    let openai = MockServer::start().await;
    let body = concat!(
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",",
        "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n",
        "data: {\"error\":{\"message\":\"engine crashed\",\"code\":503}}\n\n",
    );
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .respond_with(
            ResponseTemplate::new(200).insert_header("content-type", "text/event-stream").set_body_string(body),
        )
        .mount(&openai)
        .await;
    let anthropic = MockServer::start().await;
    let body = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"type\":\"message\",",
        "\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"stop_reason\":null,",
        "\"stop_sequence\":null,\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n",
        "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
    );
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(
            ResponseTemplate::new(200).insert_header("content-type", "text/event-stream").set_body_string(body),
        )
        .mount(&anthropic)
        .await;
    let app = spawn_app_with(Options::default(), openai, anthropic).await;
    let key = app.key("acme", Role::Member).await;

    for model in ["gpt-4o-mini", "anthropic/claude-sonnet-4-5"] {
        let reply = app
            .post("/v1/chat/completions", &key)
            .json(&json!({"model": model, "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .expect("send");
        assert_eq!(reply.status(), StatusCode::OK, "{model}");
        let events = sse_events(&reply.text().await.expect("body"));
        assert_eq!(events.last().map(|(_, d)| d.as_str()), Some("[DONE]"), "{model}: {events:?}");
        let errors: Vec<Value> = events
            .iter()
            .filter_map(|(_, d)| serde_json::from_str::<Value>(d).ok())
            .filter(|v| v.get("error").is_some())
            .collect();
        assert_eq!(errors.len(), 1, "{model}: {events:?}");
        assert_eq!(keys(&errors[0]), ["error"], "{model}");
        assert_eq!(keys(&errors[0]["error"]), ["code", "message", "type"], "{model}");
        assert_eq!(errors[0]["error"]["type"], "api_error", "{model}");
    }

    for model in ["gpt-4o-mini", "claude-sonnet-4-5"] {
        let reply = app
            .post("/v1/messages", &key)
            .json(&json!({"model": model, "max_tokens": 8, "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .expect("send");
        assert_eq!(reply.status(), StatusCode::OK, "{model}");
        let events = sse_events(&reply.text().await.expect("body"));
        let (name, data) = events.last().expect("events");
        assert_eq!(name.as_deref(), Some("error"), "{model}: {events:?}");
        let error: Value = serde_json::from_str(data).expect("json");
        anthropic_error(&error, "api_error");
        assert!(!events.iter().any(|(n, _)| n.as_deref() == Some("message_stop")), "{model}: no clean end");
    }
}

#[tokio::test]
async fn bad_requests_and_refusals_answer_in_each_surfaces_shape() {
    let app = spawn_app(Options::default()).await;
    let key = app.key("acme", Role::Member).await;
    let raw = |route: &str, body: &str| {
        app.post(route, &key).header("content-type", "application/json").body(body.to_owned())
    };

    // Malformed JSON, a mistyped field, a body over the limit.
    for route in ["/v1/chat/completions", "/v1/embeddings"] {
        let body = json_of(raw(route, "{\"model\": ").send().await.expect("send"), StatusCode::BAD_REQUEST).await;
        assert!(openai_error(&body, "invalid_request_error")["message"].as_str().is_some_and(|m| m.contains("JSON")));
        let too_big = raw(route, &format!("{{\"model\": \"{}\"}}", "x".repeat(70_000)));
        let body = json_of(too_big.send().await.expect("send"), StatusCode::PAYLOAD_TOO_LARGE).await;
        assert_eq!(openai_error(&body, "invalid_request_error")["code"], "body_too_large");
    }
    let body = json_of(
        raw("/v1/chat/completions", r#"{"model": "m", "messages": [{"role": 7}]}"#).send().await.expect("send"),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(openai_error(&body, "invalid_request_error")["param"], "messages[0].role");
    let body = json_of(raw("/v1/messages", "[").send().await.expect("send"), StatusCode::BAD_REQUEST).await;
    anthropic_error(&body, "invalid_request_error");
    let too_big = raw("/v1/messages", &format!("{{\"model\": \"{}\"}}", "x".repeat(70_000)));
    let body = json_of(too_big.send().await.expect("send"), StatusCode::PAYLOAD_TOO_LARGE).await;
    anthropic_error(&body, "request_too_large");
    // A value the handler refuses (after parsing).
    let body = json_of(
        raw(
            "/v1/messages",
            r#"{"model": "m", "max_tokens": 5, "temperature": 3, "messages": [{"role": "user", "content": "x"}]}"#,
        )
        .send()
        .await
        .expect("send"),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(
        anthropic_error(&body, "invalid_request_error")["message"].as_str().is_some_and(|m| m.contains("temperature"))
    );
    // The same mistake on a native route answers natively.
    let body = json_of(raw("/v1/execute", "{\"task\": ").send().await.expect("send"), StatusCode::BAD_REQUEST).await;
    native_error(&body, "invalid_request");

    // Missing or wrong credentials, on every compat route.
    for (verb, route) in
        [("POST", "/v1/chat/completions"), ("POST", "/v1/embeddings"), ("GET", "/v1/models"), ("POST", "/v1/messages")]
    {
        let request = match verb {
            "GET" => app.client.get(app.url(route)),
            _ => app.client.post(app.url(route)).json(&json!({})),
        };
        let body =
            json_of(request.bearer_auth("nxs_wrong").send().await.expect("send"), StatusCode::UNAUTHORIZED).await;
        if route == "/v1/messages" {
            anthropic_error(&body, "authentication_error");
        } else {
            assert_eq!(openai_error(&body, "authentication_error")["code"], "invalid_api_key", "{route}");
        }
    }
    let body =
        json_of(app.client.get(app.url("/v1/usage")).send().await.expect("send"), StatusCode::UNAUTHORIZED).await;
    native_error(&body, "missing_credentials");

    // No handler: a wrong method or an unserved path of a surface.
    let body = json_of(app.get("/v1/messages", &key).send().await.expect("send"), StatusCode::METHOD_NOT_ALLOWED).await;
    anthropic_error(&body, "invalid_request_error");
    let body =
        json_of(app.get("/v1/chat/completions", &key).send().await.expect("send"), StatusCode::METHOD_NOT_ALLOWED)
            .await;
    assert_eq!(openai_error(&body, "invalid_request_error")["code"], "method_not_allowed");
    let body = json_of(app.post("/v1/completions", &key).send().await.expect("send"), StatusCode::NOT_FOUND).await;
    openai_error(&body, "not_found_error");
}

#[tokio::test]
async fn rate_limits_answer_in_each_surfaces_shape() {
    let mut options = Options::default();
    options.limits.key_requests_per_minute = 1;
    let app = spawn_app(options).await;
    let openai_key = app.key("acme", Role::Member).await;
    let anthropic_key = app.key("acme", Role::Member).await;
    let native_key = app.key("acme", Role::Member).await;
    for (key, route) in [(&openai_key, "/v1/models"), (&anthropic_key, "/v1/messages"), (&native_key, "/v1/usage")] {
        let send = || {
            if route == "/v1/messages" {
                app.post(route, key).json(&json!({})).send()
            } else {
                app.get(route, key).send()
            }
        };
        assert_ne!(send().await.expect("send").status(), StatusCode::TOO_MANY_REQUESTS, "{route}: the first passes");
        let refused = send().await.expect("send");
        assert!(refused.headers().contains_key("retry-after"), "{route}");
        let body = json_of(refused, StatusCode::TOO_MANY_REQUESTS).await;
        match route {
            "/v1/models" => assert_eq!(openai_error(&body, "rate_limit_error")["code"], "rate_limited"),
            "/v1/messages" => drop(anthropic_error(&body, "rate_limit_error")),
            _ => drop(native_error(&body, "rate_limited")),
        }
    }
}

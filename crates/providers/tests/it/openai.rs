//! The chat-completions client as OpenAI, Mistral and an OpenAI-compatible server, against
//! fake servers speaking each one's real wire format.

use providers::{FinishReason, ModelProvider, OpenAiConfig, OpenAiProvider, ProviderError, Usage};
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{TIMEOUT, assemble, mistral, openai, sse_body, weather_call, weather_request};

#[tokio::test]
async fn openai_blocking_completion_with_a_tool_call_and_usage() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .and(header("authorization", "Bearer test-openai-key"))
        .and(body_partial_json(json!({
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "You are a weather assistant."},
                {"role": "user", "content": "What is the weather in Paris?"}
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Current weather for a city"}}],
            "max_completion_tokens": 256
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "chatcmpl-abc123",
            "object": "chat.completion",
            "created": 1_741_569_952,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [{
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": null,
                    "tool_calls": [{
                        "id": "call_abc123",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}
                    }],
                    "refusal": null,
                    "annotations": []
                },
                "logprobs": null,
                "finish_reason": "tool_calls"
            }],
            "usage": {
                "prompt_tokens": 82,
                "completion_tokens": 17,
                "total_tokens": 99,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0}
            },
            "service_tier": "default",
            "system_fingerprint": "fp_06737a9306"
        })))
        .expect(1)
        .mount(&server)
        .await;

    let response = openai(&server.uri()).complete(&weather_request("gpt-4o-mini")).await.unwrap();

    assert_eq!(response.provider, "openai");
    assert_eq!(response.model, "gpt-4o-mini-2024-07-18");
    assert_eq!(response.content, "");
    assert_eq!(response.tool_calls, vec![weather_call("call_abc123")]);
    assert_eq!(response.usage, Usage { input_tokens: 82, output_tokens: 17 });
    assert_eq!(response.finish_reason, FinishReason::ToolCalls);
}

fn openai_chunk(delta: Value, finish_reason: Value) -> String {
    json!({
        "id": "chatcmpl-stream1",
        "object": "chat.completion.chunk",
        "created": 1_741_569_952,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_06737a9306",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}],
        "usage": null
    })
    .to_string()
}

#[tokio::test]
async fn openai_streaming_with_tool_call_fragments_and_a_usage_chunk() {
    let fragment = |index: u32, arguments: &str| {
        openai_chunk(json!({"tool_calls": [{"index": index, "function": {"arguments": arguments}}]}), Value::Null)
    };
    let start = |index: u32, id: &str| {
        openai_chunk(
            json!({"tool_calls": [{"index": index, "id": id, "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}),
            Value::Null,
        )
    };
    let chunks = [
        openai_chunk(json!({"role": "assistant", "content": "", "refusal": null}), Value::Null),
        openai_chunk(json!({"content": "Checking "}), Value::Null),
        openai_chunk(json!({"content": "two cities."}), Value::Null),
        start(0, "call_paris"),
        fragment(0, "{\"lo"),
        fragment(0, "cation\": \"Pa"),
        fragment(0, "ris\"}"),
        start(1, "call_rome"),
        fragment(1, "{\"location\""),
        fragment(1, ": \"Rome\"}"),
        openai_chunk(json!({}), json!("tool_calls")),
        json!({
            "id": "chatcmpl-stream1",
            "object": "chat.completion.chunk",
            "created": 1_741_569_952,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [],
            "usage": {"prompt_tokens": 82, "completion_tokens": 41, "total_tokens": 123}
        })
        .to_string(),
        "[DONE]".to_owned(),
    ];
    let events: Vec<(Option<&str>, &str)> = chunks.iter().map(|chunk| (None, chunk.as_str())).collect();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .and(body_partial_json(json!({"stream": true, "stream_options": {"include_usage": true}})))
        .respond_with(ResponseTemplate::new(200).set_body_raw(sse_body(&events), "text/event-stream"))
        .expect(1)
        .mount(&server)
        .await;

    let stream = openai(&server.uri()).stream(&weather_request("gpt-4o-mini")).await.unwrap();
    let answer = assemble(stream).await.unwrap();

    assert_eq!(answer.text, "Checking two cities.");
    let mut rome = weather_call("call_rome");
    rome.arguments = json!({"location": "Rome"});
    assert_eq!(answer.tool_calls, vec![weather_call("call_paris"), rome]);
    assert_eq!(answer.usage, Some(Usage { input_tokens: 82, output_tokens: 41 }));
    assert_eq!(answer.finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(answer.after_done, 0);
}

#[tokio::test]
async fn openai_error_bodies_are_surfaced_and_context_overflow_recognised() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_partial_json(json!({"model": "gpt-4o"})))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "error": {
                "message": "Incorrect API key provided: sk-test. You can find your API key at https://platform.openai.com/account/api-keys.",
                "type": "invalid_request_error",
                "param": null,
                "code": "invalid_api_key"
            }
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(body_partial_json(json!({"model": "gpt-4o-mini"})))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": {
                "message": "This model's maximum context length is 128000 tokens. However, your messages resulted in 130512 tokens.",
                "type": "invalid_request_error",
                "param": "messages",
                "code": "context_length_exceeded"
            }
        })))
        .mount(&server)
        .await;
    let provider = openai(&server.uri());

    match provider.complete(&weather_request("gpt-4o")).await {
        Err(ProviderError::Status { provider, status: 401, message, retry_after: None }) => {
            assert_eq!(provider, "openai");
            assert!(message.starts_with("Incorrect API key provided"), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }
    let overflow = provider.complete(&weather_request("gpt-4o-mini")).await.unwrap_err();
    assert!(matches!(overflow, ProviderError::ContextOverflow { .. }), "{overflow:?}");
}

#[tokio::test]
async fn arguments_that_are_not_json_are_an_invalid_response() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "chatcmpl-x",
            "object": "chat.completion",
            "model": "gpt-4o",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\": \"Par"}}
                ]},
                "finish_reason": "tool_calls"
            }],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
        })))
        .mount(&server)
        .await;

    let err = openai(&server.uri()).complete(&weather_request("gpt-4o")).await.unwrap_err();
    assert!(
        matches!(&err, ProviderError::InvalidResponse { message, .. } if message.contains("get_weather")),
        "{err:?}"
    );
}

#[tokio::test]
async fn mistral_blocking_completion_with_a_tool_call_and_usage() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .and(header("authorization", "Bearer test-mistral-key"))
        .and(body_partial_json(json!({"model": "mistral-small-latest", "max_tokens": 256})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "cf79f7daaee244b1a0ae5c7b1444424a",
            "object": "chat.completion",
            "created": 1_759_500_534,
            "model": "mistral-small-latest",
            "usage": {"prompt_tokens": 90, "total_tokens": 110, "completion_tokens": 20},
            "choices": [{
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [{"id": "D681PevKs", "function": {"name": "get_weather", "arguments": "{\"location\": \"Paris\"}"}, "index": 0}],
                    "prefix": false
                },
                "finish_reason": "tool_calls"
            }]
        })))
        .expect(1)
        .mount(&server)
        .await;

    let response = mistral(&server.uri()).complete(&weather_request("mistral-small-latest")).await.unwrap();

    assert_eq!(response.provider, "mistral");
    assert_eq!(response.tool_calls, vec![weather_call("D681PevKs")]);
    assert_eq!(response.usage, Usage { input_tokens: 90, output_tokens: 20 });
    assert_eq!(response.finish_reason, FinishReason::ToolCalls);
}

#[tokio::test]
async fn mistral_streaming_reports_usage_in_its_last_chunk_without_stream_options() {
    let chunks = [
        r#"{"id":"9a1b","object":"chat.completion.chunk","created":1759500534,"model":"mistral-small-latest","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
        r#"{"id":"9a1b","object":"chat.completion.chunk","created":1759500534,"model":"mistral-small-latest","choices":[{"index":0,"delta":{"content":"Checking "},"finish_reason":null}]}"#,
        r#"{"id":"9a1b","object":"chat.completion.chunk","created":1759500534,"model":"mistral-small-latest","choices":[{"index":0,"delta":{"content":"Paris."},"finish_reason":null}]}"#,
        r#"{"id":"9a1b","object":"chat.completion.chunk","created":1759500534,"model":"mistral-small-latest","choices":[{"index":0,"delta":{"tool_calls":[{"id":"D681PevKs","function":{"name":"get_weather","arguments":"{\"location\": \"Paris\"}"},"index":0}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":90,"total_tokens":110,"completion_tokens":20}}"#,
        "[DONE]",
    ];
    let events: Vec<(Option<&str>, &str)> = chunks.iter().map(|chunk| (None, *chunk)).collect();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(sse_body(&events), "text/event-stream"))
        .expect(1)
        .mount(&server)
        .await;

    let stream = mistral(&server.uri()).stream(&weather_request("mistral-small-latest")).await.unwrap();
    let answer = assemble(stream).await.unwrap();

    assert_eq!(answer.text, "Checking Paris.");
    assert_eq!(answer.tool_calls, vec![weather_call("D681PevKs")]);
    assert_eq!(answer.usage, Some(Usage { input_tokens: 90, output_tokens: 20 }));
    assert_eq!(answer.finish_reason, Some(FinishReason::ToolCalls));
    let sent: Value = server.received_requests().await.unwrap()[0].body_json().unwrap();
    assert_eq!(sent["stream"], true);
    assert!(sent.get("stream_options").is_none(), "{sent}");
}

#[tokio::test]
async fn mistral_error_bodies_are_surfaced() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "object": "error",
            "message": "Invalid model: mistral-tiny-9000",
            "type": "invalid_model",
            "param": null,
            "code": "1500"
        })))
        .mount(&server)
        .await;

    let err = mistral(&server.uri()).complete(&weather_request("mistral-tiny-9000")).await.unwrap_err();
    assert!(
        matches!(&err, ProviderError::Status { status: 400, message, .. } if message == "Invalid model: mistral-tiny-9000"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_compatible_server_without_a_key_sends_no_authorization() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "cmpl-1",
            "object": "chat.completion",
            "model": "qwen2.5-7b-instruct",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Bonjour"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
        })))
        .expect(1)
        .mount(&server)
        .await;
    let provider = OpenAiProvider::new(OpenAiConfig {
        request_timeout: TIMEOUT,
        ..OpenAiConfig::compatible("vllm", format!("{}/v1/", server.uri()), None)
    })
    .unwrap();

    let response = provider.complete(&weather_request("qwen2.5-7b-instruct")).await.unwrap();

    assert_eq!((response.provider.as_str(), response.content.as_str()), ("vllm", "Bonjour"));
    assert_eq!(response.finish_reason, FinishReason::Stop);
    let sent = &server.received_requests().await.unwrap()[0];
    assert!(!sent.headers.contains_key("authorization"));
}

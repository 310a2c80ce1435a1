//! The Anthropic client against a fake Messages API speaking the real wire format.

use providers::{FinishReason, ModelProvider, ProviderError, Usage};
use serde_json::json;
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{anthropic, assemble, sse_body, weather_call, weather_request};

#[tokio::test]
async fn blocking_completion_with_a_tool_call_and_usage() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(header("x-api-key", "test-anthropic-key"))
        .and(header("anthropic-version", "2023-06-01"))
        .and(body_partial_json(json!({
            "model": "claude-sonnet-4-5",
            "system": "You are a weather assistant.",
            "max_tokens": 256,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "What is the weather in Paris?"}]}],
            "tools": [{"name": "get_weather", "description": "Current weather for a city"}]
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "msg_01Aq9w938a90dw8q",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5-20250929",
            "content": [
                {"type": "text", "text": "Let me check "},
                {"type": "text", "text": "the weather."},
                {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835", "name": "get_weather", "input": {"location": "Paris"}}
            ],
            "stop_reason": "tool_use",
            "stop_sequence": null,
            "usage": {"input_tokens": 472, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 89}
        })))
        .expect(1)
        .mount(&server)
        .await;

    let response = anthropic(&server.uri()).complete(&weather_request("claude-sonnet-4-5")).await.unwrap();

    assert_eq!(response.provider, "anthropic");
    assert_eq!(response.model, "claude-sonnet-4-5-20250929");
    assert_eq!(response.content, "Let me check the weather.");
    assert_eq!(response.tool_calls, vec![weather_call("toolu_01A09q90qw90lq917835")]);
    assert_eq!(response.usage, Usage { input_tokens: 472, output_tokens: 89 });
    assert_eq!(response.finish_reason, FinishReason::ToolCalls);
}

#[tokio::test]
async fn streaming_completion_follows_the_real_event_sequence() {
    let body = sse_body(&[
        (
            Some("message_start"),
            r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":472,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":2}}}"#,
        ),
        (
            Some("content_block_start"),
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        ),
        (Some("ping"), r#"{"type": "ping"}"#),
        (
            Some("content_block_delta"),
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Let me check"}}"#,
        ),
        (
            Some("content_block_delta"),
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" the weather."}}"#,
        ),
        (Some("content_block_stop"), r#"{"type":"content_block_stop","index":0}"#),
        (
            Some("content_block_start"),
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01T1x","name":"get_weather","input":{}}}"#,
        ),
        (
            Some("content_block_delta"),
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}"#,
        ),
        (
            Some("content_block_delta"),
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"locat"}}"#,
        ),
        (
            Some("content_block_delta"),
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"ion\": \"Par"}}"#,
        ),
        (
            Some("content_block_delta"),
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"is\"}"}}"#,
        ),
        (Some("content_block_stop"), r#"{"type":"content_block_stop","index":1}"#),
        (
            Some("message_delta"),
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}"#,
        ),
        (Some("message_stop"), r#"{"type":"message_stop"}"#),
    ]);
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(body_partial_json(json!({"stream": true, "model": "claude-sonnet-4-5"})))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, "text/event-stream"))
        .expect(1)
        .mount(&server)
        .await;

    let stream = anthropic(&server.uri()).stream(&weather_request("claude-sonnet-4-5")).await.unwrap();
    let answer = assemble(stream).await.unwrap();

    assert_eq!(answer.text, "Let me check the weather.");
    assert_eq!(answer.tool_calls, vec![weather_call("toolu_01T1x")]);
    assert_eq!(answer.usage, Some(Usage { input_tokens: 472, output_tokens: 89 }));
    assert_eq!(answer.finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(answer.after_done, 0);
}

#[tokio::test]
async fn an_error_event_mid_stream_is_surfaced() {
    let body = sse_body(&[
        (
            Some("message_start"),
            r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-haiku-4-5","content":[],"stop_reason":null,"usage":{"input_tokens":10,"output_tokens":1}}}"#,
        ),
        (Some("error"), r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#),
    ]);
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, "text/event-stream"))
        .mount(&server)
        .await;

    let stream = anthropic(&server.uri()).stream(&weather_request("claude-haiku-4-5")).await.unwrap();
    match assemble(stream).await {
        Err(ProviderError::Status { status: 529, message, .. }) => assert_eq!(message, "Overloaded"),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn vendor_error_bodies_are_surfaced_with_their_message() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "type": "error",
            "error": {"type": "authentication_error", "message": "invalid x-api-key"},
            "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"
        })))
        .mount(&server)
        .await;

    let err = anthropic(&server.uri()).complete(&weather_request("claude-sonnet-4-5")).await.unwrap_err();
    assert_eq!(
        err,
        ProviderError::Status {
            provider: "anthropic".into(),
            status: 401,
            message: "invalid x-api-key".into(),
            retry_after: None
        }
    );
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn a_prompt_that_is_too_long_is_a_context_overflow() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "type": "error",
            "error": {"type": "invalid_request_error", "message": "prompt is too long: 208310 tokens > 200000 maximum"}
        })))
        .mount(&server)
        .await;

    let err = anthropic(&server.uri()).complete(&weather_request("claude-sonnet-4-5")).await.unwrap_err();
    assert!(
        matches!(&err, ProviderError::ContextOverflow { provider, message } if provider == "anthropic" && message.contains("208310")),
        "{err:?}"
    );
}

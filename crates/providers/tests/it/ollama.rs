//! The Ollama client against a fake native API: `/api/chat` (blocking and NDJSON streaming)
//! and `/api/tags`.

use providers::{FinishReason, ModelProvider, ProviderError, Usage};
use serde_json::json;
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{assemble, ollama, weather_call, weather_request};

#[tokio::test]
async fn blocking_completion_with_a_tool_call_and_usage() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/chat"))
        .and(body_partial_json(json!({
            "model": "llama3.2",
            "stream": false,
            "messages": [
                {"role": "system", "content": "You are a weather assistant."},
                {"role": "user", "content": "What is the weather in Paris?"}
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather"}}],
            "options": {"num_predict": 256}
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "model": "llama3.2",
            "created_at": "2025-07-07T20:22:19.184789Z",
            "message": {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"function": {"name": "get_weather", "arguments": {"location": "Paris"}}}]
            },
            "done_reason": "stop",
            "done": true,
            "total_duration": 2_372_459_500_u64,
            "load_duration": 1_197_164_959_u64,
            "prompt_eval_count": 168,
            "prompt_eval_duration": 1_063_000_000_u64,
            "eval_count": 18,
            "eval_duration": 110_000_000_u64
        })))
        .expect(1)
        .mount(&server)
        .await;

    let response = ollama(&server.uri()).complete(&weather_request("llama3.2")).await.unwrap();

    assert_eq!(response.provider, "ollama");
    assert_eq!(response.model, "llama3.2");
    assert_eq!(response.tool_calls, vec![weather_call("call_0")]);
    assert_eq!(response.usage, Usage { input_tokens: 168, output_tokens: 18 });
    assert_eq!(response.finish_reason, FinishReason::ToolCalls);
}

#[tokio::test]
async fn streaming_reads_ndjson_lines_up_to_the_done_line() {
    let lines = [
        json!({"model": "llama3.2", "created_at": "2025-07-07T20:22:19Z", "message": {"role": "assistant", "content": "Let me"}, "done": false}),
        json!({"model": "llama3.2", "created_at": "2025-07-07T20:22:19Z", "message": {"role": "assistant", "content": " check."}, "done": false}),
        json!({"model": "llama3.2", "created_at": "2025-07-07T20:22:19Z", "message": {"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "get_weather", "arguments": {"location": "Paris"}}}
        ]}, "done": false}),
        json!({"model": "llama3.2", "created_at": "2025-07-07T20:22:20Z", "message": {"role": "assistant", "content": ""},
            "done_reason": "stop", "done": true, "total_duration": 4_883_583_458_u64, "prompt_eval_count": 26,
            "prompt_eval_duration": 342_546_000, "eval_count": 20, "eval_duration": 4_535_599_000_u64}),
    ];
    let body: String = lines.iter().map(|line| format!("{line}\n")).collect();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/chat"))
        .and(body_partial_json(json!({"stream": true})))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, "application/x-ndjson"))
        .expect(1)
        .mount(&server)
        .await;

    let stream = ollama(&server.uri()).stream(&weather_request("llama3.2")).await.unwrap();
    let answer = assemble(stream).await.unwrap();

    assert_eq!(answer.text, "Let me check.");
    assert_eq!(answer.tool_calls, vec![weather_call("call_0")]);
    assert_eq!(answer.usage, Some(Usage { input_tokens: 26, output_tokens: 20 }));
    assert_eq!(answer.finish_reason, Some(FinishReason::ToolCalls));
}

#[tokio::test]
async fn a_stream_cut_before_the_done_line_is_an_error() {
    let body = format!(
        "{}\n",
        json!({"model": "llama3.2", "message": {"role": "assistant", "content": "Hel"}, "done": false})
    );
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, "application/x-ndjson"))
        .mount(&server)
        .await;

    let stream = ollama(&server.uri()).stream(&weather_request("llama3.2")).await.unwrap();
    assert!(matches!(assemble(stream).await, Err(ProviderError::Connection { .. })));
}

#[tokio::test]
async fn vendor_error_bodies_are_surfaced_with_their_message() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(404)
                .set_body_json(json!({"error": "model \"llama9\" not found, try pulling it first"})),
        )
        .mount(&server)
        .await;

    let err = ollama(&server.uri()).complete(&weather_request("llama9")).await.unwrap_err();
    assert_eq!(
        err,
        ProviderError::Status {
            provider: "ollama".into(),
            status: 404,
            message: "model \"llama9\" not found, try pulling it first".into(),
            retry_after: None
        }
    );
}

#[tokio::test]
async fn list_models_reads_the_tags() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/tags"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "models": [
                {"name": "llama3.2:latest", "model": "llama3.2:latest", "modified_at": "2025-05-04T17:37:44Z", "size": 2_019_393_189_u64,
                 "digest": "a80c4f17acd5", "details": {"format": "gguf", "family": "llama", "parameter_size": "3.2B", "quantization_level": "Q4_K_M"}},
                {"name": "qwen2.5:7b", "model": "qwen2.5:7b", "modified_at": "2025-05-01T10:00:00Z", "size": 4_683_087_332_u64,
                 "digest": "845dbda0ea48", "details": {"format": "gguf", "family": "qwen2"}}
            ]
        })))
        .expect(1)
        .mount(&server)
        .await;

    let models = ollama(&server.uri()).list_models().await.unwrap();
    assert_eq!(models, ["llama3.2:latest", "qwen2.5:7b"]);
}

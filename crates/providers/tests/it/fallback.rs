//! Fallback chains across providers.

use std::sync::Arc;

use providers::{Fallback, FallbackTarget, ModelProvider, ProviderError};
use serde_json::json;
use wiremock::matchers::{body_partial_json, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{anthropic, assemble, dead_base_url, openai, weather_request};

fn anthropic_answer() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5-20251001",
        "content": [{"type": "text", "text": "Sunny in Paris."}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 20, "output_tokens": 5}
    }))
}

#[tokio::test]
async fn a_dead_provider_falls_back_to_a_working_one_with_its_own_model() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_partial_json(json!({"model": "claude-haiku-4-5"})))
        .respond_with(anthropic_answer())
        .expect(1)
        .mount(&server)
        .await;
    let chain = Fallback::new(vec![
        FallbackTarget::new(Arc::new(openai(&dead_base_url())), "gpt-4o-mini"),
        FallbackTarget::new(Arc::new(anthropic(&server.uri())), "claude-haiku-4-5"),
    ])
    .unwrap();

    let response = chain.complete(&weather_request("ignored")).await.unwrap();

    assert_eq!(response.provider, "anthropic");
    assert_eq!(response.model, "claude-haiku-4-5-20251001");
    assert_eq!(response.content, "Sunny in Paris.");
    assert_eq!(chain.name(), "fallback[openai,anthropic]");
}

#[tokio::test]
async fn streams_fall_back_before_they_start() {
    let body = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"claude-haiku-4-5\",\"content\":[],\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Sunny.\"}}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":2}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, "text/event-stream"))
        .mount(&server)
        .await;
    let chain = Fallback::new(vec![
        FallbackTarget::new(Arc::new(openai(&dead_base_url())), "gpt-4o-mini"),
        FallbackTarget::new(Arc::new(anthropic(&server.uri())), "claude-haiku-4-5"),
    ])
    .unwrap();

    let answer = assemble(chain.stream(&weather_request("ignored")).await.unwrap()).await.unwrap();

    assert_eq!(answer.text, "Sunny.");
}

#[tokio::test]
async fn a_bad_request_does_not_fall_back() {
    let first = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(json!({"error": {"message": "messages: must not be empty"}})),
        )
        .mount(&first)
        .await;
    let second = MockServer::start().await;
    Mock::given(method("POST")).respond_with(anthropic_answer()).expect(0).mount(&second).await;
    let chain = Fallback::new(vec![
        FallbackTarget::new(Arc::new(openai(&first.uri())), "gpt-4o-mini"),
        FallbackTarget::new(Arc::new(anthropic(&second.uri())), "claude-haiku-4-5"),
    ])
    .unwrap();

    let err = chain.complete(&weather_request("ignored")).await.unwrap_err();

    assert!(matches!(err, ProviderError::Status { status: 400, ref provider, .. } if provider == "openai"), "{err:?}");
}

#[tokio::test]
async fn an_unauthorized_provider_falls_back() {
    let first = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"error": {"message": "Incorrect API key provided"}})),
        )
        .mount(&first)
        .await;
    let second = MockServer::start().await;
    Mock::given(method("POST")).respond_with(anthropic_answer()).expect(1).mount(&second).await;
    let chain = Fallback::new(vec![
        FallbackTarget::new(Arc::new(openai(&first.uri())), "gpt-4o-mini"),
        FallbackTarget::new(Arc::new(anthropic(&second.uri())), "claude-haiku-4-5"),
    ])
    .unwrap();

    assert_eq!(chain.complete(&weather_request("ignored")).await.unwrap().provider, "anthropic");
}

#[tokio::test]
async fn when_every_provider_fails_the_last_error_is_returned() {
    let chain = Fallback::new(vec![
        FallbackTarget::new(Arc::new(openai(&dead_base_url())), "gpt-4o-mini"),
        FallbackTarget::new(Arc::new(anthropic(&dead_base_url())), "claude-haiku-4-5"),
    ])
    .unwrap();

    let err = chain.complete(&weather_request("ignored")).await.unwrap_err();

    assert!(matches!(err, ProviderError::Connection { ref provider, .. } if provider == "anthropic"), "{err:?}");
}

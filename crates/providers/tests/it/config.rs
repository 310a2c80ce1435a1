//! Providers built from settings reach the configured endpoints.

use std::collections::HashMap;

use providers::{ProviderSettings, configured_providers};
use serde_json::json;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::weather_request;

#[tokio::test]
async fn base_url_overrides_from_the_environment_are_used() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(header("x-api-key", "sk-ant-from-env"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
            "content": [{"type": "text", "text": "Hello"}], "stop_reason": "end_turn",
            "usage": {"input_tokens": 3, "output_tokens": 1}
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", "Bearer sk-mistral-from-env"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "c1", "object": "chat.completion", "model": "mistral-small-latest",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Bonjour"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
        })))
        .expect(1)
        .mount(&server)
        .await;
    let env: HashMap<&str, String> = HashMap::from([
        ("ANTHROPIC_API_KEY", "sk-ant-from-env".to_owned()),
        ("ANTHROPIC_BASE_URL", server.uri()),
        ("MISTRAL_API_KEY", "sk-mistral-from-env".to_owned()),
        ("MISTRAL_BASE_URL", format!("{}/v1", server.uri())),
    ]);
    let settings = ProviderSettings::from_env(|name| env.get(name).cloned());

    let providers = configured_providers(&settings).unwrap();
    let names: Vec<&str> = providers.iter().map(|provider| provider.name()).collect();
    assert_eq!(names, ["anthropic", "mistral"]);

    assert_eq!(providers[0].complete(&weather_request("claude-haiku-4-5")).await.unwrap().content, "Hello");
    assert_eq!(providers[1].complete(&weather_request("mistral-small-latest")).await.unwrap().content, "Bonjour");
}

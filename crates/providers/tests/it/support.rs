//! Shared helpers for the integration tests: requests, stream assembly, providers pointed at
//! fake servers, and a port nobody listens on.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
use providers::{
    AnthropicConfig, AnthropicProvider, ApiKey, ChatRequest, EventStream, FinishReason, Message, OllamaConfig,
    OllamaProvider, OpenAiConfig, OpenAiProvider, ProviderError, StreamEvent, ToolCall, ToolSpec, Usage,
};
use serde_json::json;

pub const TIMEOUT: Duration = Duration::from_secs(5);

pub fn weather_request(model: &str) -> ChatRequest {
    ChatRequest {
        model: model.to_owned(),
        system: Some("You are a weather assistant.".to_owned()),
        messages: vec![Message::user("What is the weather in Paris?")],
        tools: vec![ToolSpec {
            name: "get_weather".to_owned(),
            description: "Current weather for a city".to_owned(),
            parameters: json!({
                "type": "object",
                "properties": {"location": {"type": "string"}},
                "required": ["location"]
            }),
        }],
        max_tokens: 256,
        temperature: Some(0.2),
        stop: Vec::new(),
    }
}

pub fn anthropic(base_url: &str) -> AnthropicProvider {
    anthropic_with_timeout(base_url, TIMEOUT)
}

pub fn anthropic_with_timeout(base_url: &str, request_timeout: Duration) -> AnthropicProvider {
    AnthropicProvider::new(AnthropicConfig {
        base_url: base_url.to_owned(),
        request_timeout,
        ..AnthropicConfig::new(ApiKey::new("test-anthropic-key"))
    })
    .expect("a valid provider config")
}

pub fn openai(base_url: &str) -> OpenAiProvider {
    openai_with_timeout(base_url, TIMEOUT)
}

pub fn openai_with_timeout(base_url: &str, request_timeout: Duration) -> OpenAiProvider {
    OpenAiProvider::new(OpenAiConfig {
        base_url: base_url.to_owned(),
        request_timeout,
        ..OpenAiConfig::openai(ApiKey::new("test-openai-key"))
    })
    .expect("a valid provider config")
}

pub fn mistral(base_url: &str) -> OpenAiProvider {
    OpenAiProvider::new(OpenAiConfig {
        base_url: base_url.to_owned(),
        request_timeout: TIMEOUT,
        ..OpenAiConfig::mistral(ApiKey::new("test-mistral-key"))
    })
    .expect("a valid provider config")
}

pub fn ollama(base_url: &str) -> OllamaProvider {
    OllamaProvider::new(OllamaConfig { base_url: base_url.to_owned(), request_timeout: TIMEOUT })
        .expect("a valid provider config")
}

/// A stream's events put back together the way a caller would.
#[derive(Debug, Default)]
pub struct Assembled {
    pub text: String,
    pub tool_calls: Vec<ToolCall>,
    pub usage: Option<Usage>,
    pub finish_reason: Option<FinishReason>,
    /// Events after `Done` (there must be none).
    pub after_done: usize,
}

pub async fn assemble(mut stream: EventStream) -> Result<Assembled, ProviderError> {
    let mut assembled = Assembled::default();
    let mut calls: BTreeMap<u32, (String, String, String)> = BTreeMap::new();
    while let Some(event) = stream.next().await {
        if assembled.finish_reason.is_some() {
            assembled.after_done += 1;
        }
        match event? {
            StreamEvent::TextDelta(text) => assembled.text.push_str(&text),
            StreamEvent::ToolCallDelta { index, id, name, arguments_json } => {
                let call = calls.entry(index).or_default();
                if let Some(id) = id {
                    call.0 = id;
                }
                if let Some(name) = name {
                    call.1 = name;
                }
                call.2.push_str(&arguments_json);
            }
            StreamEvent::Usage(usage) => assembled.usage = Some(usage),
            StreamEvent::Done { finish_reason } => assembled.finish_reason = Some(finish_reason),
        }
    }
    assembled.tool_calls = calls
        .into_values()
        .map(|(id, name, arguments)| ToolCall {
            id,
            name,
            arguments: serde_json::from_str(&arguments).expect("tool arguments are JSON"),
        })
        .collect();
    Ok(assembled)
}

/// A base URL on which nothing listens: bind a free port, then let it go.
pub fn dead_base_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let port = listener.local_addr().expect("a bound address").port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// An SSE body from (event name, data) pairs; `None` names give bare `data:` lines.
pub fn sse_body(events: &[(Option<&str>, &str)]) -> String {
    events
        .iter()
        .map(|(name, data)| match name {
            Some(name) => format!("event: {name}\ndata: {data}\n\n"),
            None => format!("data: {data}\n\n"),
        })
        .collect()
}

pub fn weather_call(id: &str) -> ToolCall {
    ToolCall { id: id.to_owned(), name: "get_weather".to_owned(), arguments: json!({"location": "Paris"}) }
}

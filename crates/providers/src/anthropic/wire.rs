//! Anthropic Messages API wire types and the explicit conversions between them and the neutral
//! chat types. Nothing here leaves the `anthropic` module.

use serde::{Deserialize, Serialize};

use crate::{ChatRequest, ChatResponse, FinishReason, Message, ProviderError, Role, ToolCall, Usage};

#[derive(Debug, Serialize)]
pub(super) struct MessagesRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<&'a str>,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    stop_sequences: &'a [String],
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
}

#[derive(Debug, Serialize)]
struct WireMessage<'a> {
    role: WireRole,
    content: Vec<OutgoingBlock<'a>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum WireRole {
    User,
    Assistant,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum OutgoingBlock<'a> {
    Text { text: &'a str },
    ToolUse { id: &'a str, name: &'a str, input: &'a serde_json::Value },
    ToolResult { tool_use_id: &'a str, content: &'a str },
}

#[derive(Debug, Serialize)]
struct WireTool<'a> {
    name: &'a str,
    description: &'a str,
    input_schema: &'a serde_json::Value,
}

/// Builds the request body. Anthropic wants the system prompt at the top level, tool results
/// as `tool_result` blocks inside a user turn, and strictly alternating turns, so consecutive
/// messages of one wire role are merged into one turn.
pub(super) fn messages_request(request: &ChatRequest, stream: bool) -> MessagesRequest<'_> {
    let mut messages: Vec<WireMessage<'_>> = Vec::new();
    for message in &request.messages {
        let (role, blocks) = message_blocks(message);
        if blocks.is_empty() {
            continue;
        }
        match messages.last_mut() {
            Some(last) if last.role == role => last.content.extend(blocks),
            _ => messages.push(WireMessage { role, content: blocks }),
        }
    }
    let tools = request
        .tools
        .iter()
        .map(|tool| WireTool { name: &tool.name, description: &tool.description, input_schema: &tool.parameters })
        .collect();
    MessagesRequest {
        model: &request.model,
        max_tokens: request.max_tokens,
        system: request.system.as_deref().filter(|system| !system.is_empty()),
        messages,
        tools,
        temperature: request.temperature,
        stop_sequences: &request.stop,
        stream,
    }
}

fn message_blocks(message: &Message) -> (WireRole, Vec<OutgoingBlock<'_>>) {
    // Anthropic refuses empty text blocks, so empty text is left out.
    let text = (!message.content.is_empty()).then_some(OutgoingBlock::Text { text: &message.content });
    match message.role {
        Role::User => (WireRole::User, text.into_iter().collect()),
        Role::Assistant => {
            let calls = message.tool_calls.iter().map(|call| OutgoingBlock::ToolUse {
                id: &call.id,
                name: &call.name,
                input: &call.arguments,
            });
            (WireRole::Assistant, text.into_iter().chain(calls).collect())
        }
        Role::Tool => {
            let result = OutgoingBlock::ToolResult {
                tool_use_id: message.tool_call_id.as_deref().unwrap_or_default(),
                content: &message.content,
            };
            (WireRole::User, vec![result])
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct MessagesResponse {
    model: String,
    content: Vec<IncomingBlock>,
    stop_reason: Option<String>,
    usage: WireUsage,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum IncomingBlock {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: serde_json::Value,
    },
    /// Thinking and other block kinds carry nothing the neutral response has room for.
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub(super) struct WireUsage {
    #[serde(default)]
    pub(super) input_tokens: Option<u64>,
    #[serde(default)]
    pub(super) output_tokens: Option<u64>,
    #[serde(default)]
    pub(super) cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    pub(super) cache_read_input_tokens: Option<u64>,
}

impl WireUsage {
    /// All prompt tokens: Anthropic counts cache writes and reads apart from `input_tokens`.
    pub(super) fn prompt_tokens(&self) -> Option<u64> {
        let parts = [self.input_tokens, self.cache_creation_input_tokens, self.cache_read_input_tokens];
        parts.iter().any(Option::is_some).then(|| parts.iter().flatten().sum())
    }
}

pub(super) fn chat_response(provider: &str, response: MessagesResponse) -> ChatResponse {
    let mut content = String::new();
    let mut tool_calls = Vec::new();
    for block in response.content {
        match block {
            IncomingBlock::Text { text } => content.push_str(&text),
            IncomingBlock::ToolUse { id, name, input } => tool_calls.push(ToolCall { id, name, arguments: input }),
            IncomingBlock::Other => {}
        }
    }
    ChatResponse {
        provider: provider.to_owned(),
        model: response.model,
        content,
        tool_calls,
        usage: Usage {
            input_tokens: response.usage.prompt_tokens().unwrap_or(0),
            output_tokens: response.usage.output_tokens.unwrap_or(0),
        },
        finish_reason: finish_reason(response.stop_reason.as_deref()),
    }
}

pub(super) fn finish_reason(stop_reason: Option<&str>) -> FinishReason {
    match stop_reason {
        Some("end_turn" | "stop_sequence") => FinishReason::Stop,
        Some("max_tokens" | "model_context_window_exceeded") => FinishReason::Length,
        Some("tool_use") => FinishReason::ToolCalls,
        Some("refusal") => FinishReason::ContentFilter,
        _ => FinishReason::Other,
    }
}

/// The body of an `error` event, and of an error response.
#[derive(Debug, Deserialize)]
pub(super) struct WireError {
    #[serde(rename = "type")]
    kind: String,
    message: String,
}

/// An error Anthropic reports inside a stream, with the status it would have had as a response.
pub(super) fn stream_error(provider: &str, error: WireError) -> ProviderError {
    let status = match error.kind.as_str() {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "billing_error" => 402,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "timeout_error" => 504,
        "overloaded_error" => 529,
        _ => 500,
    };
    let body = serde_json::json!({ "type": "error", "error": { "type": error.kind, "message": error.message } });
    crate::http::status_error(provider, status, &body.to_string(), None)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ToolSpec;

    #[test]
    fn request_puts_system_on_top_and_tool_results_in_user_turns() {
        let request = ChatRequest {
            model: "claude-sonnet-4-5".into(),
            system: Some("Be brief.".into()),
            messages: vec![
                Message::user("Weather in Paris and Rome?"),
                Message {
                    tool_calls: vec![
                        ToolCall { id: "toolu_1".into(), name: "weather".into(), arguments: json!({"city": "Paris"}) },
                        ToolCall { id: "toolu_2".into(), name: "weather".into(), arguments: json!({"city": "Rome"}) },
                    ],
                    ..Message::assistant("")
                },
                Message::tool_result("toolu_1", "18°C"),
                Message::tool_result("toolu_2", "24°C"),
            ],
            tools: vec![ToolSpec {
                name: "weather".into(),
                description: "Current weather".into(),
                parameters: json!({"type": "object"}),
            }],
            max_tokens: 256,
            temperature: None,
            stop: vec![],
        };
        let body = serde_json::to_value(messages_request(&request, false)).unwrap();
        assert_eq!(
            body,
            json!({
                "model": "claude-sonnet-4-5",
                "max_tokens": 256,
                "system": "Be brief.",
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome?"}]},
                    {"role": "assistant", "content": [
                        {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
                        {"type": "tool_use", "id": "toolu_2", "name": "weather", "input": {"city": "Rome"}}
                    ]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18°C"},
                        {"type": "tool_result", "tool_use_id": "toolu_2", "content": "24°C"}
                    ]}
                ],
                "tools": [{"name": "weather", "description": "Current weather", "input_schema": {"type": "object"}}]
            })
        );
    }

    #[test]
    fn stop_reasons_map_to_finish_reasons() {
        let cases = [
            (Some("end_turn"), FinishReason::Stop),
            (Some("stop_sequence"), FinishReason::Stop),
            (Some("max_tokens"), FinishReason::Length),
            (Some("tool_use"), FinishReason::ToolCalls),
            (Some("refusal"), FinishReason::ContentFilter),
            (Some("pause_turn"), FinishReason::Other),
            (None, FinishReason::Other),
        ];
        for (stop_reason, expected) in cases {
            assert_eq!(finish_reason(stop_reason), expected, "{stop_reason:?}");
        }
    }
}

//! OpenAI chat-completions wire types (shared by Mistral and OpenAI-compatible servers) and the
//! explicit conversions between them and the neutral chat types. Nothing here leaves the
//! `openai` module.

use serde::{Deserialize, Serialize};

use super::MaxTokensField;
use crate::{ChatRequest, ChatResponse, FinishReason, Message, ProviderError, Role, ToolCall, Usage};

#[derive(Debug, Serialize)]
pub(super) struct CompletionRequest<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    stop: &'a [String],
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

#[derive(Debug, Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Debug, Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
enum WireMessage<'a> {
    System {
        content: &'a str,
    },
    User {
        content: &'a str,
    },
    Assistant {
        /// `null` when the turn is only tool calls.
        content: Option<&'a str>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<OutgoingToolCall<'a>>,
    },
    Tool {
        tool_call_id: &'a str,
        content: &'a str,
    },
}

#[derive(Debug, Serialize)]
struct OutgoingToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: OutgoingFunction<'a>,
}

#[derive(Debug, Serialize)]
struct OutgoingFunction<'a> {
    name: &'a str,
    /// The arguments as JSON text, as the API wants them.
    arguments: String,
}

#[derive(Debug, Serialize)]
struct WireTool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunctionSpec<'a>,
}

#[derive(Debug, Serialize)]
struct WireFunctionSpec<'a> {
    name: &'a str,
    description: &'a str,
    parameters: &'a serde_json::Value,
}

/// How a request is shaped for one flavour of the API.
#[derive(Debug, Clone, Copy)]
pub(super) struct RequestShape {
    pub(super) max_tokens_field: MaxTokensField,
    pub(super) stream_usage_option: bool,
}

pub(super) fn completion_request<'a>(
    request: &'a ChatRequest,
    shape: RequestShape,
    stream: bool,
) -> CompletionRequest<'a> {
    let system = request.system.as_deref().filter(|system| !system.is_empty());
    let messages = system
        .map(|content| WireMessage::System { content })
        .into_iter()
        .chain(request.messages.iter().map(wire_message));
    let tools = request
        .tools
        .iter()
        .map(|tool| WireTool {
            kind: "function",
            function: WireFunctionSpec {
                name: &tool.name,
                description: &tool.description,
                parameters: &tool.parameters,
            },
        })
        .collect();
    let (max_tokens, max_completion_tokens) = match shape.max_tokens_field {
        MaxTokensField::MaxTokens => (Some(request.max_tokens), None),
        MaxTokensField::MaxCompletionTokens => (None, Some(request.max_tokens)),
    };
    CompletionRequest {
        model: &request.model,
        messages: messages.collect(),
        tools,
        max_tokens,
        max_completion_tokens,
        temperature: request.temperature,
        stop: &request.stop,
        stream,
        stream_options: (stream && shape.stream_usage_option).then_some(StreamOptions { include_usage: true }),
    }
}

fn wire_message(message: &Message) -> WireMessage<'_> {
    match message.role {
        Role::User => WireMessage::User { content: &message.content },
        Role::Assistant => {
            let tool_calls: Vec<OutgoingToolCall<'_>> = message
                .tool_calls
                .iter()
                .map(|call| OutgoingToolCall {
                    id: &call.id,
                    kind: "function",
                    function: OutgoingFunction { name: &call.name, arguments: call.arguments.to_string() },
                })
                .collect();
            let content = (!message.content.is_empty() || tool_calls.is_empty()).then_some(message.content.as_str());
            WireMessage::Assistant { content, tool_calls }
        }
        Role::Tool => WireMessage::Tool {
            tool_call_id: message.tool_call_id.as_deref().unwrap_or_default(),
            content: &message.content,
        },
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct CompletionResponse {
    #[serde(default)]
    model: String,
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
struct Choice {
    message: ResponseMessage,
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ResponseMessage {
    #[serde(default)]
    content: Option<WireContent>,
    #[serde(default)]
    tool_calls: Option<Vec<IncomingToolCall>>,
}

/// Message content: a string, or (Mistral's reasoning models) a list of typed parts.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum WireContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Deserialize)]
pub(super) struct ContentPart {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

impl WireContent {
    /// The answer text; parts other than `text` (thinking, references) are left out.
    pub(super) fn into_text(self) -> String {
        match self {
            WireContent::Text(text) => text,
            WireContent::Parts(parts) => {
                parts.into_iter().filter(|part| part.kind == "text").filter_map(|part| part.text).collect()
            }
        }
    }
}

#[derive(Debug, Deserialize)]
struct IncomingToolCall {
    id: Option<String>,
    function: IncomingFunction,
}

#[derive(Debug, Deserialize)]
struct IncomingFunction {
    name: String,
    #[serde(default)]
    arguments: Option<WireArguments>,
}

/// Function arguments: JSON text per the API, though some compatible servers send an object.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum WireArguments {
    Text(String),
    Json(serde_json::Value),
}

impl WireArguments {
    /// The arguments as JSON text, for stream fragments.
    pub(super) fn into_fragment(self) -> String {
        match self {
            WireArguments::Text(text) => text,
            WireArguments::Json(value) => value.to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize)]
pub(super) struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

impl From<WireUsage> for Usage {
    fn from(usage: WireUsage) -> Self {
        Usage { input_tokens: usage.prompt_tokens, output_tokens: usage.completion_tokens }
    }
}

pub(super) fn chat_response(provider: &str, response: CompletionResponse) -> Result<ChatResponse, ProviderError> {
    let invalid = |message: String| ProviderError::InvalidResponse { provider: provider.to_owned(), message };
    let choice =
        response.choices.into_iter().next().ok_or_else(|| invalid("the response has no choices".to_owned()))?;
    let tool_calls = choice
        .message
        .tool_calls
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(position, call)| {
            let arguments = parse_arguments(call.function.arguments).map_err(|err| {
                invalid(format!("arguments of tool call {:?} are not JSON: {err}", call.function.name))
            })?;
            Ok(ToolCall {
                id: call.id.unwrap_or_else(|| format!("call_{position}")),
                name: call.function.name,
                arguments,
            })
        })
        .collect::<Result<Vec<_>, ProviderError>>()?;
    Ok(ChatResponse {
        provider: provider.to_owned(),
        model: response.model,
        content: choice.message.content.map(WireContent::into_text).unwrap_or_default(),
        tool_calls,
        usage: response.usage.map(Usage::from).unwrap_or_default(),
        finish_reason: finish_reason(choice.finish_reason.as_deref()),
    })
}

/// Parses arguments text; an empty string (a call without parameters) is `{}`.
fn parse_arguments(arguments: Option<WireArguments>) -> Result<serde_json::Value, serde_json::Error> {
    match arguments {
        None => Ok(serde_json::json!({})),
        Some(WireArguments::Json(value)) => Ok(value),
        Some(WireArguments::Text(text)) if text.trim().is_empty() => Ok(serde_json::json!({})),
        Some(WireArguments::Text(text)) => serde_json::from_str(&text),
    }
}

pub(super) fn finish_reason(reason: Option<&str>) -> FinishReason {
    match reason {
        Some("stop") => FinishReason::Stop,
        Some("length" | "model_length") => FinishReason::Length,
        Some("tool_calls" | "function_call") => FinishReason::ToolCalls,
        Some("content_filter") => FinishReason::ContentFilter,
        _ => FinishReason::Other,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ToolSpec;

    fn request() -> ChatRequest {
        ChatRequest {
            model: "gpt-4o-mini".into(),
            system: Some("Be brief.".into()),
            messages: vec![
                Message::user("Weather in Paris?"),
                Message {
                    tool_calls: vec![ToolCall {
                        id: "call_1".into(),
                        name: "weather".into(),
                        arguments: json!({"city": "Paris"}),
                    }],
                    ..Message::assistant("")
                },
                Message::tool_result("call_1", "18°C"),
            ],
            tools: vec![ToolSpec {
                name: "weather".into(),
                description: "Current weather".into(),
                parameters: json!({"type": "object"}),
            }],
            max_tokens: 100,
            temperature: Some(0.5),
            stop: vec!["END".into()],
        }
    }

    #[test]
    fn request_carries_system_tools_and_tool_turns() {
        let shape = RequestShape { max_tokens_field: MaxTokensField::MaxCompletionTokens, stream_usage_option: true };
        let body = serde_json::to_value(completion_request(&request(), shape, true)).unwrap();
        assert_eq!(
            body,
            json!({
                "model": "gpt-4o-mini",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Weather in Paris?"},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}
                    ]},
                    {"role": "tool", "tool_call_id": "call_1", "content": "18°C"}
                ],
                "tools": [{"type": "function", "function": {"name": "weather", "description": "Current weather", "parameters": {"type": "object"}}}],
                "max_completion_tokens": 100,
                "temperature": 0.5,
                "stop": ["END"],
                "stream": true,
                "stream_options": {"include_usage": true}
            })
        );
    }

    #[test]
    fn mistral_shape_uses_max_tokens_and_no_stream_options() {
        let shape = RequestShape { max_tokens_field: MaxTokensField::MaxTokens, stream_usage_option: false };
        let body = serde_json::to_value(completion_request(&request(), shape, true)).unwrap();
        assert_eq!(body["max_tokens"], 100);
        assert!(body.get("max_completion_tokens").is_none());
        assert!(body.get("stream_options").is_none());
    }

    #[test]
    fn content_parts_keep_only_text() {
        let content: WireContent =
            serde_json::from_value(json!([{"type": "thinking", "thinking": []}, {"type": "text", "text": "Hi"}]))
                .unwrap();
        assert_eq!(content.into_text(), "Hi");
    }

    #[test]
    fn finish_reasons_map() {
        let cases = [
            (Some("stop"), FinishReason::Stop),
            (Some("length"), FinishReason::Length),
            (Some("model_length"), FinishReason::Length),
            (Some("tool_calls"), FinishReason::ToolCalls),
            (Some("content_filter"), FinishReason::ContentFilter),
            (Some("error"), FinishReason::Other),
            (None, FinishReason::Other),
        ];
        for (reason, expected) in cases {
            assert_eq!(finish_reason(reason), expected, "{reason:?}");
        }
    }
}

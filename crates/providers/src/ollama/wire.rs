//! Ollama native API wire types (`/api/chat`, `/api/tags`), the explicit conversions to and from
//! the neutral chat types, and the NDJSON stream decoder. Nothing here leaves the `ollama`
//! module.

use serde::{Deserialize, Serialize};

use crate::sse::StreamDecoder;
use crate::{ChatRequest, ChatResponse, FinishReason, Message, ProviderError, Role, StreamEvent, ToolCall, Usage};

#[derive(Debug, Serialize)]
pub(super) struct ChatRequestWire<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    stream: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
    options: Options<'a>,
}

#[derive(Debug, Serialize)]
struct Options<'a> {
    num_predict: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    stop: &'a [String],
}

#[derive(Debug, Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    content: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<OutgoingToolCall<'a>>,
    /// For tool results: the tool that produced it (Ollama matches results by name).
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_name: Option<&'a str>,
}

#[derive(Debug, Serialize)]
struct OutgoingToolCall<'a> {
    function: OutgoingFunction<'a>,
}

#[derive(Debug, Serialize)]
struct OutgoingFunction<'a> {
    name: &'a str,
    arguments: &'a serde_json::Value,
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

pub(super) fn chat_request(request: &ChatRequest, stream: bool) -> ChatRequestWire<'_> {
    let system = request.system.as_deref().filter(|system| !system.is_empty()).map(|content| WireMessage {
        role: "system",
        content,
        tool_calls: Vec::new(),
        tool_name: None,
    });
    let messages =
        request.messages.iter().enumerate().map(|(position, message)| wire_message(request, position, message));
    ChatRequestWire {
        model: &request.model,
        messages: system.into_iter().chain(messages).collect(),
        stream,
        tools: request
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
            .collect(),
        options: Options { num_predict: request.max_tokens, temperature: request.temperature, stop: &request.stop },
    }
}

fn wire_message<'a>(request: &'a ChatRequest, position: usize, message: &'a Message) -> WireMessage<'a> {
    let role = match message.role {
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    };
    let tool_calls = message
        .tool_calls
        .iter()
        .map(|call| OutgoingToolCall { function: OutgoingFunction { name: &call.name, arguments: &call.arguments } })
        .collect();
    let tool_name = message.tool_call_id.as_deref().and_then(|id| tool_name_for(request, position, id));
    WireMessage { role, content: &message.content, tool_calls, tool_name }
}

/// The name of the call a tool result answers, from the nearest earlier assistant turn that
/// made it. Ollama's generated ids (`call_0`, ...) repeat across turns, hence "nearest".
fn tool_name_for<'a>(request: &'a ChatRequest, position: usize, id: &str) -> Option<&'a str> {
    request.messages[..position]
        .iter()
        .rev()
        .flat_map(|message| message.tool_calls.iter())
        .find(|call| call.id == id)
        .map(|call| call.name.as_str())
}

/// One `/api/chat` answer, or one line of a streamed answer.
#[derive(Debug, Deserialize)]
pub(super) struct ChatResponseWire {
    #[serde(default)]
    model: String,
    message: Option<ResponseMessage>,
    #[serde(default)]
    done: bool,
    done_reason: Option<String>,
    prompt_eval_count: Option<u64>,
    eval_count: Option<u64>,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ResponseMessage {
    #[serde(default)]
    content: String,
    #[serde(default)]
    tool_calls: Option<Vec<IncomingToolCall>>,
}

#[derive(Debug, Deserialize)]
struct IncomingToolCall {
    /// Recent Ollama versions send an id; older ones do not.
    id: Option<String>,
    function: IncomingFunction,
}

#[derive(Debug, Deserialize)]
struct IncomingFunction {
    name: String,
    #[serde(default)]
    arguments: serde_json::Value,
}

impl ChatResponseWire {
    fn usage(&self) -> Usage {
        Usage { input_tokens: self.prompt_eval_count.unwrap_or(0), output_tokens: self.eval_count.unwrap_or(0) }
    }
}

/// Arguments are an object; a string holding JSON is accepted too, and a missing value is `{}`.
fn tool_call(provider: &str, number: u32, call: IncomingToolCall) -> Result<ToolCall, ProviderError> {
    let arguments = match call.function.arguments {
        serde_json::Value::Null => serde_json::json!({}),
        serde_json::Value::String(text) => {
            serde_json::from_str(&text).map_err(|err| ProviderError::InvalidResponse {
                provider: provider.to_owned(),
                message: format!("arguments of tool call {:?} are not JSON: {err}", call.function.name),
            })?
        }
        value => value,
    };
    Ok(ToolCall { id: call.id.unwrap_or_else(|| format!("call_{number}")), name: call.function.name, arguments })
}

/// Ollama says `stop` even when the model called tools.
fn finish_reason(done_reason: Option<&str>, called_tools: bool) -> FinishReason {
    match done_reason {
        Some("length") => FinishReason::Length,
        _ if called_tools => FinishReason::ToolCalls,
        Some("stop") => FinishReason::Stop,
        _ => FinishReason::Other,
    }
}

fn error_in_body(provider: &str, error: &str) -> ProviderError {
    ProviderError::Status { provider: provider.to_owned(), status: 500, message: error.to_owned(), retry_after: None }
}

pub(super) fn chat_response(provider: &str, response: ChatResponseWire) -> Result<ChatResponse, ProviderError> {
    if let Some(error) = &response.error {
        return Err(error_in_body(provider, error));
    }
    let usage = response.usage();
    let message = response.message.ok_or_else(|| ProviderError::InvalidResponse {
        provider: provider.to_owned(),
        message: "the response has no message".to_owned(),
    })?;
    let tool_calls = (0..)
        .zip(message.tool_calls.unwrap_or_default())
        .map(|(number, call)| tool_call(provider, number, call))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ChatResponse {
        provider: provider.to_owned(),
        model: response.model,
        content: message.content,
        finish_reason: finish_reason(response.done_reason.as_deref(), !tool_calls.is_empty()),
        tool_calls,
        usage,
    })
}

/// `/api/tags`.
#[derive(Debug, Deserialize)]
pub(super) struct TagsResponse {
    #[serde(default)]
    models: Vec<ModelTag>,
}

#[derive(Debug, Deserialize)]
struct ModelTag {
    name: String,
}

impl TagsResponse {
    pub(super) fn into_names(self) -> Vec<String> {
        self.models.into_iter().map(|model| model.name).collect()
    }
}

/// Decodes NDJSON lines: text deltas, whole tool calls, and a final `done` line with counts.
#[derive(Debug)]
pub(super) struct OllamaDecoder {
    provider: String,
    tool_calls_seen: u32,
}

impl OllamaDecoder {
    pub(super) fn new(provider: &str) -> Self {
        Self { provider: provider.to_owned(), tool_calls_seen: 0 }
    }
}

impl StreamDecoder for OllamaDecoder {
    type Item = String;

    fn decode(&mut self, line: String, out: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
        let chunk: ChatResponseWire = serde_json::from_str(&line).map_err(|err| ProviderError::InvalidResponse {
            provider: self.provider.clone(),
            message: format!("undecodable line: {err}: {}", crate::http::snippet(&line)),
        })?;
        if let Some(error) = &chunk.error {
            return Err(error_in_body(&self.provider, error));
        }
        let usage = chunk.usage();
        let (content, calls) = match chunk.message {
            Some(message) => (message.content, message.tool_calls.unwrap_or_default()),
            None => (String::new(), Vec::new()),
        };
        if !content.is_empty() {
            out.push(StreamEvent::TextDelta(content));
        }
        // Ollama sends each tool call whole, in one line.
        for call in calls {
            let index = self.tool_calls_seen;
            self.tool_calls_seen += 1;
            let call = tool_call(&self.provider, index, call)?;
            out.push(StreamEvent::ToolCallDelta {
                index,
                id: Some(call.id),
                name: Some(call.name),
                arguments_json: call.arguments.to_string(),
            });
        }
        if chunk.done {
            out.push(StreamEvent::Usage(usage));
            let finish_reason = finish_reason(chunk.done_reason.as_deref(), self.tool_calls_seen > 0);
            out.push(StreamEvent::Done { finish_reason });
        }
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
        Err(ProviderError::Connection {
            provider: self.provider.clone(),
            message: "the stream ended before the line with \"done\": true".to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ToolSpec;

    #[test]
    fn request_uses_options_and_names_tool_results() {
        let request = ChatRequest {
            model: "llama3.2".into(),
            system: Some("Be brief.".into()),
            messages: vec![
                Message::user("Weather?"),
                Message {
                    tool_calls: vec![ToolCall {
                        id: "call_0".into(),
                        name: "weather".into(),
                        arguments: json!({"city": "Oslo"}),
                    }],
                    ..Message::assistant("")
                },
                Message::tool_result("call_0", "-3°C"),
            ],
            tools: vec![ToolSpec {
                name: "weather".into(),
                description: "Weather".into(),
                parameters: json!({"type": "object"}),
            }],
            max_tokens: 64,
            temperature: Some(0.0),
            stop: vec!["\n\n".into()],
        };
        assert_eq!(
            serde_json::to_value(chat_request(&request, false)).unwrap(),
            json!({
                "model": "llama3.2",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Weather?"},
                    {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "weather", "arguments": {"city": "Oslo"}}}]},
                    {"role": "tool", "content": "-3°C", "tool_name": "weather"}
                ],
                "stream": false,
                "tools": [{"type": "function", "function": {"name": "weather", "description": "Weather", "parameters": {"type": "object"}}}],
                "options": {"num_predict": 64, "temperature": 0.0, "stop": ["\n\n"]}
            })
        );
    }

    #[test]
    fn finish_reasons_account_for_tool_calls() {
        assert_eq!(finish_reason(Some("stop"), false), FinishReason::Stop);
        assert_eq!(finish_reason(Some("stop"), true), FinishReason::ToolCalls);
        assert_eq!(finish_reason(Some("length"), true), FinishReason::Length);
        assert_eq!(finish_reason(Some("unload"), false), FinishReason::Other);
    }
}

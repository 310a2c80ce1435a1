//! Anthropic-compatible `POST /v1/messages` (blocking and streaming, tools). Wire types live
//! here only; any provider can serve the request.

use std::convert::Infallible;

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::response::Response;
use axum::response::sse::{Event as SseEvent, Sse};
use futures_util::StreamExt as _;
use runtime::auth::Principal;
use runtime::llm::{Caller, ChatRequest, ChatResponse, FinishReason, Message, StreamEvent, ToolCall, ToolSpec};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::{gateway_error, governed, response_id};
use crate::error::{ApiError, Dialect};
use crate::json::Body;
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code, reason = "some fields are accepted for wire compatibility and not forwarded")]
pub struct MessagesRequest {
    /// A provider model, a tier (`nexus/normal`, …) or `nexus/auto`.
    pub model: String,
    #[schema(minimum = 1)]
    pub max_tokens: u32,
    #[schema(min_items = 1)]
    pub messages: Vec<InputMessage>,
    /// A string or a list of text blocks.
    #[schema(value_type = Option<SystemSchema>)]
    pub system: Option<Value>,
    pub stop_sequences: Option<Vec<String>>,
    #[schema(minimum = 0, maximum = 1)]
    pub temperature: Option<f32>,
    #[serde(default)]
    pub stream: bool,
    pub tools: Option<Vec<ToolIn>>,
    /// Accepted for compatibility; the provider decides.
    #[schema(value_type = Option<serde_json::Value>)]
    pub tool_choice: Option<Value>,
    #[schema(value_type = Option<serde_json::Value>)]
    pub metadata: Option<Value>,
    /// Other parameters (`top_p`, `top_k`, …) are accepted and not forwarded.
    #[serde(flatten)]
    #[schema(ignore)]
    pub extra: serde_json::Map<String, Value>,
}

/// `system`: a string or a list of text blocks (schema only).
#[derive(Serialize, ToSchema)]
#[allow(dead_code, reason = "described in the OpenAPI document, never constructed")]
#[serde(untagged)]
pub(crate) enum SystemSchema {
    Text(String),
    Blocks(Vec<TextBlock>),
}

/// A message's content: a string or a list of blocks (schema only). `tool_use` blocks belong
/// in assistant turns, `tool_result` blocks in user turns.
#[derive(Serialize, ToSchema)]
#[allow(dead_code, reason = "described in the OpenAPI document, never constructed")]
#[serde(untagged)]
pub(crate) enum ContentSchema {
    Text(String),
    Blocks(Vec<BlockSchema>),
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code, reason = "described in the OpenAPI document, never constructed")]
#[serde(untagged)]
pub(crate) enum BlockSchema {
    Text(TextBlock),
    ToolUse(ToolUseBlock),
    ToolResult(ToolResultBlock),
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code, reason = "described in the OpenAPI document, never constructed")]
pub(crate) struct TextBlock {
    #[serde(rename = "type")]
    #[schema(value_type = TextType, inline)]
    kind: String,
    text: String,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code, reason = "described in the OpenAPI document, never constructed")]
pub(crate) struct ToolUseBlock {
    #[serde(rename = "type")]
    #[schema(value_type = ToolUseType, inline)]
    kind: String,
    id: String,
    name: String,
    #[schema(value_type = Object)]
    input: Value,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code, reason = "described in the OpenAPI document, never constructed")]
pub(crate) struct ToolResultBlock {
    #[serde(rename = "type")]
    #[schema(value_type = ToolResultType, inline)]
    kind: String,
    tool_use_id: String,
    #[schema(value_type = Option<SystemSchema>)]
    content: Option<Value>,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code, reason = "described in the OpenAPI document, never constructed")]
#[serde(rename_all = "snake_case")]
pub(crate) enum TextType {
    Text,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code, reason = "described in the OpenAPI document, never constructed")]
#[serde(rename_all = "snake_case")]
pub(crate) enum ToolUseType {
    ToolUse,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code, reason = "described in the OpenAPI document, never constructed")]
#[serde(rename_all = "snake_case")]
pub(crate) enum ToolResultType {
    ToolResult,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code, reason = "described in the OpenAPI document, never constructed")]
#[serde(rename_all = "snake_case")]
pub(crate) enum AnthropicRole {
    User,
    Assistant,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct InputMessage {
    #[schema(value_type = AnthropicRole, inline)]
    pub role: String,
    /// A string or a list of `text`, `tool_use` and `tool_result` blocks.
    #[schema(value_type = ContentSchema)]
    pub content: Value,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ToolIn {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// A JSON schema.
    #[schema(value_type = Object)]
    pub input_schema: Value,
}

fn blocks_text(value: &Value, field: &str) -> Result<String, ApiError> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Array(blocks) => {
            let mut text = String::new();
            for (i, block) in blocks.iter().enumerate() {
                match block.get("type").and_then(Value::as_str) {
                    Some("text") => text.push_str(block.get("text").and_then(Value::as_str).unwrap_or_default()),
                    Some(other) => {
                        return Err(ApiError::invalid(
                            &format!("{field}[{i}].type"),
                            format!("blocks of type {other:?} are not supported here"),
                        ));
                    }
                    None => {
                        return Err(ApiError::bad_request(format!("invalid field `{field}[{i}]`: missing type"))
                            .with_param(format!("{field}[{i}]")));
                    }
                }
            }
            Ok(text)
        }
        Value::Null => Ok(String::new()),
        _ => Err(ApiError::bad_request(format!("invalid field `{field}`: expected a string or a list of blocks"))
            .with_param(field)),
    }
}

fn neutral(body: &MessagesRequest) -> Result<ChatRequest, ApiError> {
    if body.messages.is_empty() {
        return Err(ApiError::invalid("messages", "messages must not be empty"));
    }
    if body.max_tokens == 0 {
        return Err(ApiError::invalid("max_tokens", "max_tokens must be at least 1"));
    }
    if let Some(t) = body.temperature
        && !(0.0..=1.0).contains(&t)
    {
        return Err(ApiError::invalid("temperature", "temperature must be between 0 and 1"));
    }
    let mut messages = Vec::new();
    for (i, m) in body.messages.iter().enumerate() {
        let field = format!("messages[{i}].content");
        let blocks = match &m.content {
            Value::String(text) => vec![json!({"type": "text", "text": text})],
            Value::Array(blocks) => blocks.clone(),
            _ => {
                return Err(ApiError::bad_request(format!("invalid field `{field}`: expected a string or blocks"))
                    .with_param(field));
            }
        };
        let mut text = String::new();
        let mut calls = Vec::new();
        for (j, block) in blocks.iter().enumerate() {
            let at = format!("{field}[{j}]");
            match block.get("type").and_then(Value::as_str) {
                Some("text") => text.push_str(block.get("text").and_then(Value::as_str).unwrap_or_default()),
                Some("tool_use") if m.role == "assistant" => calls.push(ToolCall {
                    id: block.get("id").and_then(Value::as_str).unwrap_or_default().to_owned(),
                    name: block.get("name").and_then(Value::as_str).unwrap_or_default().to_owned(),
                    arguments: block.get("input").cloned().unwrap_or_else(|| json!({})),
                }),
                Some("tool_result") if m.role == "user" => {
                    let id = block.get("tool_use_id").and_then(Value::as_str).ok_or_else(|| {
                        ApiError::invalid(&format!("{at}.tool_use_id"), "tool_result blocks need tool_use_id")
                    })?;
                    let content = blocks_text(block.get("content").unwrap_or(&Value::Null), &format!("{at}.content"))?;
                    messages.push(Message::tool_result(id, content));
                }
                Some(other) => {
                    return Err(ApiError::invalid(
                        &format!("{at}.type"),
                        format!("{other:?} blocks are not supported in {} turns", m.role),
                    ));
                }
                None => return Err(ApiError::bad_request(format!("invalid field `{at}`: missing type")).with_param(at)),
            }
        }
        match m.role.as_str() {
            "user" => {
                if !text.is_empty() {
                    messages.push(Message::user(text));
                }
            }
            "assistant" => {
                let mut message = Message::assistant(text);
                message.tool_calls = calls;
                messages.push(message);
            }
            other => {
                return Err(ApiError::invalid(
                    &format!("messages[{i}].role"),
                    format!("unknown role {other:?}; use user or assistant"),
                ));
            }
        }
    }
    let system = match &body.system {
        None => None,
        Some(value) => Some(blocks_text(value, "system")?).filter(|s| !s.is_empty()),
    };
    let tools = body
        .tools
        .iter()
        .flatten()
        .map(|t| ToolSpec {
            name: t.name.clone(),
            description: t.description.clone(),
            parameters: t.input_schema.clone(),
        })
        .collect();
    Ok(ChatRequest {
        model: body.model.clone(),
        system,
        messages,
        tools,
        max_tokens: body.max_tokens,
        temperature: body.temperature,
        stop: body.stop_sequences.clone().unwrap_or_default(),
    })
}

fn stop_reason(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop | FinishReason::Other | FinishReason::ContentFilter => "end_turn",
        FinishReason::Length => "max_tokens",
        FinishReason::ToolCalls => "tool_use",
    }
}

fn message_json(id: &str, response: &ChatResponse) -> Value {
    let mut content = Vec::new();
    if !response.content.is_empty() {
        content.push(json!({"type": "text", "text": response.content}));
    }
    for call in &response.tool_calls {
        content.push(json!({"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}));
    }
    json!({
        "id": id, "type": "message", "role": "assistant", "model": response.model, "content": content,
        "stop_reason": stop_reason(response.finish_reason), "stop_sequence": null,
        "usage": {"input_tokens": response.usage.input_tokens, "output_tokens": response.usage.output_tokens},
    })
}

/// Tracks which content block is open while translating a neutral stream.
#[derive(Default)]
struct Blocks {
    next: u32,
    /// (our block index, the provider's tool-call index, or None for text)
    open: Option<(u32, Option<u32>)>,
    output_tokens: u64,
}

fn event(name: &'static str, data: Value) -> SseEvent {
    SseEvent::default().event(name).data(data.to_string())
}

impl Blocks {
    fn close(&mut self, out: &mut Vec<SseEvent>) {
        if let Some((index, _)) = self.open.take() {
            out.push(event("content_block_stop", json!({"type": "content_block_stop", "index": index})));
        }
    }

    fn open(&mut self, out: &mut Vec<SseEvent>, tool: Option<u32>, block: Value) -> u32 {
        self.close(out);
        let index = self.next;
        self.next += 1;
        self.open = Some((index, tool));
        out.push(event(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": block}),
        ));
        index
    }
}

/// An Anthropic message as this gateway answers it (schema only; the handler builds JSON).
#[derive(Serialize, ToSchema)]
#[allow(dead_code, reason = "described in the OpenAPI document, never constructed")]
pub(crate) struct MessageSchema {
    id: String,
    #[serde(rename = "type")]
    #[schema(pattern = "^message$")]
    kind: String,
    #[schema(pattern = "^assistant$")]
    role: String,
    /// The model name the upstream answered with.
    model: String,
    content: Vec<OutputBlockSchema>,
    /// `end_turn`, `max_tokens` or `tool_use`.
    stop_reason: String,
    stop_sequence: Option<String>,
    usage: MessageUsageSchema,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code, reason = "described in the OpenAPI document, never constructed")]
#[serde(untagged)]
pub(crate) enum OutputBlockSchema {
    Text(TextBlock),
    ToolUse(ToolUseBlock),
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code, reason = "described in the OpenAPI document, never constructed")]
pub(crate) struct MessageUsageSchema {
    input_tokens: u64,
    output_tokens: u64,
}

#[utoipa::path(post, path = "/v1/messages", tag = "gateway", request_body = MessagesRequest,
    responses((status = 200, description = "an Anthropic message, or with `stream: true` the message_start … message_stop event stream",
               content((MessageSchema = "application/json"), (crate::schema::SseEvent = "text/event-stream"))),
              (status = 402), (status = 404), (status = 429)),
    security(("bearer" = [])))]
pub(crate) async fn messages(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Body(body): Body<MessagesRequest>,
) -> Result<Response, ApiError> {
    let request = neutral(&body).map_err(|e| e.in_dialect(Dialect::Anthropic))?;
    let caller = Caller { tenant: principal.tenant.clone(), key_id: Some(principal.key_id.clone()) };
    let id = response_id("msg_");
    if !body.stream {
        let (response, meta) = state
            .runtime
            .gateway_complete(&caller, &body.model, request)
            .await
            .map_err(|e| gateway_error(e, Dialect::Anthropic))?;
        return Ok(governed(&meta, Json(message_json(&id, &response))));
    }
    let (stream, meta) = state
        .runtime
        .gateway_stream(&caller, &body.model, request)
        .await
        .map_err(|e| gateway_error(e, Dialect::Anthropic))?;
    let start = event(
        "message_start",
        json!({"type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": meta.model, "content": [],
            "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 0, "output_tokens": 0},
        }}),
    );
    let mut blocks = Blocks::default();
    let mut input_tokens = 0;
    let events = stream.flat_map(move |item| {
        let mut out = Vec::new();
        match item {
            Ok(StreamEvent::TextDelta(text)) => {
                let index = match blocks.open {
                    Some((index, None)) => index,
                    _ => blocks.open(&mut out, None, json!({"type": "text", "text": ""})),
                };
                out.push(event("content_block_delta", json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}})));
            }
            Ok(StreamEvent::ToolCallDelta { index: call, id, name, arguments_json }) => {
                let index = match blocks.open {
                    Some((index, Some(open))) if open == call => index,
                    _ => blocks.open(&mut out, Some(call), json!({"type": "tool_use", "id": id.unwrap_or_default(), "name": name.unwrap_or_default(), "input": {}})),
                };
                if !arguments_json.is_empty() {
                    out.push(event("content_block_delta", json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": arguments_json}})));
                }
            }
            Ok(StreamEvent::Usage(usage)) => {
                blocks.output_tokens = usage.output_tokens;
                input_tokens = usage.input_tokens;
            }
            Ok(StreamEvent::Done { finish_reason }) => {
                blocks.close(&mut out);
                out.push(event("message_delta", json!({"type": "message_delta",
                    "delta": {"stop_reason": stop_reason(finish_reason), "stop_sequence": null},
                    "usage": {"input_tokens": input_tokens, "output_tokens": blocks.output_tokens}})));
                out.push(event("message_stop", json!({"type": "message_stop"})));
            }
            Err(error) => {
                let api = gateway_error(runtime::llm::GatewayError::Provider(error), Dialect::Anthropic);
                out.push(event("error", json!({"type": "error", "error": {"type": "api_error", "message": api.message}})));
            }
        }
        futures_util::stream::iter(out.into_iter().map(Ok::<_, Infallible>))
    });
    let body = futures_util::stream::once(async move { Ok::<_, Infallible>(start) }).chain(events);
    Ok(governed(&meta, Sse::new(body)))
}

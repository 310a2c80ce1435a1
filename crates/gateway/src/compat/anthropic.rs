//! Anthropic-compatible `POST /v1/messages` (blocking and streaming, tools). Wire types —
//! request, message, stream events and the error body — live here only; any provider can serve
//! the request. The handler returns [`AnthropicError`], so every failure answers in Anthropic's
//! shape.

use std::convert::Infallible;

use axum::Extension;
use axum::Json;
use axum::extract::{FromRequest, Request, State};
use axum::response::Response;
use axum::response::sse::{Event as SseEvent, Sse};
use futures_util::StreamExt as _;
use runtime::auth::Principal;
use runtime::llm::{ChatRequest, ChatResponse, FinishReason, Message, StreamEvent, ToolCall, ToolSpec};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::{Dialect, VendorError, governed, json_text, read_body, response_id, stream_error};
use crate::error::ApiError;
use crate::state::AppState;

/// Anthropic's dialect: errors are `{"type": "error", "error": {"type", "message"}}`.
#[derive(Debug)]
pub(crate) enum Anthropic {}

/// An error answered in Anthropic's shape.
pub(crate) type AnthropicError = VendorError<Anthropic>;

impl Dialect for Anthropic {
    type Body = ErrorBody;

    fn body(error: ApiError, message: String) -> ErrorBody {
        let kind = match error.status.as_u16() {
            401 => "authentication_error",
            402 => "billing_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            503 | 529 => "overloaded_error",
            500..=599 => "api_error",
            _ => "invalid_request_error",
        };
        ErrorBody { kind: "error", error: ErrorDetail { kind, message } }
    }
}

/// The Anthropic-compatible route's error body.
#[derive(Serialize, ToSchema)]
#[schema(as = AnthropicError)]
pub(crate) struct ErrorBody {
    #[serde(rename = "type")]
    #[schema(value_type = String, pattern = "^error$")]
    kind: &'static str,
    error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
#[schema(as = AnthropicErrorDetail)]
pub(crate) struct ErrorDetail {
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    kind: &'static str,
    message: String,
}

/// A JSON request body of type `T`; a bad one is refused in Anthropic's shape.
#[derive(Debug)]
pub(crate) struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = AnthropicError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        read_body(request, state).await.map(Body)
    }
}

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

/// An Anthropic message as this gateway answers it (and, empty, in a stream's `message_start`).
#[derive(Serialize, ToSchema)]
pub(crate) struct MessageResponse {
    id: String,
    #[serde(rename = "type")]
    #[schema(value_type = String, pattern = "^message$")]
    kind: &'static str,
    #[schema(value_type = String, pattern = "^assistant$")]
    role: &'static str,
    /// The model name the upstream answered with.
    model: String,
    content: Vec<ContentBlock>,
    /// `end_turn`, `max_tokens` or `tool_use`; null only in a stream's `message_start`.
    #[schema(value_type = Option<String>)]
    stop_reason: Option<&'static str>,
    stop_sequence: Option<String>,
    usage: MessageUsage,
}

/// A block of an answer's content.
#[derive(Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ContentBlock {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[schema(value_type = Object)]
        input: Value,
    },
}

#[derive(Serialize, ToSchema)]
pub(crate) struct MessageUsage {
    input_tokens: u64,
    output_tokens: u64,
}

impl MessageResponse {
    fn new(id: String, response: ChatResponse) -> Self {
        let mut content = Vec::new();
        if !response.content.is_empty() {
            content.push(ContentBlock::Text { text: response.content });
        }
        for call in response.tool_calls {
            content.push(ContentBlock::ToolUse { id: call.id, name: call.name, input: call.arguments });
        }
        Self {
            id,
            kind: "message",
            role: "assistant",
            model: response.model,
            content,
            stop_reason: Some(stop_reason(response.finish_reason)),
            stop_sequence: None,
            usage: MessageUsage {
                input_tokens: response.usage.input_tokens,
                output_tokens: response.usage.output_tokens,
            },
        }
    }
}

/// One server-sent event of a streamed message; the SSE event name is its `type`.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event {
    MessageStart {
        message: MessageResponse,
    },
    ContentBlockStart {
        index: u32,
        content_block: ContentBlock,
    },
    ContentBlockDelta {
        index: u32,
        delta: BlockDelta,
    },
    ContentBlockStop {
        index: u32,
    },
    MessageDelta {
        delta: StopDelta,
        usage: MessageUsage,
    },
    MessageStop,
    /// A failure in the middle of the stream (the status already went out).
    Error {
        error: ErrorDetail,
    },
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDelta {
    TextDelta { text: String },
    InputJsonDelta { partial_json: String },
}

#[derive(Serialize)]
struct StopDelta {
    stop_reason: &'static str,
    stop_sequence: Option<String>,
}

impl Event {
    fn name(&self) -> &'static str {
        match self {
            Event::MessageStart { .. } => "message_start",
            Event::ContentBlockStart { .. } => "content_block_start",
            Event::ContentBlockDelta { .. } => "content_block_delta",
            Event::ContentBlockStop { .. } => "content_block_stop",
            Event::MessageDelta { .. } => "message_delta",
            Event::MessageStop => "message_stop",
            Event::Error { .. } => "error",
        }
    }

    fn sse(&self) -> SseEvent {
        SseEvent::default().event(self.name()).data(json_text(self))
    }
}

/// Tracks which content block is open while translating a neutral stream.
#[derive(Default)]
struct Blocks {
    next: u32,
    /// (our block index, the provider's tool-call index, or None for text)
    open: Option<(u32, Option<u32>)>,
    output_tokens: u64,
}

impl Blocks {
    fn close(&mut self, out: &mut Vec<SseEvent>) {
        if let Some((index, _)) = self.open.take() {
            out.push(Event::ContentBlockStop { index }.sse());
        }
    }

    fn open(&mut self, out: &mut Vec<SseEvent>, tool: Option<u32>, content_block: ContentBlock) -> u32 {
        self.close(out);
        let index = self.next;
        self.next += 1;
        self.open = Some((index, tool));
        out.push(Event::ContentBlockStart { index, content_block }.sse());
        index
    }
}

#[utoipa::path(post, path = "/v1/messages", tag = "gateway", request_body = MessagesRequest,
    responses((status = 200, description = "an Anthropic message, or with `stream: true` the message_start … message_stop event stream",
               content((MessageResponse = "application/json"), (crate::schema::SseEvent = "text/event-stream"))),
              (status = 402), (status = 404), (status = 429)),
    params(("x-nexus-ledger-ack" = Option<crate::schema::LedgerAck>, Header,
        description = "`durable`: answer only once the call's ledger entry is durable (the response then names it in `x-nexus-ledger-index`); `queued` (or no header): the server's setting, `[ledger] gateway_ack`")),
    security(("bearer" = [])))]
pub(crate) async fn messages(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: axum::http::HeaderMap,
    Body(body): Body<MessagesRequest>,
) -> Result<Response, AnthropicError> {
    let request = neutral(&body)?;
    let caller = super::caller(&principal, &headers)?;
    let id = response_id("msg_");
    if !body.stream {
        let (response, meta) = state.runtime.gateway_complete(&caller, &body.model, request).await?;
        return Ok(governed(&meta, Json(MessageResponse::new(id, response))));
    }
    let (stream, meta) = state.runtime.gateway_stream(&caller, &body.model, request).await?;
    let start = Event::MessageStart {
        message: MessageResponse {
            id,
            kind: "message",
            role: "assistant",
            model: meta.model.clone(),
            content: Vec::new(),
            stop_reason: None,
            stop_sequence: None,
            usage: MessageUsage { input_tokens: 0, output_tokens: 0 },
        },
    }
    .sse();
    let mut blocks = Blocks::default();
    let mut input_tokens = 0;
    let events = stream.flat_map(move |item| {
        let mut out = Vec::new();
        match item {
            Ok(StreamEvent::TextDelta(text)) => {
                let index = match blocks.open {
                    Some((index, None)) => index,
                    _ => blocks.open(&mut out, None, ContentBlock::Text { text: String::new() }),
                };
                out.push(Event::ContentBlockDelta { index, delta: BlockDelta::TextDelta { text } }.sse());
            }
            Ok(StreamEvent::ToolCallDelta { index: call, id, name, arguments_json }) => {
                let index = match blocks.open {
                    Some((index, Some(open))) if open == call => index,
                    _ => {
                        let block = ContentBlock::ToolUse {
                            id: id.unwrap_or_default(),
                            name: name.unwrap_or_default(),
                            input: Value::Object(serde_json::Map::new()),
                        };
                        blocks.open(&mut out, Some(call), block)
                    }
                };
                if !arguments_json.is_empty() {
                    let delta = BlockDelta::InputJsonDelta { partial_json: arguments_json };
                    out.push(Event::ContentBlockDelta { index, delta }.sse());
                }
            }
            Ok(StreamEvent::Usage(usage)) => {
                blocks.output_tokens = usage.output_tokens;
                input_tokens = usage.input_tokens;
            }
            Ok(StreamEvent::Done { finish_reason }) => {
                blocks.close(&mut out);
                let delta = StopDelta { stop_reason: stop_reason(finish_reason), stop_sequence: None };
                let usage = MessageUsage { input_tokens, output_tokens: blocks.output_tokens };
                out.push(Event::MessageDelta { delta, usage }.sse());
                out.push(Event::MessageStop.sse());
            }
            Err(error) => {
                let message = stream_error(error).message;
                out.push(Event::Error { error: ErrorDetail { kind: "api_error", message } }.sse());
            }
        }
        futures_util::stream::iter(out.into_iter().map(Ok::<_, Infallible>))
    });
    let body = futures_util::stream::once(async move { Ok::<_, Infallible>(start) }).chain(events);
    Ok(governed(&meta, Sse::new(body)))
}

#[cfg(test)]
mod tests {
    use runtime::llm::Usage;
    use serde_json::{Value, json};

    use super::*;

    fn value(event: &Event) -> Value {
        let value = serde_json::to_value(event).expect("json");
        assert_eq!(value["type"], event.name(), "the SSE event name is the data's type");
        value
    }

    #[test]
    fn stream_events_keep_the_wire_shape() {
        let start = Event::MessageStart {
            message: MessageResponse {
                id: "msg_1".into(),
                kind: "message",
                role: "assistant",
                model: "m".into(),
                content: Vec::new(),
                stop_reason: None,
                stop_sequence: None,
                usage: MessageUsage { input_tokens: 0, output_tokens: 0 },
            },
        };
        assert_eq!(
            value(&start),
            json!({"type": "message_start", "message": {
                "id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": [],
                "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 0, "output_tokens": 0}}})
        );
        let text = Event::ContentBlockStart { index: 0, content_block: ContentBlock::Text { text: String::new() } };
        assert_eq!(
            value(&text),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
        );
        let tool = ContentBlock::ToolUse { id: "t".into(), name: "f".into(), input: json!({}) };
        assert_eq!(
            value(&Event::ContentBlockStart { index: 1, content_block: tool }),
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "t", "name": "f", "input": {}}})
        );
        assert_eq!(
            value(&Event::ContentBlockDelta { index: 0, delta: BlockDelta::TextDelta { text: "Hi".into() } }),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}})
        );
        assert_eq!(
            value(&Event::ContentBlockDelta {
                index: 1,
                delta: BlockDelta::InputJsonDelta { partial_json: "{".into() }
            }),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{"}})
        );
        assert_eq!(value(&Event::ContentBlockStop { index: 1 }), json!({"type": "content_block_stop", "index": 1}));
        let delta = Event::MessageDelta {
            delta: StopDelta { stop_reason: "end_turn", stop_sequence: None },
            usage: MessageUsage { input_tokens: 3, output_tokens: 4 },
        };
        assert_eq!(
            value(&delta),
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                   "usage": {"input_tokens": 3, "output_tokens": 4}})
        );
        assert_eq!(value(&Event::MessageStop), json!({"type": "message_stop"}));
        let error = Event::Error { error: ErrorDetail { kind: "api_error", message: "m".into() } };
        assert_eq!(value(&error), json!({"type": "error", "error": {"type": "api_error", "message": "m"}}));
    }

    #[test]
    fn a_message_and_errors_keep_the_wire_shape() {
        let response = ChatResponse {
            provider: "p".into(),
            model: "m".into(),
            content: "hi".into(),
            tool_calls: vec![ToolCall { id: "t".into(), name: "f".into(), arguments: json!({"a": 1}) }],
            usage: Usage { input_tokens: 1, output_tokens: 2 },
            finish_reason: FinishReason::ToolCalls,
        };
        assert_eq!(
            serde_json::to_value(MessageResponse::new("msg_1".into(), response)).expect("json"),
            json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
                   "content": [{"type": "text", "text": "hi"}, {"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}}],
                   "stop_reason": "tool_use", "stop_sequence": null, "usage": {"input_tokens": 1, "output_tokens": 2}})
        );
        let error = ApiError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, "unavailable", "busy");
        assert_eq!(
            serde_json::to_value(Anthropic::body(error, "busy".into())).expect("json"),
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}})
        );
    }
}

//! OpenAI-compatible `POST /v1/chat/completions` (blocking and streaming, tools,
//! `stream_options.include_usage`) and `GET /v1/models`. Wire types live here only.

use std::convert::Infallible;

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use runtime::auth::Principal;
use runtime::llm::{Caller, ChatRequest, ChatResponse, FinishReason, Message, StreamEvent, ToolCall, ToolSpec};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::{gateway_error, governed, response_id, unix_now};
use crate::error::{ApiError, Dialect};
use crate::json::Body;
use crate::state::AppState;

const DEFAULT_MAX_TOKENS: u32 = 4096;

#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code, reason = "some fields are accepted for wire compatibility and not forwarded")]
pub struct ChatCompletionRequest {
    /// A provider model (`gpt-4o-mini`, `anthropic/claude-haiku-4-5`), a tier (`nexus/trivial`,
    /// `nexus/normal`, `nexus/complex`) or `nexus/auto`.
    pub model: String,
    /// At least one user turn.
    #[schema(min_items = 1)]
    pub messages: Vec<ChatMessage>,
    #[serde(default)]
    pub stream: bool,
    pub stream_options: Option<StreamOptions>,
    #[schema(minimum = 1)]
    pub max_tokens: Option<u32>,
    /// Wins over `max_tokens`.
    #[schema(minimum = 1)]
    pub max_completion_tokens: Option<u32>,
    #[schema(minimum = 0, maximum = 2)]
    pub temperature: Option<f32>,
    /// A string or a list of strings.
    #[schema(value_type = Option<StopSchema>)]
    pub stop: Option<Value>,
    pub tools: Option<Vec<ToolDefinition>>,
    /// Accepted for compatibility; the provider decides.
    #[schema(value_type = Option<serde_json::Value>)]
    pub tool_choice: Option<Value>,
    /// Only 1 is supported.
    #[schema(minimum = 1, maximum = 1)]
    pub n: Option<u32>,
    pub user: Option<String>,
    /// Other OpenAI parameters (`top_p`, `seed`, …) are accepted and not forwarded.
    #[serde(flatten)]
    #[schema(ignore)]
    pub extra: serde_json::Map<String, Value>,
}

/// `stop`: one string or a list of strings (schema only).
#[derive(Serialize, ToSchema)]
#[allow(dead_code, reason = "described in the OpenAPI document, never constructed")]
#[serde(untagged)]
pub(crate) enum StopSchema {
    One(String),
    Many(Vec<String>),
}

/// Message content: text, or a list of text parts (schema only).
#[derive(Serialize, ToSchema)]
#[allow(dead_code, reason = "described in the OpenAPI document, never constructed")]
#[serde(untagged)]
pub(crate) enum ContentSchema {
    Text(String),
    Parts(Vec<TextPart>),
}

/// A content part; only `text` parts are supported.
#[derive(Serialize, ToSchema)]
#[allow(dead_code, reason = "described in the OpenAPI document, never constructed")]
pub(crate) struct TextPart {
    #[serde(rename = "type")]
    #[schema(value_type = TextPartType, inline)]
    kind: String,
    text: String,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code, reason = "described in the OpenAPI document, never constructed")]
#[serde(rename_all = "snake_case")]
pub(crate) enum TextPartType {
    Text,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code, reason = "described in the OpenAPI document, never constructed")]
#[serde(rename_all = "snake_case")]
pub(crate) enum OpenAiRole {
    System,
    Developer,
    User,
    Assistant,
    /// Needs `tool_call_id`.
    Tool,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code, reason = "described in the OpenAPI document, never constructed")]
#[serde(rename_all = "snake_case")]
pub(crate) enum FunctionType {
    Function,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code, reason = "some fields are accepted for wire compatibility and not forwarded")]
pub struct ChatMessage {
    #[schema(value_type = OpenAiRole, inline)]
    pub role: String,
    /// Text, or a list of content parts of type `text`.
    #[schema(value_type = Option<ContentSchema>)]
    pub content: Option<Value>,
    pub tool_calls: Option<Vec<ToolCallIn>>,
    pub tool_call_id: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ToolCallIn {
    pub id: String,
    pub function: FunctionCall,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FunctionCall {
    pub name: String,
    /// JSON text (a JSON document, e.g. `{}`).
    pub arguments: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ToolDefinition {
    #[serde(rename = "type")]
    #[schema(value_type = FunctionType, inline)]
    pub kind: String,
    pub function: FunctionDefinition,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct FunctionDefinition {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// A JSON schema.
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Value>,
}

fn text_of(content: Option<&Value>, field: &str) -> Result<String, ApiError> {
    match content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(text)) => Ok(text.clone()),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for (i, part) in parts.iter().enumerate() {
                match (part.get("type").and_then(Value::as_str), part.get("text").and_then(Value::as_str)) {
                    (Some("text"), Some(t)) => text.push_str(t),
                    (Some(other), _) => {
                        return Err(ApiError::invalid(
                            &format!("{field}[{i}].type"),
                            format!("content parts of type {other:?} are not supported; send text"),
                        ));
                    }
                    _ => {
                        return Err(ApiError::bad_request(format!(
                            "invalid field `{field}[{i}]`: expected {{\"type\": \"text\", \"text\": …}}"
                        ))
                        .with_param(format!("{field}[{i}]")));
                    }
                }
            }
            Ok(text)
        }
        Some(_) => Err(ApiError::bad_request(format!("invalid field `{field}`: expected a string or a list of parts"))
            .with_param(field)),
    }
}

/// The neutral request of an OpenAI one.
fn neutral(body: &ChatCompletionRequest) -> Result<ChatRequest, ApiError> {
    if body.messages.is_empty() {
        return Err(ApiError::invalid("messages", "messages must not be empty"));
    }
    if body.n.is_some_and(|n| n != 1) {
        return Err(ApiError::invalid("n", "only n = 1 is supported"));
    }
    let mut system: Vec<String> = Vec::new();
    let mut messages = Vec::new();
    for (i, m) in body.messages.iter().enumerate() {
        let field = format!("messages[{i}].content");
        let text = text_of(m.content.as_ref(), &field)?;
        match m.role.as_str() {
            "system" | "developer" => system.push(text),
            "user" => messages.push(Message::user(text)),
            "assistant" => {
                let mut message = Message::assistant(text);
                for (j, call) in m.tool_calls.iter().flatten().enumerate() {
                    let arguments = serde_json::from_str(&call.function.arguments).map_err(|e| {
                        ApiError::invalid(
                            &format!("messages[{i}].tool_calls[{j}].function.arguments"),
                            format!("not JSON: {e}"),
                        )
                    })?;
                    message.tool_calls.push(ToolCall {
                        id: call.id.clone(),
                        name: call.function.name.clone(),
                        arguments,
                    });
                }
                messages.push(message);
            }
            "tool" => {
                let id = m.tool_call_id.clone().ok_or_else(|| {
                    ApiError::invalid(&format!("messages[{i}].tool_call_id"), "tool messages need tool_call_id")
                })?;
                messages.push(Message::tool_result(id, text));
            }
            other => {
                return Err(ApiError::invalid(
                    &format!("messages[{i}].role"),
                    format!("unknown role {other:?}; use system, developer, user, assistant or tool"),
                ));
            }
        }
    }
    if messages.is_empty() {
        return Err(ApiError::invalid("messages", "messages need at least one user turn"));
    }
    let stop = match &body.stop {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| ApiError::bad_request("invalid field `stop`: expected strings").with_param("stop"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(ApiError::bad_request("invalid field `stop`: expected a string or a list").with_param("stop"));
        }
    };
    if let Some(t) = body.temperature
        && !(0.0..=2.0).contains(&t)
    {
        return Err(ApiError::invalid("temperature", "temperature must be between 0 and 2"));
    }
    let mut tools = Vec::new();
    for (i, tool) in body.tools.iter().flatten().enumerate() {
        if tool.kind != "function" {
            return Err(ApiError::invalid(&format!("tools[{i}].type"), "only function tools are supported"));
        }
        tools.push(ToolSpec {
            name: tool.function.name.clone(),
            description: tool.function.description.clone(),
            parameters: tool.function.parameters.clone().unwrap_or_else(|| json!({"type": "object", "properties": {}})),
        });
    }
    let max_tokens = body.max_completion_tokens.or(body.max_tokens).unwrap_or(DEFAULT_MAX_TOKENS);
    if max_tokens == 0 {
        return Err(ApiError::invalid("max_tokens", "max_tokens must be at least 1"));
    }
    Ok(ChatRequest {
        model: body.model.clone(),
        system: (!system.is_empty()).then(|| system.join("\n\n")),
        messages,
        tools,
        max_tokens,
        temperature: body.temperature,
        stop,
    })
}

fn finish_reason(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop | FinishReason::Other => "stop",
        FinishReason::Length => "length",
        FinishReason::ToolCalls => "tool_calls",
        FinishReason::ContentFilter => "content_filter",
    }
}

fn completion_json(id: &str, model: &str, response: &ChatResponse) -> Value {
    let tool_calls: Vec<Value> = response
        .tool_calls
        .iter()
        .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments.to_string()}}))
        .collect();
    let mut message = json!({"role": "assistant", "content": response.content});
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls);
        if response.content.is_empty() {
            message["content"] = Value::Null;
        }
    }
    json!({
        "id": id, "object": "chat.completion", "created": unix_now(), "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason(response.finish_reason), "logprobs": null}],
        "usage": {
            "prompt_tokens": response.usage.input_tokens, "completion_tokens": response.usage.output_tokens,
            "total_tokens": response.usage.input_tokens + response.usage.output_tokens,
        },
    })
}

/// A `chat.completion` as this gateway answers it (schema only; the handler builds JSON).
#[derive(Serialize, ToSchema)]
#[allow(dead_code, reason = "described in the OpenAPI document, never constructed")]
pub(crate) struct ChatCompletionSchema {
    id: String,
    #[schema(pattern = "^chat\\.completion$")]
    object: String,
    created: u64,
    /// The model name the upstream answered with.
    model: String,
    choices: Vec<ChoiceSchema>,
    usage: UsageSchema,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code, reason = "described in the OpenAPI document, never constructed")]
pub(crate) struct ChoiceSchema {
    index: u32,
    message: AssistantMessageSchema,
    /// `stop`, `length`, `tool_calls` or `content_filter`.
    finish_reason: String,
    #[schema(value_type = Option<serde_json::Value>)]
    logprobs: Option<Value>,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code, reason = "described in the OpenAPI document, never constructed")]
pub(crate) struct AssistantMessageSchema {
    #[schema(pattern = "^assistant$")]
    role: String,
    content: Option<String>,
    #[schema(nullable = false)]
    tool_calls: Option<Vec<ToolCallSchema>>,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code, reason = "described in the OpenAPI document, never constructed")]
pub(crate) struct ToolCallSchema {
    id: String,
    #[serde(rename = "type")]
    #[schema(value_type = FunctionType, inline)]
    kind: String,
    function: FunctionCall,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code, reason = "described in the OpenAPI document, never constructed")]
pub(crate) struct UsageSchema {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
}

#[utoipa::path(post, path = "/v1/chat/completions", tag = "gateway", request_body = ChatCompletionRequest,
    responses((status = 200, description = "an OpenAI chat.completion, or with `stream: true` a text/event-stream of chat.completion.chunk objects ending in [DONE]",
               content((ChatCompletionSchema = "application/json"), (crate::schema::SseEvent = "text/event-stream"))),
              (status = 402, description = "budget exhausted"), (status = 404, description = "unknown model"), (status = 429)),
    security(("bearer" = [])))]
pub(crate) async fn chat_completions(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Body(body): Body<ChatCompletionRequest>,
) -> Result<Response, ApiError> {
    let request = neutral(&body).map_err(|e| e.in_dialect(Dialect::OpenAi))?;
    let caller = Caller { tenant: principal.tenant.clone(), key_id: Some(principal.key_id.clone()) };
    let id = response_id("chatcmpl-");
    if !body.stream {
        let (response, meta) = state
            .runtime
            .gateway_complete(&caller, &body.model, request)
            .await
            .map_err(|e| gateway_error(e, Dialect::OpenAi))?;
        let json = completion_json(&id, &response.model, &response);
        return Ok(governed(&meta, Json(json)));
    }
    let include_usage = body.stream_options.as_ref().is_some_and(|o| o.include_usage);
    let (stream, meta) = state
        .runtime
        .gateway_stream(&caller, &body.model, request)
        .await
        .map_err(|e| gateway_error(e, Dialect::OpenAi))?;
    let model = meta.model.clone();
    let created = unix_now();
    let chunk = move |delta: Value, finish: Option<&str>| {
        json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}]})
    };
    let first = chunk(json!({"role": "assistant", "content": ""}), None);
    let mut usage = None;
    let events = stream.flat_map(move |event| {
        let mut out: Vec<Value> = Vec::new();
        match event {
            Ok(StreamEvent::TextDelta(text)) => out.push(chunk(json!({"content": text}), None)),
            Ok(StreamEvent::ToolCallDelta { index, id, name, arguments_json }) => {
                let mut call = json!({"index": index, "function": {"arguments": arguments_json}});
                if let Some(id) = id {
                    call["id"] = json!(id);
                    call["type"] = json!("function");
                }
                if let Some(name) = name {
                    call["function"]["name"] = json!(name);
                }
                out.push(chunk(json!({"tool_calls": [call]}), None));
            }
            Ok(StreamEvent::Usage(u)) => usage = Some(u),
            Ok(StreamEvent::Done { finish_reason: reason }) => {
                out.push(chunk(json!({}), Some(finish_reason(reason))));
                if include_usage {
                    let u = usage.unwrap_or_default();
                    let mut last = chunk(json!({}), None);
                    last["choices"] = json!([]);
                    last["usage"] = json!({"prompt_tokens": u.input_tokens, "completion_tokens": u.output_tokens, "total_tokens": u.input_tokens + u.output_tokens});
                    out.push(last);
                }
            }
            Err(error) => {
                let api = gateway_error(runtime::llm::GatewayError::Provider(error), Dialect::OpenAi);
                out.push(json!({"error": {"message": api.message, "type": "api_error", "code": api.code}}));
            }
        }
        futures_util::stream::iter(out.into_iter().map(|v| Ok::<_, Infallible>(SseEvent::default().data(v.to_string()))))
    });
    let done = futures_util::stream::once(async { Ok::<_, Infallible>(SseEvent::default().data("[DONE]")) });
    let body =
        futures_util::stream::once(async move { Ok::<_, Infallible>(SseEvent::default().data(first.to_string())) })
            .chain(events)
            .chain(done);
    Ok(governed(&meta, Sse::new(body)))
}

/// An OpenAI model list (schema only).
#[derive(Serialize, ToSchema)]
#[allow(dead_code, reason = "described in the OpenAPI document, never constructed")]
pub(crate) struct ModelListSchema {
    #[schema(pattern = "^list$")]
    object: String,
    data: Vec<ModelSchema>,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code, reason = "described in the OpenAPI document, never constructed")]
pub(crate) struct ModelSchema {
    id: String,
    #[schema(pattern = "^model$")]
    object: String,
    created: u64,
    owned_by: String,
}

#[utoipa::path(get, path = "/v1/models", tag = "gateway",
    responses((status = 200, body = ModelListSchema, description = "OpenAI model list: the tiers, nexus/auto, and the configured models")), security(("bearer" = [])))]
pub(crate) async fn models(State(state): State<AppState>) -> Json<Value> {
    let created = unix_now();
    let data: Vec<Value> = state
        .runtime
        .gateway_models()
        .into_iter()
        .map(|m| json!({"id": m.id, "object": "model", "created": created, "owned_by": m.owned_by}))
        .collect();
    Json(json!({"object": "list", "data": data}))
}

#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code, reason = "some fields are accepted for wire compatibility and not forwarded")]
pub struct EmbeddingsRequest {
    /// Any name; the in-process model (all-MiniLM-L6-v2) answers.
    pub model: String,
    /// A string or a list of 1–2048 strings.
    #[schema(value_type = InputSchema)]
    pub input: Value,
    /// Only `float` is supported.
    #[schema(value_type = Option<EncodingFormat>, inline)]
    pub encoding_format: Option<String>,
    pub user: Option<String>,
}

const MAX_EMBEDDING_INPUTS: usize = 2048;

/// `input`: one string or a list of 1–2048 strings (schema only).
#[derive(Serialize, ToSchema)]
#[allow(dead_code, reason = "described in the OpenAPI document, never constructed")]
#[serde(untagged)]
pub(crate) enum InputSchema {
    One(String),
    Many(Vec<String>),
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code, reason = "described in the OpenAPI document, never constructed")]
#[serde(rename_all = "snake_case")]
pub(crate) enum EncodingFormat {
    Float,
}

/// An OpenAI embedding list (schema only).
#[derive(Serialize, ToSchema)]
#[allow(dead_code, reason = "described in the OpenAPI document, never constructed")]
pub(crate) struct EmbeddingListSchema {
    #[schema(pattern = "^list$")]
    object: String,
    data: Vec<EmbeddingSchema>,
    model: String,
    usage: EmbeddingUsageSchema,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code, reason = "described in the OpenAPI document, never constructed")]
pub(crate) struct EmbeddingSchema {
    #[schema(pattern = "^embedding$")]
    object: String,
    index: u32,
    embedding: Vec<f32>,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code, reason = "described in the OpenAPI document, never constructed")]
pub(crate) struct EmbeddingUsageSchema {
    prompt_tokens: u64,
    total_tokens: u64,
}

#[utoipa::path(post, path = "/v1/embeddings", tag = "gateway", request_body = EmbeddingsRequest,
    responses((status = 200, body = EmbeddingListSchema, description = "an OpenAI embedding list"), (status = 503, description = "no embedding model loaded")),
    security(("bearer" = [])))]
pub(crate) async fn embeddings(
    State(state): State<AppState>,
    Body(body): Body<EmbeddingsRequest>,
) -> Result<Response, ApiError> {
    let openai = |e: ApiError| e.in_dialect(Dialect::OpenAi);
    let inputs: Vec<String> = match &body.input {
        Value::String(text) => vec![text.clone()],
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str().map(str::to_owned).ok_or_else(|| {
                    ApiError::invalid(&format!("input[{i}]"), "inputs must be strings (token arrays are not supported)")
                })
            })
            .collect::<Result<_, _>>()
            .map_err(openai)?,
        _ => {
            return Err(openai(
                ApiError::bad_request("invalid field `input`: expected a string or a list of strings")
                    .with_param("input"),
            ));
        }
    };
    if inputs.is_empty() || inputs.len() > MAX_EMBEDDING_INPUTS {
        return Err(openai(ApiError::invalid("input", format!("send 1 to {MAX_EMBEDDING_INPUTS} inputs"))));
    }
    if body.encoding_format.as_deref().is_some_and(|f| f != "float") {
        return Err(openai(ApiError::invalid("encoding_format", "only float is supported")));
    }
    let Some(model) = state.runtime.embedder().map(|e| e.model().to_owned()) else {
        return Err(openai(ApiError::unavailable(
            "no embedding model is loaded; fetch it with `cargo xtask models` and set models_dir",
        )));
    };
    let vectors = state
        .runtime
        .embed(inputs.clone())
        .await
        .map_err(|e| openai(ApiError::internal(e.to_string())))?
        .unwrap_or_default();
    // Word pieces are not counted here; words are a close, honest stand-in for usage.
    let tokens: usize = inputs.iter().map(|t| t.split_whitespace().count()).sum();
    let data: Vec<Value> = vectors
        .into_iter()
        .enumerate()
        .map(|(i, v)| json!({"object": "embedding", "index": i, "embedding": v}))
        .collect();
    Ok(Json(json!({"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})).into_response())
}

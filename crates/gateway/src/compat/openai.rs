//! OpenAI-compatible `POST /v1/chat/completions` (blocking and streaming, tools,
//! `stream_options.include_usage`), `GET /v1/models` and `POST /v1/embeddings`. Wire types —
//! requests, responses, stream chunks and the error body — live here only; handlers return
//! [`OpenAiError`], so every failure answers in OpenAI's shape.

use std::convert::Infallible;

use axum::Extension;
use axum::Json;
use axum::extract::{FromRequest, Request, State};
use axum::response::Response;
use axum::response::sse::{Event as SseEvent, Sse};
use futures_util::StreamExt as _;
use runtime::auth::Principal;
use runtime::llm::{ChatRequest, ChatResponse, FinishReason, Message, StreamEvent, ToolCall, ToolSpec, Usage};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::{Dialect, VendorError, governed, json_text, read_body, response_id, stream_error, unix_now};
use crate::error::ApiError;
use crate::state::AppState;

/// OpenAI's dialect: errors are `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug)]
pub(crate) enum OpenAi {}

/// An error answered in OpenAI's shape.
pub(crate) type OpenAiError = VendorError<OpenAi>;

impl Dialect for OpenAi {
    type Body = ErrorBody;

    fn body(error: ApiError, message: String) -> ErrorBody {
        let kind = match error.status.as_u16() {
            401 => "authentication_error",
            402 => "insufficient_quota",
            403 => "permission_error",
            404 => "not_found_error",
            429 => "rate_limit_error",
            500..=599 => "api_error",
            _ => "invalid_request_error",
        };
        ErrorBody { error: ErrorDetail { message, kind, param: error.param, code: error.code } }
    }
}

/// The OpenAI-compatible routes' error body.
#[derive(Serialize, ToSchema)]
#[schema(as = OpenAiError)]
pub(crate) struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
#[schema(as = OpenAiErrorDetail)]
pub(crate) struct ErrorDetail {
    message: String,
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    kind: &'static str,
    param: Option<String>,
    #[schema(value_type = String)]
    code: &'static str,
}

/// A JSON request body of type `T`; a bad one is refused in OpenAI's shape.
#[derive(Debug)]
pub(crate) struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = OpenAiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        read_body(request, state).await.map(Body)
    }
}

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

/// A `chat.completion`.
#[derive(Serialize, ToSchema)]
pub(crate) struct ChatCompletion {
    id: String,
    #[schema(value_type = String, pattern = "^chat\\.completion$")]
    object: &'static str,
    created: u64,
    /// The model name the upstream answered with.
    model: String,
    choices: Vec<Choice>,
    usage: CompletionUsage,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Choice {
    index: u32,
    message: AssistantMessage,
    /// `stop`, `length`, `tool_calls` or `content_filter`.
    #[schema(value_type = String)]
    finish_reason: &'static str,
    /// Always null: log probabilities are not returned.
    #[schema(value_type = Option<serde_json::Value>)]
    logprobs: Option<Value>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct AssistantMessage {
    #[schema(value_type = String, pattern = "^assistant$")]
    role: &'static str,
    /// Null when the answer is only tool calls.
    content: Option<String>,
    /// Absent when the model called no tool.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    tool_calls: Option<Vec<ToolCallOut>>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ToolCallOut {
    id: String,
    #[serde(rename = "type")]
    #[schema(value_type = FunctionType, inline)]
    kind: &'static str,
    function: FunctionCall,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct CompletionUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
}

impl From<Usage> for CompletionUsage {
    fn from(usage: Usage) -> Self {
        Self {
            prompt_tokens: usage.input_tokens,
            completion_tokens: usage.output_tokens,
            total_tokens: usage.input_tokens + usage.output_tokens,
        }
    }
}

impl ChatCompletion {
    fn new(id: String, response: ChatResponse) -> Self {
        let tool_calls: Vec<ToolCallOut> = response
            .tool_calls
            .into_iter()
            .map(|c| ToolCallOut {
                id: c.id,
                kind: "function",
                function: FunctionCall { name: c.name, arguments: c.arguments.to_string() },
            })
            .collect();
        // An answer that is only tool calls has null content, as OpenAI answers it.
        let content = (tool_calls.is_empty() || !response.content.is_empty()).then_some(response.content);
        Self {
            id,
            object: "chat.completion",
            created: unix_now(),
            model: response.model,
            choices: vec![Choice {
                index: 0,
                message: AssistantMessage {
                    role: "assistant",
                    content,
                    tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
                },
                finish_reason: finish_reason(response.finish_reason),
                logprobs: None,
            }],
            usage: response.usage.into(),
        }
    }
}

/// A `chat.completion.chunk`: one event of a streamed answer.
#[derive(Serialize)]
struct ChatCompletionChunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    /// One choice, or none in the closing usage chunk.
    choices: Vec<ChunkChoice>,
    /// Only in the closing usage chunk (`stream_options.include_usage`).
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<CompletionUsage>,
}

#[derive(Serialize)]
struct ChunkChoice {
    index: u32,
    delta: Delta,
    finish_reason: Option<&'static str>,
    logprobs: Option<Value>,
}

/// What a chunk adds; every field is absent unless it changes.
#[derive(Serialize, Default)]
struct Delta {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<Vec<ToolCallChunk>>,
}

/// A fragment of a tool call: the first carries `id`, `type` and the function's name.
#[derive(Serialize)]
struct ToolCallChunk {
    index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionChunk,
}

#[derive(Serialize)]
struct FunctionChunk {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    arguments: String,
}

/// A failure in the middle of a stream, as an event (the status already went out).
#[derive(Serialize)]
struct StreamError {
    error: StreamErrorDetail,
}

#[derive(Serialize)]
struct StreamErrorDetail {
    message: String,
    #[serde(rename = "type")]
    kind: &'static str,
    code: &'static str,
}

/// Writes a stream's chunks: every chunk repeats the stream's id, creation time and model.
struct Chunks {
    id: String,
    created: u64,
    model: String,
}

impl Chunks {
    fn chunk(&self, choices: Vec<ChunkChoice>, usage: Option<CompletionUsage>) -> ChatCompletionChunk<'_> {
        ChatCompletionChunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices,
            usage,
        }
    }

    fn delta_chunk(&self, delta: Delta, finish: Option<&'static str>) -> ChatCompletionChunk<'_> {
        self.chunk(vec![ChunkChoice { index: 0, delta, finish_reason: finish, logprobs: None }], None)
    }

    fn event(&self, choices: Vec<ChunkChoice>, usage: Option<CompletionUsage>) -> SseEvent {
        SseEvent::default().data(json_text(&self.chunk(choices, usage)))
    }

    fn delta(&self, delta: Delta, finish: Option<&'static str>) -> SseEvent {
        SseEvent::default().data(json_text(&self.delta_chunk(delta, finish)))
    }
}

#[utoipa::path(post, path = "/v1/chat/completions", tag = "gateway", request_body = ChatCompletionRequest,
    responses((status = 200, description = "an OpenAI chat.completion, or with `stream: true` a text/event-stream of chat.completion.chunk objects ending in [DONE]",
               content((ChatCompletion = "application/json"), (crate::schema::SseEvent = "text/event-stream"))),
              (status = 402, description = "budget exhausted"), (status = 404, description = "unknown model"), (status = 429)),
    params(("x-nexus-ledger-ack" = Option<crate::schema::LedgerAck>, Header,
        description = "`durable`: answer only once the call's ledger entry is durable (the response then names it in `x-nexus-ledger-index`); `queued` (or no header): the server's setting, `[ledger] gateway_ack`")),
    security(("bearer" = [])))]
pub(crate) async fn chat_completions(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: axum::http::HeaderMap,
    Body(body): Body<ChatCompletionRequest>,
) -> Result<Response, OpenAiError> {
    let request = neutral(&body)?;
    let caller = super::caller(&principal, &headers)?;
    let id = response_id("chatcmpl-");
    if !body.stream {
        let (response, meta) = state.runtime.gateway_complete(&caller, &body.model, request).await?;
        return Ok(governed(&meta, Json(ChatCompletion::new(id, response))));
    }
    let include_usage = body.stream_options.as_ref().is_some_and(|o| o.include_usage);
    let (stream, meta) = state.runtime.gateway_stream(&caller, &body.model, request).await?;
    let chunks = Chunks { id, created: unix_now(), model: meta.model.clone() };
    let first = chunks.delta(Delta { role: Some("assistant"), content: Some(String::new()), ..Delta::default() }, None);
    let mut usage = None;
    let events = stream.flat_map(move |event| {
        let mut out: Vec<SseEvent> = Vec::new();
        match event {
            Ok(StreamEvent::TextDelta(text)) => {
                out.push(chunks.delta(Delta { content: Some(text), ..Delta::default() }, None));
            }
            Ok(StreamEvent::ToolCallDelta { index, id, name, arguments_json }) => {
                let call = ToolCallChunk {
                    index,
                    kind: id.is_some().then_some("function"),
                    id,
                    function: FunctionChunk { name, arguments: arguments_json },
                };
                out.push(chunks.delta(Delta { tool_calls: Some(vec![call]), ..Delta::default() }, None));
            }
            Ok(StreamEvent::Usage(u)) => usage = Some(u),
            Ok(StreamEvent::Done { finish_reason: reason }) => {
                out.push(chunks.delta(Delta::default(), Some(finish_reason(reason))));
                if include_usage {
                    out.push(chunks.event(Vec::new(), Some(usage.unwrap_or_default().into())));
                }
            }
            Err(error) => {
                let api = stream_error(error);
                let error = StreamError {
                    error: StreamErrorDetail { message: api.message, kind: "api_error", code: api.code },
                };
                out.push(SseEvent::default().data(json_text(&error)));
            }
        }
        futures_util::stream::iter(out.into_iter().map(Ok::<_, Infallible>))
    });
    let done = futures_util::stream::once(async { Ok::<_, Infallible>(SseEvent::default().data("[DONE]")) });
    let body = futures_util::stream::once(async move { Ok::<_, Infallible>(first) }).chain(events).chain(done);
    Ok(governed(&meta, Sse::new(body)))
}

/// An OpenAI model list.
#[derive(Serialize, ToSchema)]
pub(crate) struct ModelList {
    #[schema(value_type = String, pattern = "^list$")]
    object: &'static str,
    data: Vec<Model>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Model {
    id: String,
    #[schema(value_type = String, pattern = "^model$")]
    object: &'static str,
    created: u64,
    owned_by: String,
}

#[utoipa::path(get, path = "/v1/models", tag = "gateway",
    responses((status = 200, body = ModelList, description = "OpenAI model list: the tiers, nexus/auto, and the configured models")), security(("bearer" = [])))]
pub(crate) async fn models(State(state): State<AppState>) -> Json<ModelList> {
    let created = unix_now();
    let data = state
        .runtime
        .gateway_models()
        .into_iter()
        .map(|m| Model { id: m.id, object: "model", created, owned_by: m.owned_by })
        .collect();
    Json(ModelList { object: "list", data })
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

/// An OpenAI embedding list.
#[derive(Serialize, ToSchema)]
pub(crate) struct EmbeddingList {
    #[schema(value_type = String, pattern = "^list$")]
    object: &'static str,
    data: Vec<Embedding>,
    model: String,
    usage: EmbeddingUsage,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Embedding {
    #[schema(value_type = String, pattern = "^embedding$")]
    object: &'static str,
    index: usize,
    embedding: Vec<f32>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct EmbeddingUsage {
    prompt_tokens: usize,
    total_tokens: usize,
}

#[utoipa::path(post, path = "/v1/embeddings", tag = "gateway", request_body = EmbeddingsRequest,
    responses((status = 200, body = EmbeddingList, description = "an OpenAI embedding list"), (status = 503, description = "no embedding model loaded")),
    security(("bearer" = [])))]
pub(crate) async fn embeddings(
    State(state): State<AppState>,
    Body(body): Body<EmbeddingsRequest>,
) -> Result<Json<EmbeddingList>, OpenAiError> {
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
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(ApiError::bad_request("invalid field `input`: expected a string or a list of strings")
                .with_param("input")
                .into());
        }
    };
    if inputs.is_empty() || inputs.len() > MAX_EMBEDDING_INPUTS {
        return Err(ApiError::invalid("input", format!("send 1 to {MAX_EMBEDDING_INPUTS} inputs")).into());
    }
    if body.encoding_format.as_deref().is_some_and(|f| f != "float") {
        return Err(ApiError::invalid("encoding_format", "only float is supported").into());
    }
    let Some(model) = state.runtime.embedder().map(|e| e.model().to_owned()) else {
        return Err(ApiError::unavailable(
            "no embedding model is loaded; fetch it with `cargo xtask models` and set models_dir",
        )
        .into());
    };
    // The model is in-process: when it cannot embed (still loading after the wait, or failing)
    // the service is unavailable, and the reason is the operator's to read in the log.
    let vectors = state
        .runtime
        .embed(inputs.clone())
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "embedding failed");
            ApiError::unavailable(format!("the embedding model cannot answer now: {e}"))
        })?
        .unwrap_or_default();
    // Word pieces are not counted here; words are a close, honest stand-in for usage.
    let tokens: usize = inputs.iter().map(|t| t.split_whitespace().count()).sum();
    let data = vectors
        .into_iter()
        .enumerate()
        .map(|(index, embedding)| Embedding { object: "embedding", index, embedding })
        .collect();
    Ok(Json(EmbeddingList {
        object: "list",
        data,
        model,
        usage: EmbeddingUsage { prompt_tokens: tokens, total_tokens: tokens },
    }))
}

#[cfg(test)]
mod tests {
    use runtime::llm::ChatResponse;
    use serde_json::{Value, json};

    use super::*;

    fn data(chunk: ChatCompletionChunk<'_>) -> Value {
        serde_json::to_value(chunk).expect("json")
    }

    #[test]
    fn chunks_keep_the_wire_shape() {
        let chunks = Chunks { id: "chatcmpl-1".into(), created: 7, model: "m".into() };
        let frame = |choices: Value| json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 7, "model": "m", "choices": choices});
        let choice = |delta: Value, finish: Value| json!([{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}]);
        let first = Delta { role: Some("assistant"), content: Some(String::new()), ..Delta::default() };
        assert_eq!(
            data(chunks.delta_chunk(first, None)),
            frame(choice(json!({"role": "assistant", "content": ""}), Value::Null))
        );
        let text = Delta { content: Some("Hi".into()), ..Delta::default() };
        assert_eq!(data(chunks.delta_chunk(text, None)), frame(choice(json!({"content": "Hi"}), Value::Null)));
        let opening = ToolCallChunk {
            index: 0,
            id: Some("call_1".into()),
            kind: Some("function"),
            function: FunctionChunk { name: Some("f".into()), arguments: String::new() },
        };
        assert_eq!(
            data(chunks.delta_chunk(Delta { tool_calls: Some(vec![opening]), ..Delta::default() }, None)),
            frame(choice(
                json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}]}),
                Value::Null
            ))
        );
        let more = ToolCallChunk {
            index: 0,
            id: None,
            kind: None,
            function: FunctionChunk { name: None, arguments: "{}".into() },
        };
        assert_eq!(
            data(chunks.delta_chunk(Delta { tool_calls: Some(vec![more]), ..Delta::default() }, None)),
            frame(choice(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}), Value::Null))
        );
        assert_eq!(data(chunks.delta_chunk(Delta::default(), Some("stop"))), frame(choice(json!({}), json!("stop"))));
        let usage = Usage { input_tokens: 3, output_tokens: 4 };
        let mut last = frame(json!([]));
        last["usage"] = json!({"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7});
        assert_eq!(data(chunks.chunk(Vec::new(), Some(usage.into()))), last);
    }

    #[test]
    fn a_completion_keeps_the_wire_shape() {
        let response = |content: &str, calls: Vec<ToolCall>| ChatResponse {
            provider: "p".into(),
            model: "m".into(),
            content: content.into(),
            tool_calls: calls,
            usage: Usage { input_tokens: 1, output_tokens: 2 },
            finish_reason: FinishReason::Stop,
        };
        let value = |c: ChatCompletion| {
            let mut v = serde_json::to_value(c).expect("json");
            v["created"] = json!(0);
            v
        };
        let expected = |message: Value| {
            json!({"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                   "choices": [{"index": 0, "message": message, "finish_reason": "stop", "logprobs": null}],
                   "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}})
        };
        assert_eq!(
            value(ChatCompletion::new("x".into(), response("hi", Vec::new()))),
            expected(json!({"role": "assistant", "content": "hi"}))
        );
        let call = ToolCall { id: "c".into(), name: "f".into(), arguments: json!({"a": 1}) };
        assert_eq!(
            value(ChatCompletion::new("x".into(), response("", vec![call]))),
            expected(json!({"role": "assistant", "content": null,
                            "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]}))
        );
    }

    #[test]
    fn errors_keep_the_wire_shape() {
        let error = ApiError::invalid("model", "no").with_code("model_not_priced");
        assert_eq!(
            serde_json::to_value(OpenAi::body(error, "no".into())).expect("json"),
            json!({"error": {"message": "no", "type": "invalid_request_error", "param": "model", "code": "model_not_priced"}})
        );
        let error = ApiError::new(axum::http::StatusCode::PAYMENT_REQUIRED, "budget_exhausted", "spent");
        assert_eq!(
            serde_json::to_value(OpenAi::body(error, "spent".into())).expect("json"),
            json!({"error": {"message": "spent", "type": "insufficient_quota", "param": null, "code": "budget_exhausted"}})
        );
        let stream =
            StreamError { error: StreamErrorDetail { message: "m".into(), kind: "api_error", code: "upstream_error" } };
        assert_eq!(
            serde_json::to_value(stream).expect("json"),
            json!({"error": {"message": "m", "type": "api_error", "code": "upstream_error"}})
        );
    }
}

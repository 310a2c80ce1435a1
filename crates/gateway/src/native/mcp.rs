//! `/mcp`: Nexus as an MCP server for other agents, over the streamable HTTP transport in its
//! stateless form — every `POST` carries one JSON-RPC message (batches, which the protocol
//! dropped in 2025-06-18, are refused) and is answered with JSON; no session is kept, so any replica answers
//! any request. A caller authenticates with a Nexus API key and acts within its tenant, exactly
//! as through the REST API.
//!
//! Tools offered: `knowledge_search` (the tenant's knowledge base), `run_task` (a task run
//! through the engine: routed, gated, approved when needed, sealed), `chain_status` (a run's
//! state and seals) and `ledger_proof` (an entry's inclusion-proof bundle, verifiable offline
//! with `nexus verify --bundle`). A tool's failure (a bad argument, an unknown chain) is a
//! result with `isError`, naming the argument, as the protocol asks; only protocol mistakes are
//! JSON-RPC errors.

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::ChainId;
use mcp::wire::{self, CallToolResult, Content, Message, Request, RpcError, codes};
use runtime::agent::RunRequest;
use runtime::auth::Principal;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::json::RawBody;
use crate::native::knowledge::namespace_of;
use crate::native::shapes::execute_response;
use crate::state::AppState;

/// What a caller learns at `initialize`.
const INSTRUCTIONS: &str = "Nexus runs tasks through a notarized engine: each action is gated, \
approved by a human when needed, and sealed in a tamper-evident ledger. Search the tenant's \
knowledge with knowledge_search, run a task with run_task, follow it with chain_status, and \
fetch an offline-verifiable proof of any ledger entry with ledger_proof.";

#[utoipa::path(post, path = "/mcp", tag = "mcp",
    request_body(content = Object, description = "one JSON-RPC 2.0 message of the Model Context Protocol (initialize, ping, tools/list, tools/call, notifications)"),
    responses(
        (status = 200, description = "the JSON-RPC response", body = Object),
        (status = 202, description = "a notification or response was accepted"),
        (status = 400, description = "not JSON, not one JSON-RPC message (batches are not accepted), or an unsupported MCP-Protocol-Version: a JSON-RPC error response", body = Object),
    ),
    security(("bearer" = [])))]
pub(crate) async fn post_mcp(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    RawBody(bytes): RawBody,
) -> Response {
    if let Some(version) = headers.get("mcp-protocol-version").and_then(|v| v.to_str().ok())
        && !wire::PROTOCOL_VERSIONS.contains(&version)
    {
        let message =
            format!("unsupported MCP-Protocol-Version {version:?}; supported: {}", wire::PROTOCOL_VERSIONS.join(", "));
        return rpc_error(StatusCode::BAD_REQUEST, Value::Null, codes::INVALID_REQUEST, message);
    }
    let value: Value = match serde_json::from_slice(&bytes) {
        Ok(value) => value,
        Err(e) => return rpc_error(StatusCode::BAD_REQUEST, Value::Null, codes::PARSE_ERROR, format!("not JSON: {e}")),
    };
    let server = Server { state, principal };
    if value.is_array() {
        let message = "batches are not accepted: send one JSON-RPC message per request".to_owned();
        return rpc_error(StatusCode::BAD_REQUEST, Value::Null, codes::INVALID_REQUEST, message);
    }
    match Message::from_value(value) {
        Some(Message::Request(request)) => match server.handle(request).await {
            Some(answer) => Json(answer).into_response(),
            None => StatusCode::ACCEPTED.into_response(),
        },
        // We never ask the client anything, so a response is simply taken.
        Some(Message::Response(_)) => StatusCode::ACCEPTED.into_response(),
        None => (StatusCode::BAD_REQUEST, Json(invalid_message())).into_response(),
    }
}

#[utoipa::path(get, path = "/mcp", tag = "mcp",
    responses((status = 405, description = "this server is stateless: it opens no event stream; POST each message")),
    security(("bearer" = [])))]
pub(crate) async fn get_mcp() -> Response {
    let error = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this MCP server is stateless and opens no event stream: POST each message",
    );
    ([(header::ALLOW, "POST")], error).into_response()
}

fn invalid_message() -> Value {
    json!({"jsonrpc": "2.0", "id": null, "error": {"code": codes::INVALID_REQUEST, "message": "not a JSON-RPC 2.0 message"}})
}

fn rpc_error(status: StatusCode, id: Value, code: i64, message: String) -> Response {
    (status, Json(wire::Response::error(id, RpcError::new(code, message)))).into_response()
}

struct Server {
    state: AppState,
    principal: Principal,
}

impl Server {
    /// Answers a request; `None` for a notification.
    async fn handle(&self, request: Request) -> Option<Value> {
        let Request { id, method, params, .. } = request;
        let id = id?;
        let outcome = match method.as_str() {
            "initialize" => Ok(initialize(params.as_ref())),
            "ping" => Ok(json!({})),
            "tools/list" => Ok(json!({"tools": tools()})),
            "tools/call" => self.call(params).await,
            other => Err(RpcError::new(codes::METHOD_NOT_FOUND, format!("method {other:?} is not offered"))),
        };
        let response = match outcome {
            Ok(result) => wire::Response::ok(id, result),
            Err(error) => wire::Response::error(id, error),
        };
        serde_json::to_value(response).ok()
    }

    async fn call(&self, params: Option<Value>) -> Result<Value, RpcError> {
        let params = params.unwrap_or(Value::Null);
        let Some(name) = params.get("name").and_then(Value::as_str) else {
            return Err(RpcError::new(codes::INVALID_PARAMS, "tools/call needs params.name"));
        };
        let arguments = params.get("arguments").cloned().unwrap_or_else(|| json!({}));
        if !arguments.is_object() {
            return Err(RpcError::new(codes::INVALID_PARAMS, "params.arguments must be an object"));
        }
        let outcome = match name {
            "knowledge_search" => self.knowledge_search(&arguments).await,
            "run_task" => self.run_task(&arguments).await,
            "chain_status" => self.chain_status(&arguments).await,
            "ledger_proof" => self.ledger_proof(&arguments).await,
            other => return Err(RpcError::new(codes::INVALID_PARAMS, format!("no tool named {other:?}"))),
        };
        let result = match outcome {
            Ok(structured) => CallToolResult {
                content: vec![Content::text(serde_json::to_string_pretty(&structured).unwrap_or_default())],
                structured_content: Some(structured),
                is_error: Some(false),
            },
            Err(message) => {
                CallToolResult { content: vec![Content::text(message)], structured_content: None, is_error: Some(true) }
            }
        };
        serde_json::to_value(result).map_err(|e| RpcError::new(codes::INTERNAL_ERROR, e.to_string()))
    }

    async fn knowledge_search(&self, arguments: &Value) -> Result<Value, String> {
        let query = text(arguments, "query")?;
        let namespace = namespace_of(arguments.get("namespace").and_then(Value::as_str))
            .map_err(|_| invalid("namespace", "1-64 letters, digits, '-', '_' or '.'"))?;
        let limit = match arguments.get("limit") {
            None | Some(Value::Null) => 5,
            Some(value) => match value.as_u64() {
                Some(n @ 1..=50) => n as usize,
                _ => return Err(invalid("limit", "an integer from 1 to 50")),
            },
        };
        let found = self
            .state
            .runtime
            .knowledge()
            .search(&self.principal.tenant, &namespace, &query, limit, self.principal.max_access())
            .await
            .map_err(|e| e.to_string())?;
        let hits: Vec<Value> = found
            .hits
            .into_iter()
            .map(|h| json!({"document_id": h.document_id, "source": h.source, "text": h.text, "score": h.score}))
            .collect();
        Ok(
            json!({"namespace": namespace, "mode": format!("{:?}", found.mode).to_lowercase(), "confidence": found.confidence, "hits": hits}),
        )
    }

    async fn run_task(&self, arguments: &Value) -> Result<Value, String> {
        let task = text(arguments, "task")?;
        let persona = match arguments.get("persona") {
            None | Some(Value::Null) => None,
            Some(Value::String(p)) => Some(p.clone()),
            Some(_) => return Err(invalid("persona", "a persona's name")),
        };
        let request = RunRequest {
            tenant: self.principal.tenant.clone(),
            task,
            persona,
            qa_spec: None,
            user: Some(self.principal.subject()),
            chain_id: None,
            tier: None,
        };
        let runtime = &self.state.runtime;
        let run = runtime.start_run(request).await.map_err(|e| e.to_string())?;
        let report = run.finished().await.map_err(|e| e.to_string())?;
        let records = runtime.ledger().chain_records(&report.tenant, &report.chain_id).await.unwrap_or_default();
        serde_json::to_value(execute_response(&report, &records, 0)).map_err(|e| e.to_string())
    }

    async fn chain_status(&self, arguments: &Value) -> Result<Value, String> {
        let id = text(arguments, "chain_id")?;
        let chain = ChainId::parse(&id).map_err(|_| invalid("chain_id", "a chain id as run_task returns it"))?;
        let runtime = &self.state.runtime;
        let report = runtime.run_report(&self.principal.tenant, &chain).await.map_err(|e| e.to_string())?;
        let records =
            runtime.ledger().chain_records(&self.principal.tenant, &chain).await.map_err(|e| e.to_string())?;
        serde_json::to_value(execute_response(&report, &records, 0)).map_err(|e| e.to_string())
    }

    async fn ledger_proof(&self, arguments: &Value) -> Result<Value, String> {
        let Some(index) = arguments.get("index").and_then(Value::as_u64) else {
            return Err(invalid("index", "the entry's position in the tenant's ledger, from 0"));
        };
        let bundle =
            self.state.runtime.ledger().proof_bundle(&self.principal.tenant, index).await.map_err(|e| e.to_string())?;
        serde_json::from_str(&bundle.to_json()).map_err(|e| e.to_string())
    }
}

fn invalid(argument: &str, expected: &str) -> String {
    format!("invalid argument {argument}: expected {expected}")
}

/// A required, non-blank text argument.
fn text(arguments: &Value, name: &str) -> Result<String, String> {
    match arguments.get(name).and_then(Value::as_str) {
        Some(value) if !value.trim().is_empty() => Ok(value.to_owned()),
        _ => Err(invalid(name, "a non-empty string")),
    }
}

/// The revision asked for when this server speaks it, else the newest it speaks.
fn initialize(params: Option<&Value>) -> Value {
    let asked = params.and_then(|p| p.get("protocolVersion")).and_then(Value::as_str);
    let version = asked.filter(|v| wire::PROTOCOL_VERSIONS.contains(v)).unwrap_or(wire::PROTOCOL_VERSION);
    json!({
        "protocolVersion": version,
        "capabilities": {"tools": {"listChanged": false}},
        "serverInfo": {"name": "nexus", "title": "Nexus", "version": env!("CARGO_PKG_VERSION")},
        "instructions": INSTRUCTIONS,
    })
}

fn tools() -> Vec<Value> {
    vec![
        json!({
            "name": "knowledge_search",
            "title": "Search the knowledge base",
            "description": "Searches the tenant's knowledge base (hybrid: keywords and meaning) and returns the best passages with their source and score.",
            "inputSchema": {"type": "object", "properties": {
                "query": {"type": "string", "description": "What to look for."},
                "namespace": {"type": "string", "description": "The knowledge namespace (default: default)."},
                "limit": {"type": "integer", "minimum": 1, "maximum": 50, "description": "How many passages (default 5)."}
            }, "required": ["query"]},
            "annotations": {"readOnlyHint": true, "openWorldHint": false},
        }),
        json!({
            "name": "run_task",
            "title": "Run a task",
            "description": "Runs a task through Nexus's engine: planned, each action gated and sealed in the ledger, held for a human's approval when its risk asks for it. Returns the run's status, answer and seals.",
            "inputSchema": {"type": "object", "properties": {
                "task": {"type": "string", "description": "What to do, in plain words."},
                "persona": {"type": "string", "description": "The persona to run it as (default: chosen by the plan)."}
            }, "required": ["task"]},
            "annotations": {"readOnlyHint": false, "destructiveHint": true, "openWorldHint": true},
        }),
        json!({
            "name": "chain_status",
            "title": "A run's status",
            "description": "A run's status, answer and seals (with each gate's verdict), by the chain id run_task returned.",
            "inputSchema": {"type": "object", "properties": {
                "chain_id": {"type": "string", "description": "The run's chain id."}
            }, "required": ["chain_id"]},
            "annotations": {"readOnlyHint": true, "openWorldHint": false},
        }),
        json!({
            "name": "ledger_proof",
            "title": "Proof of a ledger entry",
            "description": "An inclusion-proof bundle for one entry of the tenant's ledger: the entry, its Merkle path and the signed checkpoint, verifiable offline with `nexus verify --bundle`.",
            "inputSchema": {"type": "object", "properties": {
                "index": {"type": "integer", "minimum": 0, "description": "The entry's position in the ledger."}
            }, "required": ["index"]},
            "annotations": {"readOnlyHint": true, "openWorldHint": false},
        }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handshake_agrees_on_a_revision_both_speak() {
        assert_eq!(initialize(Some(&json!({"protocolVersion": "2025-03-26"})))["protocolVersion"], "2025-03-26");
        assert_eq!(
            initialize(Some(&json!({"protocolVersion": "1999-01-01"})))["protocolVersion"],
            wire::PROTOCOL_VERSION
        );
        assert_eq!(initialize(None)["capabilities"]["tools"]["listChanged"], false);
    }

    #[test]
    fn every_tool_reads_as_an_mcp_tool() {
        for tool in tools() {
            let parsed: wire::Tool = serde_json::from_value(tool.clone()).expect("an MCP tool");
            assert!(parsed.description.is_some() && parsed.annotations.is_some(), "{tool}");
            assert_eq!(parsed.input_schema["type"], "object");
        }
    }
}

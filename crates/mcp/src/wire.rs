//! The MCP wire format: JSON-RPC 2.0 messages and the few MCP shapes Nexus reads and writes
//! (the `initialize` handshake, tools, their annotations and call results). Only what both the
//! client and the `/mcp` server need lives here; everything else stays a `serde_json::Value`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The protocol revision Nexus offers first (the newest with the `initialize` handshake).
pub const PROTOCOL_VERSION: &str = "2025-11-25";

/// Every handshake revision Nexus speaks, oldest first. A peer asking for another gets
/// [`PROTOCOL_VERSION`] back and decides for itself.
pub const PROTOCOL_VERSIONS: &[&str] = &["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

/// JSON-RPC error codes.
pub mod codes {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const INTERNAL_ERROR: i64 = -32603;
}

/// A JSON-RPC request (with an `id`) or notification (without).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub jsonrpc: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
    pub method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Value>,
}

impl Request {
    pub fn new(id: Option<Value>, method: &str, params: Option<Value>) -> Self {
        Self { jsonrpc: "2.0".to_owned(), id, method: method.to_owned(), params }
    }
}

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), data: None }
    }
}

/// A JSON-RPC response: `result` or `error`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub jsonrpc: String,
    pub id: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RpcError>,
}

impl Response {
    pub fn ok(id: Value, result: Value) -> Self {
        Self { jsonrpc: "2.0".to_owned(), id, result: Some(result), error: None }
    }

    pub fn error(id: Value, error: RpcError) -> Self {
        Self { jsonrpc: "2.0".to_owned(), id, result: None, error: Some(error) }
    }
}

/// Any message a peer may send: told apart by which fields it has.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Request(Request),
    Response(Response),
}

impl Message {
    /// Reads one message; `None` when the value is no JSON-RPC 2.0 message at all.
    pub fn from_value(value: Value) -> Option<Message> {
        let object = value.as_object()?;
        if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
            return None;
        }
        if object.contains_key("method") {
            serde_json::from_value(value).ok().map(Message::Request)
        } else if object.contains_key("result") || object.contains_key("error") {
            serde_json::from_value(value).ok().map(Message::Response)
        } else {
            None
        }
    }
}

/// What a tool says about itself. All hints are hints: an absent one takes the protocol's
/// cautious default (not read-only, destructive, open world).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolAnnotations {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_hint: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destructive_hint: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotent_hint: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_world_hint: Option<bool>,
}

/// A tool as `tools/list` describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tool {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default = "empty_object_schema")]
    pub input_schema: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<ToolAnnotations>,
}

fn empty_object_schema() -> Value {
    serde_json::json!({"type": "object"})
}

/// One page of `tools/list`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListToolsResult {
    #[serde(default)]
    pub tools: Vec<Tool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// One piece of a tool's answer. Nexus reads text; other kinds are kept as they came.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text {
        #[serde(rename = "type")]
        kind: TextKind,
        text: String,
    },
    Other(Value),
}

/// The `"text"` tag of a text content block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TextKind {
    Text,
}

impl Content {
    pub fn text(text: impl Into<String>) -> Self {
        Content::Text { kind: TextKind::Text, text: text.into() }
    }
}

/// What `tools/call` answers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallToolResult {
    #[serde(default)]
    pub content: Vec<Content>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub structured_content: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_error: Option<bool>,
}

impl CallToolResult {
    /// The text blocks joined by newlines.
    pub fn text(&self) -> String {
        let texts: Vec<&str> = self
            .content
            .iter()
            .filter_map(|c| match c {
                Content::Text { text, .. } => Some(text.as_str()),
                Content::Other(_) => None,
            })
            .collect();
        texts.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn messages_are_told_apart_by_their_fields() {
        let request = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
        assert!(matches!(Message::from_value(request), Some(Message::Request(r)) if r.id == Some(json!(1))));
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        assert!(matches!(Message::from_value(note), Some(Message::Request(r)) if r.id.is_none()));
        let answer = json!({"jsonrpc": "2.0", "id": "a", "error": {"code": -32601, "message": "no"}});
        assert!(matches!(Message::from_value(answer), Some(Message::Response(r)) if r.error.is_some()));
        assert_eq!(Message::from_value(json!({"jsonrpc": "1.0", "id": 1, "method": "x"})), None);
        assert_eq!(Message::from_value(json!([1, 2])), None);
    }

    #[test]
    fn tools_and_results_read_the_protocols_shapes() {
        let listed: ListToolsResult = serde_json::from_value(json!({"tools": [{
            "name": "get_current_time", "description": "Now", "inputSchema": {"type": "object"},
            "annotations": {"readOnlyHint": true}
        }], "nextCursor": "2"}))
        .unwrap();
        assert_eq!(listed.tools[0].annotations.as_ref().and_then(|a| a.read_only_hint), Some(true));
        assert_eq!(listed.next_cursor.as_deref(), Some("2"));
        let result: CallToolResult = serde_json::from_value(json!({"content": [
            {"type": "text", "text": "one"}, {"type": "image", "data": "AA==", "mimeType": "image/png"},
            {"type": "text", "text": "two"}
        ], "isError": false}))
        .unwrap();
        assert_eq!(result.text(), "one\ntwo");
        assert_eq!(serde_json::to_value(Content::text("hi")).unwrap(), json!({"type": "text", "text": "hi"}));
    }
}

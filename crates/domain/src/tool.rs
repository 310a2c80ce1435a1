//! Tool descriptions as the engine sees them, plus how a tool's arguments name the resources it
//! touches, so gates judge the actual call.

use serde::{Deserialize, Serialize};

use crate::persona::RiskLevel;

/// What kind of resource an argument names. The engine turns each into a scoped resource
/// string (`file:read:/workspace/a.txt`, `web:example.com`, …) from the argument's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    /// A path the tool reads, relative to the tenant workspace.
    FileRead,
    /// A path the tool writes, relative to the tenant workspace.
    FileWrite,
    /// A URL the tool fetches.
    Url,
    /// An email address the tool sends to (a string or a list of strings).
    Email,
    /// A knowledge namespace the tool searches.
    KnowledgeNamespace,
    /// A web search query (resource: the search backend).
    WebSearch,
    /// Data handed to the tool inline.
    Data,
}

/// One argument that names a resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceArg {
    pub param: String,
    pub kind: ResourceKind,
    /// The value assumed when the argument is absent (e.g. namespace `default`).
    pub default: Option<String>,
    /// An optional argument names no resource when absent (e.g. an email's `cc`); a required
    /// one without a default is an error when absent.
    #[serde(default)]
    pub optional: bool,
}

/// A tool's registration record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDefinition {
    pub name: String,
    /// What it does; shown to the model.
    pub description: String,
    /// JSON Schema of the parameters.
    pub parameters: serde_json::Value,
    pub risk_level: RiskLevel,
    /// The resources it touches, as a pattern (informative).
    pub resource_pattern: String,
    pub resource_args: Vec<ResourceArg>,
    pub timeout_seconds: u32,
    /// Needs human approval before it runs.
    pub requires_approval: bool,
    /// Changes state outside Nexus (sends, writes, posts).
    pub state_changing: bool,
    /// What it returns comes from outside the tenant's control (the web, other people's
    /// messages, third-party servers): a run that has read it is tainted, and what such a run
    /// proposes to remember is marked untrusted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub untrusted_output: bool,
}

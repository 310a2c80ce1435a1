//! Plugins as stored: which optional capabilities an administrator switched on, the MCP servers
//! added by hand (how to reach each one), where each plugin's lifecycle stands, and the tool
//! definitions an administrator approved (pinned by hash, so a server that later changes what
//! its tools say is caught).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Timestamp, UnknownValue};

/// Where a plugin's lifecycle stands.
///
/// `available` (installed, not configured) → `configured` (its settings are complete, not
/// switched on) → `active` (switched on and healthy) → `error` (switched on, failing); and
/// `disabled` (switched off by an administrator, or because a tool changed after approval).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PluginState {
    Available,
    Configured,
    Active,
    Error,
    Disabled,
}

impl PluginState {
    pub const ALL: [PluginState; 5] = [
        PluginState::Available,
        PluginState::Configured,
        PluginState::Active,
        PluginState::Error,
        PluginState::Disabled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PluginState::Available => "available",
            PluginState::Configured => "configured",
            PluginState::Active => "active",
            PluginState::Error => "error",
            PluginState::Disabled => "disabled",
        }
    }
}

impl std::fmt::Display for PluginState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for PluginState {
    type Err = UnknownValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PluginState::ALL.into_iter().find(|state| state.as_str() == s).ok_or_else(|| UnknownValue {
            kind: "plugin state",
            value: s.to_owned(),
            expected: PluginState::ALL.iter().map(|state| state.as_str()).collect(),
        })
    }
}

/// How to reach an MCP server. Values of `env` and `headers` are stored sealed (they often hold
/// tokens); a stdio server gets only the environment named here, nothing inherited but `PATH`,
/// `HOME` and the locale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "transport", rename_all = "snake_case", deny_unknown_fields)]
pub enum McpServerSpec {
    /// A local process speaking newline-delimited JSON-RPC on its standard input and output.
    Stdio {
        command: String,
        #[serde(default)]
        args: Vec<String>,
        #[serde(default)]
        env: BTreeMap<String, String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cwd: Option<String>,
    },
    /// A server at a URL speaking the streamable HTTP transport.
    Http {
        url: String,
        #[serde(default)]
        headers: BTreeMap<String, String>,
    },
}

/// A tool definition as an administrator approved it: what the model was shown, and its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinnedTool {
    /// The tool's name on its server.
    pub name: String,
    /// SHA-256 (hex) of the canonical JSON of its name, description, input schema and
    /// annotations.
    pub digest: String,
    /// The description approved, kept so a changed one can be shown beside it.
    pub description: String,
}

/// What is stored of one plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginRecord {
    /// The plugin's name (`weather`, or the name given to an MCP server).
    pub name: String,
    /// How to reach it, for an MCP server; `None` for a built-in plugin.
    pub server: Option<McpServerSpec>,
    /// Whether an administrator switched it on.
    pub enabled: bool,
    /// Where its lifecycle stood when last recorded, and why.
    pub state: PluginState,
    pub reason: String,
    /// The tool definitions approved when it was last enabled or re-approved.
    pub pins: Vec<PinnedTool>,
    /// Moves by one with every write (compare-and-set).
    pub revision: i64,
    pub updated_at: Timestamp,
    /// Who changed it last (`user:<id>`, `cli`, `system`).
    pub updated_by: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_spell_themselves_and_refuse_others() {
        for state in PluginState::ALL {
            assert_eq!(state.as_str().parse::<PluginState>(), Ok(state));
        }
        let error = "running".parse::<PluginState>().unwrap_err();
        assert!(error.to_string().contains("available, configured, active, error, disabled"), "{error}");
    }

    #[test]
    fn a_server_spec_names_its_transport_and_refuses_unknown_fields() {
        let spec: McpServerSpec = serde_json::from_str(
            r#"{"transport":"stdio","command":"mcp-server-time","args":["--local-timezone","UTC"]}"#,
        )
        .unwrap();
        assert!(
            matches!(&spec, McpServerSpec::Stdio { command, args, .. } if command == "mcp-server-time" && args.len() == 2)
        );
        assert!(serde_json::from_str::<McpServerSpec>(r#"{"transport":"http","url":"http://x","cmd":"y"}"#).is_err());
        assert!(serde_json::from_str::<McpServerSpec>(r#"{"transport":"ws","url":"ws://x"}"#).is_err());
    }
}

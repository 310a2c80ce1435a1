//! The plugins this binary knows: the built-in ones (the optional tools, grouped with the
//! settings they read) and the connector that reaches third-party MCP servers through the
//! `mcp` crate's client.

use std::sync::Arc;

use async_trait::async_trait;
use domain::channel::Channel;
use domain::plugin::{McpServerSpec, PinnedTool};
use mcp::{ClientOptions, McpClient, McpTool};
use runtime::plugins::{McpConnector, McpSession, PluginManifest, Plugins};
use serde_json::Value;
use tools::Tool;

fn manifest(name: &str, description: &str, settings: &[&str], tools: &[&str]) -> PluginManifest {
    PluginManifest {
        name: name.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        description: description.to_owned(),
        settings: settings.iter().map(|s| (*s).to_owned()).collect(),
        tools: tools.iter().map(|s| (*s).to_owned()).collect(),
        jobs: Vec::new(),
        channel: None,
    }
}

/// A chat channel as a plugin: its settings are those under `channels.<name>.`.
fn channel(channel: Channel, description: &str) -> PluginManifest {
    let prefix = format!("channels.{}.", channel.as_str());
    let settings: Vec<&str> =
        crate::settings::REGISTRY.all().iter().map(|s| s.key).filter(|k| k.starts_with(&prefix)).collect();
    PluginManifest { channel: Some(channel), ..manifest(channel.as_str(), description, &settings, &[]) }
}

/// The built-in plugins.
pub fn builtins() -> Vec<PluginManifest> {
    vec![
        manifest(
            "weather",
            "Current weather and forecasts for a place (Open-Meteo or a compatible service).",
            &["tools.weather_base_url"],
            &["weather"],
        ),
        manifest(
            "web_search",
            "Searches the web through a SearXNG instance or the Brave Search API.",
            &["tools.searxng_url", "tools.brave_api_key"],
            &["web_search"],
        ),
        manifest(
            "email",
            "Sends email through an SMTP server.",
            &[
                "tools.smtp.host",
                "tools.smtp.port",
                "tools.smtp.username",
                "tools.smtp.password",
                "tools.smtp.from",
                "tools.smtp.tls",
            ],
            &["send_email"],
        ),
        channel(Channel::Telegram, "The Telegram bot: chats, commands, approvals and broadcasts over the Bot API."),
        channel(Channel::Discord, "The Discord bot: a moderated community over the Gateway and slash commands."),
    ]
}

/// This process's plugins: the built-in ones and MCP servers reached with the `mcp` client.
pub fn plugins() -> Arc<Plugins> {
    Plugins::new(builtins(), Some(Arc::new(Connector)))
}

struct Connector;

#[async_trait]
impl McpConnector for Connector {
    async fn connect(&self, plugin: &str, server: &McpServerSpec) -> Result<Arc<dyn McpSession>, String> {
        let client = McpClient::connect(server, &ClientOptions::default()).await.map_err(|e| e.to_string())?;
        Ok(Arc::new(Session { plugin: plugin.to_owned(), client: Arc::new(client) }))
    }
}

struct Session {
    plugin: String,
    client: Arc<McpClient>,
}

#[async_trait]
impl McpSession for Session {
    async fn tools(&self) -> Result<Vec<(Arc<dyn Tool>, PinnedTool)>, String> {
        let listed = self.client.list_tools().await.map_err(|e| e.to_string())?;
        let mut mounted: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
        let mut tools = Vec::with_capacity(listed.len());
        for remote in listed {
            let pin = mcp::pin_of(&remote);
            let tool = McpTool::new(&self.plugin, remote, self.client.clone());
            let name = tool.definition().name;
            // Two tools whose names clean up to the same Nexus name would be indistinguishable.
            if let Some(first) = mounted.insert(name.clone(), pin.name.clone()) {
                return Err(format!("tools {first:?} and {:?} would both be named {name}", pin.name));
            }
            tools.push((Arc::new(tool) as Arc<dyn Tool>, pin));
        }
        Ok(tools)
    }

    fn server_info(&self) -> Value {
        self.client.server_info().clone()
    }

    async fn close(&self) {
        self.client.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoKnowledge;

    #[async_trait]
    impl tools::KnowledgeIndex for NoKnowledge {
        async fn search(
            &self,
            _: &domain::TenantId,
            _: &str,
            _: &str,
            _: usize,
        ) -> Result<Vec<tools::KnowledgeHit>, String> {
            Ok(Vec::new())
        }
    }

    #[test]
    fn every_built_in_plugin_names_real_settings_and_tools() {
        let registry = crate::settings::REGISTRY;
        let tools = tools::builtins(&tools::BuiltinSettings::default(), Arc::new(NoKnowledge));
        for plugin in builtins() {
            for setting in &plugin.settings {
                assert!(registry.get(setting).is_some(), "{}: no setting {setting}", plugin.name);
            }
            for tool in &plugin.tools {
                assert!(tools.builtin(tool).is_some(), "{}: no tool {tool}", plugin.name);
            }
        }
    }
}

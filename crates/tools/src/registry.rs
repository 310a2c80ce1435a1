//! The tool registry: tools by name, and the subset a persona may see. Besides the built-in
//! tools it may read a [`ToolSource`] — the plugins — for tools mounted while the server runs
//! (an MCP server's) and for built-in tools switched off with their plugin.

use std::collections::BTreeMap;
use std::sync::Arc;

use domain::TenantId;
use domain::persona::PersonaContract;
use domain::tool::ToolDefinition;

use crate::{Availability, Tool};

/// Tools that come and go while the server runs.
pub trait ToolSource: Send + Sync {
    /// The tools mounted now (those of active MCP servers).
    fn mounted(&self) -> Vec<Arc<dyn Tool>>;
    /// Why a tool may not run now (its plugin is disabled or failing), if it may not.
    fn switched_off(&self, tool: &str) -> Option<String>;
    /// Whether a tenant may use a tool (a third-party server's tools are the operator's).
    fn allowed(&self, _tool: &str, _tenant: &TenantId) -> bool {
        true
    }
}

#[derive(Clone, Default)]
pub struct Registry {
    tools: BTreeMap<String, Arc<dyn Tool>>,
    source: Option<Arc<dyn ToolSource>>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads mounted and switched-off tools from `source` from now on.
    pub fn with_source(mut self, source: Arc<dyn ToolSource>) -> Self {
        self.source = Some(source);
        self
    }

    /// Adds a tool, replacing one of the same name.
    pub fn register(&mut self, tool: Arc<dyn Tool>) {
        self.tools.insert(tool.definition().name, tool);
    }

    /// A tool that may run now, by name.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Tool>> {
        if self.switched_off(name).is_some() {
            return None;
        }
        self.tools.get(name).cloned().or_else(|| self.mounted().into_iter().find(|t| t.definition().name == name))
    }

    /// A built-in tool by name, whatever its plugin's state.
    pub fn builtin(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        self.tools.get(name)
    }

    /// Why a tool may not run now because of its plugin, if it may not.
    pub fn switched_off(&self, name: &str) -> Option<String> {
        self.source.as_ref().and_then(|s| s.switched_off(name))
    }

    fn mounted(&self) -> Vec<Arc<dyn Tool>> {
        self.source.as_ref().map(|s| s.mounted()).unwrap_or_default()
    }

    /// Every tool with its availability, by name (a tool switched off with its plugin is
    /// unavailable, saying why).
    pub fn all(&self) -> Vec<(ToolDefinition, Availability)> {
        let mut all: Vec<(ToolDefinition, Availability)> = self
            .tools
            .values()
            .map(|t| match self.switched_off(&t.definition().name) {
                Some(reason) => (t.definition(), Availability::Unconfigured { missing: reason }),
                None => (t.definition(), t.availability()),
            })
            .collect();
        all.extend(self.mounted().iter().map(|t| (t.definition(), t.availability())));
        all.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        all
    }

    /// The definitions of the tools that may run now.
    pub fn definitions(&self) -> Vec<ToolDefinition> {
        self.all().into_iter().filter(|(_, a)| *a == Availability::Available).map(|(d, _)| d).collect()
    }

    /// Whether `tenant` may use the tool at all.
    pub fn allowed(&self, name: &str, tenant: &TenantId) -> bool {
        self.source.as_ref().is_none_or(|s| s.allowed(name, tenant))
    }

    /// A tool `tenant` may run now, by name.
    pub fn get_for(&self, tenant: &TenantId, name: &str) -> Option<Arc<dyn Tool>> {
        self.get(name).filter(|_| self.allowed(name, tenant))
    }

    /// [`Self::all`], of the tools `tenant` may use.
    pub fn all_for(&self, tenant: &TenantId) -> Vec<(ToolDefinition, Availability)> {
        self.all().into_iter().filter(|(d, _)| self.allowed(&d.name, tenant)).collect()
    }

    /// [`Self::definitions`], of the tools `tenant` may use.
    pub fn definitions_for(&self, tenant: &TenantId) -> Vec<ToolDefinition> {
        self.definitions().into_iter().filter(|d| self.allowed(&d.name, tenant)).collect()
    }

    /// The available tools a persona may use: a persona only ever sees its allowed tools.
    pub fn for_persona(&self, persona: &PersonaContract) -> Vec<ToolDefinition> {
        self.definitions().into_iter().filter(|d| persona.allowed_tools.contains(&d.name)).collect()
    }
}

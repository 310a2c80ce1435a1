//! The tool registry: tools by name, and the subset a persona may see.

use std::collections::BTreeMap;
use std::sync::Arc;

use domain::persona::PersonaContract;
use domain::tool::ToolDefinition;

use crate::{Availability, Tool};

#[derive(Clone, Default)]
pub struct Registry {
    tools: BTreeMap<String, Arc<dyn Tool>>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a tool, replacing one of the same name.
    pub fn register(&mut self, tool: Arc<dyn Tool>) {
        self.tools.insert(tool.definition().name, tool);
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        self.tools.get(name)
    }

    /// Every tool with its availability, by name.
    pub fn all(&self) -> Vec<(ToolDefinition, Availability)> {
        self.tools.values().map(|t| (t.definition(), t.availability())).collect()
    }

    /// The definitions of available tools.
    pub fn definitions(&self) -> Vec<ToolDefinition> {
        self.tools.values().filter(|t| t.availability() == Availability::Available).map(|t| t.definition()).collect()
    }

    /// The available tools a persona may use: a persona only ever sees its allowed tools.
    pub fn for_persona(&self, persona: &PersonaContract) -> Vec<ToolDefinition> {
        self.definitions().into_iter().filter(|d| persona.allowed_tools.contains(&d.name)).collect()
    }
}

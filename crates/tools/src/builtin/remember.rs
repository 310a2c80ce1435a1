//! `remember`: the agent proposes a fact or preference to keep about the person it serves. The
//! tool only checks the text and leaves it in the call's [`MemoryNotes`]; the runtime writes it
//! to the person's memory after the call, as the agent's (or, when the run has read content
//! from outside, as untrusted — which never changes what the person confirmed).
//!
//! [`MemoryNotes`]: crate::MemoryNotes

use async_trait::async_trait;
use domain::persona::RiskLevel;
use domain::tool::ToolDefinition;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::params::{invalid, parse, schema};
use crate::{Tool, ToolContext, ToolError};

pub const NAME: &str = "remember";
/// The longest text one item may hold (the memory's own cap).
pub const MAX_CHARS: usize = 2_000;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Params {
    /// One fact or preference about the person, in a sentence ("Prefers answers in Italian").
    #[schemars(length(min = 1, max = 2000))]
    content: String,
}

/// Proposes a memory item for the person the run serves.
pub struct Remember;

#[async_trait]
impl Tool for Remember {
    fn definition(&self) -> ToolDefinition {
        ToolDefinition {
            name: NAME.to_owned(),
            description: "Remember a fact or preference about the person you are helping, for later \
                          conversations: only what they said about themselves or asked you to remember."
                .to_owned(),
            parameters: schema::<Params>(),
            risk_level: RiskLevel::Low,
            resource_pattern: "memory:self".to_owned(),
            resource_args: Vec::new(),
            timeout_seconds: 10,
            requires_approval: false,
            // It writes Nexus's own memory of the person, nothing outside.
            state_changing: false,
            untrusted_output: false,
        }
    }

    async fn call(&self, context: &ToolContext, params: Value) -> Result<Value, ToolError> {
        let params: Params = parse(params)?;
        let content = params.content.split_whitespace().collect::<Vec<_>>().join(" ");
        if content.is_empty() {
            return Err(invalid("content", "is empty"));
        }
        if content.chars().count() > MAX_CHARS {
            return Err(invalid("content", format!("holds more than {MAX_CHARS} characters")));
        }
        let Some(notes) = &context.memory else {
            return Err(ToolError::Refused(
                "this run serves nobody in particular, so there is no one's memory to write".into(),
            ));
        };
        notes.propose(content.clone());
        Ok(json!({"proposed": content}))
    }
}

//! Conversations: a person's chat with a gateway model or with the agent (as a persona), kept
//! per user so they can be read again, searched and exported.

use crate::{ChainId, ConversationId, TenantId, Timestamp};

/// Who a conversation talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatTarget {
    /// A model the gateway serves (`GET /v1/models`), e.g. `gpt-4o-mini` or `nexus/auto`.
    Model(String),
    /// The agent: every turn is a run, gated and sealed; `None` lets the planner pick personas.
    Agent(Option<String>),
}

impl ChatTarget {
    /// `model:<id>`, `agent:<persona>` or `agent:` (stored form).
    pub fn to_text(&self) -> String {
        match self {
            ChatTarget::Model(model) => format!("model:{model}"),
            ChatTarget::Agent(persona) => format!("agent:{}", persona.as_deref().unwrap_or_default()),
        }
    }

    pub fn parse(text: &str) -> Option<ChatTarget> {
        let (kind, name) = text.trim().split_once(':')?;
        match kind {
            "model" if !name.trim().is_empty() => Some(ChatTarget::Model(name.trim().to_owned())),
            "agent" => Some(ChatTarget::Agent(Some(name.trim()).filter(|n| !n.is_empty()).map(str::to_owned))),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    pub id: ConversationId,
    pub tenant_id: TenantId,
    /// The person it belongs to: the principal's subject (`user:<id>` or `key:<id>`).
    pub owner: String,
    pub title: String,
    pub target: ChatTarget,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatRole {
    User,
    Assistant,
}

impl ChatRole {
    pub fn as_str(self) -> &'static str {
        match self {
            ChatRole::User => "user",
            ChatRole::Assistant => "assistant",
        }
    }

    pub fn parse(text: &str) -> Option<ChatRole> {
        match text {
            "user" => Some(ChatRole::User),
            "assistant" => Some(ChatRole::Assistant),
            _ => None,
        }
    }
}

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatMessage {
    pub conversation_id: ConversationId,
    /// Numbered from 1 within the conversation.
    pub seq: u32,
    pub role: ChatRole,
    pub content: String,
    /// The run that produced an agent's answer.
    pub chain_id: Option<ChainId>,
    /// The model that produced a gateway answer.
    pub model: Option<String>,
    pub created_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_round_trip_through_their_stored_form() {
        for target in [
            ChatTarget::Model("gpt-4o-mini".into()),
            ChatTarget::Model("nexus/auto".into()),
            ChatTarget::Agent(Some("researcher".into())),
            ChatTarget::Agent(None),
        ] {
            assert_eq!(ChatTarget::parse(&target.to_text()), Some(target));
        }
        assert_eq!(ChatTarget::parse("model:"), None);
        assert_eq!(ChatTarget::parse("robot:x"), None);
    }
}

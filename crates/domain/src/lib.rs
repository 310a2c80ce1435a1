//! Nexus vocabulary: the types every other crate speaks, and the storage ports they are kept behind.
//!
//! **Architecture Invariant:** this crate does no I/O and depends on no runtime, database or HTTP
//! crate. Ports are traits; implementations live in `store`.

pub mod agent;
pub mod canonical;
pub mod channel;
pub mod chat;
pub mod cost;
pub mod embed;
pub mod ids;
pub mod job;
pub mod knowledge;
pub mod ledger;
pub mod limits;
pub mod memory;
pub mod moderation;
pub mod persona;
pub mod plugin;
pub mod ports;
pub mod settings;
pub mod tenant;
pub mod time;
pub mod tool;
pub mod watcher;
pub mod web;

/// A string that names none of a value set's spellings (a status, a level, a kind).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {value:?} is not one of {}", .expected.join(", "))]
pub struct UnknownValue {
    /// What was being read, e.g. `chain status`.
    pub kind: &'static str,
    pub value: String,
    /// Every accepted spelling.
    pub expected: Vec<&'static str>,
}

pub use ids::{ApiKeyId, ChainId, ConversationId, DocumentId, PersonaId, SealId, TenantId, UserId};
pub use time::Timestamp;

//! Memory: what the assistant remembers of a person across conversations — facts and
//! preferences, each with where it came from. Items are versioned and append-only: a change is a
//! new version, a deletion a tombstone version, a restore a new version with an earlier
//! version's content, so nothing is ever lost silently and any earlier state can be brought back.

use serde::{Deserialize, Serialize};

use crate::{ChainId, TenantId, Timestamp, UnknownValue};

/// How far a memory item is to be believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemoryTrust {
    /// Learned from content Nexus does not trust (a fetched page, another person's message).
    Untrusted,
    /// Proposed by the agent from the person's own conversation.
    Agent,
    /// Written or confirmed by the person themself.
    Confirmed,
}

impl MemoryTrust {
    pub const ALL: [MemoryTrust; 3] = [MemoryTrust::Untrusted, MemoryTrust::Agent, MemoryTrust::Confirmed];

    pub fn as_str(self) -> &'static str {
        match self {
            MemoryTrust::Untrusted => "untrusted",
            MemoryTrust::Agent => "agent",
            MemoryTrust::Confirmed => "confirmed",
        }
    }
}

impl std::str::FromStr for MemoryTrust {
    type Err = UnknownValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MemoryTrust::ALL.into_iter().find(|t| t.as_str() == s).ok_or_else(|| UnknownValue {
            kind: "memory trust",
            value: s.to_owned(),
            expected: MemoryTrust::ALL.iter().map(|t| t.as_str()).collect(),
        })
    }
}

/// Where a memory version came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// The run that wrote it, if a run did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<ChainId>,
    /// The message it was learned from (a conversation message id, a channel message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The source outside Nexus (a URL, a feed), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// One version of one memory item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryVersion {
    pub tenant: TenantId,
    /// The item's id (a UUID), the same for all its versions.
    pub id: String,
    /// Whose memory it is (`user:<id>`, or a key's subject).
    pub owner: String,
    /// From 1, without gaps.
    pub version: i64,
    /// The remembered text; kept on a tombstone as it was (so a restore can bring it back).
    pub content: String,
    /// SHA-256 (hex) of the normalised content, for duplicates.
    pub content_hash: String,
    pub trust: MemoryTrust,
    pub provenance: Provenance,
    /// Whether this version deletes the item.
    pub deleted: bool,
    pub created_at: Timestamp,
    /// Who wrote this version.
    pub created_by: String,
}

/// A memory item as it stands: its latest version, and whether that is a deletion.
pub type MemoryItem = MemoryVersion;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_orders_and_spells_itself() {
        assert!(MemoryTrust::Untrusted < MemoryTrust::Agent && MemoryTrust::Agent < MemoryTrust::Confirmed);
        for trust in MemoryTrust::ALL {
            assert_eq!(trust.as_str().parse::<MemoryTrust>(), Ok(trust));
        }
        assert!("sure".parse::<MemoryTrust>().is_err());
    }
}

//! Ledger records as stored. The `ledger` crate gives them meaning (encoding, hashing, proofs);
//! here they are plain data so that storage ports can name them.

use serde::{Deserialize, Serialize};

use crate::persona::str_enum;
use crate::{ChainId, TenantId, Timestamp};

/// What an entry records. Every model call, tool action, gate decision, approval and admin change
/// is one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A declared, gated intent, sealed before its tool runs.
    SealIntent,
    /// The outcome of a sealed action.
    SealResult,
    /// One call to a model provider.
    ModelCall,
    /// A gate decision made outside a seal (e.g. a gateway policy refusal).
    GateDecision,
    /// A human approval or denial.
    Approval,
    /// A change made by an administrator (personas, keys, settings).
    AdminChange,
    /// A community moderation decision, or staff's verdict on one.
    Moderation,
    /// How a run was routed before it started (tier, who decided, how sure), or why it went
    /// another way (the plan was skipped).
    Route,
    /// A piece of equipment's run and its result.
    Equipment,
    /// A background job's change of state (enqueued, cancelled, retried, finished).
    Job,
    /// A memory item written, changed, deleted or restored (digests, never the text).
    Memory,
    /// A watcher's post: the item's source, key and digest, and where it went.
    Watch,
}

str_enum!(EntryKind: "entry kind" {
    SealIntent => "seal_intent", SealResult => "seal_result", ModelCall => "model_call",
    GateDecision => "gate_decision", Approval => "approval", AdminChange => "admin_change",
    Moderation => "moderation", Route => "route", Equipment => "equipment", Job => "job", Memory => "memory",
    Watch => "watch",
});

/// What a caller asks the ledger to append. The ledger assigns index, time and hashes.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryDraft {
    pub kind: EntryKind,
    pub chain_id: Option<ChainId>,
    pub payload: serde_json::Value,
}

/// One stored ledger entry: the leaf at `index` of its tenant's Merkle tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRecord {
    pub tenant_id: TenantId,
    /// Position in the tenant's log, from 0, without gaps.
    pub index: u64,
    pub kind: EntryKind,
    pub chain_id: Option<ChainId>,
    pub timestamp: Timestamp,
    /// The payload as canonical JSON text (sorted keys, no insignificant whitespace).
    pub payload: String,
    /// Hex fingerprint of the previous entry of the same chain; empty for the first.
    pub parent_fingerprint: String,
    /// Hex `SHA-256(parent_fingerprint ‖ SHA-256(content))`, linking the entry to its chain.
    pub fingerprint: String,
    /// RFC 6962 leaf hash of the entry's canonical encoding.
    pub leaf_hash: [u8; 32],
}

/// A signed checkpoint as stored: the tree head of one tenant at some size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    pub tenant_id: TenantId,
    pub size: u64,
    pub root_hash: [u8; 32],
    /// The signed note text (origin, size, root and signature lines).
    pub signed_note: String,
    pub created_at: Timestamp,
}

/// A tenant's log head: its size and the right edge of its Merkle tree (encoded by the
/// ledger; opaque here). Kept in one row per tenant that appenders lock, so appends from
/// several processes wait for each other instead of colliding.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogHead {
    pub size: u64,
    pub frontier: Vec<u8>,
    /// Id of the batch that last appended: a batch retried after an ambiguous failure finds
    /// its own id here if it did commit.
    pub last_batch: Option<String>,
}

/// A stored hash of the tree: the complete subtree of height `8 · level` at `index` (`level ≥
/// 1`; level 0 is the leaf hashes of the entries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeNode {
    pub level: u8,
    pub index: u64,
    pub hash: [u8; 32],
}

/// What an append under lock needs read for one tenant, besides its head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLock {
    pub tenant: TenantId,
    /// Chains whose newest fingerprint must be read.
    pub chains: Vec<Option<ChainId>>,
    /// Chains whose newest fingerprint the caller knows as of log size `known_at`: read only
    /// if the locked head is at another size (another process appended).
    pub known: Vec<Option<ChainId>>,
    pub known_at: Option<u64>,
}

/// A tenant's log as found under its append lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedLog {
    pub tenant: TenantId,
    pub head: LogHead,
    /// Newest fingerprint of each chain read (absent: the chain has no entries yet).
    pub fingerprints: Vec<(Option<ChainId>, Option<String>)>,
}

/// What to write for one tenant under its lock: the entries, the tree nodes they complete and
/// the new head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogWrite {
    pub tenant: TenantId,
    pub records: Vec<LedgerRecord>,
    pub nodes: Vec<TreeNode>,
    pub head: LogHead,
}

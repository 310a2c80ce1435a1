//! Streaming verification of one tenant's log: say which checkpoint sizes will be checked, feed
//! records in index order, then check the signed checkpoints. The first bad entry is named with
//! the reason. Memory is the chains' heads and the tree's right edge, not the log: the roots at
//! the watched sizes are taken as the stream passes them.

use std::collections::{BTreeMap, HashMap};

use domain::ledger::{LedgerRecord, StoredCheckpoint};
use domain::{ChainId, TenantId};

use crate::checkpoint::{Checkpoint, CheckpointError, CheckpointVerifier};
use crate::encoding::EntryContent;
use crate::hash::Hash;
use crate::tiles::Frontier;

/// What is wrong with one entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryFault {
    #[error("belongs to tenant {found:?}, not {expected:?}")]
    WrongTenant { found: String, expected: String },
    #[error("expected entry #{expected} here: entries are missing or out of order")]
    Gap { expected: u64 },
    #[error("contents do not match the entry's fingerprint: the entry was altered after it was sealed")]
    FingerprintMismatch,
    #[error("parent fingerprint {found:?} does not continue its chain (expected {expected:?})")]
    BrokenChain { found: String, expected: String },
    #[error("stored leaf hash does not match the entry's contents")]
    LeafHashMismatch,
}

/// The first bad entry of a log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("entry #{index}{}: {fault}", chain.as_ref().map(|c| format!(" (chain {c})")).unwrap_or_default())]
pub struct BadEntry {
    pub index: u64,
    pub chain: Option<ChainId>,
    pub fault: EntryFault,
}

/// What is wrong with a checkpoint, given the entries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointFault {
    #[error("checkpoint of size {size}: {source}")]
    Invalid { size: u64, source: CheckpointError },
    #[error("stored checkpoint row (size {row_size}) differs from the signed note it carries")]
    RowMismatch { row_size: u64 },
    #[error("log truncated: a checkpoint signed {size} entries but only {entries} are stored")]
    Truncated { size: u64, entries: u64 },
    #[error(
        "history rewritten: the first {size} entries no longer hash to the root signed at that size{}",
        after.map(|a| format!(" (they still matched the checkpoint of size {a}, so the change is at or after entry #{a})")).unwrap_or_default()
    )]
    Rewritten { size: u64, after: Option<u64> },
    /// The verifier was not told to keep the root at this size before the entries streamed by
    /// (a caller's mistake, not the log's).
    #[error("the root at size {size} was not kept while verifying; watch the size before pushing entries")]
    NotWatched { size: u64 },
}

/// Verifies a log entry by entry.
#[derive(Debug)]
pub struct LogVerifier {
    tenant: TenantId,
    tree: Frontier,
    /// Sizes whose root will be checked, with the root once the stream passed them.
    watched: BTreeMap<u64, Option<Hash>>,
    heads: HashMap<Option<ChainId>, String>,
    scratch: Vec<u8>,
}

impl LogVerifier {
    pub fn new(tenant: TenantId) -> Self {
        Self {
            tenant,
            tree: Frontier::new(),
            watched: BTreeMap::new(),
            heads: HashMap::new(),
            scratch: Vec::with_capacity(512),
        }
    }

    /// Keeps the root at each of `sizes` as the stream passes it (call before pushing): the
    /// sizes of the checkpoints to be checked.
    pub fn watch(&mut self, sizes: impl IntoIterator<Item = u64>) {
        for size in sizes {
            let root = (size == 0).then(crate::hash::empty_root);
            self.watched.entry(size).or_insert(root);
        }
    }

    /// Entries verified so far.
    pub fn size(&self) -> u64 {
        self.tree.size()
    }

    /// The root of the verified entries at `size`: the current size or a watched one.
    pub fn root_at(&self, size: u64) -> Option<Hash> {
        if size == self.tree.size() {
            return Some(self.tree.root());
        }
        self.watched.get(&size).copied().flatten()
    }

    /// Checks the next record.
    pub fn push(&mut self, record: &LedgerRecord) -> Result<(), BadEntry> {
        let fail = |fault| BadEntry { index: record.index, chain: record.chain_id.clone(), fault };
        if record.tenant_id != self.tenant {
            return Err(fail(EntryFault::WrongTenant {
                found: record.tenant_id.to_string(),
                expected: self.tenant.to_string(),
            }));
        }
        let expected = self.tree.size();
        if record.index != expected {
            return Err(BadEntry { index: expected, chain: None, fault: EntryFault::Gap { expected } });
        }
        let content = EntryContent::of(record);
        if content.fingerprint(&mut self.scratch) != record.fingerprint {
            return Err(fail(EntryFault::FingerprintMismatch));
        }
        let head = self.heads.get(&record.chain_id).map(String::as_str).unwrap_or("");
        if record.parent_fingerprint != head {
            return Err(fail(EntryFault::BrokenChain {
                found: record.parent_fingerprint.clone(),
                expected: head.to_owned(),
            }));
        }
        let leaf = content.leaf_hash(&record.fingerprint, &mut self.scratch);
        if leaf != record.leaf_hash {
            return Err(fail(EntryFault::LeafHashMismatch));
        }
        self.tree.push(leaf, &mut Vec::new());
        if let Some(root) = self.watched.get_mut(&self.tree.size()) {
            *root = Some(self.tree.root());
        }
        self.heads.insert(record.chain_id.clone(), record.fingerprint.clone());
        Ok(())
    }

    /// Checks every stored checkpoint (any order) against the verified entries: each must be
    /// signed by `verifier` for this tenant's `origin`, and its root must be the root of the
    /// entries at its size (a consistency check between the checkpoint and today's log).
    /// Returns the largest checkpoint.
    pub fn check_checkpoints(
        &self,
        checkpoints: &[StoredCheckpoint],
        verifier: &CheckpointVerifier,
        origin: &str,
    ) -> Result<Option<Checkpoint>, CheckpointFault> {
        let mut sorted: Vec<&StoredCheckpoint> = checkpoints.iter().collect();
        sorted.sort_by_key(|c| c.size);
        let mut last_good: Option<u64> = None;
        let mut largest = None;
        for stored in sorted {
            let checkpoint = verifier
                .verify_for(&stored.signed_note, origin)
                .map_err(|source| CheckpointFault::Invalid { size: stored.size, source })?;
            if checkpoint.size != stored.size || checkpoint.root != stored.root_hash {
                return Err(CheckpointFault::RowMismatch { row_size: stored.size });
            }
            self.check_signed(&checkpoint, last_good)?;
            last_good = Some(checkpoint.size);
            largest = Some(checkpoint);
        }
        Ok(largest)
    }

    /// Checks one already signature-verified checkpoint against the entries.
    pub fn check_signed(&self, checkpoint: &Checkpoint, after: Option<u64>) -> Result<(), CheckpointFault> {
        let entries = self.tree.size();
        if checkpoint.size > entries {
            return Err(CheckpointFault::Truncated { size: checkpoint.size, entries });
        }
        match self.root_at(checkpoint.size) {
            Some(root) if root == checkpoint.root => Ok(()),
            Some(_) => Err(CheckpointFault::Rewritten { size: checkpoint.size, after }),
            None => Err(CheckpointFault::NotWatched { size: checkpoint.size }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::CheckpointSigner;
    use crate::encoding::seal_draft;
    use domain::Timestamp;
    use domain::ledger::{EntryDraft, EntryKind};
    use serde_json::json;

    fn tenant() -> TenantId {
        TenantId::parse("demo").expect("valid")
    }

    fn log(n: u64) -> Vec<LedgerRecord> {
        let chains = [ChainId::parse("c1").expect("id"), ChainId::parse("c2").expect("id")];
        let mut heads: HashMap<Option<ChainId>, String> = HashMap::new();
        (0..n)
            .map(|i| {
                let chain = if i % 3 == 0 { None } else { Some(chains[(i % 2) as usize].clone()) };
                let parent = heads.get(&chain).cloned().unwrap_or_default();
                let draft =
                    EntryDraft { kind: EntryKind::SealIntent, chain_id: chain.clone(), payload: json!({"i": i}) };
                let record = seal_draft(&tenant(), i, &draft, Timestamp::from_micros(i as i64), parent);
                heads.insert(chain, record.fingerprint.clone());
                record
            })
            .collect()
    }

    fn verify_all(records: &[LedgerRecord]) -> Result<LogVerifier, BadEntry> {
        let mut v = LogVerifier::new(tenant());
        v.watch([10, 30]);
        for r in records {
            v.push(r)?;
        }
        Ok(v)
    }

    #[test]
    fn an_honest_log_verifies() {
        let v = verify_all(&log(50)).expect("verifies");
        assert_eq!(v.size(), 50);
    }

    #[test]
    fn an_altered_payload_is_named() {
        let mut records = log(20);
        records[7].payload = records[7].payload.replace('7', "8");
        let err = verify_all(&records).expect_err("tampered");
        assert_eq!(err.index, 7);
        assert_eq!(err.fault, EntryFault::FingerprintMismatch);
    }

    #[test]
    fn a_resealed_entry_breaks_the_next_link_of_its_chain() {
        let mut records = log(20);
        // Re-seal entry 4 with new contents, recomputing its own hashes only.
        let d =
            EntryDraft { kind: EntryKind::SealIntent, chain_id: records[4].chain_id.clone(), payload: json!("forged") };
        records[4] = seal_draft(&tenant(), 4, &d, records[4].timestamp, records[4].parent_fingerprint.clone());
        let err = verify_all(&records).expect_err("tampered");
        assert!(matches!(err.fault, EntryFault::BrokenChain { .. }), "{err}");
        assert!(err.index > 4);
    }

    #[test]
    fn a_stored_leaf_hash_change_is_named() {
        let mut records = log(5);
        records[2].leaf_hash[31] ^= 1;
        assert_eq!(verify_all(&records).expect_err("tampered").fault, EntryFault::LeafHashMismatch);
    }

    #[test]
    fn deleted_entries_leave_a_gap() {
        let mut records = log(10);
        records.remove(3);
        let err = verify_all(&records).expect_err("gap");
        assert_eq!(err.fault, EntryFault::Gap { expected: 3 });
    }

    #[test]
    fn checkpoints_catch_truncation_and_rewrites() {
        let signer = CheckpointSigner::new(ed25519_dalek::SigningKey::from_bytes(&[5; 32]));
        let origin = "nexus.local/ledger/demo";
        let honest = log(30);
        let v = verify_all(&honest).expect("verifies");
        let stored = |size: u64, v: &LogVerifier| {
            let cp = Checkpoint { origin: origin.into(), size, root: v.root_at(size).expect("watched size") };
            StoredCheckpoint {
                tenant_id: tenant(),
                size,
                root_hash: cp.root,
                signed_note: signer.sign(&cp),
                created_at: Timestamp::from_micros(0),
            }
        };
        let checkpoints = vec![stored(10, &v), stored(30, &v)];
        assert_eq!(
            v.check_checkpoints(&checkpoints, signer.verifier(), origin).map(|c| c.map(|c| c.size)),
            Ok(Some(30))
        );

        // Truncation.
        let short = verify_all(&honest[..25]).expect("prefix verifies");
        assert_eq!(
            short.check_checkpoints(&checkpoints, signer.verifier(), origin),
            Err(CheckpointFault::Truncated { size: 30, entries: 25 })
        );

        // Rewriting from entry 12 with every hash recomputed: entries verify, checkpoints do not.
        let mut rewritten: Vec<LedgerRecord> = honest[..12].to_vec();
        let mut heads: HashMap<Option<ChainId>, String> = HashMap::new();
        for r in &rewritten {
            heads.insert(r.chain_id.clone(), r.fingerprint.clone());
        }
        for r in &honest[12..] {
            let d = EntryDraft { kind: r.kind, chain_id: r.chain_id.clone(), payload: json!("rewritten") };
            let parent = heads.get(&r.chain_id).cloned().unwrap_or_default();
            let new = seal_draft(&tenant(), r.index, &d, r.timestamp, parent);
            heads.insert(r.chain_id.clone(), new.fingerprint.clone());
            rewritten.push(new);
        }
        let forged = verify_all(&rewritten).expect("internally consistent");
        assert_eq!(
            forged.check_checkpoints(&checkpoints, signer.verifier(), origin),
            Err(CheckpointFault::Rewritten { size: 30, after: Some(10) })
        );

        // A size nobody asked to keep is the caller's mistake, said as such.
        let unwatched = LogVerifier::new(tenant());
        assert_eq!(
            unwatched.check_signed(&Checkpoint { origin: origin.into(), size: 0, root: [0; 32] }, None),
            Err(CheckpointFault::Rewritten { size: 0, after: None })
        );
        let mut partial = LogVerifier::new(tenant());
        for r in &honest[..12] {
            partial.push(r).expect("verifies");
        }
        let at_ten = Checkpoint { origin: origin.into(), size: 10, root: [0; 32] };
        assert_eq!(partial.check_signed(&at_ten, None), Err(CheckpointFault::NotWatched { size: 10 }));

        // A checkpoint signed by another key.
        let other = CheckpointSigner::new(ed25519_dalek::SigningKey::from_bytes(&[6; 32]));
        assert!(matches!(
            v.check_checkpoints(&checkpoints, other.verifier(), origin),
            Err(CheckpointFault::Invalid { source: CheckpointError::WrongKey { .. }, .. })
        ));
    }
}

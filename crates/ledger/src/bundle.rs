//! Inclusion-proof bundles: one entry, its audit path and the signed checkpoint it leads to, in
//! one JSON file that `nexus verify` checks offline with no database.

use serde::{Deserialize, Serialize};

use domain::ledger::{EntryKind, LedgerRecord};
use domain::{ChainId, TenantId, Timestamp};

use crate::checkpoint::{Checkpoint, CheckpointError, CheckpointVerifier};
use crate::encoding::EntryContent;
use crate::hash::{Hash, parse_hex};
use crate::proof::{MAX_PROOF_LEN, ProofError, verify_inclusion};

pub const BUNDLE_FORMAT: &str = "nexus-inclusion-proof/v1";

/// The entry as it appears in a bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleEntry {
    pub tenant_id: String,
    pub index: u64,
    pub kind: String,
    pub chain_id: Option<String>,
    /// Microseconds since the Unix epoch.
    pub timestamp_us: i64,
    pub payload: String,
    pub parent_fingerprint: String,
    pub fingerprint: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProofBundle {
    pub format: String,
    pub entry: BundleEntry,
    /// Hex leaf hash (informative: recomputed from `entry` on verification).
    pub leaf_hash: String,
    pub tree_size: u64,
    /// Hex hashes, deepest sibling first.
    pub inclusion_path: Vec<String>,
    /// The signed note of the checkpoint at `tree_size`.
    pub checkpoint: String,
    /// The signer's verifier key (`name+id+key`). Trust it only if it matches a key you got
    /// another way; `nexus verify --public-key` checks against one.
    pub verifier_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    #[error("not a proof bundle: {0}")]
    Malformed(String),
    #[error("field {field}: {reason}")]
    BadField { field: String, reason: String },
    #[error("entry does not match its fingerprint: it was altered")]
    EntryAltered,
    #[error("leaf hash in the bundle does not match the entry")]
    LeafMismatch,
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    #[error("checkpoint is for {origin:?}, not for tenant {tenant:?}")]
    OtherTenant { origin: String, tenant: String },
    #[error("proof is for tree size {proof}, but the checkpoint signs size {checkpoint}")]
    SizeMismatch { proof: u64, checkpoint: u64 },
    #[error("inclusion proof: {0}")]
    Proof(#[from] ProofError),
}

/// What a verified bundle proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleReport {
    pub tenant_id: TenantId,
    pub index: u64,
    pub checkpoint: Checkpoint,
    /// Key id of the key that signed the checkpoint.
    pub key_id: String,
    /// True when the signing key came from the bundle itself rather than from the caller.
    pub key_from_bundle: bool,
}

impl ProofBundle {
    pub fn new(
        record: &LedgerRecord,
        path: &[Hash],
        tree_size: u64,
        checkpoint_note: String,
        verifier: &CheckpointVerifier,
    ) -> Self {
        Self {
            format: BUNDLE_FORMAT.to_owned(),
            entry: BundleEntry {
                tenant_id: record.tenant_id.to_string(),
                index: record.index,
                kind: record.kind.as_str().to_owned(),
                chain_id: record.chain_id.as_ref().map(ToString::to_string),
                timestamp_us: record.timestamp.as_micros(),
                payload: record.payload.clone(),
                parent_fingerprint: record.parent_fingerprint.clone(),
                fingerprint: record.fingerprint.clone(),
            },
            leaf_hash: hex::encode(record.leaf_hash),
            tree_size,
            inclusion_path: path.iter().map(hex::encode).collect(),
            checkpoint: checkpoint_note,
            verifier_key: verifier.to_vkey(),
        }
    }

    /// Parses bundle JSON, naming the offending field on error.
    pub fn from_json(text: &str) -> Result<Self, BundleError> {
        serde_json::from_str(text).map_err(|e| BundleError::Malformed(e.to_string()))
    }

    pub fn to_json(&self) -> String {
        // Serializing plain strings and numbers cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Verifies the bundle. With `trusted`, the checkpoint must be signed by that key; without
    /// it, by the key named in the bundle (which proves integrity, not who signed).
    pub fn verify(&self, trusted: Option<&CheckpointVerifier>) -> Result<BundleReport, BundleError> {
        let bad =
            |field: &str, reason: &str| BundleError::BadField { field: field.to_owned(), reason: reason.to_owned() };
        if self.format != BUNDLE_FORMAT {
            return Err(bad("format", &format!("expected {BUNDLE_FORMAT:?}")));
        }
        let record = self.record()?;
        let mut scratch = Vec::new();
        let content = EntryContent::of(&record);
        if content.fingerprint(&mut scratch) != record.fingerprint {
            return Err(BundleError::EntryAltered);
        }
        let leaf = content.leaf_hash(&record.fingerprint, &mut scratch);
        if parse_hex(&self.leaf_hash) != Some(leaf) {
            return Err(BundleError::LeafMismatch);
        }
        if self.inclusion_path.len() > MAX_PROOF_LEN {
            return Err(ProofError::TooLong { len: self.inclusion_path.len() }.into());
        }
        let path = self
            .inclusion_path
            .iter()
            .enumerate()
            .map(|(i, h)| parse_hex(h).ok_or_else(|| bad(&format!("inclusion_path[{i}]"), "not 64 hex characters")))
            .collect::<Result<Vec<Hash>, _>>()?;

        let bundled;
        let (verifier, key_from_bundle) = match trusted {
            Some(v) => (v, false),
            None => {
                bundled = CheckpointVerifier::from_vkey(&self.verifier_key)?;
                (&bundled, true)
            }
        };
        let checkpoint = verifier.verify(&self.checkpoint)?;
        let suffix = format!("/ledger/{}", record.tenant_id);
        if !checkpoint.origin.ends_with(&suffix) {
            return Err(BundleError::OtherTenant { origin: checkpoint.origin, tenant: record.tenant_id.to_string() });
        }
        if checkpoint.size != self.tree_size {
            return Err(BundleError::SizeMismatch { proof: self.tree_size, checkpoint: checkpoint.size });
        }
        verify_inclusion(&leaf, record.index, checkpoint.size, &path, &checkpoint.root)?;
        Ok(BundleReport {
            tenant_id: record.tenant_id,
            index: record.index,
            checkpoint,
            key_id: verifier.key_id_hex(),
            key_from_bundle,
        })
    }

    fn record(&self) -> Result<LedgerRecord, BundleError> {
        let bad = |field: &str, reason: String| BundleError::BadField { field: format!("entry.{field}"), reason };
        let e = &self.entry;
        Ok(LedgerRecord {
            tenant_id: TenantId::parse(e.tenant_id.clone()).map_err(|err| bad("tenant_id", err.to_string()))?,
            index: e.index,
            kind: EntryKind::parse(&e.kind).ok_or_else(|| bad("kind", format!("unknown kind {:?}", e.kind)))?,
            chain_id: match &e.chain_id {
                None => None,
                Some(c) => Some(ChainId::parse(c.clone()).map_err(|err| bad("chain_id", err.to_string()))?),
            },
            timestamp: Timestamp::from_micros(e.timestamp_us),
            payload: e.payload.clone(),
            parent_fingerprint: e.parent_fingerprint.clone(),
            fingerprint: e.fingerprint.clone(),
            leaf_hash: [0; 32],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::CheckpointSigner;
    use crate::encoding::seal_draft;
    use crate::tree::MerkleTree;
    use domain::ledger::EntryDraft;
    use serde_json::json;

    struct Log {
        records: Vec<LedgerRecord>,
        tree: MerkleTree,
        signer: CheckpointSigner,
    }

    fn log(tenant: &str, seed: u8, n: u64) -> Log {
        let tenant = TenantId::parse(tenant).expect("valid");
        let mut tree = MerkleTree::new();
        let mut parent = String::new();
        let records = (0..n)
            .map(|i| {
                let d = EntryDraft { kind: EntryKind::ModelCall, chain_id: None, payload: json!({"n": i}) };
                let r = seal_draft(&tenant, i, &d, Timestamp::from_micros(7), std::mem::take(&mut parent));
                parent = r.fingerprint.clone();
                tree.push(r.leaf_hash);
                r
            })
            .collect();
        Log { records, tree, signer: CheckpointSigner::new(ed25519_dalek::SigningKey::from_bytes(&[seed; 32])) }
    }

    fn bundle(log: &Log, tenant: &str, index: u64) -> ProofBundle {
        let size = log.tree.size();
        let note = log.signer.sign(&Checkpoint {
            origin: format!("nexus.local/ledger/{tenant}"),
            size,
            root: log.tree.root(),
        });
        let path = log.tree.inclusion_proof(index, size).expect("proof");
        ProofBundle::new(&log.records[index as usize], &path, size, note, log.signer.verifier())
    }

    #[test]
    fn a_bundle_round_trips_through_json_and_verifies() {
        let log = log("demo", 1, 11);
        let b = bundle(&log, "demo", 6);
        let parsed = ProofBundle::from_json(&b.to_json()).expect("parses");
        let report = parsed.verify(Some(log.signer.verifier())).expect("verifies");
        assert_eq!((report.index, report.checkpoint.size, report.key_from_bundle), (6, 11, false));
        assert!(parsed.verify(None).expect("verifies with bundled key").key_from_bundle);
    }

    #[test]
    fn tampered_bundles_are_rejected() {
        let log = log("demo", 1, 11);
        let good = bundle(&log, "demo", 6);

        let mut b = good.clone();
        b.entry.payload = r#"{"n":7}"#.into();
        assert_eq!(b.verify(None), Err(BundleError::EntryAltered));

        let mut b = good.clone();
        b.inclusion_path.pop();
        assert_eq!(b.verify(None), Err(BundleError::Proof(ProofError::WrongLength)));

        let mut b = good.clone();
        b.inclusion_path.push(hex::encode([0u8; 32]));
        assert_eq!(b.verify(None), Err(BundleError::Proof(ProofError::WrongLength)));

        let mut b = good.clone();
        b.inclusion_path[0] = "zz".into();
        assert!(matches!(b.verify(None), Err(BundleError::BadField { .. })));

        let mut b = good.clone();
        b.tree_size = 12;
        assert!(matches!(b.verify(None), Err(BundleError::SizeMismatch { .. })));

        let other_key = CheckpointSigner::new(ed25519_dalek::SigningKey::from_bytes(&[2; 32]));
        assert!(matches!(
            good.verify(Some(other_key.verifier())),
            Err(BundleError::Checkpoint(CheckpointError::WrongKey { .. }))
        ));

        assert!(matches!(ProofBundle::from_json("{\"format\": 1}"), Err(BundleError::Malformed(_))));
        assert!(matches!(ProofBundle::from_json("not json"), Err(BundleError::Malformed(_))));
    }

    #[test]
    fn one_tenants_proof_does_not_verify_in_another_tenants_tree() {
        let demo = log("demo", 1, 8);
        let acme = log("acme", 1, 8);
        let mut b = bundle(&demo, "demo", 3);
        // Present demo's entry and path against acme's checkpoint (same signing key).
        let acme_bundle = bundle(&acme, "acme", 3);
        b.checkpoint = acme_bundle.checkpoint.clone();
        assert!(matches!(b.verify(None), Err(BundleError::OtherTenant { .. })));
        // Even relabelled as acme's entry, the hashes cover the tenant and do not reach acme's root.
        b.entry.tenant_id = "acme".into();
        assert_eq!(b.verify(None), Err(BundleError::EntryAltered));
    }
}

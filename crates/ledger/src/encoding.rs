//! The canonical encoding of a ledger entry, and the fingerprint chain that links each entry to
//! the one before it in its chain.
//!
//! Every field is written in a fixed order as a length-prefixed byte string (u32, big-endian),
//! integers as fixed-width big-endian, optional fields behind a presence byte. No delimiter can
//! collide with content, so two different entries never encode to the same bytes.

use domain::ledger::{EntryDraft, EntryKind, LedgerRecord};
use domain::{ChainId, TenantId, Timestamp};
use sha2::{Digest, Sha256};

use crate::hash::{Hash, leaf_hash, sha256};

/// Domain tag at the start of every encoded entry; bumped if the layout ever changes.
const ENTRY_TAG: &[u8] = b"nexus.ledger.entry.v1";

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // Entries are bounded far below 4 GiB by the store; saturate rather than wrap if not.
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

/// The fields of an entry that its fingerprint covers (everything but the fingerprint).
pub struct EntryContent<'a> {
    pub tenant_id: &'a TenantId,
    pub index: u64,
    pub kind: EntryKind,
    pub chain_id: Option<&'a ChainId>,
    pub timestamp: Timestamp,
    pub payload: &'a str,
    pub parent_fingerprint: &'a str,
}

impl<'a> EntryContent<'a> {
    pub fn of(record: &'a LedgerRecord) -> Self {
        Self {
            tenant_id: &record.tenant_id,
            index: record.index,
            kind: record.kind,
            chain_id: record.chain_id.as_ref(),
            timestamp: record.timestamp,
            payload: &record.payload,
            parent_fingerprint: &record.parent_fingerprint,
        }
    }

    /// Canonical bytes of the content.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        put_bytes(out, ENTRY_TAG);
        put_bytes(out, self.tenant_id.as_str().as_bytes());
        out.extend_from_slice(&self.index.to_be_bytes());
        put_bytes(out, self.kind.as_str().as_bytes());
        match self.chain_id {
            None => out.push(0),
            Some(chain) => {
                out.push(1);
                put_bytes(out, chain.as_str().as_bytes());
            }
        }
        out.extend_from_slice(&self.timestamp.as_micros().to_be_bytes());
        put_bytes(out, self.payload.as_bytes());
        put_bytes(out, self.parent_fingerprint.as_bytes());
    }

    /// The chain fingerprint: `SHA-256(parent_fingerprint ‖ SHA-256(content))`, as hex.
    pub fn fingerprint(&self, scratch: &mut Vec<u8>) -> String {
        scratch.clear();
        self.encode_into(scratch);
        let content_digest = sha256(scratch);
        let mut hasher = Sha256::new();
        hasher.update(self.parent_fingerprint.as_bytes());
        hasher.update(content_digest);
        hex::encode(hasher.finalize())
    }

    /// The leaf data: content followed by the fingerprint, so the tree covers both.
    pub fn leaf_hash(&self, fingerprint: &str, scratch: &mut Vec<u8>) -> Hash {
        scratch.clear();
        self.encode_into(scratch);
        put_bytes(scratch, fingerprint.as_bytes());
        leaf_hash(scratch)
    }
}

/// The full leaf encoding of a stored record.
pub fn encode_record(record: &LedgerRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + record.payload.len());
    EntryContent::of(record).encode_into(&mut out);
    put_bytes(&mut out, record.fingerprint.as_bytes());
    out
}

/// Builds the record for a draft at `index`, filling fingerprint and leaf hash.
pub fn seal_draft(
    tenant_id: &TenantId,
    index: u64,
    draft: &EntryDraft,
    timestamp: Timestamp,
    parent_fingerprint: String,
) -> LedgerRecord {
    seal_canonical(tenant_id, index, draft, canonical_json(&draft.payload), timestamp, parent_fingerprint)
}

/// As [`seal_draft`], with the draft's payload already in canonical form (`canonical_json`),
/// so a writer can canonicalise before it takes the log's lock and only hash under it.
pub fn seal_canonical(
    tenant_id: &TenantId,
    index: u64,
    draft: &EntryDraft,
    payload: String,
    timestamp: Timestamp,
    parent_fingerprint: String,
) -> LedgerRecord {
    let mut scratch = Vec::with_capacity(256 + payload.len());
    let content = EntryContent {
        tenant_id,
        index,
        kind: draft.kind,
        chain_id: draft.chain_id.as_ref(),
        timestamp,
        payload: &payload,
        parent_fingerprint: &parent_fingerprint,
    };
    let fingerprint = content.fingerprint(&mut scratch);
    let leaf_hash = content.leaf_hash(&fingerprint, &mut scratch);
    LedgerRecord {
        tenant_id: tenant_id.clone(),
        index,
        kind: draft.kind,
        chain_id: draft.chain_id.clone(),
        timestamp,
        payload,
        parent_fingerprint,
        fingerprint,
        leaf_hash,
    }
}

pub use domain::canonical::canonical_json;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tenant(s: &str) -> TenantId {
        TenantId::parse(s).expect("valid")
    }

    fn draft(payload: serde_json::Value) -> EntryDraft {
        EntryDraft { kind: EntryKind::ModelCall, chain_id: None, payload }
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let value = json!({"b": 1, "a": {"d": [1, {"z": true, "y": null}], "c": "x"}});
        assert_eq!(canonical_json(&value), r#"{"a":{"c":"x","d":[1,{"y":null,"z":true}]},"b":1}"#);
    }

    #[test]
    fn field_boundaries_cannot_be_shifted() {
        // With a naive "a:b" join these two would collide; length prefixes keep them apart.
        let ts = Timestamp::from_micros(1);
        let one = EntryDraft {
            kind: EntryKind::ModelCall,
            chain_id: Some(ChainId::parse("a").expect("id")),
            payload: json!("b:c"),
        };
        let two = EntryDraft {
            kind: EntryKind::ModelCall,
            chain_id: Some(ChainId::parse("a.b").expect("id")),
            payload: json!("c"),
        };
        let r1 = seal_draft(&tenant("t"), 0, &one, ts, String::new());
        let r2 = seal_draft(&tenant("t"), 0, &two, ts, String::new());
        assert_ne!(encode_record(&r1), encode_record(&r2));
        assert_ne!(r1.leaf_hash, r2.leaf_hash);
    }

    #[test]
    fn every_field_changes_the_leaf_hash() {
        let ts = Timestamp::from_micros(5);
        let base = seal_draft(&tenant("t"), 3, &draft(json!({"k": 1})), ts, "ab".into());
        let variants = [
            seal_draft(&tenant("u"), 3, &draft(json!({"k": 1})), ts, "ab".into()),
            seal_draft(&tenant("t"), 4, &draft(json!({"k": 1})), ts, "ab".into()),
            seal_draft(&tenant("t"), 3, &draft(json!({"k": 2})), ts, "ab".into()),
            seal_draft(&tenant("t"), 3, &draft(json!({"k": 1})), Timestamp::from_micros(6), "ab".into()),
            seal_draft(&tenant("t"), 3, &draft(json!({"k": 1})), ts, "ac".into()),
            seal_draft(
                &tenant("t"),
                3,
                &EntryDraft { kind: EntryKind::Approval, ..draft(json!({"k": 1})) },
                ts,
                "ab".into(),
            ),
        ];
        for v in &variants {
            assert_ne!(v.leaf_hash, base.leaf_hash);
            assert_ne!(v.fingerprint, base.fingerprint);
        }
    }

    #[test]
    fn fingerprint_follows_seed_004_formula() {
        let record = seal_draft(&tenant("t"), 0, &draft(json!(1)), Timestamp::from_micros(0), "parent".into());
        let mut content = Vec::new();
        EntryContent::of(&record).encode_into(&mut content);
        let mut hasher = Sha256::new();
        hasher.update(b"parent");
        hasher.update(sha256(&content));
        assert_eq!(record.fingerprint, hex::encode(hasher.finalize()));
        assert_eq!(record.leaf_hash, leaf_hash(&encode_record(&record)));
    }
}

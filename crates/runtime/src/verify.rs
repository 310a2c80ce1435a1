//! Verification of stored ledgers: every entry re-hashed from its contents, every chain link
//! and every signed checkpoint checked. Needs only the store and the public key, so an auditor
//! can run it without the signing key.

use domain::ledger::LedgerRecord;
use domain::ports::Store;
use domain::{ChainId, TenantId};
use ledger::checkpoint::{Checkpoint, CheckpointVerifier};
use ledger::encoding::EntryContent;
use ledger::proof::verify_inclusion;
use ledger::tiles::ProofPlan;
use ledger::verify::{BadEntry, CheckpointFault, EntryFault, LogVerifier};

use crate::error::VerifyError;

/// Records read from the store per query while verifying.
const PAGE: u32 = 10_000;

/// What verifying one tenant's log established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantReport {
    pub tenant: TenantId,
    pub entries: u64,
    pub checkpoints: usize,
    /// The largest signed checkpoint, which the whole prefix up to its size is proven against.
    pub latest_checkpoint: Option<Checkpoint>,
}

/// What verifying one chain established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    pub tenant: TenantId,
    pub chain: ChainId,
    pub entries: usize,
    /// Entries proven included in the latest signed checkpoint.
    pub proven: usize,
    pub checkpoint_size: Option<u64>,
}

/// The context every verification needs.
#[derive(Clone)]
pub struct Verifier<'a> {
    pub store: &'a dyn Store,
    pub key: &'a CheckpointVerifier,
    pub origin_prefix: &'a str,
}

impl Verifier<'_> {
    /// Verifies one tenant's whole log, and optionally an extra signed checkpoint held outside
    /// the database (a consistency check against what was published earlier).
    pub async fn tenant(&self, tenant: &TenantId, external: Option<&Checkpoint>) -> Result<TenantReport, VerifyError> {
        let mut log = LogVerifier::new(tenant.clone());
        let stored = self.store.checkpoints(tenant).await?;
        log.watch(stored.iter().map(|c| c.size).chain(external.map(|c| c.size)));
        loop {
            let page = self.store.records(tenant, log.size(), PAGE).await?;
            let fetched = page.len();
            for record in &page {
                log.push(record).map_err(|source| VerifyError::Entry { tenant: tenant.clone(), source })?;
            }
            if fetched < PAGE as usize {
                break;
            }
        }
        let origin = Checkpoint::origin_for(self.origin_prefix, tenant);
        let latest = log
            .check_checkpoints(&stored, self.key, &origin)
            .map_err(|source| VerifyError::Checkpoint { tenant: tenant.clone(), source })?;
        if let Some(external) = external {
            log.check_signed(external, None)
                .map_err(|source| VerifyError::Checkpoint { tenant: tenant.clone(), source })?;
        }
        if log.size() == 0 && stored.is_empty() {
            return Err(VerifyError::UnknownTenant(tenant.clone()));
        }
        Ok(TenantReport {
            tenant: tenant.clone(),
            entries: log.size(),
            checkpoints: stored.len(),
            latest_checkpoint: latest,
        })
    }

    /// Verifies every tenant's log, stopping at the first failure.
    pub async fn all(&self) -> Result<Vec<TenantReport>, VerifyError> {
        let mut reports = Vec::new();
        for tenant in self.store.ledger_tenants().await? {
            reports.push(self.tenant(&tenant, None).await?);
        }
        Ok(reports)
    }

    /// Verifies a signed checkpoint kept outside the database against the tenant's log.
    pub async fn external_checkpoint(&self, note: &str) -> Result<TenantReport, VerifyError> {
        let checkpoint = self.key.verify(note).map_err(|source| VerifyError::Checkpoint {
            tenant: tenant_of_origin(note).unwrap_or_else(unknown_tenant),
            source: CheckpointFault::Invalid { size: 0, source },
        })?;
        let tenant = tenant_of_origin(&checkpoint.origin).ok_or_else(|| VerifyError::Checkpoint {
            tenant: unknown_tenant(),
            source: CheckpointFault::Invalid {
                size: checkpoint.size,
                source: ledger::checkpoint::CheckpointError::Malformed(format!(
                    "origin {:?} names no tenant",
                    checkpoint.origin
                )),
            },
        })?;
        let expected = Checkpoint::origin_for(self.origin_prefix, &tenant);
        if checkpoint.origin != expected {
            return Err(VerifyError::Checkpoint {
                tenant,
                source: CheckpointFault::Invalid {
                    size: checkpoint.size,
                    source: ledger::checkpoint::CheckpointError::WrongOrigin { found: checkpoint.origin, expected },
                },
            });
        }
        self.tenant(&tenant, Some(&checkpoint)).await
    }

    /// As [`Self::external_checkpoint`] for a checkpoint that must be `tenant`'s own: one signed
    /// for another tenant (or by another key) is refused before either log is read.
    pub async fn own_checkpoint(&self, tenant: &TenantId, note: &str) -> Result<(TenantReport, u64), VerifyError> {
        let invalid = |size, source| VerifyError::Checkpoint {
            tenant: tenant.clone(),
            source: CheckpointFault::Invalid { size, source },
        };
        let checkpoint = self.key.verify(note).map_err(|source| invalid(0, source))?;
        let expected = Checkpoint::origin_for(self.origin_prefix, tenant);
        if checkpoint.origin != expected {
            let source = ledger::checkpoint::CheckpointError::WrongOrigin { found: checkpoint.origin, expected };
            return Err(invalid(checkpoint.size, source));
        }
        let report = self.tenant(tenant, Some(&checkpoint)).await?;
        Ok((report, checkpoint.size))
    }

    /// Verifies one chain: each entry against its fingerprint, the chain's links, and each
    /// entry's inclusion in the latest signed checkpoint.
    pub async fn chain(&self, tenant: &TenantId, chain: &ChainId) -> Result<ChainReport, VerifyError> {
        let records = self.store.chain_records(tenant, chain).await?;
        if records.is_empty() {
            return Err(VerifyError::EmptyChain { tenant: tenant.clone(), chain: chain.to_string() });
        }
        let mut scratch = Vec::new();
        let mut head = String::new();
        let mut leaves = Vec::with_capacity(records.len());
        for record in &records {
            let fail = |fault| VerifyError::Entry {
                tenant: tenant.clone(),
                source: BadEntry { index: record.index, chain: Some(chain.clone()), fault },
            };
            let content = EntryContent::of(record);
            if content.fingerprint(&mut scratch) != record.fingerprint {
                return Err(fail(EntryFault::FingerprintMismatch));
            }
            if record.parent_fingerprint != head {
                return Err(fail(EntryFault::BrokenChain { found: record.parent_fingerprint.clone(), expected: head }));
            }
            let leaf = content.leaf_hash(&record.fingerprint, &mut scratch);
            if leaf != record.leaf_hash {
                return Err(fail(EntryFault::LeafHashMismatch));
            }
            head = record.fingerprint.clone();
            leaves.push(leaf);
        }

        let Some(stored) = self.store.latest_checkpoint(tenant).await? else {
            return Ok(ChainReport {
                tenant: tenant.clone(),
                chain: chain.clone(),
                entries: records.len(),
                proven: 0,
                checkpoint_size: None,
            });
        };
        let origin = Checkpoint::origin_for(self.origin_prefix, tenant);
        let checkpoint =
            self.key.verify_for(&stored.signed_note, &origin).map_err(|source| VerifyError::Checkpoint {
                tenant: tenant.clone(),
                source: CheckpointFault::Invalid { size: stored.size, source },
            })?;
        let mut proven = 0;
        for (record, leaf) in records.iter().zip(&leaves) {
            if record.index >= checkpoint.size {
                continue;
            }
            let not_included = |reason: String| VerifyError::NotIncluded {
                tenant: tenant.clone(),
                index: record.index,
                size: checkpoint.size,
                reason,
            };
            // The path comes from the store's tree tiles, which are untrusted like everything
            // stored: the proof is checked against the signed root, so a wrong tile fails it.
            let plan = ProofPlan::inclusion(record.index, checkpoint.size).map_err(|e| not_included(e.to_string()))?;
            let path = crate::ledger_proofs::prove_from_store(self.store, tenant, &plan, None)
                .await
                .map_err(|e| not_included(e.to_string()))?;
            verify_inclusion(leaf, record.index, checkpoint.size, &path, &checkpoint.root)
                .map_err(|e| not_included(e.to_string()))?;
            proven += 1;
        }
        Ok(ChainReport {
            tenant: tenant.clone(),
            chain: chain.clone(),
            entries: records.len(),
            proven,
            checkpoint_size: Some(checkpoint.size),
        })
    }
}

/// The tenant named by an origin line `<prefix>/ledger/<tenant>` (or a note starting with one).
fn tenant_of_origin(origin: &str) -> Option<TenantId> {
    let first_line = origin.lines().next()?;
    let (_, tenant) = first_line.rsplit_once("/ledger/")?;
    TenantId::parse(tenant).ok()
}

fn unknown_tenant() -> TenantId {
    TenantId::parse("unknown").unwrap_or_else(|_| TenantId::generate())
}

/// Reads all of a tenant's records (for tests and small tools; verification pages instead).
pub async fn all_records(store: &dyn Store, tenant: &TenantId) -> Result<Vec<LedgerRecord>, VerifyError> {
    let mut out = Vec::new();
    loop {
        let page = store.records(tenant, out.len() as u64, PAGE).await?;
        let done = page.len() < PAGE as usize;
        out.extend(page);
        if done {
            return Ok(out);
        }
    }
}

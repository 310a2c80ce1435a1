//! Errors at the runtime boundary.

use domain::TenantId;
use domain::ports::StoreError;
use ledger::checkpoint::CheckpointError;
use ledger::tree::TreeError;
use ledger::verify::{BadEntry, CheckpointFault};

#[derive(Debug, Clone, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the ledger writer has stopped; the entry was not recorded")]
    WriterStopped,
    #[error("tenant {tenant}: {source}")]
    Tree { tenant: TenantId, source: TreeError },
    #[error("tenant {tenant} has no ledger entry #{index}")]
    NoSuchEntry { tenant: TenantId, index: u64 },
    #[error("tenant {0} has no ledger entries yet")]
    EmptyLog(TenantId),
    /// The ledger cannot take an entry now (store failing, queue full); try again shortly.
    #[error("the ledger cannot record right now: {0}")]
    Unavailable(String),
    /// Stored ledger state does not fit together (a head, a tile); `nexus verify` says more.
    #[error("ledger state is damaged: {0}")]
    Damaged(String),
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Ledger(LedgerError),
    #[error(
        "the signing key (key id {key_id}) did not sign the checkpoints of tenant {tenant} in {database} ({source}); \
         use the key file that signed them (ledger.signing_key)"
    )]
    SigningKeyMismatch { key_id: String, tenant: TenantId, database: String, source: CheckpointError },
}

/// Why verification failed: the first problem found.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("tenant {tenant}: {source}")]
    Entry { tenant: TenantId, source: BadEntry },
    #[error("tenant {tenant}: {source}")]
    Checkpoint { tenant: TenantId, source: CheckpointFault },
    #[error("tenant {tenant}: chain {chain} has no ledger entries")]
    EmptyChain { tenant: TenantId, chain: String },
    #[error("tenant {tenant}: entry #{index} is not included in the signed checkpoint of size {size}: {reason}")]
    NotIncluded { tenant: TenantId, index: u64, size: u64, reason: String },
    #[error("tenant {0} has no ledger")]
    UnknownTenant(TenantId),
}

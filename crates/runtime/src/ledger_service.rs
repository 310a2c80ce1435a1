//! The ledger writer: group commit, per-tenant Merkle trees in memory, periodic signed
//! checkpoints, and proofs.
//!
//! Appends go through one writer task. It takes every request waiting in its queue (up to
//! [`MAX_BATCH`]), assigns indexes and hashes, writes them in one transaction, and only then
//! answers each caller: an `Ok` means the entry is durable. While one transaction commits, the
//! next batch gathers, so concurrent appends share a commit.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use domain::ledger::{EntryDraft, LedgerRecord, StoredCheckpoint};
use domain::ports::{Companions, Store, StoreError};
use domain::{ChainId, TenantId, Timestamp};
use ledger::Hash;
use ledger::bundle::ProofBundle;
use ledger::checkpoint::{Checkpoint, CheckpointSigner};
use ledger::encoding::seal_draft;
use ledger::tree::MerkleTree;
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::LedgerError;
use crate::tasks;

/// The most entries committed in one transaction.
pub const MAX_BATCH: usize = 4096;
/// Queue length before appenders wait (back-pressure rather than unbounded memory).
const QUEUE_CAPACITY: usize = 16 * 1024;
/// Chain heads cached per tenant before the cache is emptied and refilled from the store.
const MAX_CACHED_HEADS: usize = 100_000;
/// Times a batch is retried after another writer (a replica) took the same indexes.
const CONFLICT_RETRIES: u32 = 3;

/// What an append returns once the entry is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub index: u64,
    pub fingerprint: String,
    pub leaf_hash: Hash,
    pub timestamp: Timestamp,
}

enum Request {
    Append {
        tenant: TenantId,
        draft: EntryDraft,
        companions: Companions,
        reply: oneshot::Sender<Result<Appended, LedgerError>>,
    },
    /// Rows with no ledger entry, committed with the next batch.
    Write {
        companions: Companions,
        reply: oneshot::Sender<Result<(), LedgerError>>,
    },
    Flush {
        reply: oneshot::Sender<()>,
    },
}

#[derive(Default)]
struct TenantLog {
    tree: MerkleTree,
    /// Newest fingerprint per chain (`None` = entries outside any chain); a cache of the store.
    heads: HashMap<Option<ChainId>, String>,
    /// Size covered by the newest checkpoint this process signed or saw.
    checkpointed: u64,
}

struct Inner {
    store: Arc<dyn Store>,
    signer: CheckpointSigner,
    origin_prefix: String,
    logs: Mutex<HashMap<TenantId, TenantLog>>,
}

/// Handle to the ledger: cheap to clone, shared by every front-end through the runtime.
#[derive(Clone)]
pub struct LedgerService {
    inner: Arc<Inner>,
    requests: mpsc::Sender<Request>,
    closing: Arc<AtomicBool>,
    stop_publisher: watch::Sender<bool>,
}

impl LedgerService {
    /// Starts the writer and the checkpoint publisher (every `checkpoint_interval`).
    pub fn start(
        store: Arc<dyn Store>,
        signer: CheckpointSigner,
        origin_prefix: String,
        checkpoint_interval: Duration,
    ) -> Self {
        let inner = Arc::new(Inner { store, signer, origin_prefix, logs: Mutex::new(HashMap::new()) });
        let (requests, queue) = mpsc::channel(QUEUE_CAPACITY);
        tasks::spawn("ledger-writer", run_writer(inner.clone(), queue));
        let (stop_publisher, stopped) = watch::channel(false);
        tasks::spawn("ledger-checkpoints", run_publisher(inner.clone(), checkpoint_interval, stopped));
        Self { inner, requests, closing: Arc::new(AtomicBool::new(false)), stop_publisher }
    }

    /// The origin line of a tenant's checkpoints.
    pub fn origin(&self, tenant: &TenantId) -> String {
        Checkpoint::origin_for(&self.inner.origin_prefix, tenant)
    }

    pub fn signer(&self) -> &CheckpointSigner {
        &self.inner.signer
    }

    /// Appends an entry to the tenant's log. Returns once it is durable.
    pub async fn append(&self, tenant: &TenantId, draft: EntryDraft) -> Result<Appended, LedgerError> {
        self.append_with(tenant, draft, Companions::default()).await
    }

    /// Appends an entry and writes `companions` in the same transaction (a step's run state,
    /// cost record, drift count). Returns once both are durable.
    pub async fn append_with(
        &self,
        tenant: &TenantId,
        draft: EntryDraft,
        companions: Companions,
    ) -> Result<Appended, LedgerError> {
        if self.closing.load(Ordering::Acquire) {
            return Err(LedgerError::WriterStopped);
        }
        let (reply, answer) = oneshot::channel();
        let request = Request::Append { tenant: tenant.clone(), draft, companions, reply };
        self.requests.send(request).await.map_err(|_| LedgerError::WriterStopped)?;
        answer.await.map_err(|_| LedgerError::WriterStopped)?
    }

    /// Queues an entry (and its companions) without waiting for the commit: for gateway calls,
    /// whose answer need not wait on the disk. Waits only while the bounded queue is full, so
    /// nothing is dropped; a batch that fails to commit is logged as an error and counted in
    /// `nexus_ledger_failed_entries_total`. The receiver may be dropped.
    pub async fn submit(
        &self,
        tenant: &TenantId,
        draft: EntryDraft,
        companions: Companions,
    ) -> Result<oneshot::Receiver<Result<Appended, LedgerError>>, LedgerError> {
        if self.closing.load(Ordering::Acquire) {
            return Err(LedgerError::WriterStopped);
        }
        let (reply, answer) = oneshot::channel();
        let request = Request::Append { tenant: tenant.clone(), draft, companions, reply };
        self.requests.send(request).await.map_err(|_| LedgerError::WriterStopped)?;
        Ok(answer)
    }

    /// Entries waiting for the writer.
    pub fn queue_depth(&self) -> usize {
        self.requests.max_capacity() - self.requests.capacity()
    }

    /// Writes rows without a ledger entry through the same group commit. Returns once durable.
    pub async fn write(&self, companions: Companions) -> Result<(), LedgerError> {
        if self.closing.load(Ordering::Acquire) {
            return Err(LedgerError::WriterStopped);
        }
        let (reply, answer) = oneshot::channel();
        self.requests.send(Request::Write { companions, reply }).await.map_err(|_| LedgerError::WriterStopped)?;
        answer.await.map_err(|_| LedgerError::WriterStopped)?
    }

    /// Refuses new appends, waits for queued ones to commit, and signs final checkpoints.
    pub async fn shutdown(&self) {
        self.closing.store(true, Ordering::Release);
        let (reply, done) = oneshot::channel();
        if self.requests.send(Request::Flush { reply }).await.is_ok() {
            let _ = done.await;
        }
        let _ = self.stop_publisher.send(true);
        if let Err(error) = self.inner.publish_due().await {
            tracing::warn!(%error, "could not sign the final checkpoints");
        }
    }

    /// Number of committed entries in the tenant's log.
    pub async fn size(&self, tenant: &TenantId) -> Result<u64, LedgerError> {
        self.inner.ensure_loaded(tenant).await?;
        Ok(self.inner.with_log(tenant, |log| log.tree.size()).unwrap_or(0))
    }

    /// Signs (and stores) a checkpoint of the tenant's current log, unless the newest stored
    /// checkpoint already covers it.
    pub async fn checkpoint(&self, tenant: &TenantId) -> Result<StoredCheckpoint, LedgerError> {
        self.inner.checkpoint(tenant).await
    }

    /// Signs checkpoints for every tenant whose log grew since its last checkpoint.
    pub async fn publish_checkpoints(&self) -> Result<(), LedgerError> {
        self.inner.publish_due().await
    }

    /// The audit path for entry `index` in the tree of `size` entries.
    pub async fn inclusion_proof(&self, tenant: &TenantId, index: u64, size: u64) -> Result<Vec<Hash>, LedgerError> {
        self.inner.ensure_size(tenant, size).await?;
        self.inner
            .with_log(tenant, |log| log.tree.inclusion_proof(index, size))
            .unwrap_or(Err(ledger::tree::TreeError::SizeOutOfRange { requested: size, available: 0 }))
            .map_err(|source| LedgerError::Tree { tenant: tenant.clone(), source })
    }

    /// The consistency proof between two sizes of the tenant's log.
    pub async fn consistency_proof(&self, tenant: &TenantId, old: u64, new: u64) -> Result<Vec<Hash>, LedgerError> {
        self.inner.ensure_size(tenant, new).await?;
        self.inner
            .with_log(tenant, |log| log.tree.consistency_proof(old, new))
            .unwrap_or(Err(ledger::tree::TreeError::SizeOutOfRange { requested: new, available: 0 }))
            .map_err(|source| LedgerError::Tree { tenant: tenant.clone(), source })
    }

    /// A self-contained inclusion proof of entry `index` against a signed checkpoint, signing
    /// a new checkpoint first if none covers the entry yet.
    pub async fn proof_bundle(&self, tenant: &TenantId, index: u64) -> Result<ProofBundle, LedgerError> {
        let store = &self.inner.store;
        let record = store
            .record(tenant, index)
            .await?
            .ok_or_else(|| LedgerError::NoSuchEntry { tenant: tenant.clone(), index })?;
        let checkpoint = match store.latest_checkpoint(tenant).await? {
            Some(c) if c.size > index => c,
            _ => self.checkpoint(tenant).await?,
        };
        let path = self.inclusion_proof(tenant, index, checkpoint.size).await?;
        Ok(ProofBundle::new(&record, &path, checkpoint.size, checkpoint.signed_note, self.inner.signer.verifier()))
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, HashMap<TenantId, TenantLog>> {
        // A panic while holding this lock cannot leave a half-applied batch (apply is
        // infallible), so a poisoned lock is still consistent.
        self.logs.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn with_log<T>(&self, tenant: &TenantId, f: impl FnOnce(&TenantLog) -> T) -> Option<T> {
        self.lock().get(tenant).map(f)
    }

    /// Loads the tenant's tree from the store unless it is in memory.
    async fn ensure_loaded(&self, tenant: &TenantId) -> Result<(), StoreError> {
        if self.lock().contains_key(tenant) {
            return Ok(());
        }
        let leaves = self.store.leaf_hashes(tenant).await?;
        let checkpointed = self.store.latest_checkpoint(tenant).await?.map_or(0, |c| c.size);
        let log = TenantLog { tree: MerkleTree::from_leaves(leaves), heads: HashMap::new(), checkpointed };
        self.lock().entry(tenant.clone()).or_insert(log);
        Ok(())
    }

    /// Loads the tenant's tree, reloading it if another replica has grown the log past `size`.
    async fn ensure_size(&self, tenant: &TenantId, size: u64) -> Result<(), StoreError> {
        self.ensure_loaded(tenant).await?;
        if self.with_log(tenant, |log| log.tree.size()).unwrap_or(0) < size {
            self.lock().remove(tenant);
            self.ensure_loaded(tenant).await?;
        }
        Ok(())
    }

    /// Makes sure every tenant in the batch is loaded and every chain head it needs is cached.
    async fn prepare(&self, batch: &[(TenantId, Option<ChainId>)]) -> Result<(), StoreError> {
        let mut needed: HashMap<&TenantId, HashSet<&Option<ChainId>>> = HashMap::new();
        for (tenant, chain) in batch {
            needed.entry(tenant).or_default().insert(chain);
        }
        for (tenant, chains) in needed {
            self.ensure_loaded(tenant).await?;
            let missing: Vec<Option<ChainId>> = {
                let mut logs = self.lock();
                let Some(log) = logs.get_mut(tenant) else { continue };
                if log.heads.len() + chains.len() > MAX_CACHED_HEADS {
                    log.heads.clear();
                }
                chains.into_iter().filter(|c| !log.heads.contains_key(*c)).cloned().collect()
            };
            let mut found = Vec::with_capacity(missing.len());
            for chain in missing {
                let head = self.store.last_fingerprint(tenant, chain.as_ref()).await?.unwrap_or_default();
                found.push((chain, head));
            }
            if let Some(log) = self.lock().get_mut(tenant) {
                log.heads.extend(found);
            }
        }
        Ok(())
    }

    /// Builds the records for a batch on top of the committed state, without changing it.
    fn stage(&self, batch: &[(TenantId, EntryDraft)]) -> Vec<LedgerRecord> {
        let mut next_index: HashMap<&TenantId, u64> = HashMap::new();
        let mut heads: HashMap<(&TenantId, &Option<ChainId>), String> = HashMap::new();
        {
            let logs = self.lock();
            for (tenant, draft) in batch {
                let Some(log) = logs.get(tenant) else { continue };
                next_index.entry(tenant).or_insert_with(|| log.tree.size());
                heads
                    .entry((tenant, &draft.chain_id))
                    .or_insert_with(|| log.heads.get(&draft.chain_id).cloned().unwrap_or_default());
            }
        }
        let now = Timestamp::now();
        batch
            .iter()
            .map(|(tenant, draft)| {
                let index = next_index.entry(tenant).or_insert(0);
                let parent = heads.remove(&(tenant, &draft.chain_id)).unwrap_or_default();
                let record = seal_draft(tenant, *index, draft, now, parent);
                *index += 1;
                heads.insert((tenant, &draft.chain_id), record.fingerprint.clone());
                record
            })
            .collect()
    }

    /// Folds committed records into the in-memory state.
    fn apply(&self, records: &[LedgerRecord]) {
        let mut logs = self.lock();
        for record in records {
            // A reader may have reloaded (or dropped) this tenant's log while the batch
            // committed; a log that is not exactly one entry short is dropped and reloaded from
            // the store on next use, never patched.
            let fits = logs.get(&record.tenant_id).is_some_and(|log| log.tree.size() == record.index);
            if !fits {
                logs.remove(&record.tenant_id);
                continue;
            }
            if let Some(log) = logs.get_mut(&record.tenant_id) {
                log.tree.push(record.leaf_hash);
                log.heads.insert(record.chain_id.clone(), record.fingerprint.clone());
            }
        }
    }

    fn forget(&self, tenants: &[TenantId]) {
        let mut logs = self.lock();
        for tenant in tenants {
            logs.remove(tenant);
        }
    }

    async fn commit(
        &self,
        batch: &[(TenantId, EntryDraft)],
        companions: &Companions,
    ) -> Result<Vec<LedgerRecord>, LedgerError> {
        let keys: Vec<(TenantId, Option<ChainId>)> =
            batch.iter().map(|(t, d)| (t.clone(), d.chain_id.clone())).collect();
        let mut attempt = 0;
        loop {
            self.prepare(&keys).await?;
            let records = self.stage(batch);
            match self.store.append_with(&records, companions).await {
                Ok(()) => {
                    self.apply(&records);
                    return Ok(records);
                }
                Err(StoreError::Conflict { what }) if attempt < CONFLICT_RETRIES => {
                    // Another writer (a replica on the same database) took these indexes:
                    // reload those tenants from the store and build the batch again.
                    attempt += 1;
                    tracing::info!(%what, attempt, "ledger index taken by another writer; reloading");
                    let tenants: Vec<TenantId> = keys.iter().map(|(t, _)| t.clone()).collect();
                    self.forget(&tenants);
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    async fn checkpoint(&self, tenant: &TenantId) -> Result<StoredCheckpoint, LedgerError> {
        self.ensure_loaded(tenant).await?;
        let (size, root) = self.with_log(tenant, |log| (log.tree.size(), log.tree.root())).unwrap_or((0, [0; 32]));
        if size == 0 {
            return Err(LedgerError::EmptyLog(tenant.clone()));
        }
        if let Some(latest) = self.store.latest_checkpoint(tenant).await?
            && latest.size >= size
        {
            return Ok(latest);
        }
        let checkpoint = Checkpoint { origin: Checkpoint::origin_for(&self.origin_prefix, tenant), size, root };
        let stored = StoredCheckpoint {
            tenant_id: tenant.clone(),
            size,
            root_hash: root,
            signed_note: self.signer.sign(&checkpoint),
            created_at: Timestamp::now(),
        };
        self.store.insert_checkpoint(&stored).await?;
        if let Some(log) = self.lock().get_mut(tenant) {
            log.checkpointed = log.checkpointed.max(size);
        }
        Ok(stored)
    }

    async fn publish_due(&self) -> Result<(), LedgerError> {
        let due: Vec<TenantId> = self
            .lock()
            .iter()
            .filter(|(_, log)| log.tree.size() > log.checkpointed)
            .map(|(tenant, _)| tenant.clone())
            .collect();
        for tenant in due {
            self.checkpoint(&tenant).await?;
        }
        Ok(())
    }
}

async fn run_writer(inner: Arc<Inner>, mut queue: mpsc::Receiver<Request>) {
    type AppendReply = oneshot::Sender<Result<Appended, LedgerError>>;
    let mut appends: Vec<(TenantId, EntryDraft, AppendReply)> = Vec::with_capacity(256);
    let mut writes: Vec<oneshot::Sender<Result<(), LedgerError>>> = Vec::new();
    let mut companions = Companions::default();
    let mut flushes = Vec::new();
    while let Some(first) = queue.recv().await {
        let mut next = Some(first);
        while let Some(request) = next {
            match request {
                Request::Append { tenant, draft, companions: extra, reply } => {
                    companions.extend(extra);
                    appends.push((tenant, draft, reply));
                }
                Request::Write { companions: extra, reply } => {
                    companions.extend(extra);
                    writes.push(reply);
                }
                Request::Flush { reply } => flushes.push(reply),
            }
            next = if appends.len() + writes.len() < MAX_BATCH { queue.try_recv().ok() } else { None };
        }
        if !appends.is_empty() || !writes.is_empty() {
            let (batch, replies): (Vec<(TenantId, EntryDraft)>, Vec<_>) =
                appends.drain(..).map(|(tenant, draft, reply)| ((tenant, draft), reply)).unzip();
            metrics::gauge!("nexus_ledger_queue_depth").set(queue.len() as f64);
            let started = std::time::Instant::now();
            let outcome = inner.commit(&batch, &std::mem::take(&mut companions)).await;
            metrics::histogram!("nexus_ledger_commit_seconds").record(started.elapsed().as_secs_f64());
            match outcome {
                Ok(records) => {
                    for (record, reply) in records.into_iter().zip(replies) {
                        let _ = reply.send(Ok(Appended {
                            index: record.index,
                            fingerprint: record.fingerprint,
                            leaf_hash: record.leaf_hash,
                            timestamp: record.timestamp,
                        }));
                    }
                    for reply in writes.drain(..) {
                        let _ = reply.send(Ok(()));
                    }
                }
                Err(error) => {
                    tracing::error!(%error, entries = replies.len(), "ledger batch failed; nothing was recorded");
                    metrics::counter!("nexus_ledger_failed_entries_total").increment(replies.len() as u64);
                    for reply in replies {
                        let _ = reply.send(Err(error.clone()));
                    }
                    for reply in writes.drain(..) {
                        let _ = reply.send(Err(error.clone()));
                    }
                }
            }
        }
        for reply in flushes.drain(..) {
            let _ = reply.send(());
        }
    }
}

async fn run_publisher(inner: Arc<Inner>, interval: Duration, mut stopped: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stopped.changed() => return,
        }
        if let Err(error) = inner.publish_due().await {
            tracing::warn!(%error, "signing checkpoints failed; will retry");
        }
    }
}

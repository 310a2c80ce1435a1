//! The ledger writer: group commit under a per-tenant lock held by the database, the tree kept
//! in the store (only its right edge is read to append), periodic signed checkpoints, and
//! proofs computed from stored tiles.
//!
//! Appends go through one writer task per process. It takes every request waiting in its queue
//! (up to [`MAX_BATCH`]) and hands them to the store's locked append: inside one transaction the
//! store locks each tenant's log head (so writers in other processes wait their turn), the
//! batch is sealed on top of the head it found, and entries, tree nodes, the new head and the
//! companion rows commit together. Only then is each caller answered: an `Ok` means durable.
//! While one transaction commits, the next batch gathers, so concurrent appends share a commit.
//!
//! A batch is never dropped: a failed commit is retried (with backoff) until it is durable. A
//! batch whose commit outcome is unknown (the connection died during `COMMIT`) is recognised
//! by its id in the head on the next attempt, so it is never written twice. While the store
//! fails, [`LedgerService::accepting`] says so and the bounded queue fills; callers that must
//! not wait ([`LedgerService::append_within`]) get [`LedgerError::Unavailable`].
//!
//! An entry may also be *queued* ([`LedgerService::enqueue`]): the caller goes on at once and
//! the writer commits it with the next batch. With nobody waiting on a batch, the writer lingers
//! up to [`QUEUED_LINGER`] to gather more, so queued entries cost one commit per few
//! milliseconds rather than one each; anything that waits (an append, a write, a flush) ends
//! the linger at once. Shutdown commits everything queued before it returns, unless the store
//! still refuses it after the 30 s grace (then the queued entries are lost, and logged as
//! such); a process killed outright loses what is still queued — normally its last few
//! milliseconds, more while a commit hangs on a failing store.
//!
//! Memory does not grow with the log: per tenant the writer caches the size it last saw and a
//! bounded map of chain heads; proofs read the few tiles they need (full tiles are immutable
//! and cached, bounded).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use domain::ledger::{EntryDraft, LedgerRecord, LockedLog, LogHead, LogLock, LogWrite, StoredCheckpoint};
use domain::ports::{Companions, Store, StoreError};
use domain::{ChainId, TenantId, Timestamp};
use ledger::Hash;
use ledger::bundle::ProofBundle;
use ledger::checkpoint::{Checkpoint, CheckpointSigner};
use ledger::encoding::{canonical_json, seal_canonical};
use ledger::tiles::{Frontier, ProofPlan};
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::LedgerError;
use crate::ledger_proofs::{TileCache, prove_from_store};
use crate::tasks;

/// The most entries committed in one transaction.
pub const MAX_BATCH: usize = 4096;
/// Queue length before appenders wait (back-pressure rather than unbounded memory).
const QUEUE_CAPACITY: usize = 16 * 1024;
/// Chain heads cached per tenant before that tenant's cache is emptied.
const MAX_CACHED_HEADS: usize = 10_000;
/// Tenants whose log state is cached before the cache is emptied (it is only a cache).
const MAX_CACHED_TENANTS: usize = 10_000;
/// Leaf hashes read per query when building a head from stored entries.
const REPAIR_PAGE: u64 = 65_536;
/// Waits between attempts at a batch the store refused.
const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(2);
/// After shutdown begins, how long a failing store is retried before queued entries are given
/// up (reported, never acknowledged).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// How long the writer waits for company before committing a batch nobody waits on.
pub const QUEUED_LINGER: Duration = Duration::from_millis(2);
/// Entries waiting for the writer beyond which a queued entry waits for its commit instead.
pub const QUEUED_BACKLOG: usize = 256;
/// The queue fill above which [`LedgerService::accepting`] turns callers away.
const QUEUE_HIGH_WATER: usize = QUEUE_CAPACITY * 9 / 10;

/// What an append returns once the entry is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub index: u64,
    pub fingerprint: String,
    pub leaf_hash: Hash,
    pub timestamp: Timestamp,
}

type AppendReply = oneshot::Sender<Result<Appended, LedgerError>>;

enum Request {
    Append {
        tenant: TenantId,
        draft: EntryDraft,
        companions: Companions,
        /// `None`: queued; nobody waits for this entry.
        reply: Option<AppendReply>,
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

/// What this process knows of a tenant's log: a hint, checked against the head under lock.
#[derive(Default)]
struct TenantLog {
    /// Log size after the last batch this process wrote.
    size: u64,
    /// Newest fingerprint per chain (`None` = entries outside any chain), valid at `size`.
    heads: HashMap<Option<ChainId>, String>,
    /// Size covered by the newest checkpoint this process signed or saw.
    checkpointed: u64,
}

struct Inner {
    store: Arc<dyn Store>,
    signer: CheckpointSigner,
    origin_prefix: String,
    logs: Mutex<HashMap<TenantId, TenantLog>>,
    tiles: Mutex<TileCache>,
    /// Set while the store refuses the current batch; cleared by the next commit.
    failing: AtomicBool,
    closing: AtomicBool,
    /// Held (shared) by `enqueue` from its check to its send, and (exclusive) by `shutdown`
    /// while it starts closing: a queued entry is either refused or ahead of the final flush.
    sending: std::sync::RwLock<()>,
}

/// Handle to the ledger: cheap to clone, shared by every front-end through the runtime.
#[derive(Clone)]
pub struct LedgerService {
    inner: Arc<Inner>,
    requests: mpsc::Sender<Request>,
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
        let inner = Arc::new(Inner {
            store,
            signer,
            origin_prefix,
            logs: Mutex::new(HashMap::new()),
            tiles: Mutex::new(TileCache::default()),
            failing: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            sending: std::sync::RwLock::new(()),
        });
        let (requests, queue) = mpsc::channel(QUEUE_CAPACITY);
        tasks::spawn("ledger-writer", run_writer(inner.clone(), queue));
        let (stop_publisher, stopped) = watch::channel(false);
        tasks::spawn("ledger-checkpoints", run_publisher(inner.clone(), checkpoint_interval, stopped));
        Self { inner, requests, stop_publisher }
    }

    /// Builds the head of every log whose head is missing or behind its entries (logs written
    /// before heads existed, or by raw appends): reads their leaf hashes once. Run at start. A
    /// log whose stored state does not fit together is reported and left for `nexus verify` to
    /// name; only a store that cannot be read fails.
    pub async fn catch_up(&self) -> Result<(), LedgerError> {
        for tenant in self.inner.store.ledger_tenants().await? {
            match self.inner.repair(&tenant).await {
                Ok(()) => {}
                Err(LedgerError::Damaged(reason)) => {
                    tracing::error!(%tenant, %reason, "the ledger is damaged; run `nexus verify` for details");
                }
                Err(error) => return Err(error),
            }
        }
        Ok(())
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
    /// cost record, drift count). Returns once both are durable; waits as long as the store
    /// needs (the writer retries until it succeeds).
    pub async fn append_with(
        &self,
        tenant: &TenantId,
        draft: EntryDraft,
        companions: Companions,
    ) -> Result<Appended, LedgerError> {
        if self.inner.closing.load(Ordering::Acquire) {
            return Err(LedgerError::WriterStopped);
        }
        let (reply, answer) = oneshot::channel();
        let request = Request::Append { tenant: tenant.clone(), draft, companions, reply: Some(reply) };
        self.requests.send(request).await.map_err(|_| LedgerError::WriterStopped)?;
        answer.await.map_err(|_| LedgerError::WriterStopped)?
    }

    /// Queues an entry (and its companions) without waiting for it: it commits with the next
    /// batch, within [`QUEUED_LINGER`] plus a commit, and before [`Self::shutdown`] returns.
    /// Refused at once, as [`Self::append_within`] is, when the store is failing or the queue
    /// is nearly full, so a caller never goes on with an entry the writer could not take.
    ///
    /// Back-pressure: while [`QUEUED_BACKLOG`] or more entries wait for the writer, the entry
    /// is appended as [`Self::append_within`] does instead — the caller waits for its commit (up
    /// to `wait`) and gets `Some` — so callers faster than the store slow down to its pace and
    /// the queue's memory stays small.
    pub async fn enqueue(
        &self,
        tenant: &TenantId,
        draft: EntryDraft,
        companions: Companions,
        wait: Duration,
    ) -> Result<Option<Appended>, LedgerError> {
        if self.queue_depth() >= QUEUED_BACKLOG {
            return self.append_within(tenant, draft, companions, wait).await.map(Some);
        }
        let request = Request::Append { tenant: tenant.clone(), draft, companions, reply: None };
        match self.send_queued(request) {
            None => Ok(None),
            Some((_, why)) => Err(why),
        }
    }

    /// Appends an entry its caller does not wait for, when the caller itself waits for a later
    /// write (an agent run's model call, before the run's next save): the writer commits in
    /// order, so the entry is durable no later than that write. While the store is failing or
    /// entries back up ([`QUEUED_BACKLOG`]), the caller waits for the commit instead, as
    /// [`Self::append_with`] does; so nothing is refused that `append_with` would take.
    pub async fn append_behind(
        &self,
        tenant: &TenantId,
        draft: EntryDraft,
        companions: Companions,
    ) -> Result<(), LedgerError> {
        let request = Request::Append { tenant: tenant.clone(), draft, companions, reply: None };
        let request = if self.queue_depth() >= QUEUED_BACKLOG {
            request
        } else {
            match self.send_queued(request) {
                None => return Ok(()),
                Some((_, LedgerError::WriterStopped)) => return Err(LedgerError::WriterStopped),
                Some((request, _)) => request,
            }
        };
        let Request::Append { draft, companions, .. } = request else {
            return Err(LedgerError::WriterStopped);
        };
        self.append_with(tenant, draft, companions).await.map(|_| ())
    }

    /// Sends a request nobody waits for, checked and sent under the gate shutdown closes: it is
    /// either ahead of the final flush or not sent. `None`: sent; else the request back, and why.
    fn send_queued(&self, request: Request) -> Option<(Request, LedgerError)> {
        let _sending = self.inner.sending.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Err(why) = self.accepting() {
            return Some((request, why));
        }
        self.requests.try_send(request).err().map(|error| match error {
            mpsc::error::TrySendError::Full(request) => {
                (request, LedgerError::Unavailable("the ledger queue is full".into()))
            }
            mpsc::error::TrySendError::Closed(request) => (request, LedgerError::WriterStopped),
        })
    }

    fn try_send(&self, request: Request) -> Result<(), LedgerError> {
        self.requests.try_send(request).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => LedgerError::Unavailable("the ledger queue is full".into()),
            mpsc::error::TrySendError::Closed(_) => LedgerError::WriterStopped,
        })
    }

    /// As [`Self::append_with`], for callers that must answer someone soon (the model gateway):
    /// refused at once with [`LedgerError::Unavailable`] when the store is failing or the queue
    /// is nearly full, and the same error if the entry is not durable within `wait`. An entry
    /// that timed out stays queued and is still recorded when the store recovers — it was never
    /// acknowledged, so nothing acknowledged is ever missing.
    pub async fn append_within(
        &self,
        tenant: &TenantId,
        draft: EntryDraft,
        companions: Companions,
        wait: Duration,
    ) -> Result<Appended, LedgerError> {
        self.accepting()?;
        let (reply, answer) = oneshot::channel();
        self.try_send(Request::Append { tenant: tenant.clone(), draft, companions, reply: Some(reply) })?;
        match tokio::time::timeout(wait, answer).await {
            Ok(answer) => answer.map_err(|_| LedgerError::WriterStopped)?,
            Err(_) => Err(LedgerError::Unavailable(format!(
                "the entry was not durable within {} ms; the store is slow or failing",
                wait.as_millis()
            ))),
        }
    }

    /// Whether a new entry would be taken now: `Err` while the store refuses commits, the queue
    /// is nearly full, or the service is shutting down.
    pub fn accepting(&self) -> Result<(), LedgerError> {
        if self.inner.closing.load(Ordering::Acquire) {
            return Err(LedgerError::WriterStopped);
        }
        if self.inner.failing.load(Ordering::Acquire) {
            return Err(LedgerError::Unavailable("the store is refusing ledger writes; retrying".into()));
        }
        if self.queue_depth() >= QUEUE_HIGH_WATER {
            return Err(LedgerError::Unavailable("the ledger queue is nearly full".into()));
        }
        Ok(())
    }

    /// Entries waiting for the writer.
    pub fn queue_depth(&self) -> usize {
        self.requests.max_capacity() - self.requests.capacity()
    }

    /// Bytes the service holds for logs and tiles (bounded by its cache limits, not by the
    /// size of any log).
    pub fn cached_bytes(&self) -> usize {
        let logs: usize = self
            .inner
            .lock()
            .values()
            .map(|log| {
                64 + log
                    .heads
                    .iter()
                    .map(|(c, f)| 48 + f.len() + c.as_ref().map_or(0, |c| c.as_str().len()))
                    .sum::<usize>()
            })
            .sum();
        logs + self.inner.tiles().heap_bytes()
    }

    /// Writes rows without a ledger entry through the same group commit. Returns once durable.
    pub async fn write(&self, companions: Companions) -> Result<(), LedgerError> {
        if self.inner.closing.load(Ordering::Acquire) {
            return Err(LedgerError::WriterStopped);
        }
        let (reply, answer) = oneshot::channel();
        self.requests.send(Request::Write { companions, reply }).await.map_err(|_| LedgerError::WriterStopped)?;
        answer.await.map_err(|_| LedgerError::WriterStopped)?
    }

    /// Refuses new appends, waits for queued ones to commit (giving up on a store that keeps
    /// failing after a grace period), and signs final checkpoints.
    pub async fn shutdown(&self) {
        {
            let _closing = self.inner.sending.write().unwrap_or_else(|poisoned| poisoned.into_inner());
            self.inner.closing.store(true, Ordering::Release);
        }
        let (reply, done) = oneshot::channel();
        if self.requests.send(Request::Flush { reply }).await.is_ok() {
            let _ = done.await;
        }
        let _ = self.stop_publisher.send(true);
        if let Err(error) = self.inner.publish_due().await {
            tracing::warn!(%error, "could not sign the final checkpoints");
        }
    }

    /// Number of committed entries in the tenant's log (read from the store, so entries other
    /// replicas appended count).
    pub async fn size(&self, tenant: &TenantId) -> Result<u64, LedgerError> {
        Ok(self.inner.store.log_head(tenant).await?.map_or(0, |h| h.size))
    }

    /// Signs (and stores) a checkpoint of the tenant's current log, unless the newest stored
    /// checkpoint already covers it.
    pub async fn checkpoint(&self, tenant: &TenantId) -> Result<StoredCheckpoint, LedgerError> {
        self.inner.checkpoint(tenant).await
    }

    /// The newest signed checkpoint of the tenant's log; one is signed now if none is stored.
    pub async fn latest_checkpoint(&self, tenant: &TenantId) -> Result<StoredCheckpoint, LedgerError> {
        match self.inner.store.latest_checkpoint(tenant).await? {
            Some(checkpoint) => Ok(checkpoint),
            None => self.checkpoint(tenant).await,
        }
    }

    /// The committed entry at `index`, if the log has one.
    pub async fn record(&self, tenant: &TenantId, index: u64) -> Result<Option<LedgerRecord>, LedgerError> {
        Ok(self.inner.store.record(tenant, index).await?)
    }

    /// A page of the tenant's entries, newest first, matching `filter`.
    pub async fn page(
        &self,
        tenant: &TenantId,
        filter: &domain::ports::RecordFilter,
        limit: u32,
    ) -> Result<Vec<LedgerRecord>, LedgerError> {
        Ok(self.inner.store.records_page(tenant, filter, limit).await?)
    }

    /// Every entry of one agent chain, in log order.
    pub async fn chain_records(&self, tenant: &TenantId, chain: &ChainId) -> Result<Vec<LedgerRecord>, LedgerError> {
        Ok(self.inner.store.chain_records(tenant, chain).await?)
    }

    /// Signs checkpoints for every tenant whose log grew since its last checkpoint.
    pub async fn publish_checkpoints(&self) -> Result<(), LedgerError> {
        self.inner.publish_due().await
    }

    /// The audit path for entry `index` in the tree of `size` entries.
    pub async fn inclusion_proof(&self, tenant: &TenantId, index: u64, size: u64) -> Result<Vec<Hash>, LedgerError> {
        self.inner.check_size(tenant, size).await?;
        let plan =
            ProofPlan::inclusion(index, size).map_err(|source| LedgerError::Tree { tenant: tenant.clone(), source })?;
        self.inner.prove(tenant, &plan).await
    }

    /// The consistency proof between two sizes of the tenant's log.
    pub async fn consistency_proof(&self, tenant: &TenantId, old: u64, new: u64) -> Result<Vec<Hash>, LedgerError> {
        self.inner.check_size(tenant, new).await?;
        let plan =
            ProofPlan::consistency(old, new).map_err(|source| LedgerError::Tree { tenant: tenant.clone(), source })?;
        self.inner.prove(tenant, &plan).await
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

/// Chain heads this process knows for a tenant, with the log size they are valid at.
type KnownHeads = (u64, HashMap<Option<ChainId>, String>);

/// One attempt's view of the batch, built inside the store's transaction.
struct Staging<'a> {
    batch: &'a [(TenantId, EntryDraft)],
    /// Each draft's payload in canonical form, made before the lock is taken.
    payloads: &'a [String],
    batch_id: &'a str,
    /// Chain heads this process knows, per tenant, with the size they are valid at.
    known: HashMap<TenantId, KnownHeads>,
    /// The latest attempt's writes (kept across attempts): if its commit's outcome was unknown
    /// and it did commit, these are what the store holds.
    last: &'a Mutex<Option<Vec<LogWrite>>>,
}

impl Staging<'_> {
    fn stage(&self, locked: &[LockedLog]) -> Result<Option<Vec<LogWrite>>, String> {
        if locked.iter().any(|log| log.head.last_batch.as_deref() == Some(self.batch_id)) {
            return Ok(None);
        }
        let now = Timestamp::now();
        let mut writes = Vec::with_capacity(locked.len());
        for log in locked {
            let mut frontier = Frontier::from_bytes(log.head.size, &log.head.frontier)
                .map_err(|e| format!("the log head of tenant {} is damaged: {e}", log.tenant))?;
            let mut heads: HashMap<&Option<ChainId>, Option<&str>> = HashMap::new();
            if let Some((at, known)) = self.known.get(&log.tenant)
                && *at == log.head.size
            {
                heads.extend(known.iter().map(|(chain, head)| (chain, Some(head.as_str()))));
            }
            heads.extend(log.fingerprints.iter().map(|(chain, head)| (chain, head.as_deref())));
            let mut parents: HashMap<Option<ChainId>, String> = HashMap::new();
            let mut records = Vec::new();
            let mut nodes = Vec::new();
            let drafts = self.batch.iter().zip(self.payloads).filter(|((tenant, _), _)| *tenant == log.tenant);
            for ((tenant, draft), payload) in drafts {
                let parent = match parents.get(&draft.chain_id) {
                    Some(parent) => parent.clone(),
                    None => heads.get(&draft.chain_id).copied().flatten().unwrap_or_default().to_owned(),
                };
                let record = seal_canonical(tenant, frontier.size(), draft, payload.clone(), now, parent);
                frontier.push(record.leaf_hash, &mut nodes);
                parents.insert(draft.chain_id.clone(), record.fingerprint.clone());
                records.push(record);
            }
            let head = LogHead {
                size: frontier.size(),
                frontier: frontier.to_bytes(),
                last_batch: Some(self.batch_id.to_owned()),
            };
            writes.push(LogWrite { tenant: log.tenant.clone(), records, nodes, head });
        }
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(writes.clone());
        Ok(Some(writes))
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, HashMap<TenantId, TenantLog>> {
        // The cache is only a hint checked under the store's lock, so a poisoned lock is still
        // safe to use.
        self.logs.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn tiles(&self) -> MutexGuard<'_, TileCache> {
        self.tiles.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Refuses a size the tenant's log has not reached.
    async fn check_size(&self, tenant: &TenantId, size: u64) -> Result<(), LedgerError> {
        let available = self.store.log_head(tenant).await?.map_or(0, |h| h.size);
        if size > available {
            let source = ledger::tree::TreeError::SizeOutOfRange { requested: size, available };
            return Err(LedgerError::Tree { tenant: tenant.clone(), source });
        }
        Ok(())
    }

    /// Reads the tiles a proof needs (full ones from the cache) and finishes it.
    async fn prove(&self, tenant: &TenantId, plan: &ProofPlan) -> Result<Vec<Hash>, LedgerError> {
        prove_from_store(self.store.as_ref(), tenant, plan, Some(&self.tiles)).await
    }

    /// Brings the tenant's head up to its stored entries (see [`LedgerService::catch_up`]).
    async fn repair(&self, tenant: &TenantId) -> Result<(), LedgerError> {
        let head = self.store.log_head(tenant).await?.unwrap_or_default();
        let stored = self.store.ledger_size(tenant).await?;
        if head.size == stored {
            return Ok(());
        }
        if head.size > stored {
            return Err(LedgerError::Damaged(format!(
                "tenant {tenant}: the log head says {} entries but {stored} are stored",
                head.size
            )));
        }
        let started = Instant::now();
        let mut frontier = Frontier::from_bytes(head.size, &head.frontier)
            .map_err(|e| LedgerError::Damaged(format!("tenant {tenant}: the log head is damaged: {e}")))?;
        let mut nodes = Vec::new();
        while frontier.size() < stored {
            let from = frontier.size();
            let leaves = self.store.tree_hashes(tenant, 0, from, (from + REPAIR_PAGE).min(stored)).await?;
            if leaves.is_empty() {
                return Err(LedgerError::Damaged(format!("tenant {tenant}: ledger entry #{from} is missing")));
            }
            for leaf in leaves {
                frontier.push(leaf, &mut nodes);
            }
        }
        let new_head = LogHead { size: frontier.size(), frontier: frontier.to_bytes(), last_batch: head.last_batch };
        match self.store.repair_log_head(tenant, head.size, &new_head, &nodes).await {
            // Another process moved the head meanwhile: it is being kept up by someone.
            Ok(()) | Err(StoreError::Conflict { .. }) => {}
            Err(error) => return Err(error.into()),
        }
        self.lock().remove(tenant);
        tracing::info!(%tenant, from = head.size, to = stored, took_ms = started.elapsed().as_millis() as u64,
            "built the ledger head from stored entries");
        Ok(())
    }

    /// What the store must read under lock for this batch, tenants in sorted order.
    fn locks_for(&self, batch: &[(TenantId, EntryDraft)]) -> (Vec<LogLock>, HashMap<TenantId, KnownHeads>) {
        let mut chains: std::collections::BTreeMap<&TenantId, Vec<&Option<ChainId>>> = Default::default();
        for (tenant, draft) in batch {
            let list = chains.entry(tenant).or_default();
            if !list.contains(&&draft.chain_id) {
                list.push(&draft.chain_id);
            }
        }
        let logs = self.lock();
        let mut locks = Vec::with_capacity(chains.len());
        let mut known = HashMap::new();
        for (tenant, wanted) in chains {
            let cached = logs.get(tenant);
            let (mut have, mut need) = (Vec::new(), Vec::new());
            let mut heads = HashMap::new();
            for chain in wanted {
                match cached.and_then(|log| log.heads.get(chain)) {
                    Some(head) => {
                        heads.insert(chain.clone(), head.clone());
                        have.push(chain.clone());
                    }
                    None => need.push(chain.clone()),
                }
            }
            let known_at = cached.map(|log| log.size);
            if let Some(at) = known_at {
                known.insert(tenant.clone(), (at, heads));
            }
            locks.push(LogLock { tenant: tenant.clone(), chains: need, known: have, known_at });
        }
        (locks, known)
    }

    /// Folds a committed batch into the cache.
    fn apply(&self, writes: &[LogWrite]) {
        let mut logs = self.lock();
        if logs.len() >= MAX_CACHED_TENANTS {
            logs.clear();
        }
        for write in writes {
            let Some(first) = write.records.first() else { continue };
            let log = logs.entry(write.tenant.clone()).or_default();
            if log.size != first.index {
                // Others appended since this process last wrote: heads of chains not in this
                // batch may have moved.
                log.heads.clear();
            }
            if log.heads.len() + write.records.len() > MAX_CACHED_HEADS {
                log.heads.clear();
            }
            for record in &write.records {
                log.heads.insert(record.chain_id.clone(), record.fingerprint.clone());
            }
            log.size = write.head.size;
        }
    }

    /// Commits a batch, retrying until it is durable (or, after shutdown began, until the
    /// grace period ends). Records come back in batch order.
    async fn commit(
        &self,
        batch: &[(TenantId, EntryDraft)],
        companions: &Companions,
    ) -> Result<Vec<LedgerRecord>, LedgerError> {
        let batch_id = ChainId::generate().as_str().to_owned();
        let payloads: Vec<String> = batch.iter().map(|(_, draft)| canonical_json(&draft.payload)).collect();
        let mut delay = RETRY_FIRST;
        let mut closing_since: Option<Instant> = None;
        let last = Mutex::new(None);
        loop {
            let (locks, known) = self.locks_for(batch);
            let staging = Staging { batch, payloads: &payloads, batch_id: &batch_id, known, last: &last };
            let outcome = if batch.is_empty() {
                self.store.append_with(&[], companions).await.map(|()| Some(Vec::new()))
            } else {
                self.store.append_locked(&locks, &|locked| staging.stage(locked), companions).await
            };
            let failure = match outcome {
                Ok(Some(writes)) => return Ok(self.committed(batch, writes)),
                // Found already committed: what the latest attempt built is what is stored.
                Ok(None) => match last.lock().unwrap_or_else(|p| p.into_inner()).take() {
                    Some(writes) => return Ok(self.committed(batch, writes)),
                    None => {
                        return Err(LedgerError::Damaged(format!(
                            "batch {batch_id} is recorded in a log head, but this writer never staged it"
                        )));
                    }
                },
                Err(StoreError::Conflict { what }) => {
                    // A writer that bypassed the heads (an older build, a raw append): bring
                    // the heads up to the stored entries and try again.
                    tracing::warn!(%what, "ledger index already taken; rebuilding the log heads");
                    for lock in &locks {
                        if let Err(error) = self.repair(&lock.tenant).await {
                            tracing::error!(%error, tenant = %lock.tenant, "could not rebuild the log head");
                        }
                    }
                    LedgerError::Store(StoreError::Conflict { what })
                }
                Err(error) => {
                    self.failing.store(true, Ordering::Release);
                    tracing::error!(%error, entries = batch.len(), retry_in_ms = delay.as_millis() as u64,
                        "ledger batch not committed; retrying (nothing is dropped)");
                    LedgerError::Store(error)
                }
            };
            metrics::counter!("nexus_ledger_commit_retries_total").increment(1);
            if self.closing.load(Ordering::Acquire) {
                let since = *closing_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= SHUTDOWN_GRACE {
                    return Err(failure);
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(RETRY_MAX);
        }
    }

    /// A batch is durable: the store accepts writes again, the cache learns the new heads.
    fn committed(&self, batch: &[(TenantId, EntryDraft)], writes: Vec<LogWrite>) -> Vec<LedgerRecord> {
        self.failing.store(false, Ordering::Release);
        self.apply(&writes);
        in_batch_order(batch, writes)
    }

    async fn checkpoint(&self, tenant: &TenantId) -> Result<StoredCheckpoint, LedgerError> {
        let head = self.store.log_head(tenant).await?.unwrap_or_default();
        if head.size == 0 {
            return Err(LedgerError::EmptyLog(tenant.clone()));
        }
        let root = Frontier::from_bytes(head.size, &head.frontier)
            .map_err(|e| LedgerError::Damaged(format!("tenant {tenant}: the log head is damaged: {e}")))?
            .root();
        let size = head.size;
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
            .filter(|(_, log)| log.size > log.checkpointed)
            .map(|(tenant, _)| tenant.clone())
            .collect();
        for tenant in due {
            self.checkpoint(&tenant).await?;
        }
        Ok(())
    }
}

/// The records of per-tenant writes, back in the order of the batch.
fn in_batch_order(batch: &[(TenantId, EntryDraft)], writes: Vec<LogWrite>) -> Vec<LedgerRecord> {
    let mut per_tenant: HashMap<TenantId, std::vec::IntoIter<LedgerRecord>> =
        writes.into_iter().map(|w| (w.tenant, w.records.into_iter())).collect();
    batch.iter().filter_map(|(tenant, _)| per_tenant.get_mut(tenant).and_then(Iterator::next)).collect()
}

/// What the writer has gathered for its next commit.
#[derive(Default)]
struct Gathered {
    appends: Vec<(TenantId, EntryDraft, Option<AppendReply>)>,
    writes: Vec<oneshot::Sender<Result<(), LedgerError>>>,
    companions: Companions,
    flushes: Vec<oneshot::Sender<()>>,
    /// Whether anyone waits on this batch (an append with a reply, a write, a flush).
    awaited: bool,
}

impl Gathered {
    fn take(&mut self, request: Request) {
        match request {
            Request::Append { tenant, draft, companions, reply } => {
                self.awaited |= reply.is_some();
                self.companions.extend(companions);
                self.appends.push((tenant, draft, reply));
            }
            Request::Write { companions, reply } => {
                self.awaited = true;
                self.companions.extend(companions);
                self.writes.push(reply);
            }
            Request::Flush { reply } => {
                self.awaited = true;
                self.flushes.push(reply);
            }
        }
    }

    fn full(&self) -> bool {
        self.appends.len() + self.writes.len() >= MAX_BATCH
    }

    /// Takes whatever is waiting in the queue now, up to a full batch.
    fn drain(&mut self, queue: &mut mpsc::Receiver<Request>) {
        while !self.full() {
            match queue.try_recv() {
                Ok(request) => self.take(request),
                Err(_) => return,
            }
        }
    }

    /// With nobody waiting, gathers what arrives within [`QUEUED_LINGER`] (or until someone
    /// who waits arrives, or the batch is full).
    async fn linger(&mut self, queue: &mut mpsc::Receiver<Request>, closing: &AtomicBool) {
        let deadline = tokio::time::Instant::now() + QUEUED_LINGER;
        while !self.awaited && !self.full() && !closing.load(Ordering::Acquire) {
            match tokio::time::timeout_at(deadline, queue.recv()).await {
                Ok(Some(request)) => {
                    self.take(request);
                    self.drain(queue);
                }
                Ok(None) | Err(_) => return,
            }
        }
    }
}

async fn run_writer(inner: Arc<Inner>, mut queue: mpsc::Receiver<Request>) {
    let mut gathered = Gathered::default();
    while let Some(first) = queue.recv().await {
        gathered.take(first);
        gathered.drain(&mut queue);
        gathered.linger(&mut queue, &inner.closing).await;
        let Gathered { appends, writes, companions, flushes, .. } = std::mem::take(&mut gathered);
        if !appends.is_empty() || !writes.is_empty() {
            let (batch, replies): (Vec<(TenantId, EntryDraft)>, Vec<_>) =
                appends.into_iter().map(|(tenant, draft, reply)| ((tenant, draft), reply)).unzip();
            metrics::gauge!("nexus_ledger_queue_depth").set(queue.len() as f64);
            let started = std::time::Instant::now();
            let outcome = inner.commit(&batch, &companions).await;
            metrics::histogram!("nexus_ledger_commit_seconds").record(started.elapsed().as_secs_f64());
            match outcome {
                Ok(records) => {
                    for (record, reply) in records.into_iter().zip(replies) {
                        let Some(reply) = reply else { continue };
                        let _ = reply.send(Ok(Appended {
                            index: record.index,
                            fingerprint: record.fingerprint,
                            leaf_hash: record.leaf_hash,
                            timestamp: record.timestamp,
                        }));
                    }
                    for reply in writes {
                        let _ = reply.send(Ok(()));
                    }
                }
                Err(error) => {
                    tracing::error!(%error, entries = replies.len(),
                        "ledger batch given up at shutdown after the store kept failing; these entries were never acknowledged as durable");
                    metrics::counter!("nexus_ledger_failed_entries_total").increment(replies.len() as u64);
                    for reply in replies.into_iter().flatten() {
                        let _ = reply.send(Err(error.clone()));
                    }
                    for reply in writes {
                        let _ = reply.send(Err(error.clone()));
                    }
                }
            }
        }
        for reply in flushes {
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

//! The word side of the knowledge service: one in-memory inverted index per tenant
//! ([`knowledge::LexicalIndex`], BM25 over a whole namespace), with the store staying the
//! source of truth.
//!
//! A tenant's index is built from its stored chunk texts on first use (page by page, the
//! tokenizing on blocking threads) and kept current by this process's ingests and deletions.
//! Other replicas' writes are noticed from the store's [`KnowledgeRevision`] (document count and
//! newest document), read at most once a [`REVALIDATE_EVERY`] per tenant by a search; when it
//! differs from what this process expects, the index is rebuilt in the background while
//! searches go on with the old one. The revision can miss a delete paired with a store whose
//! time is no later than the newest (a replica whose clock runs behind): that document is then
//! found by words only after the tenant's next change. Writes this process makes while a rebuild runs are replayed
//! onto the new index before it replaces the old, so they are never missed. Hits are always
//! read back from the store, so a chunk another replica deleted never comes back, even before
//! the rebuild.

use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use domain::knowledge::{ChunkRef, KnowledgeRevision};
use domain::ports::{Store, StoreError};
use domain::{DocumentId, TenantId};
use knowledge::{LexicalHit, LexicalIndex};

use super::PerTenant;
use super::vectors::access_rank;

/// Chunk texts read from the store per page while building an index.
const LOAD_PAGE: u32 = 5000;
/// How often a tenant's index is checked against the store's revision, at most.
pub(super) const REVALIDATE_EVERY: Duration = Duration::from_secs(1);

/// A write this process made while the tenant's index was being rebuilt.
enum Replay {
    Insert { document: DocumentId, namespace: String, access: u8, chunks: Vec<String>, created_at: i64 },
    Remove(DocumentId),
}

struct State {
    /// The store's revision as this process expects it (what the index reflects).
    expected: KnowledgeRevision,
    checked: Instant,
    /// Writes made since a rebuild started; `None` when none runs.
    rebuilding: Option<Vec<Replay>>,
}

/// One tenant's word index and what it is known to reflect.
pub(super) struct TenantWords {
    index: RwLock<LexicalIndex<DocumentId>>,
    state: Mutex<State>,
}

impl TenantWords {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The best `k` chunks for `query` in a namespace, readable at `max_access`.
    pub(super) fn search(
        &self,
        query: &str,
        namespace: &str,
        max_access: domain::knowledge::AccessLevel,
        k: usize,
    ) -> Vec<LexicalHit<DocumentId>> {
        let index = self.index.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        index.search(query, namespace, access_rank(max_access), k)
    }

    /// Adds a document this process stored (new in the store, `created_at` its time).
    pub(super) fn inserted(
        &self,
        document: &DocumentId,
        namespace: &str,
        access: u8,
        chunks: &[String],
        created_at: i64,
    ) {
        // The state's lock is taken first and held while the index changes (as a rebuild
        // does), so a write lands either in the replay or in the index that replaces it.
        let mut state = self.state();
        {
            let mut index = self.index.write().unwrap_or_else(|poisoned| poisoned.into_inner());
            if !index.contains_document(document) {
                state.expected.documents += 1;
            }
            for (ordinal, text) in (0u32..).zip(chunks) {
                index.insert(document.clone(), ordinal, namespace, access, text);
            }
        }
        state.expected.newest = state.expected.newest.max(created_at);
        if let Some(replay) = state.rebuilding.as_mut() {
            replay.push(Replay::Insert {
                document: document.clone(),
                namespace: namespace.to_owned(),
                access,
                chunks: chunks.to_vec(),
                created_at,
            });
        }
    }

    /// Removes a document this process deleted from the store.
    pub(super) fn removed(&self, document: &DocumentId) {
        let mut state = self.state();
        let removed = self.index.write().unwrap_or_else(|poisoned| poisoned.into_inner()).remove_document(document);
        if removed > 0 {
            state.expected.documents = state.expected.documents.saturating_sub(1);
        }
        if let Some(replay) = state.rebuilding.as_mut() {
            replay.push(Replay::Remove(document.clone()));
        }
    }
}

/// Every tenant's word index.
#[derive(Default)]
pub(super) struct Words {
    tenants: PerTenant<Arc<TenantWords>>,
}

impl Words {
    /// The tenant's index, built from the store the first time it is asked for (concurrent
    /// first calls build it once; a failed build is retried by the next call).
    pub(super) async fn index(
        &self,
        store: &Arc<dyn Store>,
        tenant: &TenantId,
    ) -> Result<Arc<TenantWords>, StoreError> {
        self.tenants
            .get_or_load(tenant, || async {
                let revision = store.knowledge_revision(tenant).await?;
                let index = build(store, tenant).await?;
                let state = State { expected: revision, checked: Instant::now(), rebuilding: None };
                Ok(Arc::new(TenantWords { index: RwLock::new(index), state: Mutex::new(state) }))
            })
            .await
    }

    /// The tenant's index if it is built already (writes need not build one: it will read
    /// them from the store when it is).
    pub(super) fn built(&self, tenant: &TenantId) -> Option<Arc<TenantWords>> {
        self.tenants.loaded(tenant)
    }
}

/// Checks the tenant's index against the store at most once a [`REVALIDATE_EVERY`]; when the
/// store holds other documents than the index expects, rebuilds it in the background and
/// returns true (the tenant's other indexes are then stale too).
pub(super) async fn revalidate(words: &Arc<TenantWords>, store: &Arc<dyn Store>, tenant: &TenantId) -> bool {
    {
        let mut state = words.state();
        if state.rebuilding.is_some() || state.checked.elapsed() < REVALIDATE_EVERY {
            return false;
        }
        state.checked = Instant::now();
    }
    let found = match store.knowledge_revision(tenant).await {
        Ok(found) => found,
        Err(error) => {
            tracing::warn!(%tenant, %error, "could not check the knowledge word index against the store");
            return false;
        }
    };
    {
        let mut state = words.state();
        if state.expected == found || state.rebuilding.is_some() {
            return false;
        }
        state.rebuilding = Some(Vec::new());
    }
    let (words, store, tenant) = (Arc::clone(words), Arc::clone(store), tenant.clone());
    crate::tasks::spawn("knowledge-words", async move {
        // A rebuild that panics still ends: the next check may start another.
        let ended = EndRebuild(Arc::clone(&words));
        rebuild(&words, &store, &tenant).await;
        drop(ended);
    });
    true
}

/// Marks the tenant's rebuild over when dropped (normally a no-op: `rebuild` did it).
struct EndRebuild(Arc<TenantWords>);

impl Drop for EndRebuild {
    fn drop(&mut self) {
        self.0.state().rebuilding = None;
    }
}

/// Builds a fresh index from the store and puts it in place of the old one, replaying this
/// process's writes made meanwhile.
async fn rebuild(words: &TenantWords, store: &Arc<dyn Store>, tenant: &TenantId) {
    let built = async {
        let revision = store.knowledge_revision(tenant).await?;
        Ok::<_, StoreError>((revision, build(store, tenant).await?))
    }
    .await;
    let mut state = words.state();
    let replay = state.rebuilding.take().unwrap_or_default();
    match built {
        Ok((revision, mut index)) => {
            let mut expected = revision;
            for op in replay {
                match op {
                    Replay::Insert { document, namespace, access, chunks, created_at } => {
                        if !index.contains_document(&document) {
                            expected.documents += 1;
                        }
                        expected.newest = expected.newest.max(created_at);
                        for (ordinal, text) in (0u32..).zip(&chunks) {
                            index.insert(document.clone(), ordinal, &namespace, access, text);
                        }
                    }
                    Replay::Remove(document) => {
                        if index.remove_document(&document) > 0 {
                            expected.documents = expected.documents.saturating_sub(1);
                        }
                    }
                }
            }
            *words.index.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = index;
            state.expected = expected;
            tracing::debug!(%tenant, "knowledge word index rebuilt after another replica's change");
        }
        Err(error) => {
            // The next check finds the revision still different and tries again.
            tracing::warn!(%tenant, %error, "could not rebuild the knowledge word index; searching the old one");
        }
    }
    state.checked = Instant::now();
}

/// Reads every chunk text of the tenant into a new index, tokenizing each page on a blocking
/// thread.
async fn build(store: &Arc<dyn Store>, tenant: &TenantId) -> Result<LexicalIndex<DocumentId>, StoreError> {
    let started = Instant::now();
    let mut index = LexicalIndex::new();
    let mut after: Option<ChunkRef> = None;
    loop {
        let page = store.chunk_texts(tenant, after.as_ref(), LOAD_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.chunk.clone());
        index = tokio::task::spawn_blocking(move || {
            for chunk in page {
                let ChunkRef { document_id, ordinal } = chunk.chunk;
                index.insert(document_id, ordinal, &chunk.namespace, access_rank(chunk.access_level), &chunk.text);
            }
            index
        })
        .await
        .map_err(|e| StoreError::Backend(format!("building the knowledge word index: {e}")))?;
    }
    index.shrink_to_fit();
    tracing::info!(%tenant, chunks = index.len(), bytes = index.heap_bytes(),
        took_ms = started.elapsed().as_millis() as u64, "knowledge word index built");
    Ok(index)
}

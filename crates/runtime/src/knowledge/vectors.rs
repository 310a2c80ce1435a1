//! The vector side of the knowledge service: the embedder run on blocking threads, and the
//! per-tenant in-memory indexes, each loaded from the store on first use (page by page) and
//! then kept up to date by this process's ingests and deletions.
//!
//! Other replicas' writes reach an index by a reload: when the word index finds that the store
//! changed under it (see `words`), the tenant's vectors are read again in the background while
//! searches go on with the old ones. Writes this process makes while a reload runs are
//! replayed onto the new index before it replaces the old, so they are never missed.

use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use domain::TenantId;
use domain::embed::{EmbedError, Embedder};
use domain::ports::{Store, StoreError};
use domain::{DocumentId, knowledge::ChunkRef};
use knowledge::{VectorHit, VectorIndex};

use super::PerTenant;

/// Chunk vectors read from the store per page while loading an index.
const LOAD_PAGE: u32 = 2000;
/// Texts given to the embedder at once.
const EMBED_BATCH: usize = 32;

/// One chunk's vector, with what the index files it under.
pub(super) struct VectorChunk {
    pub document: DocumentId,
    pub ordinal: u32,
    pub namespace: String,
    pub access: u8,
    pub vector: Vec<f32>,
}

/// A write this process made while the tenant's index was being reloaded.
enum Replay {
    /// A document's vectors, in place of any it had.
    Replace {
        document: DocumentId,
        namespace: String,
        access: u8,
        vectors: Vec<Vec<f32>>,
    },
    /// Vectors added to chunks that had none (a backfill).
    Add(Vec<VectorChunk>),
    Remove(DocumentId),
}

/// One tenant's vectors, and the writes to replay when a reload ends.
pub(super) struct TenantVectors {
    index: RwLock<VectorIndex<DocumentId>>,
    /// Writes made since a reload started; `None` when none runs.
    reloading: Mutex<Option<Vec<Replay>>>,
}

pub(super) type TenantIndex = Arc<TenantVectors>;

impl TenantVectors {
    fn reloading(&self) -> MutexGuard<'_, Option<Vec<Replay>>> {
        self.reloading.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, VectorIndex<DocumentId>> {
        self.index.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Puts a document's vectors (one per chunk, in order) in place of any it had. The vectors
    /// must have the index's size and be finite (checked when embedded).
    pub(super) fn replace(&self, document: &DocumentId, namespace: &str, access: u8, vectors: &[Vec<f32>]) {
        // The reload's lock is taken first and held while the index changes (as a reload
        // does when it swaps), so a write lands either in the replay or in the new index.
        let mut reloading = self.reloading();
        replace(&mut self.write(), document, namespace, access, vectors);
        if let Some(replay) = reloading.as_mut() {
            replay.push(Replay::Replace {
                document: document.clone(),
                namespace: namespace.to_owned(),
                access,
                vectors: vectors.to_vec(),
            });
        }
    }

    /// Adds vectors to chunks that had none.
    pub(super) fn add(&self, chunks: Vec<VectorChunk>) {
        let mut reloading = self.reloading();
        add(&mut self.write(), &chunks);
        if let Some(replay) = reloading.as_mut() {
            replay.push(Replay::Add(chunks));
        }
    }

    /// Removes a document's vectors.
    pub(super) fn remove(&self, document: &DocumentId) {
        let mut reloading = self.reloading();
        self.write().remove_document(document);
        if let Some(replay) = reloading.as_mut() {
            replay.push(Replay::Remove(document.clone()));
        }
    }
}

fn replace(
    index: &mut VectorIndex<DocumentId>,
    document: &DocumentId,
    namespace: &str,
    access: u8,
    vectors: &[Vec<f32>],
) {
    index.remove_document(document);
    for (ordinal, vector) in (0u32..).zip(vectors) {
        // A vector of the wrong size was refused before it was stored.
        let _ = index.insert(document.clone(), ordinal, namespace, access, vector);
    }
}

/// Adds chunks the index does not hold yet (a reloaded index may have read them already).
fn add(index: &mut VectorIndex<DocumentId>, chunks: &[VectorChunk]) {
    for chunk in chunks {
        if !index.contains(&chunk.document, chunk.ordinal) {
            let _ = index.insert(chunk.document.clone(), chunk.ordinal, &chunk.namespace, chunk.access, &chunk.vector);
        }
    }
}

/// The embedder and the tenants' indexes.
pub(super) struct Vectors {
    pub(super) embedder: Arc<dyn Embedder>,
    indexes: PerTenant<TenantIndex>,
}

impl Vectors {
    pub(super) fn new(embedder: Arc<dyn Embedder>) -> Self {
        Self { embedder, indexes: PerTenant::default() }
    }

    /// The tenant's index, loaded from the store the first time it is asked for. Concurrent
    /// first calls load it once; a failed load is retried by the next call.
    pub(super) async fn index(&self, store: &dyn Store, tenant: &TenantId) -> Result<TenantIndex, StoreError> {
        self.indexes
            .get_or_load(tenant, || async {
                let index = load(store, tenant, self.embedder.model(), self.embedder.dims()).await?;
                Ok(Arc::new(TenantVectors { index: RwLock::new(index), reloading: Mutex::new(None) }))
            })
            .await
    }

    /// Reads the tenant's vectors again in the background, if its index is loaded and no
    /// reload runs: the store changed in a way this process did not make.
    pub(super) fn reload(&self, store: &Arc<dyn Store>, tenant: &TenantId) {
        let Some(vectors) = self.indexes.loaded(tenant) else { return };
        {
            let mut reloading = vectors.reloading();
            if reloading.is_some() {
                return;
            }
            *reloading = Some(Vec::new());
        }
        let (store, tenant) = (Arc::clone(store), tenant.clone());
        let (model, dims) = (self.embedder.model().to_owned(), self.embedder.dims());
        crate::tasks::spawn("knowledge-vectors", async move {
            // A reload that panics still ends: the next change may start another.
            let ended = EndReload(Arc::clone(&vectors));
            let loaded = load(store.as_ref(), &tenant, &model, dims).await;
            let mut reloading = vectors.reloading();
            let replay = reloading.take().unwrap_or_default();
            match loaded {
                Ok(mut index) => {
                    for op in replay {
                        match op {
                            Replay::Replace { document, namespace, access, vectors } => {
                                replace(&mut index, &document, &namespace, access, &vectors);
                            }
                            Replay::Add(chunks) => add(&mut index, &chunks),
                            Replay::Remove(document) => {
                                index.remove_document(&document);
                            }
                        }
                    }
                    *vectors.write() = index;
                    tracing::debug!(%tenant, "knowledge vector index reloaded after another replica's change");
                }
                Err(error) => {
                    tracing::warn!(%tenant, %error,
                        "could not reload the knowledge vector index; searching the old one until the next change");
                }
            }
            drop(reloading);
            drop(ended);
        });
    }

    /// Embeds texts on a blocking thread, checking what comes back: one finite vector of the
    /// model's size per text.
    pub(super) async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError> {
        let embedder = Arc::clone(&self.embedder);
        let vectors = tokio::task::spawn_blocking(move || {
            let mut out = Vec::with_capacity(texts.len());
            for batch in texts.chunks(EMBED_BATCH) {
                let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
                out.extend(embedder.embed(&refs)?);
            }
            Ok::<_, EmbedError>(out)
        })
        .await
        .map_err(|e| EmbedError(format!("the embedding task failed: {e}")))??;
        Ok(vectors)
    }

    /// Checks vectors against the texts they should embed.
    pub(super) fn check(&self, texts: usize, vectors: &[Vec<f32>]) -> Result<(), EmbedError> {
        let dims = self.embedder.dims();
        if vectors.len() != texts {
            return Err(EmbedError(format!("{} vectors for {texts} texts", vectors.len())));
        }
        if let Some(bad) = vectors.iter().find(|v| v.len() != dims || v.iter().any(|x| !x.is_finite())) {
            return Err(EmbedError(format!("a vector of {} values, expected {dims} finite values", bad.len())));
        }
        Ok(())
    }

    /// Embeds a query and searches the tenant's index, both on a blocking thread.
    pub(super) async fn search(
        &self,
        index: TenantIndex,
        query: &str,
        namespace: &str,
        max_access: u8,
        k: usize,
    ) -> Result<Vec<VectorHit<DocumentId>>, EmbedError> {
        let embedder = Arc::clone(&self.embedder);
        let (query, namespace) = (query.to_owned(), namespace.to_owned());
        tokio::task::spawn_blocking(move || {
            let mut vectors = embedder.embed(&[query.as_str()])?;
            let vector = vectors.pop().ok_or_else(|| EmbedError("no vector for the query".into()))?;
            let index = index.index.read().unwrap_or_else(|poisoned| poisoned.into_inner());
            Ok(index.search(&vector, &namespace, max_access, k))
        })
        .await
        .map_err(|e| EmbedError(format!("the search task failed: {e}")))?
    }
}

/// Access levels as the index stores them.
pub(super) fn access_rank(level: domain::knowledge::AccessLevel) -> u8 {
    u8::try_from(level.rank()).unwrap_or(u8::MAX)
}

/// Marks the tenant's reload over when dropped (normally a no-op: the reload did it).
struct EndReload(Arc<TenantVectors>);

impl Drop for EndReload {
    fn drop(&mut self) {
        *self.0.reloading() = None;
    }
}

/// Reads every stored vector of the tenant from `model` into a new index.
async fn load(
    store: &dyn Store,
    tenant: &TenantId,
    model: &str,
    dims: usize,
) -> Result<VectorIndex<DocumentId>, StoreError> {
    let mut index = VectorIndex::new(dims);
    let mut after: Option<ChunkRef> = None;
    let mut skipped = 0usize;
    loop {
        let page = store.chunk_vectors(tenant, model, after.as_ref(), LOAD_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.chunk.clone());
        for stored in page {
            let access = access_rank(stored.access_level);
            let ChunkRef { document_id, ordinal } = stored.chunk;
            if index.insert(document_id, ordinal, &stored.namespace, access, &stored.vector).is_err() {
                skipped += 1;
            }
        }
    }
    if skipped > 0 {
        tracing::warn!(%tenant, skipped, model, "stored chunk vectors of the wrong size were not loaded");
    }
    tracing::info!(%tenant, vectors = index.len(), model, "knowledge vector index loaded");
    Ok(index)
}

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
/// Passes a reload makes in a row while the store keeps changing under it (this process's own
/// ingests change it too; those are replayed, so a pass more is only a precaution).
const RELOAD_PASSES: usize = 3;
/// The pause before retrying a reload that could not read the store, doubling up to the last.
const RETRY_FIRST: std::time::Duration = std::time::Duration::from_secs(1);
const RETRY_LAST: std::time::Duration = std::time::Duration::from_secs(60);

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

/// A reload in progress.
#[derive(Default)]
struct Reload {
    /// Writes this process made since the reload started.
    replay: Vec<Replay>,
    /// Another change was reported while it ran: read the store once more when it ends.
    again: bool,
}

/// One tenant's vectors, and the writes to replay when a reload ends.
pub(super) struct TenantVectors {
    index: RwLock<VectorIndex<DocumentId>>,
    /// `None` when no reload runs.
    reloading: Mutex<Option<Reload>>,
}

pub(super) type TenantIndex = Arc<TenantVectors>;

impl TenantVectors {
    fn new(index: VectorIndex<DocumentId>) -> Self {
        Self { index: RwLock::new(index), reloading: Mutex::new(None) }
    }

    fn reloading(&self) -> MutexGuard<'_, Option<Reload>> {
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
        if let Some(reload) = reloading.as_mut() {
            reload.replay.push(Replay::Replace {
                document: document.clone(),
                namespace: namespace.to_owned(),
                access,
                vectors: vectors.to_vec(),
            });
        }
    }

    /// Adds vectors to chunks that had none (so the index cannot hold them yet).
    pub(super) fn add(&self, chunks: Vec<VectorChunk>) {
        let mut reloading = self.reloading();
        {
            let mut index = self.write();
            for chunk in &chunks {
                let _ =
                    index.insert(chunk.document.clone(), chunk.ordinal, &chunk.namespace, chunk.access, &chunk.vector);
            }
        }
        if let Some(reload) = reloading.as_mut() {
            reload.replay.push(Replay::Add(chunks));
        }
    }

    /// Removes a document's vectors.
    pub(super) fn remove(&self, document: &DocumentId) {
        let mut reloading = self.reloading();
        self.write().remove_document(document);
        if let Some(reload) = reloading.as_mut() {
            reload.replay.push(Replay::Remove(document.clone()));
        }
    }

    /// Starts a reload unless one runs (then it is asked to read the store once more); true
    /// when the caller is to run it.
    fn begin_reload(&self) -> bool {
        let mut reloading = self.reloading();
        match reloading.as_mut() {
            Some(reload) => {
                reload.again = true;
                false
            }
            None => {
                *reloading = Some(Reload::default());
                true
            }
        }
    }

    /// Puts a freshly loaded index in place, with this process's writes since the reload
    /// began replayed onto it. True when another pass was asked for meanwhile (or `again`):
    /// the reload then stays open, recording writes afresh.
    fn install(&self, mut index: VectorIndex<DocumentId>, again: bool) -> bool {
        let mut reloading = self.reloading();
        let reload = reloading.take().unwrap_or_default();
        for op in reload.replay {
            match op {
                Replay::Replace { document, namespace, access, vectors } => {
                    replace(&mut index, &document, &namespace, access, &vectors);
                }
                // Skipped where the store had given the loaded index those vectors already.
                Replay::Add(chunks) => {
                    for chunk in chunks {
                        if !index.contains(&chunk.document, chunk.ordinal) {
                            let _ = index.insert(
                                chunk.document,
                                chunk.ordinal,
                                &chunk.namespace,
                                chunk.access,
                                &chunk.vector,
                            );
                        }
                    }
                }
                Replay::Remove(document) => {
                    index.remove_document(&document);
                }
            }
        }
        *self.write() = index;
        let again = again || reload.again;
        if again {
            *reloading = Some(Reload::default());
        }
        again
    }

    /// Ends a reload that could not read the store, keeping the index as it is; true when
    /// another pass was asked for meanwhile.
    fn abandon(&self) -> bool {
        self.reloading().take().is_some_and(|reload| reload.again)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.index.read().unwrap_or_else(|poisoned| poisoned.into_inner()).len()
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
                Ok(Arc::new(TenantVectors::new(index)))
            })
            .await
    }

    /// Reads the tenant's vectors again in the background, if its index is loaded: the store
    /// changed in a way this process did not make. A reload already running reads the store
    /// once more when it ends. So does one during which the store changed again (a document
    /// committed while the pages went by may sort before the page being read), up to
    /// [`RELOAD_PASSES`] passes in a row; one that fails is retried with a growing pause.
    pub(super) fn reload(&self, store: &Arc<dyn Store>, tenant: &TenantId) {
        let Some(vectors) = self.indexes.loaded(tenant) else { return };
        if !vectors.begin_reload() {
            return;
        }
        let (store, tenant) = (Arc::clone(store), tenant.clone());
        let (model, dims) = (self.embedder.model().to_owned(), self.embedder.dims());
        crate::tasks::spawn("knowledge-vectors", async move {
            // A reload that panics still ends: the next change may start another.
            let ended = EndReload(Arc::clone(&vectors));
            let (mut passes, mut pause) = (0usize, RETRY_FIRST);
            loop {
                passes += 1;
                let loaded = async {
                    let before = store.knowledge_revision(&tenant).await?;
                    let index = load(store.as_ref(), &tenant, &model, dims).await?;
                    let after = store.knowledge_revision(&tenant).await?;
                    Ok::<_, StoreError>((index, before != after))
                }
                .await;
                let again = match loaded {
                    Ok((index, changed)) => {
                        let again = vectors.install(index, changed && passes < RELOAD_PASSES);
                        tracing::debug!(%tenant, again, "knowledge vector index reloaded after another replica's change");
                        pause = RETRY_FIRST;
                        again
                    }
                    Err(error) => {
                        tracing::warn!(%tenant, %error, retry_in_s = pause.as_secs(),
                            "could not reload the knowledge vector index; searching the old one meanwhile");
                        vectors.abandon();
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(RETRY_LAST);
                        // Reopened for the retry (unless a new change began a reload meanwhile).
                        vectors.begin_reload()
                    }
                };
                if !again {
                    break;
                }
                if passes >= RELOAD_PASSES {
                    passes = 0;
                }
            }
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

/// Marks the tenant's reload over if its task panics.
struct EndReload(Arc<TenantVectors>);

impl Drop for EndReload {
    fn drop(&mut self) {
        // Only when unwinding: a reload that ended normally may already have been followed by
        // a new one, whose state this must not clear.
        if std::thread::panicking() {
            *self.0.reloading() = None;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(n: u32) -> DocumentId {
        DocumentId::parse(format!("d{n}")).expect("an id")
    }

    fn unit(i: usize) -> Vec<f32> {
        let mut v = vec![0.0; 4];
        v[i % 4] = 1.0;
        v
    }

    /// An index holding these (document, ordinal) chunks.
    fn index(chunks: &[(u32, u32)]) -> VectorIndex<DocumentId> {
        let mut index = VectorIndex::new(4);
        for &(d, ordinal) in chunks {
            index.insert(doc(d), ordinal, "docs", 0, &unit(ordinal as usize)).expect("insert");
        }
        index
    }

    fn holds(vectors: &TenantVectors, d: u32, ordinal: u32) -> bool {
        vectors.index.read().expect("lock").contains(&doc(d), ordinal)
    }

    #[test]
    fn writes_made_during_a_reload_are_replayed_onto_the_loaded_index_once() {
        let vectors = TenantVectors::new(index(&[(1, 0), (2, 0)]));
        assert!(vectors.begin_reload());
        assert!(!vectors.begin_reload(), "one runs already: it is asked to read the store once more");

        // This process's writes while the store is being read.
        vectors.replace(&doc(3), "docs", 0, &[unit(0), unit(1)]);
        vectors.remove(&doc(1));
        let backfilled =
            VectorChunk { document: doc(2), ordinal: 1, namespace: "docs".into(), access: 0, vector: unit(1) };
        vectors.add(vec![backfilled]);
        assert_eq!(vectors.len(), 4, "the old index takes them too");

        // What the reload read: another replica's d4; d1, read before its deletion; d3 and
        // d2's new chunk, read after they were written.
        let again = vectors.install(index(&[(1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (4, 0)]), false);
        assert!(again, "asked for again while it ran");
        assert!(!holds(&vectors, 1, 0), "the deletion is replayed");
        assert!(holds(&vectors, 4, 0), "the other replica's document is in");
        assert_eq!(vectors.len(), 5, "d2 and d3 twice each, d4 once: nothing twice");

        // The second pass records afresh; a load that missed this process's write still ends
        // with it, and the reload closes.
        vectors.replace(&doc(5), "docs", 0, &[unit(2)]);
        assert!(!vectors.install(index(&[(2, 0), (2, 1), (3, 0), (3, 1), (4, 0)]), false));
        assert!(holds(&vectors, 5, 0));
        assert_eq!(vectors.len(), 6);
        assert!(vectors.reloading().is_none());
        assert!(vectors.begin_reload(), "a later change starts a new reload");
        assert!(!vectors.abandon(), "nothing asked for meanwhile");
        assert!(vectors.reloading().is_none());
    }
}

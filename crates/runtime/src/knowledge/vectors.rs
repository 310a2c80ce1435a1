//! The vector side of the knowledge service: the embedder run on blocking threads, and the
//! per-tenant in-memory indexes, each loaded from the store on first use (page by page) and
//! then kept up to date by this process's ingests and deletions.

use std::sync::{Arc, RwLock};

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

pub(super) type TenantIndex = Arc<RwLock<VectorIndex<DocumentId>>>;

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
        self.indexes.get_or_load(tenant, || self.load(store, tenant)).await
    }

    async fn load(&self, store: &dyn Store, tenant: &TenantId) -> Result<TenantIndex, StoreError> {
        let model = self.embedder.model().to_owned();
        let mut index = VectorIndex::new(self.embedder.dims());
        let mut after: Option<ChunkRef> = None;
        let mut skipped = 0usize;
        loop {
            let page = store.chunk_vectors(tenant, &model, after.as_ref(), LOAD_PAGE).await?;
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
        Ok(Arc::new(RwLock::new(index)))
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
            let index = index.read().unwrap_or_else(|poisoned| poisoned.into_inner());
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

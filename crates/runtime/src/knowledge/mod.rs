//! The knowledge base as the runtime offers it: ingesting files and text (extracted, chunked,
//! de-duplicated, embedded when an embedder is configured) and hybrid search — BM25 over a
//! whole namespace fused by reciprocal rank with vector similarity — for the `knowledge_search`
//! tool, the engine's retrieval step and the front-ends.
//!
//! Both rankings run from per-tenant in-memory indexes, each built from the store on first use
//! and kept up to date by this process's ingests and deletions: words ([`words`]: BM25 scores
//! every chunk of the namespace that holds a query term, so common words cost milliseconds, not
//! a database scan) and, with an embedder, vectors. Without an embedder, search is BM25 only
//! (said once in the log). Documents another replica ingests are found within about a second
//! (the word index checks the store's revision and rebuilds in the background, and the vectors
//! are reloaded with it; see `words` for what that check can miss); documents it deletes
//! disappear at once, because hits are always read back from the store. A back-fill run by
//! another process adds vectors to stored chunks without changing any document, so those are
//! found here after the tenant's next document change or a restart.

mod vectors;
mod words;

use std::collections::HashMap;
use std::sync::{Arc, Once};

use async_trait::async_trait;
use domain::embed::{EmbedError, Embedder};
use domain::knowledge::{AccessLevel, ChunkEmbeddings, ChunkRef, KnowledgeDocument};
use domain::ports::{ChunkHit, Store, StoreError};
use domain::{DocumentId, TenantId, Timestamp};
use serde_json::{Value, json};
use tools::{KnowledgeHit, KnowledgeIndex};

use self::vectors::{VectorChunk, Vectors, access_rank};

/// Ranked entries of each list given to fusion.
const FUSED_DEPTH: usize = 50;
/// Vector hits below this cosine similarity are noise, not matches.
const MIN_SIMILARITY: f32 = 0.2;

/// Ingest and hybrid search over tenants' knowledge. Cheap to clone; clones share the indexes.
#[derive(Clone)]
pub struct KnowledgeService {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    words: words::Words,
    vectors: Option<Vectors>,
    lexical_notice: Once,
}

/// How a search ranked its results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetrievalMode {
    /// BM25 and vector similarity, fused by reciprocal rank.
    Hybrid,
    /// BM25 only: no embedder is configured (or it failed for this query).
    Lexical,
}

/// What a search found, with the engine's confidence measure.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// Best first; `score` is the fused (reciprocal rank) score, or BM25 when lexical only.
    pub hits: Vec<KnowledgeHit>,
    /// How sure retrieval is that the best passages answer the query (0–1): the larger of the
    /// best returned passage's cosine similarity and the share of query terms the best BM25
    /// passage contains.
    pub confidence: f64,
    pub mode: RetrievalMode,
}

/// What an ingest stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ingested {
    pub document_id: DocumentId,
    /// False when the same content was already in the namespace (nothing was stored).
    pub new: bool,
    pub chunks: usize,
    /// Whether this call embedded the chunks and stored their vectors.
    pub embedded: bool,
}

/// A document to ingest.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDocument {
    pub namespace: String,
    /// File name or URL.
    pub source: String,
    pub content: String,
    pub access_level: AccessLevel,
    /// Free-form JSON kept with the document (an object, or null for none).
    pub metadata: Value,
}

#[derive(Debug, thiserror::Error)]
pub enum KnowledgeError {
    /// The file could not be read as text (the error names the file).
    #[error(transparent)]
    Extract(#[from] knowledge::ExtractError),
    #[error("{source_name}: no text to store")]
    NoText { source_name: String },
    #[error("namespace must not be empty")]
    EmptyNamespace,
    #[error("{source_name}: {error}")]
    Embed { source_name: String, error: EmbedError },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl KnowledgeService {
    /// BM25-only knowledge over `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                words: words::Words::default(),
                vectors: None,
                lexical_notice: Once::new(),
            }),
        }
    }

    /// Hybrid knowledge: chunks are embedded by `embedder` on ingest and searched by vector too.
    pub fn with_embedder(self, embedder: Arc<dyn Embedder>) -> Self {
        let store = Arc::clone(&self.inner.store);
        Self {
            inner: Arc::new(Inner {
                store,
                words: words::Words::default(),
                vectors: Some(Vectors::new(embedder)),
                lexical_notice: Once::new(),
            }),
        }
    }

    /// The embedder, if any (one still loading is returned: embedding waits for it; one whose
    /// model failed to load is not).
    pub fn embedder(&self) -> Option<&Arc<dyn Embedder>> {
        self.vectors().map(|v| &v.embedder)
    }

    /// The embedding model in use, if any.
    pub fn embedding_model(&self) -> Option<&str> {
        self.vectors().map(|v| v.embedder.model())
    }

    /// The vectors, unless there is no embedder or its model failed to load: then knowledge is
    /// BM25 only, as without one.
    fn vectors(&self) -> Option<&Vectors> {
        self.inner.vectors.as_ref().filter(|v| v.embedder.state() != domain::embed::EmbedderState::Unavailable)
    }

    /// Extracts a file's text (text, Markdown, HTML, PDF) and ingests it. The document's
    /// metadata gains `format` and, when the file has one, `title`. Nothing is stored on error.
    #[allow(clippy::too_many_arguments)] // the upload's own fields, as front-ends receive them
    pub async fn ingest_file(
        &self,
        tenant: &TenantId,
        namespace: &str,
        file_name: &str,
        content_type: Option<&str>,
        bytes: &[u8],
        access_level: AccessLevel,
        metadata: Value,
    ) -> Result<Ingested, KnowledgeError> {
        let extracted = knowledge::extract(file_name, content_type, bytes)?;
        let mut metadata = match metadata {
            Value::Object(map) => map,
            Value::Null => serde_json::Map::new(),
            other => {
                let mut map = serde_json::Map::new();
                map.insert("value".into(), other);
                map
            }
        };
        metadata.entry("format").or_insert_with(|| json!(extracted.format.as_str()));
        if let Some(title) = extracted.title {
            metadata.entry("title").or_insert_with(|| json!(title));
        }
        let document = NewDocument {
            namespace: namespace.to_owned(),
            source: file_name.to_owned(),
            content: extracted.text,
            access_level,
            metadata: Value::Object(metadata),
        };
        self.ingest(tenant, document).await
    }

    /// Stores a text document in a namespace; the same content is stored once.
    pub async fn ingest_text(
        &self,
        tenant: &TenantId,
        namespace: &str,
        source: &str,
        content: &str,
        access_level: AccessLevel,
    ) -> Result<Ingested, KnowledgeError> {
        let document = NewDocument {
            namespace: namespace.to_owned(),
            source: source.to_owned(),
            content: content.to_owned(),
            access_level,
            metadata: json!({}),
        };
        self.ingest(tenant, document).await
    }

    /// Chunks, embeds (when configured) and stores a document with its vectors in one
    /// transaction, then adds the vectors to the tenant's index.
    pub async fn ingest(&self, tenant: &TenantId, new: NewDocument) -> Result<Ingested, KnowledgeError> {
        let namespace = new.namespace.trim();
        if namespace.is_empty() {
            return Err(KnowledgeError::EmptyNamespace);
        }
        let chunks = knowledge::chunk(&new.content);
        if chunks.is_empty() {
            return Err(KnowledgeError::NoText { source_name: new.source });
        }
        let mut document = KnowledgeDocument {
            id: DocumentId::generate(),
            tenant_id: tenant.clone(),
            namespace: namespace.to_owned(),
            content_hash: knowledge::content_hash(&new.content),
            source: new.source,
            content: new.content,
            chunks,
            access_level: new.access_level,
            metadata: new.metadata,
            created_at: Timestamp::now(),
        };
        let Some(vectors) = self.vectors() else {
            self.lexical_notice();
            let (document_id, new) = self.inner.store.insert_document(&document, None).await?;
            if new {
                self.note_inserted(&document_id, &document);
            }
            return Ok(Ingested { document_id, new, chunks: document.chunks.len(), embedded: false });
        };
        // The same content is stored once: no need to embed it again.
        let store = self.inner.store.as_ref();
        if let Some(document_id) = store.document_by_hash(tenant, &document.namespace, &document.content_hash).await? {
            return Ok(Ingested { document_id, new: false, chunks: document.chunks.len(), embedded: false });
        }
        // Loaded before the write, so the index never misses what this call stores.
        let index = vectors.index(store, tenant).await?;
        let embed_error = |error| KnowledgeError::Embed { source_name: document.source.clone(), error };
        let embedded = vectors.embed(document.chunks.clone()).await.map_err(embed_error)?;
        vectors.check(document.chunks.len(), &embedded).map_err(embed_error)?;
        let embeddings = ChunkEmbeddings { model: vectors.embedder.model().to_owned(), vectors: embedded };
        // Stamped as it is stored (embedding may have waited for the model), so the newest
        // document is the one stored last, as other replicas' word indexes assume.
        document.created_at = Timestamp::now();
        // A concurrent ingest of the same content may still win the race; the store keeps one.
        let (document_id, new) = store.insert_document(&document, Some(&embeddings)).await?;
        if new {
            self.note_inserted(&document_id, &document);
            // Checked above: every vector has the index's size and is finite.
            index.replace(&document_id, &document.namespace, access_rank(document.access_level), &embeddings.vectors);
        }
        Ok(Ingested { document_id, new, chunks: document.chunks.len(), embedded: true })
    }

    /// Deletes a document, its chunks and their vectors. False if the tenant has no such document.
    pub async fn delete_document(&self, tenant: &TenantId, id: &DocumentId) -> Result<bool, KnowledgeError> {
        let deleted = self.inner.store.delete_document(tenant, id).await?;
        if deleted && let Some(words) = self.inner.words.built(tenant) {
            words.removed(id);
        }
        if let Some(vectors) = self.vectors() {
            vectors.index(self.inner.store.as_ref(), tenant).await?.remove(id);
        }
        Ok(deleted)
    }

    /// Adds a document this process stored to the tenant's word index, if it is built (one
    /// built later reads it from the store).
    fn note_inserted(&self, id: &DocumentId, document: &KnowledgeDocument) {
        if let Some(words) = self.inner.words.built(&document.tenant_id) {
            let access = access_rank(document.access_level);
            words.inserted(id, &document.namespace, access, &document.chunks, document.created_at.as_micros());
        }
    }

    /// A tenant's documents (one namespace, or all), without their chunks.
    pub async fn documents(
        &self,
        tenant: &TenantId,
        namespace: Option<&str>,
    ) -> Result<Vec<KnowledgeDocument>, KnowledgeError> {
        Ok(self.inner.store.documents(tenant, namespace).await?)
    }

    pub async fn namespaces(&self, tenant: &TenantId) -> Result<Vec<String>, KnowledgeError> {
        Ok(self.inner.store.namespaces(tenant).await?)
    }

    /// Embeds the tenant's chunks that have no vector from the current model (stored before
    /// an embedder was configured, or by another model), `batch` at a time. Returns how many
    /// were embedded; 0 without an embedder.
    pub async fn backfill(&self, tenant: &TenantId, batch: u32) -> Result<u64, KnowledgeError> {
        let Some(vectors) = self.vectors() else { return Ok(0) };
        let store = self.inner.store.as_ref();
        let index = vectors.index(store, tenant).await?;
        let model = vectors.embedder.model().to_owned();
        let mut total = 0;
        // Documents' namespace and access, for the index.
        let documents: HashMap<DocumentId, (String, AccessLevel)> =
            store.documents(tenant, None).await?.into_iter().map(|d| (d.id, (d.namespace, d.access_level))).collect();
        loop {
            let missing = store.chunks_without_vectors(tenant, &model, batch.max(1)).await?;
            if missing.is_empty() {
                return Ok(total);
            }
            let texts: Vec<String> = missing.iter().map(|h| h.text.clone()).collect();
            let embed_error = |error| KnowledgeError::Embed { source_name: missing[0].source.clone(), error };
            let embedded = vectors.embed(texts).await.map_err(embed_error)?;
            vectors.check(missing.len(), &embedded).map_err(embed_error)?;
            let pairs: Vec<(ChunkRef, Vec<f32>)> = missing.iter().map(ChunkHit::chunk_ref).zip(embedded).collect();
            let set = store.set_chunk_vectors(tenant, &model, &pairs).await?;
            if set == 0 {
                // Deleted meanwhile: nothing left to do for these, and nothing to loop on.
                return Ok(total);
            }
            total += set;
            let chunks = pairs
                .into_iter()
                .filter_map(|(chunk, vector)| {
                    let (namespace, access) = documents.get(&chunk.document_id)?;
                    Some(VectorChunk {
                        document: chunk.document_id,
                        ordinal: chunk.ordinal,
                        namespace: namespace.clone(),
                        access: access_rank(*access),
                        vector,
                    })
                })
                .collect();
            index.add(chunks);
        }
    }

    /// The best passages for `query` in a namespace, readable at `max_access`. A namespace
    /// the tenant does not have finds nothing.
    pub async fn search(
        &self,
        tenant: &TenantId,
        namespace: &str,
        query: &str,
        limit: usize,
        max_access: AccessLevel,
    ) -> Result<Found, StoreError> {
        let words = self.inner.words.index(&self.inner.store, tenant).await?;
        if words::revalidate(&words, &self.inner.store, tenant).await
            && let Some(vectors) = self.vectors()
        {
            vectors.reload(&self.inner.store, tenant);
        }
        let store = self.inner.store.as_ref();
        // Twice the answer's length when words alone answer, so chunks another replica deleted
        // (dropped when read back) leave room for the next best.
        let depth = if self.vectors().is_some() { FUSED_DEPTH.max(limit) } else { limit * 2 };
        // The vector search runs on a blocking thread while the words are scored here.
        let semantic = async {
            let Some(vectors) = self.vectors() else {
                self.lexical_notice();
                return Ok::<_, StoreError>(None);
            };
            let index = vectors.index(store, tenant).await?;
            Ok(match vectors.search(index, query, namespace, access_rank(max_access), FUSED_DEPTH).await {
                Ok(hits) => Some(hits.into_iter().filter(|h| h.similarity >= MIN_SIMILARITY).collect::<Vec<_>>()),
                Err(error) => {
                    tracing::warn!(%tenant, %error, "query embedding failed; searching by BM25 only");
                    None
                }
            })
        };
        let (semantic, lexical) = tokio::join!(semantic, async { words.search(query, namespace, max_access, depth) });
        let semantic = semantic?;
        let coverage = lexical.first().map_or(0.0, |h| h.coverage);
        let lexical_refs: Vec<ChunkRef> =
            lexical.iter().map(|h| ChunkRef { document_id: h.document.clone(), ordinal: h.ordinal }).collect();
        let Some(semantic) = semantic else {
            let ranked: Vec<(ChunkRef, f64)> = lexical_refs.into_iter().zip(lexical.iter().map(|h| h.score)).collect();
            let hits = read_back(store, tenant, namespace, max_access, &ranked).await?;
            let hits = hits.into_iter().map(|(_, hit)| hit).take(limit).collect();
            return Ok(Found { hits, confidence: coverage, mode: RetrievalMode::Lexical });
        };

        let semantic_refs: Vec<ChunkRef> =
            semantic.iter().map(|h| ChunkRef { document_id: h.document.clone(), ordinal: h.ordinal }).collect();
        let similarity: HashMap<&ChunkRef, f32> =
            semantic_refs.iter().zip(&semantic).map(|(r, h)| (r, h.similarity)).collect();
        let fused: Vec<(ChunkRef, f64)> =
            knowledge::rrf(&[lexical_refs, semantic_refs.clone()], knowledge::RRF_K).into_iter().take(limit).collect();
        let found = read_back(store, tenant, namespace, max_access, &fused).await?;
        let best_similarity = found.iter().filter_map(|(r, _)| similarity.get(r).copied()).fold(0f32, f32::max);
        let hits = found.into_iter().map(|(_, hit)| hit).collect();
        let confidence = coverage.max(f64::from(best_similarity)).clamp(0.0, 1.0);
        Ok(Found { hits, confidence, mode: RetrievalMode::Hybrid })
    }

    fn lexical_notice(&self) {
        self.inner.lexical_notice.call_once(|| {
            tracing::info!("no embedding model configured: knowledge search uses BM25 only");
        });
    }
}

/// The ranked chunks' texts, read back from the store in rank order: chunks deleted since an
/// index saw them (or no longer readable) drop out.
async fn read_back(
    store: &dyn Store,
    tenant: &TenantId,
    namespace: &str,
    max_access: AccessLevel,
    ranked: &[(ChunkRef, f64)],
) -> Result<Vec<(ChunkRef, KnowledgeHit)>, StoreError> {
    if ranked.is_empty() {
        return Ok(Vec::new());
    }
    let refs: Vec<ChunkRef> = ranked.iter().map(|(r, _)| r.clone()).collect();
    let found: HashMap<ChunkRef, ChunkHit> = store
        .chunks_by_ref(tenant, namespace, max_access, &refs)
        .await?
        .into_iter()
        .map(|chunk| (chunk.chunk_ref(), chunk))
        .collect();
    Ok(ranked.iter().filter_map(|(r, score)| found.get(r).map(|chunk| (r.clone(), hit(chunk, *score)))).collect())
}

/// One value per tenant, loaded on first use: concurrent first calls load it once, and a failed
/// load is retried by the next call.
pub(super) struct PerTenant<T> {
    cells: std::sync::Mutex<HashMap<TenantId, Arc<tokio::sync::OnceCell<T>>>>,
}

impl<T> Default for PerTenant<T> {
    fn default() -> Self {
        Self { cells: std::sync::Mutex::new(HashMap::new()) }
    }
}

impl<T: Clone> PerTenant<T> {
    fn cells(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, Arc<tokio::sync::OnceCell<T>>>> {
        self.cells.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The tenant's value, loaded by `load` if this is its first use.
    pub(super) async fn get_or_load<F, Fut>(&self, tenant: &TenantId, load: F) -> Result<T, StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        let cell = Arc::clone(self.cells().entry(tenant.clone()).or_default());
        cell.get_or_try_init(load).await.cloned()
    }

    /// The tenant's value if it is loaded already.
    pub(super) fn loaded(&self, tenant: &TenantId) -> Option<T> {
        self.cells().get(tenant).and_then(|cell| cell.get().cloned())
    }
}

fn hit(chunk: &ChunkHit, score: f64) -> KnowledgeHit {
    KnowledgeHit {
        document_id: chunk.document_id.to_string(),
        source: chunk.source.clone(),
        text: chunk.text.clone(),
        score,
    }
}

#[async_trait]
impl KnowledgeIndex for KnowledgeService {
    async fn search(
        &self,
        tenant: &TenantId,
        namespace: &str,
        query: &str,
        limit: usize,
    ) -> Result<Vec<KnowledgeHit>, String> {
        // The agent reads what a tenant's members may read: up to `internal`.
        KnowledgeService::search(self, tenant, namespace, query, limit, AccessLevel::Internal)
            .await
            .map(|found| found.hits)
            .map_err(|e| e.to_string())
    }
}

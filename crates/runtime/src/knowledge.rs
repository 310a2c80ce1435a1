//! The knowledge base as the runtime offers it: ingesting text (chunked, de-duplicated) and
//! lexical BM25 search over stored chunks, for the `knowledge_search` tool and for the
//! engine's retrieval step. Vector search joins with the embeddings issue.

use std::sync::Arc;

use async_trait::async_trait;
use domain::knowledge::{AccessLevel, KnowledgeDocument};
use domain::ports::{Store, StoreError};
use domain::{DocumentId, TenantId, Timestamp};
use tools::{KnowledgeHit, KnowledgeIndex};

/// Candidate chunks fetched from the store before ranking.
const CANDIDATES: u32 = 200;

/// Lexical search over a tenant's stored knowledge.
#[derive(Clone)]
pub struct KnowledgeService {
    store: Arc<dyn Store>,
}

/// What a search found, with the engine's confidence measure.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub hits: Vec<KnowledgeHit>,
    /// Share of the query's terms the best passage contains (0–1).
    pub confidence: f64,
}

impl KnowledgeService {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// Stores a text document in a namespace; the same content is stored once.
    pub async fn ingest_text(
        &self,
        tenant: &TenantId,
        namespace: &str,
        source: &str,
        content: &str,
        access_level: AccessLevel,
    ) -> Result<(DocumentId, bool), StoreError> {
        let document = KnowledgeDocument {
            id: DocumentId::generate(),
            tenant_id: tenant.clone(),
            namespace: namespace.to_owned(),
            source: source.to_owned(),
            content: content.to_owned(),
            content_hash: knowledge::content_hash(content),
            chunks: knowledge::chunk(content),
            access_level,
            metadata: serde_json::json!({}),
            created_at: Timestamp::now(),
        };
        self.store.insert_document(&document, None).await
    }

    /// The best passages for `query` readable at `max_access`.
    pub async fn search(
        &self,
        tenant: &TenantId,
        namespace: &str,
        query: &str,
        limit: usize,
        max_access: AccessLevel,
    ) -> Result<Found, StoreError> {
        let terms = knowledge::terms(query);
        let chunks = self.store.chunks_matching(tenant, namespace, &terms, max_access, CANDIDATES).await?;
        let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
        let ranked = knowledge::rank(query, &texts);
        let confidence = ranked.first().map_or(0.0, |r| r.coverage);
        let hits = ranked
            .into_iter()
            .take(limit)
            .map(|r| {
                let c = &chunks[r.index];
                KnowledgeHit {
                    document_id: c.document_id.to_string(),
                    source: c.source.clone(),
                    text: c.text.clone(),
                    score: r.score,
                }
            })
            .collect();
        Ok(Found { hits, confidence })
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

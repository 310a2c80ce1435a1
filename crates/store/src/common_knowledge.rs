//! Shared SQL for the knowledge port (documents, chunks and their vectors, lexical candidate
//! search), implemented for both pool types by one macro in a child module of the backend.
//! Vectors are stored as little-endian `f32` bytes (BLOB / BYTEA) with the model's name.

macro_rules! impl_knowledge_port {
    ($store:ident) => {
        mod knowledge_port {
            use async_trait::async_trait;
            use domain::embed::{vector_from_bytes, vector_to_bytes};
            use domain::knowledge::{
                AccessLevel, ChunkEmbeddings, ChunkRef, ChunkText, ChunkVector, KnowledgeDocument, KnowledgeRevision,
            };
            use domain::ports::{ChunkHit, KnowledgeStore, StoreError};
            use domain::{DocumentId, TenantId, Timestamp};

            use super::$store;
            use $crate::backend::SqlBackend;
            use $crate::error::classify;

            type DocumentRow = (String, String, String, String, String, String, String, String, i64);

            fn invalid(reason: impl ToString) -> StoreError {
                StoreError::InvalidRow { what: "knowledge document", reason: reason.to_string() }
            }

            fn document(row: DocumentRow) -> Result<KnowledgeDocument, StoreError> {
                let (tenant_id, id, namespace, source, content, content_hash, access, metadata, created_at) = row;
                Ok(KnowledgeDocument {
                    id: DocumentId::parse(id).map_err(invalid)?,
                    tenant_id: TenantId::parse(tenant_id).map_err(invalid)?,
                    namespace,
                    source,
                    content,
                    content_hash,
                    chunks: Vec::new(),
                    access_level: AccessLevel::parse(&access).ok_or_else(|| invalid(format!("access level {access:?}")))?,
                    metadata: serde_json::from_str(&metadata).map_err(invalid)?,
                    created_at: Timestamp::from_micros(created_at),
                })
            }

            /// A stored chunk's reference and access level, from its row's columns.
            fn placed(id: String, ordinal: i64, access_rank: i64) -> Result<(ChunkRef, AccessLevel), StoreError> {
                let access_level =
                    AccessLevel::from_rank(access_rank).ok_or_else(|| invalid(format!("access rank {access_rank}")))?;
                let chunk = ChunkRef {
                    document_id: DocumentId::parse(id).map_err(invalid)?,
                    ordinal: u32::try_from(ordinal).map_err(invalid)?,
                };
                Ok((chunk, access_level))
            }

            fn hit((id, ordinal, source, text): (String, i64, String, String)) -> Result<ChunkHit, StoreError> {
                Ok(ChunkHit {
                    document_id: DocumentId::parse(id).map_err(invalid)?,
                    ordinal: u32::try_from(ordinal).map_err(invalid)?,
                    source,
                    text,
                })
            }

            /// Refs per `chunks_by_ref` query at most (two placeholders each; a power of two, see
            /// `rows::power_of_two_runs`).
            const REFS_PER_QUERY: usize = 64;

            const DOCUMENT_COLUMNS: &str =
                "tenant_id, id, namespace, source, content, content_hash, access_level, metadata, created_at";

            #[async_trait]
            impl KnowledgeStore for $store {
                async fn insert_document(
                    &self,
                    d: &KnowledgeDocument,
                    embeddings: Option<&ChunkEmbeddings>,
                ) -> Result<(DocumentId, bool), StoreError> {
                    if let Some(e) = embeddings
                        && e.vectors.len() != d.chunks.len()
                    {
                        return Err(StoreError::InvalidRow {
                            what: "chunk embeddings",
                            reason: format!("{} vectors for {} chunks", e.vectors.len(), d.chunks.len()),
                        });
                    }
                    let mut tx = self.pool().begin().await.map_err(|e| classify(self.target(), e))?;
                    let sql = format!(
                        "INSERT INTO knowledge_documents ({DOCUMENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                         ON CONFLICT (tenant_id, namespace, content_hash) DO NOTHING"
                    );
                    let inserted = sqlx::query(&sql)
                        .bind(d.tenant_id.as_str())
                        .bind(d.id.as_str())
                        .bind(&d.namespace)
                        .bind(&d.source)
                        .bind(&d.content)
                        .bind(&d.content_hash)
                        .bind(d.access_level.as_str())
                        .bind(d.metadata.to_string())
                        .bind(d.created_at.as_micros())
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| classify(self.target(), e))?
                        .rows_affected()
                        == 1;
                    if !inserted {
                        let existing: String = sqlx::query_scalar(
                            "SELECT id FROM knowledge_documents WHERE tenant_id = $1 AND namespace = $2 AND content_hash = $3",
                        )
                        .bind(d.tenant_id.as_str())
                        .bind(&d.namespace)
                        .bind(&d.content_hash)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                        tx.commit().await.map_err(|e| classify(self.target(), e))?;
                        return Ok((DocumentId::parse(existing).map_err(invalid)?, false));
                    }
                    for (ordinal, text) in d.chunks.iter().enumerate() {
                        let vector = embeddings.map(|e| vector_to_bytes(&e.vectors[ordinal]));
                        sqlx::query(
                            "INSERT INTO knowledge_chunks (tenant_id, document_id, ordinal, namespace, access_rank, text, \
                             lower_text, embedding, embedding_model) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                        )
                        .bind(d.tenant_id.as_str())
                        .bind(d.id.as_str())
                        .bind(i64::try_from(ordinal).unwrap_or(i64::MAX))
                        .bind(&d.namespace)
                        .bind(d.access_level.rank())
                        .bind(text)
                        .bind(text.to_lowercase())
                        .bind(vector)
                        .bind(embeddings.map(|e| e.model.as_str()))
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    }
                    tx.commit().await.map_err(|e| classify(self.target(), e))?;
                    Ok((d.id.clone(), true))
                }

                async fn document_by_hash(
                    &self,
                    tenant: &TenantId,
                    namespace: &str,
                    content_hash: &str,
                ) -> Result<Option<DocumentId>, StoreError> {
                    let id: Option<String> = sqlx::query_scalar(
                        "SELECT id FROM knowledge_documents WHERE tenant_id = $1 AND namespace = $2 AND content_hash = $3",
                    )
                    .bind(tenant.as_str())
                    .bind(namespace)
                    .bind(content_hash)
                    .fetch_optional(self.pool())
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                    id.map(|id| DocumentId::parse(id).map_err(invalid)).transpose()
                }

                async fn documents(&self, tenant: &TenantId, namespace: Option<&str>) -> Result<Vec<KnowledgeDocument>, StoreError> {
                    let sql = format!(
                        "SELECT {DOCUMENT_COLUMNS} FROM knowledge_documents WHERE tenant_id = $1 \
                         AND ($2 = '' OR namespace = $2) ORDER BY created_at, id"
                    );
                    let rows: Vec<DocumentRow> = sqlx::query_as(&sql)
                        .bind(tenant.as_str())
                        .bind(namespace.unwrap_or(""))
                        .fetch_all(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    rows.into_iter().map(document).collect()
                }

                async fn delete_document(&self, tenant: &TenantId, id: &DocumentId) -> Result<bool, StoreError> {
                    let mut tx = self.pool().begin().await.map_err(|e| classify(self.target(), e))?;
                    sqlx::query("DELETE FROM knowledge_chunks WHERE tenant_id = $1 AND document_id = $2")
                        .bind(tenant.as_str())
                        .bind(id.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    let deleted = sqlx::query("DELETE FROM knowledge_documents WHERE tenant_id = $1 AND id = $2")
                        .bind(tenant.as_str())
                        .bind(id.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| classify(self.target(), e))?
                        .rows_affected();
                    tx.commit().await.map_err(|e| classify(self.target(), e))?;
                    Ok(deleted == 1)
                }

                async fn namespaces(&self, tenant: &TenantId) -> Result<Vec<String>, StoreError> {
                    sqlx::query_scalar(
                        "SELECT DISTINCT namespace FROM knowledge_documents WHERE tenant_id = $1 ORDER BY namespace",
                    )
                    .bind(tenant.as_str())
                    .fetch_all(self.pool())
                    .await
                    .map_err(|e| classify(self.target(), e))
                }

                async fn chunks_matching(
                    &self,
                    tenant: &TenantId,
                    namespace: &str,
                    terms: &[String],
                    max_access: AccessLevel,
                    limit: u32,
                ) -> Result<Vec<ChunkHit>, StoreError> {
                    if terms.is_empty() {
                        return Ok(Vec::new());
                    }
                    // Each backend's full-text index, best matches first.
                    let query = sqlx::query_as::<_, (String, i64, String, String)>(<$store as SqlBackend>::CHUNK_SEARCH_SQL)
                        .bind(tenant.as_str())
                        .bind(namespace)
                        .bind(max_access.rank())
                        .bind(i64::from(limit))
                        .bind(<$store as SqlBackend>::chunk_search_query(terms));
                    let rows = query.fetch_all(self.pool()).await.map_err(|e| classify(self.target(), e))?;
                    rows.into_iter().map(hit).collect()
                }

                async fn chunks_by_ref(
                    &self,
                    tenant: &TenantId,
                    namespace: &str,
                    max_access: AccessLevel,
                    refs: &[ChunkRef],
                ) -> Result<Vec<ChunkHit>, StoreError> {
                    let mut out = Vec::with_capacity(refs.len());
                    for batch in $crate::rows::power_of_two_runs(refs, REFS_PER_QUERY) {
                        // One primary-key lookup per chunk, joined by UNION ALL: an OR of
                        // (document, ordinal) pairs makes SQLite scan the whole namespace.
                        let lookups: Vec<String> = (0..batch.len())
                            .map(|i| {
                                format!(
                                    "SELECT c.document_id, c.ordinal, d.source, c.text FROM knowledge_chunks c \
                                     JOIN knowledge_documents d ON d.tenant_id = c.tenant_id AND d.id = c.document_id \
                                     WHERE c.tenant_id = $1 AND c.namespace = $2 AND c.access_rank <= $3 \
                                     AND c.document_id = ${} AND c.ordinal = ${}",
                                    2 * i + 4,
                                    2 * i + 5
                                )
                            })
                            .collect();
                        let sql = lookups.join(" UNION ALL ");
                        let mut query = sqlx::query_as::<_, (String, i64, String, String)>(&sql)
                            .bind(tenant.as_str())
                            .bind(namespace)
                            .bind(max_access.rank());
                        for r in batch {
                            query = query.bind(r.document_id.as_str()).bind(i64::from(r.ordinal));
                        }
                        let rows = query.fetch_all(self.pool()).await.map_err(|e| classify(self.target(), e))?;
                        for row in rows {
                            out.push(hit(row)?);
                        }
                    }
                    Ok(out)
                }

                async fn chunk_texts(
                    &self,
                    tenant: &TenantId,
                    after: Option<&ChunkRef>,
                    limit: u32,
                ) -> Result<Vec<ChunkText>, StoreError> {
                    let (after_document, after_ordinal) =
                        after.map_or(("", -1), |r| (r.document_id.as_str(), i64::from(r.ordinal)));
                    let rows: Vec<(String, i64, String, i64, String)> = sqlx::query_as(
                        "SELECT document_id, ordinal, namespace, access_rank, text FROM knowledge_chunks \
                         WHERE tenant_id = $1 AND (document_id > $2 OR (document_id = $2 AND ordinal > $3)) \
                         ORDER BY document_id, ordinal LIMIT $4",
                    )
                    .bind(tenant.as_str())
                    .bind(after_document)
                    .bind(after_ordinal)
                    .bind(i64::from(limit))
                    .fetch_all(self.pool())
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                    rows.into_iter()
                        .map(|(id, ordinal, namespace, access_rank, text)| {
                            let (chunk, access_level) = placed(id, ordinal, access_rank)?;
                            Ok(ChunkText { chunk, namespace, access_level, text })
                        })
                        .collect()
                }

                async fn knowledge_revision(&self, tenant: &TenantId) -> Result<KnowledgeRevision, StoreError> {
                    let (documents, newest): (i64, Option<i64>) = sqlx::query_as(
                        "SELECT COUNT(*), MAX(created_at) FROM knowledge_documents WHERE tenant_id = $1",
                    )
                    .bind(tenant.as_str())
                    .fetch_one(self.pool())
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                    Ok(KnowledgeRevision { documents: u64::try_from(documents).unwrap_or(0), newest: newest.unwrap_or(0) })
                }

                async fn chunk_vectors(
                    &self,
                    tenant: &TenantId,
                    model: &str,
                    after: Option<&ChunkRef>,
                    limit: u32,
                ) -> Result<Vec<ChunkVector>, StoreError> {
                    let (after_document, after_ordinal) =
                        after.map_or(("", -1), |r| (r.document_id.as_str(), i64::from(r.ordinal)));
                    let rows: Vec<(String, i64, String, i64, Vec<u8>)> = sqlx::query_as(
                        "SELECT document_id, ordinal, namespace, access_rank, embedding FROM knowledge_chunks \
                         WHERE tenant_id = $1 AND embedding_model = $2 AND embedding IS NOT NULL \
                         AND (document_id > $3 OR (document_id = $3 AND ordinal > $4)) \
                         ORDER BY document_id, ordinal LIMIT $5",
                    )
                    .bind(tenant.as_str())
                    .bind(model)
                    .bind(after_document)
                    .bind(after_ordinal)
                    .bind(i64::from(limit))
                    .fetch_all(self.pool())
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                    rows.into_iter()
                        .map(|(id, ordinal, namespace, access_rank, bytes)| {
                            let (chunk, access_level) = placed(id, ordinal, access_rank)?;
                            Ok(ChunkVector {
                                chunk,
                                namespace,
                                access_level,
                                vector: vector_from_bytes(&bytes)
                                    .ok_or_else(|| invalid(format!("vector of {} bytes", bytes.len())))?,
                            })
                        })
                        .collect()
                }

                async fn chunks_without_vectors(
                    &self,
                    tenant: &TenantId,
                    model: &str,
                    limit: u32,
                ) -> Result<Vec<ChunkHit>, StoreError> {
                    let rows: Vec<(String, i64, String, String)> = sqlx::query_as(
                        "SELECT c.document_id, c.ordinal, d.source, c.text FROM knowledge_chunks c \
                         JOIN knowledge_documents d ON d.tenant_id = c.tenant_id AND d.id = c.document_id \
                         WHERE c.tenant_id = $1 AND (c.embedding IS NULL OR c.embedding_model IS NULL \
                         OR c.embedding_model <> $2) ORDER BY c.document_id, c.ordinal LIMIT $3",
                    )
                    .bind(tenant.as_str())
                    .bind(model)
                    .bind(i64::from(limit))
                    .fetch_all(self.pool())
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                    rows.into_iter().map(hit).collect()
                }

                async fn set_chunk_vectors(
                    &self,
                    tenant: &TenantId,
                    model: &str,
                    vectors: &[(ChunkRef, Vec<f32>)],
                ) -> Result<u64, StoreError> {
                    let mut tx = self.pool().begin().await.map_err(|e| classify(self.target(), e))?;
                    let mut set = 0;
                    for (chunk, vector) in vectors {
                        set += sqlx::query(
                            "UPDATE knowledge_chunks SET embedding = $1, embedding_model = $2 \
                             WHERE tenant_id = $3 AND document_id = $4 AND ordinal = $5",
                        )
                        .bind(vector_to_bytes(vector))
                        .bind(model)
                        .bind(tenant.as_str())
                        .bind(chunk.document_id.as_str())
                        .bind(i64::from(chunk.ordinal))
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| classify(self.target(), e))?
                        .rows_affected();
                    }
                    tx.commit().await.map_err(|e| classify(self.target(), e))?;
                    Ok(set)
                }
            }
        }
    };
}

pub(crate) use impl_knowledge_port;

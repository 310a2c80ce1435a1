//! Shared SQL for the knowledge port (documents, chunks, lexical candidate search), implemented
//! for both pool types by one macro in a child module of the backend.

macro_rules! impl_knowledge_port {
    ($store:ident) => {
        mod knowledge_port {
            use async_trait::async_trait;
            use domain::knowledge::{AccessLevel, KnowledgeDocument};
            use domain::ports::{ChunkHit, KnowledgeStore, StoreError};
            use domain::{DocumentId, TenantId, Timestamp};

            use super::$store;
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

            const DOCUMENT_COLUMNS: &str =
                "tenant_id, id, namespace, source, content, content_hash, access_level, metadata, created_at";

            #[async_trait]
            impl KnowledgeStore for $store {
                async fn insert_document(&self, d: &KnowledgeDocument) -> Result<(DocumentId, bool), StoreError> {
                    let mut tx = self.pool.begin().await.map_err(|e| classify(self.target(), e))?;
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
                        sqlx::query(
                            "INSERT INTO knowledge_chunks (tenant_id, document_id, ordinal, namespace, access_rank, text, lower_text) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7)",
                        )
                        .bind(d.tenant_id.as_str())
                        .bind(d.id.as_str())
                        .bind(i64::try_from(ordinal).unwrap_or(i64::MAX))
                        .bind(&d.namespace)
                        .bind(d.access_level.rank())
                        .bind(text)
                        .bind(text.to_lowercase())
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    }
                    tx.commit().await.map_err(|e| classify(self.target(), e))?;
                    Ok((d.id.clone(), true))
                }

                async fn documents(&self, tenant: &TenantId, namespace: Option<&str>) -> Result<Vec<KnowledgeDocument>, StoreError> {
                    let sql = format!(
                        "SELECT {DOCUMENT_COLUMNS} FROM knowledge_documents WHERE tenant_id = $1 \
                         AND ($2 = '' OR namespace = $2) ORDER BY created_at, id"
                    );
                    let rows: Vec<DocumentRow> = sqlx::query_as(&sql)
                        .bind(tenant.as_str())
                        .bind(namespace.unwrap_or(""))
                        .fetch_all(&self.pool)
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    rows.into_iter().map(document).collect()
                }

                async fn delete_document(&self, tenant: &TenantId, id: &DocumentId) -> Result<bool, StoreError> {
                    let mut tx = self.pool.begin().await.map_err(|e| classify(self.target(), e))?;
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
                    .fetch_all(&self.pool)
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
                    let likes: Vec<String> = (0..terms.len()).map(|i| format!("c.lower_text LIKE ${}", i + 5)).collect();
                    let sql = format!(
                        "SELECT c.document_id, c.ordinal, d.source, c.text FROM knowledge_chunks c \
                         JOIN knowledge_documents d ON d.tenant_id = c.tenant_id AND d.id = c.document_id \
                         WHERE c.tenant_id = $1 AND c.namespace = $2 AND c.access_rank <= $3 AND ({}) \
                         ORDER BY c.document_id, c.ordinal LIMIT $4",
                        likes.join(" OR ")
                    );
                    let mut query = sqlx::query_as::<_, (String, i64, String, String)>(&sql)
                        .bind(tenant.as_str())
                        .bind(namespace)
                        .bind(max_access.rank())
                        .bind(i64::from(limit));
                    for term in terms {
                        // Terms are words; escape LIKE's wildcards anyway.
                        let escaped = term.replace('%', "").replace('_', "");
                        query = query.bind(format!("%{escaped}%"));
                    }
                    let rows = query.fetch_all(&self.pool).await.map_err(|e| classify(self.target(), e))?;
                    rows.into_iter()
                        .map(|(id, ordinal, source, text)| {
                            Ok(ChunkHit {
                                document_id: DocumentId::parse(id).map_err(invalid)?,
                                ordinal: u32::try_from(ordinal).unwrap_or(0),
                                source,
                                text,
                            })
                        })
                        .collect()
                }
            }
        }
    };
}

pub(crate) use impl_knowledge_port;

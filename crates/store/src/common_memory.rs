//! The memory port for both backends: append-only versions, and each item's current version
//! kept beside them in the same transaction (`memory_current`), through which items are read.

use domain::memory::{MemoryVersion, Provenance};
use domain::ports::StoreError;
use domain::{TenantId, Timestamp};

/// A `memory_versions` row as read.
#[derive(sqlx::FromRow)]
pub(crate) struct MemoryRow {
    tenant_id: String,
    id: String,
    version: i64,
    owner: String,
    content: String,
    content_hash: String,
    trust: String,
    provenance: String,
    deleted: bool,
    created_at: i64,
    created_by: String,
}

/// A current item with the vector of its content, if one is stored.
#[derive(sqlx::FromRow)]
pub(crate) struct VectorRow {
    #[sqlx(flatten)]
    pub(crate) item: MemoryRow,
    pub(crate) vector: Option<Vec<u8>>,
}

pub(crate) const MEMORY_COLUMNS: &str = "m.tenant_id, m.id, m.version, m.owner, m.content, m.content_hash, m.trust, m.provenance, m.deleted, m.created_at, m.created_by";

/// Each item's current version: `c` is its `memory_current` row, `m` the version it points at.
pub(crate) const CURRENT: &str = "memory_current c JOIN memory_versions m \
     ON m.tenant_id = c.tenant_id AND m.id = c.id AND m.version = c.version";

pub(crate) fn memory_of(row: MemoryRow) -> Result<MemoryVersion, StoreError> {
    let invalid = |reason: String| StoreError::InvalidRow { what: "memory version", reason };
    Ok(MemoryVersion {
        tenant: TenantId::parse(row.tenant_id).map_err(|e| invalid(e.to_string()))?,
        trust: row.trust.parse().map_err(|e: domain::UnknownValue| invalid(e.to_string()))?,
        provenance: serde_json::from_str::<Provenance>(&row.provenance).map_err(|e| invalid(e.to_string()))?,
        id: row.id,
        version: row.version,
        owner: row.owner,
        content: row.content,
        content_hash: row.content_hash,
        deleted: row.deleted,
        created_at: Timestamp::from_micros(row.created_at),
        created_by: row.created_by,
    })
}

macro_rules! impl_memory_port {
    ($store:ident) => {
        mod memory_port {
            use async_trait::async_trait;
            use domain::TenantId;
            use domain::embed::{vector_from_bytes, vector_to_bytes};
            use domain::memory::{MemoryItem, MemoryVersion};
            use domain::ports::{MemoryStore, StoreError};

            use super::$store;
            use $crate::backend::SqlBackend;
            use $crate::common_chat::contains_pattern;
            use $crate::common_memory::{CURRENT, MEMORY_COLUMNS, MemoryRow, VectorRow, memory_of};
            use $crate::error::classify;

            #[async_trait]
            impl MemoryStore for $store {
                async fn append_memory(&self, v: &MemoryVersion) -> Result<bool, StoreError> {
                    let provenance = serde_json::to_string(&v.provenance)
                        .map_err(|e| StoreError::InvalidRow { what: "memory version", reason: e.to_string() })?;
                    let mut tx = self.begin_write().await?;
                    let done = sqlx::query(
                        "INSERT INTO memory_versions (tenant_id, id, version, owner, content, content_hash, trust, \
                         provenance, deleted, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                         ON CONFLICT (tenant_id, id, version) DO NOTHING",
                    )
                    .bind(v.tenant.as_str())
                    .bind(&v.id)
                    .bind(v.version)
                    .bind(&v.owner)
                    .bind(&v.content)
                    .bind(&v.content_hash)
                    .bind(v.trust.as_str())
                    .bind(provenance)
                    .bind(v.deleted)
                    .bind(v.created_at.as_micros())
                    .bind(&v.created_by)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                    if done.rows_affected() != 1 {
                        return Ok(false);
                    }
                    sqlx::query(
                        "INSERT INTO memory_current (tenant_id, id, owner, version, deleted, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, id) DO UPDATE SET \
                         owner = excluded.owner, version = excluded.version, deleted = excluded.deleted, \
                         updated_at = excluded.updated_at WHERE memory_current.version < excluded.version",
                    )
                    .bind(v.tenant.as_str())
                    .bind(&v.id)
                    .bind(&v.owner)
                    .bind(v.version)
                    .bind(v.deleted)
                    .bind(v.created_at.as_micros())
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                    tx.commit().await.map_err(|e| classify(self.target(), e))?;
                    Ok(true)
                }

                async fn memory_item(&self, tenant: &TenantId, id: &str) -> Result<Option<MemoryItem>, StoreError> {
                    let sql = format!(
                        "SELECT {MEMORY_COLUMNS} FROM memory_versions m WHERE m.tenant_id = $1 AND m.id = $2 \
                         ORDER BY m.version DESC LIMIT 1"
                    );
                    let row: Option<MemoryRow> = sqlx::query_as(&sql)
                        .bind(tenant.as_str())
                        .bind(id)
                        .fetch_optional(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    row.map(memory_of).transpose()
                }

                async fn memory_history(&self, tenant: &TenantId, id: &str) -> Result<Vec<MemoryVersion>, StoreError> {
                    let sql = format!(
                        "SELECT {MEMORY_COLUMNS} FROM memory_versions m WHERE m.tenant_id = $1 AND m.id = $2 ORDER BY m.version"
                    );
                    let rows: Vec<MemoryRow> = sqlx::query_as(&sql)
                        .bind(tenant.as_str())
                        .bind(id)
                        .fetch_all(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    rows.into_iter().map(memory_of).collect()
                }

                async fn memory_items(
                    &self,
                    tenant: &TenantId,
                    owner: Option<&str>,
                    text: Option<&str>,
                    include_deleted: bool,
                    limit: u32,
                ) -> Result<Vec<MemoryItem>, StoreError> {
                    let pattern = text.map(str::trim).filter(|t| !t.is_empty()).map(contains_pattern).unwrap_or_default();
                    // An owner is matched as such (not `$2 = '' OR …`), so the (tenant, owner,
                    // updated_at) index serves the newest-first scan and it stops at the limit.
                    let owner_filter = if owner.is_some() { "c.owner = $2" } else { "$2 = ''" };
                    let sql = format!(
                        "SELECT {MEMORY_COLUMNS} FROM {CURRENT} WHERE c.tenant_id = $1 AND {owner_filter} \
                         AND ($3 = '' OR LOWER(m.content) LIKE $3 ESCAPE '\\') \
                         AND ($4 OR NOT c.deleted) ORDER BY c.updated_at DESC, c.id DESC LIMIT $5"
                    );
                    let rows: Vec<MemoryRow> = sqlx::query_as(&sql)
                        .bind(tenant.as_str())
                        .bind(owner.unwrap_or_default())
                        .bind(pattern)
                        .bind(include_deleted)
                        .bind(i64::from(limit))
                        .fetch_all(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    rows.into_iter().map(memory_of).collect()
                }

                async fn memory_duplicates(
                    &self,
                    tenant: &TenantId,
                    owner: &str,
                    content_hash: &str,
                ) -> Result<Vec<MemoryItem>, StoreError> {
                    let sql = format!(
                        "SELECT {MEMORY_COLUMNS} FROM memory_versions m JOIN memory_current c \
                         ON c.tenant_id = m.tenant_id AND c.id = m.id AND c.version = m.version \
                         WHERE m.tenant_id = $1 AND m.owner = $2 AND m.content_hash = $3 AND NOT m.deleted"
                    );
                    let rows: Vec<MemoryRow> = sqlx::query_as(&sql)
                        .bind(tenant.as_str())
                        .bind(owner)
                        .bind(content_hash)
                        .fetch_all(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    rows.into_iter().map(memory_of).collect()
                }

                async fn memory_usage(&self, tenant: &TenantId, owner: &str) -> Result<(u64, u64), StoreError> {
                    let sql = format!(
                        "SELECT COUNT(*), COALESCE(SUM(LENGTH(m.content)), 0) FROM {CURRENT} \
                         WHERE c.tenant_id = $1 AND c.owner = $2 AND NOT c.deleted"
                    );
                    let (count, bytes): (i64, i64) = sqlx::query_as(&sql)
                        .bind(tenant.as_str())
                        .bind(owner)
                        .fetch_one(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    Ok((u64::try_from(count).unwrap_or(0), u64::try_from(bytes).unwrap_or(0)))
                }

                async fn memory_with_vectors(
                    &self,
                    tenant: &TenantId,
                    owner: &str,
                    model: &str,
                    limit: u32,
                ) -> Result<Vec<(MemoryItem, Option<Vec<f32>>)>, StoreError> {
                    let sql = format!(
                        "SELECT {MEMORY_COLUMNS}, v.vector FROM {CURRENT} LEFT JOIN memory_vectors v \
                         ON v.tenant_id = m.tenant_id AND v.owner = m.owner AND v.content_hash = m.content_hash \
                         AND v.model = $3 WHERE c.tenant_id = $1 AND c.owner = $2 AND NOT c.deleted \
                         ORDER BY c.updated_at DESC, c.id DESC LIMIT $4"
                    );
                    let rows: Vec<VectorRow> = sqlx::query_as(&sql)
                        .bind(tenant.as_str())
                        .bind(owner)
                        .bind(model)
                        .bind(i64::from(limit))
                        .fetch_all(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    rows.into_iter()
                        .map(|row| {
                            // A stored vector that cannot be read is made again, not an error.
                            let vector = row.vector.as_deref().and_then(vector_from_bytes);
                            Ok((memory_of(row.item)?, vector))
                        })
                        .collect()
                }

                async fn put_memory_vectors(
                    &self,
                    tenant: &TenantId,
                    owner: &str,
                    model: &str,
                    vectors: &[(String, Vec<f32>)],
                ) -> Result<(), StoreError> {
                    let mut tx = self.begin_write().await?;
                    for (content_hash, vector) in vectors {
                        sqlx::query(
                            "INSERT INTO memory_vectors (tenant_id, owner, content_hash, model, vector) \
                             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, owner, content_hash, model) DO NOTHING",
                        )
                        .bind(tenant.as_str())
                        .bind(owner)
                        .bind(content_hash)
                        .bind(model)
                        .bind(vector_to_bytes(vector))
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    }
                    tx.commit().await.map_err(|e| classify(self.target(), e))?;
                    Ok(())
                }
            }
        }
    };
}

pub(crate) use impl_memory_port;

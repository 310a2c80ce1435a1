//! The watcher port for both backends: watchers, and the items they found, each inserted once
//! per (watcher, key) and moved between states by compare-and-set.

use domain::ports::StoreError;
use domain::watcher::{PostTarget, WatchedItem, Watcher};
use domain::{TenantId, Timestamp};

/// A `watchers` row as read.
#[derive(sqlx::FromRow)]
pub(crate) struct WatcherRow {
    tenant_id: String,
    id: String,
    name: String,
    kind: String,
    url: String,
    selector: Option<String>,
    target: String,
    summarise: Option<String>,
    max_posts: i64,
    schedule_id: Option<String>,
    etag: Option<String>,
    last_modified: Option<String>,
    seeded: bool,
    last_polled_at: Option<i64>,
    last_error: Option<String>,
    created_by: String,
    created_at: i64,
}

pub(crate) const WATCHER_COLUMNS: &str = "tenant_id, id, name, kind, url, selector, target, summarise, max_posts, \
     schedule_id, etag, last_modified, seeded, last_polled_at, last_error, created_by, created_at";

pub(crate) fn watcher_of(row: WatcherRow) -> Result<Watcher, StoreError> {
    let invalid = |reason: String| StoreError::InvalidRow { what: "watcher", reason };
    Ok(Watcher {
        tenant_id: TenantId::parse(row.tenant_id).map_err(|e| invalid(e.to_string()))?,
        kind: row.kind.parse().map_err(|e: domain::UnknownValue| invalid(format!("watchers.kind: {e}")))?,
        target: serde_json::from_str::<PostTarget>(&row.target)
            .map_err(|e| invalid(format!("watchers.target: {e}")))?,
        max_posts: u32::try_from(row.max_posts).map_err(|e| invalid(format!("watchers.max_posts: {e}")))?,
        id: row.id,
        name: row.name,
        url: row.url,
        selector: row.selector,
        summarise: row.summarise,
        schedule_id: row.schedule_id,
        etag: row.etag,
        last_modified: row.last_modified,
        seeded: row.seeded,
        last_polled_at: row.last_polled_at.map(Timestamp::from_micros),
        last_error: row.last_error,
        created_by: row.created_by,
        created_at: Timestamp::from_micros(row.created_at),
    })
}

pub(crate) fn target_text(target: &PostTarget) -> Result<String, StoreError> {
    serde_json::to_string(target).map_err(|e| StoreError::InvalidRow { what: "watcher", reason: e.to_string() })
}

/// A `watched_items` row as read.
#[derive(sqlx::FromRow)]
pub(crate) struct ItemRow {
    watcher_id: String,
    item_key: String,
    title: Option<String>,
    link: Option<String>,
    body: String,
    digest: String,
    status: String,
    attempts: i64,
    detail: Option<String>,
    found_at: i64,
    posted_at: Option<i64>,
}

pub(crate) const ITEM_COLUMNS: &str =
    "watcher_id, item_key, title, link, body, digest, status, attempts, detail, found_at, posted_at";

pub(crate) fn item_of(row: ItemRow) -> Result<WatchedItem, StoreError> {
    let invalid = |reason: String| StoreError::InvalidRow { what: "watched item", reason };
    Ok(WatchedItem {
        status: row.status.parse().map_err(|e: domain::UnknownValue| invalid(format!("watched_items.status: {e}")))?,
        attempts: u32::try_from(row.attempts).map_err(|e| invalid(format!("watched_items.attempts: {e}")))?,
        watcher_id: row.watcher_id,
        key: row.item_key,
        title: row.title,
        link: row.link,
        text: row.body,
        digest: row.digest,
        detail: row.detail,
        found_at: Timestamp::from_micros(row.found_at),
        posted_at: row.posted_at.map(Timestamp::from_micros),
    })
}

macro_rules! impl_watcher_port {
    ($store:ident) => {
        mod watcher_port {
            use async_trait::async_trait;
            use domain::TenantId;
            use domain::ports::{StoreError, WatcherStore};
            use domain::watcher::{ItemStatus, WatchedItem, Watcher};

            use super::$store;
            use $crate::backend::SqlBackend;
            use $crate::common_watchers::{
                ITEM_COLUMNS, ItemRow, WATCHER_COLUMNS, WatcherRow, item_of, target_text, watcher_of,
            };
            use $crate::error::{classify, classify_insert};

            #[async_trait]
            impl WatcherStore for $store {
                async fn insert_watcher(&self, w: &Watcher) -> Result<(), StoreError> {
                    let sql = format!(
                        "INSERT INTO watchers ({WATCHER_COLUMNS}) VALUES \
                         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
                    );
                    sqlx::query(&sql)
                        .bind(w.tenant_id.as_str())
                        .bind(&w.id)
                        .bind(&w.name)
                        .bind(w.kind.as_str())
                        .bind(&w.url)
                        .bind(w.selector.as_deref())
                        .bind(target_text(&w.target)?)
                        .bind(w.summarise.as_deref())
                        .bind(i64::from(w.max_posts))
                        .bind(w.schedule_id.as_deref())
                        .bind(w.etag.as_deref())
                        .bind(w.last_modified.as_deref())
                        .bind(w.seeded)
                        .bind(w.last_polled_at.map(|t| t.as_micros()))
                        .bind(w.last_error.as_deref())
                        .bind(&w.created_by)
                        .bind(w.created_at.as_micros())
                        .execute(self.pool())
                        .await
                        .map_err(|e| classify_insert(self.target(), || format!("watcher {:?}", w.name), e))?;
                    Ok(())
                }

                async fn watcher(&self, tenant: &TenantId, id: &str) -> Result<Option<Watcher>, StoreError> {
                    let sql = format!("SELECT {WATCHER_COLUMNS} FROM watchers WHERE tenant_id = $1 AND id = $2");
                    let row: Option<WatcherRow> = sqlx::query_as(&sql)
                        .bind(tenant.as_str())
                        .bind(id)
                        .fetch_optional(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    row.map(watcher_of).transpose()
                }

                async fn watchers(&self, tenant: &TenantId) -> Result<Vec<Watcher>, StoreError> {
                    let sql = format!("SELECT {WATCHER_COLUMNS} FROM watchers WHERE tenant_id = $1 ORDER BY name");
                    let rows: Vec<WatcherRow> = sqlx::query_as(&sql)
                        .bind(tenant.as_str())
                        .fetch_all(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    rows.into_iter().map(watcher_of).collect()
                }

                async fn delete_watcher(&self, tenant: &TenantId, id: &str) -> Result<bool, StoreError> {
                    let mut tx = self.begin_write().await?;
                    sqlx::query("DELETE FROM watched_items WHERE tenant_id = $1 AND watcher_id = $2")
                        .bind(tenant.as_str())
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    let done = sqlx::query("DELETE FROM watchers WHERE tenant_id = $1 AND id = $2")
                        .bind(tenant.as_str())
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    tx.commit().await.map_err(|e| classify(self.target(), e))?;
                    Ok(done.rows_affected() == 1)
                }

                async fn record_watcher_poll(&self, w: &Watcher) -> Result<(), StoreError> {
                    sqlx::query(
                        "UPDATE watchers SET etag = $3, last_modified = $4, seeded = $5, last_polled_at = $6, \
                         last_error = $7 WHERE tenant_id = $1 AND id = $2",
                    )
                    .bind(w.tenant_id.as_str())
                    .bind(&w.id)
                    .bind(w.etag.as_deref())
                    .bind(w.last_modified.as_deref())
                    .bind(w.seeded)
                    .bind(w.last_polled_at.map(|t| t.as_micros()))
                    .bind(w.last_error.as_deref())
                    .execute(self.pool())
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                    Ok(())
                }

                async fn add_watched_items(
                    &self,
                    tenant: &TenantId,
                    items: &[WatchedItem],
                ) -> Result<Vec<String>, StoreError> {
                    let mut added = Vec::new();
                    let mut tx = self.begin_write().await?;
                    for item in items {
                        let done = sqlx::query(
                            "INSERT INTO watched_items (tenant_id, watcher_id, item_key, title, link, body, digest, \
                             status, attempts, detail, found_at, posted_at) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                             ON CONFLICT (tenant_id, watcher_id, item_key) DO NOTHING",
                        )
                        .bind(tenant.as_str())
                        .bind(&item.watcher_id)
                        .bind(&item.key)
                        .bind(item.title.as_deref())
                        .bind(item.link.as_deref())
                        .bind(&item.text)
                        .bind(&item.digest)
                        .bind(item.status.as_str())
                        .bind(i64::from(item.attempts))
                        .bind(item.detail.as_deref())
                        .bind(item.found_at.as_micros())
                        .bind(item.posted_at.map(|t| t.as_micros()))
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                        if done.rows_affected() == 1 {
                            added.push(item.key.clone());
                        }
                    }
                    tx.commit().await.map_err(|e| classify(self.target(), e))?;
                    Ok(added)
                }

                async fn watched_items(
                    &self,
                    tenant: &TenantId,
                    watcher_id: &str,
                    status: Option<ItemStatus>,
                    oldest_first: bool,
                    limit: u32,
                ) -> Result<Vec<WatchedItem>, StoreError> {
                    let order = if oldest_first { "ASC" } else { "DESC" };
                    let sql = format!(
                        "SELECT {ITEM_COLUMNS} FROM watched_items WHERE tenant_id = $1 AND watcher_id = $2 \
                         AND ($3 = '' OR status = $3) ORDER BY found_at {order}, item_key {order} LIMIT $4"
                    );
                    let rows: Vec<ItemRow> = sqlx::query_as(&sql)
                        .bind(tenant.as_str())
                        .bind(watcher_id)
                        .bind(status.map(ItemStatus::as_str).unwrap_or_default())
                        .bind(i64::from(limit))
                        .fetch_all(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    rows.into_iter().map(item_of).collect()
                }

                async fn count_watched_items(
                    &self,
                    tenant: &TenantId,
                    watcher_id: &str,
                    status: ItemStatus,
                ) -> Result<u64, StoreError> {
                    let (count,): (i64,) = sqlx::query_as(
                        "SELECT COUNT(*) FROM watched_items WHERE tenant_id = $1 AND watcher_id = $2 AND status = $3",
                    )
                    .bind(tenant.as_str())
                    .bind(watcher_id)
                    .bind(status.as_str())
                    .fetch_one(self.pool())
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                    Ok(u64::try_from(count).unwrap_or(0))
                }

                async fn move_watched_item(
                    &self,
                    tenant: &TenantId,
                    item: &WatchedItem,
                    from: ItemStatus,
                ) -> Result<bool, StoreError> {
                    let done = sqlx::query(
                        "UPDATE watched_items SET status = $4, attempts = $5, detail = $6, posted_at = $7 \
                         WHERE tenant_id = $1 AND watcher_id = $2 AND item_key = $3 AND status = $8",
                    )
                    .bind(tenant.as_str())
                    .bind(&item.watcher_id)
                    .bind(&item.key)
                    .bind(item.status.as_str())
                    .bind(i64::from(item.attempts))
                    .bind(item.detail.as_deref())
                    .bind(item.posted_at.map(|t| t.as_micros()))
                    .bind(from.as_str())
                    .execute(self.pool())
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                    Ok(done.rows_affected() == 1)
                }
            }
        }
    };
}

pub(crate) use impl_watcher_port;

//! Shared SQL for the live feed of run events, implemented for both pool types by one macro in
//! a child module of the backend. Appends run in the backend's feed transaction
//! ([`SqlBackend::begin_feed_write`](crate::backend::SqlBackend::begin_feed_write)), so ids
//! become visible in order and a reader's cursor never skips a row committed later.

pub(crate) const FEED_COLUMNS: &str = "id, tenant_id, chain_id, seq, created_at, event";

/// Events stored per statement at most (five placeholders each; a power of two, see
/// `rows::power_of_two_runs`).
pub(crate) const EVENTS_PER_STATEMENT: usize = 256;

/// Stores `rows` events in one statement; ids are drawn in row order.
pub(crate) fn insert_events_sql(rows: usize) -> String {
    crate::rows::values_sql(
        "INSERT INTO live_events (tenant_id, chain_id, seq, created_at, event) VALUES ",
        5,
        rows,
        "",
    )
}

pub(crate) type FeedRow = (i64, String, String, i64, i64, String);

pub(crate) fn entry(row: FeedRow) -> Result<domain::ports::FeedEntry, domain::ports::StoreError> {
    let invalid = |reason: String| domain::ports::StoreError::InvalidRow { what: "live feed entry", reason };
    let (id, tenant_id, chain_id, seq, created_at, event) = row;
    Ok(domain::ports::FeedEntry {
        id: u64::try_from(id).map_err(|_| invalid(format!("negative id {id}")))?,
        record: domain::ports::FeedRecord {
            tenant_id: domain::TenantId::parse(tenant_id).map_err(|e| invalid(e.to_string()))?,
            chain_id: domain::ChainId::parse(chain_id).map_err(|e| invalid(e.to_string()))?,
            seq: u64::try_from(seq).map_err(|_| invalid(format!("negative event number {seq}")))?,
            created_at: domain::Timestamp::from_micros(created_at),
            event,
        },
    })
}

macro_rules! impl_feed_port {
    ($store:ident) => {
        mod feed_port {
            use async_trait::async_trait;
            use domain::ports::{FeedEntry, FeedRecord, FeedStore, StoreError};
            use domain::{TenantId, Timestamp};

            use super::$store;
            use $crate::backend::SqlBackend;
            use $crate::common_feed::{EVENTS_PER_STATEMENT, FEED_COLUMNS, FeedRow, entry, insert_events_sql};
            use $crate::error::classify;
            use $crate::rows::i64_of;

            #[async_trait]
            impl FeedStore for $store {
                async fn append_feed(&self, records: &[FeedRecord]) -> Result<(), StoreError> {
                    if records.is_empty() {
                        return Ok(());
                    }
                    // Multi-row statements sent together however many events: the feed's
                    // transaction holds the write lock other writers (the ledger's) wait for.
                    let mut script = $crate::script::Script::new(Self::JOIN_STATEMENTS);
                    for batch in $crate::rows::power_of_two_runs(records, EVENTS_PER_STATEMENT) {
                        script.statement(&insert_events_sql(batch.len()));
                        for r in batch {
                            script
                                .bind(r.tenant_id.as_str())
                                .bind(r.chain_id.as_str())
                                .bind(i64_of(r.seq))
                                .bind(r.created_at.as_micros())
                                .bind(r.event.as_str());
                        }
                    }
                    let mut tx = self.begin_feed_write().await?;
                    self.run_script(&mut tx, script, &|| "live feed entry".to_owned()).await?;
                    tx.commit().await.map_err(|e| classify(self.target(), e))
                }

                async fn feed_after(
                    &self,
                    tenant: &TenantId,
                    after: u64,
                    limit: u32,
                ) -> Result<Vec<FeedEntry>, StoreError> {
                    let sql = format!(
                        "SELECT {FEED_COLUMNS} FROM live_events WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3"
                    );
                    let rows: Vec<FeedRow> = sqlx::query_as(&sql)
                        .bind(tenant.as_str())
                        .bind(i64_of(after))
                        .bind(i64::from(limit))
                        .fetch_all(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    rows.into_iter().map(entry).collect()
                }

                async fn feed_latest(&self, tenant: &TenantId, limit: u32) -> Result<Vec<FeedEntry>, StoreError> {
                    let sql = format!(
                        "SELECT {FEED_COLUMNS} FROM live_events WHERE tenant_id = $1 ORDER BY id DESC LIMIT $2"
                    );
                    let rows: Vec<FeedRow> = sqlx::query_as(&sql)
                        .bind(tenant.as_str())
                        .bind(i64::from(limit))
                        .fetch_all(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    let mut entries = rows.into_iter().map(entry).collect::<Result<Vec<_>, _>>()?;
                    entries.reverse();
                    Ok(entries)
                }

                async fn feed_head(&self) -> Result<u64, StoreError> {
                    let head: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM live_events")
                        .fetch_one(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    Ok(head.and_then(|h| u64::try_from(h).ok()).unwrap_or(0))
                }

                async fn prune_feed(&self, before: Timestamp) -> Result<u64, StoreError> {
                    let done = sqlx::query("DELETE FROM live_events WHERE created_at < $1")
                        .bind(before.as_micros())
                        .execute(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    Ok(done.rows_affected())
                }
            }
        }
    };
}

pub(crate) use impl_feed_port;

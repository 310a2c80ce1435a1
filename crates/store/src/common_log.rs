//! Log heads and stored tree hashes, shared by both backends: the ledger's locked append path
//! (`LedgerStore::append_locked`), head reads, tile reads and head repair.
//!
//! Each tenant's log has one row in `ledger_heads` (size, right edge of the tree, last batch
//! id). An append locks that row for the whole transaction — an upsert that returns the row
//! (its no-op update holds the row lock on PostgreSQL), inside `BEGIN IMMEDIATE` on SQLite,
//! which takes the database's write lock — so writers
//! in other processes wait instead of colliding on an index. Everything a batch writes after
//! the lock (entries, tree nodes, the head's move, companion rows) goes out as one
//! [`Script`](crate::script::Script): on SQLite one round trip while the lock is held. The
//! backend provides `begin_write` and `stage_entries` (`crate::backend::SqlBackend`).

/// Creates a tenant's head at size 0 if it has none yet, locks it until the transaction ends
/// (the no-op update takes the row lock, waiting for any other writer) and returns it: one
/// round trip.
pub(crate) const HEAD_LOCK_SQL: &str = "INSERT INTO ledger_heads (tenant_id, size, frontier, last_batch) \
     VALUES ($1, 0, $2, NULL) ON CONFLICT (tenant_id) DO UPDATE SET tenant_id = excluded.tenant_id \
     RETURNING size, frontier, last_batch";
/// Moves a tenant's head.
pub(crate) const HEAD_UPDATE_SQL: &str =
    "UPDATE ledger_heads SET size = $2, frontier = $3, last_batch = $4 WHERE tenant_id = $1";
/// Tree nodes stored per statement at most (four placeholders each; a power of two, see
/// `rows::power_of_two_runs`, which says why the most is kept small).
pub(crate) const NODES_PER_STATEMENT: usize = 128;

/// Stores `rows` tree nodes in one statement (a node already stored is kept: nodes never
/// change). Placeholders are numbered in order, as both backends bind them.
pub(crate) fn node_insert_sql(rows: usize) -> String {
    crate::rows::values_sql(
        "INSERT INTO ledger_nodes (tenant_id, level, idx, hash) VALUES ",
        4,
        rows,
        " ON CONFLICT (tenant_id, level, idx) DO NOTHING",
    )
}

/// The newest fingerprint of a chain ($1 tenant, $2 chain).
pub(crate) const LAST_IN_CHAIN_SQL: &str =
    "SELECT fingerprint FROM ledger_entries WHERE tenant_id = $1 AND chain_id = $2 ORDER BY idx DESC LIMIT 1";
/// The newest fingerprint of the entries outside any chain ($1 tenant).
pub(crate) const LAST_OUTSIDE_CHAINS_SQL: &str =
    "SELECT fingerprint FROM ledger_entries WHERE tenant_id = $1 AND chain_id IS NULL ORDER BY idx DESC LIMIT 1";

macro_rules! impl_log_heads {
    ($store:ident) => {
        mod log_heads {
            use domain::TenantId;
            use domain::ledger::{LockedLog, LogHead, LogLock, LogWrite, TreeNode};
            use domain::ports::{Companions, StageFn, StoreError};

            use super::$store;
            use $crate::backend::SqlBackend;

            type Db = <$store as SqlBackend>::Db;
            use $crate::common_log::{
                HEAD_LOCK_SQL, HEAD_UPDATE_SQL, LAST_IN_CHAIN_SQL, LAST_OUTSIDE_CHAINS_SQL, NODES_PER_STATEMENT,
                node_insert_sql,
            };
            use $crate::error::{classify, classify_insert};
            use $crate::rows::{self, i64_of};
            use $crate::script::Script;

            type Tx = sqlx::Transaction<'static, Db>;
            type HeadRow = (i64, Vec<u8>, Option<String>);

            fn head_of(row: HeadRow) -> LogHead {
                let (size, frontier, last_batch) = row;
                LogHead { size: u64::try_from(size).unwrap_or(0), frontier, last_batch }
            }

            /// Stores tree nodes (a node already stored is kept: nodes never change).
            fn stage_nodes<'q>(script: &mut Script<'q, Db>, tenant: &'q TenantId, nodes: &'q [TreeNode]) {
                for batch in rows::power_of_two_runs(nodes, NODES_PER_STATEMENT) {
                    script.statement(&node_insert_sql(batch.len()));
                    for node in batch {
                        script
                            .bind(tenant.as_str())
                            .bind(i16::from(node.level))
                            .bind(i64_of(node.index))
                            .bind(&node.hash[..]);
                    }
                }
            }

            fn stage_head_move<'q>(script: &mut Script<'q, Db>, tenant: &'q TenantId, head: &'q LogHead) {
                script
                    .statement(HEAD_UPDATE_SQL)
                    .bind(tenant.as_str())
                    .bind(i64_of(head.size))
                    .bind(&head.frontier)
                    .bind(head.last_batch.as_deref());
            }

            /// What a uniqueness violation in a batch's writes can only be: an entry's index taken.
            fn entries_of(writes: &[LogWrite]) -> String {
                writes.first().map_or_else(String::new, |w| format!("ledger entry of tenant {}", w.tenant))
            }

            impl $store {
                async fn lock_head(&self, tx: &mut Tx, tenant: &TenantId) -> Result<LogHead, StoreError> {
                    let row: HeadRow = sqlx::query_as(HEAD_LOCK_SQL)
                        .bind(tenant.as_str())
                        .bind(Vec::<u8>::new())
                        .fetch_one(&mut **tx)
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    Ok(head_of(row))
                }

                async fn fingerprint_in(
                    &self,
                    tx: &mut Tx,
                    tenant: &TenantId,
                    chain: Option<&domain::ChainId>,
                ) -> Result<Option<String>, StoreError> {
                    let query = match chain {
                        Some(chain) => sqlx::query_scalar(LAST_IN_CHAIN_SQL).bind(tenant.as_str()).bind(chain.as_str()),
                        None => sqlx::query_scalar(LAST_OUTSIDE_CHAINS_SQL).bind(tenant.as_str()),
                    };
                    query.fetch_optional(&mut **tx).await.map_err(|e| classify(self.target(), e))
                }

                /// Sends `script` on `conn`; a uniqueness violation is a conflict on `what`.
                pub(crate) async fn run_script(
                    &self,
                    conn: &mut <Db as sqlx::Database>::Connection,
                    script: Script<'_, Db>,
                    what: &(dyn Fn() -> String + Sync),
                ) -> Result<(), StoreError> {
                    let parts = script
                        .into_parts()
                        .map_err(|e| StoreError::Backend(format!("a value could not be encoded: {e}")))?;
                    for part in parts {
                        sqlx::query_with(&part.sql, part.arguments)
                            .persistent(!part.joined)
                            .execute(&mut *conn)
                            .await
                            .map_err(|e| classify_insert(self.target(), what, e))?;
                    }
                    Ok(())
                }

                pub(crate) async fn append_locked_impl(
                    &self,
                    locks: &[LogLock],
                    stage: &StageFn<'_>,
                    companions: &Companions,
                ) -> Result<Option<Vec<LogWrite>>, StoreError> {
                    let mut tx = self.begin_write().await?;
                    let mut locked = Vec::with_capacity(locks.len());
                    for lock in locks {
                        let head = self.lock_head(&mut tx, &lock.tenant).await?;
                        let stale = lock.known_at != Some(head.size);
                        let mut fingerprints = Vec::with_capacity(lock.chains.len());
                        let wanted = lock.chains.iter().chain(lock.known.iter().filter(|_| stale));
                        for chain in wanted {
                            let found = self.fingerprint_in(&mut tx, &lock.tenant, chain.as_ref()).await?;
                            fingerprints.push((chain.clone(), found));
                        }
                        locked.push(LockedLog { tenant: lock.tenant.clone(), head, fingerprints });
                    }
                    let Some(writes) = stage(&locked).map_err(StoreError::Backend)? else {
                        // The batch is already in (an earlier attempt committed): change nothing.
                        return Ok(None);
                    };
                    let mut script = Script::new(Self::JOIN_STATEMENTS);
                    for write in &writes {
                        Self::stage_entries(&mut script, &write.records);
                        stage_nodes(&mut script, &write.tenant, &write.nodes);
                        stage_head_move(&mut script, &write.tenant, &write.head);
                    }
                    Self::stage_companions(&mut script, companions);
                    self.run_script(&mut tx, script, &|| entries_of(&writes)).await?;
                    tx.commit().await.map_err(|e| classify(self.target(), e))?;
                    Ok(Some(writes))
                }

                /// Raw rows (`LedgerStore::append_with`): entries and companions in one
                /// transaction, no head locked or moved.
                pub(crate) async fn insert_ledger_rows(
                    &self,
                    records: &[domain::ledger::LedgerRecord],
                    companions: &Companions,
                ) -> Result<(), StoreError> {
                    let mut script = Script::new(Self::JOIN_STATEMENTS);
                    Self::stage_entries(&mut script, records);
                    Self::stage_companions(&mut script, companions);
                    let what = || {
                        records.first().map_or_else(String::new, |r| format!("ledger entry of tenant {}", r.tenant_id))
                    };
                    let mut tx = self.pool().begin().await.map_err(|e| classify(self.target(), e))?;
                    self.run_script(&mut tx, script, &what).await?;
                    tx.commit().await.map_err(|e| classify(self.target(), e))
                }

                pub(crate) async fn log_head_impl(&self, tenant: &TenantId) -> Result<Option<LogHead>, StoreError> {
                    let row: Option<HeadRow> =
                        sqlx::query_as("SELECT size, frontier, last_batch FROM ledger_heads WHERE tenant_id = $1")
                            .bind(tenant.as_str())
                            .fetch_optional(self.pool())
                            .await
                            .map_err(|e| classify(self.target(), e))?;
                    Ok(row.map(head_of))
                }

                pub(crate) async fn tree_hashes_impl(
                    &self,
                    tenant: &TenantId,
                    level: u8,
                    from: u64,
                    to: u64,
                ) -> Result<Vec<[u8; 32]>, StoreError> {
                    let query = if level == 0 {
                        sqlx::query_scalar(
                            "SELECT leaf_hash FROM ledger_entries WHERE tenant_id = $1 AND idx >= $2 AND idx < $3 \
                             ORDER BY idx",
                        )
                        .bind(tenant.as_str())
                        .bind(i64_of(from))
                        .bind(i64_of(to))
                    } else {
                        sqlx::query_scalar(
                            "SELECT hash FROM ledger_nodes WHERE tenant_id = $1 AND level = $4 AND idx >= $2 \
                             AND idx < $3 ORDER BY idx",
                        )
                        .bind(tenant.as_str())
                        .bind(i64_of(from))
                        .bind(i64_of(to))
                        .bind(i16::from(level))
                    };
                    let found: Vec<Vec<u8>> =
                        query.fetch_all(self.pool()).await.map_err(|e| classify(self.target(), e))?;
                    found.into_iter().map(|h| rows::hash32("ledger tree hash", h)).collect()
                }

                pub(crate) async fn repair_log_head_impl(
                    &self,
                    tenant: &TenantId,
                    expected_size: u64,
                    head: &LogHead,
                    nodes: &[TreeNode],
                ) -> Result<(), StoreError> {
                    let mut tx = self.begin_write().await?;
                    let current = self.lock_head(&mut tx, tenant).await?;
                    if current.size != expected_size {
                        return Err(StoreError::Conflict {
                            what: format!(
                                "log head of tenant {tenant} at size {} (expected {expected_size})",
                                current.size
                            ),
                        });
                    }
                    let mut script = Script::new(Self::JOIN_STATEMENTS);
                    stage_nodes(&mut script, tenant, nodes);
                    stage_head_move(&mut script, tenant, head);
                    self.run_script(&mut tx, script, &|| format!("log head of tenant {tenant}")).await?;
                    tx.commit().await.map_err(|e| classify(self.target(), e))
                }
            }
        }
    };
}

pub(crate) use impl_log_heads;

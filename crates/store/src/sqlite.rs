//! The SQLite backend: one file in the data directory, WAL journal, `synchronous = FULL` so a
//! committed transaction survives power loss, not only a crash.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use crate::backend::SqlBackend;
use crate::common::impl_store;
use crate::common_jobs::{JOB_COLUMNS, JobRow};
use crate::error::classify_migration;
use crate::notify::MemoryNotifier;
use crate::script::Script;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// How much of the database file each connection maps (`PRAGMA mmap_size`); pages past it are
/// read with system calls as before. File pages mapped count toward the resident size only
/// while they are in the operating system's page cache, and are shared between connections.
const MMAP_BYTES: u64 = 128 * 1024 * 1024;

/// Rows per INSERT statement when appending ledger entries (9 parameters each; a power of two,
/// see `rows::power_of_two_runs`, which says why the most is kept small).
const LEDGER_ROWS_PER_STATEMENT: usize = 64;

pub struct SqliteStore {
    /// Reads and single-statement writes.
    pool: SqlitePool,
    /// The one connection write transactions ([`SqlBackend::begin_write`]) run on. SQLite lets
    /// one writer in at a time anyway, so writers queue here in order instead of polling the
    /// database's lock with its busy handler's sleeps; and the large multi-row statements the
    /// ledger writer keeps prepared are held by one connection, not by every one of the pool
    /// (each connection's prepared statements and caches live on its own worker thread).
    writer: SqlitePool,
    path: PathBuf,
    target: String,
    /// In this process only; other processes on the file rely on their periodic checks.
    notifier: Arc<MemoryNotifier>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file at `path` and applies migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let target = path.display().to_string();
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(|e| classify(&target, e))?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // Pages are read through a read-only memory map instead of a system call and a copy
            // each: a connection's page cache is dropped whenever another connection commits,
            // which under load is at every transaction, so reads are frequent.
            .pragma("mmap_size", MMAP_BYTES.to_string());
        let pools = |connections: u32| {
            SqlitePoolOptions::new()
                .max_connections(connections)
                // A connection to a local file has nothing to lose between uses; checking it
                // first would cost a round trip to its worker thread on every acquire.
                .test_before_acquire(false)
                .acquire_timeout(Duration::from_secs(10))
        };
        let writer = pools(1).connect_with(options.clone()).await.map_err(|e| classify(&target, e))?;
        MIGRATOR.run(&writer).await.map_err(|e| classify_migration(&target, e))?;
        let pool = pools(3).connect_with(options).await.map_err(|e| classify(&target, e))?;
        Ok(Self { pool, writer, path: path.to_owned(), target, notifier: MemoryNotifier::new() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl SqlBackend for SqliteStore {
    type Db = sqlx::Sqlite;

    /// Lexical candidates from the FTS5 index, best (FTS5 BM25) first: $1 tenant, $2
    /// namespace, $3 highest access rank, $4 limit, $5 the match expression.
    const CHUNK_SEARCH_SQL: &'static str = "SELECT c.document_id, c.ordinal, d.source, c.text \
         FROM knowledge_chunks_fts f JOIN knowledge_chunks c ON c.id = f.rowid \
         JOIN knowledge_documents d ON d.tenant_id = c.tenant_id AND d.id = c.document_id \
         WHERE knowledge_chunks_fts MATCH $5 AND c.tenant_id = $1 AND c.namespace = $2 AND c.access_rank <= $3 \
         ORDER BY f.rank, c.document_id, c.ordinal LIMIT $4";

    /// An FTS5 expression matching any of `terms`, each quoted so no word is read as syntax.
    fn chunk_search_query(terms: &[String]) -> String {
        terms.iter().map(|t| format!("\"{}\"", t.replace('"', "\"\""))).collect::<Vec<_>>().join(" OR ")
    }

    fn target(&self) -> &str {
        &self.target
    }

    /// A transaction on the writer connection that takes the database's write lock at once
    /// (`BEGIN IMMEDIATE`): it waits for the connection behind other write transactions of this
    /// process, then for other processes' writers (busy timeout), instead of failing when it
    /// later writes.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
        self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(|e| classify(self.target(), e))
    }

    async fn begin_feed_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
        self.begin_write().await
    }

    /// A write transaction's statements go to the connection's worker thread as one text.
    const JOIN_STATEMENTS: bool = true;

    /// Ledger rows in multi-row statements.
    fn stage_entries<'q>(script: &mut Script<'q, sqlx::Sqlite>, records: &'q [LedgerRecord]) {
        let head = format!("INSERT INTO ledger_entries ({}) VALUES ", rows::LEDGER_COLUMNS);
        for chunk in rows::power_of_two_runs(records, LEDGER_ROWS_PER_STATEMENT) {
            script.statement(&rows::values_sql(&head, 9, chunk.len(), ""));
            for r in chunk {
                script
                    .bind(r.tenant_id.as_str())
                    .bind(i64_of(r.index))
                    .bind(r.kind.as_str())
                    .bind(r.chain_id.as_ref().map(ChainId::as_str))
                    .bind(r.timestamp.as_micros())
                    .bind(r.payload.as_str())
                    .bind(r.parent_fingerprint.as_str())
                    .bind(r.fingerprint.as_str())
                    .bind(&r.leaf_hash[..]);
            }
        }
    }

    /// One statement: SQLite runs one writer at a time, so choosing the job (and counting its
    /// tenant's running jobs) and claiming it cannot interleave with another claim.
    async fn claim_due_job(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
        tenant_cap: u32,
    ) -> Result<Option<JobRow>, StoreError> {
        let sql = format!(
            "UPDATE jobs SET state = 'running', lease_owner = $1, lease_until = $3, attempts = attempts + 1, \
             cancel_requested = FALSE, started_at = $2, updated_at = $2 \
             WHERE state = 'pending' AND (tenant_id, id) = (SELECT j.tenant_id, j.id FROM jobs j \
             WHERE j.state = 'pending' AND j.run_at <= $2 \
             AND (SELECT COUNT(*) FROM jobs r WHERE r.tenant_id = j.tenant_id AND r.state = 'running') < $4 \
             ORDER BY j.run_at, j.created_at, j.id LIMIT 1) \
             RETURNING {JOB_COLUMNS}"
        );
        sqlx::query_as(&sql)
            .bind(owner)
            .bind(now.as_micros())
            .bind(lease_until.as_micros())
            .bind(i64::from(tenant_cap))
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| classify(self.target(), e))
    }

    fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

impl_store!(SqliteStore);

#[async_trait]
impl domain::ports::Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn location(&self) -> String {
        self.target.clone()
    }

    fn notifier(&self) -> Arc<dyn domain::ports::Notifier> {
        self.notifier.clone()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(|e| classify(self.target(), e))?;
        Ok(())
    }

    async fn integrity_check(&self) -> Result<(), StoreError> {
        let problems: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| classify(self.target(), e))?;
        match problems.as_slice() {
            [ok] if ok == "ok" => Ok(()),
            _ => Err(StoreError::Corrupt { target: self.target.clone(), reason: problems.join("; ") }),
        }
    }

    async fn close(&self) {
        // Fold the WAL into the main file so a cleanly stopped database is one self-contained
        // file (for copies and backups). Failure only means the WAL is replayed on next open.
        self.pool.close().await;
        if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&self.writer).await {
            tracing::debug!(%error, "WAL checkpoint at close did not run");
        }
        self.notifier.close();
        self.writer.close().await;
    }
}

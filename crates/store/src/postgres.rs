//! The PostgreSQL backend, for several `nexus serve` replicas sharing one database.

use std::sync::Arc;
use std::time::Duration;

use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::backend::SqlBackend;
use crate::common::impl_store;
use crate::common_jobs::{JOB_COLUMNS, JobRow};
use crate::error::classify_migration;
use crate::postgres_notify::PgNotifier;
use crate::script::Script;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The advisory lock key that orders live-feed appends (any constant no other code uses).
const FEED_LOCK: i64 = 0x6e78_6665_6564;

/// The class (first key of the two-key advisory lock) under which one tenant's job claims are
/// serialized; the second key is a hash of the tenant id (a collision only serializes two
/// tenants' claims with each other).
const JOB_CLAIM_LOCK: i32 = 0x6e78_6a62;

/// How many candidates one claim tries before giving up for this poll, when each one's tenant
/// turned out to be at its cap once locked (a claim racing others of the same tenants).
const CLAIM_CANDIDATES: usize = 16;

pub struct PgStore {
    pool: PgPool,
    target: String,
    notifier: Arc<PgNotifier>,
}

impl PgStore {
    /// Connects to `url` and applies migrations. `target` is the URL without its password.
    pub async fn open(url: &str, target: String) -> Result<Self, StoreError> {
        let options: PgConnectOptions = url
            .parse()
            .map_err(|e: sqlx::Error| StoreError::Unavailable { target: target.clone(), reason: e.to_string() })?;
        // One direct connection first: a pool only reports "timed out", a connection says why.
        let probe = sqlx::PgConnection::connect_with(&options).await.map_err(|e| classify(&target, e))?;
        let _ = probe.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options.clone())
            .await
            .map_err(|e| classify(&target, e))?;
        MIGRATOR.run(&pool).await.map_err(|e| classify_migration(&target, e))?;
        let schema: String = sqlx::query_scalar("SELECT COALESCE(current_schema(), '')")
            .fetch_one(&pool)
            .await
            .map_err(|e| classify(&target, e))?;
        let notifier = Arc::new(PgNotifier::new(pool.clone(), options, &schema, target.clone()));
        Ok(Self { pool, target, notifier })
    }

    /// The PostgreSQL channel a topic's notifications travel on (to `LISTEN` from `psql`).
    pub fn notification_channel(&self, topic: &domain::ports::Topic) -> String {
        self.notifier.channel(topic)
    }
}

impl SqlBackend for PgStore {
    type Db = sqlx::Postgres;

    /// Lexical candidates from the GIN-indexed tsvector, best (`ts_rank`) first: $1 tenant, $2
    /// namespace, $3 highest access rank, $4 limit, $5 the web-search style query.
    const CHUNK_SEARCH_SQL: &'static str = "SELECT c.document_id, c.ordinal, d.source, c.text \
         FROM knowledge_chunks c CROSS JOIN websearch_to_tsquery('simple', $5) q \
         JOIN knowledge_documents d ON d.tenant_id = c.tenant_id AND d.id = c.document_id \
         WHERE c.search @@ q AND c.tenant_id = $1 AND c.namespace = $2 AND c.access_rank <= $3 \
         ORDER BY ts_rank(c.search, q) DESC, c.document_id, c.ordinal LIMIT $4";

    /// A query matching any of `terms` (`websearch_to_tsquery` never fails on its input; terms
    /// are words, and `or` itself is a stop word the tokenizer already dropped).
    fn chunk_search_query(terms: &[String]) -> String {
        terms.iter().map(|t| t.replace('"', " ")).collect::<Vec<_>>().join(" or ")
    }

    fn target(&self) -> &str {
        &self.target
    }

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
        self.pool.begin().await.map_err(|e| classify(self.target(), e))
    }

    async fn begin_feed_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(|e| classify(self.target(), e))?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(FEED_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(|e| classify(self.target(), e))?;
        Ok(tx)
    }

    /// PostgreSQL takes one statement with parameters per message.
    const JOIN_STATEMENTS: bool = false;

    /// Ledger rows in one `UNNEST` statement.
    fn stage_entries<'q>(script: &mut Script<'q, sqlx::Postgres>, records: &'q [LedgerRecord]) {
        if records.is_empty() {
            return;
        }
        let mut tenants = Vec::with_capacity(records.len());
        let mut indexes = Vec::with_capacity(records.len());
        let mut kinds = Vec::with_capacity(records.len());
        let mut chains = Vec::with_capacity(records.len());
        let mut times = Vec::with_capacity(records.len());
        let mut payloads = Vec::with_capacity(records.len());
        let mut parents = Vec::with_capacity(records.len());
        let mut fingerprints = Vec::with_capacity(records.len());
        let mut leaves = Vec::with_capacity(records.len());
        for r in records {
            tenants.push(r.tenant_id.as_str());
            indexes.push(i64_of(r.index));
            kinds.push(r.kind.as_str());
            chains.push(r.chain_id.as_ref().map(ChainId::as_str));
            times.push(r.timestamp.as_micros());
            payloads.push(r.payload.as_str());
            parents.push(r.parent_fingerprint.as_str());
            fingerprints.push(r.fingerprint.as_str());
            leaves.push(&r.leaf_hash[..]);
        }
        let sql = format!(
            "INSERT INTO ledger_entries ({}) SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], \
             $4::text[], $5::bigint[], $6::text[], $7::text[], $8::text[], $9::bytea[])",
            rows::LEDGER_COLUMNS
        );
        script
            .statement(&sql)
            .bind(tenants)
            .bind(indexes)
            .bind(kinds)
            .bind(chains)
            .bind(times)
            .bind(payloads)
            .bind(parents)
            .bind(fingerprints)
            .bind(leaves);
    }

    /// In one transaction per candidate: the oldest due pending job of a tenant apparently
    /// below its cap, locked with `FOR UPDATE SKIP LOCKED` (concurrent claimers take different
    /// rows); then the tenant's advisory lock, held until commit, and a fresh count of its
    /// running jobs, so two claimers never both take a tenant's last free slot. A candidate
    /// whose tenant is at its cap by then is let go and the next candidate of another tenant is
    /// tried, up to [`CLAIM_CANDIDATES`]; then `None` (the next poll tries again).
    async fn claim_due_job(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
        tenant_cap: u32,
    ) -> Result<Option<JobRow>, StoreError> {
        let cap = i64::from(tenant_cap);
        let mut full: Vec<String> = Vec::new();
        for _ in 0..CLAIM_CANDIDATES {
            let mut tx = self.pool.begin().await.map_err(|e| classify(self.target(), e))?;
            let candidate: Option<(String, String)> = sqlx::query_as(
                "SELECT j.tenant_id, j.id FROM jobs j \
                 WHERE j.state = 'pending' AND j.run_at <= $1 AND j.tenant_id <> ALL($2) \
                 AND (SELECT COUNT(*) FROM jobs r WHERE r.tenant_id = j.tenant_id AND r.state = 'running') < $3 \
                 ORDER BY j.run_at, j.created_at, j.id LIMIT 1 FOR UPDATE OF j SKIP LOCKED",
            )
            .bind(now.as_micros())
            .bind(&full)
            .bind(cap)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| classify(self.target(), e))?;
            let Some((tenant, id)) = candidate else {
                tx.rollback().await.map_err(|e| classify(self.target(), e))?;
                return Ok(None);
            };
            sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
                .bind(JOB_CLAIM_LOCK)
                .bind(&tenant)
                .execute(&mut *tx)
                .await
                .map_err(|e| classify(self.target(), e))?;
            let running: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE tenant_id = $1 AND state = 'running'")
                    .bind(&tenant)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| classify(self.target(), e))?;
            if running >= cap {
                tx.rollback().await.map_err(|e| classify(self.target(), e))?;
                full.push(tenant);
                continue;
            }
            let sql = format!(
                "UPDATE jobs SET state = 'running', lease_owner = $3, lease_until = $5, attempts = attempts + 1, \
                 cancel_requested = FALSE, started_at = $4, updated_at = $4 \
                 WHERE tenant_id = $1 AND id = $2 AND state = 'pending' RETURNING {JOB_COLUMNS}"
            );
            let row: Option<JobRow> = sqlx::query_as(&sql)
                .bind(&tenant)
                .bind(&id)
                .bind(owner)
                .bind(now.as_micros())
                .bind(lease_until.as_micros())
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| classify(self.target(), e))?;
            tx.commit().await.map_err(|e| classify(self.target(), e))?;
            if row.is_some() {
                return Ok(row);
            }
        }
        Ok(None)
    }

    fn pool(&self) -> &PgPool {
        &self.pool
    }
}

impl_store!(PgStore);

#[async_trait]
impl domain::ports::Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
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
        // PostgreSQL checksums its own pages; what we can check cheaply is that it answers.
        self.ping().await
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

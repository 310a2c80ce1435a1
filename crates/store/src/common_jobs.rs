//! Shared SQL for background work (the job queue, cron schedules and per-tenant equipment
//! switches), implemented for both pool types by one macro in a child module of the backend;
//! only claiming a job differs per backend (see `SqlBackend::claim_due_job`).

use domain::job::{Job, JobKind, JobState, MissedRuns, Schedule};
use domain::ports::StoreError;
use domain::{TenantId, Timestamp};

pub(crate) const JOB_COLUMNS: &str = "tenant_id, id, kind, payload, state, attempts, max_attempts, run_at, \
     lease_owner, lease_until, cancel_requested, last_error, result, schedule_id, idempotency_key, created_by, \
     created_at, started_at, finished_at, updated_at";

pub(crate) const SCHEDULE_COLUMNS: &str = "tenant_id, id, name, cron, timezone, kind, payload, enabled, missed, \
     next_run_at, last_run_at, created_by, created_at, updated_at";

/// Inserts a job ($1–$20 in [`JOB_COLUMNS`] order); nothing when the tenant already has a job
/// with its idempotency key (a duplicate id is still a uniqueness violation).
pub(crate) const INSERT_JOB_SQL: &str = "INSERT INTO jobs (tenant_id, id, kind, payload, state, attempts, \
     max_attempts, run_at, lease_owner, lease_until, cancel_requested, last_error, result, schedule_id, \
     idempotency_key, created_by, created_at, started_at, finished_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20) \
     ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING";

/// What a requeued job's `last_error` says when its worker's lease ran out with attempts left.
pub(crate) const LEASE_EXPIRED: &str = "its worker stopped answering (lease expired)";

/// A `jobs` row as stored (more columns than sqlx decodes into a tuple).
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct JobRow {
    pub tenant_id: String,
    pub id: String,
    pub kind: String,
    pub payload: String,
    pub state: String,
    pub attempts: i64,
    pub max_attempts: i64,
    pub run_at: i64,
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
    pub cancel_requested: bool,
    pub last_error: Option<String>,
    pub result: Option<String>,
    pub schedule_id: Option<String>,
    pub idempotency_key: Option<String>,
    pub created_by: String,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub updated_at: i64,
}

/// A `schedules` row as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct ScheduleRow {
    pub tenant_id: String,
    pub id: String,
    pub name: String,
    pub cron: String,
    pub timezone: String,
    pub kind: String,
    pub payload: String,
    pub enabled: bool,
    pub missed: String,
    pub next_run_at: Option<i64>,
    pub last_run_at: Option<i64>,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
}

fn invalid(what: &'static str, reason: impl ToString) -> StoreError {
    StoreError::InvalidRow { what, reason: reason.to_string() }
}

fn count_of(what: &'static str, v: i64) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| invalid(what, format!("number {v} out of range")))
}

pub(crate) fn job_of(row: JobRow) -> Result<Job, StoreError> {
    Ok(Job {
        tenant_id: TenantId::parse(row.tenant_id).map_err(|e| invalid("jobs.tenant_id", e))?,
        id: row.id,
        kind: row.kind.parse::<JobKind>().map_err(|e| invalid("jobs.kind", e))?,
        payload: row.payload,
        state: row.state.parse::<JobState>().map_err(|e| invalid("jobs.state", e))?,
        attempts: count_of("jobs.attempts", row.attempts)?,
        max_attempts: count_of("jobs.max_attempts", row.max_attempts)?,
        run_at: Timestamp::from_micros(row.run_at),
        lease_owner: row.lease_owner,
        lease_until: row.lease_until.map(Timestamp::from_micros),
        cancel_requested: row.cancel_requested,
        last_error: row.last_error,
        result: row.result,
        schedule_id: row.schedule_id,
        idempotency_key: row.idempotency_key,
        created_by: row.created_by,
        created_at: Timestamp::from_micros(row.created_at),
        started_at: row.started_at.map(Timestamp::from_micros),
        finished_at: row.finished_at.map(Timestamp::from_micros),
        updated_at: Timestamp::from_micros(row.updated_at),
    })
}

pub(crate) fn schedule_of(row: ScheduleRow) -> Result<Schedule, StoreError> {
    Ok(Schedule {
        tenant_id: TenantId::parse(row.tenant_id).map_err(|e| invalid("schedules.tenant_id", e))?,
        id: row.id,
        name: row.name,
        cron: row.cron,
        timezone: row.timezone,
        kind: row.kind.parse::<JobKind>().map_err(|e| invalid("schedules.kind", e))?,
        payload: row.payload,
        enabled: row.enabled,
        missed: row.missed.parse::<MissedRuns>().map_err(|e| invalid("schedules.missed", e))?,
        next_run_at: row.next_run_at.map(Timestamp::from_micros),
        last_run_at: row.last_run_at.map(Timestamp::from_micros),
        created_by: row.created_by,
        created_at: Timestamp::from_micros(row.created_at),
        updated_at: Timestamp::from_micros(row.updated_at),
    })
}

/// `state IN (…)` for the listing's states, with placeholders numbered from `first`.
pub(crate) fn states_clause(states: &[JobState], first: usize) -> String {
    if states.is_empty() {
        return String::from("TRUE");
    }
    let placeholders: Vec<String> = (first..first + states.len()).map(|n| format!("${n}")).collect();
    format!("state IN ({})", placeholders.join(", "))
}

macro_rules! impl_job_port {
    ($store:ident) => {
        mod job_port {
            use async_trait::async_trait;
            use domain::job::{Job, JobFilter, JobOutcome, Schedule};
            use domain::ports::{JobStore, StoreError};
            use domain::{TenantId, Timestamp};

            use super::$store;
            use $crate::backend::SqlBackend;
            use $crate::common_jobs::{
                INSERT_JOB_SQL, JOB_COLUMNS, JobRow, LEASE_EXPIRED, SCHEDULE_COLUMNS, ScheduleRow, job_of, schedule_of,
                states_clause,
            };
            use $crate::error::{classify, classify_insert};

            macro_rules! bind_job {
                ($query:expr, $j:expr) => {
                    $query
                        .bind($j.tenant_id.as_str())
                        .bind(&$j.id)
                        .bind($j.kind.as_str())
                        .bind(&$j.payload)
                        .bind($j.state.as_str())
                        .bind(i64::from($j.attempts))
                        .bind(i64::from($j.max_attempts))
                        .bind($j.run_at.as_micros())
                        .bind($j.lease_owner.as_deref())
                        .bind($j.lease_until.map(|t| t.as_micros()))
                        .bind($j.cancel_requested)
                        .bind($j.last_error.as_deref())
                        .bind($j.result.as_deref())
                        .bind($j.schedule_id.as_deref())
                        .bind($j.idempotency_key.as_deref())
                        .bind(&$j.created_by)
                        .bind($j.created_at.as_micros())
                        .bind($j.started_at.map(|t| t.as_micros()))
                        .bind($j.finished_at.map(|t| t.as_micros()))
                        .bind($j.updated_at.as_micros())
                };
            }

            impl $store {
                /// The job as it is now (after an update that did not apply to it).
                async fn current_job(&self, tenant: &TenantId, id: &str) -> Result<Option<Job>, StoreError> {
                    let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE tenant_id = $1 AND id = $2");
                    let row: Option<JobRow> = sqlx::query_as(&sql)
                        .bind(tenant.as_str())
                        .bind(id)
                        .fetch_optional(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    row.map(job_of).transpose()
                }
            }

            #[async_trait]
            impl JobStore for $store {
                async fn insert_job(&self, job: &Job) -> Result<bool, StoreError> {
                    let done = bind_job!(sqlx::query(INSERT_JOB_SQL), job)
                        .execute(self.pool())
                        .await
                        .map_err(|e| classify_insert(self.target(), || format!("job {}", job.id), e))?;
                    Ok(done.rows_affected() == 1)
                }

                async fn job(&self, tenant: &TenantId, id: &str) -> Result<Option<Job>, StoreError> {
                    self.current_job(tenant, id).await
                }

                async fn jobs(&self, tenant: &TenantId, filter: &JobFilter, limit: u32) -> Result<Vec<Job>, StoreError> {
                    let sql = format!(
                        "SELECT {JOB_COLUMNS} FROM jobs WHERE tenant_id = $1 AND ($2 IS NULL OR kind = $2) \
                         AND ($3 IS NULL OR schedule_id = $3) AND {} ORDER BY created_at DESC, id DESC LIMIT $4",
                        states_clause(&filter.states, 5)
                    );
                    let mut query = sqlx::query_as::<_, JobRow>(&sql)
                        .bind(tenant.as_str())
                        .bind(filter.kind.map(|k| k.as_str()))
                        .bind(filter.schedule_id.as_deref())
                        .bind(i64::from(limit));
                    for state in &filter.states {
                        query = query.bind(state.as_str());
                    }
                    let rows = query.fetch_all(self.pool()).await.map_err(|e| classify(self.target(), e))?;
                    rows.into_iter().map(job_of).collect()
                }

                async fn claim_job(
                    &self,
                    owner: &str,
                    now: Timestamp,
                    lease_until: Timestamp,
                    tenant_cap: u32,
                ) -> Result<Option<Job>, StoreError> {
                    let row = self.claim_due_job(owner, now, lease_until, tenant_cap).await?;
                    row.map(job_of).transpose()
                }

                async fn renew_job(
                    &self,
                    tenant: &TenantId,
                    id: &str,
                    owner: &str,
                    lease_until: Timestamp,
                ) -> Result<Option<bool>, StoreError> {
                    // `updated_at` is left alone: a heartbeat changes nothing but the lease, and
                    // the port gives no caller's time to stamp it with.
                    let row: Option<(bool,)> = sqlx::query_as(
                        "UPDATE jobs SET lease_until = $4 \
                         WHERE tenant_id = $1 AND id = $2 AND state = 'running' AND lease_owner = $3 \
                         RETURNING cancel_requested",
                    )
                    .bind(tenant.as_str())
                    .bind(id)
                    .bind(owner)
                    .bind(lease_until.as_micros())
                    .fetch_optional(self.pool())
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                    Ok(row.map(|(cancel_requested,)| cancel_requested))
                }

                async fn finish_job(
                    &self,
                    tenant: &TenantId,
                    id: &str,
                    owner: &str,
                    outcome: &JobOutcome,
                    now: Timestamp,
                ) -> Result<bool, StoreError> {
                    const HELD: &str = "lease_owner = NULL, lease_until = NULL, updated_at = $4 \
                         WHERE tenant_id = $1 AND id = $2 AND state = 'running' AND lease_owner = $3";
                    let (sql, text, retry_at) = match outcome {
                        JobOutcome::Completed { result } => {
                            (format!("UPDATE jobs SET state = 'completed', result = $5, finished_at = $4, {HELD}"), result, None)
                        }
                        JobOutcome::Failed { error, retry_at: Some(at) } => (
                            format!(
                                "UPDATE jobs SET last_error = $5, \
                                 state = CASE WHEN attempts < max_attempts THEN 'pending' ELSE 'failed' END, \
                                 run_at = CASE WHEN attempts < max_attempts THEN $6 ELSE run_at END, \
                                 finished_at = CASE WHEN attempts < max_attempts THEN NULL ELSE $4 END, {HELD}"
                            ),
                            error,
                            Some(at.as_micros()),
                        ),
                        JobOutcome::Failed { error, retry_at: None } => {
                            (format!("UPDATE jobs SET state = 'failed', last_error = $5, finished_at = $4, {HELD}"), error, None)
                        }
                        JobOutcome::Cancelled { reason } => {
                            (format!("UPDATE jobs SET state = 'cancelled', last_error = $5, finished_at = $4, {HELD}"), reason, None)
                        }
                    };
                    let mut query = sqlx::query(&sql).bind(tenant.as_str()).bind(id).bind(owner).bind(now.as_micros()).bind(text);
                    if let Some(at) = retry_at {
                        query = query.bind(at);
                    }
                    let done = query.execute(self.pool()).await.map_err(|e| classify(self.target(), e))?;
                    Ok(done.rows_affected() == 1)
                }

                async fn requeue_expired_jobs(&self, now: Timestamp) -> Result<Vec<Job>, StoreError> {
                    // Every SET expression reads the row as it was before the update.
                    let sql = format!(
                        "UPDATE jobs SET \
                         state = CASE WHEN cancel_requested THEN 'cancelled' \
                             WHEN attempts < max_attempts THEN 'pending' ELSE 'failed' END, \
                         run_at = CASE WHEN NOT cancel_requested AND attempts < max_attempts THEN $1 ELSE run_at END, \
                         last_error = CASE WHEN cancel_requested \
                             THEN 'cancelled while its worker stopped answering (lease expired)' \
                             WHEN attempts < max_attempts THEN $2 \
                             ELSE 'its lease ran out after ' || attempts || ' attempts' END, \
                         finished_at = CASE WHEN NOT cancel_requested AND attempts < max_attempts THEN NULL ELSE $1 END, \
                         lease_owner = NULL, lease_until = NULL, updated_at = $1 \
                         WHERE state = 'running' AND lease_until < $1 RETURNING {JOB_COLUMNS}"
                    );
                    let rows: Vec<JobRow> = sqlx::query_as(&sql)
                        .bind(now.as_micros())
                        .bind(LEASE_EXPIRED)
                        .fetch_all(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    rows.into_iter().map(job_of).collect()
                }

                async fn cancel_job(
                    &self,
                    tenant: &TenantId,
                    id: &str,
                    reason: &str,
                    now: Timestamp,
                ) -> Result<Option<Job>, StoreError> {
                    let sql = format!(
                        "UPDATE jobs SET \
                         state = CASE WHEN state = 'pending' THEN 'cancelled' ELSE state END, \
                         cancel_requested = CASE WHEN state = 'running' THEN TRUE ELSE cancel_requested END, \
                         last_error = CASE WHEN state = 'pending' THEN $3 ELSE last_error END, \
                         finished_at = CASE WHEN state = 'pending' THEN $4 ELSE finished_at END, \
                         updated_at = $4 \
                         WHERE tenant_id = $1 AND id = $2 AND state IN ('pending', 'running') RETURNING {JOB_COLUMNS}"
                    );
                    let row: Option<JobRow> = sqlx::query_as(&sql)
                        .bind(tenant.as_str())
                        .bind(id)
                        .bind(reason)
                        .bind(now.as_micros())
                        .fetch_optional(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    match row {
                        Some(row) => job_of(row).map(Some),
                        None => self.current_job(tenant, id).await,
                    }
                }

                async fn retry_job(&self, tenant: &TenantId, id: &str, now: Timestamp) -> Result<Option<Job>, StoreError> {
                    let sql = format!(
                        "UPDATE jobs SET state = 'pending', run_at = $3, attempts = 0, cancel_requested = FALSE, \
                         finished_at = NULL, lease_owner = NULL, lease_until = NULL, updated_at = $3 \
                         WHERE tenant_id = $1 AND id = $2 AND state IN ('failed', 'cancelled') RETURNING {JOB_COLUMNS}"
                    );
                    let row: Option<JobRow> = sqlx::query_as(&sql)
                        .bind(tenant.as_str())
                        .bind(id)
                        .bind(now.as_micros())
                        .fetch_optional(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    match row {
                        Some(row) => job_of(row).map(Some),
                        None => self.current_job(tenant, id).await,
                    }
                }

                async fn prune_jobs(&self, before: Timestamp) -> Result<u64, StoreError> {
                    let done = sqlx::query(
                        "DELETE FROM jobs WHERE state IN ('completed', 'failed', 'cancelled') AND finished_at < $1",
                    )
                    .bind(before.as_micros())
                    .execute(self.pool())
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                    Ok(done.rows_affected())
                }

                async fn insert_schedule(&self, s: &Schedule) -> Result<(), StoreError> {
                    let sql = format!(
                        "INSERT INTO schedules ({SCHEDULE_COLUMNS}) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
                    );
                    sqlx::query(&sql)
                        .bind(s.tenant_id.as_str())
                        .bind(&s.id)
                        .bind(&s.name)
                        .bind(&s.cron)
                        .bind(&s.timezone)
                        .bind(s.kind.as_str())
                        .bind(&s.payload)
                        .bind(s.enabled)
                        .bind(s.missed.as_str())
                        .bind(s.next_run_at.map(|t| t.as_micros()))
                        .bind(s.last_run_at.map(|t| t.as_micros()))
                        .bind(&s.created_by)
                        .bind(s.created_at.as_micros())
                        .bind(s.updated_at.as_micros())
                        .execute(self.pool())
                        .await
                        .map_err(|e| classify_insert(self.target(), || format!("schedule {:?}", s.name), e))?;
                    Ok(())
                }

                async fn schedule(&self, tenant: &TenantId, id_or_name: &str) -> Result<Option<Schedule>, StoreError> {
                    // An id wins over another schedule's name that happens to spell it.
                    let sql = format!(
                        "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE tenant_id = $1 AND (id = $2 OR name = $2) \
                         ORDER BY CASE WHEN id = $2 THEN 0 ELSE 1 END LIMIT 1"
                    );
                    let row: Option<ScheduleRow> = sqlx::query_as(&sql)
                        .bind(tenant.as_str())
                        .bind(id_or_name)
                        .fetch_optional(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    row.map(schedule_of).transpose()
                }

                async fn schedules(&self, tenant: &TenantId) -> Result<Vec<Schedule>, StoreError> {
                    let sql = format!("SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE tenant_id = $1 ORDER BY name");
                    let rows: Vec<ScheduleRow> = sqlx::query_as(&sql)
                        .bind(tenant.as_str())
                        .fetch_all(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    rows.into_iter().map(schedule_of).collect()
                }

                async fn delete_schedule(&self, tenant: &TenantId, id: &str) -> Result<bool, StoreError> {
                    let done = sqlx::query("DELETE FROM schedules WHERE tenant_id = $1 AND id = $2")
                        .bind(tenant.as_str())
                        .bind(id)
                        .execute(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    Ok(done.rows_affected() == 1)
                }

                async fn set_schedule_enabled(
                    &self,
                    tenant: &TenantId,
                    id: &str,
                    enabled: bool,
                    next_run_at: Option<Timestamp>,
                    now: Timestamp,
                ) -> Result<bool, StoreError> {
                    let done = sqlx::query(
                        "UPDATE schedules SET enabled = $3, next_run_at = $4, updated_at = $5 WHERE tenant_id = $1 AND id = $2",
                    )
                    .bind(tenant.as_str())
                    .bind(id)
                    .bind(enabled)
                    .bind(next_run_at.map(|t| t.as_micros()))
                    .bind(now.as_micros())
                    .execute(self.pool())
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                    Ok(done.rows_affected() == 1)
                }

                async fn due_schedules(&self, now: Timestamp, limit: u32) -> Result<Vec<Schedule>, StoreError> {
                    let sql = format!(
                        "SELECT {SCHEDULE_COLUMNS} FROM schedules \
                         WHERE enabled = TRUE AND next_run_at IS NOT NULL AND next_run_at <= $1 \
                         ORDER BY next_run_at, tenant_id, id LIMIT $2"
                    );
                    let rows: Vec<ScheduleRow> = sqlx::query_as(&sql)
                        .bind(now.as_micros())
                        .bind(i64::from(limit))
                        .fetch_all(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    rows.into_iter().map(schedule_of).collect()
                }

                async fn advance_schedule(
                    &self,
                    tenant: &TenantId,
                    id: &str,
                    expected: Timestamp,
                    next: Option<Timestamp>,
                    job: Option<&Job>,
                    now: Timestamp,
                ) -> Result<bool, StoreError> {
                    let mut tx = self.begin_write().await?;
                    let moved = sqlx::query(
                        "UPDATE schedules SET next_run_at = $4, last_run_at = COALESCE($5, last_run_at), updated_at = $6 \
                         WHERE tenant_id = $1 AND id = $2 AND next_run_at = $3",
                    )
                    .bind(tenant.as_str())
                    .bind(id)
                    .bind(expected.as_micros())
                    .bind(next.map(|t| t.as_micros()))
                    .bind(job.map(|_| expected.as_micros()))
                    .bind(now.as_micros())
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                    if moved.rows_affected() != 1 {
                        tx.rollback().await.map_err(|e| classify(self.target(), e))?;
                        return Ok(false);
                    }
                    if let Some(job) = job {
                        bind_job!(sqlx::query(INSERT_JOB_SQL), job)
                            .execute(&mut *tx)
                            .await
                            .map_err(|e| classify_insert(self.target(), || format!("job {}", job.id), e))?;
                    }
                    tx.commit().await.map_err(|e| classify(self.target(), e))?;
                    Ok(true)
                }

                async fn disabled_equipment(&self, tenant: &TenantId) -> Result<Vec<String>, StoreError> {
                    sqlx::query_scalar(
                        "SELECT name FROM equipment_settings WHERE tenant_id = $1 AND enabled = FALSE ORDER BY name",
                    )
                    .bind(tenant.as_str())
                    .fetch_all(self.pool())
                    .await
                    .map_err(|e| classify(self.target(), e))
                }

                async fn set_equipment_enabled(
                    &self,
                    tenant: &TenantId,
                    name: &str,
                    enabled: bool,
                    now: Timestamp,
                ) -> Result<(), StoreError> {
                    sqlx::query(
                        "INSERT INTO equipment_settings (tenant_id, name, enabled, updated_at) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (tenant_id, name) DO UPDATE SET enabled = excluded.enabled, updated_at = excluded.updated_at",
                    )
                    .bind(tenant.as_str())
                    .bind(name)
                    .bind(enabled)
                    .bind(now.as_micros())
                    .execute(self.pool())
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                    Ok(())
                }
            }
        }
    };
}

pub(crate) use impl_job_port;

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> JobRow {
        JobRow {
            tenant_id: "acme".into(),
            id: "job_1".into(),
            kind: "equipment".into(),
            payload: "{}".into(),
            state: "pending".into(),
            attempts: 0,
            max_attempts: 3,
            run_at: 5,
            lease_owner: None,
            lease_until: None,
            cancel_requested: false,
            last_error: None,
            result: None,
            schedule_id: None,
            idempotency_key: None,
            created_by: "user:u".into(),
            created_at: 1,
            started_at: None,
            finished_at: None,
            updated_at: 1,
        }
    }

    #[test]
    fn a_bad_stored_value_names_its_column() {
        assert!(job_of(row()).is_ok_and(|j| j.state == JobState::Pending && j.kind == JobKind::Equipment));
        let bad_state = JobRow { state: "done".into(), ..row() };
        assert!(matches!(job_of(bad_state), Err(StoreError::InvalidRow { what: "jobs.state", .. })));
        let bad_kind = JobRow { kind: "cron".into(), ..row() };
        assert!(matches!(job_of(bad_kind), Err(StoreError::InvalidRow { what: "jobs.kind", .. })));
        let bad_attempts = JobRow { attempts: -1, ..row() };
        assert!(matches!(job_of(bad_attempts), Err(StoreError::InvalidRow { what: "jobs.attempts", .. })));
    }

    #[test]
    fn listing_states_are_numbered_placeholders() {
        assert_eq!(states_clause(&[], 5), "TRUE");
        assert_eq!(states_clause(&[JobState::Pending, JobState::Failed], 5), "state IN ($5, $6)");
    }
}

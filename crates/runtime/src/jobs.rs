//! Background work: the durable job queue and the cron schedules that fill it.
//!
//! Every process runs a few workers ([`Runtime::start_jobs`]); an idle one polls, and is woken
//! at once when its own process enqueues due work. A worker claims a due job under
//! a lease, renews the lease while the job runs (its heartbeat), and ends it as completed,
//! failed (retried with exponential backoff while attempts remain) or cancelled. A job whose
//! process died keeps its lease only until it runs out; the next sweep puts it back in the queue
//! and another worker takes it over. A per-tenant cap bounds how many of one tenant's jobs run
//! at once, across all processes.
//!
//! The scheduler sweep fires due schedules: each firing inserts a job keyed by
//! `<schedule>@<planned time>` in the same transaction that moves the schedule on, guarded by
//! the planned time, so a restart or a second replica never enqueues one planned run twice.
//! Missed runs (the server was down) run once on start, or are skipped, per schedule.
//!
//! Agent tasks run like any run — routed, gated, sealed and budgeted — and a tenant whose budget
//! is spent gets its background runs failed before any model is called. Enqueueing, cancelling
//! and retrying are sealed in the tenant's ledger (`job` entries); equipment runs seal their own
//! results.

use std::str::FromStr as _;
use std::time::Duration;

use chrono::TimeZone as _;
use domain::job::{Job, JobFilter, JobKind, JobOutcome, JobState, MissedRuns, Schedule, schedule_key};
use domain::ledger::{EntryDraft, EntryKind};
use domain::ports::StoreError;
use domain::{ChainId, TenantId, Timestamp};
use engine::machine::ModelTier;
use serde_json::{Value, json};

use crate::{LedgerError, Runtime};

/// How the workers and the scheduler behave.
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// Workers per process (0: this process runs no jobs).
    pub workers: usize,
    /// At most this many of one tenant's jobs run at once, across all processes.
    pub tenant_cap: u32,
    /// How long a claim holds without a heartbeat; heartbeats come three times per lease.
    pub lease: Duration,
    /// How often an idle worker looks for work.
    pub poll: Duration,
    /// Tries per job before it fails for good.
    pub max_attempts: u32,
    /// The first retry's delay; each later one doubles it.
    pub retry_backoff: Duration,
    /// How often due schedules are fired and expired leases swept.
    pub sweep: Duration,
}

impl Default for JobSettings {
    fn default() -> Self {
        Self {
            workers: 2,
            tenant_cap: 2,
            lease: Duration::from_secs(30),
            poll: Duration::from_millis(500),
            max_attempts: 3,
            retry_backoff: Duration::from_secs(10),
            sweep: Duration::from_secs(1),
        }
    }
}

/// A missed run is still fired under [`MissedRuns::Skip`] when it is at most this late (a
/// sweep's normal delay, not downtime).
const SKIP_GRACE: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// A field of the request is wrong; `field` names it.
    #[error("invalid `{field}`: {reason}")]
    Invalid { field: String, reason: String },
    #[error("tenant {tenant} has no job {id}")]
    NoSuchJob { tenant: TenantId, id: String },
    #[error("tenant {tenant} has no schedule {id}")]
    NoSuchSchedule { tenant: TenantId, id: String },
    /// The job is in a state the change does not apply to.
    #[error("job {id} is {state}: {reason}")]
    WrongState { id: String, state: JobState, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

fn invalid(field: &str, reason: impl Into<String>) -> JobError {
    JobError::Invalid { field: field.to_owned(), reason: reason.into() }
}

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: JobKind,
    /// The kind's parameters: `{"task": …, "persona"?, "tier"?}` for an agent task,
    /// `{"equipment": …, "params"?}` for equipment.
    pub payload: Value,
    /// Not before this time (`None`: now).
    pub run_at: Option<Timestamp>,
}

/// A schedule to create.
#[derive(Debug, Clone)]
pub struct NewSchedule {
    pub name: String,
    pub cron: String,
    /// An IANA zone; `None`: UTC.
    pub timezone: Option<String>,
    pub kind: JobKind,
    pub payload: Value,
    pub missed: MissedRuns,
    pub enabled: bool,
}

/// A cron expression read in a time zone.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    cron: croner::Cron,
    zone: chrono_tz::Tz,
}

impl CronSchedule {
    /// Parses five fields (minute hour day-of-month month day-of-week) or six (seconds first),
    /// in `timezone` (an IANA name such as `Europe/Rome`).
    pub fn parse(expression: &str, timezone: &str) -> Result<Self, JobError> {
        let parser = croner::parser::CronParser::builder().seconds(croner::parser::Seconds::Optional).build();
        let cron = parser.parse(expression.trim()).map_err(|e| invalid("cron", format!("{expression:?}: {e}")))?;
        let zone = chrono_tz::Tz::from_str(timezone.trim()).map_err(|_| {
            invalid("timezone", format!("{timezone:?} is not an IANA time zone (e.g. Europe/Rome, UTC)"))
        })?;
        Ok(Self { cron, zone })
    }

    /// The first planned time strictly after `after`; `None` when there is none.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let utc = chrono::Utc.timestamp_micros(after.as_micros()).single()?;
        let local = utc.with_timezone(&self.zone);
        let next = self.cron.find_next_occurrence(&local, false).ok()?;
        Some(Timestamp::from_micros(next.timestamp_micros()))
    }
}

/// A short random id with a prefix (`job_…`, `sch_…`).
pub(crate) fn new_id(prefix: &str) -> String {
    use rand::RngCore as _;
    let mut bytes = [0u8; 10];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("{prefix}_{}", hex::encode(bytes))
}

impl Runtime {
    /// Checks a job's payload against its kind, returning it in stored form.
    fn check_payload(&self, kind: JobKind, payload: &Value) -> Result<String, JobError> {
        let Value::Object(map) = payload else { return Err(invalid("payload", "expected a JSON object")) };
        match kind {
            JobKind::AgentTask => {
                let task = map.get("task").and_then(Value::as_str).unwrap_or_default().trim();
                if task.is_empty() {
                    return Err(invalid("payload.task", "an agent task needs a non-empty `task`"));
                }
                if let Some(tier) = map.get("tier").filter(|v| !v.is_null()) {
                    parse_tier(tier)?;
                }
                for key in map.keys() {
                    if !["task", "persona", "tier"].contains(&key.as_str()) {
                        return Err(invalid(&format!("payload.{key}"), "agent tasks take task, persona and tier"));
                    }
                }
            }
            JobKind::Equipment => {
                let name = map.get("equipment").and_then(Value::as_str).unwrap_or_default();
                if crate::equipment::spec(name).is_none() {
                    let known: Vec<&str> = crate::equipment::EQUIPMENT.iter().map(|s| s.name).collect();
                    return Err(invalid("payload.equipment", format!("{name:?} is not one of {}", known.join(", "))));
                }
                for key in map.keys() {
                    if !["equipment", "params"].contains(&key.as_str()) {
                        return Err(invalid(&format!("payload.{key}"), "equipment jobs take equipment and params"));
                    }
                }
            }
            JobKind::WatcherPoll => {
                if map.get("watcher").and_then(Value::as_str).is_none_or(|w| w.trim().is_empty()) {
                    return Err(invalid("payload.watcher", "a watcher poll names its watcher's id"));
                }
                for key in map.keys() {
                    if key != "watcher" {
                        return Err(invalid(&format!("payload.{key}"), "watcher polls take watcher"));
                    }
                }
            }
            JobKind::Broadcast => {
                broadcast_of(map)?;
            }
        }
        Ok(domain::canonical::canonical_json(payload))
    }

    /// Enqueues a job for the tenant (sealed as a `job` entry).
    pub async fn enqueue_job(&self, tenant: &TenantId, new: NewJob, by: &str) -> Result<Job, JobError> {
        let payload = self.check_payload(new.kind, &new.payload)?;
        let now = Timestamp::now();
        let job = Job::pending(
            tenant.clone(),
            new_id("job"),
            new.kind,
            payload,
            new.run_at.unwrap_or(now),
            self.config.jobs.max_attempts,
            by.to_owned(),
            now,
        );
        self.store.insert_job(&job).await?;
        self.seal_job(tenant, &job, "enqueued", by).await?;
        if job.run_at <= Timestamp::now() {
            self.job_wake.notify_waiters();
        }
        Ok(job)
    }

    pub async fn job(&self, tenant: &TenantId, id: &str) -> Result<Job, JobError> {
        self.store
            .job(tenant, id)
            .await?
            .ok_or_else(|| JobError::NoSuchJob { tenant: tenant.clone(), id: id.to_owned() })
    }

    pub async fn jobs(&self, tenant: &TenantId, filter: &JobFilter, limit: u32) -> Result<Vec<Job>, JobError> {
        Ok(self.store.jobs(tenant, filter, limit.clamp(1, 500)).await?)
    }

    /// Cancels a job: a pending one at once, a running one at its next heartbeat.
    pub async fn cancel_job(&self, tenant: &TenantId, id: &str, by: &str) -> Result<Job, JobError> {
        let current = self.job(tenant, id).await?;
        if current.state.is_finished() {
            return Err(JobError::WrongState {
                id: id.to_owned(),
                state: current.state,
                reason: "only a pending or running job can be cancelled".into(),
            });
        }
        let reason = format!("cancelled by {by}");
        let job = self
            .store
            .cancel_job(tenant, id, &reason, Timestamp::now())
            .await?
            .ok_or_else(|| JobError::NoSuchJob { tenant: tenant.clone(), id: id.to_owned() })?;
        self.seal_job(tenant, &job, "cancel_requested", by).await?;
        Ok(job)
    }

    /// Makes a failed or cancelled job pending again, with fresh attempts.
    pub async fn retry_job(&self, tenant: &TenantId, id: &str, by: &str) -> Result<Job, JobError> {
        let current = self.job(tenant, id).await?;
        if !matches!(current.state, JobState::Failed | JobState::Cancelled) {
            return Err(JobError::WrongState {
                id: id.to_owned(),
                state: current.state,
                reason: "only a failed or cancelled job can be retried".into(),
            });
        }
        let job = self
            .store
            .retry_job(tenant, id, Timestamp::now())
            .await?
            .ok_or_else(|| JobError::NoSuchJob { tenant: tenant.clone(), id: id.to_owned() })?;
        self.seal_job(tenant, &job, "retried", by).await?;
        Ok(job)
    }

    /// Creates a schedule; its first run is the next planned time from now.
    pub async fn create_schedule(&self, tenant: &TenantId, new: NewSchedule, by: &str) -> Result<Schedule, JobError> {
        let name = new.name.trim();
        if name.is_empty() || name.chars().count() > 80 {
            return Err(invalid("name", "a schedule needs a name of 1 to 80 characters"));
        }
        let timezone = new.timezone.clone().unwrap_or_else(|| "UTC".to_owned());
        let cron = CronSchedule::parse(&new.cron, &timezone)?;
        let payload = self.check_payload(new.kind, &new.payload)?;
        let now = Timestamp::now();
        let schedule = Schedule {
            tenant_id: tenant.clone(),
            id: new_id("sch"),
            name: name.to_owned(),
            cron: new.cron.trim().to_owned(),
            timezone: timezone.trim().to_owned(),
            kind: new.kind,
            payload,
            enabled: new.enabled,
            missed: new.missed,
            next_run_at: if new.enabled { cron.next_after(now) } else { None },
            last_run_at: None,
            created_by: by.to_owned(),
            created_at: now,
            updated_at: now,
        };
        self.store.insert_schedule(&schedule).await?;
        let payload = json!({"action": "schedule.create", "schedule": schedule.id, "name": schedule.name,
            "cron": schedule.cron, "timezone": schedule.timezone, "kind": schedule.kind, "by": by});
        self.ledger.append(tenant, EntryDraft { kind: EntryKind::AdminChange, chain_id: None, payload }).await?;
        Ok(schedule)
    }

    pub async fn schedules(&self, tenant: &TenantId) -> Result<Vec<Schedule>, JobError> {
        Ok(self.store.schedules(tenant).await?)
    }

    /// A schedule by id or name.
    pub async fn schedule(&self, tenant: &TenantId, id_or_name: &str) -> Result<Schedule, JobError> {
        self.store
            .schedule(tenant, id_or_name)
            .await?
            .ok_or_else(|| JobError::NoSuchSchedule { tenant: tenant.clone(), id: id_or_name.to_owned() })
    }

    /// Removes a schedule (by id or name); the jobs it enqueued stay.
    pub async fn remove_schedule(&self, tenant: &TenantId, id_or_name: &str, by: &str) -> Result<Schedule, JobError> {
        let schedule = self.schedule(tenant, id_or_name).await?;
        self.store.delete_schedule(tenant, &schedule.id).await?;
        let payload = json!({"action": "schedule.remove", "schedule": schedule.id, "name": schedule.name, "by": by});
        self.ledger.append(tenant, EntryDraft { kind: EntryKind::AdminChange, chain_id: None, payload }).await?;
        Ok(schedule)
    }

    /// Fires every schedule due at `now` and puts jobs whose process stopped answering back in
    /// the queue. Returns the jobs fired. Safe to run on every replica at once.
    pub async fn sweep_jobs(&self, now: Timestamp) -> Result<Vec<Job>, JobError> {
        for job in self.store.requeue_expired_jobs(now).await? {
            tracing::warn!(tenant = %job.tenant_id, job = %job.id, state = %job.state, "a job's worker stopped answering");
            self.seal_job(&job.tenant_id, &job, "lease_expired", "scheduler").await?;
        }
        let mut fired = Vec::new();
        for schedule in self.store.due_schedules(now, 100).await? {
            let Some(planned) = schedule.next_run_at else { continue };
            let next = match CronSchedule::parse(&schedule.cron, &schedule.timezone) {
                Ok(cron) => cron.next_after(now.max(planned)),
                Err(error) => {
                    tracing::error!(tenant = %schedule.tenant_id, schedule = %schedule.id, %error, "a stored schedule cannot be read; it is paused");
                    None
                }
            };
            let late = Duration::from_micros(u64::try_from(now.as_micros() - planned.as_micros()).unwrap_or(0));
            let fire = match schedule.missed {
                MissedRuns::RunOnce => true,
                MissedRuns::Skip => late <= SKIP_GRACE,
            };
            let job = fire.then(|| Job {
                schedule_id: Some(schedule.id.clone()),
                idempotency_key: Some(schedule_key(&schedule.id, planned)),
                ..Job::pending(
                    schedule.tenant_id.clone(),
                    new_id("job"),
                    schedule.kind,
                    schedule.payload.clone(),
                    planned,
                    self.config.jobs.max_attempts,
                    format!("schedule:{}", schedule.id),
                    now,
                )
            });
            let moved = self
                .store
                .advance_schedule(&schedule.tenant_id, &schedule.id, planned, next, job.as_ref(), now)
                .await?;
            if let (true, Some(job)) = (moved, job) {
                self.seal_job(&job.tenant_id, &job, "enqueued", &job.created_by).await?;
                fired.push(job);
            }
        }
        if !fired.is_empty() {
            // Idle workers here start at once; other replicas' find them at their next poll.
            self.job_wake.notify_waiters();
        }
        Ok(fired)
    }

    /// Starts this process's job workers and its scheduler sweep; abort the returned handles to
    /// stop them (a job cut short is taken over once its lease runs out).
    pub fn start_jobs(self: &std::sync::Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        let mut handles = Vec::new();
        let sweeper = self.clone();
        handles.push(crate::tasks::spawn("job-scheduler", async move {
            loop {
                if let Err(error) = sweeper.sweep_jobs(Timestamp::now()).await {
                    tracing::error!(%error, "the job scheduler's sweep failed; will retry");
                }
                tokio::time::sleep(sweeper.config.jobs.sweep).await;
            }
        }));
        for n in 0..self.config.jobs.workers {
            let worker = self.clone();
            handles.push(crate::tasks::spawn("job-worker", async move {
                let owner = format!("{}/w{n}", worker.instance);
                loop {
                    match worker.work_one(&owner).await {
                        Ok(true) => {}
                        Ok(false) => {
                            // Idle until the next poll, or until this process enqueues due work.
                            tokio::select! {
                                () = tokio::time::sleep(worker.config.jobs.poll) => {}
                                () = worker.job_wake.notified() => {}
                            }
                        }
                        Err(error) => {
                            tracing::error!(%error, "a job worker failed; will retry");
                            tokio::time::sleep(worker.config.jobs.poll).await;
                        }
                    }
                }
            }));
        }
        handles
    }

    /// Claims one due job as `owner` and runs it to its end. False when nothing was due.
    pub async fn work_one(&self, owner: &str) -> Result<bool, JobError> {
        let settings = &self.config.jobs;
        let now = Timestamp::now();
        let Some(job) = self.store.claim_job(owner, now, now.plus(settings.lease), settings.tenant_cap).await? else {
            return Ok(false);
        };
        metrics::counter!("nexus_jobs_claimed_total", "kind" => job.kind.as_str()).increment(1);
        tracing::info!(tenant = %job.tenant_id, job = %job.id, kind = job.kind.as_str(), attempt = job.attempts, owner, "claimed a job");
        let chain = ChainId::generate();
        let claimed = job.clone();
        let work = self.perform(&claimed, &chain);
        tokio::pin!(work);
        let beat = settings.lease / 3;
        let mut cancelled = false;
        let outcome = loop {
            tokio::select! {
                outcome = &mut work => break outcome,
                () = tokio::time::sleep(beat) => {
                    let until = Timestamp::now().plus(settings.lease);
                    match self.store.renew_job(&job.tenant_id, &job.id, owner, until).await {
                        Ok(Some(true)) if !cancelled => {
                            cancelled = true;
                            if job.kind == JobKind::AgentTask {
                                // The run stops before its next action and reports itself cancelled.
                                self.cancels.lock().unwrap_or_else(|p| p.into_inner()).insert(chain.clone());
                            } else {
                                break Err(Failure::Cancelled);
                            }
                        }
                        Ok(Some(_)) => {}
                        Ok(None) => {
                            tracing::warn!(job = %job.id, "lost the job's lease; another worker has it now");
                            return Ok(true);
                        }
                        Err(error) => tracing::warn!(job = %job.id, %error, "could not renew the job's lease"),
                    }
                }
            }
        };
        let outcome = match outcome {
            Ok(result) if cancelled => {
                let _ = result;
                JobOutcome::Cancelled { reason: "cancelled while it ran".into() }
            }
            Ok(result) => JobOutcome::Completed { result: result.to_string() },
            Err(Failure::Cancelled) => JobOutcome::Cancelled { reason: "cancelled while it ran".into() },
            Err(Failure::Permanent(error)) => JobOutcome::Failed { error, retry_at: None },
            Err(Failure::Transient(error)) => {
                let exponent = job.attempts.saturating_sub(1).min(16);
                let delay = settings.retry_backoff.saturating_mul(1 << exponent);
                JobOutcome::Failed { error, retry_at: Some(Timestamp::now().plus(delay)) }
            }
        };
        if self.store.finish_job(&job.tenant_id, &job.id, owner, &outcome, Timestamp::now()).await? {
            let finished = self.store.job(&job.tenant_id, &job.id).await?.unwrap_or(job);
            let label = match &outcome {
                JobOutcome::Completed { .. } => "completed",
                JobOutcome::Failed { retry_at: Some(_), .. } if finished.state == JobState::Pending => "retry_planned",
                JobOutcome::Failed { .. } => "failed",
                JobOutcome::Cancelled { .. } => "cancelled",
            };
            metrics::counter!("nexus_jobs_finished_total", "kind" => finished.kind.as_str(), "outcome" => label)
                .increment(1);
            self.seal_job(&finished.tenant_id, &finished, label, owner).await?;
        }
        Ok(true)
    }

    /// Does a job's work; its result on success.
    async fn perform(&self, job: &Job, chain: &ChainId) -> Result<Value, Failure> {
        let payload: Value = serde_json::from_str(&job.payload)
            .map_err(|e| Failure::Permanent(format!("the job's payload is not JSON: {e}")))?;
        let by = format!("job:{}", job.id);
        match job.kind {
            JobKind::Equipment => {
                let name = payload["equipment"].as_str().unwrap_or_default();
                let run = self.run_equipment(&job.tenant_id, name, &payload["params"], &by, None).await.map_err(
                    |e| match e {
                        crate::equipment::EquipmentError::Store(_) | crate::equipment::EquipmentError::Ledger(_) => {
                            Failure::Transient(e.to_string())
                        }
                        other => Failure::Permanent(other.to_string()),
                    },
                )?;
                if !run.ok {
                    // A health check that finds a problem ran fine: its result says so.
                    tracing::warn!(tenant = %job.tenant_id, equipment = name, summary = %run.summary, "equipment reported a problem");
                }
                serde_json::to_value(&run).map_err(|e| Failure::Permanent(e.to_string()))
            }
            JobKind::AgentTask => {
                // Background work counts against the budget and stops at 100 %: no model is
                // called for a tenant whose budget is spent.
                if let Err(error) = self.budgets.check(&job.tenant_id).await {
                    return Err(Failure::Permanent(error.to_string()));
                }
                let request = crate::agent::RunRequest {
                    tenant: job.tenant_id.clone(),
                    task: payload["task"].as_str().unwrap_or_default().to_owned(),
                    persona: payload["persona"].as_str().map(str::to_owned),
                    qa_spec: None,
                    user: Some(job.created_by.clone()),
                    chain_id: Some(chain.clone()),
                    tier: payload.get("tier").filter(|v| !v.is_null()).and_then(|t| parse_tier(t).ok()),
                };
                let report = self.execute(request).await.map_err(|e| match e {
                    crate::agent::AgentError::Store(_) | crate::agent::AgentError::Ledger(_) => {
                        Failure::Transient(e.to_string())
                    }
                    other => Failure::Permanent(other.to_string()),
                })?;
                let result = json!({"chain_id": report.chain_id, "status": report.status, "answer": report.answer,
                    "error": report.error, "cost_usd": report.cost_usd});
                match report.status {
                    domain::agent::ChainStatus::Completed | domain::agent::ChainStatus::AwaitingApproval => Ok(result),
                    domain::agent::ChainStatus::Cancelled => Err(Failure::Cancelled),
                    other => Err(Failure::Permanent(format!(
                        "run {} ended {other}: {}",
                        report.chain_id,
                        report.error.unwrap_or_default()
                    ))),
                }
            }
            JobKind::Broadcast => {
                // Checked when it was enqueued; checked again, as the rules may have changed.
                let Value::Object(map) = &payload else {
                    return Err(Failure::Permanent("the job's payload is not a JSON object".into()));
                };
                let (channel, text, min_level) = broadcast_of(map).map_err(|e| Failure::Permanent(e.to_string()))?;
                let (broadcast, recipients) = self
                    .queue_broadcast(&job.tenant_id, job.created_by.clone(), channel, &text, min_level, None)
                    .await
                    .map_err(|e| match e {
                        crate::channels::ChannelError::Store(_) | crate::channels::ChannelError::Ledger(_) => {
                            Failure::Transient(e.to_string())
                        }
                        other => Failure::Permanent(other.to_string()),
                    })?;
                Ok(json!({"broadcast_id": broadcast.id, "channel": channel.as_str(), "recipients": recipients}))
            }
            JobKind::WatcherPoll => {
                let watcher = payload["watcher"].as_str().unwrap_or_default();
                let report = self.poll_watcher(&job.tenant_id, watcher).await.map_err(|e| match e {
                    crate::watchers::WatcherError::Source(_)
                    | crate::watchers::WatcherError::Store(_)
                    | crate::watchers::WatcherError::Ledger(_) => Failure::Transient(e.to_string()),
                    other => Failure::Permanent(other.to_string()),
                })?;
                serde_json::to_value(&report).map_err(|e| Failure::Permanent(e.to_string()))
            }
        }
    }

    /// Seals a job's change of state in its tenant's ledger.
    async fn seal_job(&self, tenant: &TenantId, job: &Job, event: &str, by: &str) -> Result<(), JobError> {
        let payload = json!({
            "job": job.id, "kind": job.kind, "event": event, "state": job.state, "attempts": job.attempts,
            "schedule": job.schedule_id, "by": by, "error": job.last_error,
            "payload_sha256": hex::encode(ledger::hash::sha256(job.payload.as_bytes())),
            "result_sha256": job.result.as_ref().map(|r| hex::encode(ledger::hash::sha256(r.as_bytes()))),
        });
        self.ledger.append(tenant, EntryDraft { kind: EntryKind::Job, chain_id: None, payload }).await?;
        Ok(())
    }
}

/// Why a job's work did not succeed.
enum Failure {
    /// Worth another attempt (the database or ledger was unavailable).
    Transient(String),
    /// Another attempt would fail the same way.
    Permanent(String),
    Cancelled,
}

/// A broadcast job's payload: `text`, `channel` (default telegram) and `min_level` (default 0).
fn broadcast_of(map: &serde_json::Map<String, Value>) -> Result<(domain::channel::Channel, String, u8), JobError> {
    for key in map.keys() {
        if !["text", "channel", "min_level"].contains(&key.as_str()) {
            return Err(invalid(&format!("payload.{key}"), "broadcasts take text, channel and min_level"));
        }
    }
    let channel = match map.get("channel") {
        None | Some(Value::Null) => domain::channel::Channel::Telegram,
        Some(value) => value
            .as_str()
            .ok_or_else(|| invalid("payload.channel", "expected a string"))?
            .parse()
            .map_err(|e: domain::UnknownValue| invalid("payload.channel", e.to_string()))?,
    };
    let text = map.get("text").and_then(Value::as_str).unwrap_or_default();
    let min_level = match map.get("min_level") {
        None | Some(Value::Null) => 0,
        Some(value) => value
            .as_u64()
            .and_then(|n| u8::try_from(n).ok())
            .ok_or_else(|| invalid("payload.min_level", format!("{value} is not a level from 0 to 5")))?,
    };
    let text = crate::channels::check_broadcast(channel, text, min_level).map_err(|e| match e {
        crate::channels::ChannelError::InvalidField { field, reason } => invalid(&format!("payload.{field}"), reason),
        other => invalid("payload", other.to_string()),
    })?;
    Ok((channel, text.to_owned(), min_level))
}

/// A tier named in a payload.
fn parse_tier(value: &Value) -> Result<ModelTier, JobError> {
    match value.as_str() {
        Some("trivial") => Ok(ModelTier::Trivial),
        Some("normal") => Ok(ModelTier::Normal),
        Some("complex") => Ok(ModelTier::Complex),
        _ => Err(invalid("payload.tier", format!("{value} is not trivial, normal or complex"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        let parsed = chrono::DateTime::parse_from_rfc3339(text).expect("time");
        Timestamp::from_micros(parsed.timestamp_micros())
    }

    #[test]
    fn cron_expressions_are_read_in_their_time_zone() {
        let nine_in_rome = CronSchedule::parse("0 9 * * *", "Europe/Rome").expect("parse");
        // 09:00 in Rome is 08:00 UTC in winter and 07:00 UTC in summer.
        assert_eq!(nine_in_rome.next_after(at("2026-12-03T10:00:00Z")), Some(at("2026-12-04T08:00:00Z")));
        assert_eq!(nine_in_rome.next_after(at("2026-07-01T06:00:00Z")), Some(at("2026-07-01T07:00:00Z")));
        // Strictly after: a planned time is never planned again.
        assert_eq!(nine_in_rome.next_after(at("2026-12-04T08:00:00Z")), Some(at("2026-12-05T08:00:00Z")));
        let every_ten_seconds = CronSchedule::parse("*/10 * * * * *", "UTC").expect("six fields");
        assert_eq!(every_ten_seconds.next_after(at("2026-12-03T10:00:01Z")), Some(at("2026-12-03T10:00:10Z")));
        assert!(CronSchedule::parse("61 * * * *", "UTC").is_err_and(|e| e.to_string().contains("`cron`")));
        assert!(CronSchedule::parse("0 9 * * *", "Mars/Olympus").is_err_and(|e| e.to_string().contains("`timezone`")));
    }
}

//! Background work: jobs in a durable queue and the schedules that enqueue them.
//!
//! A job moves `pending → running → completed | failed | cancelled`. A worker claims a due
//! pending job under a lease it keeps renewing (its heartbeat); a job whose lease ran out (its
//! process died) goes back to `pending` and is taken over by another worker, or fails once its
//! attempts are used up. Cancelling a pending job is immediate; a running one is asked to stop
//! and its worker ends it as `cancelled`. Retrying a failed or cancelled job makes it pending
//! again. Every change is a conditional update, so two processes never run one job at once.
//!
//! A schedule fires jobs on a cron expression read in a time zone. Each firing carries the
//! idempotency key `<schedule id>@<planned time>`, so a restart or a second replica never
//! enqueues one planned run twice.

use serde::{Deserialize, Serialize};

use crate::persona::str_enum;
use crate::{TenantId, Timestamp};

/// Where a job stands. Stored as its name; a value may be added, never renamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Pending,
    Running,
    Completed,
    Failed,
    Cancelled,
}

str_enum!(JobState: "job state" {
    Pending => "pending", Running => "running", Completed => "completed", Failed => "failed",
    Cancelled => "cancelled",
});

impl JobState {
    /// Whether nothing more happens to the job unless someone retries it.
    pub fn is_finished(self) -> bool {
        matches!(self, JobState::Completed | JobState::Failed | JobState::Cancelled)
    }
}

/// What a job does. Stored as its name; a value may be added, never renamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// An agent run: gated, sealed and budgeted like any run.
    AgentTask,
    /// A piece of equipment (deterministic code, no model).
    Equipment,
    /// A watcher's poll of its source.
    WatcherPoll,
    /// A broadcast to a channel's accounts.
    Broadcast,
}

str_enum!(JobKind: "job kind" {
    AgentTask => "agent_task", Equipment => "equipment", WatcherPoll => "watcher_poll",
    Broadcast => "broadcast",
});

/// What a schedule does about planned runs that passed while no process was running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissedRuns {
    /// Run once for all the missed times, then keep to the schedule (the default).
    #[default]
    RunOnce,
    /// Skip them; the next run is the next planned time from now.
    Skip,
}

str_enum!(MissedRuns: "missed-run policy" { RunOnce => "run_once", Skip => "skip" });

/// One piece of background work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub tenant_id: TenantId,
    /// `job_` and 20 hex digits.
    pub id: String,
    pub kind: JobKind,
    /// What to do, as JSON text (the kind says its shape).
    pub payload: String,
    pub state: JobState,
    /// Claims so far (each try, including takeovers after a lost lease).
    pub attempts: u32,
    pub max_attempts: u32,
    /// Not claimed before this time (a retry's backoff, a schedule's planned time).
    pub run_at: Timestamp,
    /// The worker holding the job while it runs.
    pub lease_owner: Option<String>,
    /// When that worker's hold ends unless renewed.
    pub lease_until: Option<Timestamp>,
    /// Someone asked the running job to stop.
    pub cancel_requested: bool,
    pub last_error: Option<String>,
    /// What a completed job produced, as JSON text.
    pub result: Option<String>,
    /// The schedule that enqueued it, if any.
    pub schedule_id: Option<String>,
    /// At most one job per tenant carries a given key.
    pub idempotency_key: Option<String>,
    /// Who asked for it (`user:<id>`, `key:<id>` or `schedule:<id>`).
    pub created_by: String,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub updated_at: Timestamp,
}

impl Job {
    /// A new pending job: no attempts yet, no lease, not from a schedule.
    #[allow(clippy::too_many_arguments)] // every field a new job cannot do without
    pub fn pending(
        tenant_id: TenantId,
        id: String,
        kind: JobKind,
        payload: String,
        run_at: Timestamp,
        max_attempts: u32,
        created_by: String,
        now: Timestamp,
    ) -> Job {
        Job {
            tenant_id,
            id,
            kind,
            payload,
            state: JobState::Pending,
            attempts: 0,
            max_attempts,
            run_at,
            lease_owner: None,
            lease_until: None,
            cancel_requested: false,
            last_error: None,
            result: None,
            schedule_id: None,
            idempotency_key: None,
            created_by,
            created_at: now,
            started_at: None,
            finished_at: None,
            updated_at: now,
        }
    }
}

/// How a worker ends the job it holds.
#[derive(Debug, Clone, PartialEq)]
pub enum JobOutcome {
    Completed {
        result: String,
    },
    /// `retry_at`: back to `pending` from then (attempts remain); `None`: failed for good.
    Failed {
        error: String,
        retry_at: Option<Timestamp>,
    },
    Cancelled {
        reason: String,
    },
}

/// Which jobs a listing returns (all of the tenant's when empty).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobFilter {
    pub states: Vec<JobState>,
    pub kind: Option<JobKind>,
    pub schedule_id: Option<String>,
}

/// A cron schedule that enqueues jobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub tenant_id: TenantId,
    /// `sch_` and 20 hex digits.
    pub id: String,
    /// Unique within the tenant.
    pub name: String,
    /// Five fields (minute hour day-of-month month day-of-week), or six with seconds first.
    pub cron: String,
    /// An IANA time zone (`Europe/Rome`), in which the cron expression is read.
    pub timezone: String,
    pub kind: JobKind,
    pub payload: String,
    pub enabled: bool,
    pub missed: MissedRuns,
    /// The next planned run; `None` when disabled or the expression has no future time.
    pub next_run_at: Option<Timestamp>,
    pub last_run_at: Option<Timestamp>,
    pub created_by: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// The idempotency key of a schedule's run planned at `planned`.
pub fn schedule_key(schedule_id: &str, planned: Timestamp) -> String {
    format!("{schedule_id}@{}", planned.as_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_and_kinds_have_one_spelling() {
        for state in JobState::ALL {
            assert_eq!(state.as_str().parse::<JobState>(), Ok(*state));
            assert_eq!(serde_json::to_value(state).ok(), Some(serde_json::json!(state.as_str())));
        }
        for kind in JobKind::ALL {
            assert_eq!(kind.as_str().parse::<JobKind>(), Ok(*kind));
            assert_eq!(serde_json::to_value(kind).ok(), Some(serde_json::json!(kind.as_str())));
        }
        assert!("done".parse::<JobState>().is_err_and(|e| e.to_string().contains("pending, running")));
        assert!(JobState::Cancelled.is_finished() && !JobState::Running.is_finished());
        assert_eq!(schedule_key("sch_1", Timestamp::from_micros(5)), "sch_1@5");
    }
}

//! Background jobs and schedules over HTTP: `GET/POST /v1/jobs`, `GET /v1/jobs/{id}`,
//! `POST /v1/jobs/{id}/cancel|retry`; `GET/POST /v1/schedules`, `GET/DELETE /v1/schedules/{id}`
//! (an id or a name). Members read; admins enqueue, cancel, retry and change schedules.

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use domain::job::{Job, JobFilter, JobKind, JobState, MissedRuns, Schedule};
use runtime::auth::Principal;
use runtime::jobs::{JobError, NewJob, NewSchedule};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::auth::require_admin;
use crate::error::ApiError;
use crate::extract::Path;
use crate::json::{Body, Query};
use crate::state::AppState;

impl From<JobError> for ApiError {
    fn from(error: JobError) -> Self {
        match &error {
            JobError::Invalid { field, .. } => ApiError::invalid(field, error.to_string()),
            JobError::NoSuchJob { .. } | JobError::NoSuchSchedule { .. } => ApiError::not_found(error.to_string()),
            JobError::WrongState { .. } => ApiError::new(StatusCode::CONFLICT, "conflict", error.to_string()),
            JobError::Store(domain::ports::StoreError::Conflict { .. }) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", error.to_string())
            }
            JobError::Store(_) | JobError::Ledger(_) => ApiError::internal(error.to_string()),
        }
    }
}

/// A job as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobResponse {
    pub id: String,
    /// `agent_task`, `equipment`, `watcher_poll` or `broadcast`.
    pub kind: String,
    #[schema(value_type = Object)]
    pub payload: Value,
    /// `pending`, `running`, `completed`, `failed` or `cancelled`.
    pub state: String,
    pub attempts: u32,
    pub max_attempts: u32,
    /// RFC 3339: not started before.
    pub run_at: String,
    pub cancel_requested: bool,
    /// The worker holding the job while it runs (`<instance>/w<n>`), and until when.
    pub lease_owner: Option<String>,
    /// RFC 3339.
    pub lease_until: Option<String>,
    pub last_error: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    pub schedule_id: Option<String>,
    pub created_by: String,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

fn job_response(job: Job) -> JobResponse {
    JobResponse {
        id: job.id,
        kind: job.kind.as_str().to_owned(),
        payload: serde_json::from_str(&job.payload).unwrap_or(Value::Null),
        state: job.state.as_str().to_owned(),
        attempts: job.attempts,
        max_attempts: job.max_attempts,
        run_at: job.run_at.to_rfc3339(),
        cancel_requested: job.cancel_requested,
        lease_owner: job.lease_owner,
        lease_until: job.lease_until.map(|t| t.to_rfc3339()),
        last_error: job.last_error,
        result: job.result.as_deref().map(|r| serde_json::from_str(r).unwrap_or(Value::String(r.to_owned()))),
        schedule_id: job.schedule_id,
        created_by: job.created_by,
        created_at: job.created_at.to_rfc3339(),
        started_at: job.started_at.map(|t| t.to_rfc3339()),
        finished_at: job.finished_at.map(|t| t.to_rfc3339()),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct JobsQuery {
    /// Only jobs in these states (comma-separated: `pending,running`).
    state: Option<String>,
    /// Only jobs of this kind.
    kind: Option<String>,
    /// Only jobs this schedule enqueued.
    schedule: Option<String>,
    /// At most this many, newest first (1 to 500; default 50).
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", params(JobsQuery),
    responses((status = 200, body = [JobResponse]), (status = 422, description = "an unknown state or kind (named in `error.field`)")),
    security(("bearer" = [])))]
pub(crate) async fn list_jobs(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<JobsQuery>,
) -> Result<Json<Vec<JobResponse>>, ApiError> {
    let mut filter = JobFilter { schedule_id: query.schedule, ..JobFilter::default() };
    for name in query.state.as_deref().unwrap_or_default().split(',').map(str::trim).filter(|s| !s.is_empty()) {
        filter.states.push(name.parse::<JobState>().map_err(|e| ApiError::invalid("state", e.to_string()))?);
    }
    if let Some(kind) = &query.kind {
        filter.kind = Some(kind.parse::<JobKind>().map_err(|e| ApiError::invalid("kind", e.to_string()))?);
    }
    let jobs = state.runtime.jobs(&principal.tenant, &filter, query.limit.unwrap_or(50)).await?;
    Ok(Json(jobs.into_iter().map(job_response).collect()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    /// `agent_task`, `equipment` or `broadcast`.
    pub kind: String,
    /// `{"task": "…", "persona"?: "…", "tier"?: "trivial|normal|complex"}` for an agent task;
    /// `{"equipment": "health_check", "params"?: {…}}` for equipment; `{"text": "…",
    /// "channel"?: "telegram", "min_level"?: 0}` for a broadcast.
    #[schema(value_type = Object)]
    pub payload: Value,
    /// RFC 3339: not before this time (default: now).
    pub run_at: Option<String>,
}

#[utoipa::path(post, path = "/v1/jobs", tag = "jobs", request_body = JobRequest,
    responses((status = 202, body = JobResponse, description = "queued"), (status = 403, description = "not an admin"),
              (status = 422, description = "an unknown kind or a payload the kind does not take (named in `error.field`)")),
    security(("bearer" = [])))]
pub(crate) async fn create_job(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Body(body): Body<JobRequest>,
) -> Result<(StatusCode, Json<JobResponse>), ApiError> {
    require_admin(&principal, "enqueueing a job")?;
    let kind = body.kind.parse::<JobKind>().map_err(|e| ApiError::invalid("kind", e.to_string()))?;
    let run_at = match &body.run_at {
        None => None,
        Some(text) => Some(
            chrono::DateTime::parse_from_rfc3339(text)
                .map(|t| domain::Timestamp::from_micros(t.timestamp_micros()))
                .map_err(|e| ApiError::invalid("run_at", format!("{text:?} is not an RFC 3339 time: {e}")))?,
        ),
    };
    let job = state
        .runtime
        .enqueue_job(&principal.tenant, NewJob { kind, payload: body.payload, run_at }, &principal.subject())
        .await?;
    Ok((StatusCode::ACCEPTED, Json(job_response(job))))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct IdPath {
    id: String,
}

#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs", params(IdPath),
    responses((status = 200, body = JobResponse), (status = 404, description = "no such job")),
    security(("bearer" = [])))]
pub(crate) async fn get_job(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(path): Path<IdPath>,
) -> Result<Json<JobResponse>, ApiError> {
    Ok(Json(job_response(state.runtime.job(&principal.tenant, &path.id).await?)))
}

#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", tag = "jobs", params(IdPath),
    responses((status = 200, body = JobResponse, description = "cancelled (pending) or asked to stop (running)"),
              (status = 403, description = "not an admin"), (status = 404, description = "no such job"),
              (status = 409, description = "already finished")),
    security(("bearer" = [])))]
pub(crate) async fn cancel_job(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(path): Path<IdPath>,
) -> Result<Json<JobResponse>, ApiError> {
    require_admin(&principal, "cancelling a job")?;
    Ok(Json(job_response(state.runtime.cancel_job(&principal.tenant, &path.id, &principal.subject()).await?)))
}

#[utoipa::path(post, path = "/v1/jobs/{id}/retry", tag = "jobs", params(IdPath),
    responses((status = 200, body = JobResponse, description = "pending again"),
              (status = 403, description = "not an admin"), (status = 404, description = "no such job"),
              (status = 409, description = "not failed or cancelled")),
    security(("bearer" = [])))]
pub(crate) async fn retry_job(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(path): Path<IdPath>,
) -> Result<Json<JobResponse>, ApiError> {
    require_admin(&principal, "retrying a job")?;
    Ok(Json(job_response(state.runtime.retry_job(&principal.tenant, &path.id, &principal.subject()).await?)))
}

/// A schedule as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleResponse {
    pub id: String,
    pub name: String,
    pub cron: String,
    pub timezone: String,
    pub kind: String,
    #[schema(value_type = Object)]
    pub payload: Value,
    pub enabled: bool,
    /// `run_once` or `skip`.
    pub missed: String,
    /// RFC 3339; `null` when disabled.
    pub next_run_at: Option<String>,
    pub last_run_at: Option<String>,
    pub created_by: String,
    pub created_at: String,
}

fn schedule_response(schedule: Schedule) -> ScheduleResponse {
    ScheduleResponse {
        id: schedule.id,
        name: schedule.name,
        cron: schedule.cron,
        timezone: schedule.timezone,
        kind: schedule.kind.as_str().to_owned(),
        payload: serde_json::from_str(&schedule.payload).unwrap_or(Value::Null),
        enabled: schedule.enabled,
        missed: schedule.missed.as_str().to_owned(),
        next_run_at: schedule.next_run_at.map(|t| t.to_rfc3339()),
        last_run_at: schedule.last_run_at.map(|t| t.to_rfc3339()),
        created_by: schedule.created_by,
        created_at: schedule.created_at.to_rfc3339(),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleRequest {
    /// Unique within the tenant.
    pub name: String,
    /// Five fields (minute hour day-of-month month day-of-week) or six (seconds first).
    pub cron: String,
    /// An IANA time zone (default `UTC`).
    pub timezone: Option<String>,
    /// `agent_task`, `equipment` or `broadcast` (payloads as for `POST /v1/jobs`).
    pub kind: String,
    #[schema(value_type = Object)]
    pub payload: Value,
    /// `run_once` (default: a run missed while the server was down runs once on start) or `skip`.
    pub missed: Option<String>,
    /// Default true.
    pub enabled: Option<bool>,
}

#[utoipa::path(get, path = "/v1/schedules", tag = "jobs",
    responses((status = 200, body = [ScheduleResponse])),
    security(("bearer" = [])))]
pub(crate) async fn list_schedules(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Vec<ScheduleResponse>>, ApiError> {
    let schedules = state.runtime.schedules(&principal.tenant).await?;
    Ok(Json(schedules.into_iter().map(schedule_response).collect()))
}

#[utoipa::path(post, path = "/v1/schedules", tag = "jobs", request_body = ScheduleRequest,
    responses((status = 201, body = ScheduleResponse), (status = 403, description = "not an admin"),
              (status = 409, description = "a schedule with this name exists"),
              (status = 422, description = "a bad cron expression, time zone, kind or payload (named in `error.field`)")),
    security(("bearer" = [])))]
pub(crate) async fn create_schedule(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Body(body): Body<ScheduleRequest>,
) -> Result<(StatusCode, Json<ScheduleResponse>), ApiError> {
    require_admin(&principal, "creating a schedule")?;
    let kind = body.kind.parse::<JobKind>().map_err(|e| ApiError::invalid("kind", e.to_string()))?;
    let missed = match &body.missed {
        None => MissedRuns::default(),
        Some(text) => text.parse::<MissedRuns>().map_err(|e| ApiError::invalid("missed", e.to_string()))?,
    };
    let new = NewSchedule {
        name: body.name,
        cron: body.cron,
        timezone: body.timezone,
        kind,
        payload: body.payload,
        missed,
        enabled: body.enabled.unwrap_or(true),
    };
    let schedule = state.runtime.create_schedule(&principal.tenant, new, &principal.subject()).await?;
    Ok((StatusCode::CREATED, Json(schedule_response(schedule))))
}

#[utoipa::path(get, path = "/v1/schedules/{id}", tag = "jobs", params(IdPath),
    responses((status = 200, body = ScheduleResponse), (status = 404, description = "no such schedule")),
    security(("bearer" = [])))]
pub(crate) async fn get_schedule(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(path): Path<IdPath>,
) -> Result<Json<ScheduleResponse>, ApiError> {
    Ok(Json(schedule_response(state.runtime.schedule(&principal.tenant, &path.id).await?)))
}

#[utoipa::path(delete, path = "/v1/schedules/{id}", tag = "jobs", params(IdPath),
    responses((status = 200, body = ScheduleResponse, description = "removed (its jobs stay)"),
              (status = 403, description = "not an admin"), (status = 404, description = "no such schedule")),
    security(("bearer" = [])))]
pub(crate) async fn delete_schedule(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(path): Path<IdPath>,
) -> Result<Json<ScheduleResponse>, ApiError> {
    require_admin(&principal, "removing a schedule")?;
    let removed = state.runtime.remove_schedule(&principal.tenant, &path.id, &principal.subject()).await?;
    Ok(Json(schedule_response(removed)))
}

//! The Tasks page: the tenant's background work in one place. The equipment (what each piece
//! does, whether it is switched on, the schedules that run it), the cron schedules with their
//! next planned runs, and the job queue filtered by state. Members read; admins run equipment,
//! enqueue jobs, cancel and retry them, add and remove schedules and switch equipment, all
//! through the same runtime calls as `/v1/jobs`, `/v1/schedules` and `/v1/equipment`, so
//! each change is sealed the same way.

use askama::Template;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect};
use domain::job::{Job, JobFilter, JobKind, JobState, MissedRuns, Schedule};
use gateway::ApiError;
use runtime::jobs::{NewJob, NewSchedule};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::extract::{Form, Path, Query};
use crate::pages::{ConsoleError, CsrfForm, Page, PageResult, api, render, time, visible};
use crate::session::Signed;
use crate::state::ConsoleState;

/// Jobs shown on the page, newest first.
const JOBS_SHOWN: u32 = 100;
/// The job states a person can filter by, in the queue's order.
const STATES: [&str; 5] = ["pending", "running", "completed", "failed", "cancelled"];

pub struct EquipmentRow {
    pub name: String,
    pub description: String,
    pub parameters: String,
    pub enabled: bool,
    pub unavailable: String,
    pub schedules: String,
}

pub struct ScheduleRow {
    pub id: String,
    pub name: String,
    pub cron: String,
    pub timezone: String,
    pub kind: String,
    pub what: String,
    pub missed: String,
    pub enabled: bool,
    pub next_run: String,
    pub last_run: String,
}

pub struct JobRow {
    pub id: String,
    pub kind: String,
    pub what: String,
    pub state: String,
    pub attempts: String,
    pub run_at: String,
    pub finished: String,
    /// The error, or a short form of the result.
    pub outcome: String,
    pub schedule: String,
    pub cancellable: bool,
    pub retryable: bool,
}

#[derive(Template)]
#[template(path = "tasks.html")]
struct TasksView {
    page: Page,
    equipment: Vec<EquipmentRow>,
    equipment_names: Vec<String>,
    schedules: Vec<ScheduleRow>,
    jobs: Vec<JobRow>,
    states: &'static [&'static str],
    state: String,
    done: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TasksQuery {
    state: String,
    done: String,
}

pub async fn tasks(State(state): State<ConsoleState>, signed: Signed, Query(query): Query<TasksQuery>) -> PageResult {
    let lang = signed.lang;
    let tenant = &signed.user.principal.tenant;
    // An unknown state shows every job, as the "all" link does.
    let chosen = query.state.parse::<JobState>().ok();
    let filter = JobFilter { states: chosen.into_iter().collect(), ..JobFilter::default() };
    let runtime = &state.runtime;
    let equipment = runtime.equipment(tenant).await.map_err(api(lang))?;
    let schedules = runtime.schedules(tenant).await.map_err(api(lang))?;
    let jobs = runtime.jobs(tenant, &filter, JOBS_SHOWN).await.map_err(api(lang))?;
    let schedule_names: std::collections::HashMap<&str, &str> =
        schedules.iter().map(|s| (s.id.as_str(), s.name.as_str())).collect();

    let equipment_rows = equipment
        .iter()
        .map(|info| EquipmentRow {
            name: info.spec.name.to_owned(),
            description: info.spec.description.to_owned(),
            parameters: info
                .spec
                .parameters
                .iter()
                .map(|p| format!("{} ({})", p.name, p.kind))
                .collect::<Vec<_>>()
                .join(", "),
            enabled: info.enabled,
            unavailable: info.unavailable.clone().unwrap_or_default(),
            schedules: info.schedules.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", "),
        })
        .collect();
    let schedule_rows = schedules.iter().map(schedule_row).collect();
    let job_rows = jobs
        .iter()
        .map(|job| {
            let schedule = job.schedule_id.as_deref().map(|id| schedule_names.get(id).copied().unwrap_or(id));
            job_row(job, schedule.unwrap_or_default())
        })
        .collect();
    let done = match query.done.as_str() {
        "" => String::new(),
        key @ ("queued" | "cancelled" | "retried" | "scheduled" | "removed" | "switched") => {
            lang.catalog().get(&format!("tasks.done_{key}")).to_owned()
        }
        _ => String::new(),
    };
    render(&TasksView {
        page: Page::new(&signed, "tasks"),
        equipment_names: equipment.iter().map(|info| info.spec.name.to_owned()).collect(),
        equipment: equipment_rows,
        schedules: schedule_rows,
        jobs: job_rows,
        states: &STATES,
        state: chosen.map(|s| s.as_str().to_owned()).unwrap_or_default(),
        done,
    })
}

fn schedule_row(s: &Schedule) -> ScheduleRow {
    ScheduleRow {
        id: s.id.clone(),
        name: visible(&s.name),
        cron: s.cron.clone(),
        timezone: s.timezone.clone(),
        kind: s.kind.as_str().to_owned(),
        what: what(s.kind, &s.payload),
        missed: s.missed.as_str().to_owned(),
        enabled: s.enabled,
        next_run: s.next_run_at.map(time).unwrap_or_else(|| "—".to_owned()),
        last_run: s.last_run_at.map(time).unwrap_or_else(|| "—".to_owned()),
    }
}

fn job_row(job: &Job, schedule: &str) -> JobRow {
    let outcome = match (&job.last_error, &job.result) {
        (Some(error), _) if job.state != JobState::Completed => visible(error),
        (_, Some(result)) => short(&visible(&summary_of(result)), 160),
        _ => String::new(),
    };
    JobRow {
        id: job.id.clone(),
        kind: job.kind.as_str().to_owned(),
        what: what(job.kind, &job.payload),
        state: job.state.as_str().to_owned(),
        attempts: format!("{}/{}", job.attempts, job.max_attempts),
        run_at: time(job.run_at),
        finished: job.finished_at.map(time).unwrap_or_default(),
        outcome,
        schedule: visible(schedule),
        cancellable: !job.state.is_finished() && !job.cancel_requested,
        retryable: matches!(job.state, JobState::Failed | JobState::Cancelled),
    }
}

/// What a job or schedule does, in a few words: the equipment's name, the task or the message.
fn what(kind: JobKind, payload: &str) -> String {
    let value: Value = serde_json::from_str(payload).unwrap_or(Value::Null);
    let text = match kind {
        JobKind::Equipment => {
            let params = value.get("params").filter(|p| !p.is_null() && *p != &json!({}));
            let name = value["equipment"].as_str().unwrap_or_default();
            match params {
                Some(params) => format!("{name} {params}"),
                None => name.to_owned(),
            }
        }
        JobKind::AgentTask => value["task"].as_str().unwrap_or_default().to_owned(),
        JobKind::Broadcast => value["text"].as_str().unwrap_or_default().to_owned(),
        JobKind::WatcherPoll => payload.to_owned(),
    };
    short(&visible(&text), 120)
}

/// An equipment run's summary, a run's answer, a broadcast's recipients; else the JSON itself.
fn summary_of(result: &str) -> String {
    let value: Value = serde_json::from_str(result).unwrap_or(Value::Null);
    if let Some(summary) = value["summary"].as_str() {
        return summary.to_owned();
    }
    if let Some(answer) = value["answer"].as_str() {
        return answer.to_owned();
    }
    if let (Some(id), Some(n)) = (value["broadcast_id"].as_str(), value["recipients"].as_u64()) {
        return format!("{id}: {n}");
    }
    result.to_owned()
}

fn short(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max).collect();
    cut.push('…');
    cut
}

/// What to run: a kind and the fields it needs (the others are ignored).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct WorkForm {
    csrf: String,
    kind: String,
    equipment: String,
    /// The task (agent_task) or the message (broadcast).
    text: String,
    /// Equipment parameters as a JSON object.
    params: String,
    min_level: String,
}

impl WorkForm {
    /// The job's kind and payload; a wrong field is named as the API names it.
    fn job(&self) -> Result<(JobKind, Value), ApiError> {
        let kind = self.kind.parse::<JobKind>().map_err(|e| ApiError::invalid("kind", e.to_string()))?;
        let payload = match kind {
            JobKind::Equipment => {
                let params = match self.params.trim() {
                    "" => Value::Null,
                    text => serde_json::from_str::<Value>(text)
                        .map_err(|e| ApiError::invalid("params", format!("params is not a JSON object: {e}")))?,
                };
                json!({"equipment": self.equipment.trim(), "params": params})
            }
            JobKind::AgentTask => json!({"task": self.text.trim()}),
            JobKind::Broadcast => {
                let min_level = match self.min_level.trim() {
                    "" => 0,
                    text => text
                        .parse::<u8>()
                        .map_err(|_| ApiError::invalid("min_level", "min_level must be a level from 0 to 5"))?,
                };
                json!({"text": self.text.trim(), "min_level": min_level})
            }
            JobKind::WatcherPoll => json!({}),
        };
        Ok((kind, payload))
    }
}

/// Enqueues a job now (admins).
pub async fn enqueue(
    State(state): State<ConsoleState>,
    signed: Signed,
    headers: HeaderMap,
    Form(form): Form<WorkForm>,
) -> PageResult {
    signed.check_csrf(&headers, &form.csrf)?;
    signed.require_admin()?;
    let lang = signed.lang;
    let principal = &signed.user.principal;
    let (kind, payload) = form.job().map_err(|e| ConsoleError::Api(lang, e))?;
    state
        .runtime
        .enqueue_job(&principal.tenant, NewJob { kind, payload, run_at: None }, &principal.subject())
        .await
        .map_err(api(lang))?;
    Ok(Redirect::to("/tasks?done=queued").into_response())
}

/// Cancels a job (a running one stops at its next step) or puts a failed or cancelled one back
/// in the queue (admins).
pub async fn job_action(
    State(state): State<ConsoleState>,
    signed: Signed,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> PageResult {
    signed.check_csrf(&headers, &form.csrf)?;
    signed.require_admin()?;
    let (tenant, by) = (&signed.user.principal.tenant, signed.user.principal.subject());
    let done = match action.as_str() {
        "cancel" => state.runtime.cancel_job(tenant, &id, &by).await.map(|_| "cancelled"),
        "retry" => state.runtime.retry_job(tenant, &id, &by).await.map(|_| "retried"),
        _ => return Err(ConsoleError::NotFound(signed.lang)),
    };
    let done = done.map_err(api(signed.lang))?;
    Ok(Redirect::to(&format!("/tasks?done={done}")).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ScheduleForm {
    name: String,
    cron: String,
    timezone: String,
    missed: String,
    #[serde(flatten)]
    work: WorkForm,
}

/// Adds a schedule (admins).
pub async fn add_schedule(
    State(state): State<ConsoleState>,
    signed: Signed,
    headers: HeaderMap,
    Form(form): Form<ScheduleForm>,
) -> PageResult {
    signed.check_csrf(&headers, &form.work.csrf)?;
    signed.require_admin()?;
    let lang = signed.lang;
    let principal = &signed.user.principal;
    let (kind, payload) = form.work.job().map_err(|e| ConsoleError::Api(lang, e))?;
    let missed = match form.missed.trim() {
        "" => MissedRuns::default(),
        text => text
            .parse::<MissedRuns>()
            .map_err(|e| ConsoleError::Api(lang, ApiError::invalid("missed", e.to_string())))?,
    };
    let timezone = Some(form.timezone.trim().to_owned()).filter(|t| !t.is_empty());
    let new = NewSchedule {
        name: form.name.trim().to_owned(),
        cron: form.cron.trim().to_owned(),
        timezone,
        kind,
        payload,
        missed,
        enabled: true,
    };
    state.runtime.create_schedule(&principal.tenant, new, &principal.subject()).await.map_err(api(lang))?;
    Ok(Redirect::to("/tasks?done=scheduled").into_response())
}

/// Removes a schedule; the jobs it enqueued stay (admins).
pub async fn remove_schedule(
    State(state): State<ConsoleState>,
    signed: Signed,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> PageResult {
    signed.check_csrf(&headers, &form.csrf)?;
    signed.require_admin()?;
    let principal = &signed.user.principal;
    state.runtime.remove_schedule(&principal.tenant, &id, &principal.subject()).await.map_err(api(signed.lang))?;
    Ok(Redirect::to("/tasks?done=removed").into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SwitchForm {
    csrf: String,
    /// `on` or `off`.
    to: String,
}

/// Switches a piece of equipment on or off for the tenant (admins).
pub async fn switch_equipment(
    State(state): State<ConsoleState>,
    signed: Signed,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<SwitchForm>,
) -> PageResult {
    signed.check_csrf(&headers, &form.csrf)?;
    signed.require_admin()?;
    let lang = signed.lang;
    let on = match form.to.as_str() {
        "on" => true,
        "off" => false,
        _ => return Err(ConsoleError::Api(lang, ApiError::invalid("to", "to must be on or off"))),
    };
    let principal = &signed.user.principal;
    state.runtime.set_equipment_enabled(&principal.tenant, &name, on, &principal.subject()).await.map_err(api(lang))?;
    Ok(Redirect::to("/tasks?done=switched").into_response())
}

//! Agent runs over HTTP: `POST /v1/execute` (blocking), `POST /v1/execute/stream` (SSE),
//! `GET /v1/chains/{id}/events` (re-attach, honouring `Last-Event-ID`), and listing, reading
//! and cancelling chains. Runs are spawned, so a client that goes away never stops one.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use domain::ChainId;
use engine::machine::Event;
use futures_util::Stream;
use runtime::Runtime;
use runtime::agent::{RunReport, RunRequest};
use runtime::auth::Principal;
use runtime::chain_events::ChainEvent;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;
use utoipa::IntoParams;

use super::shapes::{ExecuteRequest, ExecuteResponse, events_of_report, execute_response, is_final, sse_event};
use crate::error::ApiError;
use crate::extract::{Path, Query};
use crate::json::Body;
use crate::state::AppState;

const MAX_TASK_CHARS: usize = 32_000;

/// Checks a request and counts it against the tenant's chain limit and budget.
async fn admit(runtime: &Runtime, principal: &Principal, body: ExecuteRequest) -> Result<RunRequest, ApiError> {
    let task = body.task.trim();
    if task.is_empty() {
        return Err(ApiError::invalid("task", "task must not be empty"));
    }
    if task.chars().count() > MAX_TASK_CHARS {
        return Err(ApiError::invalid("task", format!("task is longer than {MAX_TASK_CHARS} characters")));
    }
    let mut qa_spec = None;
    match &body.config {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("qa_spec", Value::String(spec)) => qa_spec = Some(spec.clone()),
                    ("qa_spec", Value::Null) => {}
                    ("qa_spec", _) => {
                        return Err(ApiError::bad_request("invalid field `config.qa_spec`: expected a string")
                            .with_param("config.qa_spec"));
                    }
                    (other, _) => {
                        return Err(ApiError::invalid(
                            &format!("config.{other}"),
                            format!("unknown config override {other:?}; supported: qa_spec"),
                        ));
                    }
                }
            }
        }
        Some(_) => return Err(ApiError::bad_request("invalid field `config`: expected an object").with_param("config")),
    }
    budget_gate(runtime, principal).await?;
    runtime.limits().chain(&principal.tenant).await.map_err(|limited| {
        let mut error = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", limited.to_string());
        error.retry_after = Some(limited.retry_after_secs.max(1));
        error
    })?;
    Ok(RunRequest {
        tenant: principal.tenant.clone(),
        task: task.to_owned(),
        persona: body.persona.filter(|p| !p.trim().is_empty()),
        qa_spec,
        user: Some(principal.subject()),
        chain_id: Some(ChainId::generate()),
    })
}

/// Refuses work that spends money once the tenant's monthly budget is gone (402).
pub(crate) async fn budget_gate(runtime: &Runtime, principal: &Principal) -> Result<(), ApiError> {
    runtime.budgets().check(&principal.tenant).await?;
    Ok(())
}

async fn chain_records(runtime: &Runtime, report: &RunReport) -> Vec<domain::ledger::LedgerRecord> {
    runtime.store().chain_records(&report.tenant, &report.chain_id).await.unwrap_or_default()
}

#[utoipa::path(post, path = "/v1/execute", tag = "agent", request_body = ExecuteRequest,
    responses((status = 200, body = ExecuteResponse), (status = 402, description = "budget exhausted"),
              (status = 429, description = "chain limit reached")),
    security(("bearer" = [])))]
pub(crate) async fn execute(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Body(body): Body<ExecuteRequest>,
) -> Result<axum::Json<ExecuteResponse>, ApiError> {
    let started = Instant::now();
    let request = admit(&state.runtime, &principal, body).await?;
    let runtime = state.runtime.clone();
    // Spawned: a client that hangs up does not abort the run.
    let (sender, receiver) = tokio::sync::oneshot::channel();
    runtime::tasks::spawn("http-execute", async move {
        let _ = sender.send(runtime.execute(request).await);
    });
    let report = receiver.await.map_err(|_| ApiError::internal("the run task ended without a report"))??;
    let records = chain_records(&state.runtime, &report).await;
    let duration = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(axum::Json(execute_response(&report, &records, duration)))
}

#[utoipa::path(post, path = "/v1/execute/stream", tag = "agent", request_body = ExecuteRequest,
    responses((status = 200, body = crate::schema::SseEvent, content_type = "text/event-stream", description = "text/event-stream of chain_started, step_started, gate_result, seal_created, step_completed, approval_required, chain_completed, error"),
              (status = 402, description = "budget exhausted"), (status = 429, description = "chain limit reached")),
    security(("bearer" = [])))]
pub(crate) async fn execute_stream(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Body(body): Body<ExecuteRequest>,
) -> Result<Response, ApiError> {
    let request = admit(&state.runtime, &principal, body).await?;
    let chain = request.chain_id.clone().unwrap_or_else(ChainId::generate);
    let (_, live) = state.runtime.attach_events(&principal.tenant, &chain);
    let (failed_tx, failed_rx) = tokio::sync::oneshot::channel();
    let runtime = state.runtime.clone();
    runtime::tasks::spawn("http-execute-stream", async move {
        if let Err(error) = runtime.execute(request).await {
            let _ = failed_tx.send(error.to_string());
        }
    });
    let feed = Feed {
        tenant: principal.tenant.clone(),
        chain,
        history: Vec::new().into_iter(),
        next_seq: 0,
        skip_until: None,
        live: Some(live),
        failed: Some(failed_rx),
        runtime: state.runtime.clone(),
        poll: false,
        done: false,
    };
    Ok(sse(feed).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct ChainPath {
    /// The chain id.
    id: String,
}

fn parse_chain(id: &str) -> Result<ChainId, ApiError> {
    ChainId::parse(id).map_err(|_| ApiError::not_found(format!("no chain {id:?}")))
}

#[utoipa::path(get, path = "/v1/chains/{id}/events", tag = "agent", params(ChainPath),
    responses((status = 200, body = crate::schema::SseEvent, content_type = "text/event-stream", description = "the run's events so far, then live ones; `id:` is each event's number so `Last-Event-ID` resumes"), (status = 404)),
    security(("bearer" = [])))]
pub(crate) async fn chain_events(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(ChainPath { id }): Path<ChainPath>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let chain = parse_chain(&id)?;
    let skip_until =
        headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    let (history, live) = state.runtime.attach_events(&principal.tenant, &chain);
    let (history, live, poll) = match history {
        Some(history) => (history, Some(live), false),
        None => {
            // Not run here (or long ago): describe the stored run; watch it if unfinished.
            let report = state.runtime.run_report(&principal.tenant, &chain).await?;
            let finished = is_final(report.status);
            (events_of_report(&report), None, !finished)
        }
    };
    let feed = Feed {
        tenant: principal.tenant.clone(),
        chain,
        history: history.into_iter(),
        next_seq: 0,
        skip_until,
        live,
        failed: None,
        runtime: state.runtime.clone(),
        poll,
        done: false,
    };
    Ok(sse(feed).into_response())
}

/// The state of one SSE response: replayed history, then live events of one chain.
struct Feed {
    tenant: domain::TenantId,
    chain: ChainId,
    history: std::vec::IntoIter<Event>,
    next_seq: u64,
    skip_until: Option<u64>,
    live: Option<tokio::sync::broadcast::Receiver<ChainEvent>>,
    failed: Option<tokio::sync::oneshot::Receiver<String>>,
    runtime: Arc<Runtime>,
    /// Watch the stored run (no live feed here) until it finishes.
    poll: bool,
    done: bool,
}

impl Feed {
    async fn next_event(&mut self) -> Option<(u64, Event)> {
        if self.done {
            return None;
        }
        for event in self.history.by_ref() {
            let seq = self.next_seq;
            self.next_seq += 1;
            if matches!(event, Event::ChainCompleted { .. }) {
                // The run is over: nothing live can follow.
                self.done = true;
                self.poll = false;
            }
            if self.skip_until.is_some_and(|last| seq <= last) {
                if self.done {
                    return None;
                }
                continue;
            }
            return Some((seq, event));
        }
        if self.poll {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                match self.runtime.run_report(&self.tenant, &self.chain).await {
                    Ok(report) if is_final(report.status) => {
                        self.done = true;
                        let last = events_of_report(&report).pop()?;
                        return Some((self.next_seq, last));
                    }
                    Ok(_) => continue,
                    Err(error) => {
                        self.done = true;
                        return Some((self.next_seq, Event::Error { message: error.to_string() }));
                    }
                }
            }
        }
        loop {
            let live = self.live.as_mut()?;
            let received = match self.failed.as_mut() {
                Some(failed) => tokio::select! {
                    received = live.recv() => received,
                    message = failed => {
                        self.failed = None;
                        if let Ok(message) = message {
                            self.done = true;
                            return Some((self.next_seq, Event::Error { message }));
                        }
                        continue;
                    }
                },
                None => live.recv().await,
            };
            match received {
                Ok(e) if e.chain_id == self.chain && e.tenant == self.tenant => {
                    if e.seq < self.next_seq || self.skip_until.is_some_and(|last| e.seq <= last) {
                        continue;
                    }
                    self.next_seq = e.seq + 1;
                    if matches!(e.event, Event::ChainCompleted { .. }) {
                        self.done = true;
                    }
                    return Some((e.seq, e.event));
                }
                Ok(_) => continue,
                Err(RecvError::Lagged(missed)) => {
                    self.done = true;
                    let message = format!(
                        "this stream fell behind by {missed} events; re-attach with GET /v1/chains/{}/events",
                        self.chain
                    );
                    return Some((self.next_seq, Event::Error { message }));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

fn sse(feed: Feed) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let stream = futures_util::stream::unfold(feed, |mut feed| async move {
        let (seq, event) = feed.next_event().await?;
        let (name, data) = sse_event(&event);
        let sse = SseEvent::default().event(name).id(seq.to_string()).data(data.to_string());
        Some((Ok(sse), feed))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// At most this many (1–200, default 50), newest first.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// Only chains with this status.
    #[param(value_type = Option<crate::schema::ChainStatus>, inline)]
    status: Option<String>,
}

const CHAIN_STATUSES: [&str; 8] =
    ["planning", "executing", "awaiting_approval", "completed", "failed", "partial", "escalated", "cancelled"];

#[utoipa::path(get, path = "/v1/chains", tag = "agent", params(ListQuery),
    responses((status = 200, body = [ExecuteResponse])), security(("bearer" = [])))]
pub(crate) async fn list_chains(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    query: Query<ListQuery>,
) -> Result<axum::Json<Vec<ExecuteResponse>>, ApiError> {
    let Query(query) = query;
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::invalid("limit", "limit must be between 1 and 200"));
    }
    if let Some(status) = &query.status
        && !CHAIN_STATUSES.contains(&status.as_str())
    {
        return Err(ApiError::invalid("status", format!("status must be one of {}", CHAIN_STATUSES.join(", "))));
    }
    let reports = state.runtime.run_reports(&principal.tenant, limit).await?;
    let out = reports
        .iter()
        .filter(|r| query.status.as_deref().is_none_or(|s| r.status.as_str() == s))
        .map(|r| execute_response(r, &[], 0))
        .collect();
    Ok(axum::Json(out))
}

#[utoipa::path(get, path = "/v1/chains/{id}", tag = "agent", params(ChainPath),
    responses((status = 200, body = ExecuteResponse), (status = 404)), security(("bearer" = [])))]
pub(crate) async fn get_chain(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(ChainPath { id }): Path<ChainPath>,
) -> Result<axum::Json<ExecuteResponse>, ApiError> {
    let chain = parse_chain(&id)?;
    let report = state.runtime.run_report(&principal.tenant, &chain).await?;
    let records = chain_records(&state.runtime, &report).await;
    Ok(axum::Json(execute_response(&report, &records, 0)))
}

#[utoipa::path(post, path = "/v1/chains/{id}/cancel", tag = "agent", params(ChainPath),
    responses((status = 200, body = ExecuteResponse, description = "the chain after the request; a running chain stops before its next action"), (status = 404), (status = 409)),
    security(("bearer" = [])))]
pub(crate) async fn cancel_chain(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(ChainPath { id }): Path<ChainPath>,
) -> Result<axum::Json<ExecuteResponse>, ApiError> {
    let chain = parse_chain(&id)?;
    let report = state.runtime.cancel_run(&principal.tenant, &chain, &principal.subject()).await?;
    Ok(axum::Json(execute_response(&report, &[], 0)))
}

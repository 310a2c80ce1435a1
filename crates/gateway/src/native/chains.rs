//! Agent runs over HTTP: `POST /v1/execute` (blocking), `POST /v1/execute/stream` (SSE),
//! `GET /v1/chains/{id}/events` (re-attach, honouring `Last-Event-ID`), `GET /v1/events` (the
//! tenant's live feed: every replica's runs on one connection), and listing, reading and
//! cancelling chains. The runtime starts and watches runs (as it does for every front-end);
//! these handlers only translate HTTP and SSE. A client that goes away never stops a run.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::Extension;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use domain::ChainId;
use domain::agent::ChainStatus;
use engine::machine::ModelTier;
use futures_util::Stream;
use runtime::agent::RunRequest;
use runtime::auth::Principal;
use runtime::runs::{NumberedEvent, RunEvents};
use serde::Deserialize;
use serde_json::Value;
use utoipa::IntoParams;

use super::shapes::{ExecuteRequest, ExecuteResponse, execute_response, sse_event};
use crate::error::ApiError;
use crate::extract::Path;
use crate::json::{Body, Query};
use crate::state::AppState;

/// Reads a request into a run for the runtime to admit and start.
fn run_request(principal: &Principal, body: ExecuteRequest) -> Result<RunRequest, ApiError> {
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
    let tier = match body.tier.as_deref() {
        None => None,
        Some("trivial") => Some(ModelTier::Trivial),
        Some("normal") => Some(ModelTier::Normal),
        Some("complex") => Some(ModelTier::Complex),
        Some(other) => {
            return Err(ApiError::invalid(
                "tier",
                format!("unknown tier {other:?}; expected trivial, normal or complex"),
            ));
        }
    };
    Ok(RunRequest {
        tenant: principal.tenant.clone(),
        task: body.task,
        persona: body.persona,
        qa_spec,
        user: Some(principal.subject()),
        chain_id: None,
        tier,
    })
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
    let run = state.runtime.start_run(run_request(&principal, body)?).await?;
    // The run goes on if this client hangs up; only the wait for its report stops.
    let report = run.finished().await?;
    let records = state.runtime.ledger().chain_records(&report.tenant, &report.chain_id).await.unwrap_or_default();
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
    let run = state.runtime.start_run(run_request(&principal, body)?).await?;
    Ok(sse(run.events()).into_response())
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
    let after = last_event_id(&headers);
    let events = state.runtime.watch_run(&principal.tenant, &chain, after).await?;
    Ok(sse(events).into_response())
}

#[utoipa::path(get, path = "/v1/events", tag = "agent",
    responses((status = 200, body = crate::schema::SseEvent, content_type = "text/event-stream", description = "the tenant's live feed: every run's events from every replica, each `data:` the event with its `chain_id` and `seq`; `id:` is the feed position, so `Last-Event-ID` resumes without gaps (a first connection starts with the latest events)")),
    security(("bearer" = [])))]
pub(crate) async fn feed(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
) -> Response {
    let after = last_event_id(&headers);
    let feed = state.runtime.watch_feed(&principal.tenant, after);
    let stream = futures_util::stream::unfold(feed, |mut feed| async move {
        let item = feed.next().await?;
        let (name, mut data) = sse_event(&item.event);
        if let Value::Object(fields) = &mut data {
            fields.insert("chain_id".into(), Value::String(item.chain_id.to_string()));
            fields.insert("seq".into(), Value::from(item.seq));
            fields.insert("at".into(), Value::String(item.at.to_rfc3339()));
        }
        let sse = SseEvent::default().event(name).id(item.id.to_string()).data(data.to_string());
        Some((Ok::<_, Infallible>(sse), feed))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response()
}

/// The `Last-Event-ID` a reconnecting client sends, when it is a number.
pub(crate) fn last_event_id(headers: &HeaderMap) -> Option<u64> {
    headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok())
}

/// A run's events as SSE; each event's `id:` is its number, so `Last-Event-ID` resumes.
fn sse(events: RunEvents) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let stream = futures_util::stream::unfold(events, |mut events| async move {
        let NumberedEvent { seq, event } = events.next().await?;
        let (name, data) = sse_event(&event);
        let sse = SseEvent::default().event(name).id(seq.to_string()).data(data.to_string());
        Some((Ok(sse), events))
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
    let status = query
        .status
        .as_deref()
        .map(str::parse::<ChainStatus>)
        .transpose()
        .map_err(|e| ApiError::invalid("status", format!("status must be one of {}", e.expected.join(", "))))?;
    let reports = state.runtime.run_reports(&principal.tenant, status, limit).await?;
    Ok(axum::Json(reports.iter().map(|r| execute_response(r, &[], 0)).collect()))
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
    let records = state.runtime.ledger().chain_records(&principal.tenant, &chain).await?;
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

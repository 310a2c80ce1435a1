//! The server's recent log lines for admin keys: `GET /v1/logs` (filtered by level, target,
//! text and time, newest last) and `GET /v1/logs/stream` (the same filter, live over SSE; each
//! event's `id:` is the line's number, so `Last-Event-ID` resumes). Lines are this process's
//! (each replica keeps its own), redacted as they were logged; a line that names another
//! tenant is never shown.

use std::convert::Infallible;
use std::time::Duration;

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use domain::Timestamp;
use runtime::auth::Principal;
use runtime::logs::{LogLevel, LogLine, LogTail};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::require_admin;
use crate::error::ApiError;
use crate::json::Query;
use crate::state::AppState;

/// One log line.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogLineResponse {
    /// Numbered from 1 in the order this process logged them.
    pub seq: u64,
    /// RFC 3339.
    pub at: String,
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub level: String,
    /// Where it was logged (a module path).
    pub target: String,
    /// The tenant the line is about, if it names one (always the caller's).
    pub tenant: Option<String>,
    /// The message and its fields, secrets masked.
    pub text: String,
}

fn line_response(line: &LogLine) -> LogLineResponse {
    LogLineResponse {
        seq: line.seq,
        at: line.at.to_rfc3339(),
        level: line.level.as_str().to_owned(),
        target: line.target.clone(),
        tenant: line.tenant.clone(),
        text: line.text.clone(),
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct LogsQuery {
    /// The least severe level shown: error, warn, info (default), debug or trace.
    level: Option<String>,
    /// Only lines whose target starts with this (e.g. `runtime::jobs`).
    target: Option<String>,
    /// Only lines containing this text (any case).
    q: Option<String>,
    /// RFC 3339: only lines logged at or after this time.
    since: Option<String>,
    /// RFC 3339: only lines logged before this time.
    until: Option<String>,
    /// Only lines after this number (a cursor; `Last-Event-ID` does the same for the stream).
    after: Option<u64>,
    /// At most this many, the newest (1 to 5000; default 200).
    limit: Option<u32>,
}

/// A checked filter.
struct Filter {
    tenant: String,
    level: LogLevel,
    target: String,
    text: String,
    since: Option<Timestamp>,
    until: Option<Timestamp>,
}

impl Filter {
    fn of(principal: &Principal, query: &LogsQuery) -> Result<Filter, ApiError> {
        let level = match query.level.as_deref().map(str::trim).filter(|l| !l.is_empty()) {
            None => LogLevel::Info,
            Some(text) => LogLevel::parse(text)
                .ok_or_else(|| ApiError::invalid("level", "level must be error, warn, info, debug or trace"))?,
        };
        let time = |field: &str, value: &Option<String>| -> Result<Option<Timestamp>, ApiError> {
            match value.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
                None => Ok(None),
                Some(text) => chrono::DateTime::parse_from_rfc3339(text)
                    .map(|t| Some(Timestamp::from_micros(t.timestamp_micros())))
                    .map_err(|e| ApiError::invalid(field, format!("{text:?} is not an RFC 3339 time: {e}"))),
            }
        };
        Ok(Filter {
            tenant: principal.tenant.to_string(),
            level,
            target: query.target.clone().unwrap_or_default().trim().to_owned(),
            text: query.q.clone().unwrap_or_default().trim().to_owned(),
            since: time("since", &query.since)?,
            until: time("until", &query.until)?,
        })
    }

    fn keeps(&self, line: &LogLine) -> bool {
        line.visible_to(&self.tenant)
            && line.matches(self.level, &self.text)
            && line.target.starts_with(&self.target)
            && self.since.is_none_or(|t| line.at >= t)
            && self.until.is_none_or(|t| line.at < t)
    }
}

/// The log tail, for admins of a server that keeps one.
fn tail(state: &AppState, principal: &Principal) -> Result<std::sync::Arc<LogTail>, ApiError> {
    require_admin(principal, "reading the server's logs")?;
    state.runtime.logs().cloned().ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "logs_not_kept",
            "this server keeps no log lines in memory (they go to its standard error only)",
        )
    })
}

#[utoipa::path(get, path = "/v1/logs", tag = "operations", params(LogsQuery),
    responses((status = 200, body = [LogLineResponse], description = "the newest matching lines, oldest first"),
              (status = 403, description = "not an admin"),
              (status = 409, description = "this server keeps no log lines"),
              (status = 422, description = "an unknown level, a malformed time or a limit outside 1..=5000 (named in `error.field`)")),
    security(("bearer" = [])))]
pub(crate) async fn logs(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<LogsQuery>,
) -> Result<Json<Vec<LogLineResponse>>, ApiError> {
    let tail = tail(&state, &principal)?;
    let filter = Filter::of(&principal, &query)?;
    let limit = query.limit.unwrap_or(200);
    if !(1..=5000).contains(&limit) {
        return Err(ApiError::invalid("limit", format!("{limit} is outside 1..=5000")));
    }
    let (kept, _) = tail.attach(query.after);
    let shown: Vec<&LogLine> = kept.iter().filter(|l| filter.keeps(l)).collect();
    let from = shown.len().saturating_sub(limit as usize);
    Ok(Json(shown[from..].iter().map(|l| line_response(l)).collect()))
}

#[utoipa::path(get, path = "/v1/logs/stream", tag = "operations", params(LogsQuery),
    responses((status = 200, content_type = "text/event-stream", description = "`line` events (each `data:` a log line as JSON, `id:` its number) from `after` or `Last-Event-ID` (else from now), then live"),
              (status = 403, description = "not an admin"),
              (status = 409, description = "this server keeps no log lines"),
              (status = 422, description = "an unknown level or a malformed time (named in `error.field`)")),
    security(("bearer" = [])))]
pub(crate) async fn stream(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<LogsQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let tail = tail(&state, &principal)?;
    let filter = Filter::of(&principal, &query)?;
    let resume = super::chains::last_event_id(&headers);
    // A first connection with no cursor starts at the newest line: it follows, it does not replay.
    let from = resume.or(query.after).or_else(|| tail.attach(None).0.last().map(|l| l.seq));
    let follow = tail.follow(from);
    let stream = futures_util::stream::unfold((follow, filter), |(mut follow, filter)| async move {
        loop {
            let line = follow.next().await?;
            if !filter.keeps(&line) {
                continue;
            }
            let data = serde_json::to_string(&line_response(&line)).unwrap_or_default();
            let event = SseEvent::default().event("line").id(line.seq.to_string()).data(data);
            return Some((Ok::<_, Infallible>(event), (follow, filter)));
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response())
}

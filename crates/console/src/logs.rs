//! The server's log tail, for admins: the lines this process kept (redacted as they were
//! logged), filtered by level and text, followed live over SSE (each line numbered, so a
//! reconnecting browser resumes after the last it saw) and downloadable as text. A line that
//! names a tenant is shown only to that tenant's admins.

use std::convert::Infallible;
use std::time::Duration;

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use runtime::logs::{LogLevel, LogLine};
use serde::Deserialize;

use crate::extract::Query;
use crate::pages::{ConsoleError, Page, PageResult, render};
use crate::session::Signed;
use crate::state::ConsoleState;

/// Lines a page shows at first (the newest).
const SHOWN: usize = 500;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LogQuery {
    level: String,
    q: String,
    /// The last line the page already shows (the live view continues after it).
    after: Option<u64>,
}

struct Filter {
    level: LogLevel,
    text: String,
    tenant: String,
}

impl Filter {
    fn of(signed: &Signed, query: &LogQuery) -> Result<Filter, ConsoleError> {
        let level = match query.level.trim() {
            "" => LogLevel::Info,
            l => LogLevel::parse(l).ok_or_else(|| {
                ConsoleError::Api(
                    signed.lang,
                    gateway::ApiError::invalid("level", "level must be error, warn, info, debug or trace"),
                )
            })?,
        };
        Ok(Filter { level, text: query.q.trim().to_owned(), tenant: signed.user.principal.tenant.to_string() })
    }

    fn keeps(&self, line: &LogLine) -> bool {
        line.visible_to(&self.tenant) && line.matches(self.level, &self.text)
    }
}

pub struct LineView {
    pub seq: u64,
    pub time: String,
    pub level: &'static str,
    pub target: String,
    pub text: String,
}

fn line_view(line: &LogLine) -> LineView {
    LineView {
        seq: line.seq,
        time: crate::pages::clock(line.at),
        level: line.level.as_str(),
        target: line.target.clone(),
        text: crate::pages::visible(&line.text),
    }
}

#[derive(Template)]
#[template(path = "logs.html")]
struct LogsView {
    page: Page,
    kept: bool,
    lines: Vec<LineView>,
    levels: [&'static str; 5],
    level: &'static str,
    query: String,
    /// The live view's address (continuing after the last line shown).
    live: String,
    download: String,
}

#[derive(Template)]
#[template(path = "log_line.html")]
struct LineFragment {
    line: LineView,
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `GET /logs?level=&q=`: the newest kept lines that pass the filter, then live ones.
pub async fn logs(State(state): State<ConsoleState>, signed: Signed, Query(query): Query<LogQuery>) -> PageResult {
    signed.require_admin()?;
    let filter = Filter::of(&signed, &query)?;
    let (lines, kept, last) = match state.runtime.logs() {
        Some(tail) => {
            let (all, _) = tail.attach(None);
            let last = all.last().map_or(0, |l| l.seq);
            let shown: Vec<&LogLine> = all.iter().filter(|l| filter.keeps(l)).collect();
            let from = shown.len().saturating_sub(SHOWN);
            (shown[from..].iter().map(|l| line_view(l)).collect(), true, last)
        }
        None => (Vec::new(), false, 0),
    };
    let params = format!("level={}&q={}", filter.level.as_str(), encode(&filter.text));
    render(&LogsView {
        page: Page::new(&signed, "logs"),
        kept,
        lines,
        levels: LogLevel::ALL.map(LogLevel::as_str),
        level: filter.level.as_str(),
        query: filter.text,
        live: format!("/logs/events?{params}&after={last}"),
        download: format!("/logs.txt?{params}"),
    })
}

/// `GET /logs/events?level=&q=&after=`: new lines that pass the filter, as HTML fragments.
pub async fn events(
    State(state): State<ConsoleState>,
    signed: Signed,
    headers: HeaderMap,
    Query(query): Query<LogQuery>,
) -> Result<Response, ConsoleError> {
    signed.require_admin()?;
    let filter = Filter::of(&signed, &query)?;
    let Some(tail) = state.runtime.logs().cloned() else {
        return Err(ConsoleError::NotFound(signed.lang));
    };
    let resume = crate::live::last_event_id(&headers);
    let follow = tail.follow(resume.or(query.after));
    let stream = futures_util::stream::unfold((follow, filter), |(mut follow, filter)| async move {
        loop {
            let line = follow.next().await?;
            if !filter.keeps(&line) {
                continue;
            }
            let html = LineFragment { line: line_view(&line) }.render().unwrap_or_default();
            let event = SseEvent::default().event("line").id(line.seq.to_string()).data(html);
            return Some((Ok::<_, Infallible>(event), (follow, filter)));
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response())
}

/// `GET /logs.txt?level=&q=`: every kept line that passes the filter, as text.
pub async fn download(
    State(state): State<ConsoleState>,
    signed: Signed,
    Query(query): Query<LogQuery>,
) -> Result<Response, ConsoleError> {
    signed.require_admin()?;
    let filter = Filter::of(&signed, &query)?;
    let Some(tail) = state.runtime.logs() else {
        return Err(ConsoleError::NotFound(signed.lang));
    };
    let (all, _) = tail.attach(None);
    let mut text = String::new();
    for line in all.iter().filter(|l| filter.keeps(l)) {
        text.push_str(&format!(
            "{} {:5} {} {}\n",
            line.at.to_rfc3339(),
            line.level.as_str().to_uppercase(),
            line.target,
            line.text
        ));
    }
    let headers = [
        (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
        (header::CONTENT_DISPOSITION, "attachment; filename=\"nexus-logs.txt\""),
    ];
    Ok((headers, text).into_response())
}

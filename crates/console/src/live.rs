//! Running a task from the console and watching it live: the Execute form starts a run through
//! the runtime (the person is its requester, so they can never approve its own actions), and a
//! chain's page follows its events over one SSE connection, each event an HTML fragment
//! rendered here (escaped like every page) and numbered, so a reconnecting browser sends
//! `Last-Event-ID` and misses nothing. A finished run's stream sends `done`, which closes the
//! browser's connection instead of letting it reconnect.

use std::convert::Infallible;
use std::time::Duration;

use askama::Template;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use domain::ChainId;
use domain::agent::GateVerdict;
use engine::machine::{Event, SealKind};
use runtime::agent::RunRequest;
use runtime::runs::{NumberedEvent, RunEvents};
use serde::Deserialize;

use crate::extract::{Form, Path};
use crate::i18n::Catalog;
use crate::pages::{ConsoleError, Page, PageResult, api, money, render};
use crate::session::Signed;
use crate::state::ConsoleState;

#[derive(Template)]
#[template(path = "execute.html")]
struct ExecuteView {
    page: Page,
    personas: Vec<String>,
}

pub async fn execute_page(State(state): State<ConsoleState>, signed: Signed) -> PageResult {
    let personas = state.runtime.personas(&signed.user.principal.tenant).await.map_err(api(signed.lang))?;
    let personas = personas.into_iter().filter(|p| p.is_active).map(|p| p.name).collect();
    render(&ExecuteView { page: Page::new(&signed, "execute"), personas })
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ExecuteForm {
    csrf: String,
    task: String,
    persona: String,
}

pub async fn execute(
    State(state): State<ConsoleState>,
    signed: Signed,
    headers: HeaderMap,
    Form(form): Form<ExecuteForm>,
) -> PageResult {
    signed.check_csrf(&headers, &form.csrf)?;
    let principal = &signed.user.principal;
    let request = RunRequest {
        tenant: principal.tenant.clone(),
        task: form.task,
        persona: Some(form.persona),
        qa_spec: None,
        user: Some(principal.subject()),
        chain_id: None,
        tier: None,
    };
    let handle = state.runtime.start_run(request).await.map_err(api(signed.lang))?;
    Ok(Redirect::to(&format!("/chains/{}", handle.chain_id())).into_response())
}

/// One event as the page shows it.
#[derive(Template)]
#[template(path = "event.html")]
struct EventView<'a> {
    t: &'a Catalog,
    kind: &'static str,
    step: usize,
    title: String,
    badge: String,
    badge_class: String,
    gate: String,
    seal: String,
    detail: String,
    link: String,
    /// Set in the live feed, which mixes runs: which run, and when.
    chain: String,
    chain_short: String,
    at: String,
}

fn event_view<'a>(t: &'a Catalog, chain: &str, event: &Event) -> EventView<'a> {
    let mut view = EventView {
        t,
        kind: "",
        step: 0,
        title: String::new(),
        badge: String::new(),
        badge_class: String::new(),
        gate: String::new(),
        seal: String::new(),
        detail: String::new(),
        link: String::new(),
        chain: String::new(),
        chain_short: String::new(),
        at: String::new(),
    };
    match event {
        Event::ChainStarted { steps, .. } => {
            view.kind = "chain_started";
            view.title = t.fill("live.planned", &[("steps", &steps.to_string())]);
        }
        Event::StepStarted { step, persona, tool } => {
            view.kind = "step_started";
            view.step = step + 1;
            view.title =
                t.fill("live.step", &[("step", &(step + 1).to_string()), ("tool", tool), ("persona", persona)]);
        }
        Event::GateResult { step, gate, verdict, score, threshold } => {
            view.kind = "gate";
            view.step = step + 1;
            view.gate = gate.clone();
            let verdict = match verdict {
                GateVerdict::Pass => "pass",
                GateVerdict::Fail => "fail",
                GateVerdict::Skip => "skip",
            };
            view.badge = format!("{gate} {verdict}");
            view.badge_class = verdict.to_owned();
            view.detail = format!("{score:.2} / {threshold:.2}");
        }
        Event::SealCreated { step, seal_kind, status, fingerprint, result_preview } => {
            view.kind = "seal";
            view.step = step + 1;
            view.title = t
                .get(if *seal_kind == SealKind::Intent { "chains.intent_seal" } else { "chains.result_seal" })
                .to_owned();
            view.seal = fingerprint.clone();
            view.badge = status.as_str().to_owned();
            view.badge_class = status.as_str().to_owned();
            view.detail = crate::pages::visible(result_preview);
        }
        Event::StepCompleted { step, status } => {
            view.kind = "step_completed";
            view.step = step + 1;
            view.title = t.fill("live.step_done", &[("step", &(step + 1).to_string())]);
            view.badge = status.as_str().to_owned();
            view.badge_class = status.as_str().to_owned();
        }
        Event::ApprovalRequired { step, tool, reason } => {
            view.kind = "approval";
            view.step = step + 1;
            view.title = t.fill("live.approval", &[("tool", tool)]);
            view.badge = "approval".to_owned();
            view.badge_class = "approval".to_owned();
            view.detail = crate::pages::visible(reason);
            view.link = "/approvals".to_owned();
        }
        Event::Tainted { step, tool, reason } => {
            view.kind = "tainted";
            view.step = step + 1;
            view.title = t.fill("live.tainted", &[("tool", tool)]);
            view.badge = "tainted".to_owned();
            view.badge_class = "tainted".to_owned();
            view.detail = crate::pages::visible(reason);
        }
        Event::ChainCompleted { status, input_tokens, output_tokens, cost_usd, .. } => {
            view.kind = "chain_completed";
            view.title = t.get("live.finished").to_owned();
            view.badge = status.as_str().to_owned();
            view.badge_class = status.as_str().to_owned();
            view.detail = format!("{} · {input_tokens} / {output_tokens}", money(*cost_usd));
            view.link = format!("/chains/{chain}");
        }
        Event::Error { message } => {
            view.kind = "error";
            view.title = crate::pages::visible(message);
            view.badge_class = "fail".to_owned();
        }
        Event::Notice { message } => {
            view.kind = "notice";
            view.title = crate::pages::visible(message);
            view.badge_class = "skip".to_owned();
        }
    }
    view
}

/// `GET /live/events`: the tenant's live feed (every replica's runs) over one SSE connection,
/// each event an HTML fragment numbered by its feed id, so a reconnecting browser's
/// `Last-Event-ID` resumes without gaps; a first connection starts with the latest events.
pub async fn feed_events(State(state): State<ConsoleState>, signed: Signed, headers: HeaderMap) -> Response {
    let after = last_event_id(&headers);
    let feed = state.runtime.watch_feed(&signed.user.principal.tenant, after);
    let t = signed.lang.catalog();
    let stream = futures_util::stream::unfold(feed, move |mut feed| async move {
        let item = feed.next().await?;
        let chain = item.chain_id.to_string();
        let mut view = event_view(t, &chain, &item.event);
        if let Event::ChainStarted { .. } = item.event {
            view.link = String::new();
        }
        view.chain_short = chain.chars().take(8).collect();
        view.chain = chain;
        view.at = crate::pages::clock(item.at);
        let html = view.render().unwrap_or_default();
        Some((Ok::<_, Infallible>(SseEvent::default().event("event").id(item.id.to_string()).data(html)), feed))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response()
}

/// The `Last-Event-ID` a reconnecting browser sends.
pub(crate) fn last_event_id(headers: &HeaderMap) -> Option<u64> {
    headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok())
}

/// `GET /chains/{id}/events`: the run's events as HTML fragments over SSE, resumable.
pub async fn events(
    State(state): State<ConsoleState>,
    signed: Signed,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    let lang = signed.lang;
    let chain = ChainId::parse(&id).map_err(|_| ConsoleError::NotFound(lang))?;
    let after = last_event_id(&headers);
    let events = state.runtime.watch_run(&signed.user.principal.tenant, &chain, after).await.map_err(api(lang))?;
    let t = lang.catalog();
    let chain = chain.to_string();
    enum Next {
        Events(RunEvents),
        Done,
    }
    let stream = futures_util::stream::unfold(Next::Events(events), move |next| {
        let chain = chain.clone();
        async move {
            match next {
                Next::Events(mut events) => match events.next().await {
                    Some(NumberedEvent { seq, event }) => {
                        let html = event_view(t, &chain, &event).render().unwrap_or_default();
                        let sse = SseEvent::default().event("event").id(seq.to_string()).data(html);
                        Some((Ok::<_, Infallible>(sse), Next::Events(events)))
                    }
                    None => Some((Ok(SseEvent::default().event("done").data("done")), Next::Done)),
                },
                Next::Done => None,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response())
}

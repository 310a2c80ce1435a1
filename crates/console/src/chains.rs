//! The chain list (filters by status, persona, date and text; cursor pages), a chain's page
//! with its steps, gates, seals, model calls and answer, its Verify button and proof bundle.

use askama::Template;
use axum::extract::State;
use domain::agent::{ChainStatus, GateVerdict};
use domain::{ChainId, Timestamp};
use gateway::ApiError;
use serde::Deserialize;

use crate::extract::{Path, Query};
use crate::pages::{ConsoleError, Page, PageResult, api, day_start, money, render, visible};
use crate::session::Signed;
use crate::state::ConsoleState;

pub struct ChainRow {
    pub id: String,
    pub task: String,
    pub status: String,
    pub steps: usize,
    pub cost: String,
}

#[derive(Template)]
#[template(path = "chains.html")]
struct ChainsView {
    page: Page,
    rows: Vec<ChainRow>,
    statuses: Vec<&'static str>,
    status: String,
    text: String,
    since: String,
    until: String,
    personas: Vec<String>,
    persona: String,
    /// The query string of the next (older) page, if there is one.
    older: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ChainsQuery {
    status: String,
    text: String,
    /// `YYYY-MM-DD` (UTC), inclusive.
    since: String,
    /// `YYYY-MM-DD` (UTC), inclusive.
    until: String,
    /// The cursor: `<created µs>.<chain id>` of the last run of the previous page.
    before: String,
    /// Only runs with a step for this persona.
    persona: String,
}

const CHAINS_PAGE: u32 = 50;

pub async fn chains(State(state): State<ConsoleState>, signed: Signed, Query(query): Query<ChainsQuery>) -> PageResult {
    let lang = signed.lang;
    let invalid = |field: &str, message: String| ConsoleError::Api(lang, ApiError::invalid(field, message));
    let status = match query.status.as_str() {
        "" => None,
        s => Some(s.parse::<ChainStatus>().map_err(|e| invalid("status", e.to_string()))?),
    };
    let before = match query.before.trim() {
        "" => None,
        cursor => {
            let bad = || invalid("before", "before must be a cursor from an Older link".into());
            let (at, chain) = cursor.split_once('.').ok_or_else(bad)?;
            let at = at.parse::<i64>().map_err(|_| bad())?;
            Some((Timestamp::from_micros(at), ChainId::parse(chain).map_err(|_| bad())?))
        }
    };
    let filter = domain::ports::RunFilter {
        status,
        before,
        since: day_start(lang, "since", &query.since, 0)?,
        until: day_start(lang, "until", &query.until, 1)?,
        text: Some(query.text.clone()).filter(|t| !t.trim().is_empty()),
        persona: Some(query.persona.trim().to_owned()).filter(|p| !p.is_empty()),
    };
    let page = state.runtime.run_page(&signed.user.principal.tenant, &filter, CHAINS_PAGE).await.map_err(api(lang))?;
    let older = (page.len() == CHAINS_PAGE as usize).then(|| page.last()).flatten().map(|(report, at)| {
        serde_urlencoded::to_string([
            ("status", query.status.as_str()),
            ("text", query.text.as_str()),
            ("since", query.since.as_str()),
            ("until", query.until.as_str()),
            ("persona", query.persona.as_str()),
            ("before", &format!("{}.{}", at.as_micros(), report.chain_id)),
        ])
        .unwrap_or_default()
    });
    let rows = page
        .iter()
        .map(|(r, _)| ChainRow {
            id: r.chain_id.to_string(),
            task: visible(&r.task),
            status: r.status.as_str().to_owned(),
            steps: r.steps.len(),
            cost: money(r.cost_usd),
        })
        .collect();
    let statuses = ChainStatus::ALL.iter().map(|s| s.as_str()).collect();
    let personas = state.runtime.personas(&signed.user.principal.tenant).await.map_err(api(lang))?;
    let mut personas: Vec<String> = personas.into_iter().map(|p| p.name).collect();
    // A persona since removed can still be filtered on (its runs remain).
    if !query.persona.trim().is_empty() && !personas.iter().any(|p| *p == query.persona.trim()) {
        personas.push(query.persona.trim().to_owned());
    }
    render(&ChainsView {
        page: Page::new(&signed, "chains"),
        rows,
        statuses,
        status: query.status,
        text: query.text,
        since: query.since,
        until: query.until,
        personas,
        persona: query.persona,
        older,
    })
}

pub struct GateView {
    pub name: String,
    pub verdict: String,
    pub score: String,
    pub details: String,
}

pub struct StepView {
    pub index: usize,
    pub action: String,
    pub persona: String,
    pub tool: String,
    pub params: String,
    pub status: String,
    pub gates: Vec<GateView>,
    pub intent: String,
    pub result: String,
    pub preview: String,
    pub error: String,
}

#[derive(Template)]
#[template(path = "chain.html")]
struct ChainView {
    page: Page,
    id: String,
    task: String,
    status: String,
    answer: String,
    error: String,
    steps: Vec<StepView>,
    cost: String,
    tokens: String,
    models: String,
    verified: String,
    verify_error: String,
    /// What untrusted content the run read first (empty: none).
    tainted: String,
    /// The state-changing tools the task asked for.
    envelope: String,
    /// The run is not finished: its events are followed as they happen (a finished run's
    /// events are replayed from its stored state).
    live: bool,
}

async fn chain_view(state: &ConsoleState, signed: &Signed, id: &str) -> Result<ChainView, ConsoleError> {
    let lang = signed.lang;
    let chain = ChainId::parse(id).map_err(|_| ConsoleError::NotFound(lang))?;
    let tenant = &signed.user.principal.tenant;
    let report = match state.runtime.run_report(tenant, &chain).await {
        Ok(report) => report,
        // Started a moment ago in this process and not stored yet (the Execute form redirects
        // here at once): its events are already being recorded, so the page follows them.
        Err(runtime::agent::AgentError::NoSuchRun { .. })
            if state.runtime.watch_run(tenant, &chain, None).await.is_ok() =>
        {
            return Ok(ChainView {
                page: Page::new(signed, "chains"),
                id: chain.to_string(),
                task: chain.to_string(),
                status: ChainStatus::Planning.as_str().to_owned(),
                answer: String::new(),
                error: String::new(),
                steps: Vec::new(),
                cost: money(0.0),
                tokens: "0 / 0".into(),
                models: String::new(),
                verified: String::new(),
                verify_error: String::new(),
                tainted: String::new(),
                envelope: String::new(),
                live: true,
            });
        }
        Err(error) => return Err(api(lang)(error)),
    };
    let steps = report
        .steps
        .iter()
        .map(|s| StepView {
            index: s.index + 1,
            action: visible(&s.action),
            persona: s.persona.clone(),
            tool: visible(&s.tool),
            params: visible(&serde_json::to_string_pretty(&s.params).unwrap_or_default()),
            status: s.status.as_str().to_owned(),
            gates: s
                .gates
                .iter()
                .map(|g| GateView {
                    name: g.gate_name.clone(),
                    verdict: match g.verdict {
                        GateVerdict::Pass => "pass",
                        GateVerdict::Fail => "fail",
                        GateVerdict::Skip => "skip",
                    }
                    .to_owned(),
                    score: format!("{:.2} / {:.2}", g.score, g.threshold),
                    details: visible(&g.details),
                })
                .collect(),
            intent: s.intent_fingerprint.clone().unwrap_or_default(),
            result: s.result_fingerprint.clone().unwrap_or_default(),
            preview: visible(s.result_preview.as_deref().unwrap_or_default()),
            error: visible(s.error.as_deref().unwrap_or_default()),
        })
        .collect();
    Ok(ChainView {
        page: Page::new(signed, "chains"),
        id: report.chain_id.to_string(),
        task: visible(&report.task),
        status: report.status.as_str().to_owned(),
        answer: report.answer.clone().unwrap_or_default(),
        error: report.error.clone().unwrap_or_default(),
        steps,
        cost: money(report.cost_usd),
        tokens: format!("{} / {}", report.input_tokens, report.output_tokens),
        models: report.models.join(", "),
        verified: String::new(),
        verify_error: String::new(),
        tainted: report.taint.as_ref().map(|t| visible(&t.origin.describe())).unwrap_or_default(),
        envelope: match &report.envelope {
            Some(tools) if !tools.is_empty() => visible(&tools.join(", ")),
            _ => "—".to_owned(),
        },
        live: !report.status.is_terminal(),
    })
}

pub async fn chain(State(state): State<ConsoleState>, signed: Signed, Path(id): Path<String>) -> PageResult {
    render(&chain_view(&state, &signed, &id).await?)
}

pub async fn verify_chain(State(state): State<ConsoleState>, signed: Signed, Path(id): Path<String>) -> PageResult {
    let mut view = chain_view(&state, &signed, &id).await?;
    let chain = ChainId::parse(&id).map_err(|_| ConsoleError::NotFound(signed.lang))?;
    match state.runtime.verifier().chain(&signed.user.principal.tenant, &chain).await {
        Ok(report) => {
            view.verified = view.page.t.fill(
                "chains.verified",
                &[("proven", &report.proven.to_string()), ("entries", &report.entries.to_string())],
            );
        }
        Err(error) => view.verify_error = error.to_string(),
    }
    render(&view)
}

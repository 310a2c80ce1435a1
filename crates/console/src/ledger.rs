//! The ledger explorer: entries newest first with filters (kind, chain, date), an entry's
//! canonical content, the latest signed checkpoint, a full verification shown red at the first
//! bad entry, and a kept checkpoint checked for consistency with today's ledger.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use domain::ChainId;
use domain::ledger::EntryKind;
use domain::ports::RecordFilter;
use gateway::ApiError;
use serde::Deserialize;

use crate::extract::{Form, Path, Query};
use crate::pages::{ConsoleError, Page, PageResult, api, day_start, render, time, visible};
use crate::session::Signed;
use crate::state::ConsoleState;

pub struct EntryRow {
    pub index: u64,
    pub kind: String,
    pub chain: String,
    pub time: String,
    pub fingerprint: String,
}

pub struct CheckpointView {
    pub size: u64,
    pub root: String,
    pub note: String,
    pub time: String,
}

#[derive(Template)]
#[template(path = "ledger.html")]
struct LedgerView {
    page: Page,
    rows: Vec<EntryRow>,
    kinds: Vec<&'static str>,
    kind: String,
    chain: String,
    next: Option<u64>,
    checkpoint: Option<CheckpointView>,
    verified: String,
    verify_error: String,
    since: String,
    until: String,
    /// The kept checkpoint last checked, shown again in its form.
    kept: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct LedgerQuery {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    chain: String,
    before: Option<u64>,
    /// Only entries written on or after this day (`YYYY-MM-DD`, UTC).
    #[serde(default)]
    since: String,
    /// Only entries written on or before this day.
    #[serde(default)]
    until: String,
}

const LEDGER_PAGE: u32 = 50;

async fn ledger_view(state: &ConsoleState, signed: &Signed, query: LedgerQuery) -> Result<LedgerView, ConsoleError> {
    let lang = signed.lang;
    let invalid = |field: &str, e: String| ConsoleError::Api(lang, ApiError::invalid(field, e));
    let kind = match query.kind.as_str() {
        "" => None,
        k => Some(k.parse::<EntryKind>().map_err(|e| invalid("kind", e.to_string()))?),
    };
    let chain = match query.chain.trim() {
        "" => None,
        c => Some(ChainId::parse(c).map_err(|e| invalid("chain", e.to_string()))?),
    };
    let tenant = &signed.user.principal.tenant;
    let since = day_start(lang, "since", &query.since, 0)?;
    let until = day_start(lang, "until", &query.until, 1)?;
    let filter = RecordFilter { before: query.before, kind, chain, since, until };
    let ledger = state.runtime.ledger();
    let records = ledger.page(tenant, &filter, LEDGER_PAGE).await.map_err(api(lang))?;
    let checkpoint = match state.runtime.ledger().latest_checkpoint(tenant).await {
        Ok(c) => Some(CheckpointView {
            size: c.size,
            root: hex::encode(c.root_hash),
            note: c.signed_note,
            time: time(c.created_at),
        }),
        Err(runtime::LedgerError::EmptyLog(_)) => None,
        Err(error) => return Err(api(lang)(error)),
    };
    let next = (records.len() == LEDGER_PAGE as usize).then(|| records.last().map(|r| r.index)).flatten();
    let rows = records
        .into_iter()
        .map(|r| EntryRow {
            index: r.index,
            kind: r.kind.as_str().to_owned(),
            chain: r.chain_id.map(|c| c.to_string()).unwrap_or_default(),
            time: time(r.timestamp),
            fingerprint: r.fingerprint,
        })
        .collect();
    Ok(LedgerView {
        page: Page::new(signed, "ledger"),
        rows,
        kinds: EntryKind::ALL.iter().map(|k| k.as_str()).collect(),
        kind: query.kind,
        chain: query.chain,
        next,
        checkpoint,
        verified: String::new(),
        verify_error: String::new(),
        since: query.since,
        until: query.until,
        kept: String::new(),
    })
}

pub async fn ledger(State(state): State<ConsoleState>, signed: Signed, Query(query): Query<LedgerQuery>) -> PageResult {
    render(&ledger_view(&state, &signed, query).await?)
}

pub async fn verify_ledger(State(state): State<ConsoleState>, signed: Signed) -> PageResult {
    let mut view = ledger_view(&state, &signed, LedgerQuery::default()).await?;
    match state.runtime.verifier().tenant(&signed.user.principal.tenant, None).await {
        Ok(report) => {
            view.verified = view.page.t.fill(
                "ledger.verified",
                &[("entries", &report.entries.to_string()), ("checkpoints", &report.checkpoints.to_string())],
            );
        }
        Err(runtime::VerifyError::UnknownTenant(_)) => {
            view.verified = view.page.t.fill("ledger.verified", &[("entries", "0"), ("checkpoints", "0")]);
        }
        Err(error) => view.verify_error = error.to_string(),
    }
    render(&view)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct KeptCheckpointForm {
    csrf: String,
    checkpoint: String,
}

/// `POST /ledger/consistency`: a signed checkpoint the person kept (copied from this page
/// earlier, or published elsewhere) checked against the ledger as it is now: signed by this
/// ledger's key for this tenant, and its tree a prefix of today's.
pub async fn check_kept_checkpoint(
    State(state): State<ConsoleState>,
    signed: Signed,
    headers: HeaderMap,
    Form(form): Form<KeptCheckpointForm>,
) -> PageResult {
    signed.check_csrf(&headers, &form.csrf)?;
    let mut view = ledger_view(&state, &signed, LedgerQuery::default()).await?;
    view.kept = form.checkpoint.clone();
    let note = form.checkpoint.replace("\r\n", "\n");
    let note = if note.ends_with('\n') { note } else { format!("{note}\n") };
    match state.runtime.verifier().own_checkpoint(&signed.user.principal.tenant, &note).await {
        Ok((report, size)) => {
            view.verified = view
                .page
                .t
                .fill("ledger.consistent", &[("size", &size.to_string()), ("entries", &report.entries.to_string())]);
        }
        Err(error) => view.verify_error = error.to_string(),
    }
    render(&view)
}

#[derive(Template)]
#[template(path = "entry.html")]
struct EntryView {
    page: Page,
    index: u64,
    kind: String,
    chain: String,
    time: String,
    payload: String,
    parent: String,
    fingerprint: String,
}

pub async fn entry(State(state): State<ConsoleState>, signed: Signed, Path(index): Path<u64>) -> PageResult {
    let lang = signed.lang;
    let record = state
        .runtime
        .ledger()
        .record(&signed.user.principal.tenant, index)
        .await
        .map_err(api(lang))?
        .ok_or(ConsoleError::NotFound(lang))?;
    render(&EntryView {
        page: Page::new(&signed, "ledger"),
        index: record.index,
        kind: record.kind.as_str().to_owned(),
        chain: record.chain_id.map(|c| c.to_string()).unwrap_or_default(),
        time: time(record.timestamp),
        payload: visible(&record.payload),
        parent: record.parent_fingerprint,
        fingerprint: record.fingerprint,
    })
}

/// `GET /ledger/entries/{index}/bundle`: the entry's inclusion-proof bundle (JSON), to keep and
/// check offline with `nexus verify --bundle FILE`.
pub async fn bundle(State(state): State<ConsoleState>, signed: Signed, Path(index): Path<u64>) -> PageResult {
    let tenant = &signed.user.principal.tenant;
    let bundle = state.runtime.ledger().proof_bundle(tenant, index).await.map_err(api(signed.lang))?;
    let disposition = format!("attachment; filename=\"nexus-{tenant}-entry-{index}.json\"");
    let disposition = axum::http::HeaderValue::from_str(&disposition)
        .unwrap_or_else(|_| axum::http::HeaderValue::from_static("attachment"));
    Ok((
        [
            (header::CONTENT_TYPE, axum::http::HeaderValue::from_static("application/json")),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bundle.to_json(),
    )
        .into_response())
}

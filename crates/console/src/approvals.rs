//! The approvals queue for admins: each held call shown exactly (control and invisible
//! characters escaped), approved or denied with a note, never by the run's own requester.

use askama::Template;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect};
use domain::agent::ApprovalStatus;
use gateway::ApiError;
use serde::Deserialize;

use crate::extract::{Form, Path, Query};
use crate::pages::{ConsoleError, Page, PageResult, api, render, time, visible};
use crate::session::Signed;
use crate::state::ConsoleState;

pub struct ApprovalRow {
    pub id: String,
    pub chain: String,
    pub tool: String,
    pub params: String,
    pub reason: String,
    pub requested_by: String,
    pub status: String,
    pub decided_by: String,
    pub note: String,
    pub expires: String,
}

#[derive(Template)]
#[template(path = "approvals.html")]
struct ApprovalsView {
    page: Page,
    waiting: Vec<ApprovalRow>,
    decided: Vec<ApprovalRow>,
    done: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DoneQuery {
    done: String,
}

pub async fn approvals(
    State(state): State<ConsoleState>,
    signed: Signed,
    Query(query): Query<DoneQuery>,
) -> PageResult {
    signed.require_admin()?;
    let lang = signed.lang;
    let all = state.runtime.approvals(&signed.user.principal.tenant, None).await.map_err(api(lang))?;
    let row = |a: &domain::ports::Approval| ApprovalRow {
        id: a.id.clone(),
        chain: a.chain_id.to_string(),
        tool: visible(&a.tool),
        params: visible(
            &serde_json::from_str::<serde_json::Value>(&a.params)
                .and_then(|v| serde_json::to_string_pretty(&v))
                .unwrap_or_else(|_| a.params.clone()),
        ),
        reason: visible(&a.reason),
        requested_by: a.requested_by.clone().unwrap_or_default(),
        status: a.status.as_str().to_owned(),
        decided_by: a.decided_by.clone().unwrap_or_default(),
        note: visible(a.note.as_deref().unwrap_or_default()),
        expires: time(a.expires_at),
    };
    let waiting = all.iter().filter(|a| a.status == ApprovalStatus::Pending).map(row).collect();
    let decided = all.iter().filter(|a| a.status != ApprovalStatus::Pending).take(50).map(row).collect();
    let done = match query.done.as_str() {
        "approved" => lang.catalog().get("approvals.done_approved").to_owned(),
        "denied" => lang.catalog().get("approvals.done_denied").to_owned(),
        _ => String::new(),
    };
    render(&ApprovalsView { page: Page::new(&signed, "approvals"), waiting, decided, done })
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DecideForm {
    csrf: String,
    decision: String,
    note: String,
}

pub async fn decide(
    State(state): State<ConsoleState>,
    signed: Signed,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<DecideForm>,
) -> PageResult {
    signed.check_csrf(&headers, &form.csrf)?;
    signed.require_admin()?;
    let lang = signed.lang;
    let approve = match form.decision.as_str() {
        "approve" => true,
        "deny" => false,
        _ => return Err(ConsoleError::Api(lang, ApiError::invalid("decision", "decision must be approve or deny"))),
    };
    let principal = &signed.user.principal;
    state
        .runtime
        .decide(&principal.tenant, &id, approve, &principal.subject(), form.note.trim())
        .await
        .map_err(api(lang))?;
    let done = if approve { "approved" } else { "denied" };
    Ok(Redirect::to(&format!("/approvals?done={done}")).into_response())
}

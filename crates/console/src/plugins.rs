//! The Plugins page: every plugin (built-in capabilities and MCP servers) with its state and
//! why, the tools it adds, the tool definitions an administrator approved and any that changed
//! since; operator admins enable (for an MCP server: approve what it shows now) or disable one
//! here through the same runtime calls as `POST /v1/plugins/{name}/enable|disable`, so each
//! change is sealed in the ledger and followed by every server.

use askama::Template;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect};
use gateway::ApiError;
use runtime::plugins::PluginView;
use runtime::settings::Actor;
use serde::Deserialize;

use crate::extract::{Form, Query};
use crate::pages::{ConsoleError, Page, PageResult, api, render, visible};
use crate::session::Signed;
use crate::settings::require_operator;
use crate::state::ConsoleState;

pub struct PluginRow {
    pub name: String,
    pub kind: &'static str,
    pub description: String,
    pub state: &'static str,
    pub reason: String,
    pub enabled: bool,
    pub tools: String,
    /// (tool, description) approved.
    pub approved: Vec<(String, String)>,
    /// (tool, approved description or empty for a new tool, description now).
    pub changes: Vec<(String, String, String)>,
}

#[derive(Template)]
#[template(path = "plugins.html")]
struct PluginsView {
    page: Page,
    rows: Vec<PluginRow>,
    done: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PluginsQuery {
    done: String,
}

fn row(view: PluginView) -> PluginRow {
    PluginRow {
        name: view.name,
        kind: view.kind,
        description: view.description,
        state: view.state.as_str(),
        reason: visible(&view.reason),
        enabled: view.enabled,
        tools: view.tools.join(", "),
        // What a server says of its tools is shown as a person must judge it: invisible
        // characters made visible.
        approved: view.approved.into_iter().map(|p| (p.name, visible(&p.description))).collect(),
        changes: view
            .changes
            .into_iter()
            .map(|c| (c.tool, c.approved.map(|a| visible(&a)).unwrap_or_default(), visible(&c.now)))
            .collect(),
    }
}

pub async fn plugins(
    State(state): State<ConsoleState>,
    signed: Signed,
    Query(query): Query<PluginsQuery>,
) -> PageResult {
    require_operator(&signed)?;
    let lang = signed.lang;
    let views = state.runtime.plugins_view().await.map_err(api(lang))?;
    let done = match query.done.as_str() {
        key @ ("enabled" | "disabled") => lang.catalog().get(&format!("plugins.done_{key}")).to_owned(),
        _ => String::new(),
    };
    render(&PluginsView { page: Page::new(&signed, "plugins"), rows: views.into_iter().map(row).collect(), done })
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SwitchForm {
    csrf: String,
    name: String,
    /// `enable` or `disable`.
    action: String,
}

/// Enables (approves) or disables one plugin (operator admins).
pub async fn switch(
    State(state): State<ConsoleState>,
    signed: Signed,
    headers: HeaderMap,
    Form(form): Form<SwitchForm>,
) -> PageResult {
    signed.check_csrf(&headers, &form.csrf)?;
    require_operator(&signed)?;
    let lang = signed.lang;
    let principal = &signed.user.principal;
    let actor = Actor { tenant: principal.tenant.clone(), by: principal.subject() };
    let done = match form.action.as_str() {
        "enable" => {
            state.runtime.enable_plugin(&actor, &form.name).await.map_err(api(lang))?;
            "enabled"
        }
        "disable" => {
            state.runtime.disable_plugin(&actor, &form.name).await.map_err(api(lang))?;
            "disabled"
        }
        _ => return Err(ConsoleError::Api(lang, ApiError::invalid("action", "action must be enable or disable"))),
    };
    Ok(Redirect::to(&format!("/plugins?done={done}")).into_response())
}

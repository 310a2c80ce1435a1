//! What the agent works with, as configured: the tenant's personas (their contracts: tools,
//! scopes, risk tolerance, intent threshold, version) and the tools (risk, approval, whether
//! each is configured and, if not, which setting is missing). Admins edit personas on their own
//! page (`personas.rs`).

use askama::Template;
use axum::extract::State;
use runtime::Availability;

use crate::pages::{Page, PageResult, api, render, visible};
use crate::session::Signed;
use crate::state::ConsoleState;

pub struct PersonaRow {
    pub id: String,
    pub name: String,
    pub description: String,
    pub tools: String,
    pub scopes: String,
    pub risk: String,
    pub threshold: String,
    pub ttl: u32,
    pub version: u32,
    pub active: bool,
}

pub struct ToolRow {
    pub name: String,
    pub description: String,
    pub risk: String,
    pub approval: bool,
    pub state_changing: bool,
    pub missing: String,
}

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupView {
    page: Page,
    personas: Vec<PersonaRow>,
    tools: Vec<ToolRow>,
    /// Why there are no tools to show (the agent is not configured), if so.
    no_agent: String,
}

/// `GET /setup`: personas and tools.
pub async fn setup(State(state): State<ConsoleState>, signed: Signed) -> PageResult {
    let lang = signed.lang;
    let personas = state.runtime.personas(&signed.user.principal.tenant).await.map_err(api(lang))?;
    let personas = personas
        .into_iter()
        .map(|p| PersonaRow {
            id: p.id.to_string(),
            name: visible(&p.name),
            description: visible(&p.description),
            tools: p.allowed_tools.join(", "),
            scopes: p.resource_scopes.join(", "),
            risk: p.risk_tolerance.as_str().to_owned(),
            threshold: format!("{:.2}", p.intent_threshold),
            ttl: p.max_ttl_seconds,
            version: p.version,
            active: p.is_active,
        })
        .collect();
    let (tools, no_agent) = match state.runtime.tool_list() {
        Ok(tools) => (
            tools
                .into_iter()
                .map(|(tool, availability)| ToolRow {
                    name: tool.name,
                    description: visible(&tool.description),
                    risk: tool.risk_level.as_str().to_owned(),
                    approval: tool.requires_approval,
                    state_changing: tool.state_changing,
                    missing: match availability {
                        Availability::Available => String::new(),
                        Availability::Unconfigured { missing } => missing,
                    },
                })
                .collect(),
            String::new(),
        ),
        Err(error) => (Vec::new(), error.to_string()),
    };
    render(&SetupView { page: Page::new(&signed, "setup"), personas, tools, no_agent })
}

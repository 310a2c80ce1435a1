//! Persona editing for admins: a new persona or a change to one, through the same contract
//! checks as the API (`gateway::persona_contract`), so a bad value comes back on the form with
//! its field named and nothing changed. Every saved change is an admin entry in the ledger and
//! a new persona version.

use askama::Template;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use domain::PersonaId;
use domain::persona::PersonaContract;
use gateway::{ApiError, PersonaBody, persona_contract};

use crate::extract::Path;
use crate::i18n::Lang;
use crate::pages::{ConsoleError, Page, PageResult, api, render};
use crate::session::Signed;
use crate::state::ConsoleState;

/// The form's values, as shown (and sent back on an error).
#[derive(Default)]
pub struct Fields {
    pub name: String,
    pub description: String,
    pub allowed_tools: Vec<String>,
    pub resource_scopes: String,
    pub intent_patterns: String,
    pub max_ttl_seconds: String,
    pub risk_tolerance: String,
    pub trust_tier: String,
    pub intent_threshold: String,
    pub on_low_intent: String,
    pub is_active: bool,
}

impl Fields {
    fn of(p: &PersonaContract) -> Fields {
        Fields {
            name: p.name.clone(),
            description: p.description.clone(),
            allowed_tools: p.allowed_tools.clone(),
            resource_scopes: p.resource_scopes.join("\n"),
            intent_patterns: p.intent_patterns.join("\n"),
            max_ttl_seconds: p.max_ttl_seconds.to_string(),
            risk_tolerance: p.risk_tolerance.as_str().to_owned(),
            trust_tier: p.trust_tier.as_str().to_owned(),
            intent_threshold: format!("{}", p.intent_threshold),
            on_low_intent: p.on_low_intent.as_str().to_owned(),
            is_active: p.is_active,
        }
    }

    fn fresh() -> Fields {
        Fields {
            max_ttl_seconds: domain::persona::DEFAULT_TTL_SECONDS.to_string(),
            risk_tolerance: "medium".into(),
            trust_tier: "cold_start".into(),
            intent_threshold: "0.75".into(),
            on_low_intent: "approve".into(),
            is_active: true,
            ..Fields::default()
        }
    }

    pub fn has_tool(&self, tool: &str) -> bool {
        self.allowed_tools.iter().any(|t| t == tool)
    }
}

#[derive(Template)]
#[template(path = "persona.html")]
struct PersonaView {
    page: Page,
    /// Empty for a new persona.
    id: String,
    version: u32,
    fields: Fields,
    tools: Vec<String>,
    error: String,
    risks: [&'static str; 4],
    tiers: [&'static str; 3],
    low_intents: [&'static str; 2],
}

fn view(signed: &Signed, state: &ConsoleState, id: String, version: u32, fields: Fields, error: String) -> PersonaView {
    let tools = state
        .runtime
        .tool_list_for(&signed.user.principal.tenant)
        .map(|t| t.into_iter().map(|(d, _)| d.name).collect())
        .unwrap_or_default();
    PersonaView {
        page: Page::new(signed, "setup"),
        id,
        version,
        fields,
        tools,
        error,
        risks: ["low", "medium", "high", "critical"],
        tiers: ["cold_start", "established", "trusted"],
        low_intents: ["approve", "block"],
    }
}

async fn existing(state: &ConsoleState, signed: &Signed, id: &str) -> Result<PersonaContract, ConsoleError> {
    let lang = signed.lang;
    let id = PersonaId::parse(id).map_err(|_| ConsoleError::NotFound(lang))?;
    state
        .runtime
        .persona(&signed.user.principal.tenant, &id)
        .await
        .map_err(api(lang))?
        .ok_or(ConsoleError::NotFound(lang))
}

/// `GET /setup/personas/new`.
pub async fn new_form(State(state): State<ConsoleState>, signed: Signed) -> PageResult {
    signed.require_admin()?;
    render(&view(&signed, &state, String::new(), 0, Fields::fresh(), String::new()))
}

/// `GET /setup/personas/{id}`.
pub async fn edit_form(State(state): State<ConsoleState>, signed: Signed, Path(id): Path<String>) -> PageResult {
    signed.require_admin()?;
    let persona = existing(&state, &signed, &id).await?;
    render(&view(&signed, &state, id, persona.version, Fields::of(&persona), String::new()))
}

/// The posted form: repeated `allowed_tools` checkboxes, one-per-line lists.
fn read_form(body: &[u8]) -> (String, Fields) {
    let mut csrf = String::new();
    let mut fields = Fields::default();
    for (key, value) in form_urlencoded::parse(body) {
        let value = value.into_owned();
        match key.as_ref() {
            "csrf" => csrf = value,
            "name" => fields.name = value,
            "description" => fields.description = value,
            "allowed_tools" => fields.allowed_tools.push(value),
            "resource_scopes" => fields.resource_scopes = value,
            "intent_patterns" => fields.intent_patterns = value,
            "max_ttl_seconds" => fields.max_ttl_seconds = value,
            "risk_tolerance" => fields.risk_tolerance = value,
            "trust_tier" => fields.trust_tier = value,
            "intent_threshold" => fields.intent_threshold = value,
            "on_low_intent" => fields.on_low_intent = value,
            "is_active" => fields.is_active = !value.is_empty(),
            _ => {}
        }
    }
    (csrf, fields)
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

/// The API's request body from the form, or the first field that is not even a number.
fn body_of(fields: &Fields) -> Result<PersonaBody, ApiError> {
    let ttl = fields.max_ttl_seconds.trim();
    let max_ttl_seconds = ttl.parse::<u32>().map_err(|_| {
        ApiError::invalid("max_ttl_seconds", format!("max_ttl_seconds must be a whole number of seconds, not {ttl:?}"))
    })?;
    let threshold = fields.intent_threshold.trim();
    let intent_threshold = threshold.parse::<f64>().map_err(|_| {
        ApiError::invalid(
            "intent_threshold",
            format!("intent_threshold must be a number from 0 to 1, not {threshold:?}"),
        )
    })?;
    Ok(PersonaBody {
        name: fields.name.trim().to_owned(),
        description: fields.description.trim().to_owned(),
        allowed_tools: fields.allowed_tools.clone(),
        resource_scopes: lines(&fields.resource_scopes),
        intent_patterns: lines(&fields.intent_patterns),
        max_ttl_seconds,
        risk_tolerance: fields.risk_tolerance.trim().to_owned(),
        trust_tier: fields.trust_tier.trim().to_owned(),
        intent_threshold,
        on_low_intent: fields.on_low_intent.trim().to_owned(),
        is_active: fields.is_active,
    })
}

/// What went wrong, said on the form: the API's message (naming the field) in either language.
fn refused(lang: Lang, error: &ApiError) -> String {
    format!("{}: {}", lang.catalog().get("personas.not_saved"), error.message)
}

/// `POST /setup/personas` (new) and `POST /setup/personas/{id}` (change).
async fn save(state: ConsoleState, signed: Signed, headers: HeaderMap, id: Option<String>, body: Bytes) -> PageResult {
    let (csrf, fields) = read_form(&body);
    signed.check_csrf(&headers, &csrf)?;
    signed.require_admin()?;
    let lang = signed.lang;
    let principal = &signed.user.principal;
    let previous = match &id {
        Some(id) => Some(existing(&state, &signed, id).await?),
        None => None,
    };
    let version = previous.as_ref().map_or(0, |p| p.version);
    let shown_id = id.clone().unwrap_or_default();
    let tools = state
        .runtime
        .tool_list_for(&signed.user.principal.tenant)
        .map(|t| t.into_iter().map(|(d, _)| d.name).collect::<Vec<_>>());
    let tools = tools.unwrap_or_default();
    let checked = body_of(&fields).and_then(|body| {
        let persona_id = previous.as_ref().map_or_else(PersonaId::generate, |p| p.id.clone());
        persona_contract(principal, persona_id, body, &tools)
    });
    let mut persona = match checked {
        Ok(persona) => persona,
        Err(error) => {
            let page = render(&view(&signed, &state, shown_id, version, fields, refused(lang, &error)))?;
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
    };
    let saved = match previous {
        Some(previous) => {
            persona.created_at = previous.created_at;
            state.runtime.update_persona(&persona).await.map(|v| v.is_some())
        }
        None => state.runtime.add_persona(&persona).await.map(|()| true),
    };
    match saved {
        Ok(true) => Ok(Redirect::to("/setup").into_response()),
        Ok(false) => Err(ConsoleError::NotFound(lang)),
        Err(error) => {
            let error = ApiError::from(error);
            if error.status.is_client_error() {
                // A name another persona has: said on the form, the values kept.
                let page = render(&view(&signed, &state, shown_id, version, fields, refused(lang, &error)))?;
                Ok((error.status, page).into_response())
            } else {
                Err(ConsoleError::Api(lang, error))
            }
        }
    }
}

pub async fn create(State(state): State<ConsoleState>, signed: Signed, headers: HeaderMap, body: Bytes) -> PageResult {
    save(state, signed, headers, None, body).await
}

pub async fn update(
    State(state): State<ConsoleState>,
    signed: Signed,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> PageResult {
    save(state, signed, headers, Some(id), body).await
}

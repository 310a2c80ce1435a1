//! The Settings page: every setting of the installation with the value in force (secrets
//! masked), where it comes from and when a change applies; operator admins change or reset
//! a value here through the same runtime call as `PUT /v1/settings`, so each change is checked
//! against the whole configuration, sealed in the ledger and in force on every server without a
//! restart. Settings pinned by the file, a variable or a flag are shown with what pins them.

use askama::Template;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect};
use gateway::ApiError;
use runtime::settings::{Actor, Applies, SettingView, ValueSource};
use serde::Deserialize;

use crate::extract::{Form, Query};
use crate::pages::{ConsoleError, Page, PageResult, api, render};
use crate::session::Signed;
use crate::state::ConsoleState;

pub struct SettingRow {
    pub key: String,
    pub group: String,
    pub doc: String,
    pub kind: String,
    pub choices: Vec<String>,
    pub value: String,
    pub default: String,
    pub source: String,
    pub pinned_by: String,
    pub secret: bool,
    pub stored: bool,
    /// `live`, `restart` or `bootstrap`.
    pub applies: &'static str,
    /// Whether the database may set it (not pinned, not read before the database opens).
    pub editable: bool,
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsView {
    page: Page,
    rows: Vec<SettingRow>,
    done: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SettingsQuery {
    done: String,
}

/// Only admins of the operator tenant: settings and plugins are the installation's.
pub(crate) fn require_operator(signed: &Signed) -> Result<(), ConsoleError> {
    signed.require_admin()?;
    if signed.user.principal.tenant.as_str() != runtime::DEMO_TENANT {
        return Err(ConsoleError::Api(
            signed.lang,
            ApiError::forbidden(format!(
                "this is the installation's: only admins of the operator tenant ({}) manage it",
                runtime::DEMO_TENANT
            )),
        ));
    }
    Ok(())
}

fn row(view: SettingView) -> SettingRow {
    let source = match view.source {
        ValueSource::Flag => "flag",
        ValueSource::Env => "env",
        ValueSource::File => "file",
        ValueSource::Database => "database",
        ValueSource::Default => "default",
        ValueSource::Unset => "unset",
    };
    let applies = match view.applies {
        Applies::Live => "live",
        Applies::Restart => "restart",
        Applies::Bootstrap => "bootstrap",
    };
    SettingRow {
        key: view.key.to_owned(),
        group: view.key.split('.').next().unwrap_or_default().to_owned(),
        doc: view.doc.to_owned(),
        kind: view.kind.to_owned(),
        choices: view.choices.iter().map(|c| (*c).to_owned()).collect(),
        value: view.value.unwrap_or_default(),
        default: view.default.unwrap_or_default().to_owned(),
        source: source.to_owned(),
        pinned_by: view.pinned_by.unwrap_or_default(),
        secret: view.secret,
        stored: view.stored,
        applies,
        editable: view.applies != Applies::Bootstrap
            && !matches!(view.source, ValueSource::Flag | ValueSource::Env | ValueSource::File),
    }
}

pub async fn settings(
    State(state): State<ConsoleState>,
    signed: Signed,
    Query(query): Query<SettingsQuery>,
) -> PageResult {
    require_operator(&signed)?;
    let lang = signed.lang;
    let views = state.runtime.settings_view().await.map_err(api(lang))?;
    let done = match query.done.as_str() {
        key @ ("saved" | "reset") => lang.catalog().get(&format!("settings.done_{key}")).to_owned(),
        _ => String::new(),
    };
    render(&SettingsView { page: Page::new(&signed, "settings"), rows: views.into_iter().map(row).collect(), done })
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ChangeForm {
    csrf: String,
    key: String,
    value: String,
    /// `set` or `reset`.
    action: String,
}

/// Sets or resets one setting (operator admins).
pub async fn change(
    State(state): State<ConsoleState>,
    signed: Signed,
    headers: HeaderMap,
    Form(form): Form<ChangeForm>,
) -> PageResult {
    signed.check_csrf(&headers, &form.csrf)?;
    require_operator(&signed)?;
    let lang = signed.lang;
    let (value, done) = match form.action.as_str() {
        "set" => (Some(serde_json::Value::String(form.value)), "saved"),
        "reset" => (None, "reset"),
        _ => return Err(ConsoleError::Api(lang, ApiError::invalid("action", "action must be set or reset"))),
    };
    let principal = &signed.user.principal;
    let actor = Actor { tenant: principal.tenant.clone(), by: principal.subject() };
    state.runtime.change_settings(&actor, &[(form.key, value)]).await.map_err(api(lang))?;
    Ok(Redirect::to(&format!("/settings?done={done}")).into_response())
}

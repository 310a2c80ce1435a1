//! Admin pages: API keys (created with the secret shown once, revoked) and the people who can
//! sign in (created by admins).

use askama::Template;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect};
use domain::tenant::{Role, UserLevel};
use gateway::ApiError;
use runtime::web_users::NewWebUser;
use serde::Deserialize;

use crate::extract::{Form, Path};
use crate::i18n::Lang;
use crate::pages::{ConsoleError, CsrfForm, Page, PageResult, api, render, time, visible};
use crate::session::Signed;
use crate::state::ConsoleState;

pub struct KeyRow {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub level: u8,
    pub role: String,
    pub created: String,
    pub last_used: String,
    pub active: bool,
}

#[derive(Template)]
#[template(path = "keys.html")]
struct KeysView {
    page: Page,
    rows: Vec<KeyRow>,
    secret: String,
    levels: Vec<u8>,
}

async fn keys_view(state: &ConsoleState, signed: &Signed, secret: String) -> Result<KeysView, ConsoleError> {
    let lang = signed.lang;
    let keys = state.runtime.api_keys(&signed.user.principal.tenant).await.map_err(api(lang))?;
    let never = lang.catalog().get("keys.never").to_owned();
    let rows = keys
        .into_iter()
        .rev()
        .map(|k| KeyRow {
            id: k.id.to_string(),
            name: visible(&k.name),
            prefix: k.display_prefix.clone(),
            level: k.access_level.get(),
            role: k.role.as_str().to_owned(),
            created: time(k.created_at),
            last_used: k.last_used_at.map_or_else(|| never.clone(), time),
            active: k.revoked_at.is_none(),
        })
        .collect();
    let levels = (0..=signed.user.principal.level.get()).collect();
    Ok(KeysView { page: Page::new(signed, "keys"), rows, secret, levels })
}

pub async fn keys(State(state): State<ConsoleState>, signed: Signed) -> PageResult {
    signed.require_admin()?;
    render(&keys_view(&state, &signed, String::new()).await?)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct KeyForm {
    csrf: String,
    name: String,
    level: String,
    role: String,
}

fn level_of(lang: Lang, level: &str) -> Result<UserLevel, ConsoleError> {
    let invalid = |m: String| ConsoleError::Api(lang, ApiError::invalid("level", m));
    let n: u8 =
        level.trim().parse().map_err(|_| invalid(format!("level must be a number from 0 to 5, not {level:?}")))?;
    UserLevel::new(n).map_err(|e| invalid(e.to_string()))
}

fn role_of(lang: Lang, role: &str) -> Result<Role, ConsoleError> {
    Role::parse(role).ok_or_else(|| ConsoleError::Api(lang, ApiError::invalid("role", "role must be member or admin")))
}

pub async fn create_key(
    State(state): State<ConsoleState>,
    signed: Signed,
    headers: HeaderMap,
    Form(form): Form<KeyForm>,
) -> PageResult {
    signed.check_csrf(&headers, &form.csrf)?;
    signed.require_admin()?;
    let lang = signed.lang;
    let level = level_of(lang, &form.level)?;
    let role = role_of(lang, &form.role)?;
    let created =
        state.runtime.create_api_key_as(&signed.user.principal, &form.name, level, role).await.map_err(api(lang))?;
    // The secret is shown in this response only; it is never stored or shown again.
    render(&keys_view(&state, &signed, created.secret).await?)
}

pub async fn revoke_key(
    State(state): State<ConsoleState>,
    signed: Signed,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> PageResult {
    signed.check_csrf(&headers, &form.csrf)?;
    signed.require_admin()?;
    state.runtime.revoke_api_key_as(&signed.user.principal, &id).await.map_err(api(signed.lang))?;
    Ok(Redirect::to("/keys").into_response())
}

pub struct UserRow {
    pub email: String,
    pub name: String,
    pub role: String,
    pub level: u8,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersView {
    page: Page,
    rows: Vec<UserRow>,
    levels: Vec<u8>,
    created: bool,
}

async fn users_view(state: &ConsoleState, signed: &Signed, created: bool) -> Result<UsersView, ConsoleError> {
    let users = state.runtime.web_users_as(&signed.user.principal).await.map_err(api(signed.lang))?;
    let rows = users
        .into_iter()
        .map(|u| UserRow {
            email: u.email,
            name: visible(&u.user.name),
            role: u.user.role.as_str().to_owned(),
            level: u.user.level.get(),
        })
        .collect();
    let levels = (0..=signed.user.principal.level.get()).collect();
    Ok(UsersView { page: Page::new(signed, "users"), rows, levels, created })
}

pub async fn users(State(state): State<ConsoleState>, signed: Signed) -> PageResult {
    signed.require_admin()?;
    render(&users_view(&state, &signed, false).await?)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct UserForm {
    csrf: String,
    email: String,
    name: String,
    role: String,
    level: String,
    password: String,
}

pub async fn create_user(
    State(state): State<ConsoleState>,
    signed: Signed,
    headers: HeaderMap,
    Form(form): Form<UserForm>,
) -> PageResult {
    signed.check_csrf(&headers, &form.csrf)?;
    signed.require_admin()?;
    let lang = signed.lang;
    let new = NewWebUser {
        tenant: signed.user.principal.tenant.clone(),
        email: form.email,
        name: form.name,
        role: role_of(lang, &form.role)?,
        level: level_of(lang, &form.level)?,
        password: form.password,
    };
    state.runtime.create_web_user_as(&signed.user.principal, new).await.map_err(api(lang))?;
    render(&users_view(&state, &signed, true).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_and_control_characters_are_shown_escaped() {
        assert_eq!(visible("rm -rf /\u{202E}txt.exe"), "rm -rf /\\u{202e}txt.exe");
        assert_eq!(visible("a\u{0007}b\u{200B}c\nd"), "a\\u{0007}b\\u{200b}c\nd");
        assert_eq!(visible("plain <b>"), "plain <b>", "HTML escaping is the template's job");
    }
}

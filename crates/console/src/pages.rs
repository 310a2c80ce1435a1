//! What every console page shares — the layout's `Page`, `ConsoleError` (runtime errors as
//! pages with the API's statuses), rendering and display helpers — and the sign-in pages (sign
//! in and out, language, theme). Each page's handler reads what its view needs from the runtime
//! as the signed-in `Principal` and renders one template; the other pages live in their own
//! modules (`overview`, `chains`, `ledger`, `approvals`, `admin`, …).

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use domain::Timestamp;
use gateway::ApiError;
use runtime::web_users::WebAuthError;
use serde::Deserialize;

use crate::assets::{AssetUrls, URLS};
use crate::extract::{Form, Query};
use crate::i18n::{Catalog, Lang};
use crate::session::{self, Signed};
use crate::state::ConsoleState;

/// What the layout of every page needs.
pub struct Page {
    pub lang: Lang,
    pub t: &'static Catalog,
    /// Who is signed in (empty on the login page).
    pub user: String,
    pub csrf: String,
    pub admin: bool,
    /// Which navigation entry is current.
    pub nav: &'static str,
    pub assets: &'static AssetUrls,
    pub langs: &'static [Lang],
    /// `light`, `dark`, or empty (follow the system).
    pub theme: &'static str,
}

impl Page {
    pub(crate) fn new(signed: &Signed, nav: &'static str) -> Page {
        Page {
            lang: signed.lang,
            t: signed.lang.catalog(),
            user: signed.user.name.clone(),
            csrf: signed.user.csrf.clone(),
            admin: signed.user.principal.is_admin(),
            nav,
            assets: &URLS,
            langs: &Lang::ALL,
            theme: signed.theme,
        }
    }

    fn anonymous(lang: Lang) -> Page {
        Page {
            lang,
            t: lang.catalog(),
            user: String::new(),
            csrf: String::new(),
            admin: false,
            nav: "",
            assets: &URLS,
            langs: &Lang::ALL,
            theme: "",
        }
    }

    pub fn tr<'a>(&'a self, key: &'a str) -> &'a str {
        self.t.get(key)
    }

    pub fn current(&self, nav: &str) -> &'static str {
        if self.nav == nav { "page" } else { "false" }
    }
}

/// Why a page could not be shown, rendered as a page with the right status.
#[derive(Debug)]
pub enum ConsoleError {
    /// A runtime error, mapped to a status exactly as the API maps it.
    Api(Lang, ApiError),
    Csrf(Lang),
    AdminsOnly(Lang),
    NotFound(Lang),
    Unavailable(Lang, String),
    Render(String),
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorView {
    page: Page,
    status: u16,
    message: String,
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let mut retry_after = None;
        let (lang, status, message) = match self {
            ConsoleError::Api(lang, error) => {
                retry_after = error.retry_after;
                (lang, error.status, error.message)
            }
            ConsoleError::Csrf(lang) => (lang, StatusCode::FORBIDDEN, lang.catalog().get("error.csrf").to_owned()),
            ConsoleError::AdminsOnly(lang) => {
                (lang, StatusCode::FORBIDDEN, lang.catalog().get("error.admins_only").to_owned())
            }
            ConsoleError::NotFound(lang) => {
                (lang, StatusCode::NOT_FOUND, lang.catalog().get("error.not_found").to_owned())
            }
            ConsoleError::Unavailable(lang, reason) => (lang, StatusCode::SERVICE_UNAVAILABLE, reason),
            ConsoleError::Render(reason) => {
                tracing::error!(%reason, "console page did not render");
                return (StatusCode::INTERNAL_SERVER_ERROR, "the page could not be rendered").into_response();
            }
        };
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), %message, "console error");
        }
        let view = ErrorView { page: Page::anonymous(lang), status: status.as_u16(), message };
        match view.render() {
            Ok(html) => {
                let mut response = (status, Html(html)).into_response();
                if let Some(seconds) = retry_after {
                    response.headers_mut().insert(header::RETRY_AFTER, seconds.into());
                }
                response
            }
            Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
        }
    }
}

pub(crate) type PageResult = Result<Response, ConsoleError>;

pub(crate) fn render(view: &impl Template) -> PageResult {
    view.render().map(|html| Html(html).into_response()).map_err(|e| ConsoleError::Render(e.to_string()))
}

/// Maps any runtime error the way the API does.
pub(crate) fn api<E: Into<ApiError>>(lang: Lang) -> impl FnOnce(E) -> ConsoleError {
    move |error| ConsoleError::Api(lang, error.into())
}

/// Text as a person should see it in a security decision: control and invisible characters
/// (zero-width, bidirectional overrides, byte-order marks) shown as `\u{…}` escapes. HTML
/// escaping happens after, in the template.
pub fn visible(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let invisible = matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}' | '\u{00AD}');
        if (c.is_control() && c != '\n') || invisible {
            out.push_str(&format!("\\u{{{:04x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

pub(crate) fn time(t: Timestamp) -> String {
    let micros = t.as_micros();
    chrono::DateTime::from_timestamp(micros.div_euclid(1_000_000), 0)
        .map_or_else(|| micros.to_string(), |d| d.format("%Y-%m-%d %H:%M:%S").to_string())
}

/// A time of day (UTC), for the live feed.
pub(crate) fn clock(t: Timestamp) -> String {
    let micros = t.as_micros();
    chrono::DateTime::from_timestamp(micros.div_euclid(1_000_000), 0)
        .map_or_else(|| micros.to_string(), |d| d.format("%H:%M:%S").to_string())
}

pub(crate) fn money(usd: f64) -> String {
    if usd != 0.0 && usd.abs() < 0.01 { format!("${usd:.4}") } else { format!("${usd:.2}") }
}

// ---------------------------------------------------------------------------------------------
// Sign-in

#[derive(Template)]
#[template(path = "login.html")]
struct LoginView {
    page: Page,
    error: String,
    notice: String,
    no_users: bool,
    email: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LoginQuery {
    done: String,
}

pub async fn login_page(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Query(query): Query<LoginQuery>,
) -> PageResult {
    let lang = session::browser_lang(&headers);
    let no_users = !state.runtime.any_web_user().await.map_err(api(lang))?;
    let notice = if query.done == "everywhere" {
        lang.catalog().get("login.signed_out_everywhere").to_owned()
    } else {
        String::new()
    };
    render(&LoginView { page: Page::anonymous(lang), error: String::new(), notice, no_users, email: String::new() })
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LoginForm {
    email: String,
    password: String,
}

pub async fn login(
    State(state): State<ConsoleState>,
    session::ClientAddress(address): session::ClientAddress,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> PageResult {
    let lang = session::browser_lang(&headers);
    if !session::same_origin(&headers) {
        return Err(ConsoleError::Csrf(lang));
    }
    match state.runtime.sign_in(&form.email, &form.password, &address).await {
        Ok(signed) => {
            // A fresh token at every sign-in: a session id planted before cannot be adopted.
            if let Some(old) = session::cookie(&headers, session::SESSION_COOKIE) {
                let _ = state.runtime.sign_out(old).await;
            }
            let mut response = Redirect::to("/").into_response();
            response.headers_mut().insert(header::SET_COOKIE, session::session_cookie(&headers, &signed.token));
            Ok(response)
        }
        Err(error @ (WebAuthError::WrongCredentials | WebAuthError::Throttled(_))) => {
            let (status, message) = match &error {
                WebAuthError::Throttled(limited) => (
                    StatusCode::TOO_MANY_REQUESTS,
                    lang.catalog().fill("login.throttled", &[("secs", &limited.retry_after_secs.to_string())]),
                ),
                _ => (StatusCode::UNAUTHORIZED, lang.catalog().get("login.wrong").to_owned()),
            };
            let view = LoginView {
                page: Page::anonymous(lang),
                error: message,
                notice: String::new(),
                no_users: false,
                email: form.email,
            };
            let mut response = render(&view)?;
            *response.status_mut() = status;
            Ok(response)
        }
        Err(error) => Err(api(lang)(error)),
    }
}

/// A form that carries nothing but the session's CSRF token (sign out, revoke, delete).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CsrfForm {
    pub(crate) csrf: String,
}

pub async fn logout(
    State(state): State<ConsoleState>,
    signed: Signed,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> PageResult {
    signed.check_csrf(&headers, &form.csrf)?;
    state.runtime.sign_out(&signed.token).await.map_err(api(signed.lang))?;
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().insert(header::SET_COOKIE, session::cleared_cookie());
    Ok(response)
}

pub async fn logout_everywhere(
    State(state): State<ConsoleState>,
    signed: Signed,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> PageResult {
    signed.check_csrf(&headers, &form.csrf)?;
    state.runtime.sign_out_everywhere(&signed.user.principal).await.map_err(api(signed.lang))?;
    let mut response = Redirect::to("/login?done=everywhere").into_response();
    response.headers_mut().insert(header::SET_COOKIE, session::cleared_cookie());
    Ok(response)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LanguageForm {
    csrf: String,
    lang: String,
}

pub async fn language(
    State(state): State<ConsoleState>,
    signed: Signed,
    headers: HeaderMap,
    Form(form): Form<LanguageForm>,
) -> PageResult {
    signed.check_csrf(&headers, &form.csrf)?;
    let chosen = Lang::parse(&form.lang).map(Lang::code);
    state.runtime.set_locale(&signed.user.principal, chosen).await.map_err(api(signed.lang))?;
    Ok(Redirect::to(&back_to(&headers)).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ThemeForm {
    csrf: String,
    theme: String,
}

/// `POST /theme`: light, dark, or the system's (`auto`), remembered by this browser.
pub async fn theme(signed: Signed, headers: HeaderMap, Form(form): Form<ThemeForm>) -> PageResult {
    signed.check_csrf(&headers, &form.csrf)?;
    let mut response = Redirect::to(&back_to(&headers)).into_response();
    response.headers_mut().append(header::SET_COOKIE, session::theme_cookie(&headers, &form.theme));
    Ok(response)
}

/// The console page the request came from (its `Referer`, same origin only), else home.
fn back_to(headers: &HeaderMap) -> String {
    headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.split_once("://").and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_owned())))
        .filter(|path| path.starts_with('/') && !path.starts_with("//"))
        .unwrap_or_else(|| "/".to_owned())
}

/// The start of a `YYYY-MM-DD` day (UTC), plus `days`.
pub(crate) fn day_start(lang: Lang, field: &str, date: &str, days: i64) -> Result<Option<Timestamp>, ConsoleError> {
    let date = date.trim();
    if date.is_empty() {
        return Ok(None);
    }
    let day = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|_| {
        ConsoleError::Api(lang, ApiError::invalid(field, format!("{field} must be a date like 2026-12-31")))
    })?;
    let micros = day.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp_micros()).unwrap_or_default();
    Ok(Some(Timestamp::from_micros(micros + days * 86_400_000_000)))
}

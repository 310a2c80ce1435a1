//! The console's pages: each handler reads what its view needs from the runtime, as the
//! signed-in `Principal`, and renders one template. State-changing forms carry the session's
//! CSRF token; admin pages answer members with 403.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use domain::agent::{ApprovalStatus, ChainStatus, GateVerdict};
use domain::ledger::EntryKind;
use domain::ports::RecordFilter;
use domain::tenant::{Role, UserLevel};
use domain::{ChainId, Timestamp};
use gateway::ApiError;
use runtime::web_users::{NewWebUser, WebAuthError};
use serde::Deserialize;

use crate::assets::{AssetUrls, URLS};
use crate::extract::{Form, Path, Query};
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

// ---------------------------------------------------------------------------------------------
// Overview

pub struct Card {
    pub label: &'static str,
    pub value: String,
    pub note: String,
}

pub struct Bar {
    pub label: String,
    pub percent: u32,
    pub value: String,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewView {
    page: Page,
    cards: Vec<Card>,
    budget_percent: u32,
    budget_state: String,
    cost_days: Vec<Bar>,
    call_days: Vec<Bar>,
    run_days: Vec<Bar>,
    /// Per day: calls the gates passed (sealed), and calls they refused.
    verdict_days: (Vec<Bar>, Vec<Bar>),
    breakdowns: Vec<Breakdown>,
    providers: Vec<ProviderRow>,
}

/// A model provider's breaker, as this server sees it.
pub struct ProviderRow {
    pub name: String,
    /// `closed`, `open`, `half_open` or `unguarded` (also the badge's class).
    pub state: &'static str,
    pub detail: String,
    pub serves: String,
}

impl ProviderRow {
    pub fn state_key(&self) -> &'static str {
        match self.state {
            "closed" => "overview.closed",
            "open" => "overview.open",
            "half_open" => "overview.half_open",
            _ => "overview.unguarded",
        }
    }
}

fn provider_rows(runtime: &runtime::Runtime, t: &Catalog) -> Vec<ProviderRow> {
    use runtime::agent::BreakerState;
    runtime
        .provider_health()
        .into_iter()
        .map(|p| ProviderRow {
            detail: match p.state {
                BreakerState::Closed { consecutive_failures: 0 } | BreakerState::Unguarded => String::new(),
                BreakerState::Closed { consecutive_failures } => {
                    t.fill("overview.failures", &[("n", &consecutive_failures.to_string())])
                }
                BreakerState::Open { retry_in } => {
                    t.fill("overview.retry_in", &[("s", &retry_in.as_secs().to_string())])
                }
                BreakerState::HalfOpen => t.get("overview.probing").to_owned(),
            },
            state: p.state.as_str(),
            name: p.name,
            serves: p.serves.join(", "),
        })
        .collect()
}

/// Spend by one dimension (model, provider, key), largest first.
pub struct Breakdown {
    pub key: &'static str,
    pub bars: Vec<Bar>,
}

/// Bars scaled to the largest value.
fn bars(items: Vec<(String, f64, String)>) -> Vec<Bar> {
    let max = items.iter().map(|(_, v, _)| *v).fold(0.0_f64, f64::max);
    items
        .into_iter()
        .map(|(label, v, value)| {
            let percent = if max > 0.0 { ((v / max) * 100.0).round().clamp(0.0, 100.0) as u32 } else { 0 };
            Bar { label, percent, value }
        })
        .collect()
}

pub async fn overview(State(state): State<ConsoleState>, signed: Signed) -> PageResult {
    let lang = signed.lang;
    let t = lang.catalog();
    let tenant = &signed.user.principal.tenant;
    let runtime = &state.runtime;
    let now = Timestamp::now();
    const DAY: i64 = 86_400_000_000;
    let since = Timestamp::from_micros(now.as_micros() - 29 * DAY - now.as_micros().rem_euclid(DAY));
    let (counts, budget, usage, activity) = tokio::join!(
        runtime.overview(tenant),
        runtime.budgets().status(tenant),
        runtime.usage(tenant, since, Timestamp::from_micros(now.as_micros() + 1)),
        runtime.activity(tenant, since),
    );
    let counts = counts.map_err(api(lang))?;
    let activity = activity.map_err(api(lang))?;
    let budget = budget.map_err(api(lang))?;
    let usage = usage.map_err(api(lang))?;
    let cards = vec![
        Card { label: "overview.runs_today", value: counts.runs_today.to_string(), note: String::new() },
        Card { label: "overview.actions_today", value: counts.actions_today.to_string(), note: String::new() },
        Card { label: "overview.blocked_today", value: counts.blocked_today.to_string(), note: String::new() },
        Card { label: "overview.approvals_waiting", value: counts.approvals_waiting.to_string(), note: String::new() },
        Card {
            label: "overview.spend_month",
            value: money(counts.spend_month_usd.max(budget.spent_usd)),
            note: t.fill("overview.of_budget", &[("limit", &money(budget.limit_usd))]),
        },
        Card { label: "overview.tokens_month", value: counts.tokens_month.to_string(), note: String::new() },
    ];
    let first_day = since.as_micros().div_euclid(DAY);
    let mut cost = vec![0.0_f64; 30];
    let mut calls = vec![0_u64; 30];
    let (mut runs, mut actions, mut refusals) = (vec![0_u64; 30], vec![0_u64; 30], vec![0_u64; 30]);
    for day in &activity {
        if let Ok(i) = usize::try_from(day.day - first_day)
            && i < 30
        {
            runs[i] = day.runs;
            actions[i] = day.actions;
            refusals[i] = day.refusals;
        }
    }
    let mut model: std::collections::BTreeMap<String, f64> = Default::default();
    let mut provider: std::collections::BTreeMap<String, f64> = Default::default();
    let mut key: std::collections::BTreeMap<String, f64> = Default::default();
    for row in &usage {
        if let Ok(i) = usize::try_from(row.day - first_day)
            && i < 30
        {
            cost[i] += row.cost_usd;
            calls[i] += row.calls;
        }
        *model.entry(row.model.clone()).or_default() += row.cost_usd;
        *provider.entry(row.provider.clone().unwrap_or_else(|| "-".into())).or_default() += row.cost_usd;
        *key.entry(row.api_key_id.as_ref().map_or_else(|| "-".into(), ToString::to_string)).or_default() +=
            row.cost_usd;
    }
    let day_label = |i: usize| {
        let day = first_day + i64::try_from(i).unwrap_or_default();
        chrono::DateTime::from_timestamp(day * 86_400, 0).map_or_else(String::new, |d| d.format("%Y-%m-%d").to_string())
    };
    let ranked = |map: std::collections::BTreeMap<String, f64>| {
        let mut items: Vec<_> = map.into_iter().collect();
        items.sort_by(|a, b| b.1.total_cmp(&a.1));
        items.truncate(10);
        bars(items.into_iter().map(|(name, v)| (name, v, money(v))).collect())
    };
    let view = OverviewView {
        page: Page::new(&signed, "overview"),
        cards,
        budget_percent: (budget.fraction * 100.0).round().clamp(0.0, 100.0) as u32,
        budget_state: format!("{:?}", budget.state).to_lowercase(),
        cost_days: bars(cost.iter().enumerate().map(|(i, c)| (day_label(i), *c, money(*c))).collect()),
        call_days: bars(calls.iter().enumerate().map(|(i, c)| (day_label(i), *c as f64, c.to_string())).collect()),
        run_days: bars(runs.iter().enumerate().map(|(i, c)| (day_label(i), *c as f64, c.to_string())).collect()),
        // Passed and refused on one scale, so their heights compare.
        verdict_days: {
            let most = actions.iter().chain(&refusals).copied().max().unwrap_or(0).max(1) as f64;
            let scaled = |counts: &[u64]| -> Vec<Bar> {
                counts
                    .iter()
                    .enumerate()
                    .map(|(i, c)| Bar {
                        label: day_label(i),
                        percent: ((*c as f64 / most) * 100.0).round() as u32,
                        value: c.to_string(),
                    })
                    .collect()
            };
            (scaled(&actions), scaled(&refusals))
        },
        breakdowns: vec![
            Breakdown { key: "overview.by_model", bars: ranked(model) },
            Breakdown { key: "overview.by_provider", bars: ranked(provider) },
            Breakdown { key: "overview.by_key", bars: ranked(key) },
        ],
        providers: provider_rows(runtime, t),
    };
    render(&view)
}

// ---------------------------------------------------------------------------------------------
// Chains

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

/// The start of a `YYYY-MM-DD` day (UTC), plus `days`.
fn day_start(lang: Lang, field: &str, date: &str, days: i64) -> Result<Option<Timestamp>, ConsoleError> {
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

// ---------------------------------------------------------------------------------------------
// Ledger

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

// ---------------------------------------------------------------------------------------------
// Approvals

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

// ---------------------------------------------------------------------------------------------
// Keys and users

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

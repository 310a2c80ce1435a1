//! The web console: server-rendered pages over the runtime, for people who would rather look
//! than curl. [`router`] is merged with the API's router by the binary, so one `nexus serve`
//! serves both at the same address.
//!
//! - `session`: the session cookie, CSRF checks and security headers;
//! - `pages`: the handlers and their views (each page is one askama template under
//!   `templates/`, compiled and checked with the crate);
//! - `i18n`: English and Italian texts; `assets`: the embedded static files.
//!
//! **Architecture Invariant:** like every front-end, the console calls the runtime and never the
//! store; a signed-in person is the runtime's `Principal`, so the console checks nothing the
//! API does not, and maps runtime errors with the gateway's `ApiError`.

mod admin;
mod approvals;
mod assets;
mod chains;
mod chat;
mod extract;
pub mod i18n;
mod knowledge;
mod ledger;
mod live;
mod logs;
mod overview;
mod pages;
mod personas;
mod plugins;
pub mod proxies;
mod session;
mod settings;
mod setup;
mod state;
mod tasks;
mod usage;

use std::sync::Arc;

use axum::Router;
use axum::middleware;
use axum::routing::{get, post};
use runtime::Runtime;
use tower_http::compression::CompressionLayer;

pub use state::{ConsoleSettings, ConsoleState};

/// The console's routes: `/`, `/login`, `/execute`, `/chains`, `/ledger`, `/approvals`, `/keys`, `/users`,
/// `/chat`, `/knowledge`, `/logs`, `/usage`, `/setup`, `/live/events`
/// and `/static/…`. It has no fallback: the binary merges it with the API's router, whose
/// fallback answers unknown paths.
pub fn router(runtime: Arc<Runtime>) -> Router {
    router_with(runtime, ConsoleSettings::default())
}

/// As [`router`], deployed as `settings` say (e.g. behind trusted proxies).
pub fn router_with(runtime: Arc<Runtime>, settings: ConsoleSettings) -> Router {
    let state = ConsoleState { runtime, settings: Arc::new(settings) };
    Router::new()
        .route("/", get(overview::overview))
        .route("/login", get(pages::login_page).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/logout/everywhere", post(pages::logout_everywhere))
        .route("/language", post(pages::language))
        .route("/theme", post(pages::theme))
        .route("/chat", get(chat::chats).post(chat::start))
        .route("/chat/link-code", post(chat::link_code))
        .route("/chat/{id}", get(chat::conversation).post(chat::say))
        .route("/chat/{id}/reply", get(chat::reply))
        .route("/chat/{id}/export", get(chat::export))
        .route("/chat/{id}/delete", post(chat::delete))
        .route("/chains", get(chains::chains))
        .route("/chains/{id}", get(chains::chain))
        .route("/chains/{id}/verify", get(chains::verify_chain))
        .route("/chains/{id}/events", get(live::events))
        .route("/live/events", get(live::feed_events))
        .route("/execute", get(live::execute_page).post(live::execute))
        .route("/ledger", get(ledger::ledger))
        .route("/ledger/verify", get(ledger::verify_ledger))
        .route("/ledger/consistency", post(ledger::check_kept_checkpoint))
        .route("/ledger/entries/{index}", get(ledger::entry))
        .route("/ledger/entries/{index}/bundle", get(ledger::bundle))
        .route("/approvals", get(approvals::approvals))
        .route("/approvals/{id}/decide", post(approvals::decide))
        .route("/keys", get(admin::keys).post(admin::create_key))
        .route("/keys/{id}/revoke", post(admin::revoke_key))
        .route("/users", get(admin::users).post(admin::create_user))
        .route("/knowledge", get(knowledge::knowledge))
        .route(
            "/knowledge/upload",
            post(knowledge::upload).layer(axum::extract::DefaultBodyLimit::max(knowledge::UPLOAD_LIMIT)),
        )
        .route("/knowledge/documents/{id}/delete", post(knowledge::delete))
        .route("/logs", get(logs::logs))
        .route("/logs/events", get(logs::events))
        .route("/logs.txt", get(logs::download))
        .route("/usage", get(usage::usage))
        .route("/tasks", get(tasks::tasks))
        .route("/tasks/jobs", post(tasks::enqueue))
        .route("/tasks/jobs/{id}/{action}", post(tasks::job_action))
        .route("/tasks/schedules", post(tasks::add_schedule))
        .route("/tasks/schedules/{id}/remove", post(tasks::remove_schedule))
        .route("/tasks/equipment/{name}/switch", post(tasks::switch_equipment))
        .route("/settings", get(settings::settings).post(settings::change))
        .route("/plugins", get(plugins::plugins).post(plugins::switch))
        .route("/setup", get(setup::setup))
        .route("/setup/personas", post(personas::create))
        .route("/setup/personas/new", get(personas::new_form))
        .route("/setup/personas/{id}", get(personas::edit_form).post(personas::update))
        .route("/usage.csv", get(usage::usage_csv))
        .route("/static/{file}", get(assets::serve))
        .with_state(state)
        .layer(middleware::from_fn(session::security_headers))
        .layer(CompressionLayer::new())
}

//! The HTTP front-end. [`router`] builds the whole application from an [`AppState`] (the
//! runtime plus HTTP settings) so tests can drive it and `nexus serve` can bind it to a socket.
//!
//! - `native/`: the native `/v1` API (runs and their SSE events, ledger, personas,
//!   tools, approvals, knowledge, usage, tokens);
//! - `compat/`: the OpenAI- and Anthropic-compatible model gateway;
//! - `auth`, `json`, `extract`, `error`: credentials and limits, request bodies and query
//!   strings, path parameters, the native error type (the compat surfaces have their own); `docs`, `observe`, `recorder`: OpenAPI, the docs page and metrics.
//!
//! **Architecture Invariant:** handlers extract, call the runtime and map the result; this
//! crate never names a database or a provider.

mod auth;
mod compat;
mod docs;
mod error;
mod extract;
mod health;
mod json;
mod native;
mod observe;
mod recorder;
mod routes;
mod schema;
mod state;

pub use error::ApiError;
pub use native::admin::{PersonaBody, persona_contract};
pub use native::knowledge::{access_of, namespace_of};
pub use recorder::{RecorderError, install_recorder};
pub use routes::{app, router};
pub use state::{AppState, HttpSettings, MetricsRender};

/// The OpenAPI document, as served at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    <docs::ApiDoc as utoipa::OpenApi>::openapi()
}

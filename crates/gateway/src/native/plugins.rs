//! Plugins over HTTP: `GET /v1/plugins` lists them (state, tools, approved definitions, changes
//! awaiting review), `POST /v1/plugins` adds an MCP server reached over streamable HTTP,
//! `POST /v1/plugins/{name}/enable` switches one on (for an MCP server: approves the tool
//! definitions it shows now), `/disable` switches it off, `DELETE` forgets an MCP server.
//!
//! A server run as a local program (stdio) executes a command on the host, so it is added only
//! from the host itself (`nexus plugins add --command`); once added it may be enabled here.
//! Plugins are the installation's: only admins of the operator tenant manage them.

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use domain::plugin::McpServerSpec;
use runtime::auth::Principal;
use runtime::plugins::{PluginError, PluginView};
use runtime::settings::Actor;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::settings::require_operator;
use crate::error::ApiError;
use crate::extract::Path;
use crate::json::{RawBody, parse};
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct NamePath {
    /// The plugin's name.
    name: String,
}

/// An MCP server to add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddPluginRequest {
    /// 1 to 32 of a-z, 0-9, `-` and `_`, starting with a letter; its tools are named
    /// `<name>__<tool>`.
    pub name: String,
    /// How to reach it: `{"transport": "http", "url": "https://…/mcp", "headers": {…}}`
    /// (header values are sealed and masked).
    #[schema(value_type = Object)]
    pub server: McpServerSpec,
}

/// Every plugin.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginList {
    #[schema(value_type = Vec<Object>)]
    pub plugins: Vec<PluginView>,
}

impl From<PluginError> for ApiError {
    fn from(error: PluginError) -> Self {
        match &error {
            PluginError::NotConfigured => ApiError::new(StatusCode::CONFLICT, "plugins_unavailable", error.to_string()),
            PluginError::Unknown(_) => ApiError::not_found(error.to_string()),
            PluginError::Invalid { field, .. } => ApiError::invalid(field, error.to_string()),
            PluginError::Exists(_) => ApiError::new(StatusCode::CONFLICT, "conflict", error.to_string()),
            PluginError::Unreachable { .. } => {
                ApiError::new(StatusCode::CONFLICT, "plugin_unreachable", error.to_string())
            }
            PluginError::Busy(_) => ApiError::new(StatusCode::CONFLICT, "busy", error.to_string()),
            PluginError::Secret(_) | PluginError::Store(_) | PluginError::Ledger(_) => {
                ApiError::internal(error.to_string())
            }
        }
    }
}

fn actor(principal: &Principal) -> Actor {
    Actor { tenant: principal.tenant.clone(), by: principal.subject() }
}

#[utoipa::path(get, path = "/v1/plugins", tag = "plugins",
    responses(
        (status = 200, description = "every plugin: kind, state and why, enabled, settings, tools, the approved tool definitions and any changed since", body = PluginList),
        (status = 403, description = "not an admin of the operator tenant"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn list_plugins(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<PluginList>, ApiError> {
    require_operator(&principal, "reading plugins")?;
    Ok(Json(PluginList { plugins: state.runtime.plugins_view().await? }))
}

#[utoipa::path(get, path = "/v1/plugins/{name}", tag = "plugins", params(NamePath),
    responses(
        (status = 200, description = "the plugin", body = Object),
        (status = 403, description = "not an admin of the operator tenant"),
        (status = 404, description = "no such plugin"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn get_plugin(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(path): Path<NamePath>,
) -> Result<Json<PluginView>, ApiError> {
    require_operator(&principal, "reading plugins")?;
    Ok(Json(state.runtime.plugin_view(&path.name).await?))
}

#[utoipa::path(post, path = "/v1/plugins", tag = "plugins",
    request_body = AddPluginRequest,
    responses(
        (status = 201, description = "added, configured and not enabled", body = Object),
        (status = 403, description = "not an admin of the operator tenant, or a stdio server (add those on the host)"),
        (status = 409, description = "a plugin of that name exists"),
        (status = 422, description = "a bad name or server; `field` names it"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn add_plugin(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    RawBody(bytes): RawBody,
) -> Result<(StatusCode, Json<PluginView>), ApiError> {
    require_operator(&principal, "adding plugins")?;
    let body: AddPluginRequest = parse(&bytes)?;
    if matches!(body.server, McpServerSpec::Stdio { .. }) {
        return Err(ApiError::forbidden(
            "a stdio MCP server runs a program on the host: add it there with `nexus plugins add NAME --command …`",
        )
        .with_param("server.transport"));
    }
    let view = state.runtime.add_mcp_plugin(&actor(&principal), &body.name, body.server).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[utoipa::path(post, path = "/v1/plugins/{name}/enable", tag = "plugins", params(NamePath),
    responses(
        (status = 200, description = "enabled; for an MCP server, the tool definitions it shows now are approved (pinned by hash)", body = Object),
        (status = 403, description = "not an admin of the operator tenant"),
        (status = 404, description = "no such plugin"),
        (status = 409, description = "the server could not be reached or listed (`plugin_unreachable`); nothing changed"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn enable_plugin(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(path): Path<NamePath>,
) -> Result<Json<PluginView>, ApiError> {
    require_operator(&principal, "enabling plugins")?;
    Ok(Json(state.runtime.enable_plugin(&actor(&principal), &path.name).await?))
}

#[utoipa::path(post, path = "/v1/plugins/{name}/disable", tag = "plugins", params(NamePath),
    responses(
        (status = 200, description = "disabled: its tools are withdrawn, its server stopped", body = Object),
        (status = 403, description = "not an admin of the operator tenant"),
        (status = 404, description = "no such plugin"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn disable_plugin(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(path): Path<NamePath>,
) -> Result<Json<PluginView>, ApiError> {
    require_operator(&principal, "disabling plugins")?;
    Ok(Json(state.runtime.disable_plugin(&actor(&principal), &path.name).await?))
}

#[utoipa::path(delete, path = "/v1/plugins/{name}", tag = "plugins", params(NamePath),
    responses(
        (status = 204, description = "forgotten"),
        (status = 403, description = "not an admin of the operator tenant"),
        (status = 404, description = "no such plugin"),
        (status = 422, description = "a built-in plugin (disable it instead)"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn remove_plugin(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(path): Path<NamePath>,
) -> Result<StatusCode, ApiError> {
    require_operator(&principal, "removing plugins")?;
    state.runtime.remove_plugin(&actor(&principal), &path.name).await?;
    Ok(StatusCode::NO_CONTENT)
}

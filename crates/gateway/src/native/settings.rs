//! Settings over HTTP: `GET /v1/settings` lists every setting (the value in force, secrets
//! masked, where it comes from, when a change applies), `GET /v1/settings/{key}` shows one, and
//! `PUT /v1/settings` sets or unsets several at once — all or none, checked against the whole
//! configuration first, sealed in the ledger, in force without a restart.
//!
//! Settings are the installation's, not a tenant's: only admins of the operator tenant (the
//! installation's own, `demo`) may read or change them.

use std::collections::BTreeMap;

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use runtime::auth::Principal;
use runtime::settings::{Actor, ChangeReport, SettingView, SettingsError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::auth::require_admin;
use crate::error::ApiError;
use crate::extract::Path;
use crate::json::{RawBody, parse};
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct KeyPath {
    /// The setting's name, e.g. `providers.openai.base_url`.
    key: String,
}

/// Settings to change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeSettingsRequest {
    /// New values by setting name: a string, number, boolean or list of strings; `null` unsets
    /// (the setting falls back to its default).
    #[schema(value_type = Object)]
    pub values: BTreeMap<String, Value>,
}

/// Every setting.
#[derive(Debug, Serialize, ToSchema)]
pub struct SettingsList {
    #[schema(value_type = Vec<Object>)]
    pub settings: Vec<SettingView>,
}

impl From<SettingsError> for ApiError {
    fn from(error: SettingsError) -> Self {
        match &error {
            SettingsError::NotConfigured => {
                ApiError::new(StatusCode::CONFLICT, "settings_unavailable", error.to_string())
            }
            SettingsError::Unknown { key, .. } => ApiError::invalid(key, error.to_string()),
            SettingsError::Invalid { setting, .. } => ApiError::invalid(setting, error.to_string()),
            SettingsError::Pinned { setting, .. } => {
                ApiError::new(StatusCode::CONFLICT, "setting_pinned", error.to_string()).with_param(setting)
            }
            SettingsError::Busy => ApiError::new(StatusCode::CONFLICT, "busy", error.to_string()),
            SettingsError::Secret(_) | SettingsError::Store(_) | SettingsError::Ledger(_) => {
                ApiError::internal(error.to_string())
            }
        }
    }
}

/// Only admins of the operator tenant manage the installation's settings.
pub(crate) fn require_operator(principal: &Principal, what: &str) -> Result<(), ApiError> {
    require_admin(principal, what)?;
    if principal.tenant.as_str() != runtime::DEMO_TENANT {
        return Err(ApiError::forbidden(format!(
            "{what} needs an admin of the operator tenant ({}): it is the installation's",
            runtime::DEMO_TENANT
        )));
    }
    Ok(())
}

#[utoipa::path(get, path = "/v1/settings", tag = "settings",
    responses(
        (status = 200, description = "every setting: type, default, scope, secret, when it applies, documentation, the value in force (secrets masked) and its source", body = SettingsList),
        (status = 403, description = "not an admin of the operator tenant"),
        (status = 409, description = "this server keeps no settings (no master key)"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn list_settings(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<SettingsList>, ApiError> {
    require_operator(&principal, "reading settings")?;
    Ok(Json(SettingsList { settings: state.runtime.settings_view().await? }))
}

#[utoipa::path(get, path = "/v1/settings/{key}", tag = "settings", params(KeyPath),
    responses(
        (status = 200, description = "the setting", body = Object),
        (status = 403, description = "not an admin of the operator tenant"),
        (status = 404, description = "no such setting"),
        (status = 409, description = "this server keeps no settings (no master key)"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn get_setting(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(path): Path<KeyPath>,
) -> Result<Json<SettingView>, ApiError> {
    require_operator(&principal, "reading settings")?;
    match state.runtime.setting_view(&path.key).await {
        Err(error @ SettingsError::Unknown { .. }) => Err(ApiError::not_found(error.to_string())),
        other => Ok(Json(other?)),
    }
}

#[utoipa::path(put, path = "/v1/settings", tag = "settings",
    request_body = ChangeSettingsRequest,
    responses(
        (status = 200, description = "what changed, the new revision, and whether each change is in force now or at the next start", body = Object),
        (status = 403, description = "not an admin of the operator tenant"),
        (status = 409, description = "a file, variable or flag pins the setting (`setting_pinned`), it is read before the database opens, this server keeps no settings, or other writers kept changing them"),
        (status = 422, description = "an unknown setting or a value it cannot take; `field` names it and nothing changed"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn change_settings(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    RawBody(bytes): RawBody,
) -> Result<Json<ChangeReport>, ApiError> {
    require_operator(&principal, "changing settings")?;
    let body: ChangeSettingsRequest = parse(&bytes)?;
    let changes: Vec<(String, Option<Value>)> = body
        .values
        .into_iter()
        .map(|(key, value)| {
            let value = (!value.is_null()).then_some(value);
            (key, value)
        })
        .collect();
    let actor = Actor { tenant: principal.tenant.clone(), by: principal.subject() };
    Ok(Json(state.runtime.change_settings(&actor, &changes).await?))
}

//! Equipment over HTTP: `GET /v1/equipment` lists every piece (its parameters, whether it is
//! switched on for the tenant and can run here, the schedules that run it),
//! `GET /v1/equipment/{name}` shows one, `POST /v1/equipment/{name}/run` runs it now and returns
//! its sealed result, `POST /v1/equipment/{name}/enable|disable` switch it for the tenant.
//! `POST /v1/admin/backups` runs the `backup` equipment (a backup of the whole database).
//! Listing is open to the tenant's members; running and switching need an admin.

use axum::Extension;
use axum::Json;
use axum::extract::State;
use runtime::auth::Principal;
use runtime::equipment::{EquipmentError, EquipmentInfo, EquipmentRun};
use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::auth::require_admin;
use crate::error::ApiError;
use crate::extract::Path;
use crate::json::{RawBody, parse};
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct NamePath {
    /// `health_check`, `cost_report`, `log_rotate` or `ledger_checkpoint_export`.
    name: String,
}

/// A run's parameters.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunEquipmentRequest {
    /// The equipment's declared parameters (`GET /v1/equipment/{name}` lists them), e.g.
    /// `{"days": 30}` for `cost_report`.
    #[schema(value_type = Option<Object>)]
    pub params: Option<Value>,
}

impl From<EquipmentError> for ApiError {
    fn from(error: EquipmentError) -> Self {
        match &error {
            EquipmentError::Unknown { .. } => ApiError::not_found(error.to_string()),
            EquipmentError::InvalidParam { param, .. } => {
                ApiError::invalid(&format!("params.{param}"), error.to_string())
            }
            EquipmentError::Disabled { .. } => {
                ApiError::new(axum::http::StatusCode::CONFLICT, "equipment_disabled", error.to_string())
            }
            // Not a passing outage: this server is not set up for it (a missing setting or
            // service), so retrying cannot help — a conflict with its configuration, like a
            // piece switched off.
            EquipmentError::Unavailable { .. } => {
                ApiError::new(axum::http::StatusCode::CONFLICT, "equipment_unavailable", error.to_string())
            }
            EquipmentError::Failed { .. } => ApiError::internal(error.to_string()),
            EquipmentError::Store(_) => ApiError::internal(error.to_string()),
            EquipmentError::Ledger(_) => ApiError::internal(error.to_string()),
        }
    }
}

#[utoipa::path(get, path = "/v1/equipment", tag = "equipment",
    responses((status = 200, description = "every piece of equipment with its parameters, state and schedules")),
    security(("bearer" = [])))]
pub(crate) async fn list_equipment(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Vec<EquipmentInfo>>, ApiError> {
    Ok(Json(state.runtime.equipment(&principal.tenant).await?))
}

#[utoipa::path(get, path = "/v1/equipment/{name}", tag = "equipment", params(NamePath),
    responses((status = 200, description = "the equipment"), (status = 404, description = "no such equipment")),
    security(("bearer" = [])))]
pub(crate) async fn get_equipment(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(path): Path<NamePath>,
) -> Result<Json<EquipmentInfo>, ApiError> {
    Ok(Json(state.runtime.equipment_info(&principal.tenant, &path.name).await?))
}

#[utoipa::path(post, path = "/v1/equipment/{name}/run", tag = "equipment", params(NamePath),
    request_body(content = RunEquipmentRequest, description = "optional; an empty body runs with the defaults"),
    responses(
        (status = 200, description = "the run's result, sealed in the ledger (`ledger_index`)"),
        (status = 403, description = "not an admin"),
        (status = 404, description = "no such equipment"),
        (status = 409, description = "switched off for this tenant (`equipment_disabled`), or this server is not set up to run it (`equipment_unavailable`: the reason names the missing setting)"),
        (status = 422, description = "a parameter the equipment does not take, or out of range (named in `error.field`)"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn run_equipment(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(path): Path<NamePath>,
    RawBody(bytes): RawBody,
) -> Result<Json<EquipmentRun>, ApiError> {
    require_admin(&principal, "running equipment")?;
    let body: RunEquipmentRequest =
        if bytes.iter().all(u8::is_ascii_whitespace) { RunEquipmentRequest::default() } else { parse(&bytes)? };
    let params = body.params.unwrap_or(Value::Null);
    let run = state.runtime.run_equipment(&principal.tenant, &path.name, &params, &principal.subject(), None).await?;
    Ok(Json(run))
}

/// A backup's settings.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupRequest {
    /// How many backups to keep in the server's backup directory (1 to 1000; default 7).
    #[schema(minimum = 1, maximum = 1000)]
    pub keep: Option<u32>,
}

#[utoipa::path(post, path = "/v1/admin/backups", tag = "equipment",
    request_body(content = BackupRequest, description = "optional; an empty body keeps 7"),
    responses(
        (status = 200, description = "the backup taken and verified: its manifest (`result`), sealed in the ledger (`ledger_index`)"),
        (status = 403, description = "not an admin"),
        (status = 409, description = "the backup equipment is switched off for this tenant, or this server takes no backups"),
        (status = 422, description = "`keep` out of range"),
        (status = 500, description = "the backup failed or did not verify (the reason says why; nothing is kept)"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn create_backup(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    RawBody(bytes): RawBody,
) -> Result<Json<EquipmentRun>, ApiError> {
    require_admin(&principal, "taking a backup")?;
    let body: BackupRequest =
        if bytes.iter().all(u8::is_ascii_whitespace) { BackupRequest::default() } else { parse(&bytes)? };
    let params = match body.keep {
        Some(keep) if !(1..=1000).contains(&keep) => {
            return Err(ApiError::invalid("keep", format!("{keep} is outside 1..=1000")));
        }
        Some(keep) => serde_json::json!({ "keep": keep }),
        None => Value::Null,
    };
    let run = state.runtime.run_equipment(&principal.tenant, "backup", &params, &principal.subject(), None).await?;
    Ok(Json(run))
}

#[utoipa::path(post, path = "/v1/equipment/{name}/enable", tag = "equipment", params(NamePath),
    responses((status = 200, description = "switched on"), (status = 403, description = "not an admin"),
              (status = 404, description = "no such equipment")),
    security(("bearer" = [])))]
pub(crate) async fn enable_equipment(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(path): Path<NamePath>,
) -> Result<Json<EquipmentInfo>, ApiError> {
    switch(state, principal, path.name, true).await
}

#[utoipa::path(post, path = "/v1/equipment/{name}/disable", tag = "equipment", params(NamePath),
    responses((status = 200, description = "switched off"), (status = 403, description = "not an admin"),
              (status = 404, description = "no such equipment")),
    security(("bearer" = [])))]
pub(crate) async fn disable_equipment(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(path): Path<NamePath>,
) -> Result<Json<EquipmentInfo>, ApiError> {
    switch(state, principal, path.name, false).await
}

async fn switch(
    state: AppState,
    principal: Principal,
    name: String,
    on: bool,
) -> Result<Json<EquipmentInfo>, ApiError> {
    require_admin(&principal, if on { "enabling equipment" } else { "disabling equipment" })?;
    state.runtime.set_equipment_enabled(&principal.tenant, &name, on, &principal.subject()).await?;
    Ok(Json(state.runtime.equipment_info(&principal.tenant, &name).await?))
}

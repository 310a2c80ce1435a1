//! API keys over HTTP, for admin keys: create (the secret is in this one response only), list
//! the tenant's keys (never secrets or hashes), revoke. Another tenant's key is 404. Revoking
//! the key the request is made with is allowed (that is how a key is rotated); the revocation
//! reaches every replica within a second.

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use domain::tenant::{ApiKey, Role, UserLevel};
use runtime::auth::Principal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::require_admin;
use crate::error::ApiError;
use crate::extract::Path;
use crate::json::{Body, Query};
use crate::state::AppState;

/// What a key may administer in its tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyRole {
    /// Runs tasks, calls models, reads its tenant's data.
    #[default]
    Member,
    /// Also changes personas, decides approvals, manages keys and sees every key's usage.
    Admin,
}

impl From<KeyRole> for Role {
    fn from(role: KeyRole) -> Self {
        match role {
            KeyRole::Member => Role::Member,
            KeyRole::Admin => Role::Admin,
        }
    }
}

impl From<Role> for KeyRole {
    fn from(role: Role) -> Self {
        match role {
            Role::Member => KeyRole::Member,
            Role::Admin => KeyRole::Admin,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    /// A name to tell keys apart: 1 to 100 characters, trimmed, no control characters.
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// Default `member`.
    #[serde(default)]
    #[schema(default = "member")]
    pub role: KeyRole,
    /// Access level for knowledge (0 to 5, default 0); at most the level of the key asking.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 5, default = 0)]
    pub level: u8,
}

/// A key as listed: never its secret or hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyResponse {
    pub id: String,
    pub name: String,
    /// The first characters of the secret (`nxs_ab12cd`), to tell keys apart.
    pub prefix: String,
    pub role: KeyRole,
    #[schema(minimum = 0, maximum = 5)]
    pub level: u8,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339; gathered in memory and written every few seconds, so it may lag.
    pub last_used_at: Option<String>,
    /// RFC 3339; `null` while the key is active.
    pub revoked_at: Option<String>,
    pub active: bool,
}

/// A new key with its secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKeyResponse {
    /// The secret (`nxs_…`): send it as `Authorization: Bearer …`. It is stored only as a
    /// hash; keep it now, it cannot be shown again.
    pub secret: String,
    pub key: KeyResponse,
}

fn key_response(key: ApiKey) -> KeyResponse {
    KeyResponse {
        active: key.is_active(),
        id: key.id.to_string(),
        name: key.name,
        prefix: key.display_prefix,
        role: key.role.into(),
        level: key.access_level.get(),
        created_at: key.created_at.to_rfc3339(),
        last_used_at: key.last_used_at.map(|t| t.to_rfc3339()),
        revoked_at: key.revoked_at.map(|t| t.to_rfc3339()),
    }
}

#[utoipa::path(post, path = "/v1/keys", tag = "keys", request_body = CreateKeyRequest,
    responses(
        (status = 201, body = CreatedKeyResponse, description = "the key, with its secret shown this once"),
        (status = 400, description = "malformed JSON, or a field of the wrong type (named in `error.field`)"),
        (status = 401, description = "missing, unknown or revoked credentials"),
        (status = 403, description = "not an admin key, or a level above the caller's"),
        (status = 422, description = "an unacceptable value (named in `error.field`)"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn create_key(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Body(body): Body<CreateKeyRequest>,
) -> Result<(StatusCode, Json<CreatedKeyResponse>), ApiError> {
    require_admin(&principal, "creating a key")?;
    let level = UserLevel::new(body.level).map_err(|e| ApiError::invalid("level", e.to_string()))?;
    let created = state
        .runtime
        .create_api_key_as(&principal, &body.name, level, body.role.into())
        .await
        .map_err(ApiError::from)?;
    Ok((StatusCode::CREATED, Json(CreatedKeyResponse { secret: created.secret, key: key_response(created.key) })))
}

/// Which keys a listing holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    Active,
    Revoked,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeyListQuery {
    /// Only active or only revoked keys; all when absent.
    #[param(inline)]
    state: Option<KeyState>,
}

#[utoipa::path(get, path = "/v1/keys", tag = "keys", params(KeyListQuery),
    responses(
        (status = 200, body = [KeyResponse], description = "the tenant's keys, oldest first"),
        (status = 400, description = "an unknown query parameter or state"),
        (status = 401, description = "missing, unknown or revoked credentials"),
        (status = 403, description = "not an admin key"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn list_keys(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<KeyListQuery>,
) -> Result<Json<Vec<KeyResponse>>, ApiError> {
    require_admin(&principal, "listing keys")?;
    let keys = state.runtime.api_keys(&principal.tenant).await?;
    let wanted = |key: &ApiKey| match query.state {
        None => true,
        Some(KeyState::Active) => key.is_active(),
        Some(KeyState::Revoked) => !key.is_active(),
    };
    Ok(Json(keys.into_iter().filter(wanted).map(key_response).collect()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct KeyPath {
    /// The key's id (from `GET /v1/keys`).
    id: String,
}

#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "keys", params(KeyPath),
    responses(
        (status = 200, body = KeyResponse, description = "the key, now revoked; every replica refuses it within a second"),
        (status = 400, description = "a malformed path"),
        (status = 401, description = "missing, unknown or revoked credentials"),
        (status = 403, description = "not an admin key"),
        (status = 404, description = "no such key in the caller's tenant"),
        (status = 409, description = "the key was already revoked"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn revoke_key(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(KeyPath { id }): Path<KeyPath>,
) -> Result<Json<KeyResponse>, ApiError> {
    require_admin(&principal, "revoking a key")?;
    let key = state.runtime.revoke_api_key_as(&principal, &id).await.map_err(ApiError::from)?;
    Ok(Json(key_response(key)))
}

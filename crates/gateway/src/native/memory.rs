//! Memory over HTTP: `GET /v1/memory` (search with `q`), `POST /v1/memory` (`{"content": "…"}`,
//! answering the item with its `id`; the same text again answers the existing item),
//! `PUT /v1/memory/{id}` (a new version), `DELETE /v1/memory/{id}` (a tombstone),
//! `POST /v1/memory/{id}/restore` and `GET /v1/memory/{id}/history`. A key acts for its own
//! memory (its subject, `key:<id>` or `user:<id>`); an admin may name another with `user`.
//! What the API writes is `confirmed`: the owner (or an admin) said it.

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use domain::memory::{MemoryItem, MemoryTrust, Provenance};
use runtime::auth::Principal;
use runtime::memory::{MemoryError, MemoryWrite};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::extract::Path;
use crate::json::{Body, Query};
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct IdPath {
    /// The item's id.
    id: String,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// Only items whose text contains this (case-insensitive).
    q: Option<String>,
    /// Whose memory (admins only; default: the caller's): a user id, or a subject such as
    /// `key:<id>`.
    user: Option<String>,
    /// Include deleted items (default false).
    include_deleted: Option<bool>,
    /// At most this many (1–500, default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct OwnerQuery {
    /// Whose memory (admins only; default: the caller's).
    user: Option<String>,
}

/// Something to remember.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteMemoryRequest {
    /// The text (at most 2,000 characters; whitespace is normalised).
    pub content: String,
    /// Whose memory (admins only; default: the caller's).
    #[serde(default)]
    pub user: Option<String>,
    /// Where it came from (a URL, a document), if not from the caller.
    #[serde(default)]
    pub source: Option<String>,
}

/// Which version to bring back.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreMemoryRequest {
    /// The version (default: the last before the item was deleted).
    #[serde(default)]
    pub version: Option<i64>,
    #[serde(default)]
    pub user: Option<String>,
}

/// A memory item (or one version of it).
#[derive(Debug, Serialize, ToSchema)]
pub struct MemoryResponse {
    pub id: String,
    pub version: i64,
    pub owner: String,
    pub content: String,
    /// `confirmed`, `agent` or `untrusted`.
    pub trust: String,
    pub deleted: bool,
    #[schema(value_type = Object)]
    pub provenance: Provenance,
    pub created_at: String,
    pub created_by: String,
    /// On a write: the text was already remembered, and this is that item (nothing written).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<bool>,
}

/// Items, or an item's versions.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemoryList {
    pub items: Vec<MemoryResponse>,
}

fn response(item: MemoryItem, duplicate: Option<bool>) -> MemoryResponse {
    MemoryResponse {
        id: item.id,
        version: item.version,
        owner: item.owner,
        content: item.content,
        trust: item.trust.as_str().to_owned(),
        deleted: item.deleted,
        provenance: item.provenance,
        created_at: item.created_at.to_rfc3339(),
        created_by: item.created_by,
        duplicate,
    }
}

impl From<MemoryError> for ApiError {
    fn from(error: MemoryError) -> Self {
        match &error {
            MemoryError::Invalid { field, .. } => ApiError::invalid(field, error.to_string()),
            MemoryError::NotFound(_) => ApiError::not_found(error.to_string()),
            MemoryError::Full(_) => ApiError::new(StatusCode::CONFLICT, "memory_full", error.to_string()),
            MemoryError::Outranked(_) => ApiError::forbidden(error.to_string()),
            MemoryError::Busy(_) => ApiError::new(StatusCode::CONFLICT, "busy", error.to_string()),
            MemoryError::Store(_) | MemoryError::Ledger(_) => ApiError::internal(error.to_string()),
        }
    }
}

/// Whose memory a request is about: the caller's, or (admins) the one named.
fn owner(principal: &Principal, user: Option<&str>) -> Result<String, ApiError> {
    match user.map(str::trim).filter(|u| !u.is_empty()) {
        None => Ok(principal.subject()),
        Some(user) if !principal.is_admin() => {
            Err(ApiError::forbidden(format!("only admins may act on another's memory ({user})")).with_param("user"))
        }
        Some(user) if user.starts_with("user:") || user.starts_with("key:") => Ok(user.to_owned()),
        Some(user) => Ok(format!("user:{user}")),
    }
}

/// A write through the API: the owner (or an admin) says it, so it is `confirmed`.
fn confirmed(principal: &Principal, body: WriteMemoryRequest) -> Result<MemoryWrite, ApiError> {
    Ok(MemoryWrite {
        owner: owner(principal, body.user.as_deref())?,
        content: body.content,
        trust: MemoryTrust::Confirmed,
        provenance: Provenance { source: body.source, ..Provenance::default() },
        by: principal.subject(),
    })
}

#[utoipa::path(get, path = "/v1/memory", tag = "memory", params(ListQuery),
    responses((status = 200, body = MemoryList, description = "items as they stand, newest first"),
              (status = 403, description = "`user` names another's memory and the caller is no admin")),
    security(("bearer" = [])))]
pub(crate) async fn list_memory(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(q): Query<ListQuery>,
) -> Result<Json<MemoryList>, ApiError> {
    let owner = owner(&principal, q.user.as_deref())?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid("limit", "limit must be between 1 and 500"));
    }
    let items = state
        .runtime
        .memory_search(&principal.tenant, &owner, q.q.as_deref(), q.include_deleted.unwrap_or(false), limit)
        .await?;
    Ok(Json(MemoryList { items: items.into_iter().map(|i| response(i, None)).collect() }))
}

#[utoipa::path(post, path = "/v1/memory", tag = "memory", request_body = WriteMemoryRequest,
    responses((status = 201, body = MemoryResponse, description = "remembered"),
              (status = 200, body = MemoryResponse, description = "already remembered: the existing item, `duplicate: true`"),
              (status = 409, description = "the owner's memory is full (`memory_full`); nothing was written"),
              (status = 422, description = "empty or too long; `field` names it")),
    security(("bearer" = [])))]
pub(crate) async fn write_memory(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Body(body): Body<WriteMemoryRequest>,
) -> Result<(StatusCode, Json<MemoryResponse>), ApiError> {
    let write = confirmed(&principal, body)?;
    let (item, created) = state.runtime.remember(&principal.tenant, write).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(response(item, Some(!created)))))
}

#[utoipa::path(put, path = "/v1/memory/{id}", tag = "memory", params(IdPath), request_body = WriteMemoryRequest,
    responses((status = 200, body = MemoryResponse, description = "the new version"), (status = 404),
              (status = 409, description = "memory full"), (status = 422, description = "bad content, or the item is deleted")),
    security(("bearer" = [])))]
pub(crate) async fn supersede_memory(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(IdPath { id }): Path<IdPath>,
    Body(body): Body<WriteMemoryRequest>,
) -> Result<Json<MemoryResponse>, ApiError> {
    let write = confirmed(&principal, body)?;
    Ok(Json(response(state.runtime.supersede_memory(&principal.tenant, &id, write).await?, None)))
}

#[utoipa::path(delete, path = "/v1/memory/{id}", tag = "memory", params(IdPath, OwnerQuery),
    responses((status = 200, body = MemoryResponse, description = "the tombstone version (restore brings the item back)"), (status = 404)),
    security(("bearer" = [])))]
pub(crate) async fn forget_memory(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(IdPath { id }): Path<IdPath>,
    Query(q): Query<OwnerQuery>,
) -> Result<Json<MemoryResponse>, ApiError> {
    let owner = owner(&principal, q.user.as_deref())?;
    let item = state
        .runtime
        .forget_memory(&principal.tenant, &id, &owner, MemoryTrust::Confirmed, &principal.subject())
        .await?;
    Ok(Json(response(item, None)))
}

#[utoipa::path(post, path = "/v1/memory/{id}/restore", tag = "memory", params(IdPath), request_body = RestoreMemoryRequest,
    responses((status = 200, body = MemoryResponse, description = "the new version holding the restored text"), (status = 404),
              (status = 422, description = "no such version")),
    security(("bearer" = [])))]
pub(crate) async fn restore_memory(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(IdPath { id }): Path<IdPath>,
    Body(body): Body<RestoreMemoryRequest>,
) -> Result<Json<MemoryResponse>, ApiError> {
    let owner = owner(&principal, body.user.as_deref())?;
    let item = state.runtime.restore_memory(&principal.tenant, &id, &owner, body.version, &principal.subject()).await?;
    Ok(Json(response(item, None)))
}

#[utoipa::path(get, path = "/v1/memory/{id}/history", tag = "memory", params(IdPath, OwnerQuery),
    responses((status = 200, body = MemoryList, description = "every version, oldest first"), (status = 404)),
    security(("bearer" = [])))]
pub(crate) async fn memory_history(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(IdPath { id }): Path<IdPath>,
    Query(q): Query<OwnerQuery>,
) -> Result<Json<MemoryList>, ApiError> {
    let owner = owner(&principal, q.user.as_deref())?;
    let versions = state.runtime.memory_history(&principal.tenant, &id, &owner).await?;
    Ok(Json(MemoryList { items: versions.into_iter().map(|v| response(v, None)).collect() }))
}

//! The knowledge base over HTTP: ingest a text document into a namespace, query it, list and
//! delete documents. Every call is scoped to the caller's tenant; a namespace the tenant does
//! not have simply returns nothing.

use axum::Extension;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use domain::DocumentId;
use domain::knowledge::AccessLevel;
use runtime::auth::Principal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::json::Body;
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IngestRequest {
    /// Logical grouping, e.g. `product_docs` (default `default`).
    pub namespace: Option<String>,
    /// File name or URL the text came from.
    pub source: String,
    pub content: String,
    /// `public`, `internal` (default), `restricted` or `confidential`.
    pub access_level: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IngestResponse {
    pub document_id: String,
    /// False when the same content was already in the namespace.
    pub created: bool,
    pub namespace: String,
}

fn namespace_of(value: Option<&str>) -> Result<String, ApiError> {
    let namespace = value.map_or("default", str::trim);
    let ok = !namespace.is_empty()
        && namespace.len() <= 64
        && namespace.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(namespace.to_owned())
    } else {
        Err(ApiError::invalid("namespace", "namespace must be 1-64 letters, digits, '-', '_' or '.'"))
    }
}

fn access_of(value: Option<&str>, default: AccessLevel) -> Result<AccessLevel, ApiError> {
    match value {
        None => Ok(default),
        Some(v) => AccessLevel::parse(v).ok_or_else(|| {
            ApiError::invalid("access_level", "access_level must be public, internal, restricted or confidential")
        }),
    }
}

#[utoipa::path(post, path = "/v1/knowledge/ingest", tag = "knowledge", request_body = IngestRequest,
    responses((status = 201, body = IngestResponse), (status = 422)), security(("bearer" = [])))]
pub(crate) async fn ingest(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Body(body): Body<IngestRequest>,
) -> Result<(StatusCode, Json<IngestResponse>), ApiError> {
    let namespace = namespace_of(body.namespace.as_deref())?;
    let access = access_of(body.access_level.as_deref(), AccessLevel::Internal)?;
    if body.content.trim().is_empty() {
        return Err(ApiError::invalid("content", "content must not be empty"));
    }
    if body.source.trim().is_empty() {
        return Err(ApiError::invalid("source", "source must name where the text came from"));
    }
    let (id, created) = state
        .runtime
        .knowledge()
        .ingest_text(&principal.tenant, &namespace, body.source.trim(), &body.content, access)
        .await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(IngestResponse { document_id: id.to_string(), created, namespace })))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct QueryParams {
    /// The question or keywords.
    q: String,
    namespace: Option<String>,
    /// 1–50, default 5.
    limit: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Hit {
    pub document_id: String,
    pub source: String,
    pub text: String,
    pub score: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueryResponse {
    pub hits: Vec<Hit>,
    /// 0–1: how well the best passage covers the query.
    pub confidence: f64,
}

#[utoipa::path(get, path = "/v1/knowledge/query", tag = "knowledge", params(QueryParams), responses((status = 200, body = QueryResponse)), security(("bearer" = [])))]
pub(crate) async fn query(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    query: Result<Query<QueryParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<QueryResponse>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let namespace = namespace_of(q.namespace.as_deref())?;
    let limit = q.limit.unwrap_or(5);
    if !(1..=50).contains(&limit) {
        return Err(ApiError::invalid("limit", "limit must be between 1 and 50"));
    }
    if q.q.trim().is_empty() {
        return Err(ApiError::invalid("q", "q must not be empty"));
    }
    // API keys read up to their level: level ≥ 3 reads restricted, ≥ 5 confidential.
    let max_access = match principal.level.get() {
        5 => AccessLevel::Confidential,
        3 | 4 => AccessLevel::Restricted,
        _ => AccessLevel::Internal,
    };
    let found = state.runtime.knowledge().search(&principal.tenant, &namespace, &q.q, limit, max_access).await?;
    Ok(Json(QueryResponse {
        hits: found
            .hits
            .into_iter()
            .map(|h| Hit { document_id: h.document_id, source: h.source, text: h.text, score: h.score })
            .collect(),
        confidence: found.confidence,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentResponse {
    pub id: String,
    pub namespace: String,
    pub source: String,
    pub content_hash: String,
    pub access_level: String,
    pub created_at: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct DocumentsQuery {
    namespace: Option<String>,
}

#[utoipa::path(get, path = "/v1/knowledge/documents", tag = "knowledge", params(DocumentsQuery), responses((status = 200, body = [DocumentResponse])), security(("bearer" = [])))]
pub(crate) async fn documents(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    query: Result<Query<DocumentsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<DocumentResponse>>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let namespace = q.namespace.as_deref().map(|n| namespace_of(Some(n))).transpose()?;
    let docs = state.runtime.store().documents(&principal.tenant, namespace.as_deref()).await?;
    Ok(Json(
        docs.into_iter()
            .map(|d| DocumentResponse {
                id: d.id.to_string(),
                namespace: d.namespace,
                source: d.source,
                content_hash: d.content_hash,
                access_level: d.access_level.as_str().to_owned(),
                created_at: d.created_at.to_rfc3339(),
            })
            .collect(),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
pub(crate) struct DocumentPath {
    id: String,
}

#[utoipa::path(delete, path = "/v1/knowledge/documents/{id}", tag = "knowledge", params(DocumentPath),
    responses((status = 204), (status = 404)), security(("bearer" = [])))]
pub(crate) async fn delete_document(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(DocumentPath { id }): Path<DocumentPath>,
) -> Result<StatusCode, ApiError> {
    let id = DocumentId::parse(&id).map_err(|_| ApiError::not_found(format!("no document {id:?}")))?;
    if state.runtime.store().delete_document(&principal.tenant, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no document {id}")))
    }
}

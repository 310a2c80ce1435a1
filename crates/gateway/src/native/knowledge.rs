//! The knowledge base over HTTP: ingest documents (JSON text, or multipart upload of text,
//! Markdown, HTML and PDF files — each file judged on its own), query (hybrid when an embedding
//! model is loaded), list and delete. Every call is scoped to the caller's tenant; a namespace
//! the tenant does not have simply returns nothing.

use axum::Extension;
use axum::Json;
use axum::extract::FromRequest as _;
use axum::extract::State;
use axum::http::StatusCode;
use domain::DocumentId;
use domain::knowledge::AccessLevel;
use runtime::auth::Principal;
use runtime::knowledge::KnowledgeError;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::extract::Path;
use crate::json::{Body, Query};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IngestRequest {
    /// Logical grouping, e.g. `product_docs` (default `default`).
    #[schema(pattern = "^\\s*[A-Za-z0-9._-]{1,64}\\s*$")]
    pub namespace: Option<String>,
    /// File name or URL the text came from (not blank).
    #[schema(min_length = 1)]
    pub source: String,
    /// The text (not blank).
    #[schema(min_length = 1)]
    pub content: String,
    /// Default `internal`.
    #[schema(value_type = Option<crate::schema::AccessLevel>, inline)]
    pub access_level: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IngestResponse {
    pub document_id: String,
    /// False when the same content was already in the namespace.
    pub created: bool,
    pub namespace: String,
}

/// A namespace as a client wrote it (default `default`), checked; the error names `namespace`.
pub fn namespace_of(value: Option<&str>) -> Result<String, ApiError> {
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

/// An access level as a client wrote it (or `default`); the error names `access_level`.
pub fn access_of(value: Option<&str>, default: AccessLevel) -> Result<AccessLevel, ApiError> {
    match value {
        None => Ok(default),
        Some(v) => AccessLevel::parse(v).ok_or_else(|| {
            ApiError::invalid("access_level", "access_level must be public, internal, restricted or confidential")
        }),
    }
}

fn knowledge_error(error: KnowledgeError) -> ApiError {
    match error {
        KnowledgeError::Store(e) => ApiError::from(e),
        KnowledgeError::Embed { .. } => ApiError::internal(error.to_string()),
        other => ApiError::invalid("content", other.to_string()),
    }
}

/// A multipart upload (schema only): `namespace` and `access_level` fields before the files,
/// then `file` parts (text, Markdown, HTML, PDF), each judged on its own.
#[derive(Serialize, ToSchema)]
#[allow(dead_code, reason = "described in the OpenAPI document, never constructed")]
pub(crate) struct UploadForm {
    /// Default `default`.
    #[schema(pattern = "^\\s*[A-Za-z0-9._-]{1,64}\\s*$")]
    namespace: Option<String>,
    /// Default `internal`.
    #[schema(value_type = Option<crate::schema::AccessLevel>, inline)]
    access_level: Option<String>,
    /// At least one file.
    #[schema(value_type = Vec<String>, format = Binary, min_items = 1)]
    file: Vec<Vec<u8>>,
}

#[utoipa::path(post, path = "/v1/knowledge/ingest", tag = "knowledge",
    request_body(content((IngestRequest = "application/json"), (UploadForm = "multipart/form-data"))),
    responses((status = 201, body = IngestResponse), (status = 200, body = IngestResponse, description = "already stored"),
              (status = 207, body = UploadResponse, description = "multipart/form-data: `file` parts (text, Markdown, HTML, PDF) and optional `namespace`, `access_level` fields; one result per file"),
              (status = 422)),
    security(("bearer" = [])))]
pub(crate) async fn ingest(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    request: axum::extract::Request,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let is_multipart = request
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if is_multipart {
        let multipart = axum::extract::Multipart::from_request(request, &state)
            .await
            .map_err(|e| ApiError::bad_request(format!("invalid multipart body: {}", e.body_text())))?;
        return upload(&state, &principal, multipart).await.map(IntoResponse::into_response);
    }
    let Body(body) = Body::<IngestRequest>::from_request(request, &state).await?;
    let namespace = namespace_of(body.namespace.as_deref())?;
    let access = access_of(body.access_level.as_deref(), AccessLevel::Internal)?;
    if body.content.trim().is_empty() {
        return Err(ApiError::invalid("content", "content must not be empty"));
    }
    if body.source.trim().is_empty() {
        return Err(ApiError::invalid("source", "source must name where the text came from"));
    }
    let ingested = state
        .runtime
        .knowledge()
        .ingest_text(&principal.tenant, &namespace, body.source.trim(), &body.content, access)
        .await
        .map_err(knowledge_error)?;
    let status = if ingested.new { StatusCode::CREATED } else { StatusCode::OK };
    let response = IngestResponse { document_id: ingested.document_id.to_string(), created: ingested.new, namespace };
    Ok((status, Json(response)).into_response())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FileResult {
    pub file: String,
    /// `stored`, `duplicate` or `failed`.
    pub status: String,
    pub document_id: Option<String>,
    pub chunks: Option<usize>,
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UploadResponse {
    pub namespace: String,
    pub files: Vec<FileResult>,
    pub stored: usize,
    pub failed: usize,
}

/// A multipart upload: fields `namespace` and `access_level` (before the files), then `file`
/// parts. Each file is extracted and stored on its own; a bad one never stops the others.
async fn upload(
    state: &AppState,
    principal: &Principal,
    mut multipart: axum::extract::Multipart,
) -> Result<(StatusCode, Json<UploadResponse>), ApiError> {
    let mut namespace = "default".to_owned();
    let mut access = AccessLevel::Internal;
    let mut files = Vec::new();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    "the upload is larger than the configured limit (api.max_body_bytes)",
                ));
            }
            Err(e) => return Err(ApiError::bad_request(format!("invalid multipart body: {}", e.body_text()))),
        };
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "namespace" => {
                namespace = namespace_of(Some(&field.text().await.map_err(|e| ApiError::bad_request(e.body_text()))?))?
            }
            "access_level" => {
                access = access_of(
                    Some(field.text().await.map_err(|e| ApiError::bad_request(e.body_text()))?.trim()),
                    access,
                )?
            }
            "file" | "files" | "files[]" => {
                let file = field.file_name().unwrap_or("upload").to_owned();
                let content_type = field.content_type().map(str::to_owned);
                let bytes = match field.bytes().await {
                    Ok(bytes) => bytes,
                    Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                        return Err(ApiError::new(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "body_too_large",
                            format!("{file}: the upload is larger than the configured limit (api.max_body_bytes)"),
                        ));
                    }
                    Err(e) => return Err(ApiError::bad_request(format!("{file}: {}", e.body_text()))),
                };
                let outcome = state
                    .runtime
                    .knowledge()
                    .ingest_file(
                        &principal.tenant,
                        &namespace,
                        &file,
                        content_type.as_deref(),
                        &bytes,
                        access,
                        serde_json::json!({}),
                    )
                    .await;
                files.push(match outcome {
                    Ok(done) => FileResult {
                        file,
                        status: if done.new { "stored" } else { "duplicate" }.into(),
                        document_id: Some(done.document_id.to_string()),
                        chunks: Some(done.chunks),
                        error: None,
                    },
                    Err(KnowledgeError::Store(e)) => return Err(ApiError::from(e)),
                    Err(error) => FileResult {
                        file,
                        status: "failed".into(),
                        document_id: None,
                        chunks: None,
                        error: Some(error.to_string()),
                    },
                });
            }
            other => {
                return Err(ApiError::invalid(
                    other,
                    format!("unknown form field {other:?}; send namespace, access_level and file parts"),
                ));
            }
        }
    }
    if files.is_empty() {
        return Err(ApiError::invalid("file", "the upload has no file parts"));
    }
    let failed = files.iter().filter(|f| f.status == "failed").count();
    let status = if failed == 0 { StatusCode::CREATED } else { StatusCode::MULTI_STATUS };
    Ok((status, Json(UploadResponse { namespace, stored: files.len() - failed, failed, files })))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct QueryParams {
    /// The question or keywords (not blank).
    #[param(min_length = 1)]
    q: String,
    /// Default `default`.
    #[param(pattern = "^\\s*[A-Za-z0-9._-]{1,64}\\s*$")]
    namespace: Option<String>,
    /// 1–50, default 5.
    #[param(minimum = 1, maximum = 50)]
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
    /// 0–1: how well the best passage matches the query.
    pub confidence: f64,
    /// `hybrid` (BM25 and vectors) or `lexical` (no embedding model loaded).
    pub mode: String,
}

#[utoipa::path(get, path = "/v1/knowledge/query", tag = "knowledge", params(QueryParams), responses((status = 200, body = QueryResponse)), security(("bearer" = [])))]
pub(crate) async fn query(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    query: Query<QueryParams>,
) -> Result<Json<QueryResponse>, ApiError> {
    let Query(q) = query;
    let namespace = namespace_of(q.namespace.as_deref())?;
    let limit = q.limit.unwrap_or(5);
    if !(1..=50).contains(&limit) {
        return Err(ApiError::invalid("limit", "limit must be between 1 and 50"));
    }
    if q.q.trim().is_empty() {
        return Err(ApiError::invalid("q", "q must not be empty"));
    }
    let max_access = principal.max_access();
    let found = state.runtime.knowledge().search(&principal.tenant, &namespace, &q.q, limit, max_access).await?;
    Ok(Json(QueryResponse {
        mode: format!("{:?}", found.mode).to_lowercase(),
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
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct DocumentsQuery {
    /// Only documents of this namespace.
    #[param(pattern = "^\\s*[A-Za-z0-9._-]{1,64}\\s*$")]
    namespace: Option<String>,
}

#[utoipa::path(get, path = "/v1/knowledge/documents", tag = "knowledge", params(DocumentsQuery), responses((status = 200, body = [DocumentResponse])), security(("bearer" = [])))]
pub(crate) async fn documents(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    query: Query<DocumentsQuery>,
) -> Result<Json<Vec<DocumentResponse>>, ApiError> {
    let Query(q) = query;
    let namespace = q.namespace.as_deref().map(|n| namespace_of(Some(n))).transpose()?;
    let docs =
        state.runtime.knowledge().documents(&principal.tenant, namespace.as_deref()).await.map_err(knowledge_error)?;
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
#[into_params(parameter_in = Path)]
pub(crate) struct DocumentPath {
    /// The document id.
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
    if state.runtime.knowledge().delete_document(&principal.tenant, &id).await.map_err(knowledge_error)? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no document {id}")))
    }
}

//! The knowledge page: the tenant's documents by namespace, an upload of several files at once
//! (text, Markdown, HTML, PDF; each judged on its own, with its own result), deletion, and a
//! query box that shows how the search ran (hybrid or lexical) and each passage's score. Reads
//! stop at the signed-in person's level exactly as the API's do.

use askama::Template;
use axum::extract::{FromRequest as _, Multipart, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Redirect};
use domain::DocumentId;
use domain::knowledge::AccessLevel;
use gateway::{ApiError, access_of, namespace_of};
use runtime::knowledge::KnowledgeError;
use serde::Deserialize;

use crate::extract::{Form, Path, Query};
use crate::i18n::Lang;
use crate::pages::{ConsoleError, Page, PageResult, api, render, time, visible};
use crate::session::Signed;
use crate::state::ConsoleState;

/// The largest upload the page accepts (all files together).
pub const UPLOAD_LIMIT: usize = 32 * 1024 * 1024;
/// Passages a query shows.
const HITS: usize = 8;

pub struct DocumentRow {
    pub id: String,
    pub namespace: String,
    pub source: String,
    pub access: String,
    pub created: String,
}

pub struct FileRow {
    pub file: String,
    /// `stored`, `duplicate` or `failed`.
    pub status: &'static str,
    pub detail: String,
}

impl FileRow {
    pub fn status_key(&self) -> &'static str {
        match self.status {
            "stored" => "knowledge.stored",
            "duplicate" => "knowledge.duplicate",
            _ => "knowledge.failed",
        }
    }
}

pub struct HitRow {
    pub source: String,
    pub text: String,
    pub score: String,
}

#[derive(Template)]
#[template(path = "knowledge.html")]
struct KnowledgeView {
    page: Page,
    namespaces: Vec<String>,
    /// The namespace shown (empty: all).
    namespace: String,
    documents: Vec<DocumentRow>,
    uploaded: Vec<FileRow>,
    query: String,
    /// `hybrid` or `lexical`, once a query ran.
    mode: String,
    confidence: String,
    hits: Vec<HitRow>,
    levels: [&'static str; 4],
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct KnowledgeQuery {
    namespace: String,
    q: String,
}

fn invalid(lang: Lang) -> impl FnOnce(ApiError) -> ConsoleError {
    move |error| ConsoleError::Api(lang, error)
}

fn knowledge_error(lang: Lang, error: KnowledgeError) -> ConsoleError {
    match error {
        KnowledgeError::Store(e) => ConsoleError::Api(lang, ApiError::from(e)),
        other => ConsoleError::Api(lang, ApiError::internal(other.to_string())),
    }
}

async fn view(
    state: &ConsoleState,
    signed: &Signed,
    namespace: &str,
    uploaded: Vec<FileRow>,
    query: &str,
) -> Result<KnowledgeView, ConsoleError> {
    let lang = signed.lang;
    let principal = &signed.user.principal;
    let knowledge = state.runtime.knowledge();
    let namespace = if namespace.trim().is_empty() {
        String::new()
    } else {
        namespace_of(Some(namespace)).map_err(invalid(lang))?
    };
    let namespaces = knowledge.namespaces(&principal.tenant).await.map_err(|e| knowledge_error(lang, e))?;
    let filter = (!namespace.is_empty()).then_some(namespace.as_str());
    let mut documents = knowledge.documents(&principal.tenant, filter).await.map_err(|e| knowledge_error(lang, e))?;
    documents.sort_by_key(|d| std::cmp::Reverse(d.created_at));
    let documents = documents
        .into_iter()
        .map(|d| DocumentRow {
            id: d.id.to_string(),
            namespace: d.namespace,
            source: visible(&d.source),
            access: d.access_level.as_str().to_owned(),
            created: time(d.created_at),
        })
        .collect();
    let mut found = (String::new(), String::new(), Vec::new());
    if !query.trim().is_empty() {
        let searched = if namespace.is_empty() { "default" } else { namespace.as_str() };
        let result = knowledge
            .search(&principal.tenant, searched, query, HITS, principal.max_access())
            .await
            .map_err(api(lang))?;
        found = (
            format!("{:?}", result.mode).to_lowercase(),
            format!("{:.2}", result.confidence),
            result
                .hits
                .into_iter()
                .map(|h| HitRow {
                    source: visible(&h.source),
                    text: visible(&h.text),
                    score: format!("{:.4}", h.score),
                })
                .collect(),
        );
    }
    let (mode, confidence, hits) = found;
    Ok(KnowledgeView {
        page: Page::new(signed, "knowledge"),
        namespaces,
        namespace,
        documents,
        uploaded,
        query: query.to_owned(),
        mode,
        confidence,
        hits,
        levels: ["internal", "public", "restricted", "confidential"],
    })
}

/// `GET /knowledge?namespace=&q=`: documents, and a query's passages when `q` is given.
pub async fn knowledge(
    State(state): State<ConsoleState>,
    signed: Signed,
    Query(q): Query<KnowledgeQuery>,
) -> PageResult {
    render(&view(&state, &signed, &q.namespace, Vec::new(), &q.q).await?)
}

/// A file part as received.
struct Upload {
    name: String,
    content_type: Option<String>,
    bytes: axum::body::Bytes,
}

fn bad_upload(lang: Lang, status: StatusCode, detail: String) -> ConsoleError {
    let error = if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            status,
            "body_too_large",
            format!("the upload is larger than {} MiB; send fewer or smaller files", UPLOAD_LIMIT / (1024 * 1024)),
        )
    } else {
        ApiError::bad_request(format!("invalid upload: {detail}"))
    };
    ConsoleError::Api(lang, error)
}

/// `POST /knowledge/upload` (multipart: `csrf`, `namespace`, `access_level`, `file`…): every
/// part is read before anything is stored, so a request without the session's CSRF token
/// stores nothing; then each file is stored on its own and gets its own result.
pub async fn upload(State(state): State<ConsoleState>, signed: Signed, request: Request) -> PageResult {
    let lang = signed.lang;
    let headers = request.headers().clone();
    let mut multipart =
        Multipart::from_request(request, &state).await.map_err(|e| bad_upload(lang, e.status(), e.body_text()))?;
    let (mut csrf, mut namespace, mut access) = (String::new(), None::<String>, None::<String>);
    let mut files = Vec::new();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => return Err(bad_upload(lang, e.status(), e.body_text())),
        };
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "csrf" | "namespace" | "access_level" => {
                let text = field.text().await.map_err(|e| bad_upload(lang, e.status(), e.body_text()))?;
                match name.as_str() {
                    "csrf" => csrf = text,
                    "namespace" => namespace = Some(text),
                    _ => access = Some(text),
                }
            }
            "file" => {
                let file = field.file_name().unwrap_or("upload").to_owned();
                let content_type = field.content_type().map(str::to_owned);
                let bytes = field.bytes().await.map_err(|e| bad_upload(lang, e.status(), e.body_text()))?;
                // A file input left empty still sends one nameless, empty part.
                if !(file.is_empty() && bytes.is_empty()) {
                    files.push(Upload { name: file, content_type, bytes });
                }
            }
            other => {
                let message = format!("unknown form field {other:?}; send namespace, access_level and file parts");
                return Err(ConsoleError::Api(lang, ApiError::invalid(other, message)));
            }
        }
    }
    signed.check_csrf(&headers, &csrf)?;
    let namespace = namespace_of(namespace.as_deref().filter(|n| !n.trim().is_empty())).map_err(invalid(lang))?;
    let access = access_of(access.as_deref().map(str::trim), AccessLevel::Internal).map_err(invalid(lang))?;
    if files.is_empty() {
        return Err(ConsoleError::Api(lang, ApiError::invalid("file", "choose at least one file to upload")));
    }
    let t = lang.catalog();
    let knowledge = state.runtime.knowledge();
    let tenant = &signed.user.principal.tenant;
    let mut results = Vec::with_capacity(files.len());
    for upload in files {
        let stored = knowledge
            .ingest_file(
                tenant,
                &namespace,
                &upload.name,
                upload.content_type.as_deref(),
                &upload.bytes,
                access,
                serde_json::json!({}),
            )
            .await;
        results.push(match stored {
            Ok(done) => FileRow {
                file: visible(&upload.name),
                status: if done.new { "stored" } else { "duplicate" },
                detail: t.fill("knowledge.chunks", &[("chunks", &done.chunks.to_string())]),
            },
            Err(KnowledgeError::Store(e)) => return Err(ConsoleError::Api(lang, ApiError::from(e))),
            Err(error) => {
                FileRow { file: visible(&upload.name), status: "failed", detail: visible(&error.to_string()) }
            }
        });
    }
    render(&view(&state, &signed, &namespace, results, "").await?)
}

/// `POST /knowledge/documents/{id}/delete`: removes a document with its passages.
pub async fn delete(
    State(state): State<ConsoleState>,
    signed: Signed,
    headers: axum::http::HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<crate::pages::CsrfForm>,
) -> PageResult {
    signed.check_csrf(&headers, &form.csrf)?;
    let lang = signed.lang;
    let id = DocumentId::parse(&id).map_err(|_| ConsoleError::NotFound(lang))?;
    let deleted = state
        .runtime
        .knowledge()
        .delete_document(&signed.user.principal.tenant, &id)
        .await
        .map_err(|e| knowledge_error(lang, e))?;
    if !deleted {
        return Err(ConsoleError::NotFound(lang));
    }
    Ok(Redirect::to("/knowledge").into_response())
}

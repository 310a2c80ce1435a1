//! Conversations over HTTP: the caller's own chats (the console's, kept per person and target)
//! — `GET /v1/conversations` (search with `q`), `GET /v1/conversations/{id}` (with its
//! messages), `GET /v1/conversations/{id}/export?format=md|json` (a download) and
//! `DELETE /v1/conversations/{id}` (gone, with a ledger tombstone holding the export's digest,
//! never the text).

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::ConversationId;
use runtime::auth::Principal;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::extract::Path;
use crate::json::Query;
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct IdPath {
    /// The conversation's id.
    id: String,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// Only conversations whose title or messages contain this (case-insensitive).
    q: Option<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportQuery {
    /// `md` (Markdown) or `json` (default).
    format: Option<String>,
}

/// A conversation without its messages.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationSummary {
    pub id: String,
    pub title: String,
    /// What answers in it: a model, or the agent.
    pub target: String,
    pub created_at: String,
    pub updated_at: String,
}

/// The caller's conversations, most recent first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationList {
    pub conversations: Vec<ConversationSummary>,
}

fn parse(id: &str) -> Result<ConversationId, ApiError> {
    ConversationId::parse(id).map_err(|_| ApiError::not_found(format!("no conversation {id:?}")))
}

#[utoipa::path(get, path = "/v1/conversations", tag = "memory", params(ListQuery),
    responses((status = 200, body = ConversationList)), security(("bearer" = [])))]
pub(crate) async fn list_conversations(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(q): Query<ListQuery>,
) -> Result<Json<ConversationList>, ApiError> {
    let found = state.runtime.conversations(&principal, q.q.as_deref()).await?;
    Ok(Json(ConversationList {
        conversations: found
            .into_iter()
            .map(|c| ConversationSummary {
                id: c.id.as_str().to_owned(),
                title: c.title,
                target: c.target.to_text(),
                created_at: c.created_at.to_rfc3339(),
                updated_at: c.updated_at.to_rfc3339(),
            })
            .collect(),
    }))
}

#[utoipa::path(get, path = "/v1/conversations/{id}", tag = "memory", params(IdPath),
    responses((status = 200, body = Object, description = "the conversation with its messages"), (status = 404)),
    security(("bearer" = [])))]
pub(crate) async fn get_conversation(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(IdPath { id }): Path<IdPath>,
) -> Result<Json<Value>, ApiError> {
    let (conversation, messages) = state.runtime.conversation(&principal, &parse(&id)?).await?;
    Ok(Json(runtime::chat::to_json(&conversation, &messages)))
}

#[utoipa::path(get, path = "/v1/conversations/{id}/export", tag = "memory", params(IdPath, ExportQuery),
    responses((status = 200, description = "the conversation as a Markdown or JSON download", content_type = "text/markdown"),
              (status = 404), (status = 422, description = "an unknown format")),
    security(("bearer" = [])))]
pub(crate) async fn export_conversation(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(IdPath { id }): Path<IdPath>,
    Query(q): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    let markdown = match q.format.as_deref() {
        None | Some("json") => false,
        Some("md") => true,
        Some(other) => return Err(ApiError::invalid("format", format!("format {other:?}: use md or json"))),
    };
    let (conversation, messages) = state.runtime.conversation(&principal, &parse(&id)?).await?;
    let name = format!("conversation-{}", conversation.id.as_str());
    let (body, kind, extension) = if markdown {
        (runtime::chat::to_markdown(&conversation, &messages), "text/markdown; charset=utf-8", "md")
    } else {
        let json = runtime::chat::to_json(&conversation, &messages);
        (serde_json::to_string_pretty(&json).unwrap_or_default(), "application/json", "json")
    };
    let disposition = format!("attachment; filename=\"{name}.{extension}\"");
    Ok(([(header::CONTENT_TYPE, kind.to_owned()), (header::CONTENT_DISPOSITION, disposition)], body).into_response())
}

#[utoipa::path(delete, path = "/v1/conversations/{id}", tag = "memory", params(IdPath),
    responses((status = 204, description = "deleted; the ledger keeps a tombstone with the export's digest"), (status = 404)),
    security(("bearer" = [])))]
pub(crate) async fn delete_conversation(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(IdPath { id }): Path<IdPath>,
) -> Result<StatusCode, ApiError> {
    if state.runtime.delete_conversation(&principal, &parse(&id)?).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no conversation {id:?}")))
    }
}

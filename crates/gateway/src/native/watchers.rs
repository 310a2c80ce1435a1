//! Watchers over HTTP: `GET/POST /v1/watchers`, `GET/DELETE /v1/watchers/{id}` (an id or a
//! name) and `POST /v1/watchers/{id}/poll` (poll now). A watcher posts on the tenant's behalf,
//! so only admins manage and poll them; members may read them.

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use domain::watcher::{PostTarget, SourceKind, WatchedItem, Watcher};
use runtime::auth::Principal;
use runtime::watchers::{NewWatcher, PollReport, WatcherError};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::require_admin;
use crate::error::ApiError;
use crate::extract::Path;
use crate::json::Body;
use crate::state::AppState;

impl From<WatcherError> for ApiError {
    fn from(error: WatcherError) -> Self {
        match &error {
            WatcherError::Invalid { field, .. } => ApiError::invalid(field, error.to_string()),
            WatcherError::NotFound { .. } => ApiError::not_found(error.to_string()),
            WatcherError::Conflict(_) => ApiError::new(StatusCode::CONFLICT, "conflict", error.to_string()),
            WatcherError::Source(_) => ApiError::new(StatusCode::FAILED_DEPENDENCY, "source_failed", error.to_string()),
            WatcherError::Store(_) | WatcherError::Ledger(_) => ApiError::internal(error.to_string()),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct IdPath {
    /// The watcher's id (`wat_…`) or name.
    id: String,
}

/// A watcher to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WatcherRequest {
    /// 1 to 60 characters, unique in the tenant.
    pub name: String,
    /// `feed` (RSS, Atom or JSON Feed: each entry an item) or `page` (the part of a web page
    /// `selector` picks: each new version of it an item).
    pub kind: String,
    /// The feed's or page's http(s) URL.
    pub url: String,
    /// For a page: the CSS selector of the part to watch (default: the whole body).
    #[serde(default)]
    pub selector: Option<String>,
    /// Where new items go: `{"type": "telegram", "chat_id": "-100…"}`,
    /// `{"type": "discord", "channel_id": "…"}` or `{"type": "webhook", "url": "https://…"}`.
    #[schema(value_type = Object)]
    pub post_to: PostTarget,
    /// `trivial`, `normal` or `complex`: each item summarised on that tier before it is posted
    /// (default: posted as it is).
    #[serde(default)]
    pub summarise: Option<String>,
    /// At most this many posts per poll, 1 to 50 (default 5); the rest wait for the next poll.
    #[serde(default)]
    pub max_posts: Option<u32>,
    /// When to poll: a cron expression, five fields or six with seconds (default every 15
    /// minutes).
    #[serde(default)]
    pub schedule: Option<String>,
    /// The schedule's IANA time zone (default UTC).
    #[serde(default)]
    pub timezone: Option<String>,
}

/// A watcher as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct WatcherResponse {
    pub id: String,
    pub name: String,
    /// `feed` or `page`.
    pub kind: String,
    pub url: String,
    pub selector: Option<String>,
    /// Where it posts; a webhook's URL is shown with its path and query masked.
    #[schema(value_type = Object)]
    pub post_to: serde_json::Value,
    pub summarise: Option<String>,
    pub max_posts: u32,
    pub schedule_id: Option<String>,
    /// Whether a first poll recorded what the source held (without posting it).
    pub seeded: bool,
    /// RFC 3339.
    pub last_polled_at: Option<String>,
    /// Why the last poll failed (`null` after a good one).
    pub last_error: Option<String>,
    pub created_by: String,
    pub created_at: String,
    /// The latest items, newest first (only when one watcher is read).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub items: Option<Vec<ItemResponse>>,
}

/// One item a watcher found.
#[derive(Debug, Serialize)]
pub struct ItemResponse {
    /// `id:<guid>`, `link:<canonical link>` or `sha256:<content hash>`.
    pub key: String,
    pub title: Option<String>,
    pub link: Option<String>,
    /// SHA-256 of the title, link and text: what the post's seal names.
    pub digest: String,
    /// `seeded`, `pending`, `posting`, `posted` or `failed`.
    pub status: String,
    pub attempts: u32,
    pub detail: Option<String>,
    pub found_at: String,
    pub posted_at: Option<String>,
}

/// The tenant's watchers.
#[derive(Debug, Serialize, ToSchema)]
pub struct WatcherList {
    pub watchers: Vec<WatcherResponse>,
}

fn response(watcher: Watcher, items: Option<Vec<WatchedItem>>) -> WatcherResponse {
    let post_to = match &watcher.target {
        PostTarget::Webhook { url } => serde_json::json!({"type": "webhook", "url": masked(url)}),
        other => serde_json::to_value(other).unwrap_or_default(),
    };
    WatcherResponse {
        id: watcher.id,
        name: watcher.name,
        kind: watcher.kind.as_str().to_owned(),
        url: watcher.url,
        selector: watcher.selector,
        post_to,
        summarise: watcher.summarise,
        max_posts: watcher.max_posts,
        schedule_id: watcher.schedule_id,
        seeded: watcher.seeded,
        last_polled_at: watcher.last_polled_at.map(|t| t.to_rfc3339()),
        last_error: watcher.last_error,
        created_by: watcher.created_by,
        created_at: watcher.created_at.to_rfc3339(),
        items: items.map(|items| {
            items
                .into_iter()
                .map(|i| ItemResponse {
                    key: i.key,
                    title: i.title,
                    link: i.link,
                    digest: i.digest,
                    status: i.status.as_str().to_owned(),
                    attempts: i.attempts,
                    detail: i.detail,
                    found_at: i.found_at.to_rfc3339(),
                    posted_at: i.posted_at.map(|t| t.to_rfc3339()),
                })
                .collect()
        }),
    }
}

/// A webhook URL with what may be a secret (its path and query; chat platforms put the token
/// there) masked: `https://hooks.example/…`.
fn masked(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?']).next().unwrap_or_default();
            let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
            format!("{scheme}://{host}/…")
        }
        None => "…".to_owned(),
    }
}

#[utoipa::path(get, path = "/v1/watchers", tag = "watchers",
    responses((status = 200, body = WatcherList)),
    security(("bearer" = [])))]
pub(crate) async fn list_watchers(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<WatcherList>, ApiError> {
    let watchers = state.runtime.watchers(&principal.tenant).await?;
    Ok(Json(WatcherList { watchers: watchers.into_iter().map(|w| response(w, None)).collect() }))
}

#[utoipa::path(post, path = "/v1/watchers", tag = "watchers", request_body = WatcherRequest,
    responses((status = 201, body = WatcherResponse, description = "created with the schedule that polls it; its first poll records what the source holds without posting"),
              (status = 403, description = "not an admin"),
              (status = 409, description = "a watcher of this name exists"),
              (status = 422, description = "a bad field, named in `error.field`")),
    security(("bearer" = [])))]
pub(crate) async fn create_watcher(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Body(body): Body<WatcherRequest>,
) -> Result<(StatusCode, Json<WatcherResponse>), ApiError> {
    require_admin(&principal, "creating a watcher")?;
    let kind = body.kind.parse::<SourceKind>().map_err(|e| ApiError::invalid("kind", e.to_string()))?;
    let new = NewWatcher {
        name: body.name,
        kind,
        url: body.url,
        selector: body.selector,
        target: body.post_to,
        summarise: body.summarise,
        max_posts: body.max_posts,
        cron: body.schedule,
        timezone: body.timezone,
    };
    let watcher = state.runtime.add_watcher(&principal.tenant, new, &principal.subject()).await?;
    Ok((StatusCode::CREATED, Json(response(watcher, None))))
}

#[utoipa::path(get, path = "/v1/watchers/{id}", tag = "watchers", params(IdPath),
    responses((status = 200, body = WatcherResponse, description = "the watcher and its latest 50 items"),
              (status = 404, description = "no such watcher")),
    security(("bearer" = [])))]
pub(crate) async fn get_watcher(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(path): Path<IdPath>,
) -> Result<Json<WatcherResponse>, ApiError> {
    let (watcher, items) = state.runtime.watcher(&principal.tenant, &path.id).await?;
    Ok(Json(response(watcher, Some(items))))
}

#[utoipa::path(delete, path = "/v1/watchers/{id}", tag = "watchers", params(IdPath),
    responses((status = 204, description = "removed with its items and schedule"),
              (status = 403, description = "not an admin"), (status = 404, description = "no such watcher")),
    security(("bearer" = [])))]
pub(crate) async fn delete_watcher(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(path): Path<IdPath>,
) -> Result<StatusCode, ApiError> {
    require_admin(&principal, "removing a watcher")?;
    state.runtime.remove_watcher(&principal.tenant, &path.id, &principal.subject()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What a poll did.
#[derive(Debug, Serialize, ToSchema)]
pub struct PollResponse {
    pub watcher: String,
    /// `not_modified`, `seeded` (a first poll: recorded, nothing posted) or `polled`.
    pub outcome: String,
    pub found: usize,
    pub new: usize,
    pub posted: usize,
    pub failed: usize,
    /// Items held for the next poll by the cap.
    pub waiting: u64,
}

impl From<PollReport> for PollResponse {
    fn from(r: PollReport) -> Self {
        Self {
            watcher: r.watcher,
            outcome: r.outcome.to_owned(),
            found: r.found,
            new: r.new,
            posted: r.posted,
            failed: r.failed,
            waiting: r.waiting,
        }
    }
}

#[utoipa::path(post, path = "/v1/watchers/{id}/poll", tag = "watchers", params(IdPath),
    responses((status = 200, body = PollResponse),
              (status = 403, description = "not an admin"), (status = 404, description = "no such watcher"),
              (status = 424, description = "the source could not be fetched or read (`source_failed`); kept as the watcher's `last_error`")),
    security(("bearer" = [])))]
pub(crate) async fn poll_watcher(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(path): Path<IdPath>,
) -> Result<Json<PollResponse>, ApiError> {
    require_admin(&principal, "polling a watcher")?;
    Ok(Json(state.runtime.poll_watcher(&principal.tenant, &path.id).await?.into()))
}

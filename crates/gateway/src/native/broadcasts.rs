//! Broadcasts over HTTP: `POST /v1/broadcasts` queues a message for every reachable account of
//! the tenant's users on a channel (at a level or above), `GET /v1/broadcasts/{id}` reports how
//! far it got. Who may broadcast is the runtime's rule (users at level 3 or above, and admins),
//! the same as a channel's own `/broadcast`; the adapter connected to the channel sends the
//! queue at the platform's pace and records each recipient's outcome.

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use domain::channel::{Broadcast, BroadcastProgress, Channel};
use runtime::auth::Principal;
use runtime::channels::ChannelError;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::extract::Path;
use crate::json::Body;
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BroadcastRequest {
    /// The message (Markdown), 1 to 4000 characters.
    #[schema(min_length = 1, max_length = 4000)]
    pub text: String,
    /// The channel to send it on; only `telegram` sends broadcasts today.
    #[serde(default = "telegram")]
    #[schema(default = "telegram")]
    pub channel: String,
    /// Only users at this level or above receive it (0, the default: everyone).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 5, default = 0)]
    pub min_level: u8,
}

fn telegram() -> String {
    Channel::Telegram.as_str().to_owned()
}

/// How many recipients are in each state.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProgressResponse {
    pub total: u64,
    pub pending: u64,
    /// Taken by a sender; one a crash left here is never sent a second copy.
    pub sending: u64,
    pub delivered: u64,
    /// The person blocked the bot.
    pub blocked: u64,
    pub failed: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BroadcastResponse {
    pub id: String,
    pub channel: String,
    pub text: String,
    pub min_level: u8,
    /// `user:<id>` or `key:<id>`.
    pub created_by: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339; `null` while recipients are pending.
    pub finished_at: Option<String>,
    /// `queued`, `sending` or `finished`.
    pub status: &'static str,
    pub progress: ProgressResponse,
}

fn broadcast_response(broadcast: Broadcast, progress: BroadcastProgress) -> BroadcastResponse {
    let status = if broadcast.finished_at.is_some() {
        "finished"
    } else if progress.pending == progress.total() {
        "queued"
    } else {
        "sending"
    };
    BroadcastResponse {
        id: broadcast.id,
        channel: broadcast.channel.as_str().to_owned(),
        text: broadcast.body,
        min_level: broadcast.min_level,
        created_by: broadcast.created_by,
        created_at: broadcast.created_at.to_rfc3339(),
        finished_at: broadcast.finished_at.map(|t| t.to_rfc3339()),
        status,
        progress: ProgressResponse {
            total: progress.total(),
            pending: progress.pending,
            sending: progress.sending,
            delivered: progress.delivered,
            blocked: progress.blocked,
            failed: progress.failed,
        },
    }
}

impl From<ChannelError> for ApiError {
    fn from(error: ChannelError) -> Self {
        match error {
            ChannelError::NotAllowed(message) => ApiError::forbidden(message),
            ChannelError::Invalid(message) => ApiError::invalid("text", message),
            ChannelError::InvalidField { field, reason } => ApiError::invalid(field, reason),
            ChannelError::Store(store) => ApiError::from(store),
            ChannelError::Ledger(ledger) => ApiError::from(ledger),
            ChannelError::Chat(chat) => ApiError::from(chat),
            other => ApiError::internal(other.to_string()),
        }
    }
}

#[utoipa::path(post, path = "/v1/broadcasts", tag = "channels", request_body = BroadcastRequest,
    responses(
        (status = 202, body = BroadcastResponse, description = "queued; the channel's adapter sends it"),
        (status = 400, description = "malformed JSON, or a field of the wrong type (named in `error.field`)"),
        (status = 403, description = "below level 3 and not an admin"),
        (status = 422, description = "an empty or too long text, an unknown channel or level (named in `error.field`)"),
    ),
    security(("bearer" = [])))]
pub(crate) async fn create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Body(body): Body<BroadcastRequest>,
) -> Result<(StatusCode, Json<BroadcastResponse>), ApiError> {
    let channel = body.channel.parse::<Channel>().map_err(|e| ApiError::invalid("channel", e.to_string()))?;
    let (broadcast, _) = state.runtime.start_broadcast(&principal, channel, &body.text, body.min_level, None).await?;
    let (broadcast, progress) = state
        .runtime
        .broadcast(&principal.tenant, &broadcast.id)
        .await?
        .ok_or_else(|| ApiError::internal("the broadcast just queued could not be read back"))?;
    Ok((StatusCode::ACCEPTED, Json(broadcast_response(broadcast, progress))))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct BroadcastPath {
    /// The broadcast's id (`bc_…`).
    id: String,
}

#[utoipa::path(get, path = "/v1/broadcasts/{id}", tag = "channels", params(BroadcastPath),
    responses((status = 200, body = BroadcastResponse), (status = 404, description = "no such broadcast in the caller's tenant")),
    security(("bearer" = [])))]
pub(crate) async fn get(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(BroadcastPath { id }): Path<BroadcastPath>,
) -> Result<Json<BroadcastResponse>, ApiError> {
    match state.runtime.broadcast(&principal.tenant, &id).await? {
        Some((broadcast, progress)) => Ok(Json(broadcast_response(broadcast, progress))),
        None => Err(ApiError::not_found(format!("no broadcast {id}"))),
    }
}

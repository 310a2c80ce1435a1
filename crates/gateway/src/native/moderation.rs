//! The moderation record over HTTP, for staff who are not in the community's staff channel and
//! for audits: `GET /v1/moderation/cases` (filtered by status; the review queue is
//! `?status=review`), `GET /v1/moderation/cases/{id}`, and `GET /v1/moderation/strictness`
//! (what staff verdicts taught each category in a community, within its bound). Staff read it:
//! admins and users at level 3 or above. Verdicts stay with the channel's buttons, where the
//! adapter can carry out what they ask (delete, undo a timeout); each is sealed either way.

use axum::Extension;
use axum::Json;
use axum::extract::State;
use domain::moderation::{CaseStatus, ModerationCase, STRICTNESS_BOUND};
use domain::tenant::UserLevel;
use runtime::auth::Principal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::extract::Path;
use crate::json::Query;
use crate::state::AppState;

/// A moderation case as staff see it: the message's digest and an excerpt, the decision, who
/// or what made it, and its review.
#[derive(Debug, Serialize, ToSchema)]
pub struct CaseResponse {
    pub id: String,
    /// The platform (`discord`).
    pub channel: String,
    /// The community (a Discord guild id).
    pub scope: String,
    /// Where the message was posted (a channel id).
    pub place: String,
    pub message_id: String,
    pub author_id: String,
    pub author: String,
    /// Hex SHA-256 of the message text.
    pub message_sha256: String,
    pub excerpt: String,
    /// The pre-screen rules that flagged it.
    pub flags: Vec<String>,
    pub category: String,
    pub severity: String,
    /// `none`, `delete`, `warn`, `timeout`, `kick` or `ban`.
    pub action: String,
    pub confidence: Option<f64>,
    /// The confidence the decision was held to.
    pub threshold: f64,
    pub reason: String,
    /// `model:<provider>/<model>`, `prescreen`, …
    pub decided_by: String,
    /// `acted`, `dry_run`, `review`, `upheld`, `overturned` or `dismissed`.
    pub status: String,
    pub reviewed_by: Option<String>,
    /// RFC 3339.
    pub reviewed_at: Option<String>,
    /// RFC 3339.
    pub created_at: String,
}

fn case_response(case: ModerationCase) -> CaseResponse {
    CaseResponse {
        id: case.id,
        channel: case.channel,
        scope: case.scope,
        place: case.place,
        message_id: case.message_id,
        author_id: case.author_id,
        author: case.author,
        message_sha256: case.digest,
        excerpt: case.excerpt,
        flags: case.flags,
        category: case.category,
        severity: case.severity,
        action: case.action.as_str().to_owned(),
        confidence: case.confidence,
        threshold: case.threshold,
        reason: case.reason,
        decided_by: case.decided_by,
        status: case.status.as_str().to_owned(),
        reviewed_by: case.reviewed_by,
        reviewed_at: case.reviewed_at.map(|t| t.to_rfc3339()),
        created_at: case.created_at.to_rfc3339(),
    }
}

/// Staff only: admins, and users at level 3 or above.
fn require_staff(principal: &Principal) -> Result<(), ApiError> {
    if principal.is_admin() || principal.level >= UserLevel::ARCHITECT {
        Ok(())
    } else {
        Err(ApiError::forbidden("the moderation record is for staff: admins and users at level 3 or above"))
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct CasesQuery {
    /// Only cases in this status (`review` is the queue waiting for staff).
    status: Option<String>,
    /// At most this many, newest first (1 to 500; default 50).
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/v1/moderation/cases", tag = "channels", params(CasesQuery),
    responses((status = 200, body = [CaseResponse]), (status = 403, description = "not staff"),
              (status = 422, description = "an unknown status or a limit outside 1..=500 (named in `error.field`)")),
    security(("bearer" = [])))]
pub(crate) async fn list_cases(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<CasesQuery>,
) -> Result<Json<Vec<CaseResponse>>, ApiError> {
    require_staff(&principal)?;
    let status = match query.status.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => Some(text.parse::<CaseStatus>().map_err(|e| ApiError::invalid("status", e.to_string()))?),
    };
    let limit = query.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid("limit", format!("{limit} is outside 1..=500")));
    }
    let cases = state.runtime.moderation_cases(&principal.tenant, status, limit).await?;
    Ok(Json(cases.into_iter().map(case_response).collect()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct CasePath {
    /// The case's id.
    id: String,
}

#[utoipa::path(get, path = "/v1/moderation/cases/{id}", tag = "channels", params(CasePath),
    responses((status = 200, body = CaseResponse), (status = 403, description = "not staff"),
              (status = 404, description = "no such case in the caller's tenant")),
    security(("bearer" = [])))]
pub(crate) async fn get_case(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(CasePath { id }): Path<CasePath>,
) -> Result<Json<CaseResponse>, ApiError> {
    require_staff(&principal)?;
    match state.runtime.moderation_case(&principal.tenant, &id).await? {
        Some(case) => Ok(Json(case_response(case))),
        None => Err(ApiError::not_found(format!("no moderation case {id}"))),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct StrictnessQuery {
    /// The community (a Discord guild id).
    scope: String,
}

/// One category's learned adjustment.
#[derive(Debug, Serialize, ToSchema)]
pub struct CategoryStrictness {
    pub category: String,
    /// Added to the confidence the model needs before acting alone in this category: positive
    /// after overturned decisions (more careful), negative after upheld held ones.
    pub adjustment: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StrictnessResponse {
    pub scope: String,
    /// No adjustment goes beyond ± this.
    pub bound: f64,
    pub categories: Vec<CategoryStrictness>,
}

#[utoipa::path(get, path = "/v1/moderation/strictness", tag = "channels", params(StrictnessQuery),
    responses((status = 200, body = StrictnessResponse), (status = 403, description = "not staff"),
              (status = 400, description = "no `scope`")),
    security(("bearer" = [])))]
pub(crate) async fn strictness(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<StrictnessQuery>,
) -> Result<Json<StrictnessResponse>, ApiError> {
    require_staff(&principal)?;
    let scope = query.scope.trim().to_owned();
    if scope.is_empty() {
        return Err(ApiError::invalid("scope", "name the community (a Discord guild id)"));
    }
    let learned = state.runtime.moderation_strictness(&principal.tenant, &scope).await?;
    let categories =
        learned.into_iter().map(|(category, adjustment)| CategoryStrictness { category, adjustment }).collect();
    Ok(Json(StrictnessResponse { scope, bound: STRICTNESS_BOUND, categories }))
}

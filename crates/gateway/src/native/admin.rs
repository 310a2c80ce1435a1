//! Personas (list, create, update — validated, admin only for changes), tools, approvals
//! (list, read, approve, deny — admin only, never one's own run) and the token exchange.

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use domain::agent::ApprovalStatus;
use domain::persona::{LowIntent, PersonaContract, RiskLevel, TrustTier};
use domain::{PersonaId, Timestamp};
use runtime::auth::Principal;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::shapes::ExecuteResponse;
use crate::auth::{auth_error, require_admin};
use crate::error::ApiError;
use crate::extract::Path;
use crate::json::{Body, Query, RawBody};
use crate::state::AppState;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PersonaBody {
    /// 1–64 lowercase letters, digits, `-` or `_`; unique in the tenant.
    #[schema(pattern = "^[a-z0-9_-]{1,64}$")]
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub allowed_tools: Vec<String>,
    #[serde(default)]
    pub resource_scopes: Vec<String>,
    #[serde(default)]
    pub intent_patterns: Vec<String>,
    /// How long a declared intent stays valid (1–86400 s, default 120).
    #[serde(default = "default_ttl")]
    #[schema(minimum = 1, maximum = 86400)]
    pub max_ttl_seconds: u32,
    /// Default `medium`.
    #[serde(default = "default_risk")]
    #[schema(value_type = crate::schema::RiskLevel, inline)]
    pub risk_tolerance: String,
    /// Default `cold_start`.
    #[serde(default = "default_trust")]
    #[schema(value_type = crate::schema::TrustTier, inline)]
    pub trust_tier: String,
    /// 0–1, default 0.75.
    #[serde(default = "default_threshold")]
    #[schema(minimum = 0, maximum = 1)]
    pub intent_threshold: f64,
    /// Below the intent threshold: `approve` (hold for a human, default) or `block`.
    #[serde(default = "default_low_intent")]
    #[schema(value_type = crate::schema::LowIntent, inline)]
    pub on_low_intent: String,
    #[serde(default = "default_true")]
    pub is_active: bool,
}

fn default_ttl() -> u32 {
    domain::persona::DEFAULT_TTL_SECONDS
}
fn default_risk() -> String {
    "medium".into()
}
fn default_trust() -> String {
    "cold_start".into()
}
fn default_threshold() -> f64 {
    domain::persona::DEFAULT_INTENT_THRESHOLD
}
fn default_low_intent() -> String {
    "approve".into()
}
fn default_true() -> bool {
    true
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PersonaResponse {
    pub id: String,
    pub version: u32,
    pub created_at: String,
    #[serde(flatten)]
    pub body: PersonaBody,
}

fn persona_response(p: PersonaContract) -> PersonaResponse {
    PersonaResponse {
        id: p.id.to_string(),
        version: p.version,
        created_at: p.created_at.to_rfc3339(),
        body: PersonaBody {
            name: p.name,
            description: p.description,
            allowed_tools: p.allowed_tools,
            resource_scopes: p.resource_scopes,
            intent_patterns: p.intent_patterns,
            max_ttl_seconds: p.max_ttl_seconds,
            risk_tolerance: p.risk_tolerance.as_str().into(),
            trust_tier: p.trust_tier.as_str().into(),
            intent_threshold: p.intent_threshold,
            on_low_intent: p.on_low_intent.as_str().into(),
            is_active: p.is_active,
        },
    }
}

/// A persona contract from a client's fields, checked: a bad value is an error naming its field
/// (`risk_tolerance`, `allowed_tools`, `max_ttl_seconds`…). `tools` are the tool names that
/// exist. Shared by every front-end that edits personas.
pub fn persona_contract(
    principal: &Principal,
    id: PersonaId,
    body: PersonaBody,
    tools: &[String],
) -> Result<PersonaContract, ApiError> {
    let risk = RiskLevel::parse(&body.risk_tolerance)
        .ok_or_else(|| ApiError::invalid("risk_tolerance", "risk_tolerance must be low, medium, high or critical"))?;
    let trust = TrustTier::parse(&body.trust_tier)
        .ok_or_else(|| ApiError::invalid("trust_tier", "trust_tier must be cold_start, established or trusted"))?;
    if let Some(unknown) = body.allowed_tools.iter().find(|t| !tools.contains(t)) {
        return Err(ApiError::invalid("allowed_tools", format!("unknown tool {unknown:?}; GET /v1/tools lists them")));
    }
    let persona = PersonaContract {
        id,
        tenant_id: principal.tenant.clone(),
        name: body.name,
        description: body.description,
        allowed_tools: body.allowed_tools,
        resource_scopes: body.resource_scopes,
        intent_patterns: body.intent_patterns,
        max_ttl_seconds: body.max_ttl_seconds,
        risk_tolerance: risk,
        trust_tier: trust,
        intent_threshold: body.intent_threshold,
        on_low_intent: LowIntent::parse(&body.on_low_intent)
            .ok_or_else(|| ApiError::invalid("on_low_intent", "on_low_intent must be approve or block"))?,
        version: 1,
        is_active: body.is_active,
        created_at: Timestamp::now(),
    };
    persona.validate().map_err(|e| {
        let field = match e {
            domain::persona::PersonaError::BadName(_) => "name",
            domain::persona::PersonaError::BadTtl { .. } => "max_ttl_seconds",
            domain::persona::PersonaError::BadThreshold { .. } => "intent_threshold",
            domain::persona::PersonaError::EmptyEntry { field, .. } => field,
        };
        ApiError::invalid(field, e.to_string())
    })?;
    Ok(persona)
}

fn tool_names(state: &AppState, tenant: &domain::TenantId) -> Vec<String> {
    state
        .runtime
        .tool_list_for(tenant)
        .map(|tools| tools.into_iter().map(|(d, _)| d.name).collect())
        .unwrap_or_default()
}

#[utoipa::path(get, path = "/v1/personas", tag = "personas", responses((status = 200, body = [PersonaResponse])), security(("bearer" = [])))]
pub(crate) async fn list_personas(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Vec<PersonaResponse>>, ApiError> {
    let personas = state.runtime.personas(&principal.tenant).await?;
    Ok(Json(personas.into_iter().map(persona_response).collect()))
}

#[utoipa::path(post, path = "/v1/personas", tag = "personas", request_body = PersonaBody,
    responses((status = 201, body = PersonaResponse), (status = 409, description = "name taken"), (status = 422)), security(("bearer" = [])))]
pub(crate) async fn create_persona(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Body(body): Body<PersonaBody>,
) -> Result<(StatusCode, Json<PersonaResponse>), ApiError> {
    require_admin(&principal, "creating a persona")?;
    let persona = persona_contract(&principal, PersonaId::generate(), body, &tool_names(&state, &principal.tenant))?;
    state.runtime.add_persona(&persona).await?;
    Ok((StatusCode::CREATED, Json(persona_response(persona))))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct IdPath {
    id: String,
}

#[utoipa::path(put, path = "/v1/personas/{id}", tag = "personas", params(IdPath), request_body = PersonaBody,
    responses((status = 200, body = PersonaResponse), (status = 404), (status = 409, description = "another persona has that name"), (status = 422)), security(("bearer" = [])))]
pub(crate) async fn update_persona(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(IdPath { id }): Path<IdPath>,
    Body(body): Body<PersonaBody>,
) -> Result<Json<PersonaResponse>, ApiError> {
    require_admin(&principal, "changing a persona")?;
    let id = PersonaId::parse(&id).map_err(|_| ApiError::not_found(format!("no persona {id:?}")))?;
    let existing =
        state.runtime.persona(&principal.tenant, &id).await?.ok_or_else(|| ApiError::not_found("no such persona"))?;
    let mut persona = persona_contract(&principal, id, body, &tool_names(&state, &principal.tenant))?;
    persona.created_at = existing.created_at;
    let version =
        state.runtime.update_persona(&persona).await?.ok_or_else(|| ApiError::not_found("no such persona"))?;
    persona.version = version;
    Ok(Json(persona_response(persona)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ToolResponse {
    pub name: String,
    pub description: String,
    /// JSON schema of the parameters.
    #[schema(value_type = Object)]
    pub parameters: Value,
    pub risk: String,
    pub requires_approval: bool,
    /// `available`, or why not (e.g. a missing setting).
    pub availability: String,
}

#[utoipa::path(get, path = "/v1/tools", tag = "tools", responses((status = 200, body = [ToolResponse])), security(("bearer" = [])))]
pub(crate) async fn list_tools(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Vec<ToolResponse>>, ApiError> {
    let tools = state.runtime.tool_list_for(&principal.tenant)?;
    Ok(Json(
        tools
            .into_iter()
            .map(|(d, availability)| {
                let availability = match availability {
                    runtime::Availability::Available => "available".to_owned(),
                    runtime::Availability::Unconfigured { missing } => format!("unconfigured: set {missing}"),
                };
                ToolResponse {
                    name: d.name,
                    description: d.description,
                    parameters: d.parameters,
                    risk: d.risk_level.as_str().to_owned(),
                    requires_approval: d.requires_approval,
                    availability,
                }
            })
            .collect(),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalResponse {
    pub id: String,
    pub chain_id: String,
    pub step: u32,
    pub tool: String,
    #[schema(value_type = Object)]
    pub params: Value,
    pub reason: String,
    pub requested_by: Option<String>,
    pub status: String,
    pub decided_by: Option<String>,
    pub note: Option<String>,
    pub created_at: String,
    pub expires_at: String,
}

fn approval_response(a: domain::ports::Approval) -> ApprovalResponse {
    ApprovalResponse {
        params: serde_json::from_str(&a.params).unwrap_or(Value::String(a.params.clone())),
        id: a.id,
        chain_id: a.chain_id.to_string(),
        step: a.step,
        tool: a.tool,
        reason: a.reason,
        requested_by: a.requested_by,
        status: a.status.as_str().to_owned(),
        decided_by: a.decided_by,
        note: a.note,
        created_at: a.created_at.to_rfc3339(),
        expires_at: a.expires_at.to_rfc3339(),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApprovalQuery {
    /// Only approvals with this status.
    #[param(value_type = Option<crate::schema::ApprovalStatus>, inline)]
    status: Option<String>,
}

#[utoipa::path(get, path = "/v1/approvals", tag = "approvals", params(ApprovalQuery), responses((status = 200, body = [ApprovalResponse])), security(("bearer" = [])))]
pub(crate) async fn list_approvals(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    query: Query<ApprovalQuery>,
) -> Result<Json<Vec<ApprovalResponse>>, ApiError> {
    let Query(query) = query;
    let status = query
        .status
        .as_deref()
        .map(str::parse::<ApprovalStatus>)
        .transpose()
        .map_err(|_| ApiError::invalid("status", "status must be pending, approved, denied or expired"))?;
    let approvals = state.runtime.approvals(&principal.tenant, status).await?;
    Ok(Json(approvals.into_iter().map(approval_response).collect()))
}

#[utoipa::path(get, path = "/v1/approvals/{id}", tag = "approvals", params(IdPath), responses((status = 200, body = ApprovalResponse), (status = 404)), security(("bearer" = [])))]
pub(crate) async fn get_approval(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(IdPath { id }): Path<IdPath>,
) -> Result<Json<ApprovalResponse>, ApiError> {
    Ok(Json(approval_response(state.runtime.approval(&principal.tenant, &id).await?)))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// Why (kept with the decision and sealed in the ledger).
    #[serde(default)]
    pub note: String,
}

/// The optional decision body: empty, or `{"note": "…"}`.
fn note_of(body: &[u8]) -> Result<String, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(String::new());
    }
    Ok(crate::json::parse::<DecisionBody>(body)?.note)
}

async fn decide(
    state: AppState,
    principal: Principal,
    id: String,
    approve: bool,
    note: String,
) -> Result<Json<ExecuteResponse>, ApiError> {
    require_admin(&principal, "deciding an approval")?;
    let report = state.runtime.decide(&principal.tenant, &id, approve, &principal.subject(), note.trim()).await?;
    Ok(Json(super::shapes::execute_response(&report, &[], 0)))
}

#[utoipa::path(post, path = "/v1/approvals/{id}/approve", tag = "approvals", params(IdPath), request_body = DecisionBody,
    responses((status = 200, body = ExecuteResponse, description = "the run after it resumed"), (status = 403, description = "not an admin, or the run's own requester"), (status = 409, description = "already decided or expired")),
    security(("bearer" = [])))]
pub(crate) async fn approve(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(IdPath { id }): Path<IdPath>,
    RawBody(body): RawBody,
) -> Result<Json<ExecuteResponse>, ApiError> {
    decide(state, principal, id, true, note_of(&body)?).await
}

#[utoipa::path(post, path = "/v1/approvals/{id}/deny", tag = "approvals", params(IdPath), request_body = DecisionBody,
    responses((status = 200, body = ExecuteResponse), (status = 403), (status = 409)), security(("bearer" = [])))]
pub(crate) async fn deny(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(IdPath { id }): Path<IdPath>,
    RawBody(body): RawBody,
) -> Result<Json<ExecuteResponse>, ApiError> {
    decide(state, principal, id, false, note_of(&body)?).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// An API key (`nxs_…`).
    pub api_key: String,
    /// Lifetime in seconds (default 3600, at most 86400).
    #[schema(minimum = 1, maximum = 86400)]
    pub expires_in: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    /// Seconds since the epoch.
    pub expires_at: u64,
}

#[utoipa::path(post, path = "/v1/auth/token", tag = "auth", request_body = TokenRequest,
    responses((status = 200, body = TokenResponse), (status = 401, description = "unknown or revoked key")))]
pub(crate) async fn token(
    State(state): State<AppState>,
    Body(body): Body<TokenRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let ttl = body.expires_in.unwrap_or(runtime::auth::DEFAULT_TOKEN_TTL.as_secs());
    if ttl == 0 || ttl > runtime::auth::MAX_TOKEN_TTL.as_secs() {
        return Err(ApiError::invalid("expires_in", "expires_in must be between 1 and 86400 seconds"));
    }
    let issued = state
        .runtime
        .auth()
        .issue_token(body.api_key.trim(), std::time::Duration::from_secs(ttl))
        .await
        .map_err(auth_error)?;
    Ok(Json(TokenResponse {
        access_token: issued.token,
        token_type: "Bearer",
        expires_in: issued.expires_in,
        expires_at: issued.expires_at,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WhoamiResponse {
    pub tenant: String,
    /// The API key used (absent for a console session).
    pub key_id: Option<String>,
    /// The key's name, or the signed-in person's email.
    pub key_name: String,
    /// `admin` or `member`.
    pub role: String,
    /// 0–5: what the key may read (3 and up: restricted knowledge, 5: confidential).
    #[schema(minimum = 0, maximum = 5)]
    pub level: u8,
    /// `api_key`, `jwt` or `session`.
    #[schema(value_type = String)]
    pub method: runtime::auth::AuthMethod,
}

/// `GET /v1/whoami`: the caller as the server sees it.
#[utoipa::path(get, path = "/v1/whoami", tag = "auth", responses((status = 200, body = WhoamiResponse)), security(("bearer" = [])))]
pub(crate) async fn whoami(Extension(principal): Extension<Principal>) -> Json<WhoamiResponse> {
    Json(WhoamiResponse {
        tenant: principal.tenant.as_str().to_owned(),
        key_id: principal.key_id().map(|id| id.as_str().to_owned()),
        key_name: principal.name().to_owned(),
        role: principal.role.as_str().to_owned(),
        level: principal.level.get(),
        method: principal.method,
    })
}

//! The ledger over HTTP: a paginated, filterable history (newest first), one chain's entries
//! with their verification, the latest signed checkpoint, inclusion and consistency proofs,
//! and self-contained proof bundles for offline checking (`nexus verify --bundle`).

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use domain::ledger::{EntryKind, LedgerRecord};
use domain::ports::RecordFilter;
use domain::{ChainId, Timestamp};
use runtime::auth::Principal;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::extract::Path;
use crate::json::Query;
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct EntryResponse {
    pub index: u64,
    /// An entry kind: `seal_intent`, `seal_result`, `model_call`, `gate_decision`, `approval`,
    /// `admin_change`, `moderation`, `route`, `equipment`, `job` or `memory`.
    pub kind: String,
    pub chain_id: Option<String>,
    pub timestamp: String,
    #[schema(value_type = Object)]
    pub payload: Value,
    pub fingerprint: String,
    pub parent_fingerprint: String,
    /// Hex RFC 6962 leaf hash.
    pub leaf_hash: String,
}

fn entry(r: LedgerRecord) -> EntryResponse {
    EntryResponse {
        index: r.index,
        kind: r.kind.as_str().to_owned(),
        chain_id: r.chain_id.map(|c| c.to_string()),
        timestamp: r.timestamp.to_rfc3339(),
        payload: serde_json::from_str(&r.payload).unwrap_or(Value::String(r.payload)),
        fingerprint: r.fingerprint,
        parent_fingerprint: r.parent_fingerprint,
        leaf_hash: hex::encode(r.leaf_hash),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct PageQuery {
    /// Entries with an index below this (the `next_before` of the previous page).
    #[param(minimum = 0)]
    before: Option<u64>,
    /// 1–500, default 100.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// Only entries of this kind.
    #[param(value_type = Option<crate::schema::EntryKind>, inline)]
    kind: Option<String>,
    /// Only entries of this chain.
    chain_id: Option<String>,
    /// Entries at or after this time: RFC 3339 or microseconds since the epoch.
    since: Option<String>,
    /// Entries before this time: RFC 3339 or microseconds since the epoch.
    until: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PageResponse {
    pub entries: Vec<EntryResponse>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    pub next_before: Option<u64>,
    pub size: u64,
}

fn time_param(name: &str, value: Option<&str>) -> Result<Option<Timestamp>, ApiError> {
    let Some(value) = value else { return Ok(None) };
    if let Ok(micros) = value.parse::<i64>() {
        return Ok(Some(Timestamp::from_micros(micros)));
    }
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| Some(Timestamp::from_micros(t.timestamp_micros())))
        .map_err(|_| ApiError::invalid(name, format!("{name} must be RFC 3339 (2026-11-21T08:00:00Z) or microseconds")))
}

#[utoipa::path(get, path = "/v1/ledger", tag = "ledger", params(PageQuery), responses((status = 200, body = PageResponse)), security(("bearer" = [])))]
pub(crate) async fn page(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    query: Query<PageQuery>,
) -> Result<Json<PageResponse>, ApiError> {
    let Query(q) = query;
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid("limit", "limit must be between 1 and 500"));
    }
    let kind = match q.kind.as_deref() {
        None => None,
        Some(k) => Some(EntryKind::parse(k).ok_or_else(|| {
            let kinds: Vec<&str> = EntryKind::ALL.iter().map(|k| k.as_str()).collect();
            ApiError::invalid("kind", format!("kind must be one of {}", kinds.join(", ")))
        })?),
    };
    let chain = match q.chain_id.as_deref() {
        None => None,
        Some(c) => Some(ChainId::parse(c).map_err(|_| ApiError::invalid("chain_id", "not a chain id"))?),
    };
    let filter = RecordFilter {
        before: q.before,
        kind,
        chain,
        since: time_param("since", q.since.as_deref())?,
        until: time_param("until", q.until.as_deref())?,
    };
    let records = state.runtime.ledger().page(&principal.tenant, &filter, limit).await?;
    let next_before = if records.len() == limit as usize { records.last().map(|r| r.index) } else { None };
    let size = state.runtime.ledger().size(&principal.tenant).await?;
    Ok(Json(PageResponse { entries: records.into_iter().map(entry).collect(), next_before, size }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChainLedgerResponse {
    pub chain_id: String,
    pub entries: Vec<EntryResponse>,
    /// Whether the chain's fingerprints link up and every entry is in the signed tree.
    pub verified: bool,
    pub verification: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct ChainPath {
    /// The chain id.
    chain_id: String,
}

#[utoipa::path(get, path = "/v1/ledger/chains/{chain_id}", tag = "ledger", params(ChainPath),
    responses((status = 200, body = ChainLedgerResponse), (status = 404)), security(("bearer" = [])))]
pub(crate) async fn chain(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(ChainPath { chain_id }): Path<ChainPath>,
) -> Result<Json<ChainLedgerResponse>, ApiError> {
    let chain = ChainId::parse(&chain_id).map_err(|_| ApiError::not_found(format!("no chain {chain_id:?}")))?;
    let records = state.runtime.ledger().chain_records(&principal.tenant, &chain).await?;
    if records.is_empty() {
        return Err(ApiError::not_found(format!(
            "tenant {} has no ledger entries for chain {chain}",
            principal.tenant
        )));
    }
    let (verified, verification) = match state.runtime.verifier().chain(&principal.tenant, &chain).await {
        Ok(report) => (true, format!("{report:?}")),
        Err(error) => (false, error.to_string()),
    };
    Ok(Json(ChainLedgerResponse {
        chain_id: chain.to_string(),
        entries: records.into_iter().map(entry).collect(),
        verified,
        verification,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckpointResponse {
    pub origin: String,
    pub size: u64,
    /// Hex root hash.
    pub root_hash: String,
    /// The C2SP signed note.
    pub signed_note: String,
    pub created_at: String,
    /// The verifier key line (`name+id+base64`) to check the note with.
    pub verifier_key: String,
}

#[utoipa::path(get, path = "/v1/ledger/checkpoint", tag = "ledger", responses((status = 200, body = CheckpointResponse), (status = 404, description = "no entries yet")), security(("bearer" = [])))]
pub(crate) async fn checkpoint(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<CheckpointResponse>, ApiError> {
    let ledger = state.runtime.ledger();
    let stored = ledger.latest_checkpoint(&principal.tenant).await?;
    Ok(Json(CheckpointResponse {
        origin: ledger.origin(&principal.tenant),
        size: stored.size,
        root_hash: hex::encode(stored.root_hash),
        signed_note: stored.signed_note,
        created_at: stored.created_at.to_rfc3339(),
        verifier_key: ledger.signer().verifier().to_vkey(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct InclusionQuery {
    /// The entry's index.
    #[param(minimum = 0)]
    index: u64,
    /// Tree size to prove against (default: the latest checkpoint's).
    #[param(minimum = 1)]
    size: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProofResponse {
    pub index: Option<u64>,
    pub old_size: Option<u64>,
    pub size: u64,
    pub leaf_hash: Option<String>,
    /// Hex hashes of the audit or consistency path, in RFC 9162 order.
    pub hashes: Vec<String>,
}

async fn default_size(state: &AppState, principal: &Principal) -> Result<u64, ApiError> {
    Ok(state.runtime.ledger().latest_checkpoint(&principal.tenant).await?.size)
}

#[utoipa::path(get, path = "/v1/ledger/proof/inclusion", tag = "ledger", params(InclusionQuery),
    responses((status = 200, body = ProofResponse), (status = 422, description = "index or size out of range")), security(("bearer" = [])))]
pub(crate) async fn inclusion(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    query: Query<InclusionQuery>,
) -> Result<Json<ProofResponse>, ApiError> {
    let Query(q) = query;
    let size = match q.size {
        Some(size) => size,
        None => default_size(&state, &principal).await?,
    };
    let record = state
        .runtime
        .ledger()
        .record(&principal.tenant, q.index)
        .await?
        .ok_or_else(|| ApiError::invalid("index", format!("the ledger has no entry #{}", q.index)))?;
    let path = state.runtime.ledger().inclusion_proof(&principal.tenant, q.index, size).await?;
    Ok(Json(ProofResponse {
        index: Some(q.index),
        old_size: None,
        size,
        leaf_hash: Some(hex::encode(record.leaf_hash)),
        hashes: path.iter().map(hex::encode).collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConsistencyQuery {
    /// The earlier tree size (at least 1).
    #[param(minimum = 1)]
    old: u64,
    /// The later tree size (default: the latest checkpoint's).
    #[param(minimum = 0)]
    new: Option<u64>,
}

#[utoipa::path(get, path = "/v1/ledger/proof/consistency", tag = "ledger", params(ConsistencyQuery),
    responses((status = 200, body = ProofResponse), (status = 422)), security(("bearer" = [])))]
pub(crate) async fn consistency(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    query: Query<ConsistencyQuery>,
) -> Result<Json<ProofResponse>, ApiError> {
    let Query(q) = query;
    let new = match q.new {
        Some(new) => new,
        None => default_size(&state, &principal).await?,
    };
    let path = state.runtime.ledger().consistency_proof(&principal.tenant, q.old, new).await?;
    Ok(Json(ProofResponse {
        index: None,
        old_size: Some(q.old),
        size: new,
        leaf_hash: None,
        hashes: path.iter().map(hex::encode).collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct IndexPath {
    /// The entry's index.
    #[param(minimum = 0)]
    index: u64,
}

#[utoipa::path(get, path = "/v1/ledger/bundle/{index}", tag = "ledger", params(IndexPath),
    responses((status = 200, description = "a proof bundle for `nexus verify --bundle`"), (status = 404)), security(("bearer" = [])))]
pub(crate) async fn bundle(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(IndexPath { index }): Path<IndexPath>,
) -> Result<impl IntoResponse, ApiError> {
    let bundle = state.runtime.ledger().proof_bundle(&principal.tenant, index).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], bundle.to_json()))
}

//! `GET /v1/usage`: calls, tokens and cost of the caller's tenant over a window, in total and
//! by day, model, provider, API key and chain, with the month's budget standing. Members see
//! their own key's usage in `by_key`; admins see every key.

use std::collections::BTreeMap;

use axum::Extension;
use axum::Json;
use axum::extract::State;
use chrono::Datelike as _;
use domain::Timestamp;
use domain::cost::UsageRow;
use runtime::auth::Principal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::json::Query;
use crate::state::AppState;

const DAY_MICROS: i64 = 86_400_000_000;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct UsageQuery {
    /// First day (YYYY-MM-DD, UTC); default: the first of this month. At most 366 days before `to`.
    #[param(value_type = Option<String>, format = Date)]
    from: Option<String>,
    /// Last day, inclusive; default: today.
    #[param(value_type = Option<String>, format = Date)]
    to: Option<String>,
}

#[derive(Debug, Default, Clone, Serialize, ToSchema)]
pub struct Totals {
    pub calls: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
}

impl Totals {
    fn add(&mut self, row: &UsageRow) {
        self.calls += row.calls;
        self.input_tokens += row.input_tokens;
        self.output_tokens += row.output_tokens;
        self.cost_usd += row.cost_usd;
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BudgetResponse {
    pub limit_usd: f64,
    pub spent_usd: f64,
    pub fraction: f64,
    /// `ok`, `warning`, `degraded` or `exhausted`.
    pub state: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageResponse {
    pub from: String,
    pub to: String,
    pub total: Totals,
    pub by_day: BTreeMap<String, Totals>,
    pub by_model: BTreeMap<String, Totals>,
    pub by_provider: BTreeMap<String, Totals>,
    /// Key id → totals (`none`: work not tied to a key, e.g. CLI runs).
    pub by_key: BTreeMap<String, Totals>,
    /// Chain id → totals (gateway calls have no chain).
    pub by_chain: BTreeMap<String, Totals>,
    pub budget: BudgetResponse,
}

fn day(name: &str, value: &str) -> Result<chrono::NaiveDate, ApiError> {
    chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map_err(|_| ApiError::invalid(name, format!("{name} must be a date like 2026-11-01")))
}

fn micros(date: chrono::NaiveDate) -> i64 {
    date.and_hms_opt(0, 0, 0).map_or(0, |t| t.and_utc().timestamp_micros())
}

#[utoipa::path(get, path = "/v1/usage", tag = "usage", params(UsageQuery), responses((status = 200, body = UsageResponse), (status = 422)), security(("bearer" = [])))]
pub(crate) async fn usage(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    query: Query<UsageQuery>,
) -> Result<Json<UsageResponse>, ApiError> {
    let Query(q) = query;
    let today = chrono::Utc::now().date_naive();
    let from = match &q.from {
        Some(v) => day("from", v)?,
        None => today.with_day0(0).unwrap_or(today),
    };
    let to = match &q.to {
        Some(v) => day("to", v)?,
        None => today,
    };
    if to < from {
        return Err(ApiError::invalid("to", "to must not be before from"));
    }
    if (to - from).num_days() > 366 {
        return Err(ApiError::invalid("from", "the window may be at most 366 days"));
    }
    let since = Timestamp::from_micros(micros(from));
    let until = Timestamp::from_micros(micros(to) + DAY_MICROS);
    let rows = state.runtime.usage(&principal.tenant, since, until).await?;
    let mut response = UsageResponse {
        from: from.to_string(),
        to: to.to_string(),
        total: Totals::default(),
        by_day: BTreeMap::new(),
        by_model: BTreeMap::new(),
        by_provider: BTreeMap::new(),
        by_key: BTreeMap::new(),
        by_chain: BTreeMap::new(),
        budget: budget(&state, &principal).await?,
    };
    for row in &rows {
        response.total.add(row);
        let date = chrono::DateTime::from_timestamp(row.day * 86_400, 0)
            .map_or_else(|| row.day.to_string(), |d| d.date_naive().to_string());
        response.by_day.entry(date).or_default().add(row);
        response.by_model.entry(row.model.clone()).or_default().add(row);
        response.by_provider.entry(row.provider.clone().unwrap_or_else(|| "unknown".into())).or_default().add(row);
        let key = row.api_key_id.as_ref().map_or_else(|| "none".to_owned(), |k| k.to_string());
        if principal.is_admin() || (row.api_key_id.is_some() && row.api_key_id.as_ref() == principal.key_id()) {
            response.by_key.entry(key).or_default().add(row);
        }
        if let Some(chain) = &row.chain_id {
            response.by_chain.entry(chain.to_string()).or_default().add(row);
        }
    }
    Ok(Json(response))
}

async fn budget(state: &AppState, principal: &Principal) -> Result<BudgetResponse, ApiError> {
    let status = state.runtime.budgets().status(&principal.tenant).await?;
    let name = serde_json::to_value(status.state).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    Ok(BudgetResponse {
        limit_usd: status.limit_usd,
        spent_usd: status.spent_usd,
        fraction: status.fraction,
        state: name,
    })
}

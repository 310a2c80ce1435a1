//! Cost records: token usage and price of one model call.

use serde::{Deserialize, Serialize};

use crate::{ApiKeyId, ChainId, SealId, TenantId, Timestamp};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostRecord {
    pub tenant_id: TenantId,
    /// The chain the call served, if any (gateway calls have none).
    pub chain_id: Option<ChainId>,
    pub seal_id: Option<SealId>,
    /// The API key that paid for the call, when it came through the HTTP API.
    pub api_key_id: Option<ApiKeyId>,
    /// Who asked for the call (`user:<id>` or `key:<id>`), when known: per-person spend.
    pub subject: Option<String>,
    /// The provider that answered, e.g. `anthropic`.
    pub provider: Option<String>,
    pub model: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    pub timestamp: Timestamp,
}

/// Calls, tokens and cost of one (day, model, provider, key, chain, person) group of cost records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageRow {
    /// Days since 1970-01-01 (UTC).
    pub day: i64,
    pub model: String,
    pub provider: Option<String>,
    pub api_key_id: Option<ApiKeyId>,
    pub chain_id: Option<ChainId>,
    /// Who asked (`user:<id>` or `key:<id>`), when recorded.
    pub subject: Option<String>,
    pub calls: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
}

/// One day of a tenant's agent activity (the overview's charts), counted by the database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayActivity {
    /// Days since 1970-01-01 (UTC).
    pub day: i64,
    pub runs: u64,
    /// Calls that passed the gates and were sealed.
    pub actions: u64,
    /// Calls the gates refused.
    pub refusals: u64,
}

/// A tenant's activity at a glance (the console's overview cards), counted by the database.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Overview {
    /// Runs started since the start of the day.
    pub runs_today: u64,
    /// Actions sealed (intents) since the start of the day.
    pub actions_today: u64,
    /// Gate refusals recorded since the start of the day.
    pub blocked_today: u64,
    /// Approvals waiting for a decision.
    pub approvals_waiting: u64,
    /// Spent since the start of the month.
    pub spend_month_usd: f64,
    /// Tokens (input and output) since the start of the month.
    pub tokens_month: u64,
}

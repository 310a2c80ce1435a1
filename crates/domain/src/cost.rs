//! Cost records: token usage and price of one model call (seed 004 `CostRecord`).

use serde::{Deserialize, Serialize};

use crate::{ChainId, SealId, TenantId, Timestamp};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostRecord {
    pub tenant_id: TenantId,
    /// The chain the call served, if any (gateway calls have none).
    pub chain_id: Option<ChainId>,
    pub seal_id: Option<SealId>,
    pub model: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    pub timestamp: Timestamp,
}

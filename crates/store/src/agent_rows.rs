//! Row shapes and conversions for runs and approvals (shared by both backends).

use domain::agent::{ApprovalStatus, ChainStatus};
use domain::ports::{Approval, StoreError, StoredRun};
use domain::{ChainId, TenantId, Timestamp};

pub(crate) type RunRow = (String, String, String, String, String, i64, i64, Option<String>, String, Option<String>);
pub(crate) type ApprovalRow = (
    String,
    String,
    String,
    i64,
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    Option<i64>,
    Option<String>,
    i64,
    i64,
);

/// A run's columns, its context (stored once, in its own table) last.
pub(crate) const RUN_COLUMNS: &str = "tenant_id, chain_id, task, status, state, created_at, updated_at, owner, personas, \
     (SELECT context FROM run_contexts c WHERE c.tenant_id = runs.tenant_id AND c.chain_id = runs.chain_id)";
pub(crate) const APPROVAL_COLUMNS: &str = "id, tenant_id, chain_id, step, tool, params, call_digest, reason, \
     requested_by, status, decided_by, decided_at, note, created_at, expires_at";

/// The stored form of a run's personas: `,a,b,` (so `LIKE '%,a,%'` finds one), or empty.
pub(crate) fn personas_column(personas: &[String]) -> String {
    if personas.is_empty() { String::new() } else { format!(",{},", personas.join(",")) }
}

fn invalid(what: &'static str, reason: impl ToString) -> StoreError {
    StoreError::InvalidRow { what, reason: reason.to_string() }
}

pub(crate) fn run(row: RunRow) -> Result<StoredRun, StoreError> {
    let (tenant_id, chain_id, task, status, state, created_at, updated_at, owner, personas, context) = row;
    Ok(StoredRun {
        tenant_id: TenantId::parse(tenant_id).map_err(|e| invalid("run", e))?,
        chain_id: ChainId::parse(chain_id).map_err(|e| invalid("run", e))?,
        task,
        status: status.parse::<ChainStatus>().map_err(|e| invalid("runs.status", e))?,
        state,
        created_at: Timestamp::from_micros(created_at),
        updated_at: Timestamp::from_micros(updated_at),
        owner,
        personas: personas.split(',').filter(|p| !p.is_empty()).map(str::to_owned).collect(),
        context,
    })
}

pub(crate) fn approval(row: ApprovalRow) -> Result<Approval, StoreError> {
    let (
        id,
        tenant_id,
        chain_id,
        step,
        tool,
        params,
        call_digest,
        reason,
        requested_by,
        status,
        decided_by,
        decided_at,
        note,
        created_at,
        expires_at,
    ) = row;
    Ok(Approval {
        id,
        tenant_id: TenantId::parse(tenant_id).map_err(|e| invalid("approval", e))?,
        chain_id: ChainId::parse(chain_id).map_err(|e| invalid("approval", e))?,
        step: u32::try_from(step).map_err(|_| invalid("approval step", step))?,
        tool,
        params,
        call_digest,
        reason,
        requested_by,
        status: status.parse::<ApprovalStatus>().map_err(|e| invalid("approvals.status", e))?,
        decided_by,
        decided_at: decided_at.map(Timestamp::from_micros),
        note,
        created_at: Timestamp::from_micros(created_at),
        expires_at: Timestamp::from_micros(expires_at),
    })
}

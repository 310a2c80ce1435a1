//! Row shapes shared by both backends (plain tuples, decoded the same way by SQLite and
//! PostgreSQL) and their conversion into domain types.

use domain::cost::CostRecord;
use domain::ledger::{EntryKind, LedgerRecord, StoredCheckpoint};
use domain::persona::{LowIntent, PersonaContract, RiskLevel, TrustTier};
use domain::ports::StoreError;
use domain::tenant::{ApiKey, Role, Tenant, User, UserLevel};
use domain::{ApiKeyId, ChainId, PersonaId, TenantId, Timestamp, UserId};

pub(crate) type TenantRow = (String, String, f64, String, i64, bool);
pub(crate) type UserRow = (String, String, String, i64, String, i64);
pub(crate) type ApiKeyRow =
    (String, String, Option<String>, String, String, String, i64, String, i64, Option<i64>, Option<i64>);
pub(crate) type PersonaRow =
    (String, String, String, String, String, String, String, i64, String, String, f64, i64, bool, i64, String);
pub(crate) type LedgerRow = (String, i64, String, Option<String>, i64, String, String, String, Vec<u8>);
pub(crate) type CheckpointRow = (String, i64, Vec<u8>, String, i64);

pub(crate) const TENANT_COLUMNS: &str = "id, name, budget_usd, settings, created_at, is_active";
pub(crate) const USER_COLUMNS: &str = "tenant_id, id, name, level, role, created_at";
pub(crate) const API_KEY_COLUMNS: &str =
    "id, tenant_id, user_id, name, key_hash, display_prefix, access_level, role, created_at, last_used_at, revoked_at";
pub(crate) const PERSONA_COLUMNS: &str = "tenant_id, id, name, description, allowed_tools, resource_scopes, \
     intent_patterns, max_ttl_seconds, risk_tolerance, trust_tier, intent_threshold, version, is_active, created_at, on_low_intent";
pub(crate) const LEDGER_COLUMNS: &str =
    "tenant_id, idx, kind, chain_id, ts, payload, parent_fingerprint, fingerprint, leaf_hash";
pub(crate) const CHECKPOINT_COLUMNS: &str = "tenant_id, size, root_hash, signed_note, created_at";

fn invalid(what: &'static str, reason: impl ToString) -> StoreError {
    StoreError::InvalidRow { what, reason: reason.to_string() }
}

fn u64_of(what: &'static str, v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| invalid(what, format!("negative number {v}")))
}

fn u32_of(what: &'static str, v: i64) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| invalid(what, format!("number {v} out of range")))
}

fn level_of(what: &'static str, v: i64) -> Result<UserLevel, StoreError> {
    let byte = u8::try_from(v).map_err(|_| invalid(what, format!("level {v} out of range")))?;
    UserLevel::new(byte).map_err(|e| invalid(what, e))
}

fn list_of(what: &'static str, json: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(json).map_err(|e| invalid(what, e))
}

pub(crate) fn list_json(list: &[String]) -> String {
    serde_json::Value::from(list.to_vec()).to_string()
}

pub(crate) fn hash32(what: &'static str, bytes: Vec<u8>) -> Result<[u8; 32], StoreError> {
    bytes.try_into().map_err(|b: Vec<u8>| invalid(what, format!("hash is {} bytes, not 32", b.len())))
}

pub(crate) fn tenant(row: TenantRow) -> Result<Tenant, StoreError> {
    let (id, name, budget_usd, settings, created_at, is_active) = row;
    Ok(Tenant {
        id: TenantId::parse(id).map_err(|e| invalid("tenant", e))?,
        name,
        budget_usd,
        settings: serde_json::from_str(&settings).map_err(|e| invalid("tenant settings", e))?,
        created_at: Timestamp::from_micros(created_at),
        is_active,
    })
}

pub(crate) fn user(row: UserRow) -> Result<User, StoreError> {
    let (tenant_id, id, name, level, role, created_at) = row;
    Ok(User {
        id: UserId::parse(id).map_err(|e| invalid("user", e))?,
        tenant_id: TenantId::parse(tenant_id).map_err(|e| invalid("user", e))?,
        name,
        level: level_of("user level", level)?,
        role: Role::parse(&role).ok_or_else(|| invalid("user role", format!("unknown role {role:?}")))?,
        created_at: Timestamp::from_micros(created_at),
    })
}

pub(crate) fn api_key(row: ApiKeyRow) -> Result<ApiKey, StoreError> {
    let (id, tenant_id, user_id, name, key_hash, display_prefix, level, role, created_at, last_used, revoked) = row;
    Ok(ApiKey {
        id: ApiKeyId::parse(id).map_err(|e| invalid("api key", e))?,
        tenant_id: TenantId::parse(tenant_id).map_err(|e| invalid("api key", e))?,
        user_id: user_id.map(UserId::parse).transpose().map_err(|e| invalid("api key", e))?,
        name,
        key_hash,
        display_prefix,
        access_level: level_of("api key level", level)?,
        role: Role::parse(&role).ok_or_else(|| invalid("api key role", format!("unknown role {role:?}")))?,
        created_at: Timestamp::from_micros(created_at),
        last_used_at: last_used.map(Timestamp::from_micros),
        revoked_at: revoked.map(Timestamp::from_micros),
    })
}

pub(crate) fn persona(row: PersonaRow) -> Result<PersonaContract, StoreError> {
    let (
        tenant_id,
        id,
        name,
        description,
        tools,
        scopes,
        patterns,
        ttl,
        risk,
        trust,
        threshold,
        version,
        active,
        created,
        low_intent,
    ) = row;
    Ok(PersonaContract {
        id: PersonaId::parse(id).map_err(|e| invalid("persona", e))?,
        tenant_id: TenantId::parse(tenant_id).map_err(|e| invalid("persona", e))?,
        name,
        description,
        allowed_tools: list_of("persona allowed_tools", &tools)?,
        resource_scopes: list_of("persona resource_scopes", &scopes)?,
        intent_patterns: list_of("persona intent_patterns", &patterns)?,
        max_ttl_seconds: u32_of("persona max_ttl_seconds", ttl)?,
        risk_tolerance: RiskLevel::parse(&risk).ok_or_else(|| invalid("persona risk_tolerance", risk.clone()))?,
        trust_tier: TrustTier::parse(&trust).ok_or_else(|| invalid("persona trust_tier", trust.clone()))?,
        intent_threshold: threshold,
        on_low_intent: LowIntent::parse(&low_intent)
            .ok_or_else(|| invalid("persona on_low_intent", low_intent.clone()))?,
        version: u32_of("persona version", version)?,
        is_active: active,
        created_at: Timestamp::from_micros(created),
    })
}

pub(crate) fn ledger(row: LedgerRow) -> Result<LedgerRecord, StoreError> {
    let (tenant_id, idx, kind, chain_id, ts, payload, parent_fingerprint, fingerprint, leaf_hash) = row;
    Ok(LedgerRecord {
        tenant_id: TenantId::parse(tenant_id).map_err(|e| invalid("ledger entry", e))?,
        index: u64_of("ledger entry index", idx)?,
        kind: EntryKind::parse(&kind).ok_or_else(|| invalid("ledger entry kind", format!("unknown kind {kind:?}")))?,
        chain_id: chain_id.map(ChainId::parse).transpose().map_err(|e| invalid("ledger entry", e))?,
        timestamp: Timestamp::from_micros(ts),
        payload,
        parent_fingerprint,
        fingerprint,
        leaf_hash: hash32("ledger leaf hash", leaf_hash)?,
    })
}

pub(crate) fn checkpoint(row: CheckpointRow) -> Result<StoredCheckpoint, StoreError> {
    let (tenant_id, size, root_hash, signed_note, created_at) = row;
    Ok(StoredCheckpoint {
        tenant_id: TenantId::parse(tenant_id).map_err(|e| invalid("checkpoint", e))?,
        size: u64_of("checkpoint size", size)?,
        root_hash: hash32("checkpoint root", root_hash)?,
        signed_note,
        created_at: Timestamp::from_micros(created_at),
    })
}

/// Converts an index or size for binding; values above `i64::MAX` cannot occur in a real log.
pub(crate) fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn cost_values(cost: &CostRecord) -> (i64, i64) {
    (i64_of(cost.input_tokens), i64_of(cost.output_tokens))
}

/// Splits `items` into runs of power-of-two lengths, at most `max` (a power of two) each,
/// longest first. A multi-row statement is prepared once per distinct row count and kept in
/// the connection's statement cache, so batches of any size use at most log2(`max`) + 1
/// statements instead of one per size (each a large prepared program). Callers keep `max` to
/// 64–128 rows: a connection keeps every size it has run prepared, and at 256 rows such a
/// program is a few hundred KB; a larger batch is several statements in one transaction.
pub(crate) fn power_of_two_runs<T>(items: &[T], max: usize) -> Vec<&[T]> {
    let mut runs = Vec::new();
    let mut rest = items;
    while !rest.is_empty() {
        let take = rest.len().min(max);
        let take = 1usize << (usize::BITS - 1 - take.leading_zeros());
        let (run, tail) = rest.split_at(take);
        runs.push(run);
        rest = tail;
    }
    runs
}

/// `head`, then `rows` rows of `per_row` placeholders each, numbered in order (`$1, $2, …`,
/// which both backends bind by position), then `tail`: one multi-row statement.
pub(crate) fn values_sql(head: &str, per_row: usize, rows: usize, tail: &str) -> String {
    use std::fmt::Write as _;
    let mut sql = String::with_capacity(head.len() + tail.len() + rows * per_row * 6);
    sql.push_str(head);
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ",(" });
        for column in 0..per_row {
            let _ = write!(sql, "{}${}", if column == 0 { "" } else { "," }, row * per_row + column + 1);
        }
        sql.push(')');
    }
    sql.push_str(tail);
    sql
}

#[cfg(test)]
mod run_tests {
    use super::{power_of_two_runs, values_sql};

    #[test]
    fn values_are_numbered_row_after_row() {
        assert_eq!(
            values_sql("INSERT INTO t (a, b) VALUES ", 2, 2, " ON CONFLICT DO NOTHING"),
            "INSERT INTO t (a, b) VALUES ($1,$2),($3,$4) ON CONFLICT DO NOTHING"
        );
        assert_eq!(values_sql("X ", 3, 1, ""), "X ($1,$2,$3)");
    }

    #[test]
    fn runs_are_powers_of_two_capped_and_cover_everything_in_order() {
        let items: Vec<u32> = (0..1000).collect();
        let runs = power_of_two_runs(&items, 256);
        let lengths: Vec<usize> = runs.iter().map(|r| r.len()).collect();
        assert_eq!(lengths, vec![256, 256, 256, 128, 64, 32, 8]);
        assert_eq!(runs.concat(), items);
        assert!(power_of_two_runs::<u32>(&[], 8).is_empty());
        assert_eq!(power_of_two_runs(&[7], 8), vec![&[7][..]]);
    }
}

//! Shared helpers: starting a runtime on a test database, and tampering with it the way an
//! attacker with database access would.

use std::sync::Arc;
use std::time::Duration;

use domain::TenantId;
use domain::ledger::{EntryDraft, EntryKind};
use ed25519_dalek::SigningKey;
use ledger::checkpoint::CheckpointSigner;
use runtime::{Runtime, RuntimeConfig, RuntimeParts};
use serde_json::json;
use sqlx::Connection as _;
use store::test_support::TestDatabase;

pub fn signer(seed: u8) -> CheckpointSigner {
    CheckpointSigner::new(SigningKey::from_bytes(&[seed; 32]))
}

pub fn config() -> RuntimeConfig {
    // Checkpoints only when a test asks, so tests control exactly which sizes are signed.
    RuntimeConfig {
        ledger_origin: "test.nexus".into(),
        checkpoint_interval: Duration::from_secs(3600),
        ..RuntimeConfig::default()
    }
}

pub async fn runtime(db: &TestDatabase) -> Runtime {
    Runtime::start(RuntimeParts::new(Arc::clone(&db.store), signer(1), config(), None)).await.expect("runtime starts")
}

pub fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).expect("valid tenant id")
}

pub fn draft(i: u64) -> EntryDraft {
    let chain =
        if i.is_multiple_of(2) { Some(domain::ChainId::parse(format!("chain-{}", i % 3)).expect("id")) } else { None };
    EntryDraft { kind: EntryKind::SealIntent, chain_id: chain, payload: json!({"step": i, "tool": "knowledge_search"}) }
}

pub async fn append_n(rt: &Runtime, tenant: &TenantId, n: u64) {
    for i in 0..n {
        rt.ledger().append(tenant, draft(i)).await.expect("append");
    }
}

/// Runs raw SQL against the database with the append-only triggers disabled, as an attacker
/// with write access to the database file or server could.
pub async fn tamper(db: &TestDatabase, statements: &[&str]) {
    match db.backend {
        "sqlite" => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.expect("connect to SQLite");
            sqlx::query("DROP TRIGGER IF EXISTS ledger_entries_no_update")
                .execute(&mut conn)
                .await
                .expect("drop trigger");
            sqlx::query("DROP TRIGGER IF EXISTS ledger_entries_no_delete")
                .execute(&mut conn)
                .await
                .expect("drop trigger");
            for sql in statements {
                sqlx::query(sql).execute(&mut conn).await.expect("tamper");
            }
        }
        _ => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect to PostgreSQL");
            sqlx::query("ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_no_change")
                .execute(&mut conn)
                .await
                .expect("disable trigger");
            for sql in statements {
                sqlx::query(sql).execute(&mut conn).await.expect("tamper");
            }
        }
    }
}

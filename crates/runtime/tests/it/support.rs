//! Shared helpers: starting a runtime on a test database, and tampering with it the way an
//! attacker with database access would.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use domain::TenantId;
use domain::embed::{EmbedError, Embedder};
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

const DIMS: usize = 256;

/// A stand-in for the outside world's embedding model: a hashed bag of words in which a few
/// synonyms share a bucket. Fails on texts containing `POISON`.
#[derive(Default)]
pub struct WordsEmbedder {
    pub calls: AtomicUsize,
}

fn concept(word: &str) -> &str {
    match word {
        "car" | "cars" | "automobile" | "automobiles" | "vehicle" => "car",
        "doctor" | "physician" => "doctor",
        "tea" | "coffee" | "drink" | "drinks" | "beverage" => "drink",
        other => other,
    }
}

impl Embedder for WordsEmbedder {
    fn model(&self) -> &str {
        "test-words"
    }

    fn dims(&self) -> usize {
        DIMS
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.calls.fetch_add(texts.len(), Ordering::SeqCst);
        texts
            .iter()
            .map(|text| {
                if text.contains("POISON") {
                    return Err(EmbedError("the model refused this text".into()));
                }
                let mut v = vec![0f32; DIMS];
                for word in knowledge::terms(text) {
                    let bucket =
                        concept(&word).bytes().fold(2166136261u32, |h, b| (h ^ u32::from(b)).wrapping_mul(16777619));
                    v[bucket as usize % DIMS] += 1.0;
                }
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                if norm == 0.0 {
                    v[0] = 1.0;
                    return Ok(v);
                }
                Ok(v.into_iter().map(|x| x / norm).collect())
            })
            .collect()
    }
}

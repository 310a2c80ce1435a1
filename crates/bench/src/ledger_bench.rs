//! The ledger benchmark: durable appends per second through the group-commit writer on SQLite
//! and PostgreSQL (1, 8, 64 and 512 concurrent writers), against the baseline of one
//! transaction per entry on the same database; verification speed (in memory and from
//! SQLite); inclusion-proof generation and verification time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use domain::TenantId;
use domain::ledger::{EntryDraft, EntryKind, LedgerRecord};
use domain::ports::Store;
use ed25519_dalek::SigningKey;
use ledger::checkpoint::CheckpointSigner;
use ledger::encoding::seal_draft;
use ledger::proof::verify_inclusion;
use ledger::tree::MerkleTree;
use ledger::verify::LogVerifier;
use runtime::{Runtime, RuntimeConfig, RuntimeParts};
use serde_json::json;
use sqlx::Connection as _;

struct Sizes {
    append_window: Duration,
    baseline_entries: u64,
    verify_entries: u64,
    tree_leaves: u64,
    proofs: u64,
}

pub fn run(quick: bool) -> anyhow::Result<()> {
    let sizes = if quick {
        Sizes {
            append_window: Duration::from_millis(500),
            baseline_entries: 100,
            verify_entries: 50_000,
            tree_leaves: 100_000,
            proofs: 10_000,
        }
    } else {
        Sizes {
            append_window: Duration::from_secs(3),
            baseline_entries: 500,
            verify_entries: 1_000_000,
            tree_leaves: 1_000_000,
            proofs: 100_000,
        }
    };
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    println!("# ledger benchmark ({} cores)", std::thread::available_parallelism().map_or(1, |n| n.get()));
    println!(
        "targets: >= 50,000 durable appends/s on SQLite; verification >= 1,000,000 entries/s; inclusion proof < 100 us"
    );
    println!();
    pure(&sizes);
    tokio.block_on(durable(&sizes))
}

pub(crate) fn draft(i: u64) -> EntryDraft {
    EntryDraft {
        kind: EntryKind::ModelCall,
        chain_id: None,
        payload: json!({"model": "claude-haiku-4-5", "input_tokens": 812, "output_tokens": 96, "cost_usd": 0.00129, "n": i}),
    }
}

fn records(tenant: &TenantId, n: u64) -> Vec<LedgerRecord> {
    let mut parent = String::new();
    (0..n)
        .map(|i| {
            let r = seal_draft(
                tenant,
                i,
                &draft(i),
                domain::Timestamp::from_micros(1_700_000_000_000_000 + i as i64),
                std::mem::take(&mut parent),
            );
            parent = r.fingerprint.clone();
            r
        })
        .collect()
}

fn pure(sizes: &Sizes) {
    let tenant = TenantId::parse("bench").unwrap_or_else(|_| TenantId::generate());
    let log = records(&tenant, sizes.verify_entries);

    // Baseline: hashing the canonical bytes once per entry, the least any verifier must do.
    let started = Instant::now();
    let mut sink = 0u8;
    for r in &log {
        sink ^= ledger::hash::leaf_hash(&ledger::encoding::encode_record(r))[0];
    }
    let baseline = started.elapsed();

    let started = Instant::now();
    let mut verifier = LogVerifier::new(tenant.clone());
    for r in &log {
        if let Err(e) = verifier.push(r) {
            println!("verification failed unexpectedly: {e}");
            return;
        }
    }
    let full = started.elapsed();
    let rate = sizes.verify_entries as f64 / full.as_secs_f64();
    println!("## verification, in memory ({} entries)", sizes.verify_entries);
    println!(
        "full check (fingerprint + chain link + leaf hash + tree): {:>12.0} entries/s   baseline (one leaf hash per entry): {:>12.0} entries/s   ratio {:.2}  [{}]",
        rate,
        sizes.verify_entries as f64 / baseline.as_secs_f64(),
        full.as_secs_f64() / baseline.as_secs_f64(),
        if rate >= 1_000_000.0 { "meets target" } else { "BELOW target" },
    );
    std::hint::black_box(sink);

    let tree = MerkleTree::from_leaves((0..sizes.tree_leaves).map(|i| ledger::hash::sha256(&i.to_be_bytes())));
    let size = tree.size();
    let root = tree.root();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let indexes: Vec<u64> = (0..sizes.proofs)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % size
        })
        .collect();
    let started = Instant::now();
    let mut total_len = 0usize;
    for &i in &indexes {
        total_len += tree.inclusion_proof(i, size).map_or(0, |p| p.len());
    }
    let generate = started.elapsed().as_secs_f64() * 1e6 / sizes.proofs as f64;
    let proofs: Vec<_> = indexes.iter().filter_map(|&i| tree.inclusion_proof(i, size).ok().map(|p| (i, p))).collect();
    let started = Instant::now();
    let mut ok = 0;
    for (i, p) in &proofs {
        if let Some(leaf) = tree.leaf(*i) {
            ok += usize::from(verify_inclusion(&leaf, *i, size, p, &root).is_ok());
        }
    }
    let verify = started.elapsed().as_secs_f64() * 1e6 / proofs.len().max(1) as f64;
    println!();
    println!(
        "## inclusion proofs (tree of {} leaves, {} random proofs, {:.1} hashes each)",
        size,
        sizes.proofs,
        total_len as f64 / sizes.proofs as f64
    );
    println!(
        "generate: {generate:.2} us/proof [{}]   verify: {verify:.2} us/proof   ({ok} verified)",
        if generate < 100.0 { "meets target" } else { "BELOW target" }
    );
}

async fn durable(sizes: &Sizes) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    println!();
    println!("## durable appends, SQLite (WAL, synchronous=FULL)");
    let mut n = 0;
    let sqlite_factory = || {
        n += 1;
        let path = dir.path().join(format!("bench-{n}.db"));
        async move { Ok::<_, anyhow::Error>(Arc::new(store::SqliteStore::open(&path).await?) as Arc<dyn Store>) }
    };
    let sqlite_rate = appends(sizes, sqlite_factory).await?;

    let path = dir.path().join("verify.db");
    let db: Arc<dyn Store> = Arc::new(store::SqliteStore::open(&path).await?);
    verify_from(db, sizes.verify_entries.min(200_000), "SQLite").await?;
    crate::ledger_replicas::restart(&dir.path().join("restart.db"), sizes.tree_leaves).await?;

    println!();
    println!("## durable appends, PostgreSQL");
    let base = std::env::var("NEXUS_BENCH_POSTGRES_URL")
        .or_else(|_| std::env::var("NEXUS_TEST_POSTGRES_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    match sqlx::PgConnection::connect(&base).await {
        Err(e) => println!("skipped: PostgreSQL at {} is unreachable ({e})", store::redact(&base)),
        Ok(mut admin) => {
            let mut schemas = Vec::new();
            let pg_factory = || {
                let fresh = fresh_schema(&base, &mut schemas);
                async move {
                    let url = fresh.await?;
                    Ok::<_, anyhow::Error>(
                        Arc::new(store::PgStore::open(&url, store::redact(&url)).await?) as Arc<dyn Store>
                    )
                }
            };
            appends(sizes, pg_factory).await?;
            let replica_schema = || fresh_schema(&base, &mut schemas);
            crate::ledger_replicas::two_replicas(sizes.append_window < Duration::from_secs(1), replica_schema).await?;
            for schema in schemas {
                let _ = sqlx::query(&format!("DROP SCHEMA {schema} CASCADE")).execute(&mut admin).await;
            }
        }
    }
    println!();
    println!(
        "summary: SQLite group commit peaks at {:.0} durable appends/s [{}]",
        sqlite_rate,
        if sqlite_rate >= 50_000.0 { "meets target" } else { "BELOW target" }
    );
    Ok(())
}

/// Creates a fresh schema in the database at `base` (remembered in `made`, to be dropped) and
/// returns a URL that uses it.
fn fresh_schema(
    base: &str,
    made: &mut Vec<String>,
) -> impl std::future::Future<Output = anyhow::Result<String>> + use<> {
    let schema = format!("bench_{}", uuid::Uuid::new_v4().simple());
    made.push(schema.clone());
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
    let base = base.to_owned();
    async move {
        let mut conn = sqlx::PgConnection::connect(&base).await?;
        sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&mut conn).await?;
        Ok(url)
    }
}

/// Measures the baseline and the group-commit writer at several concurrencies, each on a fresh
/// database from `fresh`. Returns the best group-commit rate.
async fn appends<F, Fut>(sizes: &Sizes, mut fresh: F) -> anyhow::Result<f64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Arc<dyn Store>>>,
{
    let tenant = TenantId::parse("bench").context("tenant id")?;
    // Baseline: one transaction (one durable commit) per entry, straight to the store.
    let db = fresh().await?;
    let log = records(&tenant, sizes.baseline_entries);
    let started = Instant::now();
    for r in &log {
        db.append_records(std::slice::from_ref(r)).await?;
    }
    let baseline = sizes.baseline_entries as f64 / started.elapsed().as_secs_f64();
    println!("baseline, one commit per entry:           {baseline:>10.0} appends/s");
    db.close().await;

    let mut best: f64 = 0.0;
    for writers in [1usize, 8, 64, 512] {
        let db = fresh().await?;
        let signer = CheckpointSigner::new(SigningKey::from_bytes(&[7; 32]));
        let config = RuntimeConfig {
            ledger_origin: "bench.nexus".into(),
            checkpoint_interval: Duration::from_secs(1),
            ..RuntimeConfig::default()
        };
        let rt = Arc::new(Runtime::start(RuntimeParts::new(db.clone(), signer, config, None)).await?);
        let deadline = Instant::now() + sizes.append_window;
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..writers {
            let rt = rt.clone();
            let tenant = tenant.clone();
            tasks.spawn(async move {
                let mut done = 0u64;
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    rt.ledger().append(&tenant, draft(w as u64 + done)).await?;
                    latencies.push(t.elapsed());
                    done += 1;
                }
                Ok::<_, runtime::LedgerError>((done, latencies))
            });
        }
        let mut total = 0u64;
        let mut latencies = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            let (done, mut l) = joined??;
            total += done;
            latencies.append(&mut l);
        }
        let elapsed = started.elapsed().as_secs_f64();
        latencies.sort_unstable();
        let p50 = latencies.get(latencies.len() / 2).copied().unwrap_or_default();
        let p99 = latencies.get(latencies.len() * 99 / 100).copied().unwrap_or_default();
        let rate = total as f64 / elapsed;
        best = best.max(rate);
        println!(
            "group commit, {writers:>3} concurrent writers: {rate:>10.0} appends/s  ({:.1}x baseline; latency p50 {:.2} ms, p99 {:.2} ms; {total} entries)",
            rate / baseline,
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
        );
        rt.shutdown().await;
    }
    Ok(best)
}

/// Verification read back from the database: the path `nexus verify` takes.
async fn verify_from(db: Arc<dyn Store>, entries: u64, name: &str) -> anyhow::Result<()> {
    let tenant = TenantId::parse("verify").context("tenant id")?;
    let log = records(&tenant, entries);
    for chunk in log.chunks(5000) {
        db.append_records(chunk).await?;
    }
    let key = CheckpointSigner::new(SigningKey::from_bytes(&[7; 32]));
    let verifier = runtime::verify::Verifier { store: db.as_ref(), key: key.verifier(), origin_prefix: "bench.nexus" };
    let started = Instant::now();
    let report = verifier.tenant(&tenant, None).await?;
    let rate = report.entries as f64 / started.elapsed().as_secs_f64();
    println!(
        "verification read from {name} (what `nexus verify` does): {rate:>10.0} entries/s over {} entries",
        report.entries
    );
    db.close().await;
    Ok(())
}

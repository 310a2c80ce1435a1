//! The memory benchmark: one person's memory of 100k items (10k with `--quick`) on SQLite and,
//! when `NEXUS_TEST_POSTGRES_URL` is set, PostgreSQL. Reported:
//! 1. recall (`Runtime::recall`, what a run's retrieval step adds to its context) P50/P99, next
//!    to the baseline measured in the same run: the knowledge search that step already does,
//!    over 2,000 passages — so the cost memory adds to context assembly reads as a ratio;
//! 2. search with `q` (`GET /v1/memory?q=`) P50/P99;
//! 3. a write (`remember`: the duplicate check, the budget check, the insert and its seal) P50/P99.
//!
//! Recall and the knowledge search are both hybrid, as with a model loaded: every item and
//! passage has a vector from a stand-in model that costs nothing (the model's own time per
//! query is `bench models`'s), so the figures are the retrieval machinery's.
//!
//! Items are synthetic sentences of Zipf-distributed words from a 5,000-word vocabulary, stored
//! straight through the store (a person's budget is far below 100k items: the budget check is
//! measured on its own person).

use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::embed::Embedder;
use domain::knowledge::AccessLevel;
use domain::memory::{MemoryTrust, MemoryVersion, Provenance};
use domain::ports::Store;
use domain::{TenantId, Timestamp};
use ed25519_dalek::SigningKey;
use ledger::checkpoint::CheckpointSigner;
use runtime::memory::MemoryWrite;
use runtime::{Runtime, RuntimeConfig, RuntimeParts};

use crate::knowledge_bench::InstantEmbedder;

const VOCABULARY: usize = 5_000;
const OWNER: &str = "user:bench";
/// Item vectors stored per transaction while loading.
const VECTOR_BATCH: usize = 1_000;

pub fn run(quick: bool) -> anyhow::Result<()> {
    let items = if quick { 10_000 } else { 100_000 };
    let queries = if quick { 100 } else { 300 };
    println!("# memory benchmark ({items} items for one person)");
    println!("recall and knowledge search are hybrid (vectors from a stand-in model that costs nothing)");
    println!("reported: recall P50/P99 next to the knowledge search a run's retrieval already does (same run);");
    println!("          search with q; a write (duplicate check, budget check, insert, seal)");
    println!();
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    tokio.block_on(async {
        let sqlite = store::test_support::sqlite().await;
        measure("SQLite", sqlite.store.clone(), items, queries, None).await?;
        match store::test_support::postgres_schema_url().await {
            Some(url) => {
                let pg = store::open(&store::DatabaseUrl::parse(&url)?).await?;
                measure("PostgreSQL", pg, items, queries, Some(&url)).await?;
            }
            None => println!("PostgreSQL: not measured (set NEXUS_TEST_POSTGRES_URL)"),
        }
        anyhow::Ok(())
    })
}

/// A deterministic pseudo-random stream (xorshift), so runs compare.
struct Words(u64);

impl Words {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A word by a Zipf-like rank: small ranks far more often.
    fn word(&mut self) -> String {
        let u = (self.next() % 1_000_000) as f64 / 1_000_000.0;
        let rank = ((VOCABULARY as f64).powf(u) as usize).clamp(1, VOCABULARY);
        format!("w{rank}")
    }

    fn sentence(&mut self, words: usize) -> String {
        (0..words).map(|_| self.word()).collect::<Vec<_>>().join(" ")
    }
}

fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)].as_secs_f64() * 1e3;
    (at(0.5), at(0.99))
}

/// Measures one backend; `analyze` is a PostgreSQL URL whose tables get fresh statistics after
/// the bulk load (as autovacuum gives a table that grew, within a minute): right after loading
/// 100k rows the planner still believes the tables empty and sorts every item.
async fn measure(
    backend: &str,
    store: Arc<dyn Store>,
    items: usize,
    queries: usize,
    analyze: Option<&str>,
) -> anyhow::Result<()> {
    let signer = CheckpointSigner::new(SigningKey::from_bytes(&[9; 32]));
    let config = RuntimeConfig { ledger_origin: "bench.nexus".into(), ..RuntimeConfig::default() };
    let embedder: Arc<dyn Embedder> = Arc::new(InstantEmbedder);
    let parts = RuntimeParts::new(store.clone(), signer, config, Some(embedder.clone()));
    let runtime = Arc::new(Runtime::start(parts).await?);
    runtime.seed_demo().await?;
    let tenant = TenantId::parse(runtime::DEMO_TENANT)?;
    let mut words = Words(0x9e37_79b9_7f4a_7c15);

    let loading = Instant::now();
    let mut batch = Vec::with_capacity(VECTOR_BATCH);
    for n in 0..items {
        let content = words.sentence(12);
        let version = MemoryVersion {
            tenant: tenant.clone(),
            id: format!("bench-{n:08}"),
            owner: OWNER.into(),
            version: 1,
            content_hash: format!("{n:064x}"),
            content,
            trust: MemoryTrust::Confirmed,
            provenance: Provenance::default(),
            deleted: false,
            created_at: Timestamp::from_micros(1_700_000_000_000_000 + n as i64),
            created_by: "bench".into(),
        };
        store.append_memory(&version).await?;
        batch.push(version);
        if batch.len() == VECTOR_BATCH || n + 1 == items {
            let texts: Vec<&str> = batch.iter().map(|v| v.content.as_str()).collect();
            let vectors = embedder.embed(&texts)?;
            let keyed: Vec<(String, Vec<f32>)> = batch.drain(..).map(|v| v.content_hash).zip(vectors).collect();
            store.put_memory_vectors(&tenant, OWNER, embedder.model(), &keyed).await?;
        }
    }
    let knowledge = runtime.knowledge();
    for n in 0..2_000 {
        let text = words.sentence(60);
        knowledge.ingest_text(&tenant, "default", &format!("doc-{n}"), &text, AccessLevel::Internal).await?;
    }
    println!("{backend}: loaded {items} items and 2,000 passages in {:.1} s", loading.elapsed().as_secs_f64());
    if let Some(url) = analyze {
        use sqlx::Connection as _;
        let mut conn = sqlx::PgConnection::connect(url).await?;
        sqlx::query("ANALYZE memory_current, memory_versions, memory_vectors").execute(&mut conn).await?;
        println!("{backend}: statistics refreshed (ANALYZE) after the bulk load");
    }

    let tasks: Vec<String> = (0..queries).map(|_| words.sentence(8)).collect();
    let mut baseline = Vec::with_capacity(queries);
    let mut recall = Vec::with_capacity(queries);
    let mut recalled = 0usize;
    for task in &tasks {
        let started = Instant::now();
        knowledge.search(&tenant, "default", task, 3, AccessLevel::Internal).await?;
        baseline.push(started.elapsed());
        let started = Instant::now();
        let context = runtime.recall(&tenant, OWNER, task, 5).await?;
        recall.push(started.elapsed());
        recalled += context.lines().count().saturating_sub(1);
    }
    let (base50, base99) = percentiles(baseline);
    let (rec50, rec99) = percentiles(recall);
    println!(
        "{backend}: recall P50 {rec50:.2} ms, P99 {rec99:.2} ms ({:.1} items recalled per query) | knowledge search (baseline) P50 {base50:.2} ms, P99 {base99:.2} ms | context assembly {:.2}× the baseline at P50",
        recalled as f64 / queries as f64,
        (base50 + rec50) / base50.max(1e-9)
    );

    let mut search = Vec::with_capacity(queries);
    for task in &tasks {
        let term = task.split(' ').next().unwrap_or("w1");
        let started = Instant::now();
        runtime.memory_search(&tenant, OWNER, Some(term), false, 50).await?;
        search.push(started.elapsed());
    }
    let (s50, s99) = percentiles(search);
    println!("{backend}: search with q P50 {s50:.2} ms, P99 {s99:.2} ms (50 newest matches)");

    let mut writes = Vec::with_capacity(queries);
    for (n, task) in tasks.iter().enumerate() {
        let write = MemoryWrite {
            owner: "user:writer".into(),
            content: format!("{task} {n}"),
            trust: MemoryTrust::Confirmed,
            provenance: Provenance::default(),
            by: "bench".into(),
        };
        let started = Instant::now();
        runtime.remember(&tenant, write).await?;
        writes.push(started.elapsed());
    }
    let (w50, w99) = percentiles(writes);
    println!("{backend}: a write (checks, insert, seal) P50 {w50:.2} ms, P99 {w99:.2} ms");
    println!();
    runtime.shutdown().await;
    Ok(())
}

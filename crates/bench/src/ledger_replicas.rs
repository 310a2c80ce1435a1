//! Two processes appending for one tenant on one PostgreSQL database, as two `nexus serve`
//! replicas do: appends/s with one writer process (the baseline) and with two, and a read-back
//! of the ledger proving that every acknowledged append is stored exactly once and the log
//! verifies. Also: how fast a runtime restarted on a large log answers its first ledger
//! requests (its start reads the log head, not the entries).
//!
//! The writer processes are this binary again (`nexus-bench ledger-replica URL SECONDS
//! WRITERS`), so each has its own connection pool, ledger writer and memory, exactly like a
//! replica.

// Starting this benchmark's own writer processes is the point of this module.
#![allow(clippy::disallowed_methods)]

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use domain::TenantId;
use domain::ports::Store;
use ed25519_dalek::SigningKey;
use ledger::checkpoint::CheckpointSigner;
use runtime::{Runtime, RuntimeConfig, RuntimeParts};

const TENANT: &str = "replicated";

fn config() -> RuntimeConfig {
    RuntimeConfig {
        ledger_origin: "bench.nexus".into(),
        checkpoint_interval: Duration::from_secs(1),
        ..RuntimeConfig::default()
    }
}

fn signer() -> CheckpointSigner {
    CheckpointSigner::new(SigningKey::from_bytes(&[7; 32]))
}

/// The child: appends from `writers` tasks for `seconds`, then prints `acknowledged N`.
pub fn child(args: &[String]) -> anyhow::Result<()> {
    let [url, seconds, writers] = args else { bail!("usage: nexus-bench ledger-replica URL SECONDS WRITERS") };
    let seconds: f64 = seconds.parse().context("SECONDS")?;
    let writers: u64 = writers.parse().context("WRITERS")?;
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    tokio.block_on(async {
        let store: Arc<dyn Store> = Arc::new(store::PgStore::open(url, store::redact(url)).await?);
        let rt = Arc::new(Runtime::start(RuntimeParts::new(store, signer(), config(), None)).await?);
        let tenant = TenantId::parse(TENANT).context("tenant id")?;
        let deadline = Instant::now() + Duration::from_secs_f64(seconds);
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..writers {
            let rt = rt.clone();
            let tenant = tenant.clone();
            tasks.spawn(async move {
                let mut done = 0u64;
                while Instant::now() < deadline {
                    rt.ledger().append(&tenant, crate::ledger_bench::draft(w * 1_000_000 + done)).await?;
                    done += 1;
                }
                Ok::<_, runtime::LedgerError>(done)
            });
        }
        let mut total = 0u64;
        while let Some(joined) = tasks.join_next().await {
            total += joined??;
        }
        rt.shutdown().await;
        println!("acknowledged {total}");
        Ok(())
    })
}

/// Runs `processes` writer processes at once against `url`; returns (acknowledged, seconds).
fn run_writers(url: &str, processes: usize, seconds: f64, writers: u64) -> anyhow::Result<(u64, f64)> {
    let exe = std::env::current_exe().context("locating the benchmark binary")?;
    let started = Instant::now();
    let children: Vec<_> = (0..processes)
        .map(|_| {
            Command::new(&exe)
                .args(["ledger-replica", url, &seconds.to_string(), &writers.to_string()])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .context("starting a writer process")
        })
        .collect::<Result<_, _>>()?;
    let mut acknowledged = 0;
    for child in children {
        let out = child.wait_with_output().context("waiting for a writer process")?;
        if !out.status.success() {
            bail!("a writer process failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let n: u64 = stdout
            .lines()
            .find_map(|l| l.strip_prefix("acknowledged "))
            .context("no count from a writer process")?
            .trim()
            .parse()?;
        acknowledged += n;
    }
    Ok((acknowledged, started.elapsed().as_secs_f64()))
}

/// One run of the two-replica measurement on a fresh schema made by `fresh` (returns its URL).
pub async fn two_replicas<F, Fut>(quick: bool, mut fresh: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<String>>,
{
    let seconds = if quick { 1.0 } else { 5.0 };
    let writers = 64;
    println!();
    println!(
        "## one tenant, several writer processes on one PostgreSQL database ({writers} writers each, {seconds} s)"
    );
    for processes in [1usize, 2] {
        let url = fresh().await?;
        // Migrated here, before the writers start.
        let db: Arc<dyn Store> = Arc::new(store::PgStore::open(&url, store::redact(&url)).await?);
        let (acknowledged, elapsed) = {
            let url = url.clone();
            tokio::task::spawn_blocking(move || run_writers(&url, processes, seconds, writers)).await??
        };
        let tenant = TenantId::parse(TENANT).context("tenant id")?;
        let stored = db.ledger_size(&tenant).await?;
        let key = signer();
        let verifier =
            runtime::verify::Verifier { store: db.as_ref(), key: key.verifier(), origin_prefix: "bench.nexus" };
        let verified = verifier.tenant(&tenant, None).await.map(|r| r.entries);
        println!(
            "{processes} process(es): {:>8.0} appends/s; {acknowledged} acknowledged, {stored} stored [{}]; verification: {}",
            acknowledged as f64 / elapsed,
            if stored == acknowledged { "none lost, none doubled" } else { "MISMATCH" },
            match verified {
                Ok(n) => format!("ok, {n} entries"),
                Err(e) => format!("FAILED: {e}"),
            }
        );
        db.close().await;
    }
    Ok(())
}

/// Builds a log of `entries` through the writer, restarts on it, and times the first requests.
pub async fn restart(db_path: &std::path::Path, entries: u64) -> anyhow::Result<()> {
    let tenant = TenantId::parse("restart").context("tenant id")?;
    println!();
    println!("## restart on a log of {entries} entries (SQLite)");
    {
        let store: Arc<dyn Store> = Arc::new(store::SqliteStore::open(db_path).await?);
        let rt = Arc::new(Runtime::start(RuntimeParts::new(store.clone(), signer(), config(), None)).await?);
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..256u64 {
            let rt = rt.clone();
            let tenant = tenant.clone();
            tasks.spawn(async move {
                for i in (w..entries).step_by(256) {
                    rt.ledger().append(&tenant, crate::ledger_bench::draft(i)).await?;
                }
                Ok::<_, runtime::LedgerError>(())
            });
        }
        while let Some(joined) = tasks.join_next().await {
            joined??;
        }
        rt.shutdown().await;
        store.close().await;
    }
    let started = Instant::now();
    let store: Arc<dyn Store> = Arc::new(store::SqliteStore::open(db_path).await?);
    let rt = Runtime::start(RuntimeParts::new(store, signer(), config(), None)).await?;
    let start = started.elapsed();
    let t = Instant::now();
    let appended = rt.ledger().append(&tenant, crate::ledger_bench::draft(entries)).await?;
    let first_append = t.elapsed();
    let t = Instant::now();
    let checkpoint = rt.ledger().checkpoint(&tenant).await?;
    let first_checkpoint = t.elapsed();
    let t = Instant::now();
    let proof = rt.ledger().inclusion_proof(&tenant, entries / 3, checkpoint.size).await?;
    let first_proof = t.elapsed();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "open + start {:.2} ms; first append (#{}) {:.2} ms [{}]; first checkpoint {:.2} ms; first inclusion proof ({} hashes) {:.2} ms; writer cache {} bytes",
        ms(start),
        appended.index,
        ms(first_append),
        if first_append < Duration::from_millis(5) { "meets < 5 ms" } else { "ABOVE 5 ms" },
        ms(first_checkpoint),
        proof.len(),
        ms(first_proof),
        rt.ledger().cached_bytes(),
    );
    rt.shutdown().await;
    Ok(())
}

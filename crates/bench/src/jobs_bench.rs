//! The job queue benchmark: jobs claimed and completed per second on SQLite and PostgreSQL
//! with 1 and 8 workers (each worker claims under a lease and finishes the job as completed, the
//! queue's own cost with no work in the job), next to the baseline of enqueueing the same jobs
//! (one insert each) in the same run; and the scheduling delay (planned time to claimed) of a
//! schedule firing every second under the runtime's own scheduler and workers.
//!
//! PostgreSQL is measured when `NEXUS_TEST_POSTGRES_URL` names a database; each run uses a fresh
//! schema in it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::job::{Job, JobKind, JobOutcome, MissedRuns};
use domain::ports::Store;
use domain::{TenantId, Timestamp};
use ed25519_dalek::SigningKey;
use ledger::checkpoint::CheckpointSigner;
use runtime::jobs::{JobSettings, NewSchedule};
use runtime::{Runtime, RuntimeConfig, RuntimeParts};
use serde_json::json;

/// Tenants the jobs are spread over (the per-tenant cap is set above the worker count, so it
/// never holds a worker back here).
const TENANTS: usize = 4;

pub fn run(quick: bool) -> anyhow::Result<()> {
    let jobs = if quick { 200 } else { 2000 };
    let delay_for = if quick { Duration::from_secs(5) } else { Duration::from_secs(30) };
    println!("# job queue benchmark");
    println!("reported: jobs claimed and completed per second (1 and 8 workers) next to enqueues per second;");
    println!("          scheduling delay of a schedule firing every second (planned → claimed, P50/P99)");
    println!();
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    tokio.block_on(async {
        let sqlite = store::test_support::sqlite().await;
        throughput("SQLite", &sqlite.store, jobs).await?;
        match store::test_support::postgres_schema_url().await {
            Some(url) => {
                let pg = store::open(&store::DatabaseUrl::parse(&url)?).await?;
                throughput("PostgreSQL", &pg, jobs).await?;
            }
            None => println!("PostgreSQL: not measured (set NEXUS_TEST_POSTGRES_URL)"),
        }
        let sqlite = store::test_support::sqlite().await;
        scheduling_delay(&sqlite.store, delay_for).await
    })
}

fn job(tenant: &TenantId, n: usize) -> Job {
    let now = Timestamp::now();
    let payload = json!({"equipment": "health_check"}).to_string();
    Job::pending(tenant.clone(), format!("job_bench{n:012}"), JobKind::Equipment, payload, now, 3, "bench".into(), now)
}

async fn tenants(store: &Arc<dyn Store>) -> anyhow::Result<Vec<TenantId>> {
    let mut out = Vec::new();
    for i in 0..TENANTS {
        let id = TenantId::parse(format!("bench-{i}"))?;
        let tenant = domain::tenant::Tenant::new(id.clone(), format!("bench {i}"));
        store.insert_tenant_if_missing(&tenant).await?;
        out.push(id);
    }
    Ok(out)
}

async fn throughput(backend: &str, store: &Arc<dyn Store>, jobs: usize) -> anyhow::Result<()> {
    let tenants = tenants(store).await?;
    let mut offset = 0;
    for workers in [1usize, 8] {
        let started = Instant::now();
        for n in 0..jobs {
            store.insert_job(&job(&tenants[n % TENANTS], offset + n)).await?;
        }
        let enqueued = jobs as f64 / started.elapsed().as_secs_f64();
        offset += jobs;

        let started = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for w in 0..workers {
            let store = store.clone();
            set.spawn(async move {
                let owner = format!("bench-worker-{w}");
                let mut done = 0usize;
                loop {
                    let now = Timestamp::now();
                    let claimed = store.claim_job(&owner, now, now.plus(Duration::from_secs(30)), 64).await?;
                    let Some(job) = claimed else { break };
                    let outcome = JobOutcome::Completed { result: "{}".into() };
                    if !store.finish_job(&job.tenant_id, &job.id, &owner, &outcome, Timestamp::now()).await? {
                        anyhow::bail!("lost job {} while holding it", job.id);
                    }
                    done += 1;
                }
                Ok::<usize, anyhow::Error>(done)
            });
        }
        let mut total = 0;
        while let Some(joined) = set.join_next().await {
            total += joined??;
        }
        let elapsed = started.elapsed().as_secs_f64();
        anyhow::ensure!(total == jobs, "{backend}: {total} of {jobs} jobs completed");
        println!(
            "{backend:<10} {workers} worker(s): {:>8.0} jobs claimed+completed/s   (baseline: {:>8.0} enqueues/s, one insert each)",
            total as f64 / elapsed,
            enqueued
        );
    }
    Ok(())
}

async fn scheduling_delay(store: &Arc<dyn Store>, run_for: Duration) -> anyhow::Result<()> {
    let config = RuntimeConfig {
        ledger_origin: "bench.nexus".into(),
        jobs: JobSettings { workers: 2, ..JobSettings::default() },
        ..RuntimeConfig::default()
    };
    let signer = CheckpointSigner::new(SigningKey::from_bytes(&[9; 32]));
    let runtime = Arc::new(Runtime::start(RuntimeParts::new(store.clone(), signer, config, None)).await?);
    runtime.seed_demo().await?;
    let tenant = TenantId::parse(runtime::DEMO_TENANT)?;
    let new = NewSchedule {
        name: "every-second".into(),
        cron: "* * * * * *".into(),
        timezone: None,
        kind: JobKind::Equipment,
        payload: json!({"equipment": "health_check"}),
        missed: MissedRuns::Skip,
        enabled: true,
    };
    let schedule = runtime.create_schedule(&tenant, new, "bench").await?;
    let handles = runtime.start_jobs();
    tokio::time::sleep(run_for).await;
    for handle in handles {
        handle.abort();
    }
    let filter = domain::job::JobFilter { schedule_id: Some(schedule.id), ..Default::default() };
    let fired = runtime.jobs(&tenant, &filter, 500).await?;
    let mut delays: Vec<f64> = fired
        .iter()
        .filter_map(|j| j.started_at.map(|s| (s.as_micros() - j.run_at.as_micros()) as f64 / 1000.0))
        .collect();
    delays.sort_by(f64::total_cmp);
    let pick = |p: f64| delays.get(((delays.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(f64::NAN);
    println!(
        "scheduling delay (SQLite, sweep every {:?}, workers poll every {:?}): {} runs, P50 {:.0} ms, P99 {:.0} ms",
        JobSettings::default().sweep,
        JobSettings::default().poll,
        delays.len(),
        pick(0.5),
        pick(0.99)
    );
    runtime.shutdown().await;
    Ok(())
}

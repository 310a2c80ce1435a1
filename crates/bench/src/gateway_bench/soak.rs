//! `cargo xtask bench gateway --soak`: about 1,000 blocking chat completions a second through
//! `nexus serve` as shipped (its own process, pinned to the server core) for ten minutes
//! (`NEXUS_BENCH_SOAK_SECS`; one minute with `--quick`), its resident size sampled every ten
//! seconds, and the slope fitted by least squares over the run after the first fifth (start-up
//! and warm caches excluded). Flat memory means a slope near zero; the ledger is read back
//! afterwards to show every answered call was recorded.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::load::{Connection, Target, Until, closed_loop};
use super::mock::{self, MockConfig};
use super::shipped::{Shipped, print_recorded};
use super::{BODY, PATH};

/// Connections sharing the load (a durable answer waits for its commit, so one connection
/// alone could not carry 1,000 requests a second with `durable`; kept for the same load
/// shape as before).
const CONNECTIONS: u64 = 8;
const RATE_PER_SECOND: u64 = 1_000;
const SAMPLE_EVERY: Duration = Duration::from_secs(10);

pub async fn run(
    quick: bool,
    mock_config: MockConfig,
    server_core: Option<core_affinity::CoreId>,
) -> anyhow::Result<()> {
    let window = std::env::var("NEXUS_BENCH_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map_or(if quick { Duration::from_secs(60) } else { Duration::from_secs(600) }, Duration::from_secs);
    let mock = mock::start(mock_config).await?;
    let shipped = Shipped::start(&mock, server_core.map(|c| c.id))?;
    let nexus = Arc::new(Target::new(shipped.address, PATH, Some(&shipped.key), BODY, false));
    println!(
        "# gateway soak: ~{RATE_PER_SECOND} blocking chat completions/s through `nexus serve` as shipped ({}) over {CONNECTIONS} connections for {:.0} s; its RSS every {} s",
        server_core.map_or_else(|| "not pinned".to_owned(), |c| format!("pinned to core {}", c.id)),
        window.as_secs_f64(),
        SAMPLE_EVERY.as_secs()
    );
    let warm = closed_loop(&nexus, CONNECTIONS as usize, Until::Count(2_000)).await?;
    let sent = Arc::new(AtomicU64::new(warm.count()));
    let started = Instant::now();
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..CONNECTIONS {
        let (nexus, sent) = (nexus.clone(), sent.clone());
        senders.spawn(async move {
            let mut connection = Connection::open(nexus.address).await?;
            let mut ticks = tokio::time::interval(Duration::from_micros(1_000_000 * CONNECTIONS / RATE_PER_SECOND));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            while started.elapsed() < window {
                ticks.tick().await;
                connection.exchange(&nexus).await?;
                sent.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    let mut samples: Vec<(f64, f64)> = Vec::new();
    let mut last_count = sent.load(Ordering::Relaxed);
    let mib = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
    println!(
        "{:>8}  {:>10}  {:>10}  {:>10}  {:>10}  {:>10}",
        "seconds", "RSS MiB", "anon MiB", "file MiB", "shmem MiB", "req/s"
    );
    while started.elapsed() < window {
        // A sender that stops early (the server died, say) ends the soak with its error now.
        if let Ok(Some(joined)) = tokio::time::timeout(SAMPLE_EVERY, senders.join_next()).await {
            joined??;
            continue;
        }
        let now = sent.load(Ordering::Relaxed);
        let t = started.elapsed().as_secs_f64();
        let memory = shipped.server.memory();
        let Some(rss) = memory.rss else {
            anyhow::bail!("nexus serve's memory could not be read: has it exited?");
        };
        samples.push((t, rss));
        println!(
            "{t:>8.0}  {rss:>10.2}  {:>10}  {:>10}  {:>10}  {:>10.0}",
            mib(memory.anon),
            mib(memory.file),
            mib(memory.shared),
            (now - last_count) as f64 / SAMPLE_EVERY.as_secs_f64()
        );
        last_count = now;
    }
    while let Some(joined) = senders.join_next().await {
        joined??;
    }
    let settled: Vec<(f64, f64)> = samples.iter().copied().filter(|(t, _)| *t >= window.as_secs_f64() / 5.0).collect();
    let slope = least_squares_slope(&settled);
    let total = sent.load(Ordering::Relaxed);
    println!();
    match (slope, samples.first(), samples.last()) {
        (Some(per_second), Some(first), Some(last)) => {
            let per_minute = per_second * 60.0;
            println!(
                "RSS {:.2} MiB at {:.0} s → {:.2} MiB at {:.0} s; slope after settling {per_minute:+.3} MiB/min ({:+.1} MiB/day) [{}]",
                first.1,
                first.0,
                last.1,
                last.0,
                per_minute * 60.0 * 24.0,
                if per_minute.abs() * 10.0 <= 1.0 { "flat: under 1 MiB per 10 min" } else { "GROWING" }
            );
            let peak = shipped.server.memory().peak;
            println!(
                "peak RSS (VmHWM) of nexus serve: {} MiB [{}]",
                mib(peak),
                if peak.is_some_and(|p| p * 1.048_576 <= 30.0) { "met: <= 30 MB" } else { "NOT met: <= 30 MB" }
            );
        }
        _ => println!("too few RSS samples for a slope (run longer: NEXUS_BENCH_SOAK_SECS)"),
    }
    let recorded = shipped.stop().await?;
    println!("after SIGTERM, nexus verify: {}", recorded.verified);
    print_recorded(&recorded, total);
    Ok(())
}

/// The least-squares slope of `y` over `x`, if there are at least two distinct `x`.
fn least_squares_slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

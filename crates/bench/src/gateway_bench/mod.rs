//! The gateway benchmark (the overhead Nexus adds to a model call): the same OpenAI chat
//! completion sent straight to a zero-latency mock provider and through Nexus to that mock, in
//! one run. Nexus runs as `nexus serve` would (key auth, two rate-limit counters, budget check,
//! pricing, a ledger entry with its cost record queued for the writer as `nexus serve` ships,
//! SQLite in WAL mode, the Prometheus recorder) on a current-thread runtime pinned to one core;
//! the mock and the load generator share another core. Prints added latency at concurrency 1, requests per
//! second at concurrency 32, added time to first token when streaming, memory, and the ledger
//! read back after shutdown. Then the same figures for `nexus serve` as a user starts it, in its
//! own process on the server core (`shipped.rs`): the figures that count for users.

mod histogram;
mod load;
mod mock;
mod server;
mod shipped;
mod soak;
mod system;

use std::sync::Arc;
use std::time::{Duration, Instant};

use load::{Percentiles, RunResult, Target, Until, closed_loop};
use mock::MockConfig;
use server::{Placement, Server};
use system::CpuTimes;

const PATH: &str = "/v1/chat/completions";
const BODY: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a terse assistant."},{"role":"user","content":"Say hello in five words."}],"max_tokens":64}"#;
const STREAM_BODY: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a terse assistant."},{"role":"user","content":"Say hello in five words."}],"max_tokens":64,"stream":true,"stream_options":{"include_usage":true}}"#;
const CONCURRENCY: usize = 32;

struct Sizes {
    warmup: usize,
    latency_requests: usize,
    rounds: usize,
    throughput_window: Duration,
    stream_requests: usize,
    paced_window: Duration,
}

pub fn run(quick: bool, soak: bool) -> anyhow::Result<()> {
    let sizes = if quick {
        Sizes {
            warmup: 300,
            latency_requests: 1000,
            rounds: 4,
            throughput_window: Duration::from_secs(1),
            stream_requests: 500,
            paced_window: Duration::from_secs(2),
        }
    } else {
        Sizes {
            warmup: 2000,
            latency_requests: 5000,
            rounds: 10,
            throughput_window: Duration::from_secs(5),
            stream_requests: 5000,
            paced_window: Duration::from_secs(10),
        }
    };
    let mock_config = MockConfig::from_env()?;
    // Logging as `nexus serve` sets it up by default: info and above, on standard error.
    let _ = tracing_subscriber::fmt().with_env_filter("info").with_writer(std::io::stderr).try_init();
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let (server_core, load_core) = match (cores.first(), cores.get(1)) {
        (Some(server), Some(load)) => (Some(*server), Some(*load)),
        _ => (None, None),
    };
    let load_pinned = load_core.filter(|core| core_affinity::set_for_current(*core)).map(|core| core.id);
    let tokio = tokio::runtime::Builder::new_current_thread().enable_all().thread_name("bench-blocking").build()?;
    if soak {
        return tokio.block_on(soak::run(quick, mock_config, server_core));
    }
    tokio.block_on(bench(&sizes, mock_config, server_core, load_pinned, cores.len()))
}

async fn bench(
    sizes: &Sizes,
    mock_config: MockConfig,
    server_core: Option<core_affinity::CoreId>,
    load_pinned: Option<usize>,
    cores: usize,
) -> anyhow::Result<()> {
    let rss_start = system::rss_mib();
    let mock = mock::start(mock_config).await?;
    let server = Server::start(mock.base_url(), server_core).await?;
    let mut rss = vec![("before Nexus started", rss_start), ("Nexus started", system::rss_mib())];
    header(&server.placement, load_pinned, cores, &mock_config);

    let direct = Arc::new(Target::new(mock.address, PATH, None, BODY, false));
    let nexus = Arc::new(Target::new(server.address, PATH, Some(&server.key), BODY, false));
    let direct_stream = Arc::new(Target::new(mock.address, PATH, None, STREAM_BODY, true));
    let nexus_stream = Arc::new(Target::new(server.address, PATH, Some(&server.key), STREAM_BODY, true));
    let mut through_nexus = 0u64;

    // Warm-up: connections opened (client to Nexus, Nexus's pool to the mock), caches filled.
    for target in [&direct, &nexus, &direct_stream, &nexus_stream] {
        for concurrency in [1, CONCURRENCY] {
            let run = closed_loop(target, concurrency, Until::Count(sizes.warmup)).await?;
            if Arc::ptr_eq(target, &nexus) || Arc::ptr_eq(target, &nexus_stream) {
                through_nexus += run.count();
            }
        }
    }

    rss.push(("after warm-up", system::rss_mib()));

    // Concurrency 1, blocking: the two paths alternate in rounds so drift hits both alike.
    println!(
        "## blocking chat completion, concurrency 1 ({} requests per path, alternating in {} rounds)",
        sizes.latency_requests, sizes.rounds
    );
    let per_round = sizes.latency_requests.div_ceil(sizes.rounds);
    let (mut direct_c1, mut nexus_c1) = (RunResult::default(), RunResult::default());
    let mut nexus_cpu = CpuTimes::default();
    for _ in 0..sizes.rounds {
        direct_c1.merge(&closed_loop(&direct, 1, Until::Count(per_round)).await?);
        let before = CpuTimes::now();
        let run = closed_loop(&nexus, 1, Until::Count(per_round)).await?;
        if let (Some(before), Some(after)) = (before, CpuTimes::now()) {
            nexus_cpu.nexus += after.since(before).nexus;
        }
        nexus_c1.merge(&run);
    }
    through_nexus += nexus_c1.count();
    print_added_latency("Nexus", &direct_c1, &nexus_c1);
    print_wake_floor(server_core, load_pinned.map(|id| core_affinity::CoreId { id }));
    println!(
        "Nexus CPU per request (server thread, its blocking pool and SQLite workers): {:.1} us",
        nexus_cpu.nexus.as_secs_f64() * 1e6 / nexus_c1.count().max(1) as f64
    );

    rss.push(("after c=1", system::rss_mib()));

    // Concurrency 32, blocking: throughput.
    println!();
    println!(
        "## blocking chat completion, concurrency {CONCURRENCY} ({:.0} s per path)",
        sizes.throughput_window.as_secs_f64()
    );
    let direct_run = closed_loop(&direct, CONCURRENCY, Until::Elapsed(sizes.throughput_window)).await?;
    print_rate("direct to mock", &direct_run);
    rss.push(("after direct c=32", system::rss_mib()));
    let before = CpuTimes::now();
    let deepest = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sampler = runtime::tasks::spawn("bench-queue-depth", {
        let (runtime, deepest) = (server.runtime.clone(), deepest.clone());
        async move {
            loop {
                deepest.fetch_max(runtime.ledger().queue_depth(), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    });
    let nexus_run = closed_loop(&nexus, CONCURRENCY, Until::Elapsed(sizes.throughput_window)).await?;
    sampler.abort();
    let used = before.zip(CpuTimes::now()).map(|(before, after)| after.since(before));
    through_nexus += nexus_run.count();
    rss.push(("after Nexus c=32", system::rss_mib()));
    print_rate("through Nexus", &nexus_run);
    let rate = nexus_run.per_second();
    println!(
        "Nexus: {rate:.0} req/s [{}], {:.2}x the direct rate",
        verdict(rate >= 15_000.0, ">= 15,000 req/s"),
        rate / direct_run.per_second().max(1e-9)
    );
    if let Some(used) = used {
        let window = nexus_run.elapsed.as_secs_f64();
        let per_request = used.nexus.as_secs_f64() / nexus_run.count().max(1) as f64;
        println!(
            "CPU during that window: Nexus's core {:.0}% busy ({:.1} us per request, a ceiling of ~{:.0} req/s on one core); mock + load generator {:.0}% of a core",
            used.nexus.as_secs_f64() / window * 100.0,
            per_request * 1e6,
            1.0 / per_request.max(1e-9),
            used.rest.as_secs_f64() / window * 100.0,
        );
    }
    println!(
        "ledger queue: deepest {} entries waiting for the writer (sampled every ms; capacity 16,384)",
        deepest.load(std::sync::atomic::Ordering::Relaxed)
    );

    // Concurrency 1, streaming: time to the first content chunk.
    println!();
    println!(
        "## streamed chat completion, concurrency 1 ({} requests per path, {} content chunks each, alternating in {} rounds)",
        sizes.stream_requests, mock_config.chunks, sizes.rounds
    );
    let (direct_streams, nexus_streams) =
        alternate(&direct_stream, &nexus_stream, sizes.stream_requests, sizes.rounds).await?;
    through_nexus += nexus_streams.count();
    print_added_first_token(&direct_streams, &nexus_streams);

    // About 1,000 requests/s through Nexus for a while, to see whether memory stays flat.
    println!();
    rss.push(("after streaming", system::rss_mib()));
    let paced = paced(&nexus, sizes.paced_window).await?;
    through_nexus += paced;
    rss.push(("after ~1,000 req/s", system::rss_mib()));
    let peak = system::peak_rss_mib();
    println!("## memory (one process: the Nexus server, the mock provider and the load generator)");
    let steps: Vec<String> = rss.iter().map(|(when, value)| format!("{when} {}", mib(*value))).collect();
    println!("RSS: {}", steps.join(" | "));
    println!("(~1,000 req/s: {paced} requests over {:.0} s on one connection)", sizes.paced_window.as_secs_f64());
    let peak_value = peak.unwrap_or(f64::INFINITY);
    println!(
        "peak RSS (VmHWM) of the whole process: {} [{}]; attributable to Nexus (peak minus RSS before it started): {}",
        mib(peak),
        verdict(peak_value * 1.048_576 <= 30.0, "<= 30 MB"),
        mib(peak.zip(rss_start).map(|(peak, start)| peak - start)),
    );
    println!("(a 10-minute soak is not part of this run: cargo xtask bench gateway --soak)");

    let answered_by_mock = mock.answered.load(std::sync::atomic::Ordering::Relaxed);
    let report = server.stop().await?;
    println!();
    println!("## ledger, read back from the database after runtime.shutdown()");
    println!(
        "{} model_call entries and {} cost records for {through_nexus} requests answered through Nexus [{}]; the mock answered {answered_by_mock} requests in all",
        report.model_calls,
        report.cost_records,
        if report.model_calls == through_nexus && report.cost_records == through_nexus {
            "none dropped"
        } else {
            "MISMATCH"
        },
    );
    println!("whole log verified: {} entries, {} signed checkpoints", report.entries, report.checkpoints);
    println!(
        "budget refresh query over {} cost records: {:.2} ms (runs inline in the request that finds the cached spend older than {} s)",
        report.cost_records,
        report.budget_refresh.as_secs_f64() * 1e3,
        runtime::budget::REFRESH_EVERY.as_secs()
    );
    shipped::run(sizes, &mock, server_core.map(|c| c.id)).await
}

fn header(placement: &Placement, load_pinned: Option<usize>, cores: usize, mock: &MockConfig) {
    let server = match placement {
        Placement::Pinned(core) => format!("Nexus on core {core} (pinned, current-thread runtime)"),
        Placement::Unpinned(why) => format!("Nexus on a current-thread runtime, NOT pinned: {why}"),
    };
    let load = match load_pinned {
        Some(core) => format!("mock + load generator on core {core} (pinned)"),
        None => "mock + load generator not pinned".to_owned(),
    };
    println!("# gateway benchmark ({cores} cores; {server}; {load})");
    println!(
        "targets: added latency p50 <= 50 us and p99 <= 250 us at concurrency 1; >= 15,000 req/s; streaming time to first token added <= 100 us; memory <= 30 MB"
    );
    println!(
        "request: POST {PATH}, model gpt-4o-mini, nxs_ key; Nexus does key auth, 2 rate-limit counters, budget check, routing, OpenAI provider (reqwest) to the mock, pricing, ledger entry + cost record, answered once queued for the writer as `nexus serve` ships (SQLite, WAL, synchronous=FULL; committed in batches); Prometheus recorder and info logging on"
    );
    println!(
        "mock provider (raw HTTP/1.1, pre-built answers): latency {} us, {} streamed content chunks, {} us between chunks (NEXUS_BENCH_MOCK_LATENCY_US, NEXUS_BENCH_STREAM_CHUNKS, NEXUS_BENCH_CHUNK_DELAY_US); /metrics scraped: {} (NEXUS_BENCH_SCRAPE_MS)",
        mock.latency.as_micros(),
        mock.chunks,
        mock.chunk_delay.as_micros(),
        std::env::var("NEXUS_BENCH_SCRAPE_MS").map_or_else(|_| "never".to_owned(), |ms| format!("every {ms} ms"))
    );
    println!();
}

/// One connection sending a request every millisecond (or as fast as answers come back).
async fn paced(target: &Arc<Target>, window: Duration) -> anyhow::Result<u64> {
    let mut connection = load::Connection::open(target.address).await?;
    let mut ticks = tokio::time::interval(Duration::from_millis(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let started = Instant::now();
    let mut sent = 0;
    while started.elapsed() < window {
        ticks.tick().await;
        connection.exchange(target).await?;
        sent += 1;
    }
    Ok(sent)
}

fn diff_us(a: Duration, b: Duration) -> f64 {
    (a.as_secs_f64() - b.as_secs_f64()) * 1e6
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Both paths' latency at concurrency 1 and what Nexus adds, against the targets.
/// `requests` one at a time down each path, the paths alternating in `rounds` so drift on the
/// machine hits both alike.
async fn alternate(
    direct: &Arc<Target>,
    nexus: &Arc<Target>,
    requests: usize,
    rounds: usize,
) -> anyhow::Result<(RunResult, RunResult)> {
    let per_round = requests.div_ceil(rounds);
    let (mut direct_run, mut nexus_run) = (RunResult::default(), RunResult::default());
    for _ in 0..rounds {
        direct_run.merge(&closed_loop(direct, 1, Until::Count(per_round)).await?);
        nexus_run.merge(&closed_loop(nexus, 1, Until::Count(per_round)).await?);
    }
    Ok((direct_run, nexus_run))
}

fn print_added_latency(who: &str, direct: &RunResult, nexus: &RunResult) {
    let (direct, nexus) = (Percentiles::of(&direct.latency), Percentiles::of(&nexus.latency));
    print_latency("direct to mock", &direct);
    print_latency("through Nexus", &nexus);
    let added_p50 = diff_us(nexus.p50, direct.p50);
    let added_p99 = diff_us(nexus.p99, direct.p99);
    println!(
        "added by {who}:  p50 {added_p50:+8.1} us [{}]   p99 {added_p99:+8.1} us [{}]",
        verdict(added_p50 <= 50.0, "<= 50 us"),
        verdict(added_p99 <= 250.0, "<= 250 us"),
    );
}

/// What waking a thread on the other core costs on this machine, measured here: a call through
/// Nexus crosses between the two cores four times (load generator → Nexus → mock → Nexus →
/// load generator), the direct path not at all, so two of these round trips are part of every
/// added figure at concurrency 1 whatever the gateway does.
fn print_wake_floor(server: Option<core_affinity::CoreId>, load: Option<core_affinity::CoreId>) {
    let (Some(server), Some(load)) = (server, load) else { return };
    match (system::wake_round_trip(server, load), system::wake_round_trip(load, load)) {
        (Some((cross, cross_p99)), Some((same, _))) => println!(
            "the machine's floor: a wake-up round trip between the two cores takes p50 {cross:.1} us (p99 {cross_p99:.1} us), {same:.1} us within one core; a call through Nexus crosses cores four times, so about {:.0} us of the added p50 is the machine's",
            2.0 * (cross - same)
        ),
        _ => println!("the machine's floor: could not pin threads to measure the cross-core wake-up"),
    }
}

/// Both paths' streaming times and the time to first token Nexus adds, against the target.
fn print_added_first_token(direct: &RunResult, nexus: &RunResult) {
    let (direct_ttft, nexus_ttft) = (Percentiles::of(&direct.first_token), Percentiles::of(&nexus.first_token));
    print_stream("direct to mock", &direct_ttft, &Percentiles::of(&direct.latency));
    print_stream("through Nexus", &nexus_ttft, &Percentiles::of(&nexus.latency));
    let added_ttft = diff_us(nexus_ttft.p50, direct_ttft.p50);
    println!(
        "added time to first token: p50 {added_ttft:+8.1} us [{}]   p99 {:+8.1} us",
        verdict(added_ttft <= 100.0, "<= 100 us"),
        diff_us(nexus_ttft.p99, direct_ttft.p99),
    );
}

fn print_latency(label: &str, p: &Percentiles) {
    println!("{label:<15}  p50 {:>8.1} us   p99 {:>8.1} us   p99.9 {:>8.1} us", us(p.p50), us(p.p99), us(p.p999));
}

fn print_rate(label: &str, run: &RunResult) {
    let p = Percentiles::of(&run.latency);
    println!(
        "{label:<15}  {:>8.0} req/s ({} requests)   latency p50 {:>8.1} us   p99 {:>8.1} us",
        run.per_second(),
        run.count(),
        us(p.p50),
        us(p.p99)
    );
}

fn print_stream(label: &str, ttft: &Percentiles, whole: &Percentiles) {
    println!(
        "{label:<15}  first token p50 {:>8.1} us   p99 {:>8.1} us   whole stream p50 {:>8.1} us   p99 {:>8.1} us",
        us(ttft.p50),
        us(ttft.p99),
        us(whole.p50),
        us(whole.p99)
    );
}

fn mib(value: Option<f64>) -> String {
    value.map_or_else(|| "unavailable".to_owned(), |v| format!("{v:.1} MiB"))
}

fn verdict(met: bool, target: &str) -> String {
    if met { format!("met: {target}") } else { format!("NOT met: {target}") }
}

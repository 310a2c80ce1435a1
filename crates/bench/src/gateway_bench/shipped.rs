//! The gateway benchmark's figures for `nexus serve` as a user starts it: the release binary
//! in its own process (its default multi-thread runtime, console and API routes, channel
//! supervisor, maintenance loop, logging), pinned to the server core with `taskset`, OpenAI
//! configured through `OPENAI_BASE_URL` to point at the same mock, rate limits raised so
//! nothing is refused. The same requests go straight to the mock in alternating rounds, so
//! each added figure has its baseline from the same minute. Calls are acknowledged as the
//! server ships (`queued`); one more concurrency-1 pass asks for durable answers, for
//! comparison.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use domain::ports::Store as _;

use super::load::{Target, Until, closed_loop};
use super::mock::Mock;
use super::server;
use super::{
    BODY, CONCURRENCY, PATH, STREAM_BODY, Sizes, alternate, print_added_first_token, print_added_latency, print_rate,
    verdict,
};
use crate::serve_process::{self, Serve};

/// `nexus serve` as shipped, in its own process and data directory, with OpenAI pointed at
/// the mock and a key of the `demo` tenant.
pub(super) struct Shipped {
    // Declared first so it is dropped (the process killed) before its directories are removed.
    pub server: Serve,
    binary: PathBuf,
    data: tempfile::TempDir,
    _no_models: tempfile::TempDir,
    vars: Vec<(&'static str, String)>,
    pub key: String,
    pub address: SocketAddr,
}

/// What the shipped server's ledger held after it stopped.
pub(super) struct Recorded {
    pub model_calls: u64,
    pub cost_records: u64,
    /// The first line `nexus verify` printed.
    pub verified: String,
}

impl Shipped {
    /// Starts it (pinned to `core` when given) and waits until `/ready` answers.
    pub fn start(mock: &Mock, core: Option<usize>) -> anyhow::Result<Self> {
        let binary = serve_process::nexus_binary()?;
        let data = tempfile::tempdir().context("a data directory")?;
        let no_models = tempfile::tempdir().context("an empty models directory")?;
        let models = no_models.path().to_str().context("a UTF-8 temporary directory")?.to_owned();
        let vars = vec![
            ("OPENAI_API_KEY", "sk-bench".to_owned()),
            ("OPENAI_BASE_URL", mock.base_url()),
            ("NEXUS_RATE_LIMIT_KEY_RPM", "60000000".to_owned()),
            ("NEXUS_RATE_LIMIT_TENANT_RPM", "60000000".to_owned()),
            ("NEXUS_MODELS_DIR", models),
        ];
        let borrowed: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let key = serve_process::run(
            &binary,
            data.path(),
            &["keys", "create", "--tenant", "demo", "--name", "bench"],
            &borrowed,
        )?
        .trim()
        .to_owned();
        let server = Serve::start(&binary, data.path(), &borrowed, core)?;
        server.until_ok("/ready")?;
        let address: SocketAddr = server.address.parse().context("the address nexus serve logged")?;
        Ok(Self { binary, data, _no_models: no_models, vars, key, server, address })
    }

    /// SIGTERM as an init system sends it, then the ledger read back from the database and
    /// checked with `nexus verify`.
    pub async fn stop(self) -> anyhow::Result<Recorded> {
        self.server.stop()?;
        let store = store::SqliteStore::open(&self.data.path().join("nexus.db")).await?;
        let counted = server::count_recorded(&store, &domain::TenantId::parse("demo")?).await;
        store.close().await;
        let (model_calls, cost_records) = counted?;
        let vars: Vec<(&str, &str)> = self.vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let verified = serve_process::run(&self.binary, self.data.path(), &["verify"], &vars)?;
        let verified = verified.lines().next().unwrap_or("(no output)").to_owned();
        Ok(Recorded { model_calls, cost_records, verified })
    }
}

pub(super) async fn run(sizes: &Sizes, mock: &Mock, core: Option<usize>) -> anyhow::Result<()> {
    let shipped = Shipped::start(mock, core)?;
    let (address, key) = (shipped.address, shipped.key.clone());
    println!();
    println!(
        "## as shipped: `nexus serve` ({}), its own process, {}",
        shipped.binary.display(),
        core.map_or_else(|| "not pinned".to_owned(), |c| format!("pinned to core {c} with taskset"))
    );
    let direct = Arc::new(Target::new(mock.address, PATH, None, BODY, false));
    let nexus = Arc::new(Target::new(address, PATH, Some(&key), BODY, false));
    let durable =
        Arc::new(Target::new(address, PATH, Some(&key), BODY, false).with_header("x-nexus-ledger-ack", "durable"));
    let direct_stream = Arc::new(Target::new(mock.address, PATH, None, STREAM_BODY, true));
    let nexus_stream = Arc::new(Target::new(address, PATH, Some(&key), STREAM_BODY, true));
    let mut through_nexus = 0u64;
    for target in [&nexus, &nexus_stream] {
        for concurrency in [1, CONCURRENCY] {
            through_nexus += closed_loop(target, concurrency, Until::Count(sizes.warmup)).await?.count();
        }
    }

    let (direct_c1, nexus_c1) = alternate(&direct, &nexus, sizes.latency_requests, sizes.rounds).await?;
    println!("blocking, concurrency 1 ({} requests per path):", sizes.latency_requests);
    print_added_latency("nexus serve", &direct_c1, &nexus_c1);
    through_nexus += nexus_c1.count();
    // For comparison: each answer waits for its own durable commit (an fsync) when asked to.
    let (direct_c1, durable_c1) = alternate(&direct, &durable, sizes.latency_requests, sizes.rounds).await?;
    println!("blocking, concurrency 1, asking for durable answers (x-nexus-ledger-ack: durable):");
    print_added_latency("nexus serve, durable", &direct_c1, &durable_c1);
    through_nexus += durable_c1.count();

    println!("blocking, concurrency {CONCURRENCY} ({:.0} s per path):", sizes.throughput_window.as_secs_f64());
    let direct_run = closed_loop(&direct, CONCURRENCY, Until::Elapsed(sizes.throughput_window)).await?;
    print_rate("direct to mock", &direct_run);
    let nexus_run = closed_loop(&nexus, CONCURRENCY, Until::Elapsed(sizes.throughput_window)).await?;
    print_rate("through Nexus", &nexus_run);
    through_nexus += nexus_run.count();
    println!(
        "nexus serve: {:.0} req/s [{}]",
        nexus_run.per_second(),
        verdict(nexus_run.per_second() >= 15_000.0, ">= 15,000 req/s")
    );
    let (rss, _) = shipped.server.memory_mib();

    let (direct_streams, nexus_streams) =
        alternate(&direct_stream, &nexus_stream, sizes.stream_requests, sizes.rounds).await?;
    println!("streamed, concurrency 1 ({} requests per path):", sizes.stream_requests);
    print_added_first_token(&direct_streams, &nexus_streams);
    through_nexus += nexus_streams.count();
    let (after, peak) = shipped.server.memory_mib();
    let mib = |v: Option<f64>| v.map_or_else(|| "unavailable".to_owned(), |v| format!("{v:.1} MiB"));
    println!(
        "nexus serve's memory: RSS {} after c={CONCURRENCY}, {} at the end; peak (VmHWM) {} [{}]",
        mib(rss),
        mib(after),
        mib(peak),
        verdict(peak.is_some_and(|p| p * 1.048_576 <= 30.0), "<= 30 MB")
    );
    let recorded = shipped.stop().await?;
    println!("after SIGTERM, nexus verify: {}", recorded.verified);
    print_recorded(&recorded, through_nexus);
    Ok(())
}

/// The ledger's count against the requests answered through Nexus.
pub(super) fn print_recorded(recorded: &Recorded, answered: u64) {
    println!(
        "ledger read back: {} model_call entries and {} cost records for {answered} requests answered through nexus serve [{}]",
        recorded.model_calls,
        recorded.cost_records,
        if recorded.model_calls == answered && recorded.cost_records == answered { "none dropped" } else { "MISMATCH" },
    );
}

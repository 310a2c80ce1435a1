//! The Nexus server under test, assembled as `nexus serve` assembles it (runtime on SQLite,
//! agent services with the OpenAI provider pointed at the mock, `gateway::router` on a
//! `TcpListener` with `TCP_NODELAY`, the Prometheus recorder installed) and run on a
//! current-thread tokio runtime on its own OS thread, pinned to one core when the OS lets us.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use domain::TenantId;
use domain::ledger::EntryKind;
use domain::ports::{CostStore as _, LedgerStore as _, RecordFilter, Store};
use domain::tenant::{Role, UserLevel};
use ed25519_dalek::SigningKey;
use ledger::checkpoint::CheckpointSigner;
use providers::openai::{OpenAiConfig, OpenAiProvider};
use providers::{ApiKey, ModelProvider};
use runtime::agent::{AgentServices, ModelTarget, Models};
use runtime::limits::LimitSettings;
use runtime::{Runtime, RuntimeConfig, RuntimeParts};
use tokio::sync::oneshot;

const TENANT: &str = "demo";
const ORIGIN: &str = "bench.nexus";
const SIGNING_KEY: [u8; 32] = [7; 32];

/// Where the server's thread was placed.
#[derive(Debug, Clone)]
pub enum Placement {
    Pinned(usize),
    Unpinned(&'static str),
}

/// A running server.
pub struct Server {
    pub address: SocketAddr,
    /// A fresh `nxs_` key of the demo tenant.
    pub key: String,
    pub placement: Placement,
    /// For reading gauges (the ledger queue's depth) from the load generator's thread.
    pub runtime: Arc<Runtime>,
    stop: oneshot::Sender<()>,
    done: oneshot::Receiver<anyhow::Result<LedgerReport>>,
    thread: std::thread::JoinHandle<()>,
}

/// The ledger as found in the database after the runtime shut down.
#[derive(Debug, Clone)]
pub struct LedgerReport {
    pub model_calls: u64,
    pub cost_records: u64,
    pub entries: u64,
    pub checkpoints: usize,
    /// One `tenant_cost_since` over this month's cost records, as the budget refresh runs it.
    pub budget_refresh: Duration,
}

struct Ready {
    address: SocketAddr,
    key: String,
    placement: Placement,
    runtime: Arc<Runtime>,
}

impl Server {
    /// Starts the server thread and waits until it listens.
    pub async fn start(provider_base_url: String, core: Option<core_affinity::CoreId>) -> anyhow::Result<Self> {
        let (ready_tx, ready_rx) = oneshot::channel();
        let (stop, stop_rx) = oneshot::channel();
        let (done_tx, done) = oneshot::channel();
        let thread = std::thread::Builder::new().name("nexus-server".into()).spawn(move || {
            let placement = match core {
                Some(core) if core_affinity::set_for_current(core) => Placement::Pinned(core.id),
                Some(_) => Placement::Unpinned("the OS refused to pin the thread"),
                None => Placement::Unpinned("fewer than two cores are available"),
            };
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .thread_name("nexus-blocking")
                .build()
                .context("building the server's tokio runtime")
                .and_then(|tokio| tokio.block_on(serve(provider_base_url, placement, ready_tx, stop_rx)));
            let _ = done_tx.send(result);
        })?;
        match ready_rx.await {
            Ok(ready) => Ok(Self {
                address: ready.address,
                key: ready.key,
                placement: ready.placement,
                runtime: ready.runtime,
                stop,
                done,
                thread,
            }),
            Err(_) => {
                let error = done.await.map_or_else(
                    |_| anyhow::anyhow!("the server thread died"),
                    |r| r.err().unwrap_or_else(|| anyhow::anyhow!("the server stopped before listening")),
                );
                Err(error)
            }
        }
    }

    /// Stops serving, shuts the runtime down (draining the ledger queue) and reads back what
    /// was recorded.
    pub async fn stop(self) -> anyhow::Result<LedgerReport> {
        drop(self.runtime);
        let _ = self.stop.send(());
        let report = self.done.await.context("the server thread died")?;
        let _ = self.thread.join();
        report
    }
}

async fn serve(
    provider_base_url: String,
    placement: Placement,
    ready: oneshot::Sender<Ready>,
    stop: oneshot::Receiver<()>,
) -> anyhow::Result<LedgerReport> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("gateway.db");
    let store: Arc<dyn Store> = Arc::new(store::SqliteStore::open(&path).await?);
    let config = RuntimeConfig {
        ledger_origin: ORIGIN.into(),
        checkpoint_interval: Duration::from_secs(1),
        token_secret: Some(vec![42; 32]),
        // High enough never to refuse; every request is still counted against both.
        limits: LimitSettings {
            key_requests_per_minute: 60_000_000,
            tenant_requests_per_minute: 60_000_000,
            tenant_chains_per_hour: 1000,
        },
        // The seeded $50 a month: checked on every call, never reached by this run's costs.
        default_budget_usd: None,
        budget_alert_fraction: None,
        // As `nexus serve` ships: answered once the ledger writer has the entry.
        gateway_ack: runtime::llm::LedgerAck::Queued,
        ..RuntimeConfig::default()
    };
    let mut parts = RuntimeParts::new(store, CheckpointSigner::new(SigningKey::from_bytes(&SIGNING_KEY)), config, None);
    let openai: Arc<dyn ModelProvider> = Arc::new(OpenAiProvider::new(OpenAiConfig {
        base_url: provider_base_url,
        ..OpenAiConfig::openai(ApiKey::new("sk-bench"))
    })?);
    let target = ModelTarget { provider: openai.clone(), model: "gpt-4o-mini".into() };
    let services = AgentServices {
        models: Models::Configured { trivial: target.clone(), normal: target.clone(), complex: target },
        providers: vec![openai],
        tools: tools::builtins(&tools::BuiltinSettings::default(), Arc::new(parts.knowledge())),
        sandbox: tools::Sandbox::default(),
        workspace_root: dir.path().join("workspace"),
        prices: providers::pricing::PriceTable::builtin(),
        approval_ttl: Duration::from_secs(3600),
    };
    parts.agent = Some(services);
    let runtime = Runtime::start(parts).await?;
    runtime.seed_demo().await?;
    let runtime = Arc::new(runtime);
    let tenant = TenantId::parse(TENANT)?;
    let key = runtime.create_api_key(&tenant, "bench", UserLevel::NEWCOMER, Role::Member).await?.secret;

    // What `nexus serve` runs beside the server.
    let maintained = runtime.clone();
    let maintenance = runtime::tasks::spawn("bench-maintenance", async move {
        loop {
            let _ = maintained.resume_unfinished().await;
            let _ = maintained.auth().flush_last_used().await;
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    });
    // As `nexus serve` installs it: its buckets, and upkeep every 5 s.
    let render = gateway::install_recorder()?;
    // Like a Prometheus server scraping /metrics every N ms (NEXUS_BENCH_SCRAPE_MS); off by
    // default, as in a deployment nobody scrapes.
    let scrape = match std::env::var("NEXUS_BENCH_SCRAPE_MS").ok().and_then(|v| v.parse::<u64>().ok()) {
        Some(ms) if ms > 0 => {
            let render = render.clone();
            Some(runtime::tasks::spawn("bench-scrape", async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    std::hint::black_box(render());
                }
            }))
        }
        _ => None,
    };
    let state = gateway::AppState::new(runtime.clone()).with_metrics(render);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let _ = ready.send(Ready { address, key, placement, runtime: runtime.clone() });
    axum::serve(listener, gateway::router(state))
        .with_graceful_shutdown(async move {
            let _ = stop.await;
        })
        .await?;
    maintenance.abort();
    if let Some(scrape) = scrape {
        scrape.abort();
    }
    let _ = runtime.auth().flush_last_used().await;
    runtime.shutdown().await;
    read_back(&path, &tenant).await
}

/// Opens the database afresh and counts what the gateway recorded, then verifies the log.
async fn read_back(path: &Path, tenant: &TenantId) -> anyhow::Result<LedgerReport> {
    let store = store::SqliteStore::open(path).await?;
    let (model_calls, cost_records) = count_recorded(&store, tenant).await?;
    // What a budget refresh costs now (the request that finds the cached spend older than
    // budget::REFRESH_EVERY runs this query before calling the provider).
    let started = std::time::Instant::now();
    store.tenant_cost_since(tenant, runtime::budget::month_start(chrono::Utc::now())).await?;
    let budget_refresh = started.elapsed();
    let key = CheckpointSigner::new(SigningKey::from_bytes(&SIGNING_KEY));
    let verifier = runtime::verify::Verifier { store: &store, key: key.verifier(), origin_prefix: ORIGIN };
    let verified = verifier.tenant(tenant, None).await?;
    store.close().await;
    Ok(LedgerReport {
        model_calls,
        cost_records,
        entries: verified.entries,
        checkpoints: verified.checkpoints,
        budget_refresh,
    })
}

/// The tenant's `model_call` ledger entries and the calls its cost records count.
pub async fn count_recorded(store: &store::SqliteStore, tenant: &TenantId) -> anyhow::Result<(u64, u64)> {
    let mut model_calls = 0u64;
    let mut filter = RecordFilter { kind: Some(EntryKind::ModelCall), ..RecordFilter::default() };
    loop {
        let page = store.records_page(tenant, &filter, 1000).await?;
        let Some(last) = page.last() else { break };
        filter.before = Some(last.index);
        model_calls += page.len() as u64;
    }
    let since = domain::Timestamp::from_micros(0);
    let until = domain::Timestamp::from_micros(domain::Timestamp::now().as_micros() + 86_400_000_000);
    let cost_records = store.usage(tenant, since, until).await?.iter().map(|row| row.calls).sum();
    Ok((model_calls, cost_records))
}

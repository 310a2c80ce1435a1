//! The runtime: the one façade every front-end (HTTP, CLI, channels, schedulers) calls.
//!
//! It owns the storage port and the ledger service, starts their background tasks, and shuts
//! them down in order.
//!
//! **Architecture Invariant:** the runtime knows ports, never concrete databases; it does not
//! depend on `sqlx` or `axum`.

pub mod agent;
mod agent_control;
mod approvals;
pub mod auth;
pub mod budget;
pub mod chain_events;
pub mod channels;
pub mod chat;
pub mod equipment;
pub mod error;
pub mod feed;
pub mod jobs;
pub mod keys;
pub mod knowledge;
mod ledger_proofs;
pub mod ledger_service;
pub mod limits;
pub mod llm;
pub mod logs;
pub mod memory;
pub mod moderation;
pub mod plugins;
pub mod revocations;
pub mod routing;
mod run_state;
pub mod runs;
mod seed;
pub mod settings;
pub mod tasks;
mod tenants;
pub mod verify;
pub mod watchers;
pub mod web_users;

use std::sync::Arc;
use std::time::Duration;

use domain::ports::Store;
use ledger::checkpoint::{CheckpointSigner, signer_key_ids};

pub use error::{LedgerError, StartError, VerifyError};
pub use ledger_service::{Appended, LedgerService};
pub use seed::{DEMO_TENANT, SeedReport};
pub use tools::Availability;

/// Settings the runtime needs, already resolved.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Prefix of every checkpoint origin, e.g. `nexus.local` → `nexus.local/ledger/<tenant>`.
    pub ledger_origin: String,
    /// How sure the classifier must be that a request is trivial for a run to answer it with
    /// no plan (below: planned on the normal tier).
    pub direct_answer_confidence: f64,
    /// Where the equipment writes and reads on this machine.
    pub equipment: equipment::EquipmentSettings,
    /// The job workers and the scheduler.
    pub jobs: jobs::JobSettings,
    /// How sure the classifier must be that a request is for a piece of equipment for the
    /// equipment to answer it with no model (below: a model answers, as any request).
    pub equipment_confidence: f64,
    /// How often checkpoints are signed for logs that grew.
    pub checkpoint_interval: Duration,
    /// Signs API tokens (HS256). `None`: a random secret for this process only.
    pub token_secret: Option<Vec<u8>>,
    pub limits: limits::LimitSettings,
    /// Monthly budget of tenants without their own (default $50).
    pub default_budget_usd: Option<f64>,
    /// Fraction of the budget that raises the alert (default 0.8).
    pub budget_alert_fraction: Option<f64>,
    /// How watchers fetch and post.
    pub watchers: watchers::WatcherSettings,
    /// The most steps a run's plan may have (`None`: the engine's default, 5).
    pub max_plan_steps: Option<usize>,
    /// Knowledge namespaces holding content the tenant did not write: a run that reads their
    /// passages is tainted.
    pub untrusted_namespaces: Vec<String>,
    /// When a gateway call is answered relative to its ledger entry, and whether an agent run
    /// waits for its model calls' entries (default here: durable; `nexus serve` defaults to
    /// queued).
    pub gateway_ack: llm::LedgerAck,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            ledger_origin: "nexus.local".into(),
            direct_answer_confidence: 0.5,
            equipment_confidence: 0.75,
            equipment: equipment::EquipmentSettings::default(),
            jobs: jobs::JobSettings::default(),
            checkpoint_interval: Duration::from_secs(1),
            token_secret: None,
            limits: limits::LimitSettings::default(),
            default_budget_usd: None,
            budget_alert_fraction: None,
            watchers: watchers::WatcherSettings::default(),
            max_plan_steps: None,
            untrusted_namespaces: Vec::new(),
            gateway_ack: llm::LedgerAck::Durable,
        }
    }
}

/// How ready the runtime is to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    pub backend: &'static str,
    /// `Err` with the reason when the database does not answer.
    pub database: Result<(), String>,
    /// The in-process models, each with its state; empty when the process has none to load.
    pub models: Vec<ModelReadiness>,
}

impl Readiness {
    /// Whether the process can serve everything it was started to serve: the database answers
    /// and no model is still loading (a model that failed or is absent leaves its fallback in
    /// force, which is ready).
    pub fn is_ready(&self) -> bool {
        self.database.is_ok() && !self.models.iter().any(|m| m.state == ModelState::Loading)
    }
}

/// Where an in-process model stands: servers load them in the background after start, so the
/// process answers at once and a request that needs a model still loading waits for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelState {
    Loading,
    Ready,
    /// Loading failed; the model's fallback is in force and `detail` says why.
    Failed,
    /// Its files are not in the models directory; the fallback is in force.
    Absent,
}

impl ModelState {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelState::Loading => "loading",
            ModelState::Ready => "ready",
            ModelState::Failed => "failed",
            ModelState::Absent => "absent",
        }
    }
}

/// One in-process model as `/ready` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelReadiness {
    /// `embeddings`, `classifier` or `local`.
    pub name: &'static str,
    pub state: ModelState,
    /// Why it failed, what to do when absent, how long loading took when ready.
    pub detail: Option<String>,
}

/// Reports the in-process models' state (implemented where they are loaded).
pub trait ModelsStatus: Send + Sync {
    fn models(&self) -> Vec<ModelReadiness>;
}

pub struct Runtime {
    store: Arc<dyn Store>,
    ledger: LedgerService,
    config: RuntimeConfig,
    /// Replaced whole when settings change (providers rebuilt, breakers reset); a run holds the
    /// services it started with.
    agent: std::sync::RwLock<Option<Arc<agent::AgentServices>>>,
    events: tokio::sync::broadcast::Sender<agent::RunEvent>,
    /// This process's identity as the owner of the runs it drives.
    instance: String,
    heartbeat: tokio::task::JoinHandle<()>,
    /// Runs this process is driving right now (never taken over by its own resume sweep).
    active: std::sync::Mutex<std::collections::HashSet<domain::ChainId>>,
    auth: Arc<auth::Authenticator>,
    /// The key-revocation watcher, once started (stopped at shutdown).
    revocation_watcher: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    limits: limits::RateLimits,
    budgets: budget::Budgets,
    router: Arc<dyn llm::TierRouter>,
    chain_events: chain_events::EventLog,
    /// Every process's run events, for live views.
    feed: feed::Feed,
    /// This process's recent log lines, when its logging keeps them.
    logs: Option<Arc<logs::LogTail>>,
    /// Chat replies being written by this process.
    replies: chat::Replies,
    /// Each chat channel's health on this process.
    channels: channels::ChannelBoard,
    /// Runs asked to stop before their next action.
    cancels: std::sync::Mutex<std::collections::HashSet<domain::ChainId>>,
    notices: tokio::sync::broadcast::Sender<llm::Notice>,
    /// Wakes this process's idle job workers when it enqueues a job that is due now.
    job_wake: tokio::sync::Notify,
    /// The tenants' knowledge bases (one service, so its vector indexes are shared); it holds
    /// the embedding model, when one is loaded.
    knowledge: knowledge::KnowledgeService,
    backups: Option<Arc<dyn equipment::Backups>>,
    /// Live settings, when this process manages them.
    settings: Option<settings::SettingsState>,
    /// The settings watcher, once started (stopped at shutdown).
    settings_watcher: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Plugins, when this process runs them.
    plugins: Option<Arc<plugins::Plugins>>,
    /// The plugin watcher, once started (stopped at shutdown).
    plugin_watcher: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The in-process models' loading state, when they load in the background.
    models_status: Option<Arc<dyn ModelsStatus>>,
}

/// How often a runtime records that it is alive.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);
/// After this long without a heartbeat, an instance's runs may be taken over.
pub const OWNER_STALE_AFTER: Duration = Duration::from_secs(15);

/// Everything a runtime is made of, assembled by the composition root and consumed by
/// [`Runtime::start`]: nothing about a runtime changes after it starts, so no set-up step can
/// come too late or in the wrong order.
pub struct RuntimeParts {
    store: Arc<dyn Store>,
    knowledge: knowledge::KnowledgeService,
    pub signer: CheckpointSigner,
    pub config: RuntimeConfig,
    /// Where rate-limit counts are shared (e.g. Redis); `None`: this process's memory.
    pub rate_counter: Option<Arc<dyn domain::limits::RateCounter>>,
    /// Routes `nexus/auto` (e.g. the in-process classifier); `None`: the heuristic rule.
    pub router: Option<Arc<dyn llm::TierRouter>>,
    /// Models, tools and sandbox; `None`: the agent is not enabled (runs are refused).
    pub agent: Option<agent::AgentServices>,
    /// Where the process's logging keeps its recent lines (servers); `None`: not kept.
    pub logs: Option<Arc<logs::LogTail>>,
    /// Takes backups of the whole database (the `backup` equipment); `None`: not available.
    pub backups: Option<Arc<dyn equipment::Backups>>,
    /// Live settings (registry, master key, how to rebuild); `None`: settings come from the
    /// file and environment only.
    pub settings: Option<settings::SettingsParts>,
    /// The in-process models' loading state, for `/ready`; `None`: nothing loads in the
    /// background.
    pub models_status: Option<Arc<dyn ModelsStatus>>,
    /// Plugins (built-in manifests and the MCP connector); `None`: no plugins. The same value
    /// is the agent's tool source (`tools::Registry::with_source`).
    pub plugins: Option<Arc<plugins::Plugins>>,
}

impl RuntimeParts {
    /// The parts of a runtime over a migrated store. `embedder` (in-process sentence embeddings)
    /// serves `/v1/embeddings` and gate 2 and makes knowledge search hybrid (BM25 and vectors);
    /// without it search is BM25 only and gate 2 skips.
    pub fn new(
        store: Arc<dyn Store>,
        signer: CheckpointSigner,
        config: RuntimeConfig,
        embedder: Option<Arc<dyn domain::embed::Embedder>>,
    ) -> Self {
        let knowledge = knowledge::KnowledgeService::new(store.clone());
        let knowledge = match embedder {
            Some(embedder) => knowledge.with_embedder(embedder),
            None => knowledge,
        };
        Self {
            store,
            knowledge,
            signer,
            config,
            rate_counter: None,
            router: None,
            agent: None,
            logs: None,
            backups: None,
            settings: None,
            models_status: None,
            plugins: None,
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The knowledge service the runtime will own, for the agent's tools to search: one
    /// service, so ingests and searches share its vector indexes.
    pub fn knowledge(&self) -> knowledge::KnowledgeService {
        self.knowledge.clone()
    }
}

impl Runtime {
    /// Starts the runtime from its parts. Refuses to start when the signing key is not the key
    /// that signed the checkpoints already in the database.
    pub async fn start(parts: RuntimeParts) -> Result<Self, StartError> {
        let RuntimeParts {
            store,
            knowledge,
            signer,
            config,
            rate_counter,
            router,
            agent,
            logs,
            backups,
            settings,
            models_status,
            plugins,
        } = parts;
        check_signing_key(store.as_ref(), &signer).await?;
        let ledger =
            LedgerService::start(store.clone(), signer, config.ledger_origin.clone(), config.checkpoint_interval);
        ledger.catch_up().await.map_err(|error| match error {
            LedgerError::Store(store) => StartError::Store(store),
            other => StartError::Ledger(other),
        })?;
        let (events, _) = tokio::sync::broadcast::channel(1024);
        let instance = format!("nexus-{}", domain::ChainId::generate());
        store.heartbeat(&instance, domain::Timestamp::now()).await?;
        let heartbeat = tasks::spawn("heartbeat", {
            let store = store.clone();
            let instance = instance.clone();
            async move {
                loop {
                    tokio::time::sleep(HEARTBEAT_EVERY).await;
                    if let Err(error) = store.heartbeat(&instance, domain::Timestamp::now()).await {
                        tracing::warn!(%error, "could not record the heartbeat");
                    }
                }
            }
        });
        let secret = match &config.token_secret {
            Some(secret) => secret.clone(),
            None => {
                use rand::RngCore as _;
                let mut secret = vec![0u8; 32];
                rand::thread_rng().fill_bytes(&mut secret);
                secret
            }
        };
        let auth = Arc::new(auth::Authenticator::new(store.clone(), &secret));
        let counter = rate_counter.unwrap_or_else(|| Arc::new(limits::MemoryRateCounter::default()));
        let limits = limits::RateLimits::new(counter, config.limits);
        let budgets = budget::Budgets::new(store.clone(), config.default_budget_usd, config.budget_alert_fraction);
        let (notices, _) = tokio::sync::broadcast::channel(64);
        let feed = feed::Feed::start(store.clone());
        Ok(Self {
            store,
            ledger,
            config,
            agent: std::sync::RwLock::new(agent.map(Arc::new)),
            events,
            instance,
            heartbeat,
            active: Default::default(),
            auth,
            revocation_watcher: std::sync::Mutex::default(),
            limits,
            budgets,
            router: router.unwrap_or_else(|| Arc::new(llm::HeuristicRouter)),
            chain_events: chain_events::EventLog::new(),
            feed,
            logs,
            replies: chat::Replies::default(),
            channels: channels::ChannelBoard::default(),
            cancels: Default::default(),
            notices,
            job_wake: tokio::sync::Notify::new(),
            knowledge,
            backups,
            settings: settings.map(settings::SettingsState::new),
            settings_watcher: std::sync::Mutex::default(),
            plugins,
            plugin_watcher: std::sync::Mutex::default(),
            models_status,
        })
    }

    /// The embedding model, if any: possibly still loading (embedding then waits for it),
    /// never one that failed to load.
    pub fn embedder(&self) -> Option<&Arc<dyn domain::embed::Embedder>> {
        self.knowledge.embedder()
    }

    /// Embeds texts on a blocking thread (waiting for a model still loading). `Ok(None)` when
    /// there is no embedding model.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Option<Vec<Vec<f32>>>, domain::embed::EmbedError> {
        let Some(embedder) = self.embedder().cloned() else { return Ok(None) };
        let joined = tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            embedder.embed(&refs)
        })
        .await
        .map_err(|e| domain::embed::EmbedError(format!("the embedding task failed: {e}")))?;
        joined.map(Some)
    }

    pub fn auth(&self) -> &auth::Authenticator {
        &self.auth
    }

    /// Starts dropping keys revoked by other processes from this one's caches: heard through
    /// the store's notifier, and read from the store every half second in case a notification
    /// was lost. Every process that authenticates requests (`nexus serve`) calls this once;
    /// later calls do nothing. Stopped by [`Self::shutdown`].
    pub fn watch_key_revocations(&self) {
        let mut watcher = auth::lock(&self.revocation_watcher);
        if watcher.is_none() {
            let watch = revocations::watch(self.auth.clone(), self.store.clone(), self.store.notifier());
            *watcher = Some(tasks::spawn("key-revocations", watch));
        }
    }

    pub fn limits(&self) -> &limits::RateLimits {
        &self.limits
    }

    pub fn budgets(&self) -> &budget::Budgets {
        &self.budgets
    }

    /// The router `nexus/auto` uses.
    pub fn router_name(&self) -> &str {
        self.router.name()
    }

    /// The tenant's live feed of run events from every process on the store: after `after`
    /// (the last id a watcher saw, to resume without gaps), or from the most recent events.
    pub fn watch_feed(&self, tenant: &domain::TenantId, after: Option<u64>) -> feed::FeedEvents {
        self.feed.watch(tenant.clone(), after)
    }

    /// This process's recent log lines (redacted), when its logging keeps them (`nexus serve`).
    pub fn logs(&self) -> Option<&Arc<logs::LogTail>> {
        self.logs.as_ref()
    }

    /// Forgets live feed entries older than [`feed::KEEP_FOR`]; how many.
    pub async fn prune_feed(&self) -> Result<u64, domain::ports::StoreError> {
        let keep = i64::try_from(feed::KEEP_FOR.as_micros()).unwrap_or(i64::MAX);
        let before = domain::Timestamp::from_micros(domain::Timestamp::now().as_micros().saturating_sub(keep));
        self.store.prune_feed(before).await
    }

    /// Operator notices (budget alerts).
    pub fn notices(&self) -> tokio::sync::broadcast::Receiver<llm::Notice> {
        self.notices.subscribe()
    }

    pub fn ledger(&self) -> &LedgerService {
        &self.ledger
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// This process's identity as a run owner.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// A verifier over this runtime's store with its own public key.
    pub fn verifier(&self) -> verify::Verifier<'_> {
        verify::Verifier {
            store: self.store.as_ref(),
            key: self.ledger.signer().verifier(),
            origin_prefix: &self.config.ledger_origin,
        }
    }

    /// Whether the database answers, within two seconds.
    pub async fn readiness(&self) -> Readiness {
        let database = match tokio::time::timeout(Duration::from_secs(2), self.store.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err("the database did not answer within 2 s".to_owned()),
        };
        let models = self.models_readiness();
        Readiness { backend: self.store.backend(), database, models }
    }

    /// The in-process models' state; empty when none load in the background.
    pub fn models_readiness(&self) -> Vec<ModelReadiness> {
        self.models_status.as_ref().map(|m| m.models()).unwrap_or_default()
    }

    /// Stops accepting ledger appends, commits what is queued, signs final checkpoints and
    /// closes the database.
    pub async fn shutdown(&self) {
        self.heartbeat.abort();
        self.feed.flush().await;
        self.feed.stop();
        if let Some(watcher) = auth::lock(&self.revocation_watcher).take() {
            watcher.abort();
        }
        if let Some(watcher) = auth::lock(&self.settings_watcher).take() {
            watcher.abort();
        }
        if let Some(watcher) = auth::lock(&self.plugin_watcher).take() {
            watcher.abort();
        }
        if let Some(plugins) = &self.plugins {
            plugins.close_all().await;
        }
        self.ledger.shutdown().await;
        // A clean stop says so; instances silent for a day are forgotten too.
        let day_ago = domain::Timestamp::from_micros(domain::Timestamp::now().as_micros() - 86_400_000_000);
        if let Err(error) = self.store.forget_instances(&self.instance, day_ago).await {
            tracing::debug!(%error, "could not remove this instance's heartbeat");
        }
        self.store.close().await;
    }
}

/// The key id that signed the database's checkpoints, if it has any (read without a key).
pub async fn existing_signer_key_id(store: &dyn Store) -> Result<Option<String>, domain::ports::StoreError> {
    for tenant in store.ledger_tenants().await? {
        if let Some(checkpoint) = store.latest_checkpoint(&tenant).await? {
            return Ok(signer_key_ids(&checkpoint.signed_note).into_iter().next());
        }
    }
    Ok(None)
}

async fn check_signing_key(store: &dyn Store, signer: &CheckpointSigner) -> Result<(), StartError> {
    for tenant in store.ledger_tenants().await? {
        let Some(checkpoint) = store.latest_checkpoint(&tenant).await? else { continue };
        if let Err(source) = signer.verifier().verify(&checkpoint.signed_note) {
            return Err(StartError::SigningKeyMismatch {
                key_id: signer.verifier().key_id_hex(),
                tenant,
                database: store.location(),
                source,
            });
        }
    }
    Ok(())
}

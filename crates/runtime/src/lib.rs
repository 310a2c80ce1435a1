//! The runtime: the one façade every front-end (HTTP, CLI, channels, schedulers) calls.
//!
//! It owns the storage port and the ledger service, starts their background tasks, and shuts
//! them down in order.
//!
//! **Architecture Invariant:** the runtime knows ports, never concrete databases; it does not
//! depend on `sqlx` or `axum`.

pub mod agent;
mod approvals;
pub mod error;
pub mod keys;
pub mod knowledge;
pub mod ledger_service;
mod seed;
pub mod tasks;
pub mod verify;

use std::sync::Arc;
use std::time::Duration;

use domain::ports::Store;
use ledger::checkpoint::{CheckpointSigner, signer_key_ids};

pub use error::{LedgerError, StartError, VerifyError};
pub use ledger_service::{Appended, LedgerService};
pub use seed::{DEMO_TENANT, SeedReport};

/// Settings the runtime needs, already resolved.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Prefix of every checkpoint origin, e.g. `nexus.local` → `nexus.local/ledger/<tenant>`.
    pub ledger_origin: String,
    /// How often checkpoints are signed for logs that grew.
    pub checkpoint_interval: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self { ledger_origin: "nexus.local".into(), checkpoint_interval: Duration::from_secs(1) }
    }
}

/// How ready the runtime is to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    pub backend: &'static str,
    /// `Err` with the reason when the database does not answer.
    pub database: Result<(), String>,
}

pub struct Runtime {
    store: Arc<dyn Store>,
    ledger: LedgerService,
    config: RuntimeConfig,
    agent: Option<Arc<agent::AgentServices>>,
    events: tokio::sync::broadcast::Sender<agent::RunEvent>,
    /// This process's identity as the owner of the runs it drives.
    instance: String,
    heartbeat: tokio::task::JoinHandle<()>,
    /// Runs this process is driving right now (never taken over by its own resume sweep).
    active: std::sync::Mutex<std::collections::HashSet<domain::ChainId>>,
    /// The tenants' knowledge bases (one service, so its vector indexes are shared).
    knowledge: knowledge::KnowledgeService,
}

/// How often a runtime records that it is alive.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);
/// After this long without a heartbeat, an instance's runs may be taken over.
pub const OWNER_STALE_AFTER: Duration = Duration::from_secs(15);

impl Runtime {
    /// Starts the runtime over a migrated store. Refuses to start when the signing key is not
    /// the key that signed the checkpoints already in the database.
    pub async fn start(
        store: Arc<dyn Store>,
        signer: CheckpointSigner,
        config: RuntimeConfig,
    ) -> Result<Self, StartError> {
        check_signing_key(store.as_ref(), &signer).await?;
        let ledger =
            LedgerService::start(store.clone(), signer, config.ledger_origin.clone(), config.checkpoint_interval);
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
        let knowledge = knowledge::KnowledgeService::new(store.clone());
        Ok(Self {
            store,
            ledger,
            config,
            agent: None,
            events,
            instance,
            heartbeat,
            active: Default::default(),
            knowledge,
        })
    }

    /// Embeds knowledge with `embedder`, making search hybrid (BM25 and vectors). Call before
    /// handing `knowledge()` to anything (the agent's tools), which would keep the old service.
    pub fn with_embedder(mut self, embedder: Arc<dyn domain::embed::Embedder>) -> Self {
        self.knowledge = knowledge::KnowledgeService::new(self.store.clone()).with_embedder(embedder);
        self
    }

    /// Enables the agent (models, tools, sandbox) on this runtime.
    pub fn with_agent(mut self, services: agent::AgentServices) -> Self {
        self.agent = Some(Arc::new(services));
        self
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
        Readiness { backend: self.store.backend(), database }
    }

    /// Stops accepting ledger appends, commits what is queued, signs final checkpoints and
    /// closes the database.
    pub async fn shutdown(&self) {
        self.heartbeat.abort();
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

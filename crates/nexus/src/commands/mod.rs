//! One module per subcommand; this one dispatches and holds what they share (opening the
//! store, loading the key, starting the runtime).

mod agent;
mod agent_setup;
mod approvals;
mod backup;
mod eval;
mod ingest;
mod jobs;
mod keys;
mod ledger_commands;
mod local_models;
mod memory;
mod plugins;
mod serve;
mod settings;
mod users;
mod verify;
mod watchers;

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::process::ExitCode;
use std::sync::Arc;

use ::ledger::checkpoint::CheckpointSigner;
use anyhow::{Context as _, bail};
use domain::ports::Store;
use runtime::{Runtime, RuntimeConfig, RuntimeParts};
use store::DatabaseUrl;

pub(crate) use agent_setup::agent_services as agent_services_for;

use crate::cli::Command;
use crate::config::Config;
use crate::keyfile;

pub async fn run(command: Command, config: Config) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve { .. } => serve::run(config).await,
        Command::Seed => seed(config).await,
        Command::Verify(args) => verify::run(args, config).await,
        Command::Ledger(command) => ledger_commands::run(command, config).await,
        Command::Config => {
            show_config(&config);
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => agent::run(args, config).await,
        Command::Inspect(args) => agent::inspect(args, config).await,
        Command::Replay(args) => agent::replay(args, config).await,
        Command::Audit { tenant } => agent::audit(tenant, config).await,
        Command::Tools => agent::tools(config).await,
        Command::Approvals(command) => approvals::approvals(command, config).await,
        Command::Persona(command) => approvals::persona(command, config).await,
        Command::Keys(command) => keys::run(command, config).await,
        Command::Users(command) => users::run(command, config).await,
        Command::Ingest(args) => ingest::run(args, config).await,
        Command::Jobs(command) => jobs::jobs(command, config).await,
        Command::Schedule(command) => jobs::schedule(command, config).await,
        Command::Backup { to, keep } => backup::backup(config, to, keep).await,
        Command::Restore { file, dry_run, force } => backup::restore(config, &file, dry_run, force).await,
        Command::Settings(command) => settings::run(command, config).await,
        Command::Plugins(command) => plugins::run(command, config).await,
        Command::Memory(command) => memory::run(command, config).await,
        Command::Watchers(command) => watchers::run(command, config).await,
        Command::Eval(command) => eval::run(command, config).await,
    }
}

/// Whether a command may create the database and key, or needs them to exist already.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    Create,
    Existing,
}

/// Creates the data directory layout on first start: the directory itself, `keys/` and
/// `workspace/`.
fn ensure_data_dir(config: &Config) -> anyhow::Result<()> {
    let dir = &config.data_dir;
    if !dir.exists() {
        fs::create_dir_all(dir).with_context(|| format!("creating data directory {} (data_dir)", dir.display()))?;
        // Only the owner reads a data directory Nexus created: it holds the database and key.
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting data directory {}", dir.display()))?;
    }
    for sub in ["keys", "workspace"] {
        let path = dir.join(sub);
        fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
    }
    fs::set_permissions(dir.join("keys"), fs::Permissions::from_mode(0o700))
        .with_context(|| format!("restricting {}", dir.join("keys").display()))?;
    Ok(())
}

async fn open_store(config: &Config, access: Access) -> anyhow::Result<Arc<dyn Store>> {
    if access == Access::Create {
        ensure_data_dir(config)?;
    }
    if let DatabaseUrl::Sqlite(path) = &config.database {
        if access == Access::Existing && !path.is_file() {
            bail!("database {} does not exist (database_url); run `nexus seed` or `nexus serve` first", path.display());
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
    }
    Ok(store::open(&config.database).await?)
}

/// Loads the signing key, creating it on first start — unless the database already holds
/// checkpoints, which only the original key may extend.
async fn signing_key(config: &Config, store: &dyn Store, access: Access) -> anyhow::Result<CheckpointSigner> {
    let path = &config.signing_key;
    if path.exists() {
        return keyfile::load(path);
    }
    if let Some(key_id) = runtime::existing_signer_key_id(store).await? {
        bail!(
            "signing key {} is missing, but {} holds checkpoints signed by key id {key_id}; restore that key file \
             (ledger.signing_key)",
            path.display(),
            config.database_display
        );
    }
    if access == Access::Existing {
        bail!(
            "signing key {} does not exist (ledger.signing_key); run `nexus seed` or `nexus serve` first",
            path.display()
        );
    }
    let signer = keyfile::create(path)?;
    tracing::info!(path = %path.display(), key_id = %signer.verifier().key_id_hex(), "created the ledger signing key");
    Ok(signer)
}

/// The runtime's parts for a command: the store, the signing key, the token secret, the shared
/// rate counter when Redis is configured, the live settings (master key, the database's values
/// layered into the configuration) and the in-process models the command `needs` (none for
/// commands that only read or write records). Also returns the local chat model, if loaded, and
/// the configuration in force (the file, environment and flags over the database's settings).
async fn runtime_parts(
    config: &Config,
    access: Access,
    needs: Option<local_models::Needs>,
) -> anyhow::Result<(RuntimeParts, Option<Arc<dyn providers::ModelProvider>>, Config)> {
    runtime_parts_with(config, access, needs, false).await
}

/// [`runtime_parts`]; `lenient`: stored settings the configuration refuses are reported, not
/// fatal (for `nexus settings`, which repairs them).
async fn runtime_parts_with(
    config: &Config,
    access: Access,
    needs: Option<local_models::Needs>,
    lenient: bool,
) -> anyhow::Result<(RuntimeParts, Option<Arc<dyn providers::ModelProvider>>, Config)> {
    let store = open_store(config, access).await?;
    let signer = signing_key(config, store.as_ref(), access).await?;
    let (config, settings) = stored_settings(config, store.as_ref(), access, lenient).await?;
    let config = &config;
    // Read-only commands do not create the token secret; they never issue or check tokens.
    let secret_path = config.data_dir.join("keys").join("token.secret");
    let token_secret = if access == Access::Create || secret_path.exists() {
        Some(crate::keyfile::token_secret(&secret_path)?)
    } else {
        None
    };
    let runtime_config = RuntimeConfig {
        ledger_origin: config.ledger_origin.clone(),
        checkpoint_interval: config.checkpoint_interval,
        token_secret,
        limits: config.api.limits,
        default_budget_usd: Some(config.api.budget_usd),
        budget_alert_fraction: Some(config.api.alert_fraction),
        equipment: runtime::equipment::EquipmentSettings {
            export_dir: Some(config.data_dir.join("checkpoints")),
            data_dir: Some(config.data_dir.clone()),
        },
        direct_answer_confidence: config.routing.direct_answer_confidence,
        equipment_confidence: config.routing.equipment_confidence,
        jobs: config.jobs.clone(),
        watchers: config.watchers.clone(),
        max_plan_steps: None,
        untrusted_namespaces: config.untrusted_namespaces.clone(),
        gateway_ack: config.gateway_ack,
    };
    let agent = matches!(needs, Some(local_models::Needs::Everything | local_models::Needs::EverythingInBackground));
    let local = match needs {
        Some(needs) => {
            let config = config.clone();
            tokio::task::spawn_blocking(move || local_models::load(&config, needs))
                .await
                .map_err(|e| anyhow::anyhow!("loading the in-process models: {e}"))?
        }
        None => local_models::LocalModels::default(),
    };
    let embedder = local.embedder;
    let backups = backup::backups(config, None, signer.verifier().clone());
    let mut parts = RuntimeParts::new(store, signer, runtime_config, embedder);
    parts.backups = Some(Arc::new(backups));
    parts.plugins = Some(crate::plugins::plugins());
    parts.logs = crate::logging::tail();
    if let Some(url) = &config.api.redis_url {
        let counter = store::redis::RedisRateCounter::connect(url)
            .await
            .with_context(|| format!("api.redis_url (NEXUS_REDIS_URL) {}", store::redact(url)))?;
        parts.rate_counter = Some(Arc::new(counter));
    }
    parts.router = local.router;
    parts.models_status = local.status;
    if let Some((key, revision)) = settings {
        let host = crate::settings::Host {
            layers: config.layers.clone(),
            knowledge: parts.knowledge(),
            local_chat: local.chat.clone(),
            agent,
            plugins: parts.plugins.clone(),
        };
        parts.settings = Some(runtime::settings::SettingsParts {
            registry: crate::settings::REGISTRY,
            key,
            pinned: config.layers.pinned(),
            host: Arc::new(host),
            revision,
        });
    }
    Ok((parts, local.chat, config.clone()))
}

/// The master key and the settings stored in the database, layered into the configuration.
/// A stored value the configuration cannot use stops the command, naming the setting — except
/// `nexus settings`, which must be able to repair it.
async fn stored_settings(
    config: &Config,
    store: &dyn Store,
    access: Access,
    lenient: bool,
) -> anyhow::Result<(Config, Option<(runtime::settings::MasterKey, i64)>)> {
    let Some(key) = crate::settings::master_key(config, store, access == Access::Create).await? else {
        return Ok((config.clone(), None));
    };
    let (revision, values) = runtime::settings::load(store, &key).await.context("the settings in the database")?;
    if values.is_empty() {
        return Ok((config.clone(), Some((key, revision))));
    }
    match crate::config::resolve_layers(&config.layers, &values) {
        Ok(effective) => Ok((effective, Some((key, revision)))),
        Err(error) if lenient => {
            tracing::warn!(%error, "a stored setting cannot be used; fix it with `nexus settings unset` or `set`");
            Ok((config.clone(), Some((key, revision))))
        }
        Err(error) => Err(anyhow::Error::new(error).context(
            "a setting stored in the database cannot be used (change it with `nexus settings set` or `nexus settings unset`)",
        )),
    }
}

/// The runtime for commands that need no models and no agent.
async fn start_runtime(config: &Config, access: Access) -> anyhow::Result<Runtime> {
    let (parts, _, _) = runtime_parts(config, access, None).await?;
    Ok(Runtime::start(parts).await?)
}

async fn seed(config: Config) -> anyhow::Result<ExitCode> {
    let runtime = start_runtime(&config, Access::Create).await?;
    let outcome = runtime.seed_demo().await;
    runtime.shutdown().await;
    let report = outcome.context("seeding the demo tenant")?;
    if !report.tenant_created && report.personas_created.is_empty() {
        println!("already seeded: tenant {} and its default personas exist", report.tenant);
    } else {
        if report.tenant_created {
            println!("created tenant {}", report.tenant);
        }
        if !report.personas_created.is_empty() {
            println!("created personas: {}", report.personas_created.join(", "));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn show_config(config: &Config) {
    let file = config.config_file.as_ref().map_or("(none)".to_owned(), |p| p.display().to_string());
    println!("config_file = {file}");
    println!("data_dir = {}", config.data_dir.display());
    println!("database_url = {}", config.database_display);
    println!("server.listen = {}", config.listen);
    println!("ledger.origin = {}", config.ledger_origin);
    println!("ledger.checkpoint_interval_ms = {}", config.checkpoint_interval.as_millis());
    println!("ledger.signing_key = {}", config.signing_key.display());
    println!("ledger.gateway_ack = {}", config.gateway_ack.as_str());
    println!("log.level = {}", config.log_level.as_deref().unwrap_or("(command default)"));
    println!("log.format = {}", if config.log_format == crate::config::LogFormat::Json { "json" } else { "text" });
    let unset = || "(unset)".to_owned();
    println!("models.trivial = {}", config.model_trivial.clone().unwrap_or_else(unset));
    println!("models.normal = {}", config.model_normal.clone().unwrap_or_else(unset));
    println!("models.complex = {}", config.model_complex.clone().unwrap_or_else(unset));
    println!("models.dir = {}", config.models_dir.display());
    let api = &config.api;
    println!("api.max_body_bytes = {}", api.max_body_bytes);
    println!("api.cors_origins = [{}]", api.cors_origins.join(", "));
    println!("api.redis_url = {}", api.redis_url.as_deref().map_or_else(unset, store::redact));
    println!("limits.key_requests_per_minute = {}", api.limits.key_requests_per_minute);
    println!("limits.tenant_requests_per_minute = {}", api.limits.tenant_requests_per_minute);
    println!("limits.tenant_chains_per_hour = {}", api.limits.tenant_chains_per_hour);
    println!("budget.monthly_usd = {}", api.budget_usd);
    println!("budget.alert_fraction = {}", api.alert_fraction);
    println!("routing.direct_answer_confidence = {}", config.routing.direct_answer_confidence);
    println!("routing.equipment_confidence = {}", config.routing.equipment_confidence);
    let jobs = &config.jobs;
    println!("jobs.workers = {}", jobs.workers);
    println!("jobs.tenant_concurrency = {}", jobs.tenant_cap);
    println!("jobs.lease_seconds = {}", jobs.lease.as_secs());
    println!("jobs.max_attempts = {}", jobs.max_attempts);
    println!("jobs.retry_backoff_seconds = {}", jobs.retry_backoff.as_secs());
    let p = &config.providers;
    let configured: Vec<&str> = [
        ("anthropic", p.anthropic_api_key.is_some()),
        ("openai", p.openai_api_key.is_some()),
        ("mistral", p.mistral_api_key.is_some()),
        ("openai-compatible", p.compatible_base_url.is_some()),
        ("ollama", p.ollama_base_url.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, on)| on.then_some(name))
    .collect();
    println!("providers = [{}]", configured.join(", "));
}

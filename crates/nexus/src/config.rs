//! Configuration, one mechanism for every setting.
//!
//! The file's shape is the schema: [`FileConfig`] and its sections, each field optional and
//! unknown keys refused. Every setting that also has a `NEXUS_*` variable has one row in
//! [`VARIABLES`] — the variable, the file key it sets and how its text reads — so a new setting
//! is a field in its section and, if it has one, a row there. Configuration resolves in two
//! phases. Phase one layers five sources into one table of that shape — built-in defaults, the
//! settings stored in the database, `nexus.toml`, the variables, flags — each later one winning
//! ([`Layers`] keeps the last three so a change of the stored settings resolves again). Phase two reads the table into a
//! complete [`Config`] with every value checked and no option left to fill. The model providers
//! and built-in tools read their own variables (named in their crates) from the same snapshot of
//! the environment, so nothing else in the binary reads the process environment. Unknown file
//! keys are errors; unknown `NEXUS_*` variables are warnings.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use providers::config::ProviderSettings;
use runtime::limits::LimitSettings;
use serde::Deserialize;
use store::DatabaseUrl;
use tools::builtin::BuiltinSettings;

use crate::cli::GlobalArgs;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8420";
pub const DEFAULT_ORIGIN: &str = "nexus.local";
pub const DEFAULT_CHECKPOINT_INTERVAL_MS: u64 = 1000;
/// Default largest request body: 10 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 10 * 1024 * 1024;
const CONFIG_FILE: &str = "nexus.toml";

/// Why configuration could not be resolved. Each names the file, variable or setting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("environment variable {name}: {reason}")]
    Env { name: &'static str, reason: String },
    #[error("setting {setting}: {reason}")]
    Invalid { setting: &'static str, reason: String },
}

/// How a variable's text becomes a value of its file key.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Text,
    /// A whole number; the text says what it counts, for the error.
    Whole(&'static str),
    /// A number, possibly fractional; the text says what it is, for the error.
    Number(&'static str),
    /// A comma-separated list.
    List,
}

/// Every `NEXUS_*` variable that sets a file key: (variable, key, how it reads).
const VARIABLES: &[(&str, &str, Kind)] = &[
    ("NEXUS_DATA_DIR", "data_dir", Kind::Text),
    ("NEXUS_DATABASE_URL", "database_url", Kind::Text),
    ("NEXUS_LISTEN", "server.listen", Kind::Text),
    ("NEXUS_LEDGER_ORIGIN", "ledger.origin", Kind::Text),
    ("NEXUS_CHECKPOINT_INTERVAL_MS", "ledger.checkpoint_interval_ms", Kind::Whole("a whole number of milliseconds")),
    ("NEXUS_SIGNING_KEY", "ledger.signing_key", Kind::Text),
    ("NEXUS_LEDGER_GATEWAY_ACK", "ledger.gateway_ack", Kind::Text),
    ("NEXUS_LOG_LEVEL", "log.level", Kind::Text),
    ("NEXUS_LOG_FORMAT", "log.format", Kind::Text),
    ("NEXUS_LOG_FILE", "log.file", Kind::Text),
    ("NEXUS_MODEL_TRIVIAL", "models.trivial", Kind::Text),
    ("NEXUS_MODEL_NORMAL", "models.normal", Kind::Text),
    ("NEXUS_MODEL_COMPLEX", "models.complex", Kind::Text),
    ("NEXUS_MODELS_DIR", "models.dir", Kind::Text),
    ("NEXUS_MAX_BODY_BYTES", "api.max_body_bytes", Kind::Whole("a number of bytes")),
    ("NEXUS_CORS_ORIGINS", "api.cors_origins", Kind::List),
    ("NEXUS_REDIS_URL", "api.redis_url", Kind::Text),
    ("NEXUS_TRUSTED_PROXIES", "api.trusted_proxies", Kind::List),
    ("NEXUS_RATE_LIMIT_KEY_RPM", "limits.key_requests_per_minute", Kind::Whole("a whole number")),
    ("NEXUS_RATE_LIMIT_TENANT_RPM", "limits.tenant_requests_per_minute", Kind::Whole("a whole number")),
    ("NEXUS_RATE_LIMIT_CHAINS_PER_HOUR", "limits.tenant_chains_per_hour", Kind::Whole("a whole number")),
    ("NEXUS_BUDGET_MONTHLY_USD", "budget.monthly_usd", Kind::Number("a number of USD")),
    ("NEXUS_BUDGET_ALERT_FRACTION", "budget.alert_fraction", Kind::Number("a fraction like 0.8")),
    ("NEXUS_TELEGRAM_BOT_TOKEN", "channels.telegram.bot_token", Kind::Text),
    ("NEXUS_TELEGRAM_API_URL", "channels.telegram.api_url", Kind::Text),
    ("NEXUS_TELEGRAM_TENANT", "channels.telegram.tenant", Kind::Text),
    ("NEXUS_TELEGRAM_ADMISSION", "channels.telegram.admission", Kind::Text),
    ("NEXUS_TELEGRAM_WEBHOOK_URL", "channels.telegram.webhook_url", Kind::Text),
    ("NEXUS_TELEGRAM_WEBHOOK_SECRET", "channels.telegram.webhook_secret", Kind::Text),
    ("NEXUS_DISCORD_BOT_TOKEN", "channels.discord.bot_token", Kind::Text),
    ("NEXUS_DISCORD_API_URL", "channels.discord.api_url", Kind::Text),
    ("NEXUS_DISCORD_TENANT", "channels.discord.tenant", Kind::Text),
    ("NEXUS_DISCORD_ADMISSION", "channels.discord.admission", Kind::Text),
    ("NEXUS_ROUTING_DIRECT_CONFIDENCE", "routing.direct_answer_confidence", Kind::Number("a fraction like 0.5")),
    ("NEXUS_ROUTING_EQUIPMENT_CONFIDENCE", "routing.equipment_confidence", Kind::Number("a fraction like 0.75")),
    ("NEXUS_JOB_WORKERS", "jobs.workers", Kind::Whole("a whole number of workers")),
    ("NEXUS_JOB_TENANT_CONCURRENCY", "jobs.tenant_concurrency", Kind::Whole("a whole number of jobs")),
    ("NEXUS_JOB_LEASE_SECONDS", "jobs.lease_seconds", Kind::Whole("a whole number of seconds")),
    ("NEXUS_JOB_MAX_ATTEMPTS", "jobs.max_attempts", Kind::Whole("a whole number of attempts")),
    ("NEXUS_JOB_RETRY_BACKOFF_SECONDS", "jobs.retry_backoff_seconds", Kind::Whole("a whole number of seconds")),
    ("NEXUS_WATCH_ALLOW_ADDRESSES", "watchers.allow_addresses", Kind::List),
    ("NEXUS_WATCH_TIMEOUT_SECONDS", "watchers.timeout_seconds", Kind::Whole("a whole number of seconds")),
    ("NEXUS_KNOWLEDGE_UNTRUSTED_NAMESPACES", "knowledge.untrusted_namespaces", Kind::List),
];

/// The variables that give the master key, or where its file is.
const KEY_VARIABLES: &[&str] = &["NEXUS_MASTER_KEY", "NEXUS_MASTER_KEY_FILE"];

/// The variable naming the config file itself.
const CONFIG_VARIABLE: &str = "NEXUS_CONFIG";

/// Prefixes of variables that belong to the test suite and benchmarks, not to the server.
const ENV_TOOLING_PREFIXES: &[&str] = &["NEXUS_TEST_", "NEXUS_BENCH_", "NEXUS_CRASH_CHILD_"];

/// `nexus.toml`: every key, every section. Each field is optional; a layer that leaves it out
/// leaves the layer below it in place.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    #[serde(default)]
    server: ServerSection,
    #[serde(default)]
    ledger: LedgerSection,
    #[serde(default)]
    log: LogSection,
    #[serde(default)]
    models: ModelsSection,
    #[serde(default)]
    api: ApiSection,
    #[serde(default)]
    limits: LimitsSection,
    #[serde(default)]
    budget: BudgetSection,
    #[serde(default)]
    channels: ChannelsSection,
    #[serde(default)]
    routing: RoutingSection,
    #[serde(default)]
    jobs: JobsSection,
    #[serde(default)]
    watchers: WatchersSection,
    #[serde(default)]
    knowledge: KnowledgeSection,
}

/// How far the knowledge base is trusted.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct KnowledgeSection {
    /// Namespaces holding content the tenant did not write (ingested web pages, mail): a run
    /// that reads their passages is tainted.
    untrusted_namespaces: Option<Vec<String>>,
}

/// How watchers reach their sources and webhooks.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WatchersSection {
    /// Exact IP addresses watchers may reach although they are private or local (an intranet
    /// feed, a webhook relay on the LAN); everything else private stays refused.
    allow_addresses: Option<Vec<String>>,
    /// The most one fetch or webhook call may take.
    timeout_seconds: Option<u64>,
}

/// How sure the tier classifier must be before a run skips the planner or a model.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoutingSection {
    /// A request rated trivial at least this surely is answered directly, with no plan.
    direct_answer_confidence: Option<f64>,
    /// A request matched to a piece of equipment at least this surely is answered by it.
    equipment_confidence: Option<f64>,
}

/// The job workers of this process and the queue's retry policy.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobsSection {
    /// Workers in this process (0: it runs no jobs, another replica does).
    workers: Option<u64>,
    /// At most this many of one tenant's jobs run at once, across all replicas.
    tenant_concurrency: Option<u64>,
    /// How long a claimed job holds without a heartbeat before another worker takes it over.
    lease_seconds: Option<u64>,
    /// Tries per job before it fails for good.
    max_attempts: Option<u64>,
    /// The first retry's delay; each later one doubles it.
    retry_backoff_seconds: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelsSection {
    #[serde(default)]
    telegram: TelegramSection,
    #[serde(default)]
    discord: DiscordSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DiscordSection {
    bot_token: Option<String>,
    /// Discord's address (a fake in tests); the gateway's comes from its `GET /api/v10/gateway`.
    api_url: Option<String>,
    tenant: Option<String>,
    /// `open` (strangers join at level 0) or `closed` (strangers are refused).
    admission: Option<String>,
    /// Guilds the bot works in (DMs are always answered); empty: any.
    allowed_guilds: Option<Vec<String>>,
    /// Channels whose messages are moderated; empty: none.
    moderated_channels: Option<Vec<String>>,
    /// The channel where staff see moderation cases and approvals.
    staff_channel: Option<String>,
    /// How long a `timeout` action lasts.
    timeout_minutes: Option<u64>,
    #[serde(default)]
    moderation: ModerationSection,
    /// Guilds moderated differently: `[channels.discord.guilds."123…"]`.
    #[serde(default)]
    guilds: BTreeMap<String, GuildSection>,
}

/// One guild's overrides of `[channels.discord.moderation]` and of the staff channel.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GuildSection {
    staff_channel: Option<String>,
    threshold: Option<f64>,
    dry_run: Option<bool>,
    require_approval: Option<Vec<String>>,
    staff_level: Option<u8>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModerationSection {
    words: Option<Vec<String>>,
    patterns: Option<Vec<String>>,
    max_links: Option<usize>,
    max_mentions: Option<usize>,
    max_per_minute: Option<usize>,
    threshold: Option<f64>,
    model: Option<String>,
    dry_run: Option<bool>,
    require_approval: Option<Vec<String>>,
    staff_level: Option<u8>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TelegramSection {
    bot_token: Option<String>,
    /// The Bot API's address (a local Bot API server, or a fake in tests).
    api_url: Option<String>,
    tenant: Option<String>,
    /// `open` (strangers join at level 0) or `closed` (strangers are refused).
    admission: Option<String>,
    /// Group chats the bot answers in (private chats are always answered); empty: any.
    allowed_chats: Option<Vec<i64>>,
    poll_timeout_seconds: Option<u64>,
    stall_seconds: Option<u64>,
    /// Receive updates by webhook at this public URL (its path must start with /telegram/)
    /// instead of long polling.
    webhook_url: Option<String>,
    /// The secret Telegram sends with each delivery; derived from the token when absent.
    webhook_secret: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerSection {
    listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LedgerSection {
    origin: Option<String>,
    checkpoint_interval_ms: Option<u64>,
    signing_key: Option<PathBuf>,
    /// When a gateway call is answered relative to its ledger entry, and whether an agent run
    /// waits for its model calls' entries: `queued` (default) or `durable`.
    gateway_ack: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogSection {
    level: Option<String>,
    format: Option<String>,
    /// Also write the log to this file (servers), rotated by size.
    file: Option<PathBuf>,
    /// Rotate the file when it would grow past this many bytes (default 10 MiB).
    max_bytes: Option<u64>,
    /// Rotated files kept (`nexus.log.1` … `nexus.log.N`; default 5).
    keep: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelsSection {
    trivial: Option<String>,
    normal: Option<String>,
    complex: Option<String>,
    /// Where the in-process models live (`cargo xtask models --dir`).
    dir: Option<PathBuf>,
    /// Price overrides: `[models.prices."gpt-4o"] input = 2.5, output = 10.0` (USD per million tokens).
    #[serde(default)]
    prices: BTreeMap<String, PriceSection>,
    /// The price of models with no entry: `default_price = { input = 1.0, output = 4.0 }`.
    /// Without it such models are refused rather than counted as free.
    default_price: Option<PriceSection>,
}

/// USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceSection {
    pub input: f64,
    pub output: f64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiSection {
    max_body_bytes: Option<u64>,
    cors_origins: Option<Vec<String>>,
    redis_url: Option<String>,
    trusted_proxies: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsSection {
    key_requests_per_minute: Option<u64>,
    tenant_requests_per_minute: Option<u64>,
    tenant_chains_per_hour: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BudgetSection {
    monthly_usd: Option<f64>,
    alert_fraction: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The complete, checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub config_file: Option<PathBuf>,
    pub data_dir: PathBuf,
    pub database: DatabaseUrl,
    /// The database URL with any password hidden, for messages.
    pub database_display: String,
    pub listen: SocketAddr,
    pub ledger_origin: String,
    pub checkpoint_interval: Duration,
    /// When a gateway call is answered relative to its ledger entry.
    pub gateway_ack: runtime::llm::LedgerAck,
    pub signing_key: PathBuf,
    /// `None` means "the command's default".
    pub log_level: Option<String>,
    pub log_format: LogFormat,
    /// A file the server also writes its log to, rotated by size; `None`: standard error only.
    pub log_file: Option<LogFile>,
    /// `provider/model` for direct answers, when set (else the normal model).
    pub model_trivial: Option<String>,
    /// `provider/model` for ordinary work, when set.
    pub model_normal: Option<String>,
    /// `provider/model` for escalations, when set.
    pub model_complex: Option<String>,
    /// Price overrides by model name.
    pub prices: BTreeMap<String, PriceSection>,
    /// The price of models with no entry in the table (`models.default_price`); `None` refuses
    /// calls to them.
    pub default_price: Option<PriceSection>,
    /// The in-process models' directory (embeddings, classifier, local chat model).
    pub models_dir: PathBuf,
    /// The HTTP API: body limit, CORS, Redis, rate limits, budgets.
    pub api: ApiSettings,
    /// The model providers' keys and endpoints.
    pub providers: ProviderSettings,
    /// The built-in tools' endpoints and credentials.
    pub tools: BuiltinSettings,
    /// The Telegram bot: off without a token; a mistake in its section leaves it failed.
    pub telegram: ChannelConfig<channels::telegram::TelegramSettings>,
    /// The Discord bot, as the Telegram one.
    pub discord: ChannelConfig<channels::discord::DiscordSettings>,
    /// How sure the classifier must be for a direct answer, and for equipment.
    pub routing: RoutingSettings,
    /// The job workers and the queue's retry policy.
    pub jobs: runtime::jobs::JobSettings,
    /// How watchers fetch and post.
    pub watchers: runtime::watchers::WatcherSettings,
    /// Knowledge namespaces whose passages taint the runs that read them.
    pub untrusted_namespaces: Vec<String>,
    /// Things worth telling the operator (unknown variables, …).
    pub warnings: Vec<String>,
    /// The master key from `NEXUS_MASTER_KEY`, if given.
    pub master_key: Option<runtime::settings::MasterKey>,
    /// Where the master key file is (`NEXUS_MASTER_KEY_FILE`, else `<data_dir>/keys/master.key`).
    pub master_key_file: PathBuf,
    /// The file, environment and flags this configuration came from.
    pub layers: std::sync::Arc<Layers>,
}

/// A chat channel's configuration. A mistake in a channel's section (a malformed token, an
/// unknown tenant name) does not stop the server: that channel alone is `failed`, with the
/// error naming the setting, in the log and in `/ready`.
#[derive(Debug, Clone)]
pub enum ChannelConfig<S> {
    /// No token: the channel is off.
    Off,
    On(S),
    /// Why the channel's settings cannot be used (names the setting).
    Invalid(String),
}

impl<S> ChannelConfig<S> {
    fn from_result(result: Result<Option<S>, ConfigError>) -> Self {
        match result {
            Ok(None) => ChannelConfig::Off,
            Ok(Some(settings)) => ChannelConfig::On(settings),
            Err(error) => ChannelConfig::Invalid(error.to_string()),
        }
    }

    pub fn settings(&self) -> Option<&S> {
        match self {
            ChannelConfig::On(settings) => Some(settings),
            _ => None,
        }
    }
}

/// Where the log file goes and how it rotates.
#[derive(Debug, Clone, PartialEq)]
pub struct LogFile {
    pub path: PathBuf,
    pub max_bytes: u64,
    pub keep: u32,
}

/// The routing thresholds, each a fraction in 0..=1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoutingSettings {
    pub direct_answer_confidence: f64,
    pub equipment_confidence: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiSettings {
    pub max_body_bytes: usize,
    /// Origins allowed by CORS; empty = CORS off; `*` = any.
    pub cors_origins: Vec<String>,
    /// Shared rate-limit counters for several replicas.
    pub redis_url: Option<String>,
    /// Reverse proxies whose `X-Forwarded-For` names the client (addresses or networks).
    pub trusted_proxies: Vec<console::proxies::ProxyNet>,
    pub limits: LimitSettings,
    pub budget_usd: f64,
    pub alert_fraction: f64,
}

/// Whether `name` is a variable Nexus reads (its own, or a provider's or tool's).
fn is_known_variable(name: &str) -> bool {
    name == CONFIG_VARIABLE
        || KEY_VARIABLES.contains(&name)
        || VARIABLES.iter().any(|(variable, _, _)| *variable == name)
        || providers::config::PROVIDER_VARIABLES.contains(&name)
        || tools::builtin::SETTINGS_VARIABLES.contains(&name)
}

/// Loads configuration from the real environment: the `NEXUS_*` variables and those the
/// providers and tools read, taken once.
pub fn load(global: &GlobalArgs, listen_flag: Option<&str>) -> Result<Config, ConfigError> {
    let env: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().unwrap_or_default())))
        .filter(|(k, _)| k.starts_with("NEXUS_") || is_known_variable(k))
        .collect();
    resolve(global, listen_flag, &env, Path::new("."))
}

/// Phase one and two, from explicit inputs (so tests need not touch the process environment).
pub fn resolve(
    global: &GlobalArgs,
    listen_flag: Option<&str>,
    env: &[(String, String)],
    cwd: &Path,
) -> Result<Config, ConfigError> {
    resolve_layers(&layers(global, listen_flag, env, cwd)?, &Values::new())
}

/// What the file, the environment and the flags say, kept so the configuration can be
/// resolved again when the database's settings change.
#[derive(Clone)]
pub struct Layers {
    data_dir_flag: Option<PathBuf>,
    database_url_flag: Option<String>,
    log_level_flag: Option<String>,
    listen_flag: Option<String>,
    env: Vec<(String, String)>,
    config_file: Option<PathBuf>,
    file: toml::Table,
    warnings: Vec<String>,
}

impl std::fmt::Debug for Layers {
    // The environment holds secrets: only where the file is shows.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Layers").field("config_file", &self.config_file).finish_non_exhaustive()
    }
}

impl Layers {
    /// An environment variable's value, blank counting as unset.
    pub fn env(&self, name: &str) -> Option<&str> {
        self.env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.trim().is_empty())
    }

    /// An environment variable's value, blank or not.
    fn raw_env(&self, name: &str) -> Option<&str> {
        self.env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// What pins each setting of the registry: a flag, a variable or the file.
    pub fn pinned(&self) -> BTreeMap<String, runtime::settings::Pinned> {
        use runtime::settings::{PinSource, Pinned};
        let mut pinned = BTreeMap::new();
        for spec in crate::settings::REGISTRY.all() {
            let flag = match spec.key {
                "log.level" => self.log_level_flag.clone().map(|v| ("--log-level", v)),
                "data_dir" => self.data_dir_flag.as_ref().map(|v| ("--data-dir", v.display().to_string())),
                "database_url" => self.database_url_flag.clone().map(|v| ("--database-url", v)),
                "server.listen" => self.listen_flag.clone().map(|v| ("--listen", v)),
                _ => None,
            };
            let found = if let Some((flag, value)) = flag {
                Some(Pinned { source: PinSource::Flag { flag: flag.into() }, value })
            } else if let Some((variable, value)) = spec.env.and_then(|e| {
                // A blank variable still sets a file key (to nothing); a provider or tool reads
                // a blank one as unset.
                let value = if crate::settings::is_file_key(spec) { self.raw_env(e) } else { self.env(e) };
                value.map(|v| (e, v))
            }) {
                Some(Pinned { source: PinSource::Env { variable: variable.into() }, value: value.to_owned() })
            } else {
                lookup(&self.file, spec.key).map(|value| Pinned {
                    source: PinSource::File {
                        path: self.config_file.as_ref().map_or_else(String::new, |p| p.display().to_string()),
                    },
                    value: match value {
                        toml::Value::String(text) => text.clone(),
                        toml::Value::Array(items) => items
                            .iter()
                            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                            .collect::<Vec<_>>()
                            .join(","),
                        other => other.to_string(),
                    },
                })
            };
            if let Some(found) = found {
                pinned.insert(spec.key.to_owned(), found);
            }
        }
        pinned
    }
}

/// Database values in the clear, by setting name.
pub use runtime::settings::Values;

/// Phase one's inputs: the file read and checked, the environment and flags kept.
pub fn layers(
    global: &GlobalArgs,
    listen_flag: Option<&str>,
    env: &[(String, String)],
    cwd: &Path,
) -> Result<Layers, ConfigError> {
    let get = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let mut warnings = Vec::new();
    for (name, _) in env {
        let ours = name.starts_with("NEXUS_") && !ENV_TOOLING_PREFIXES.iter().any(|p| name.starts_with(p));
        if ours && !is_known_variable(name) {
            let known: Vec<&str> = std::iter::once(CONFIG_VARIABLE)
                .chain(VARIABLES.iter().map(|(variable, _, _)| *variable))
                .chain(KEY_VARIABLES.iter().copied())
                .chain(tools::builtin::SETTINGS_VARIABLES.iter().copied())
                .chain(providers::config::PROVIDER_VARIABLES.iter().copied())
                .collect();
            let hint = closest(name, &known).map(|c| format!(" (did you mean {c}?)")).unwrap_or_default();
            warnings.push(format!("unknown environment variable {name} is ignored{hint}"));
        }
    }
    let explicit = global.config.clone().or_else(|| get(CONFIG_VARIABLE).map(PathBuf::from));
    let config_file = match explicit {
        Some(path) => Some(path),
        None => Some(cwd.join(CONFIG_FILE)).filter(|p| p.is_file()),
    };
    let file = match &config_file {
        Some(path) => read_file(path)?,
        None => toml::Table::new(),
    };
    Ok(Layers {
        data_dir_flag: global.data_dir.clone(),
        database_url_flag: global.database_url.clone(),
        log_level_flag: global.log_level.clone(),
        listen_flag: listen_flag.map(str::to_owned),
        env: env.to_vec(),
        config_file,
        file,
        warnings,
    })
}

/// Phase one and two over kept layers, with `database` (the settings stored in the database)
/// under the file: built-in defaults, the database, `nexus.toml`, the variables, flags — each
/// later one winning.
pub fn resolve_layers(layers: &Layers, database: &Values) -> Result<Config, ConfigError> {
    let get = |name: &str| layers.env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());

    // Layer 2: the database's values of file keys.
    let mut table = toml::Table::new();
    for (key, value) in database {
        if let Some(spec) = crate::settings::REGISTRY.get(key)
            && crate::settings::is_file_key(spec)
        {
            set(&mut table, key, crate::settings::toml_value(spec, value));
        }
    }
    // Layer 3: the file, over the database.
    merge(&mut table, layers.file.clone());

    // Layer 4: the environment, each variable over its file key.
    for (variable, key, kind) in VARIABLES {
        if let Some(text) = get(variable) {
            set(&mut table, key, env_value(variable, &text, *kind)?);
        }
    }
    let mut layered: FileConfig = toml::Value::Table(table)
        .try_into()
        .map_err(|e| ConfigError::Invalid { setting: "environment", reason: e.to_string() })?;

    // Layer 5: flags.
    layered.data_dir = layers.data_dir_flag.clone().or(layered.data_dir);
    layered.database_url = layers.database_url_flag.clone().or(layered.database_url);
    layered.server.listen = layers.listen_flag.clone().or(layered.server.listen);
    layered.log.level = layers.log_level_flag.clone().or(layered.log.level);

    // Providers and tools read variables; the database's value stands in for an unset one.
    let lookup = |name: &str| {
        get(name).filter(|v| !v.trim().is_empty()).or_else(|| {
            let spec = crate::settings::REGISTRY.all().iter().find(|s| s.env == Some(name))?;
            database.get(spec.key).map(|v| v.to_string())
        })
    };
    let providers = ProviderSettings::from_env(lookup);
    let tools = BuiltinSettings::from_env(lookup).map_err(|error| match error {
        tools::builtin::SettingsError::Invalid { variable, reason } => ConfigError::Env { name: variable, reason },
    })?;
    let mut config = finish(layered, layers.config_file.clone(), layers.warnings.clone(), providers, tools)?;
    config.master_key = match get("NEXUS_MASTER_KEY").filter(|v| !v.trim().is_empty()) {
        Some(text) => Some(
            runtime::settings::MasterKey::from_hex(&text)
                .map_err(|e| ConfigError::Env { name: "NEXUS_MASTER_KEY", reason: e.to_string() })?,
        ),
        None => None,
    };
    config.master_key_file = get("NEXUS_MASTER_KEY_FILE")
        .filter(|v| !v.trim().is_empty())
        .map_or_else(|| config.data_dir.join("keys").join("master.key"), PathBuf::from);
    config.layers = std::sync::Arc::new(layers.clone());
    Ok(config)
}

/// Puts every key of `over` into `base`, section by section.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(inner)), toml::Value::Table(over_inner)) => merge(inner, over_inner),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// The value at a dotted key, if the table has it.
fn lookup<'a>(table: &'a toml::Table, key: &str) -> Option<&'a toml::Value> {
    match key.split_once('.') {
        None => table.get(key),
        Some((section, rest)) => lookup(table.get(section)?.as_table()?, rest),
    }
}

/// A variable's text as a value of its file key.
fn env_value(variable: &'static str, text: &str, kind: Kind) -> Result<toml::Value, ConfigError> {
    let invalid = |what: &str| ConfigError::Env { name: variable, reason: format!("{text:?} is not {what}") };
    Ok(match kind {
        Kind::Text => toml::Value::String(text.to_owned()),
        Kind::Whole(what) => toml::Value::Integer(
            text.trim().parse::<u64>().ok().and_then(|n| i64::try_from(n).ok()).ok_or_else(|| invalid(what))?,
        ),
        Kind::Number(what) => toml::Value::Float(text.trim().parse::<f64>().map_err(|_| invalid(what))?),
        Kind::List => toml::Value::Array(
            text.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| toml::Value::String(item.to_owned()))
                .collect(),
        ),
    })
}

/// Sets a dotted key (`ledger.origin`) in a table, making the sections it passes through.
fn set(table: &mut toml::Table, key: &str, value: toml::Value) {
    match key.split_once('.') {
        None => {
            table.insert(key.to_owned(), value);
        }
        Some((section, rest)) => {
            let entry = table.entry(section.to_owned()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            if let toml::Value::Table(inner) = entry {
                set(inner, rest, value);
            }
        }
    }
}

/// Reads and checks the file against the schema (so a mistake is reported with its line), then
/// returns it as a table for the later layers to go over.
fn read_file(path: &Path) -> Result<toml::Table, ConfigError> {
    let shown = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|e| ConfigError::File { path: shown.clone(), reason: e.to_string() })?;
    let file_error = |e: toml::de::Error| {
        let line =
            e.span().map(|s| text.as_bytes()[..s.start.min(text.len())].iter().filter(|b| **b == b'\n').count() + 1);
        let message = e.message().replace('\n', " ");
        let reason = match line {
            Some(line) => format!("line {line}: {message}"),
            None => message,
        };
        ConfigError::File { path: shown.clone(), reason }
    };
    toml::from_str::<FileConfig>(&text).map_err(file_error)?;
    toml::from_str::<toml::Table>(&text).map_err(file_error)
}

/// Phase two: defaults for what is still unset, then validation.
fn finish(
    file: FileConfig,
    config_file: Option<PathBuf>,
    warnings: Vec<String>,
    providers: ProviderSettings,
    tools: BuiltinSettings,
) -> Result<Config, ConfigError> {
    let data_dir = file.data_dir.unwrap_or_else(default_data_dir);
    let database_url = file.database_url.unwrap_or_else(|| format!("sqlite://{}", data_dir.join("nexus.db").display()));
    let database = DatabaseUrl::parse(&database_url)
        .map_err(|e| ConfigError::Invalid { setting: "database_url", reason: e.to_string() })?;

    let listen_text = file.server.listen.unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    let listen: SocketAddr = listen_text.parse().map_err(|_| ConfigError::Invalid {
        setting: "server.listen",
        reason: format!("{listen_text:?} is not an address like 127.0.0.1:8420"),
    })?;

    let ledger_origin = file.ledger.origin.unwrap_or_else(|| DEFAULT_ORIGIN.to_owned());
    if ledger_origin.is_empty() || ledger_origin.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ConfigError::Invalid {
            setting: "ledger.origin",
            reason: format!("{ledger_origin:?} must be non-empty with no spaces or control characters"),
        });
    }

    let interval_ms = file.ledger.checkpoint_interval_ms.unwrap_or(DEFAULT_CHECKPOINT_INTERVAL_MS);
    if !(10..=3_600_000).contains(&interval_ms) {
        return Err(ConfigError::Invalid {
            setting: "ledger.checkpoint_interval_ms",
            reason: format!("{interval_ms} is outside 10..=3600000"),
        });
    }

    let gateway_ack = match file.ledger.gateway_ack.as_deref() {
        None => runtime::llm::LedgerAck::Queued,
        Some(text) => runtime::llm::LedgerAck::parse(text).ok_or_else(|| ConfigError::Invalid {
            setting: "ledger.gateway_ack",
            reason: format!("{text:?} must be `queued` or `durable`"),
        })?,
    };

    if let Some(level) = &file.log.level
        && let Err(error) = tracing_subscriber::EnvFilter::try_new(level)
    {
        return Err(ConfigError::Invalid {
            setting: "log.level",
            reason: format!("{level:?} is not a log filter: {error}"),
        });
    }
    let log_format = match file.log.format.as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            return Err(ConfigError::Invalid {
                setting: "log.format",
                reason: format!("{other:?} is not \"text\" or \"json\""),
            });
        }
    };
    let log_file = match file.log.file.filter(|p| !p.as_os_str().is_empty()) {
        None => None,
        Some(path) => {
            let max_bytes = file.log.max_bytes.unwrap_or(10 * 1024 * 1024);
            if !(64 * 1024..=1 << 40).contains(&max_bytes) {
                return Err(ConfigError::Invalid {
                    setting: "log.max_bytes",
                    reason: format!("{max_bytes} is outside 65536..=1099511627776"),
                });
            }
            let keep = file.log.keep.unwrap_or(5);
            if !(1..=100).contains(&keep) {
                return Err(ConfigError::Invalid { setting: "log.keep", reason: format!("{keep} is outside 1..=100") });
            }
            Some(LogFile { path, max_bytes, keep })
        }
    };
    let signing_key = file.ledger.signing_key.unwrap_or_else(|| data_dir.join("keys").join("ledger.ed25519.pem"));
    let models = file.models;
    let models_dir = models.dir.clone().unwrap_or_else(|| data_dir.join("models"));
    let priced = |p: &PriceSection| p.input.is_finite() && p.input >= 0.0 && p.output.is_finite() && p.output >= 0.0;
    for (model, price) in &models.prices {
        if !priced(price) {
            return Err(ConfigError::Invalid {
                setting: "models.prices",
                reason: format!("{model:?}: prices must be non-negative numbers of USD per million tokens"),
            });
        }
    }
    if models.default_price.as_ref().is_some_and(|p| !priced(p)) {
        return Err(ConfigError::Invalid {
            setting: "models.default_price",
            reason: "prices must be non-negative numbers of USD per million tokens".to_owned(),
        });
    }
    for (setting, value) in
        [("models.trivial", &models.trivial), ("models.normal", &models.normal), ("models.complex", &models.complex)]
    {
        if let Some(value) = value
            && value.split_once('/').is_none_or(|(p, m)| p.is_empty() || m.is_empty())
        {
            return Err(ConfigError::Invalid {
                setting,
                reason: format!("{value:?} is not provider/model, e.g. anthropic/claude-sonnet-4-5"),
            });
        }
    }
    let api = api_settings(file.api, file.limits, file.budget)?;
    let telegram = ChannelConfig::from_result(telegram_settings(file.channels.telegram));
    let discord = ChannelConfig::from_result(discord_settings(file.channels.discord));
    let mut warnings = warnings;
    for (name, channel) in [("Telegram", channel_error(&telegram)), ("Discord", channel_error(&discord))] {
        if let Some(error) = channel {
            warnings.push(format!("{error}; the {name} bot stays off until it is fixed"));
        }
    }
    let routing = routing_settings(&file.routing)?;
    let jobs = job_settings(&file.jobs)?;
    let watchers = watcher_settings(&file.watchers)?;
    let untrusted_namespaces = untrusted_namespaces(&file.knowledge)?;

    Ok(Config {
        config_file,
        database_display: store::redact(&database_url),
        data_dir,
        database,
        listen,
        ledger_origin,
        checkpoint_interval: Duration::from_millis(interval_ms),
        gateway_ack,
        signing_key,
        log_level: file.log.level,
        log_format,
        log_file,
        model_trivial: models.trivial,
        model_normal: models.normal,
        model_complex: models.complex,
        prices: models.prices,
        default_price: models.default_price,
        models_dir,
        api,
        providers,
        tools,
        telegram,
        discord,
        routing,
        jobs,
        watchers,
        untrusted_namespaces,
        warnings,
        master_key: None,
        master_key_file: PathBuf::new(),
        layers: std::sync::Arc::new(Layers {
            data_dir_flag: None,
            database_url_flag: None,
            log_level_flag: None,
            listen_flag: None,
            env: Vec::new(),
            config_file: None,
            file: toml::Table::new(),
            warnings: Vec::new(),
        }),
    })
}

fn channel_error<S>(channel: &ChannelConfig<S>) -> Option<&str> {
    match channel {
        ChannelConfig::Invalid(error) => Some(error),
        _ => None,
    }
}

/// The routing thresholds, defaulting to the runtime's.
fn routing_settings(section: &RoutingSection) -> Result<RoutingSettings, ConfigError> {
    let defaults = runtime::RuntimeConfig::default();
    let fraction = |setting: &'static str, value: Option<f64>, default: f64| match value {
        None => Ok(default),
        Some(v) if (0.0..=1.0).contains(&v) => Ok(v),
        Some(v) => Err(ConfigError::Invalid { setting, reason: format!("{v} is outside 0..=1") }),
    };
    Ok(RoutingSettings {
        direct_answer_confidence: fraction(
            "routing.direct_answer_confidence",
            section.direct_answer_confidence,
            defaults.direct_answer_confidence,
        )?,
        equipment_confidence: fraction(
            "routing.equipment_confidence",
            section.equipment_confidence,
            defaults.equipment_confidence,
        )?,
    })
}

/// The job settings, each checked against a sane range and defaulting to the runtime's.
fn job_settings(section: &JobsSection) -> Result<runtime::jobs::JobSettings, ConfigError> {
    let defaults = runtime::jobs::JobSettings::default();
    let within =
        |setting: &'static str, value: Option<u64>, range: std::ops::RangeInclusive<u64>, default: u64| match value {
            None => Ok(default),
            Some(v) if range.contains(&v) => Ok(v),
            Some(v) => Err(ConfigError::Invalid {
                setting,
                reason: format!("{v} is outside {}..={}", range.start(), range.end()),
            }),
        };
    let workers = within("jobs.workers", section.workers, 0..=64, defaults.workers as u64)?;
    let tenant_cap =
        within("jobs.tenant_concurrency", section.tenant_concurrency, 1..=1000, u64::from(defaults.tenant_cap))?;
    let lease = within("jobs.lease_seconds", section.lease_seconds, 3..=3600, defaults.lease.as_secs())?;
    let max_attempts = within("jobs.max_attempts", section.max_attempts, 1..=100, u64::from(defaults.max_attempts))?;
    let backoff = within(
        "jobs.retry_backoff_seconds",
        section.retry_backoff_seconds,
        1..=86_400,
        defaults.retry_backoff.as_secs(),
    )?;
    Ok(runtime::jobs::JobSettings {
        workers: usize::try_from(workers).unwrap_or(defaults.workers),
        tenant_cap: u32::try_from(tenant_cap).unwrap_or(defaults.tenant_cap),
        lease: Duration::from_secs(lease),
        max_attempts: u32::try_from(max_attempts).unwrap_or(defaults.max_attempts),
        retry_backoff: Duration::from_secs(backoff),
        ..defaults
    })
}

/// Untrusted knowledge namespaces: names as `nexus ingest --namespace` takes them.
fn untrusted_namespaces(section: &KnowledgeSection) -> Result<Vec<String>, ConfigError> {
    let names = section.untrusted_namespaces.clone().unwrap_or_default();
    for name in &names {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            return Err(ConfigError::Invalid {
                setting: "knowledge.untrusted_namespaces",
                reason: format!("{name:?} is not a namespace name (1-64 letters, digits, '-', '_' or '.')"),
            });
        }
    }
    Ok(names)
}

/// The watcher settings: exceptions are exact IP addresses; the timeout within 1 s to 5 min.
fn watcher_settings(section: &WatchersSection) -> Result<runtime::watchers::WatcherSettings, ConfigError> {
    let defaults = runtime::watchers::WatcherSettings::default();
    let mut allow_addresses = Vec::new();
    for text in section.allow_addresses.iter().flatten() {
        let address = text.trim().parse::<std::net::IpAddr>().map_err(|_| ConfigError::Invalid {
            setting: "watchers.allow_addresses",
            reason: format!("{text:?} is not an IP address (exact addresses only, no ranges or names)"),
        })?;
        allow_addresses.push(address);
    }
    let timeout = match section.timeout_seconds {
        None => defaults.timeout,
        Some(seconds) if (1..=300).contains(&seconds) => Duration::from_secs(seconds),
        Some(seconds) => {
            return Err(ConfigError::Invalid {
                setting: "watchers.timeout_seconds",
                reason: format!("{seconds} is outside 1..=300"),
            });
        }
    };
    Ok(runtime::watchers::WatcherSettings { allow_addresses, timeout, ..defaults })
}

/// The Telegram bot's settings, checked; `None` without a token.
fn telegram_settings(section: TelegramSection) -> Result<Option<channels::telegram::TelegramSettings>, ConfigError> {
    use channels::telegram::{DEFAULT_API_URL, DEFAULT_POLL_TIMEOUT, DEFAULT_STALL_AFTER, TelegramSettings};
    let Some(token) = section.bot_token.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    // `123456:ABC-…`: the bot's id, a colon, the secret.
    let well_formed = token.split_once(':').is_some_and(|(id, secret)| {
        !id.is_empty()
            && id.bytes().all(|b| b.is_ascii_digit())
            && !secret.is_empty()
            && secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    });
    if !well_formed {
        return Err(ConfigError::Invalid {
            setting: "channels.telegram.bot_token",
            reason: "is not a bot token like 123456:ABC-DEF… (from BotFather; NEXUS_TELEGRAM_BOT_TOKEN)".into(),
        });
    }
    let api_url =
        channel_api_url(section.api_url, DEFAULT_API_URL, "channels.telegram.api_url", "NEXUS_TELEGRAM_API_URL")?;
    let tenant = channel_tenant(section.tenant, "channels.telegram.tenant")?;
    let admission = channel_admission(section.admission.as_deref(), "channels.telegram.admission")?;
    let poll_timeout = section.poll_timeout_seconds.map_or(DEFAULT_POLL_TIMEOUT, std::time::Duration::from_secs);
    if !(1..=50).contains(&poll_timeout.as_secs()) {
        return Err(ConfigError::Invalid {
            setting: "channels.telegram.poll_timeout_seconds",
            reason: format!("{} is outside 1..=50", poll_timeout.as_secs()),
        });
    }
    let stall_after = section.stall_seconds.map_or(DEFAULT_STALL_AFTER, std::time::Duration::from_secs);
    if stall_after.as_secs() > 600 || stall_after <= poll_timeout + std::time::Duration::from_secs(1) {
        return Err(ConfigError::Invalid {
            setting: "channels.telegram.stall_seconds",
            reason: format!(
                "{} must be more than poll_timeout_seconds + 1 ({}) and at most 600",
                stall_after.as_secs(),
                poll_timeout.as_secs() + 1
            ),
        });
    }
    let webhook = match section.webhook_url.map(|u| u.trim().to_owned()).filter(|u| !u.is_empty()) {
        None => None,
        Some(text) => {
            let url = url::Url::parse(&text)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                .filter(|u| u.path().starts_with("/telegram/") && u.path().len() > "/telegram/".len())
                .ok_or_else(|| ConfigError::Invalid {
                    setting: "channels.telegram.webhook_url",
                    reason: format!(
                        "{text:?} is not an http(s) address whose path starts with /telegram/, like \
                         https://bot.example.com/telegram/webhook (NEXUS_TELEGRAM_WEBHOOK_URL)"
                    ),
                })?;
            let secret = match section.webhook_secret.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()) {
                Some(secret) => {
                    let valid = secret.len() <= 256
                        && secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                    if !valid {
                        return Err(ConfigError::Invalid {
                            setting: "channels.telegram.webhook_secret",
                            reason: "must be 1 to 256 letters, digits, _ or - (NEXUS_TELEGRAM_WEBHOOK_SECRET)".into(),
                        });
                    }
                    secret
                }
                // Every replica with the token derives the same secret; nobody without it can.
                None => runtime::keys::key_hash(&format!("nexus telegram webhook:{token}"))[..48].to_owned(),
            };
            Some(channels::telegram::WebhookSettings { url, secret })
        }
    };
    Ok(Some(TelegramSettings {
        token,
        api_url,
        tenant,
        admission,
        allowed_chats: section.allowed_chats.unwrap_or_default(),
        poll_timeout,
        stall_after,
        webhook,
    }))
}

/// A channel's platform address: http(s) with a host.
fn channel_api_url(
    text: Option<String>,
    default: &str,
    setting: &'static str,
    variable: &str,
) -> Result<url::Url, ConfigError> {
    let text = text.unwrap_or_else(|| default.to_owned());
    url::Url::parse(&text).ok().filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some()).ok_or_else(
        || ConfigError::Invalid {
            setting,
            reason: format!("{text:?} is not an http(s) address like {default} ({variable})"),
        },
    )
}

/// The tenant a channel serves (`demo` unless set).
fn channel_tenant(text: Option<String>, setting: &'static str) -> Result<domain::TenantId, ConfigError> {
    let text = text.unwrap_or_else(|| "demo".to_owned());
    domain::TenantId::parse(text.clone())
        .map_err(|e| ConfigError::Invalid { setting, reason: format!("{text:?}: {e}") })
}

fn channel_admission(text: Option<&str>, setting: &'static str) -> Result<domain::channel::Admission, ConfigError> {
    match text {
        None => Ok(domain::channel::Admission::default()),
        Some(text) => {
            text.parse().map_err(|e: domain::UnknownValue| ConfigError::Invalid { setting, reason: e.to_string() })
        }
    }
}

/// The Discord bot's settings, checked; `None` without a token.
fn discord_settings(section: DiscordSection) -> Result<Option<channels::discord::DiscordSettings>, ConfigError> {
    use channels::discord::{DEFAULT_API_URL, DiscordSettings};
    let Some(token) = section.bot_token.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let token = token.strip_prefix("Bot ").map_or(token.clone(), str::to_owned);
    if !token.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
        return Err(ConfigError::Invalid {
            setting: "channels.discord.bot_token",
            reason: "is not a bot token (letters, digits, dots, - and _; from the Discord developer portal; \
                     NEXUS_DISCORD_BOT_TOKEN)"
                .into(),
        });
    }
    let api_url =
        channel_api_url(section.api_url, DEFAULT_API_URL, "channels.discord.api_url", "NEXUS_DISCORD_API_URL")?;
    let tenant = channel_tenant(section.tenant, "channels.discord.tenant")?;
    let admission = channel_admission(section.admission.as_deref(), "channels.discord.admission")?;
    let snowflakes = |list: Option<Vec<String>>, setting: &'static str| -> Result<Vec<String>, ConfigError> {
        let list = list.unwrap_or_default();
        match list.iter().find(|id| id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit())) {
            Some(bad) => Err(ConfigError::Invalid { setting, reason: format!("{bad:?} is not a Discord id (digits)") }),
            None => Ok(list),
        }
    };
    let allowed_guilds = snowflakes(section.allowed_guilds, "channels.discord.allowed_guilds")?;
    let moderated_channels = snowflakes(section.moderated_channels, "channels.discord.moderated_channels")?;
    let staff_channel = snowflakes(section.staff_channel.map(|c| vec![c]), "channels.discord.staff_channel")?.pop();
    let timeout_minutes = section.timeout_minutes.unwrap_or(10);
    if !(1..=40_320).contains(&timeout_minutes) {
        return Err(ConfigError::Invalid {
            setting: "channels.discord.timeout_minutes",
            reason: format!("{timeout_minutes} is outside 1..=40320 (Discord allows up to 28 days)"),
        });
    }
    let m = section.moderation;
    let mut policy = runtime::moderation::ModerationPolicy::default();
    let mut patterns = Vec::new();
    for (n, pattern) in m.patterns.unwrap_or_default().iter().enumerate() {
        patterns.push(regex::Regex::new(pattern).map_err(|e| ConfigError::Invalid {
            setting: "channels.discord.moderation.patterns",
            reason: format!("pattern {n} ({pattern:?}) is not a regular expression: {e}"),
        })?);
    }
    policy.rules = domain::moderation::ScreenRules {
        words: m.words.unwrap_or_default().into_iter().map(|w| w.trim().to_owned()).filter(|w| !w.is_empty()).collect(),
        patterns,
        max_links: m.max_links.unwrap_or(policy.rules.max_links),
        max_mentions: m.max_mentions.unwrap_or(policy.rules.max_mentions),
        max_per_minute: m.max_per_minute.unwrap_or(policy.rules.max_per_minute).max(1),
    };
    if let Some(model) = m.model.map(|m| m.trim().to_owned()).filter(|m| !m.is_empty()) {
        policy.model = model;
    }
    let overrides = Overrides {
        threshold: m.threshold,
        dry_run: m.dry_run,
        require_approval: m.require_approval,
        staff_level: m.staff_level,
    };
    overrides.apply(&mut policy).map_err(|(key, reason)| ConfigError::Invalid { setting: key.base(), reason })?;
    let mut guilds = std::collections::HashMap::new();
    for (guild, section) in section.guilds {
        let invalid = |key: &str, reason: String| ConfigError::Invalid {
            setting: "channels.discord.guilds",
            reason: format!("guild {guild:?}: {key}: {reason}"),
        };
        if guild.is_empty() || !guild.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("id", "is not a Discord guild id (digits)".into()));
        }
        let staff_channel = match section.staff_channel {
            Some(c) if c.is_empty() || !c.bytes().all(|b| b.is_ascii_digit()) => {
                return Err(invalid("staff_channel", format!("{c:?} is not a Discord id (digits)")));
            }
            other => other,
        };
        let mut own = policy.clone();
        let overrides = Overrides {
            threshold: section.threshold,
            dry_run: section.dry_run,
            require_approval: section.require_approval,
            staff_level: section.staff_level,
        };
        overrides.apply(&mut own).map_err(|(key, reason)| invalid(key.name(), reason))?;
        guilds.insert(guild, channels::discord::GuildModeration { moderation: own, staff_channel });
    }
    Ok(Some(DiscordSettings {
        token,
        api_url,
        tenant,
        admission,
        allowed_guilds,
        moderated_channels,
        staff_channel,
        moderation: policy,
        guilds,
        timeout: std::time::Duration::from_secs(timeout_minutes * 60),
    }))
}

/// The moderation settings a guild may override, as read from the file.
struct Overrides {
    threshold: Option<f64>,
    dry_run: Option<bool>,
    require_approval: Option<Vec<String>>,
    staff_level: Option<u8>,
}

/// Which override a mistake is in.
#[derive(Debug, Clone, Copy)]
enum OverrideKey {
    Threshold,
    RequireApproval,
    StaffLevel,
}

impl OverrideKey {
    fn name(self) -> &'static str {
        match self {
            OverrideKey::Threshold => "threshold",
            OverrideKey::RequireApproval => "require_approval",
            OverrideKey::StaffLevel => "staff_level",
        }
    }

    /// The key in `[channels.discord.moderation]`.
    fn base(self) -> &'static str {
        match self {
            OverrideKey::Threshold => "channels.discord.moderation.threshold",
            OverrideKey::RequireApproval => "channels.discord.moderation.require_approval",
            OverrideKey::StaffLevel => "channels.discord.moderation.staff_level",
        }
    }
}

impl Overrides {
    /// Applies what is set over `policy`, each value checked.
    fn apply(self, policy: &mut runtime::moderation::ModerationPolicy) -> Result<(), (OverrideKey, String)> {
        if let Some(threshold) = self.threshold {
            if !(0.5..=0.99).contains(&threshold) {
                return Err((OverrideKey::Threshold, format!("{threshold} is outside 0.5..=0.99")));
            }
            policy.threshold = threshold;
        }
        if let Some(dry_run) = self.dry_run {
            policy.dry_run = dry_run;
        }
        if let Some(actions) = self.require_approval {
            policy.needs_approval = actions
                .iter()
                .map(|a| {
                    a.parse::<domain::moderation::ModAction>()
                        .map_err(|e| (OverrideKey::RequireApproval, e.to_string()))
                })
                .collect::<Result<_, _>>()?;
        }
        if let Some(level) = self.staff_level {
            if level > domain::tenant::UserLevel::MAX {
                return Err((
                    OverrideKey::StaffLevel,
                    format!("{level} is above the highest level, {}", domain::tenant::UserLevel::MAX),
                ));
            }
            policy.staff_level = level;
        }
        Ok(())
    }
}

/// The HTTP API's settings, checked.
fn api_settings(api: ApiSection, limits: LimitsSection, budget: BudgetSection) -> Result<ApiSettings, ConfigError> {
    let max_body_bytes = match api.max_body_bytes {
        None => DEFAULT_MAX_BODY_BYTES,
        Some(n) if (1024..=1 << 32).contains(&n) => usize::try_from(n).unwrap_or(DEFAULT_MAX_BODY_BYTES),
        Some(n) => {
            return Err(ConfigError::Invalid {
                setting: "api.max_body_bytes",
                reason: format!("{n} is outside 1024..=4294967296"),
            });
        }
    };
    let cors_origins = api.cors_origins.unwrap_or_default();
    for origin in &cors_origins {
        if origin != "*" && !(origin.starts_with("http://") || origin.starts_with("https://")) {
            return Err(ConfigError::Invalid {
                setting: "api.cors_origins",
                reason: format!("{origin:?} is not \"*\" or an origin like https://app.example.com"),
            });
        }
    }
    let redis_url = api.redis_url.filter(|u| !u.trim().is_empty());
    if let Some(url) = &redis_url
        && !(url.starts_with("redis://") || url.starts_with("rediss://"))
    {
        return Err(ConfigError::Invalid {
            setting: "api.redis_url",
            reason: "must start with redis:// or rediss://".into(),
        });
    }
    let trusted_proxies = api
        .trusted_proxies
        .unwrap_or_default()
        .iter()
        .filter(|p| !p.trim().is_empty())
        .map(|p| console::proxies::ProxyNet::parse(p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|reason| ConfigError::Invalid { setting: "api.trusted_proxies", reason })?;
    let defaults = LimitSettings::default();
    let limits = LimitSettings {
        key_requests_per_minute: limits.key_requests_per_minute.unwrap_or(defaults.key_requests_per_minute),
        tenant_requests_per_minute: limits.tenant_requests_per_minute.unwrap_or(defaults.tenant_requests_per_minute),
        tenant_chains_per_hour: limits.tenant_chains_per_hour.unwrap_or(defaults.tenant_chains_per_hour),
    };
    for (setting, value) in [
        ("limits.key_requests_per_minute", limits.key_requests_per_minute),
        ("limits.tenant_requests_per_minute", limits.tenant_requests_per_minute),
        ("limits.tenant_chains_per_hour", limits.tenant_chains_per_hour),
    ] {
        if value == 0 {
            return Err(ConfigError::Invalid { setting, reason: "must be at least 1".into() });
        }
    }
    let budget_usd = budget.monthly_usd.unwrap_or(domain::tenant::DEFAULT_BUDGET_USD);
    if !budget_usd.is_finite() || budget_usd < 0.0 {
        return Err(ConfigError::Invalid {
            setting: "budget.monthly_usd",
            reason: format!("{budget_usd} is not a non-negative amount"),
        });
    }
    let alert_fraction = budget.alert_fraction.unwrap_or(domain::tenant::DEFAULT_BUDGET_ALERT_FRACTION);
    if !(alert_fraction > 0.0 && alert_fraction < 1.0) {
        return Err(ConfigError::Invalid {
            setting: "budget.alert_fraction",
            reason: format!("{alert_fraction} is not between 0 and 1"),
        });
    }
    Ok(ApiSettings { max_body_bytes, cors_origins, redis_url, trusted_proxies, limits, budget_usd, alert_fraction })
}

/// `$XDG_DATA_HOME/nexus`, else `~/.local/share/nexus`, else `./nexus-data`.
fn default_data_dir() -> PathBuf {
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("nexus");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home).join(".local").join("share").join("nexus");
    }
    PathBuf::from("nexus-data")
}

/// The known name closest to `name`, if it is close enough to be a likely typo.
fn closest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    runtime::settings::closest(name, known.iter().copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn dir_with(file: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("nexus.toml"), file).expect("write config");
        dir
    }

    #[test]
    fn untrusted_knowledge_namespaces_come_from_the_file_or_the_variable_and_bad_names_are_named() {
        let dir = dir_with("[knowledge]\nuntrusted_namespaces = [\"web\"]\n");
        let config = resolve(&GlobalArgs::default(), None, &[], dir.path()).expect("resolves");
        assert_eq!(config.untrusted_namespaces, ["web"]);
        let e = env(&[("NEXUS_KNOWLEDGE_UNTRUSTED_NAMESPACES", "web,mail")]);
        let config = resolve(&GlobalArgs::default(), None, &e, dir.path()).expect("resolves");
        assert_eq!(config.untrusted_namespaces, ["web", "mail"]);
        let bad = dir_with("[knowledge]\nuntrusted_namespaces = [\"a b\"]\n");
        let err = resolve(&GlobalArgs::default(), None, &[], bad.path()).expect_err("bad name");
        assert!(err.to_string().contains("knowledge.untrusted_namespaces"), "{err}");
    }

    #[test]
    fn defaults_fill_everything() {
        let dir = tempfile::tempdir().expect("tempdir");
        let global = GlobalArgs { data_dir: Some("/srv/nexus".into()), ..GlobalArgs::default() };
        let config = resolve(&global, None, &[], dir.path()).expect("resolves");
        assert_eq!(config.database, DatabaseUrl::Sqlite("/srv/nexus/nexus.db".into()));
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.signing_key, PathBuf::from("/srv/nexus/keys/ledger.ed25519.pem"));
        assert_eq!(config.checkpoint_interval, Duration::from_secs(1));
        assert!(config.config_file.is_none());
    }

    #[test]
    fn the_database_layer_sits_under_the_file_and_what_pins_a_setting_is_named() {
        let dir = dir_with("[limits]\nkey_requests_per_minute = 9\n");
        let e = env(&[("NEXUS_CORS_ORIGINS", ""), ("OPENAI_BASE_URL", ""), ("OPENAI_API_KEY", "sk-env")]);
        let layers =
            layers(&GlobalArgs { log_level: Some("debug".into()), ..GlobalArgs::default() }, None, &e, dir.path())
                .expect("layers");
        let database: Values = [
            ("limits.key_requests_per_minute", "5"),
            ("limits.tenant_chains_per_hour", "7"),
            ("providers.openai.base_url", "http://127.0.0.1:9/v1"),
            ("providers.openai.api_key", "sk-db"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), zeroize::Zeroizing::new(v.to_owned())))
        .collect();
        let config = resolve_layers(&layers, &database).expect("resolves");
        assert_eq!(config.api.limits.key_requests_per_minute, 9, "the file wins over the database");
        assert_eq!(config.api.limits.tenant_chains_per_hour, 7, "the database wins over the default");
        assert_eq!(
            config.providers.openai_base_url.as_deref(),
            Some("http://127.0.0.1:9/v1"),
            "a blank variable is unset"
        );
        let pinned = layers.pinned();
        let source = |key: &str| pinned.get(key).map(|p| p.source.clone());
        assert!(matches!(source("limits.key_requests_per_minute"), Some(runtime::settings::PinSource::File { .. })));
        assert!(matches!(source("providers.openai.api_key"), Some(runtime::settings::PinSource::Env { .. })));
        assert!(
            matches!(source("api.cors_origins"), Some(runtime::settings::PinSource::Env { .. })),
            "a blank file-key variable still sets it"
        );
        assert!(matches!(source("log.level"), Some(runtime::settings::PinSource::Flag { .. })));
        assert_eq!(source("providers.openai.base_url"), None);
        assert_eq!(source("limits.tenant_chains_per_hour"), None);
    }

    #[test]
    fn layers_override_in_order_file_env_flags() {
        let dir = dir_with(
            "data_dir = \"/from/file\"\n[server]\nlisten = \"127.0.0.1:1\"\n[ledger]\norigin = \"file.example\"\n",
        );
        let from_file = resolve(&GlobalArgs::default(), None, &[], dir.path()).expect("resolves");
        assert_eq!((from_file.data_dir.to_str(), from_file.listen.port()), (Some("/from/file"), 1));
        assert_eq!(from_file.ledger_origin, "file.example");

        let e = env(&[("NEXUS_LISTEN", "127.0.0.1:2"), ("NEXUS_DATA_DIR", "/from/env")]);
        let from_env = resolve(&GlobalArgs::default(), None, &e, dir.path()).expect("resolves");
        assert_eq!((from_env.data_dir.to_str(), from_env.listen.port()), (Some("/from/env"), 2));
        assert_eq!(from_env.ledger_origin, "file.example", "untouched settings keep the file's value");
        assert_eq!(from_env.gateway_ack, runtime::llm::LedgerAck::Queued, "gateway calls are queued by default");
        let durable =
            resolve(&GlobalArgs::default(), None, &env(&[("NEXUS_LEDGER_GATEWAY_ACK", "durable")]), dir.path())
                .expect("resolves");
        assert_eq!(durable.gateway_ack, runtime::llm::LedgerAck::Durable);

        let flags = GlobalArgs { data_dir: Some("/from/flag".into()), ..GlobalArgs::default() };
        let from_flags = resolve(&flags, Some("127.0.0.1:3"), &e, dir.path()).expect("resolves");
        assert_eq!((from_flags.data_dir.to_str(), from_flags.listen.port()), (Some("/from/flag"), 3));
    }

    #[test]
    fn unknown_file_keys_are_errors_naming_file_and_line() {
        let dir = dir_with("[server]\nlisten = \"127.0.0.1:1\"\nlisten_port = 9\n");
        let err = resolve(&GlobalArgs::default(), None, &[], dir.path()).expect_err("unknown key");
        let text = err.to_string();
        assert!(text.contains("nexus.toml") && text.contains("line 3") && text.contains("listen_port"), "{text}");
        assert!(!text.contains('\n'), "one line: {text}");
    }

    #[test]
    fn malformed_files_and_values_name_the_setting() {
        let dir = dir_with("[server\nlisten = ");
        assert!(matches!(resolve(&GlobalArgs::default(), None, &[], dir.path()), Err(ConfigError::File { .. })));

        let dir = tempfile::tempdir().expect("tempdir");
        let cases = [
            (env(&[("NEXUS_LISTEN", "localhost")]), "server.listen"),
            (env(&[("NEXUS_DATABASE_URL", "mysql://x")]), "database_url"),
            (env(&[("NEXUS_LEDGER_ORIGIN", "has space")]), "ledger.origin"),
            (env(&[("NEXUS_CHECKPOINT_INTERVAL_MS", "1")]), "ledger.checkpoint_interval_ms"),
            (env(&[("NEXUS_CHECKPOINT_INTERVAL_MS", "soon")]), "NEXUS_CHECKPOINT_INTERVAL_MS"),
            (env(&[("NEXUS_LOG_FORMAT", "xml")]), "log.format"),
            (env(&[("NEXUS_LEDGER_GATEWAY_ACK", "eventually")]), "ledger.gateway_ack"),
        ];
        for (e, named) in cases {
            let err = resolve(&GlobalArgs::default(), None, &e, dir.path()).expect_err("invalid");
            assert!(err.to_string().contains(named), "{err} should name {named}");
        }
    }

    #[test]
    fn models_and_price_overrides_are_read_and_checked() {
        let dir = dir_with(
            "[models]\nnormal = \"anthropic/claude-sonnet-4-5\"\n[models.prices.\"my-model\"]\ninput = 1.5\noutput = 6.0\n",
        );
        let config = resolve(&GlobalArgs::default(), None, &[], dir.path()).expect("resolves");
        assert_eq!(config.model_normal.as_deref(), Some("anthropic/claude-sonnet-4-5"));
        assert_eq!(config.prices.get("my-model"), Some(&PriceSection { input: 1.5, output: 6.0 }));
        let bad = dir_with("[models.prices.x]\ninput = -1.0\noutput = 1.0\n");
        assert!(
            resolve(&GlobalArgs::default(), None, &[], bad.path())
                .expect_err("negative")
                .to_string()
                .contains("models.prices")
        );
        assert_eq!(config.default_price, None, "no default price unless configured");
        let priced = dir_with("[models]\ndefault_price = { input = 1.0, output = 4.0 }\n");
        let config = resolve(&GlobalArgs::default(), None, &[], priced.path()).expect("resolves");
        assert_eq!(config.default_price, Some(PriceSection { input: 1.0, output: 4.0 }));
        let bad = dir_with("[models]\ndefault_price = { input = 1.0, output = -4.0 }\n");
        assert!(
            resolve(&GlobalArgs::default(), None, &[], bad.path())
                .expect_err("negative")
                .to_string()
                .contains("models.default_price")
        );
        let bad = dir_with("[models]\nnormal = \"just-a-model\"\n");
        assert!(
            resolve(&GlobalArgs::default(), None, &[], bad.path())
                .expect_err("no provider")
                .to_string()
                .contains("models.normal")
        );
    }

    #[test]
    fn a_missing_explicit_config_file_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let global = GlobalArgs { config: Some(dir.path().join("absent.toml")), ..GlobalArgs::default() };
        let err = resolve(&global, None, &[], dir.path()).expect_err("missing file");
        assert!(err.to_string().contains("absent.toml"));
    }

    #[test]
    fn unknown_variables_are_reported_with_a_suggestion() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = env(&[("NEXUS_DATABSE_URL", "x"), ("NEXUS_TEST_POSTGRES_URL", "y")]);
        let config = resolve(&GlobalArgs::default(), None, &e, dir.path()).expect("resolves");
        assert_eq!(config.warnings.len(), 1, "tooling variables are not reported: {:?}", config.warnings);
        assert!(config.warnings[0].contains("NEXUS_DATABSE_URL") && config.warnings[0].contains("NEXUS_DATABASE_URL"));
    }

    #[test]
    fn every_variable_sets_a_key_of_the_file() {
        for (variable, key, kind) in VARIABLES {
            let sample = match kind {
                Kind::Text => "x",
                Kind::Whole(_) => "5",
                Kind::Number(_) => "0.5",
                Kind::List => "https://a.example, https://b.example",
            };
            let mut table = toml::Table::new();
            set(&mut table, key, env_value(variable, sample, *kind).expect("sample parses"));
            let layered: Result<FileConfig, _> = toml::Value::Table(table).try_into();
            assert!(layered.is_ok(), "{variable} sets {key}, which the file does not have as {kind:?}: {layered:?}");
        }
    }

    #[test]
    fn api_settings_layer_like_every_other_setting() {
        let dir = dir_with(
            "[api]\ncors_origins = [\"https://file.example\"]\n[limits]\nkey_requests_per_minute = 5\ntenant_chains_per_hour = 9\n[budget]\nmonthly_usd = 100\n",
        );
        let from_file = resolve(&GlobalArgs::default(), None, &[], dir.path()).expect("resolves");
        assert_eq!(from_file.api.cors_origins, ["https://file.example"]);
        assert_eq!((from_file.api.limits.key_requests_per_minute, from_file.api.limits.tenant_chains_per_hour), (5, 9));
        assert_eq!(from_file.api.budget_usd, 100.0);
        assert_eq!(from_file.api.max_body_bytes, DEFAULT_MAX_BODY_BYTES);

        let e = env(&[
            ("NEXUS_RATE_LIMIT_KEY_RPM", "7"),
            ("NEXUS_CORS_ORIGINS", "https://a.example, https://b.example"),
            ("NEXUS_BUDGET_ALERT_FRACTION", "0.5"),
            ("NEXUS_TRUSTED_PROXIES", "10.0.0.0/8, ::1"),
        ]);
        let from_env = resolve(&GlobalArgs::default(), None, &e, dir.path()).expect("resolves");
        assert_eq!(from_env.api.limits.key_requests_per_minute, 7);
        assert_eq!(from_env.api.limits.tenant_chains_per_hour, 9, "untouched settings keep the file's value");
        assert_eq!(from_env.api.cors_origins, ["https://a.example", "https://b.example"]);
        assert_eq!(from_env.api.alert_fraction, 0.5);
        assert_eq!(from_env.api.trusted_proxies.len(), 2);

        let empty = tempfile::tempdir().expect("tempdir");
        let cases = [
            (env(&[("NEXUS_RATE_LIMIT_KEY_RPM", "-1")]), "NEXUS_RATE_LIMIT_KEY_RPM"),
            (env(&[("NEXUS_RATE_LIMIT_TENANT_RPM", "0")]), "limits.tenant_requests_per_minute"),
            (env(&[("NEXUS_MAX_BODY_BYTES", "12")]), "api.max_body_bytes"),
            (env(&[("NEXUS_CORS_ORIGINS", "example.com")]), "api.cors_origins"),
            (env(&[("NEXUS_REDIS_URL", "http://x")]), "api.redis_url"),
            (env(&[("NEXUS_TRUSTED_PROXIES", "10.0.0.0/40")]), "api.trusted_proxies"),
            (env(&[("NEXUS_BUDGET_MONTHLY_USD", "lots")]), "NEXUS_BUDGET_MONTHLY_USD"),
            (env(&[("NEXUS_BUDGET_ALERT_FRACTION", "1.5")]), "budget.alert_fraction"),
        ];
        for (e, named) in cases {
            let err = resolve(&GlobalArgs::default(), None, &e, empty.path()).expect_err("invalid");
            assert!(err.to_string().contains(named), "{err} should name {named}");
        }
    }

    #[test]
    fn routing_thresholds_and_job_settings_layer_and_are_checked() {
        let empty = tempfile::tempdir().expect("tempdir");
        let defaults = resolve(&GlobalArgs::default(), None, &[], empty.path()).expect("resolves");
        assert_eq!(
            defaults.routing.direct_answer_confidence,
            runtime::RuntimeConfig::default().direct_answer_confidence
        );
        assert_eq!(defaults.jobs.workers, runtime::jobs::JobSettings::default().workers);

        let dir = dir_with(
            "[routing]\ndirect_answer_confidence = 0.9\nequipment_confidence = 0.95\n[jobs]\nworkers = 0\ntenant_concurrency = 5\nlease_seconds = 60\nmax_attempts = 7\nretry_backoff_seconds = 2\n",
        );
        let from_file = resolve(&GlobalArgs::default(), None, &[], dir.path()).expect("resolves");
        assert_eq!(from_file.routing, RoutingSettings { direct_answer_confidence: 0.9, equipment_confidence: 0.95 });
        assert_eq!((from_file.jobs.workers, from_file.jobs.tenant_cap, from_file.jobs.max_attempts), (0, 5, 7));
        assert_eq!(
            (from_file.jobs.lease, from_file.jobs.retry_backoff),
            (Duration::from_secs(60), Duration::from_secs(2))
        );

        let e = env(&[("NEXUS_ROUTING_DIRECT_CONFIDENCE", "0.6"), ("NEXUS_JOB_WORKERS", "4")]);
        let from_env = resolve(&GlobalArgs::default(), None, &e, dir.path()).expect("resolves");
        assert_eq!(from_env.routing.direct_answer_confidence, 0.6);
        assert_eq!(from_env.routing.equipment_confidence, 0.95, "untouched settings keep the file's value");
        assert_eq!(from_env.jobs.workers, 4);

        let cases = [
            (env(&[("NEXUS_ROUTING_DIRECT_CONFIDENCE", "1.5")]), "routing.direct_answer_confidence"),
            (env(&[("NEXUS_ROUTING_EQUIPMENT_CONFIDENCE", "sure")]), "NEXUS_ROUTING_EQUIPMENT_CONFIDENCE"),
            (env(&[("NEXUS_JOB_TENANT_CONCURRENCY", "0")]), "jobs.tenant_concurrency"),
            (env(&[("NEXUS_JOB_LEASE_SECONDS", "1")]), "jobs.lease_seconds"),
            (env(&[("NEXUS_JOB_MAX_ATTEMPTS", "0")]), "jobs.max_attempts"),
        ];
        for (e, named) in cases {
            let err = resolve(&GlobalArgs::default(), None, &e, empty.path()).expect_err("invalid");
            assert!(err.to_string().contains(named), "{err} should name {named}");
        }
    }

    #[test]
    fn provider_and_tool_settings_come_from_the_same_snapshot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = env(&[
            ("OPENAI_API_KEY", "sk-test"),
            ("NEXUS_OPENAI_COMPATIBLE_BASE_URL", "http://127.0.0.1:9/v1"),
            ("NEXUS_SEARXNG_URL", "http://127.0.0.1:8888"),
        ]);
        let config = resolve(&GlobalArgs::default(), None, &e, dir.path()).expect("resolves");
        assert!(config.providers.openai_api_key.is_some());
        assert_eq!(config.providers.compatible_base_url.as_deref(), Some("http://127.0.0.1:9/v1"));
        assert_eq!(config.tools.searxng_url.as_deref(), Some("http://127.0.0.1:8888"));
        assert!(config.warnings.is_empty(), "provider and tool variables are known: {:?}", config.warnings);

        let bad = env(&[("NEXUS_SMTP_PORT", "twenty-five")]);
        let err = resolve(&GlobalArgs::default(), None, &bad, dir.path()).expect_err("bad port");
        assert!(err.to_string().contains("NEXUS_SMTP_PORT"), "{err}");
    }

    #[test]
    fn the_discord_bot_is_configured_by_file_and_environment_with_each_mistake_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("nexus.toml");
        std::fs::write(
            &file,
            "[channels.discord]\nmoderated_channels = [\"42\"]\nstaff_channel = \"43\"\n\
             [channels.discord.moderation]\nwords = [\"scam\"]\npatterns = [\"(?i)free\\\\s+nitro\"]\n\
             threshold = 0.9\nrequire_approval = [\"ban\"]\ndry_run = true\n\
             [channels.discord.guilds.\"77\"]\nstaff_channel = \"78\"\ndry_run = false\nthreshold = 0.95\n",
        )
        .expect("write");
        let e = env(&[("NEXUS_DISCORD_BOT_TOKEN", "MTAx.abc-DEF_ghi"), ("NEXUS_DISCORD_ADMISSION", "open")]);
        let config = resolve(&GlobalArgs::default(), None, &e, dir.path()).expect("resolves");
        let discord = config.discord.settings().cloned().expect("configured");
        assert_eq!(discord.api_url.as_str(), "https://discord.com/");
        assert_eq!(discord.admission, domain::channel::Admission::Open);
        assert_eq!(discord.moderated_channels, ["42"]);
        assert_eq!(discord.staff_channel.as_deref(), Some("43"));
        // Guild 77 keeps the bot's rules but has its own threshold, no dry run, its own staff.
        let own = discord.policy(Some("77"));
        assert!(!own.dry_run && (own.threshold - 0.95).abs() < 1e-9);
        assert_eq!(own.needs_approval, [domain::moderation::ModAction::Ban], "inherited");
        assert_eq!(discord.staff_channel_of(Some("77")), Some("78"));
        assert_eq!(discord.staff_channel_of(Some("99")), Some("43"), "other guilds: the bot's");
        assert!(discord.policy(Some("99")).dry_run);
        assert!(discord.moderation.dry_run);
        assert!((discord.moderation.threshold - 0.9).abs() < 1e-9);
        assert_eq!(discord.moderation.needs_approval, [domain::moderation::ModAction::Ban]);
        assert!(discord.moderation.rules.patterns[0].is_match("FREE  Nitro"));
        let empty = tempfile::tempdir().expect("tempdir");
        let off = resolve(&GlobalArgs::default(), None, &env(&[]), empty.path()).expect("resolves");
        assert!(matches!(off.discord, ChannelConfig::Off));

        for (bad, setting) in [
            ("[channels.discord]\nbot_token = \"has spaces in it\"\n", "channels.discord.bot_token"),
            (
                "[channels.discord]\nbot_token = \"t\"\nmoderated_channels = [\"general\"]\n",
                "channels.discord.moderated_channels",
            ),
            (
                "[channels.discord]\nbot_token = \"t\"\n[channels.discord.moderation]\npatterns = [\"(\"]\n",
                "channels.discord.moderation.patterns",
            ),
            (
                "[channels.discord]\nbot_token = \"t\"\n[channels.discord.moderation]\nthreshold = 1.5\n",
                "channels.discord.moderation.threshold",
            ),
            (
                "[channels.discord]\nbot_token = \"t\"\n[channels.discord.moderation]\nrequire_approval = [\"nuke\"]\n",
                "channels.discord.moderation.require_approval",
            ),
            (
                "[channels.discord]\nbot_token = \"t\"\n[channels.discord.guilds.main]\ndry_run = true\n",
                "guild \"main\": id",
            ),
            (
                "[channels.discord]\nbot_token = \"t\"\n[channels.discord.guilds.\"42\"]\nthreshold = 0.2\n",
                "guild \"42\": threshold",
            ),
        ] {
            std::fs::write(&file, bad).expect("write");
            // The server still starts; the channel alone is failed, naming the setting.
            let config = resolve(&GlobalArgs::default(), None, &env(&[]), dir.path()).expect("resolves");
            let ChannelConfig::Invalid(err) = &config.discord else { panic!("{bad}: {:?}", config.discord) };
            assert!(err.contains(setting), "{bad}: {err}");
            assert!(config.warnings.iter().any(|w| w.contains(setting) && w.contains("Discord bot stays off")));
        }
    }
}

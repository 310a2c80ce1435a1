//! Every setting Nexus has, declared once, and what the binary does for live settings: the
//! master key (given, read from its file, or made on first start), rebuilding the services
//! when the database's values change, and importing the environment and `.env` on first start.
//!
//! A setting whose name is a file key (`models.normal`) reaches the configuration as a layer
//! under `nexus.toml`; a provider's or tool's (`providers.openai.base_url`) stands in for its
//! variable when that is unset. Either way the file, the variables and the flags pin what they
//! set, and the database holds the rest.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use runtime::settings::{
    Applies, Invalid, MasterKey, Reconfiguration, Registry, SettingScope, SettingSpec, SettingType, SettingsHost,
    Values,
};

use crate::config::{ConfigError, Layers, resolve_layers};

const fn spec(
    key: &'static str,
    env: Option<&'static str>,
    kind: SettingType,
    default: Option<&'static str>,
    secret: bool,
    applies: Applies,
    doc: &'static str,
) -> SettingSpec {
    SettingSpec { key, env, kind, default, scope: SettingScope::Global, secret, applies, doc }
}

use Applies::{Bootstrap, Live, Restart};
use SettingType::{Bool, Choice, List, ModelRef, Text, Url};

const fn whole(min: u64, max: u64) -> SettingType {
    SettingType::Whole { min, max }
}

const fn number(min: f64, max: f64) -> SettingType {
    SettingType::Number { min, max }
}

const ADMISSION: SettingType = Choice(&["open", "closed"]);

/// Every setting, in the order the console and `nexus settings list` show them.
pub const REGISTRY: Registry = Registry(&[
    // Model providers: rebuilt live, with fresh circuit breakers.
    spec("providers.anthropic.api_key", Some("ANTHROPIC_API_KEY"), Text, None, true, Live, "Anthropic API key."),
    spec(
        "providers.anthropic.base_url",
        Some("ANTHROPIC_BASE_URL"),
        Url,
        Some("https://api.anthropic.com"),
        false,
        Live,
        "Anthropic API address (a proxy or a test server).",
    ),
    spec("providers.openai.api_key", Some("OPENAI_API_KEY"), Text, None, true, Live, "OpenAI API key."),
    spec(
        "providers.openai.base_url",
        Some("OPENAI_BASE_URL"),
        Url,
        Some("https://api.openai.com/v1"),
        false,
        Live,
        "OpenAI API address.",
    ),
    spec("providers.mistral.api_key", Some("MISTRAL_API_KEY"), Text, None, true, Live, "Mistral API key."),
    spec(
        "providers.mistral.base_url",
        Some("MISTRAL_BASE_URL"),
        Url,
        Some("https://api.mistral.ai/v1"),
        false,
        Live,
        "Mistral API address.",
    ),
    spec(
        "providers.ollama.base_url",
        Some("OLLAMA_BASE_URL"),
        Url,
        None,
        false,
        Live,
        "Ollama server address; turns the Ollama provider on.",
    ),
    spec(
        "providers.compatible.base_url",
        Some("NEXUS_OPENAI_COMPATIBLE_BASE_URL"),
        Url,
        None,
        false,
        Live,
        "Any OpenAI-compatible server (vLLM, LM Studio, llama.cpp); turns it on.",
    ),
    spec(
        "providers.compatible.api_key",
        Some("NEXUS_OPENAI_COMPATIBLE_API_KEY"),
        Text,
        None,
        true,
        Live,
        "The OpenAI-compatible server's key, if it wants one.",
    ),
    spec(
        "providers.compatible.name",
        Some("NEXUS_OPENAI_COMPATIBLE_NAME"),
        Text,
        Some("compatible"),
        false,
        Live,
        "The provider name the compatible server goes by in provider/model.",
    ),
    spec(
        "models.trivial",
        Some("NEXUS_MODEL_TRIVIAL"),
        ModelRef,
        None,
        false,
        Live,
        "provider/model for direct answers (default: the normal model).",
    ),
    spec(
        "models.normal",
        Some("NEXUS_MODEL_NORMAL"),
        ModelRef,
        None,
        false,
        Live,
        "provider/model for ordinary work (default: the first provider's).",
    ),
    spec(
        "models.complex",
        Some("NEXUS_MODEL_COMPLEX"),
        ModelRef,
        None,
        false,
        Live,
        "provider/model for escalations (default: the normal model).",
    ),
    // Built-in tools: rebuilt live with the providers.
    spec("tools.searxng_url", Some("NEXUS_SEARXNG_URL"), Url, None, false, Live, "SearXNG instance for web_search."),
    spec(
        "tools.brave_api_key",
        Some("BRAVE_SEARCH_API_KEY"),
        Text,
        None,
        true,
        Live,
        "Brave Search API key for web_search.",
    ),
    spec("tools.smtp.host", Some("NEXUS_SMTP_HOST"), Text, None, false, Live, "SMTP server for send_email."),
    spec(
        "tools.smtp.port",
        Some("NEXUS_SMTP_PORT"),
        whole(1, 65_535),
        None,
        false,
        Live,
        "SMTP port (default: the mode's usual port).",
    ),
    spec("tools.smtp.username", Some("NEXUS_SMTP_USERNAME"), Text, None, false, Live, "SMTP user name."),
    spec("tools.smtp.password", Some("NEXUS_SMTP_PASSWORD"), Text, None, true, Live, "SMTP password."),
    spec(
        "tools.smtp.from",
        Some("NEXUS_SMTP_FROM"),
        Text,
        None,
        false,
        Live,
        "Sender mailbox, e.g. Nexus <nexus@example.org>.",
    ),
    spec(
        "tools.smtp.tls",
        Some("NEXUS_SMTP_TLS"),
        Choice(&["starttls", "tls", "none"]),
        Some("starttls"),
        false,
        Live,
        "How the SMTP connection is secured.",
    ),
    spec(
        "tools.weather_base_url",
        Some("NEXUS_WEATHER_BASE_URL"),
        Url,
        Some("https://wttr.in"),
        false,
        Live,
        "A wttr.in-compatible weather service.",
    ),
    // Limits and budgets: from the next request.
    spec(
        "limits.key_requests_per_minute",
        Some("NEXUS_RATE_LIMIT_KEY_RPM"),
        whole(1, 1_000_000_000),
        Some("60"),
        false,
        Live,
        "Requests a minute per API key or console user.",
    ),
    spec(
        "limits.tenant_requests_per_minute",
        Some("NEXUS_RATE_LIMIT_TENANT_RPM"),
        whole(1, 1_000_000_000),
        Some("60"),
        false,
        Live,
        "Requests a minute per tenant.",
    ),
    spec(
        "limits.tenant_chains_per_hour",
        Some("NEXUS_RATE_LIMIT_CHAINS_PER_HOUR"),
        whole(1, 1_000_000_000),
        Some("100"),
        false,
        Live,
        "Agent runs an hour per tenant.",
    ),
    spec(
        "budget.monthly_usd",
        Some("NEXUS_BUDGET_MONTHLY_USD"),
        number(0.0, 1e9),
        Some("50"),
        false,
        Live,
        "Monthly budget of tenants without their own, in USD.",
    ),
    spec(
        "budget.alert_fraction",
        Some("NEXUS_BUDGET_ALERT_FRACTION"),
        number(0.01, 0.99),
        Some("0.8"),
        false,
        Live,
        "Share of the budget that raises the alert.",
    ),
    // Applied at the next start.
    spec(
        "log.level",
        Some("NEXUS_LOG_LEVEL"),
        Text,
        Some("info"),
        false,
        Live,
        "Log filter, e.g. info or nexus=debug.",
    ),
    spec(
        "log.format",
        Some("NEXUS_LOG_FORMAT"),
        Choice(&["text", "json"]),
        Some("text"),
        false,
        Restart,
        "Log line format.",
    ),
    spec(
        "api.max_body_bytes",
        Some("NEXUS_MAX_BODY_BYTES"),
        whole(1024, 1 << 32),
        Some("10485760"),
        false,
        Restart,
        "Largest request body.",
    ),
    spec(
        "api.cors_origins",
        Some("NEXUS_CORS_ORIGINS"),
        List,
        None,
        false,
        Restart,
        "Origins allowed by CORS (* for any; empty: off).",
    ),
    spec(
        "api.redis_url",
        Some("NEXUS_REDIS_URL"),
        Text,
        None,
        true,
        Restart,
        "Redis for rate-limit counts shared by replicas.",
    ),
    spec(
        "api.trusted_proxies",
        Some("NEXUS_TRUSTED_PROXIES"),
        List,
        None,
        false,
        Restart,
        "Reverse proxies whose X-Forwarded-For is believed.",
    ),
    spec(
        "routing.direct_answer_confidence",
        Some("NEXUS_ROUTING_DIRECT_CONFIDENCE"),
        number(0.0, 1.0),
        Some("0.5"),
        false,
        Restart,
        "How sure the classifier must be to answer with no plan.",
    ),
    spec(
        "routing.equipment_confidence",
        Some("NEXUS_ROUTING_EQUIPMENT_CONFIDENCE"),
        number(0.0, 1.0),
        Some("0.75"),
        false,
        Restart,
        "How sure the classifier must be to let equipment answer.",
    ),
    spec(
        "jobs.workers",
        Some("NEXUS_JOB_WORKERS"),
        whole(0, 64),
        Some("2"),
        false,
        Restart,
        "Job workers in each process.",
    ),
    spec(
        "jobs.tenant_concurrency",
        Some("NEXUS_JOB_TENANT_CONCURRENCY"),
        whole(1, 1000),
        Some("2"),
        false,
        Restart,
        "Jobs of one tenant running at once.",
    ),
    spec(
        "jobs.lease_seconds",
        Some("NEXUS_JOB_LEASE_SECONDS"),
        whole(3, 3600),
        Some("30"),
        false,
        Restart,
        "How long a claimed job holds without a heartbeat.",
    ),
    spec(
        "jobs.max_attempts",
        Some("NEXUS_JOB_MAX_ATTEMPTS"),
        whole(1, 100),
        Some("3"),
        false,
        Restart,
        "Tries per job.",
    ),
    spec(
        "jobs.retry_backoff_seconds",
        Some("NEXUS_JOB_RETRY_BACKOFF_SECONDS"),
        whole(1, 86_400),
        Some("10"),
        false,
        Restart,
        "First retry's delay (doubles after).",
    ),
    spec(
        "watchers.allow_addresses",
        Some("NEXUS_WATCH_ALLOW_ADDRESSES"),
        List,
        None,
        false,
        Restart,
        "Private IP addresses watchers may reach (exact).",
    ),
    spec(
        "watchers.timeout_seconds",
        Some("NEXUS_WATCH_TIMEOUT_SECONDS"),
        whole(1, 300),
        Some("20"),
        false,
        Restart,
        "The most one watcher fetch or webhook call takes.",
    ),
    spec(
        "knowledge.untrusted_namespaces",
        Some("NEXUS_KNOWLEDGE_UNTRUSTED_NAMESPACES"),
        List,
        None,
        false,
        Restart,
        "Knowledge namespaces whose passages taint the runs that read them.",
    ),
    spec(
        "channels.telegram.bot_token",
        Some("NEXUS_TELEGRAM_BOT_TOKEN"),
        Text,
        None,
        true,
        Live,
        "Telegram bot token; starts the Telegram bot.",
    ),
    spec(
        "channels.telegram.api_url",
        Some("NEXUS_TELEGRAM_API_URL"),
        Url,
        Some("https://api.telegram.org"),
        false,
        Live,
        "Telegram Bot API address.",
    ),
    spec(
        "channels.telegram.tenant",
        Some("NEXUS_TELEGRAM_TENANT"),
        Text,
        Some("demo"),
        false,
        Live,
        "The tenant Telegram users belong to.",
    ),
    spec(
        "channels.telegram.admission",
        Some("NEXUS_TELEGRAM_ADMISSION"),
        ADMISSION,
        Some("open"),
        false,
        Live,
        "open: strangers join at level 0; closed: refused.",
    ),
    spec(
        "channels.telegram.webhook_url",
        Some("NEXUS_TELEGRAM_WEBHOOK_URL"),
        Url,
        None,
        false,
        Restart,
        "Receive updates by webhook at this public URL.",
    ),
    spec(
        "channels.telegram.webhook_secret",
        Some("NEXUS_TELEGRAM_WEBHOOK_SECRET"),
        Text,
        None,
        true,
        Restart,
        "The secret Telegram sends with each delivery.",
    ),
    spec(
        "channels.discord.bot_token",
        Some("NEXUS_DISCORD_BOT_TOKEN"),
        Text,
        None,
        true,
        Live,
        "Discord bot token; starts the Discord bot.",
    ),
    spec(
        "channels.discord.api_url",
        Some("NEXUS_DISCORD_API_URL"),
        Url,
        Some("https://discord.com"),
        false,
        Live,
        "Discord API address.",
    ),
    spec(
        "channels.discord.tenant",
        Some("NEXUS_DISCORD_TENANT"),
        Text,
        Some("demo"),
        false,
        Live,
        "The tenant Discord users belong to.",
    ),
    spec(
        "channels.discord.admission",
        Some("NEXUS_DISCORD_ADMISSION"),
        ADMISSION,
        Some("open"),
        false,
        Live,
        "open: strangers join at level 0; closed: refused.",
    ),
    spec(
        "channels.discord.staff_channel",
        None,
        Text,
        None,
        false,
        Live,
        "The channel where staff see moderation cases.",
    ),
    spec(
        "channels.discord.timeout_minutes",
        None,
        whole(1, 40_320),
        None,
        false,
        Live,
        "How long a moderation timeout lasts.",
    ),
    // Read before the database opens: file, environment or flag only.
    spec(
        "data_dir",
        Some("NEXUS_DATA_DIR"),
        Text,
        None,
        false,
        Bootstrap,
        "Data directory: database, keys, workspaces.",
    ),
    spec("database_url", Some("NEXUS_DATABASE_URL"), Text, None, true, Bootstrap, "sqlite://PATH or postgres://…"),
    spec(
        "server.listen",
        Some("NEXUS_LISTEN"),
        Text,
        Some("127.0.0.1:8420"),
        false,
        Bootstrap,
        "Address the server listens on.",
    ),
    spec(
        "ledger.origin",
        Some("NEXUS_LEDGER_ORIGIN"),
        Text,
        Some("nexus.local"),
        false,
        Bootstrap,
        "Prefix of every checkpoint origin.",
    ),
    spec(
        "ledger.checkpoint_interval_ms",
        Some("NEXUS_CHECKPOINT_INTERVAL_MS"),
        whole(10, 3_600_000),
        Some("1000"),
        false,
        Bootstrap,
        "How often checkpoints are signed.",
    ),
    spec(
        "ledger.gateway_ack",
        Some("NEXUS_LEDGER_GATEWAY_ACK"),
        Choice(&["queued", "durable"]),
        Some("queued"),
        false,
        Restart,
        "When a gateway call is answered: queued (its ledger entry commits within milliseconds and before a clean shutdown; a killed process loses what is still queued) or durable (once the entry is durable, surviving kill -9). A caller can ask for durable with x-nexus-ledger-ack. Also whether an agent run waits for each model call's entry (queued: it commits with the run's next save).",
    ),
    spec(
        "ledger.signing_key",
        Some("NEXUS_SIGNING_KEY"),
        Text,
        None,
        false,
        Bootstrap,
        "The ledger's Ed25519 signing key file.",
    ),
    spec(
        "log.file",
        Some("NEXUS_LOG_FILE"),
        Text,
        None,
        false,
        Bootstrap,
        "Also write the log to this file, rotated by size.",
    ),
    spec("models.dir", Some("NEXUS_MODELS_DIR"), Text, None, false, Bootstrap, "Where the in-process models live."),
]);

/// Whether a setting is a key of the config file (else a provider's or tool's variable).
pub fn is_file_key(spec: &SettingSpec) -> bool {
    !spec.key.starts_with("providers.") && !spec.key.starts_with("tools.")
}

/// A stored value (canonical text) as the file key's value.
pub fn toml_value(spec: &SettingSpec, text: &str) -> toml::Value {
    match spec.kind {
        SettingType::Whole { .. } => {
            text.parse::<i64>().map_or_else(|_| toml::Value::String(text.to_owned()), toml::Value::Integer)
        }
        SettingType::Number { .. } => {
            text.parse::<f64>().map_or_else(|_| toml::Value::String(text.to_owned()), toml::Value::Float)
        }
        Bool => toml::Value::Boolean(text == "true"),
        List => toml::Value::Array(
            text.split(',').filter(|i| !i.is_empty()).map(|i| toml::Value::String(i.to_owned())).collect(),
        ),
        _ => toml::Value::String(text.to_owned()),
    }
}

/// The registry's name for what a configuration error is about.
fn setting_of(error: &ConfigError) -> String {
    match error {
        ConfigError::Invalid { setting, .. } => (*setting).to_owned(),
        ConfigError::Env { name, .. } => REGISTRY
            .all()
            .iter()
            .find(|s| s.env == Some(*name))
            .map_or_else(|| (*name).to_owned(), |s| s.key.to_owned()),
        ConfigError::File { path, .. } => path.clone(),
    }
}

/// Rebuilds the runtime's services from the file, environment and flags kept at start and the
/// database's values.
pub struct Host {
    pub layers: Arc<Layers>,
    pub knowledge: runtime::knowledge::KnowledgeService,
    pub local_chat: Option<Arc<dyn providers::ModelProvider>>,
    /// Whether this runtime runs the agent (else only limits and budgets are rebuilt).
    pub agent: bool,
    /// The plugins, the rebuilt agent's tool source.
    pub plugins: Option<Arc<runtime::plugins::Plugins>>,
}

impl SettingsHost for Host {
    fn reconfigure(&self, values: &Values) -> Result<Reconfiguration, Invalid> {
        let config = resolve_layers(&self.layers, values).map_err(|error| {
            let reason = match &error {
                ConfigError::Invalid { reason, .. } | ConfigError::Env { reason, .. } => reason.clone(),
                ConfigError::File { .. } => error.to_string(),
            };
            Invalid { setting: setting_of(&error), reason }
        })?;
        let agent = if self.agent {
            let services = crate::commands::agent_services_for(
                &config,
                self.knowledge.clone(),
                self.local_chat.clone(),
                self.plugins.clone(),
            )
            .map_err(|error| {
                let text = format!("{error:#}");
                let setting = text
                    .split_once(':')
                    .map(|(head, _)| head.trim().to_owned())
                    .filter(|head| REGISTRY.get(head).is_some())
                    .unwrap_or_else(|| "providers".to_owned());
                Invalid { setting, reason: text }
            })?;
            Some(services)
        } else {
            None
        };
        Ok(Reconfiguration {
            agent,
            limits: config.api.limits,
            default_budget_usd: Some(config.api.budget_usd),
            budget_alert_fraction: Some(config.api.alert_fraction),
        })
    }
}

/// The master key: `NEXUS_MASTER_KEY`, else its file, made on first start (owner-only). A
/// database whose secrets were sealed under a key that cannot be found is refused, never given
/// a new key (which would leave every secret unreadable). `None` when a command that only
/// reads finds no key and the database holds no key check yet.
pub async fn master_key(
    config: &crate::config::Config,
    store: &dyn domain::ports::Store,
    create: bool,
) -> anyhow::Result<Option<MasterKey>> {
    if let Some(key) = &config.master_key {
        return Ok(Some(key.clone()));
    }
    let path = &config.master_key_file;
    if path.exists() {
        return read_key_file(path).map(Some);
    }
    let sealed = store.settings_meta("key_check").await?.is_some();
    if sealed {
        bail!(
            "master key {} is missing, but {} holds settings sealed under a master key; restore that key file \
             (or set NEXUS_MASTER_KEY / NEXUS_MASTER_KEY_FILE)",
            path.display(),
            config.database_display
        );
    }
    if !create {
        return Ok(None);
    }
    let key = MasterKey::generate();
    write_key_file(path, &key)?;
    tracing::info!(path = %path.display(), key_id = key.id(), "created the master key; back it up apart from the database");
    Ok(Some(key))
}

/// Reads a master key file, refusing one that others can read.
pub fn read_key_file(path: &Path) -> anyhow::Result<MasterKey> {
    use std::os::unix::fs::PermissionsExt as _;
    let shown = path.display();
    let mode = std::fs::metadata(path).with_context(|| format!("master key {shown}"))?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!("master key {shown} is readable by other users (mode {mode:o}); run `chmod 600 {shown}`");
    }
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).with_context(|| format!("master key {shown}"))?);
    MasterKey::from_hex(&text).with_context(|| format!("master key {shown}"))
}

/// Writes a master key file owner-only, never half-written and never over an existing one
/// unless `replace` (rekey keeps the old one beside it first).
pub fn write_key_file(path: &Path, key: &MasterKey) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let shown = path.display();
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let partial = path.with_extension("partial");
    let _ = std::fs::remove_file(&partial);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .with_context(|| format!("creating master key {}", partial.display()))?;
    file.write_all(key.to_hex().as_bytes()).with_context(|| format!("writing master key {shown}"))?;
    file.write_all(b"\n").with_context(|| format!("writing master key {shown}"))?;
    file.sync_all().with_context(|| format!("writing master key {shown}"))?;
    std::fs::rename(&partial, path).with_context(|| format!("creating master key {shown}"))?;
    Ok(())
}

/// `KEY=VALUE` lines of a `.env` file (`export ` prefixes, quotes and `#` comments allowed);
/// empty when there is no file.
pub fn read_dotenv(path: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error).with_context(|| format!("reading {}", path.display())),
    };
    let mut pairs = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            bail!("{} line {}: expected KEY=VALUE", path.display(), n + 1);
        };
        let value = value.trim();
        let value = match value.chars().next() {
            Some(q @ ('"' | '\'')) if value.len() >= 2 && value.ends_with(q) => value[1..value.len() - 1].to_owned(),
            _ => value.split(" #").next().unwrap_or("").trim().to_owned(),
        };
        pairs.push((key.trim().to_owned(), value));
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variable_the_providers_and_tools_read_is_a_setting() {
        for variable in providers::config::PROVIDER_VARIABLES.iter().chain(tools::builtin::SETTINGS_VARIABLES) {
            assert!(REGISTRY.all().iter().any(|s| s.env == Some(*variable)), "{variable} has no setting");
        }
        let mut keys: Vec<&str> = REGISTRY.all().iter().map(|s| s.key).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), REGISTRY.all().len(), "setting names are unique");
        for spec in REGISTRY.all() {
            if let Some(default) = spec.default {
                assert!(spec.kind.read(default).is_ok(), "{}'s default {default:?} is not a valid value", spec.key);
            }
        }
    }

    #[test]
    fn dotenv_files_read_plain_quoted_and_exported_values() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(".env");
        std::fs::write(
            &path,
            "# keys\nexport OPENAI_API_KEY=\"sk-1 2\"\nNEXUS_MODEL_NORMAL=openai/gpt-4o # tier\n\nX='y'\n",
        )
        .expect("write");
        let pairs = read_dotenv(&path).expect("reads");
        assert_eq!(
            pairs,
            [
                ("OPENAI_API_KEY".to_owned(), "sk-1 2".to_owned()),
                ("NEXUS_MODEL_NORMAL".to_owned(), "openai/gpt-4o".to_owned()),
                ("X".to_owned(), "y".to_owned())
            ]
        );
        assert!(read_dotenv(&dir.path().join("absent")).expect("no file").is_empty());
        std::fs::write(&path, "NOT A PAIR\n").expect("write");
        assert!(read_dotenv(&path).expect_err("bad line").to_string().contains("line 1"));
    }

    #[test]
    fn a_key_file_is_owner_only_and_reads_back() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys").join("master.key");
        let key = MasterKey::generate();
        write_key_file(&path, &key).expect("write");
        assert_eq!(std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777, 0o600);
        assert_eq!(read_key_file(&path).expect("read").id(), key.id());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(read_key_file(&path).expect_err("exposed").to_string().contains("chmod 600"));
    }
}

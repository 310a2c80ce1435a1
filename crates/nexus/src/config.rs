//! Configuration in two phases. Phase one gathers optional settings from four
//! layers — built-in defaults, `nexus.toml`, `NEXUS_*` variables, flags — each later layer
//! winning. Phase two resolves them into a complete [`Config`] with every value checked and no
//! option left to fill. Unknown file keys are errors; unknown `NEXUS_*` variables are warnings.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use store::DatabaseUrl;

use crate::cli::GlobalArgs;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8420";
pub const DEFAULT_ORIGIN: &str = "nexus.local";
pub const DEFAULT_CHECKPOINT_INTERVAL_MS: u64 = 1000;
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

/// One layer of optional settings.
#[derive(Debug, Default, Clone)]
struct Layer {
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    listen: Option<String>,
    ledger_origin: Option<String>,
    checkpoint_interval_ms: Option<u64>,
    signing_key: Option<PathBuf>,
    log_level: Option<String>,
    log_format: Option<String>,
    model_trivial: Option<String>,
    model_normal: Option<String>,
    model_complex: Option<String>,
    prices: Option<std::collections::BTreeMap<String, PriceSection>>,
    default_price: Option<PriceSection>,
    models_dir: Option<PathBuf>,
    /// Only ever set by the file layer; the API settings resolve their own variables.
    api: crate::config_api::FileSections,
}

impl Layer {
    fn over(self, base: Layer) -> Layer {
        Layer {
            data_dir: self.data_dir.or(base.data_dir),
            database_url: self.database_url.or(base.database_url),
            listen: self.listen.or(base.listen),
            ledger_origin: self.ledger_origin.or(base.ledger_origin),
            checkpoint_interval_ms: self.checkpoint_interval_ms.or(base.checkpoint_interval_ms),
            signing_key: self.signing_key.or(base.signing_key),
            log_level: self.log_level.or(base.log_level),
            log_format: self.log_format.or(base.log_format),
            model_trivial: self.model_trivial.or(base.model_trivial),
            model_normal: self.model_normal.or(base.model_normal),
            model_complex: self.model_complex.or(base.model_complex),
            prices: self.prices.or(base.prices),
            default_price: self.default_price.or(base.default_price),
            models_dir: self.models_dir.or(base.models_dir),
            api: base.api,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    server: Option<ServerSection>,
    ledger: Option<LedgerSection>,
    log: Option<LogSection>,
    models: Option<ModelsSection>,
    api: Option<crate::config_api::ApiSection>,
    limits: Option<crate::config_api::LimitsSection>,
    budget: Option<crate::config_api::BudgetSection>,
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
    prices: std::collections::BTreeMap<String, PriceSection>,
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
struct ServerSection {
    listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LedgerSection {
    origin: Option<String>,
    checkpoint_interval_ms: Option<u64>,
    signing_key: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogSection {
    level: Option<String>,
    format: Option<String>,
}

impl From<FileConfig> for Layer {
    fn from(file: FileConfig) -> Self {
        let server = file.server.unwrap_or_default();
        let ledger = file.ledger.unwrap_or_default();
        let log = file.log.unwrap_or_default();
        let models = file.models.unwrap_or_default();
        Layer {
            data_dir: file.data_dir,
            database_url: file.database_url,
            listen: server.listen,
            ledger_origin: ledger.origin,
            checkpoint_interval_ms: ledger.checkpoint_interval_ms,
            signing_key: ledger.signing_key,
            log_level: log.level,
            log_format: log.format,
            model_trivial: models.trivial,
            model_normal: models.normal,
            model_complex: models.complex,
            prices: Some(models.prices).filter(|p| !p.is_empty()),
            default_price: models.default_price,
            models_dir: models.dir,
            api: crate::config_api::FileSections { api: file.api, limits: file.limits, budget: file.budget },
        }
    }
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
    pub signing_key: PathBuf,
    /// `None` means "the command's default".
    pub log_level: Option<String>,
    pub log_format: LogFormat,
    /// `provider/model` for direct answers, when set (else the normal model).
    pub model_trivial: Option<String>,
    /// `provider/model` for ordinary work, when set.
    pub model_normal: Option<String>,
    /// `provider/model` for escalations, when set.
    pub model_complex: Option<String>,
    /// Price overrides by model name.
    pub prices: std::collections::BTreeMap<String, PriceSection>,
    /// The price of models with no entry in the table (`models.default_price`); `None` refuses
    /// calls to them.
    pub default_price: Option<PriceSection>,
    /// The in-process models' directory (embeddings, classifier, local chat model).
    pub models_dir: PathBuf,
    /// The HTTP API: body limit, CORS, Redis, rate limits, budgets.
    pub api: crate::config_api::ApiSettings,
    /// Things worth telling the operator (unknown variables, …).
    pub warnings: Vec<String>,
}

/// Environment variables Nexus reads, and where each goes.
const ENV_SETTINGS: &[&str] = &[
    "NEXUS_CONFIG",
    "NEXUS_DATA_DIR",
    "NEXUS_DATABASE_URL",
    "NEXUS_LISTEN",
    "NEXUS_LEDGER_ORIGIN",
    "NEXUS_CHECKPOINT_INTERVAL_MS",
    "NEXUS_SIGNING_KEY",
    "NEXUS_LOG_LEVEL",
    "NEXUS_LOG_FORMAT",
    "NEXUS_MODEL_TRIVIAL",
    "NEXUS_MODEL_NORMAL",
    "NEXUS_MODEL_COMPLEX",
    "NEXUS_MODELS_DIR",
    // Read by the provider and tool settings.
    "NEXUS_OPENAI_COMPATIBLE_BASE_URL",
    "NEXUS_OPENAI_COMPATIBLE_API_KEY",
    "NEXUS_OPENAI_COMPATIBLE_NAME",
    "NEXUS_SEARXNG_URL",
    "NEXUS_SMTP_HOST",
    "NEXUS_SMTP_PORT",
    "NEXUS_SMTP_USERNAME",
    "NEXUS_SMTP_PASSWORD",
    "NEXUS_SMTP_FROM",
    "NEXUS_SMTP_TLS",
    "NEXUS_WEATHER_BASE_URL",
];
/// Prefixes of variables that belong to the test suite and benchmarks, not to the server.
const ENV_TOOLING_PREFIXES: &[&str] = &["NEXUS_TEST_", "NEXUS_BENCH_", "NEXUS_CRASH_CHILD_"];

/// Loads configuration from the real environment.
pub fn load(global: &GlobalArgs, listen_flag: Option<&str>) -> Result<Config, ConfigError> {
    let env: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().unwrap_or_default())))
        .filter(|(k, _)| k.starts_with("NEXUS_"))
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
    let get = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let mut warnings = Vec::new();
    for (name, _) in env {
        let known = ENV_SETTINGS.contains(&name.as_str())
            || crate::config_api::ENV.contains(&name.as_str())
            || ENV_TOOLING_PREFIXES.iter().any(|p| name.starts_with(p));
        if !known {
            let hint = closest(name, ENV_SETTINGS).map(|c| format!(" (did you mean {c}?)")).unwrap_or_default();
            warnings.push(format!("unknown environment variable {name} is ignored{hint}"));
        }
    }

    // Layer 2: the file.
    let explicit = global.config.clone().or_else(|| get("NEXUS_CONFIG").map(PathBuf::from));
    let config_file = match explicit {
        Some(path) => Some(path),
        None => Some(cwd.join(CONFIG_FILE)).filter(|p| p.is_file()),
    };
    let file_layer = match &config_file {
        Some(path) => read_file(path)?,
        None => Layer::default(),
    };

    // Layer 3: the environment.
    let interval = match get("NEXUS_CHECKPOINT_INTERVAL_MS") {
        None => None,
        Some(v) => Some(v.trim().parse::<u64>().map_err(|_| ConfigError::Env {
            name: "NEXUS_CHECKPOINT_INTERVAL_MS",
            reason: format!("{v:?} is not a whole number of milliseconds"),
        })?),
    };
    let env_layer = Layer {
        data_dir: get("NEXUS_DATA_DIR").map(PathBuf::from),
        database_url: get("NEXUS_DATABASE_URL"),
        listen: get("NEXUS_LISTEN"),
        ledger_origin: get("NEXUS_LEDGER_ORIGIN"),
        checkpoint_interval_ms: interval,
        signing_key: get("NEXUS_SIGNING_KEY").map(PathBuf::from),
        log_level: get("NEXUS_LOG_LEVEL"),
        log_format: get("NEXUS_LOG_FORMAT"),
        model_trivial: get("NEXUS_MODEL_TRIVIAL"),
        model_normal: get("NEXUS_MODEL_NORMAL"),
        model_complex: get("NEXUS_MODEL_COMPLEX"),
        prices: None,
        default_price: None,
        models_dir: get("NEXUS_MODELS_DIR").map(PathBuf::from),
        api: Default::default(),
    };

    // Layer 4: flags.
    let flag_layer = Layer {
        data_dir: global.data_dir.clone(),
        database_url: global.database_url.clone(),
        listen: listen_flag.map(str::to_owned),
        log_level: global.log_level.clone(),
        ..Layer::default()
    };

    let api = crate::config_api::resolve(file_layer.api.clone(), &get)?;
    let merged = flag_layer.over(env_layer.over(file_layer));
    finish(merged, config_file, warnings, api)
}

fn read_file(path: &Path) -> Result<Layer, ConfigError> {
    let shown = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|e| ConfigError::File { path: shown.clone(), reason: e.to_string() })?;
    let parsed: FileConfig = toml::from_str(&text).map_err(|e| {
        let line =
            e.span().map(|s| text.as_bytes()[..s.start.min(text.len())].iter().filter(|b| **b == b'\n').count() + 1);
        let message = e.message().replace('\n', " ");
        let reason = match line {
            Some(line) => format!("line {line}: {message}"),
            None => message,
        };
        ConfigError::File { path: shown.clone(), reason }
    })?;
    Ok(parsed.into())
}

/// Phase two: defaults for what is still unset, then validation.
fn finish(
    layer: Layer,
    config_file: Option<PathBuf>,
    warnings: Vec<String>,
    api: crate::config_api::ApiSettings,
) -> Result<Config, ConfigError> {
    let data_dir = layer.data_dir.unwrap_or_else(default_data_dir);
    let database_url =
        layer.database_url.unwrap_or_else(|| format!("sqlite://{}", data_dir.join("nexus.db").display()));
    let database = DatabaseUrl::parse(&database_url)
        .map_err(|e| ConfigError::Invalid { setting: "database_url", reason: e.to_string() })?;

    let listen_text = layer.listen.unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    let listen: SocketAddr = listen_text.parse().map_err(|_| ConfigError::Invalid {
        setting: "server.listen",
        reason: format!("{listen_text:?} is not an address like 127.0.0.1:8420"),
    })?;

    let ledger_origin = layer.ledger_origin.unwrap_or_else(|| DEFAULT_ORIGIN.to_owned());
    if ledger_origin.is_empty() || ledger_origin.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ConfigError::Invalid {
            setting: "ledger.origin",
            reason: format!("{ledger_origin:?} must be non-empty with no spaces or control characters"),
        });
    }

    let interval_ms = layer.checkpoint_interval_ms.unwrap_or(DEFAULT_CHECKPOINT_INTERVAL_MS);
    if !(10..=3_600_000).contains(&interval_ms) {
        return Err(ConfigError::Invalid {
            setting: "ledger.checkpoint_interval_ms",
            reason: format!("{interval_ms} is outside 10..=3600000"),
        });
    }

    let log_format = match layer.log_format.as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            return Err(ConfigError::Invalid {
                setting: "log.format",
                reason: format!("{other:?} is not \"text\" or \"json\""),
            });
        }
    };
    let signing_key = layer.signing_key.unwrap_or_else(|| data_dir.join("keys").join("ledger.ed25519.pem"));
    let prices = layer.prices.unwrap_or_default();
    let models_dir = layer.models_dir.clone().unwrap_or_else(|| data_dir.join("models"));
    for (model, price) in &prices {
        let valid = |v: f64| v.is_finite() && v >= 0.0;
        if !valid(price.input) || !valid(price.output) {
            return Err(ConfigError::Invalid {
                setting: "models.prices",
                reason: format!("{model:?}: prices must be non-negative numbers of USD per million tokens"),
            });
        }
    }
    if let Some(price) = &layer.default_price
        && !(price.input.is_finite() && price.input >= 0.0 && price.output.is_finite() && price.output >= 0.0)
    {
        return Err(ConfigError::Invalid {
            setting: "models.default_price",
            reason: "prices must be non-negative numbers of USD per million tokens".to_owned(),
        });
    }
    for (setting, value) in [
        ("models.trivial", &layer.model_trivial),
        ("models.normal", &layer.model_normal),
        ("models.complex", &layer.model_complex),
    ] {
        if let Some(value) = value
            && value.split_once('/').is_none_or(|(p, m)| p.is_empty() || m.is_empty())
        {
            return Err(ConfigError::Invalid {
                setting,
                reason: format!("{value:?} is not provider/model, e.g. anthropic/claude-sonnet-4-5"),
            });
        }
    }

    Ok(Config {
        config_file,
        database_display: store::redact(&database_url),
        data_dir,
        database,
        listen,
        ledger_origin,
        checkpoint_interval: Duration::from_millis(interval_ms),
        signing_key,
        log_level: layer.log_level,
        log_format,
        model_trivial: layer.model_trivial,
        model_normal: layer.model_normal,
        model_complex: layer.model_complex,
        prices,
        default_price: layer.default_price,
        models_dir,
        api,
        warnings,
    })
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
    known.iter().map(|k| (edit_distance(name, k), *k)).filter(|(d, _)| *d <= 3).min().map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(row[j + 1] + 1);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
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
}

//! The HTTP API's settings: `[api]`, `[limits]` and `[budget]` in `nexus.toml`, each also a
//! `NEXUS_*` variable (which wins), checked into [`ApiSettings`].

use runtime::limits::LimitSettings;
use serde::Deserialize;

use crate::config::ConfigError;

/// Default largest request body: 10 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// Variables read here.
pub const ENV: &[&str] = &[
    "NEXUS_REDIS_URL",
    "NEXUS_MAX_BODY_BYTES",
    "NEXUS_CORS_ORIGINS",
    "NEXUS_RATE_LIMIT_KEY_RPM",
    "NEXUS_RATE_LIMIT_TENANT_RPM",
    "NEXUS_RATE_LIMIT_CHAINS_PER_HOUR",
    "NEXUS_BUDGET_MONTHLY_USD",
    "NEXUS_BUDGET_ALERT_FRACTION",
];

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSection {
    max_body_bytes: Option<u64>,
    cors_origins: Option<Vec<String>>,
    redis_url: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    key_requests_per_minute: Option<u64>,
    tenant_requests_per_minute: Option<u64>,
    tenant_chains_per_hour: Option<u64>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetSection {
    monthly_usd: Option<f64>,
    alert_fraction: Option<f64>,
}

/// The file's sections, as read.
#[derive(Debug, Default, Clone)]
pub struct FileSections {
    pub api: Option<ApiSection>,
    pub limits: Option<LimitsSection>,
    pub budget: Option<BudgetSection>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiSettings {
    pub max_body_bytes: usize,
    /// Origins allowed by CORS; empty = CORS off; `*` = any.
    pub cors_origins: Vec<String>,
    /// Shared rate-limit counters for several replicas.
    pub redis_url: Option<String>,
    pub limits: LimitSettings,
    pub budget_usd: f64,
    pub alert_fraction: f64,
}

fn env_number<T: std::str::FromStr>(
    get: &dyn Fn(&str) -> Option<String>,
    name: &'static str,
    what: &str,
) -> Result<Option<T>, ConfigError> {
    match get(name) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse::<T>()
            .map(Some)
            .map_err(|_| ConfigError::Env { name, reason: format!("{v:?} is not {what}") }),
    }
}

pub fn resolve(file: FileSections, get: &dyn Fn(&str) -> Option<String>) -> Result<ApiSettings, ConfigError> {
    let api = file.api.unwrap_or_default();
    let limits = file.limits.unwrap_or_default();
    let budget = file.budget.unwrap_or_default();
    let whole = "a whole number";
    let max_body = env_number::<u64>(get, "NEXUS_MAX_BODY_BYTES", "a number of bytes")?.or(api.max_body_bytes);
    let max_body_bytes = match max_body {
        None => DEFAULT_MAX_BODY_BYTES,
        Some(n) if (1024..=1 << 32).contains(&n) => usize::try_from(n).unwrap_or(DEFAULT_MAX_BODY_BYTES),
        Some(n) => {
            return Err(ConfigError::Invalid {
                setting: "api.max_body_bytes",
                reason: format!("{n} is outside 1024..=4294967296"),
            });
        }
    };
    let cors_origins = match get("NEXUS_CORS_ORIGINS") {
        Some(list) => list.split(',').map(|o| o.trim().to_owned()).filter(|o| !o.is_empty()).collect(),
        None => api.cors_origins.unwrap_or_default(),
    };
    for origin in &cors_origins {
        if origin != "*" && !(origin.starts_with("http://") || origin.starts_with("https://")) {
            return Err(ConfigError::Invalid {
                setting: "api.cors_origins",
                reason: format!("{origin:?} is not \"*\" or an origin like https://app.example.com"),
            });
        }
    }
    let redis_url = get("NEXUS_REDIS_URL").or(api.redis_url).filter(|u| !u.trim().is_empty());
    if let Some(url) = &redis_url
        && !(url.starts_with("redis://") || url.starts_with("rediss://"))
    {
        return Err(ConfigError::Invalid {
            setting: "api.redis_url",
            reason: "must start with redis:// or rediss://".into(),
        });
    }
    let defaults = LimitSettings::default();
    let limits = LimitSettings {
        key_requests_per_minute: env_number(get, "NEXUS_RATE_LIMIT_KEY_RPM", whole)?
            .or(limits.key_requests_per_minute)
            .unwrap_or(defaults.key_requests_per_minute),
        tenant_requests_per_minute: env_number(get, "NEXUS_RATE_LIMIT_TENANT_RPM", whole)?
            .or(limits.tenant_requests_per_minute)
            .unwrap_or(defaults.tenant_requests_per_minute),
        tenant_chains_per_hour: env_number(get, "NEXUS_RATE_LIMIT_CHAINS_PER_HOUR", whole)?
            .or(limits.tenant_chains_per_hour)
            .unwrap_or(defaults.tenant_chains_per_hour),
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
    let budget_usd = env_number(get, "NEXUS_BUDGET_MONTHLY_USD", "a number of USD")?
        .or(budget.monthly_usd)
        .unwrap_or(domain::tenant::DEFAULT_BUDGET_USD);
    if !budget_usd.is_finite() || budget_usd < 0.0 {
        return Err(ConfigError::Invalid {
            setting: "budget.monthly_usd",
            reason: format!("{budget_usd} is not a non-negative amount"),
        });
    }
    let alert_fraction = env_number(get, "NEXUS_BUDGET_ALERT_FRACTION", "a fraction like 0.8")?
        .or(budget.alert_fraction)
        .unwrap_or(domain::tenant::DEFAULT_BUDGET_ALERT_FRACTION);
    if !(alert_fraction > 0.0 && alert_fraction < 1.0) {
        return Err(ConfigError::Invalid {
            setting: "budget.alert_fraction",
            reason: format!("{alert_fraction} is not between 0 and 1"),
        });
    }
    Ok(ApiSettings { max_body_bytes, cors_origins, redis_url, limits, budget_usd, alert_fraction })
}

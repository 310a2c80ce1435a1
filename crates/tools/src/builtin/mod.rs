//! The built-in tools and their settings: knowledge search, web fetch and search, workspace
//! files, statistics, email, weather and remembering. [`builtins`] registers them all.

mod address;
mod email;
mod files;
mod html_text;
mod http;
mod knowledge;
mod params;
mod remember;
mod safe_http;
mod stats;
mod weather;
mod web_fetch;
mod web_search;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use address::{AddressPolicy, blocked_reason};
pub use email::SendEmail;
pub use files::{FileRead, FileWrite};
pub use knowledge::{KnowledgeHit, KnowledgeIndex, KnowledgeSearch};
pub use remember::Remember;
pub use safe_http::{Fetched, MAX_REDIRECTS, SafeHttp};
pub use stats::{ComputeStats, Stats, describe as describe_values};
pub use url::Url;
pub use weather::Weather;
pub use web_fetch::WebFetch;
pub use web_search::WebSearch;

use crate::Registry;

/// The public Brave Search API.
pub const BRAVE_BASE_URL: &str = "https://api.search.brave.com";
/// The public wttr.in weather service.
pub const WEATHER_BASE_URL: &str = "https://wttr.in";
/// The default cap on a fetched body.
pub const DEFAULT_MAX_FETCH_BYTES: usize = 1024 * 1024;

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (port 587 by default).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465 by default).
    Tls,
    /// No encryption at all (port 25 by default); only for local relays and tests.
    None,
}

impl SmtpTls {
    /// The conventional port for this mode.
    pub fn default_port(self) -> u16 {
        match self {
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        }
    }
}

impl std::str::FromStr for SmtpTls {
    type Err = SettingsError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "starttls" => Ok(SmtpTls::Starttls),
            "tls" => Ok(SmtpTls::Tls),
            "none" => Ok(SmtpTls::None),
            _ => Err(SettingsError::Invalid {
                variable: "NEXUS_SMTP_TLS",
                reason: format!("{text:?} is not one of starttls, tls, none"),
            }),
        }
    }
}

/// A setting read from the environment that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("{variable}: {reason}")]
    Invalid { variable: &'static str, reason: String },
}

/// Plain settings for the built-in tools. Absent optional values leave the tool unavailable;
/// they never make it answer with made-up data.
#[derive(Clone)]
pub struct BuiltinSettings {
    /// Base URL of a SearXNG instance with the JSON format enabled (`NEXUS_SEARXNG_URL`).
    pub searxng_url: Option<String>,
    /// Brave Search API key (`BRAVE_SEARCH_API_KEY`); secret.
    pub brave_api_key: Option<String>,
    /// Base URL of the Brave Search API; overridable for tests.
    pub brave_base_url: String,
    /// SMTP relay host (`NEXUS_SMTP_HOST`).
    pub smtp_host: Option<String>,
    /// SMTP port (`NEXUS_SMTP_PORT`); the mode's conventional port when absent.
    pub smtp_port: Option<u16>,
    /// SMTP user name (`NEXUS_SMTP_USERNAME`); no authentication when absent.
    pub smtp_username: Option<String>,
    /// SMTP password (`NEXUS_SMTP_PASSWORD`); secret.
    pub smtp_password: Option<String>,
    /// The sender mailbox (`NEXUS_SMTP_FROM`), e.g. `Nexus <nexus@example.org>`.
    pub smtp_from: Option<String>,
    /// How the SMTP connection is secured (`NEXUS_SMTP_TLS`: starttls, tls or none).
    pub smtp_tls: SmtpTls,
    /// Base URL of a wttr.in-compatible weather service (`NEXUS_WEATHER_BASE_URL`).
    pub weather_base_url: String,
    /// Overall time limit of one outgoing HTTP request (or SMTP session).
    pub http_timeout: Duration,
    /// The largest body `web_fetch` reads, whatever the call asks for.
    pub max_fetch_bytes: usize,
}

impl Default for BuiltinSettings {
    fn default() -> Self {
        Self {
            searxng_url: None,
            brave_api_key: None,
            brave_base_url: BRAVE_BASE_URL.to_owned(),
            smtp_host: None,
            smtp_port: None,
            smtp_username: None,
            smtp_password: None,
            smtp_from: None,
            smtp_tls: SmtpTls::default(),
            weather_base_url: WEATHER_BASE_URL.to_owned(),
            http_timeout: Duration::from_secs(20),
            max_fetch_bytes: DEFAULT_MAX_FETCH_BYTES,
        }
    }
}

impl fmt::Debug for BuiltinSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |secret: &Option<String>| secret.as_ref().map(|_| "<redacted>");
        f.debug_struct("BuiltinSettings")
            .field("searxng_url", &self.searxng_url)
            .field("brave_api_key", &redacted(&self.brave_api_key))
            .field("brave_base_url", &self.brave_base_url)
            .field("smtp_host", &self.smtp_host)
            .field("smtp_port", &self.smtp_port)
            .field("smtp_username", &self.smtp_username)
            .field("smtp_password", &redacted(&self.smtp_password))
            .field("smtp_from", &self.smtp_from)
            .field("smtp_tls", &self.smtp_tls)
            .field("weather_base_url", &self.weather_base_url)
            .field("http_timeout", &self.http_timeout)
            .field("max_fetch_bytes", &self.max_fetch_bytes)
            .finish()
    }
}

/// Every variable [`BuiltinSettings::from_env`] reads.
pub const SETTINGS_VARIABLES: &[&str] = &[
    "NEXUS_SEARXNG_URL",
    "BRAVE_SEARCH_API_KEY",
    "NEXUS_SMTP_HOST",
    "NEXUS_SMTP_PORT",
    "NEXUS_SMTP_USERNAME",
    "NEXUS_SMTP_PASSWORD",
    "NEXUS_SMTP_FROM",
    "NEXUS_SMTP_TLS",
    "NEXUS_WEATHER_BASE_URL",
];

impl BuiltinSettings {
    /// Reads the `NEXUS_*` (and `BRAVE_SEARCH_API_KEY`) variables through `lookup`; empty
    /// values count as unset. Everything not named there keeps its default.
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let mut settings = Self {
            searxng_url: get("NEXUS_SEARXNG_URL"),
            brave_api_key: get("BRAVE_SEARCH_API_KEY"),
            smtp_host: get("NEXUS_SMTP_HOST"),
            smtp_username: get("NEXUS_SMTP_USERNAME"),
            smtp_password: lookup("NEXUS_SMTP_PASSWORD").filter(|v| !v.is_empty()),
            smtp_from: get("NEXUS_SMTP_FROM"),
            ..Self::default()
        };
        if let Some(url) = &settings.searxng_url {
            check_base_url("NEXUS_SEARXNG_URL", url)?;
        }
        if let Some(port) = get("NEXUS_SMTP_PORT") {
            let parsed = port.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| SettingsError::Invalid {
                variable: "NEXUS_SMTP_PORT",
                reason: format!("{port:?} is not a port number"),
            })?;
            settings.smtp_port = Some(parsed);
        }
        if let Some(mode) = get("NEXUS_SMTP_TLS") {
            settings.smtp_tls = mode.parse()?;
        }
        if let Some(from) = &settings.smtp_from {
            email::parse_mailbox(from)
                .map_err(|reason| SettingsError::Invalid { variable: "NEXUS_SMTP_FROM", reason })?;
        }
        if let Some(url) = get("NEXUS_WEATHER_BASE_URL") {
            check_base_url("NEXUS_WEATHER_BASE_URL", &url)?;
            settings.weather_base_url = url;
        }
        Ok(settings)
    }
}

fn check_base_url(variable: &'static str, text: &str) -> Result<(), SettingsError> {
    let url =
        url::Url::parse(text).map_err(|e| SettingsError::Invalid { variable, reason: format!("not a URL: {e}") })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(SettingsError::Invalid {
            variable,
            reason: format!("scheme {:?} is not http or https", url.scheme()),
        });
    }
    Ok(())
}

/// Every built-in tool, configured from `settings`; tools whose settings are missing are
/// registered but report themselves unconfigured, so no persona is offered them.
pub fn builtins(settings: &BuiltinSettings, knowledge: Arc<dyn KnowledgeIndex>) -> Registry {
    let mut registry = Registry::new();
    registry.register(Arc::new(KnowledgeSearch::new(knowledge)));
    registry.register(Arc::new(WebFetch::new(settings)));
    registry.register(Arc::new(WebSearch::new(settings)));
    registry.register(Arc::new(FileRead));
    registry.register(Arc::new(FileWrite));
    registry.register(Arc::new(ComputeStats));
    registry.register(Arc::new(SendEmail::new(settings)));
    registry.register(Arc::new(Weather::new(settings)));
    registry.register(Arc::new(Remember));
    registry
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn settings_come_from_the_environment() {
        let settings = BuiltinSettings::from_env(env(&[
            ("NEXUS_SEARXNG_URL", "http://searx.local:8080"),
            ("BRAVE_SEARCH_API_KEY", "brave-secret"),
            ("NEXUS_SMTP_HOST", "smtp.example.org"),
            ("NEXUS_SMTP_PORT", "2525"),
            ("NEXUS_SMTP_USERNAME", "nexus"),
            ("NEXUS_SMTP_PASSWORD", "smtp-secret"),
            ("NEXUS_SMTP_FROM", "Nexus <nexus@example.org>"),
            ("NEXUS_SMTP_TLS", "TLS"),
            ("NEXUS_WEATHER_BASE_URL", "http://weather.local"),
        ]))
        .unwrap();
        assert_eq!(settings.searxng_url.as_deref(), Some("http://searx.local:8080"));
        assert_eq!(settings.smtp_port, Some(2525));
        assert_eq!(settings.smtp_tls, SmtpTls::Tls);
        assert_eq!(settings.weather_base_url, "http://weather.local");
        let debug = format!("{settings:?}");
        assert!(!debug.contains("brave-secret") && !debug.contains("smtp-secret"), "{debug}");
        assert!(debug.contains("<redacted>"));
    }

    #[test]
    fn defaults_leave_optional_tools_unconfigured_and_bad_values_are_refused() {
        let settings = BuiltinSettings::from_env(env(&[("NEXUS_SMTP_HOST", "  ")])).unwrap();
        assert_eq!(settings.smtp_host, None);
        assert_eq!(settings.weather_base_url, WEATHER_BASE_URL);
        assert_eq!(settings.max_fetch_bytes, DEFAULT_MAX_FETCH_BYTES);
        for (name, value) in [
            ("NEXUS_SMTP_PORT", "smtp"),
            ("NEXUS_SMTP_PORT", "0"),
            ("NEXUS_SMTP_TLS", "ssl"),
            ("NEXUS_SMTP_FROM", "not an address"),
            ("NEXUS_SEARXNG_URL", "ftp://searx"),
            ("NEXUS_WEATHER_BASE_URL", "nowhere"),
        ] {
            let error = BuiltinSettings::from_env(env(&[(name, value)])).unwrap_err();
            assert!(error.to_string().starts_with(name), "{error}");
        }
    }

    #[test]
    fn the_variable_list_names_exactly_what_from_env_reads() {
        let asked = std::cell::RefCell::new(Vec::new());
        BuiltinSettings::from_env(|name| {
            asked.borrow_mut().push(name.to_owned());
            None
        })
        .expect("nothing set is valid");
        let mut asked = asked.into_inner();
        asked.sort();
        asked.dedup();
        let mut listed: Vec<String> = SETTINGS_VARIABLES.iter().map(|v| (*v).to_owned()).collect();
        listed.sort();
        assert_eq!(asked, listed);
    }
}

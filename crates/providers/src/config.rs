//! Provider settings as the binary resolves them (from the environment or its config file), and
//! turning them into ready providers in a fixed order.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::anthropic::{AnthropicConfig, AnthropicProvider};
use crate::ollama::{OllamaConfig, OllamaProvider};
use crate::openai::{OpenAiConfig, OpenAiProvider};
use crate::{ModelProvider, ProviderError};

/// How long one request may take unless configured otherwise. Generous, because long answers
/// from large models take minutes.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// An API key. Its `Debug` never shows it; reading it takes an explicit [`ApiKey::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key itself, for the request header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// Which providers to build and how to reach them. A provider is configured when its key (or,
/// for Ollama and an OpenAI-compatible server, its base URL) is set.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderSettings {
    pub anthropic_api_key: Option<ApiKey>,
    pub anthropic_base_url: Option<String>,
    pub openai_api_key: Option<ApiKey>,
    pub openai_base_url: Option<String>,
    pub mistral_api_key: Option<ApiKey>,
    pub mistral_base_url: Option<String>,
    pub ollama_base_url: Option<String>,
    pub compatible_base_url: Option<String>,
    pub compatible_api_key: Option<ApiKey>,
    pub compatible_name: Option<String>,
    pub request_timeout: Duration,
}

impl Default for ProviderSettings {
    fn default() -> Self {
        Self {
            anthropic_api_key: None,
            anthropic_base_url: None,
            openai_api_key: None,
            openai_base_url: None,
            mistral_api_key: None,
            mistral_base_url: None,
            ollama_base_url: None,
            compatible_base_url: None,
            compatible_api_key: None,
            compatible_name: None,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

/// The environment variables that configure a provider, for error messages and docs.
pub const PROVIDER_ENV_VARS: &[(&str, &str)] = &[
    ("ANTHROPIC_API_KEY", "Anthropic (ANTHROPIC_BASE_URL overrides the endpoint)"),
    ("OPENAI_API_KEY", "OpenAI (OPENAI_BASE_URL overrides the endpoint)"),
    ("MISTRAL_API_KEY", "Mistral (MISTRAL_BASE_URL overrides the endpoint)"),
    ("OLLAMA_BASE_URL", "a local Ollama server, e.g. http://127.0.0.1:11434"),
    (
        "NEXUS_OPENAI_COMPATIBLE_BASE_URL",
        "any OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1 \
         (with NEXUS_OPENAI_COMPATIBLE_API_KEY and NEXUS_OPENAI_COMPATIBLE_NAME if needed)",
    ),
];

/// Every variable [`ProviderSettings::from_env`] reads.
pub const PROVIDER_VARIABLES: &[&str] = &[
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "MISTRAL_API_KEY",
    "MISTRAL_BASE_URL",
    "OLLAMA_BASE_URL",
    "NEXUS_OPENAI_COMPATIBLE_BASE_URL",
    "NEXUS_OPENAI_COMPATIBLE_API_KEY",
    "NEXUS_OPENAI_COMPATIBLE_NAME",
];

impl ProviderSettings {
    /// Reads the provider variables through `lookup` (`std::env::var(..).ok()` in the binary, a
    /// map in tests). Blank values count as unset.
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let text = |name: &str| lookup(name).map(|value| value.trim().to_owned()).filter(|value| !value.is_empty());
        let key = |name: &str| text(name).map(ApiKey::new);
        Self {
            anthropic_api_key: key("ANTHROPIC_API_KEY"),
            anthropic_base_url: text("ANTHROPIC_BASE_URL"),
            openai_api_key: key("OPENAI_API_KEY"),
            openai_base_url: text("OPENAI_BASE_URL"),
            mistral_api_key: key("MISTRAL_API_KEY"),
            mistral_base_url: text("MISTRAL_BASE_URL"),
            ollama_base_url: text("OLLAMA_BASE_URL"),
            compatible_base_url: text("NEXUS_OPENAI_COMPATIBLE_BASE_URL"),
            compatible_api_key: key("NEXUS_OPENAI_COMPATIBLE_API_KEY"),
            compatible_name: text("NEXUS_OPENAI_COMPATIBLE_NAME"),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

/// Builds every configured provider, in a fixed order: Anthropic, OpenAI, Mistral, the
/// OpenAI-compatible server, Ollama. An empty list means nothing is configured; an invalid
/// base URL is an error naming it.
pub fn configured_providers(settings: &ProviderSettings) -> Result<Vec<Arc<dyn ModelProvider>>, ProviderError> {
    let timeout = settings.request_timeout;
    let mut providers: Vec<Arc<dyn ModelProvider>> = Vec::new();
    if let Some(api_key) = &settings.anthropic_api_key {
        let mut config = AnthropicConfig::new(api_key.clone());
        config.base_url = settings.anthropic_base_url.clone().unwrap_or(config.base_url);
        config.request_timeout = timeout;
        providers.push(Arc::new(AnthropicProvider::new(config)?));
    }
    if let Some(api_key) = &settings.openai_api_key {
        let mut config = OpenAiConfig::openai(api_key.clone());
        config.base_url = settings.openai_base_url.clone().unwrap_or(config.base_url);
        config.request_timeout = timeout;
        providers.push(Arc::new(OpenAiProvider::new(config)?));
    }
    if let Some(api_key) = &settings.mistral_api_key {
        let mut config = OpenAiConfig::mistral(api_key.clone());
        config.base_url = settings.mistral_base_url.clone().unwrap_or(config.base_url);
        config.request_timeout = timeout;
        providers.push(Arc::new(OpenAiProvider::new(config)?));
    }
    if let Some(base_url) = &settings.compatible_base_url {
        let name = settings.compatible_name.clone().unwrap_or_else(|| OpenAiConfig::DEFAULT_COMPATIBLE_NAME.to_owned());
        let mut config = OpenAiConfig::compatible(name, base_url.clone(), settings.compatible_api_key.clone());
        config.request_timeout = timeout;
        providers.push(Arc::new(OpenAiProvider::new(config)?));
    }
    if let Some(base_url) = &settings.ollama_base_url {
        let config = OllamaConfig { base_url: base_url.clone(), request_timeout: timeout };
        providers.push(Arc::new(OllamaProvider::new(config)?));
    }
    Ok(providers)
}

/// Like [`configured_providers`], but no provider at all is an error that tells the user which
/// environment variables to set.
pub fn require_providers(settings: &ProviderSettings) -> Result<Vec<Arc<dyn ModelProvider>>, ProviderError> {
    let providers = configured_providers(settings)?;
    if providers.is_empty() {
        return Err(not_configured());
    }
    Ok(providers)
}

/// The error for "no model provider is configured", listing the variables that configure one.
pub fn not_configured() -> ProviderError {
    let options: Vec<String> =
        PROVIDER_ENV_VARS.iter().map(|(variable, what)| format!("  {variable} for {what}")).collect();
    ProviderError::NotConfigured(format!(
        "no model provider is configured; set at least one of:\n{}",
        options.join("\n")
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn settings(vars: &[(&str, &str)]) -> ProviderSettings {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        ProviderSettings::from_env(|name| vars.get(name).cloned())
    }

    fn names(settings: &ProviderSettings) -> Vec<String> {
        configured_providers(settings).unwrap().iter().map(|provider| provider.name().to_owned()).collect()
    }

    #[test]
    fn providers_come_in_a_fixed_order() {
        let all = settings(&[
            ("OLLAMA_BASE_URL", "http://127.0.0.1:11434"),
            ("MISTRAL_API_KEY", "m"),
            ("NEXUS_OPENAI_COMPATIBLE_BASE_URL", "http://127.0.0.1:8000/v1"),
            ("NEXUS_OPENAI_COMPATIBLE_NAME", "vllm"),
            ("OPENAI_API_KEY", "o"),
            ("ANTHROPIC_API_KEY", "a"),
        ]);
        assert_eq!(names(&all), ["anthropic", "openai", "mistral", "vllm", "ollama"]);
        let some =
            settings(&[("OPENAI_API_KEY", "o"), ("NEXUS_OPENAI_COMPATIBLE_BASE_URL", "http://localhost:1234/v1")]);
        assert_eq!(names(&some), ["openai", "openai-compatible"]);
    }

    #[test]
    fn blank_variables_count_as_unset() {
        let blank = settings(&[("ANTHROPIC_API_KEY", "  "), ("OLLAMA_BASE_URL", "")]);
        assert_eq!(blank, ProviderSettings::default());
    }

    #[test]
    fn nothing_configured_names_the_variables_to_set() {
        let err = require_providers(&ProviderSettings::default()).err().unwrap();
        let ProviderError::NotConfigured(message) = err else { panic!("unexpected {err:?}") };
        for variable in [
            "ANTHROPIC_API_KEY",
            "OPENAI_API_KEY",
            "MISTRAL_API_KEY",
            "OLLAMA_BASE_URL",
            "NEXUS_OPENAI_COMPATIBLE_BASE_URL",
        ] {
            assert!(message.contains(variable), "{message}");
        }
    }

    #[test]
    fn an_invalid_base_url_is_reported() {
        let bad = settings(&[("OPENAI_API_KEY", "o"), ("OPENAI_BASE_URL", "not a url")]);
        let err = configured_providers(&bad).err().unwrap();
        assert!(matches!(&err, ProviderError::NotConfigured(message) if message.contains("not a url")), "{err:?}");
    }

    #[test]
    fn debug_output_never_shows_keys() {
        let configured =
            settings(&[("ANTHROPIC_API_KEY", "sk-ant-secret"), ("NEXUS_OPENAI_COMPATIBLE_API_KEY", "sk-other")]);
        let shown = format!("{configured:?}");
        assert!(!shown.contains("secret") && !shown.contains("sk-other"), "{shown}");
        assert!(shown.contains("<redacted>"));
        let provider = &configured_providers(&configured).unwrap()[0];
        assert_eq!(provider.name(), "anthropic");
    }

    #[test]
    fn the_variable_list_names_exactly_what_from_env_reads() {
        let asked = std::cell::RefCell::new(Vec::new());
        ProviderSettings::from_env(|name| {
            asked.borrow_mut().push(name.to_owned());
            None
        });
        let mut asked = asked.into_inner();
        asked.sort();
        let mut listed: Vec<String> = PROVIDER_VARIABLES.iter().map(|v| (*v).to_owned()).collect();
        listed.sort();
        assert_eq!(asked, listed);
    }
}

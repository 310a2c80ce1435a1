//! Builds the agent's services from configuration: model providers (with retries, circuit
//! breakers and a fallback chain per tier), the built-in tools (and the plugins' tools), and the
//! sandbox.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use providers::ModelProvider;
use providers::config::{configured_providers, not_configured};
use providers::pricing::PriceTable;
use providers::resilience::{CircuitBreakerConfig, Fallback, FallbackTarget, Resilient, RetryPolicy};
use runtime::agent::{AgentServices, ModelTarget, Models};
use tools::builtin::builtins;

use crate::config::Config;

/// How long an approval request waits for a decision.
const APPROVAL_TTL: Duration = Duration::from_secs(24 * 3600);

/// The default (trivial, normal, complex) models of each provider.
type TierModels = (&'static str, &'static str, &'static str);

fn default_models(provider: &str) -> Option<TierModels> {
    match provider {
        "anthropic" => Some(("claude-haiku-4-5", "claude-sonnet-4-5", "claude-opus-4-1")),
        "openai" => Some(("gpt-4o-mini", "gpt-4o-mini", "gpt-4o")),
        "mistral" => Some(("mistral-small-latest", "mistral-small-latest", "mistral-large-latest")),
        "ollama" => Some(("llama3.2", "llama3.2", "llama3.2")),
        _ => None,
    }
}

/// The agent's services. `local_chat` (SmolLM2, when fetched) serves every tier when no remote
/// provider is configured, and `local/smollm2-135m` through the gateway in any case.
pub fn agent_services(
    config: &Config,
    knowledge: runtime::knowledge::KnowledgeService,
    local_chat: Option<Arc<dyn ModelProvider>>,
    plugins: Option<Arc<runtime::plugins::Plugins>>,
) -> anyhow::Result<AgentServices> {
    let providers: Vec<Arc<dyn ModelProvider>> = configured_providers(&config.providers)
        .context("model providers")?
        .into_iter()
        .map(|p| {
            Arc::new(Resilient::new(p, RetryPolicy::default(), CircuitBreakerConfig::default()))
                as Arc<dyn ModelProvider>
        })
        .collect();
    let models = if providers.is_empty() {
        match &local_chat {
            Some(local) => {
                tracing::info!("no model provider configured: the local model answers every tier");
                let target = ModelTarget { provider: local.clone(), model: models::local::MODEL_ID.to_owned() };
                Models::Configured { trivial: target.clone(), normal: target.clone(), complex: target }
            }
            None => Models::NotConfigured(format!(
                "{}; or fetch the local model with `cargo xtask models --dir {}`",
                not_configured(),
                config.models_dir.display()
            )),
        }
    } else {
        let normal = config.model_normal.as_deref();
        Models::Configured {
            // A tier left unset takes the normal model: a mistake there is the normal model's.
            normal: tier(&providers, normal, |d| d.1, "models.normal")?,
            trivial: match config.model_trivial.as_deref() {
                Some(model) => tier(&providers, Some(model), |d| d.0, "models.trivial")?,
                None => tier(&providers, normal, |d| d.0, "models.normal")?,
            },
            complex: match config.model_complex.as_deref() {
                Some(model) => tier(&providers, Some(model), |d| d.2, "models.complex")?,
                None => tier(&providers, normal, |d| d.2, "models.normal")?,
            },
        }
    };
    let mut providers = providers;
    providers.extend(local_chat);
    let prices = PriceTable::builtin()
        .with_overrides(
            config
                .prices
                .iter()
                .map(|(model, p)| (model.clone(), providers::pricing::ModelPrice::new(p.input, p.output))),
        )
        .with_default(config.default_price.map(|p| providers::pricing::ModelPrice::new(p.input, p.output)));
    warn_about_unpriced_tiers(&models, &prices);
    Ok(AgentServices {
        models,
        providers,
        tools: match plugins {
            Some(plugins) => builtins(&config.tools, Arc::new(knowledge)).with_source(plugins),
            None => builtins(&config.tools, Arc::new(knowledge)),
        },
        sandbox: tools::Sandbox::default(),
        workspace_root: config.data_dir.join("workspace"),
        prices,
        approval_ttl: APPROVAL_TTL,
    })
}

/// Says at start-up which tier models have no price: calls to them will be refused.
fn warn_about_unpriced_tiers(models: &Models, prices: &PriceTable) {
    let Models::Configured { trivial, normal, complex } = models else { return };
    for (tier, target) in [("trivial", trivial), ("normal", normal), ("complex", complex)] {
        if let Err(unknown) = prices.price_for(target.provider.name(), &target.model) {
            tracing::warn!(tier, "{unknown}; calls to this tier will be refused");
        }
    }
}

/// The model target of a tier: the configured `provider/model` first, then every other
/// provider's default for that tier, as a fallback chain.
fn tier(
    providers: &[Arc<dyn ModelProvider>],
    configured: Option<&str>,
    pick: fn(TierModels) -> &'static str,
    setting: &str,
) -> anyhow::Result<ModelTarget> {
    let mut targets = Vec::new();
    if let Some((provider, model)) = configured.and_then(|c| c.split_once('/')) {
        let Some(found) = providers.iter().find(|p| p.name() == provider) else {
            let names: Vec<&str> = providers.iter().map(|p| p.name()).collect();
            anyhow::bail!("{setting}: provider {provider:?} is not configured (configured: {})", names.join(", "));
        };
        targets.push(FallbackTarget::new(found.clone(), model));
    }
    for provider in providers {
        if targets.iter().any(|t: &FallbackTarget| t.provider.name() == provider.name()) {
            continue;
        }
        if let Some(defaults) = default_models(provider.name()) {
            targets.push(FallbackTarget::new(provider.clone(), pick(defaults)));
        }
    }
    let Some(first_model) = targets.first().map(|t| t.model.clone()) else {
        anyhow::bail!(
            "{setting}: the configured providers have no default model; set {setting} (NEXUS_MODEL_{}) to provider/model",
            setting.trim_start_matches("models.").to_uppercase()
        );
    };
    let chain = Fallback::new(targets).map_err(|e| anyhow::anyhow!("{setting}: {e}"))?;
    Ok(ModelTarget { provider: Arc::new(chain), model: first_model })
}

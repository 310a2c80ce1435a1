//! Model prices in USD per million tokens, and the cost of a call from its token usage. A call
//! is priced by the (provider, model) Nexus sends it to; a model with no known price and no
//! configured default has no price at all ([`UnknownPrice`]), never a silent zero.

use std::collections::BTreeMap;

use crate::Usage;

/// USD per million input and output tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelPrice {
    pub input_per_million: f64,
    pub output_per_million: f64,
}

impl ModelPrice {
    pub const FREE: ModelPrice = ModelPrice { input_per_million: 0.0, output_per_million: 0.0 };

    pub const fn new(input_per_million: f64, output_per_million: f64) -> Self {
        Self { input_per_million, output_per_million }
    }

    pub fn cost_usd(&self, usage: &Usage) -> f64 {
        // u64 → f64 loses precision only beyond 2^53 tokens.
        (usage.input_tokens as f64 * self.input_per_million + usage.output_tokens as f64 * self.output_per_million)
            / 1_000_000.0
    }
}

/// Published list prices. Aliases without a date (`claude-3-opus`) let dated and `-latest`
/// variants match by prefix.
const BUILTIN_PRICES: &[(&str, f64, f64)] = &[
    // Anthropic
    ("claude-3-opus-20240229", 15.0, 75.0),
    ("claude-3-opus", 15.0, 75.0),
    ("claude-3-sonnet-20240229", 3.0, 15.0),
    ("claude-3-haiku-20240307", 0.25, 1.25),
    ("claude-3-haiku", 0.25, 1.25),
    ("claude-3-5-haiku-latest", 0.8, 4.0),
    ("claude-3-5-haiku", 0.8, 4.0),
    ("claude-3-5-sonnet", 3.0, 15.0),
    ("claude-3-7-sonnet", 3.0, 15.0),
    ("claude-sonnet-4-20250514", 3.0, 15.0),
    ("claude-sonnet-4", 3.0, 15.0),
    ("claude-sonnet-4-5", 3.0, 15.0),
    ("claude-opus-4", 15.0, 75.0),
    ("claude-opus-4-1", 15.0, 75.0),
    ("claude-opus-4-5", 5.0, 25.0),
    ("claude-haiku-4-5", 1.0, 5.0),
    // OpenAI
    ("gpt-4o", 2.5, 10.0),
    ("gpt-4o-mini", 0.15, 0.6),
    ("gpt-4.1", 2.0, 8.0),
    ("gpt-4.1-mini", 0.4, 1.6),
    ("gpt-4.1-nano", 0.1, 0.4),
    ("o3-mini", 1.1, 4.4),
    ("o4-mini", 1.1, 4.4),
    ("gpt-5", 1.25, 10.0),
    ("gpt-5-mini", 0.25, 2.0),
    ("gpt-5-nano", 0.05, 0.4),
    // Mistral
    ("mistral-large-latest", 2.0, 6.0),
    ("mistral-large", 2.0, 6.0),
    ("mistral-medium-latest", 0.4, 2.0),
    ("mistral-medium", 0.4, 2.0),
    ("mistral-small-latest", 0.1, 0.3),
    ("mistral-small", 0.1, 0.3),
];

/// Models that run on the operator's own hardware, priced explicitly at zero: the in-process
/// model (provider `local`) and every model Ollama serves (`ollama/*`).
const FREE_MODELS: &[&str] = &["local/smollm2-135m", "ollama/*"];

/// No price is known for a model, and no default price is configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "no price is known for model {model:?} (provider {provider}); set [models.prices.\"{model}\"] (input and output, USD per million tokens) or [models] default_price so its calls can be budgeted"
)]
pub struct UnknownPrice {
    pub provider: String,
    pub model: String,
}

/// Prices by model name (or `provider/model`, or `provider/*` for every model of a provider):
/// the built-in list plus configured overrides, and an optional default for anything else.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceTable {
    prices: BTreeMap<String, ModelPrice>,
    default: Option<ModelPrice>,
}

impl Default for PriceTable {
    fn default() -> Self {
        Self::builtin()
    }
}

impl PriceTable {
    pub fn builtin() -> Self {
        let prices = BUILTIN_PRICES
            .iter()
            .map(|&(model, input, output)| (model.to_owned(), ModelPrice::new(input, output)))
            .chain(FREE_MODELS.iter().map(|model| ((*model).to_owned(), ModelPrice::FREE)))
            .collect();
        Self { prices, default: None }
    }

    /// The price of models the table does not know (`[models] default_price`); without one,
    /// such models have no price and [`PriceTable::price_for`] refuses them.
    pub fn with_default(mut self, default: Option<ModelPrice>) -> Self {
        self.default = default;
        self
    }

    /// Adds or replaces prices, e.g. from configuration (negotiated rates, new models).
    pub fn with_overrides(mut self, overrides: impl IntoIterator<Item = (String, ModelPrice)>) -> Self {
        self.prices.extend(overrides);
        self
    }

    /// The price of a model: by exact name, else by the longest known name it extends
    /// (`gpt-4o-mini-2024-07-18` → `gpt-4o-mini`), else `None`: an unknown price, which the
    /// caller decides how to treat. A known name is only a prefix if the model continues with
    /// `-`, `:` or `@`, so `gpt-4` would not price `gpt-4o`.
    pub fn price(&self, model: &str) -> Option<ModelPrice> {
        if let Some(price) = self.prices.get(model) {
            return Some(*price);
        }
        self.prices
            .iter()
            .filter(|(known, _)| {
                model.strip_prefix(known.as_str()).is_some_and(|rest| rest.starts_with(['-', ':', '@']))
            })
            .max_by_key(|(known, _)| known.len())
            .map(|(_, price)| *price)
    }

    /// The cost of a call, if the model's price is known by name.
    pub fn cost_usd(&self, model: &str, usage: &Usage) -> Option<f64> {
        self.price(model).map(|price| price.cost_usd(usage))
    }

    /// The price of `model` served by `provider`: `provider/model`, then `provider/*`, then the
    /// model's name ([`PriceTable::price`]), then the configured default. A fallback chain
    /// (`fallback[a,b]`) is priced as its first provider, the one its model belongs to.
    pub fn price_for(&self, provider: &str, model: &str) -> Result<ModelPrice, UnknownPrice> {
        let provider = provider
            .strip_prefix("fallback[")
            .and_then(|rest| rest.split([',', ']']).next())
            .filter(|first| !first.is_empty())
            .unwrap_or(provider);
        self.prices
            .get(&format!("{provider}/{model}"))
            .or_else(|| self.prices.get(&format!("{provider}/*")))
            .copied()
            .or_else(|| self.price(model))
            .or(self.default)
            .ok_or_else(|| UnknownPrice { provider: provider.to_owned(), model: model.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(input_tokens: u64, output_tokens: u64) -> Usage {
        Usage { input_tokens, output_tokens }
    }

    #[test]
    fn seed_models_have_their_list_prices() {
        let table = PriceTable::builtin();
        let cases = [
            ("claude-3-opus-20240229", 15.0, 75.0),
            ("claude-3-sonnet-20240229", 3.0, 15.0),
            ("claude-3-haiku-20240307", 0.25, 1.25),
            ("claude-sonnet-4-20250514", 3.0, 15.0),
            ("claude-sonnet-4-5", 3.0, 15.0),
            ("claude-opus-4-1", 15.0, 75.0),
            ("claude-haiku-4-5", 1.0, 5.0),
            ("claude-3-5-haiku-latest", 0.8, 4.0),
            ("gpt-4o", 2.5, 10.0),
            ("gpt-4o-mini", 0.15, 0.6),
            ("gpt-4.1", 2.0, 8.0),
            ("gpt-4.1-mini", 0.4, 1.6),
            ("o3-mini", 1.1, 4.4),
            ("mistral-large-latest", 2.0, 6.0),
            ("mistral-medium-latest", 0.4, 2.0),
            ("mistral-small-latest", 0.1, 0.3),
        ];
        for (model, input, output) in cases {
            assert_eq!(table.price(model), Some(ModelPrice::new(input, output)), "{model}");
        }
    }

    #[test]
    fn dated_variants_match_the_longest_known_prefix() {
        let table = PriceTable::builtin();
        let cases = [
            ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
            ("gpt-4o-2024-08-06", "gpt-4o"),
            ("gpt-4.1-mini-2025-04-14", "gpt-4.1-mini"),
            ("o3-mini-2025-01-31", "o3-mini"),
            ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
            ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
            ("claude-opus-4-1-20250805", "claude-opus-4-1"),
            ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
            ("mistral-large-2411", "mistral-large"),
        ];
        for (model, known) in cases {
            assert_eq!(table.price(model), table.price(known), "{model} should be priced as {known}");
            assert!(table.price(model).is_some(), "{model}");
        }
    }

    #[test]
    fn unknown_models_have_no_price() {
        let table = PriceTable::builtin();
        for model in ["llama3.2", "gpt-4", "gpt-4o2", "my-finetune", ""] {
            assert_eq!(table.price(model), None, "{model}");
            assert_eq!(table.cost_usd(model, &usage(1, 1)), None, "{model}");
        }
    }

    #[test]
    fn cost_is_tokens_times_price_per_million() {
        let table = PriceTable::builtin();
        let cost = table.cost_usd("gpt-4o-mini", &usage(1_000_000, 2_000_000)).unwrap();
        assert!((cost - (0.15 + 1.2)).abs() < 1e-12, "{cost}");
        let cost = table.cost_usd("claude-3-opus-20240229", &usage(1_000, 500)).unwrap();
        assert!((cost - (0.015 + 0.0375)).abs() < 1e-12, "{cost}");
    }

    #[test]
    fn local_models_are_explicitly_free_and_unknown_ones_are_refused() {
        let table = PriceTable::builtin();
        assert_eq!(table.price_for("ollama", "llama3.2:latest"), Ok(ModelPrice::FREE));
        assert_eq!(table.price_for("local", "smollm2-135m"), Ok(ModelPrice::FREE));
        assert_eq!(table.price_for("fallback[local]", "smollm2-135m"), Ok(ModelPrice::FREE));
        let unknown = table.price_for("openai", "llama3.2:latest").expect_err("no price");
        assert!(unknown.to_string().contains(r#"[models.prices."llama3.2:latest"]"#), "{unknown}");
        assert!(table.price_for("local", "other-model").is_err(), "only the named local model is free");
    }

    #[test]
    fn provider_entries_win_then_names_then_the_default() {
        let table = PriceTable::builtin()
            .with_overrides([("openai-compatible/gpt-4o".to_owned(), ModelPrice::new(0.5, 0.5))])
            .with_default(Some(ModelPrice::new(9.0, 9.0)));
        assert_eq!(table.price_for("openai-compatible", "gpt-4o"), Ok(ModelPrice::new(0.5, 0.5)));
        assert_eq!(table.price_for("fallback[openai,anthropic]", "gpt-4o"), Ok(ModelPrice::new(2.5, 10.0)));
        assert_eq!(table.price_for("openai", "my-finetune"), Ok(ModelPrice::new(9.0, 9.0)));
    }

    #[test]
    fn overrides_replace_and_extend() {
        let table = PriceTable::builtin().with_overrides([
            ("gpt-4o".to_owned(), ModelPrice::new(1.0, 2.0)),
            ("my-finetune".to_owned(), ModelPrice::new(4.0, 8.0)),
        ]);
        assert_eq!(table.price("gpt-4o-2024-08-06"), Some(ModelPrice::new(1.0, 2.0)));
        assert_eq!(table.price("gpt-4o-mini"), Some(ModelPrice::new(0.15, 0.6)));
        assert_eq!(table.price("my-finetune"), Some(ModelPrice::new(4.0, 8.0)));
    }
}

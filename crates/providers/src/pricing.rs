//! Model prices in USD per million tokens, and the cost of a call from its token usage.

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

/// Providers that run on the operator's own hardware: no per-token price.
const LOCAL_PROVIDERS: &[&str] = &["ollama"];

/// Prices by model name: the built-in list plus configured overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceTable {
    prices: BTreeMap<String, ModelPrice>,
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
            .collect();
        Self { prices }
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

    /// The cost of a call, if the model's price is known.
    pub fn cost_usd(&self, model: &str, usage: &Usage) -> Option<f64> {
        self.price(model).map(|price| price.cost_usd(usage))
    }

    /// The cost of a call answered by `provider`: local providers (Ollama) cost nothing whatever
    /// the model, others are priced by model.
    pub fn cost_usd_for(&self, provider: &str, model: &str, usage: &Usage) -> Option<f64> {
        if LOCAL_PROVIDERS.contains(&provider) {
            return Some(ModelPrice::FREE.cost_usd(usage));
        }
        self.cost_usd(model, usage)
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
    fn local_providers_cost_nothing() {
        let table = PriceTable::builtin();
        assert_eq!(table.cost_usd_for("ollama", "llama3.2:latest", &usage(5_000, 5_000)), Some(0.0));
        assert_eq!(table.cost_usd_for("openai", "llama3.2:latest", &usage(5_000, 5_000)), None);
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

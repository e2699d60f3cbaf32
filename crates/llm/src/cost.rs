//! Cost accounting: what a call cost, and the price table used when the provider does not say.
//!
//! Order of preference (OBSERVABILITY.md §5): the provider's own figure (`usage.cost`, exact), else the
//! price table (estimated), else unknown — never a silent zero. Local models and cached or replayed
//! replies cost exactly zero, and what they would have cost is kept in [`Cost::avoided`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use rvbbit_core::MicroUsd;

use crate::response::Usage;

/// How sure a cost figure is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CostStatus {
    /// Reported by the provider, or zero for a local model or a cached reply.
    Exact,
    /// Computed from the price table.
    Estimated,
    /// Neither reported nor priced: the amount is `None`.
    Unknown,
}

/// What one call cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Cost {
    /// The amount, or `None` when unknown.
    pub amount: Option<MicroUsd>,
    /// How sure `amount` is.
    pub status: CostStatus,
    /// For a free reply (cache, replay, local model): what the call would have cost, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avoided: Option<MicroUsd>,
}

impl Cost {
    /// An unknown cost.
    pub const UNKNOWN: Cost = Cost {
        amount: None,
        status: CostStatus::Unknown,
        avoided: None,
    };

    /// A cost reported by the provider.
    pub fn exact(amount: MicroUsd) -> Cost {
        Cost {
            amount: Some(amount),
            status: CostStatus::Exact,
            avoided: None,
        }
    }

    /// A cost computed from the price table.
    pub fn estimated(amount: MicroUsd) -> Cost {
        Cost {
            amount: Some(amount),
            status: CostStatus::Estimated,
            avoided: None,
        }
    }

    /// Zero, for a reply that was not paid for (a cache hit, a replay, a local model), remembering what
    /// it would have cost.
    pub fn free(avoided: Option<MicroUsd>) -> Cost {
        Cost {
            amount: Some(MicroUsd::ZERO),
            status: CostStatus::Exact,
            avoided,
        }
    }

    /// This cost as seen by a caller who got the same reply from a cache: zero, with this call's amount
    /// (or what it had avoided itself) recorded as avoided.
    pub fn as_cached(self) -> Cost {
        Cost::free(self.amount.filter(|a| *a != MicroUsd::ZERO).or(self.avoided))
    }
}

/// Prices of one model, in micro-dollars per million tokens of each class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Price {
    /// Uncached prompt tokens.
    pub input: MicroUsd,
    /// Prompt tokens read from the provider's cache (defaults to `input`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input: Option<MicroUsd>,
    /// Prompt tokens written to the provider's cache (defaults to `input`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write: Option<MicroUsd>,
    /// Generated tokens.
    pub output: MicroUsd,
    /// Reasoning tokens (defaults to `output`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<MicroUsd>,
}

impl Price {
    /// A price with input and output rates (micro-dollars per million tokens); the other classes
    /// default to these.
    pub const fn new(input_per_million: i64, output_per_million: i64) -> Price {
        Price {
            input: MicroUsd::from_micros(input_per_million),
            cached_input: None,
            cache_write: None,
            output: MicroUsd::from_micros(output_per_million),
            reasoning: None,
        }
    }

    /// Set the cached-input rate.
    pub const fn with_cached_input(mut self, per_million: i64) -> Price {
        self.cached_input = Some(MicroUsd::from_micros(per_million));
        self
    }

    /// Set the cache-write rate.
    pub const fn with_cache_write(mut self, per_million: i64) -> Price {
        self.cache_write = Some(MicroUsd::from_micros(per_million));
        self
    }

    /// Set the reasoning rate.
    pub const fn with_reasoning(mut self, per_million: i64) -> Price {
        self.reasoning = Some(MicroUsd::from_micros(per_million));
        self
    }

    /// The cost of `usage` at these prices, rounded half up to a whole micro-dollar. `None` only on
    /// overflow.
    pub fn cost_of(&self, usage: &Usage) -> Option<MicroUsd> {
        let parts = [
            (usage.input, self.input),
            (usage.cached_input, self.cached_input.unwrap_or(self.input)),
            (usage.cache_write, self.cache_write.unwrap_or(self.input)),
            (usage.output, self.output),
            (usage.reasoning, self.reasoning.unwrap_or(self.output)),
        ];
        // Sum in i128 "micro-dollars × tokens" and divide once, so per-class rounding does not add up.
        let mut scaled: i128 = 0;
        for (tokens, rate) in parts {
            scaled = scaled.checked_add(i128::from(tokens).checked_mul(i128::from(rate.micros()))?)?;
        }
        let micros = (scaled + 500_000) / 1_000_000;
        i64::try_from(micros).ok().map(MicroUsd::from_micros)
    }
}

/// Model prices: the bundled defaults with the caller's overrides on top.
///
/// Lookups try the exact model id, then the id without its `provider/` prefix, then the id without a
/// `:variant` suffix (`openai/gpt-4o:free` → `openai/gpt-4o`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PriceTable {
    prices: BTreeMap<String, Price>,
}

/// The date of the bundled prices. Providers change prices; override them in config.
pub const BUNDLED_PRICES_AS_OF: &str = "2025-11";

const BUNDLED: &[(&str, Price)] = &[
    (
        "openai/gpt-4o-mini",
        Price::new(150_000, 600_000).with_cached_input(75_000),
    ),
    (
        "openai/gpt-4o",
        Price::new(2_500_000, 10_000_000).with_cached_input(1_250_000),
    ),
    (
        "openai/gpt-4.1",
        Price::new(2_000_000, 8_000_000).with_cached_input(500_000),
    ),
    (
        "openai/gpt-4.1-mini",
        Price::new(400_000, 1_600_000).with_cached_input(100_000),
    ),
    (
        "openai/gpt-5",
        Price::new(1_250_000, 10_000_000).with_cached_input(125_000),
    ),
    (
        "openai/gpt-5-mini",
        Price::new(250_000, 2_000_000).with_cached_input(25_000),
    ),
    (
        "anthropic/claude-sonnet-4",
        Price::new(3_000_000, 15_000_000)
            .with_cached_input(300_000)
            .with_cache_write(3_750_000),
    ),
    (
        "anthropic/claude-3.5-haiku",
        Price::new(800_000, 4_000_000)
            .with_cached_input(80_000)
            .with_cache_write(1_000_000),
    ),
    (
        "google/gemini-2.5-flash",
        Price::new(300_000, 2_500_000).with_cached_input(75_000),
    ),
    (
        "google/gemini-2.5-flash-lite",
        Price::new(100_000, 400_000).with_cached_input(25_000),
    ),
    (
        "google/gemini-2.5-pro",
        Price::new(1_250_000, 10_000_000).with_cached_input(310_000),
    ),
    (
        "x-ai/grok-4.1-fast",
        Price::new(200_000, 500_000).with_cached_input(50_000),
    ),
];

impl Default for PriceTable {
    /// The bundled table ([`BUNDLED_PRICES_AS_OF`]).
    fn default() -> Self {
        PriceTable {
            prices: BUNDLED.iter().map(|(m, p)| ((*m).to_owned(), *p)).collect(),
        }
    }
}

impl PriceTable {
    /// A table with no prices at all.
    pub fn empty() -> Self {
        PriceTable {
            prices: BTreeMap::new(),
        }
    }

    /// Add or replace the price of `model`.
    pub fn set(&mut self, model: impl Into<String>, price: Price) {
        self.prices.insert(model.into(), price);
    }

    /// Add or replace every price in `overrides`.
    pub fn extend(&mut self, overrides: impl IntoIterator<Item = (String, Price)>) {
        self.prices.extend(overrides);
    }

    /// The price of `model`, if known.
    pub fn get(&self, model: &str) -> Option<&Price> {
        if let Some(p) = self.prices.get(model) {
            return Some(p);
        }
        let base = model.split_once(':').map_or(model, |(b, _)| b);
        if let Some(p) = self.prices.get(base) {
            return Some(p);
        }
        // A bare id such as `gpt-4o-mini` (what OpenAI itself expects) matches `openai/gpt-4o-mini`.
        self.prices
            .iter()
            .find(|(k, _)| k.rsplit_once('/').is_some_and(|(_, tail)| tail == base))
            .map(|(_, p)| p)
    }

    /// Every model id in the table.
    pub fn models(&self) -> impl Iterator<Item = &str> {
        self.prices.keys().map(String::as_str)
    }

    /// The estimated cost of `usage` on `model`, or `None` when the model is not in the table.
    pub fn estimate(&self, model: &str, usage: &Usage) -> Option<MicroUsd> {
        self.get(model)?.cost_of(usage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_sums_classes_then_rounds_once() {
        // $1 per 1M input, $2 per 1M output, cached at $0.10, reasoning at output price.
        let price = Price::new(1_000_000, 2_000_000).with_cached_input(100_000);
        let usage = Usage::new(1_000, 10_000, 0, 500, 250);
        // 1000×1 + 10000×0.1 + 500×2 + 250×2 = 1000 + 1000 + 1000 + 500 micro-dollars.
        assert_eq!(price.cost_of(&usage), Some(MicroUsd::from_micros(3_500)));
        // Three tokens at $0.15/M is 0.45 µ$: rounds to 0; seven is 1.05 µ$: rounds to 1.
        let cheap = Price::new(150_000, 0);
        assert_eq!(cheap.cost_of(&Usage::new(3, 0, 0, 0, 0)), Some(MicroUsd::ZERO));
        assert_eq!(
            cheap.cost_of(&Usage::new(7, 0, 0, 0, 0)),
            Some(MicroUsd::from_micros(1))
        );
    }

    #[test]
    fn lookup_tolerates_prefixes_and_variants() {
        let table = PriceTable::default();
        assert!(table.get("openai/gpt-4o-mini").is_some());
        assert!(table.get("gpt-4o-mini").is_some());
        assert!(table.get("openai/gpt-4o-mini:free").is_some());
        assert!(table.get("nobody/unknown").is_none());
    }

    #[test]
    fn cached_cost_keeps_what_was_avoided() {
        let paid = Cost::exact(MicroUsd::from_micros(42));
        let cached = paid.as_cached();
        assert_eq!(cached.amount, Some(MicroUsd::ZERO));
        assert_eq!(cached.avoided, Some(MicroUsd::from_micros(42)));
        assert_eq!(cached.as_cached(), cached);
    }
}

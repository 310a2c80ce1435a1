//! The overview: the tenant's day and month in cards, thirty days of runs, gate verdicts, cost
//! and model calls in CSS bars, spend by model, provider and key, and each model provider's
//! breaker. Counted by the database, a few queries side by side.

use askama::Template;
use axum::extract::State;
use domain::Timestamp;

use crate::i18n::Catalog;
use crate::pages::{Page, PageResult, api, money, render};
use crate::session::Signed;
use crate::state::ConsoleState;

pub struct Card {
    pub label: &'static str,
    pub value: String,
    pub note: String,
}

pub struct Bar {
    pub label: String,
    pub percent: u32,
    pub value: String,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewView {
    page: Page,
    cards: Vec<Card>,
    budget_percent: u32,
    budget_state: String,
    cost_days: Vec<Bar>,
    call_days: Vec<Bar>,
    run_days: Vec<Bar>,
    /// Per day: calls the gates passed (sealed), and calls they refused.
    verdict_days: (Vec<Bar>, Vec<Bar>),
    breakdowns: Vec<Breakdown>,
    providers: Vec<ProviderRow>,
}

/// A model provider's breaker, as this server sees it.
pub struct ProviderRow {
    pub name: String,
    /// `closed`, `open`, `half_open` or `unguarded` (also the badge's class).
    pub state: &'static str,
    pub detail: String,
    pub serves: String,
}

impl ProviderRow {
    pub fn state_key(&self) -> &'static str {
        match self.state {
            "closed" => "overview.closed",
            "open" => "overview.open",
            "half_open" => "overview.half_open",
            _ => "overview.unguarded",
        }
    }
}

fn provider_rows(runtime: &runtime::Runtime, t: &Catalog) -> Vec<ProviderRow> {
    use runtime::agent::BreakerState;
    runtime
        .provider_health()
        .into_iter()
        .map(|p| ProviderRow {
            detail: match p.state {
                BreakerState::Closed { consecutive_failures: 0 } | BreakerState::Unguarded => String::new(),
                BreakerState::Closed { consecutive_failures } => {
                    t.fill("overview.failures", &[("n", &consecutive_failures.to_string())])
                }
                BreakerState::Open { retry_in } => {
                    t.fill("overview.retry_in", &[("s", &retry_in.as_secs().to_string())])
                }
                BreakerState::HalfOpen => t.get("overview.probing").to_owned(),
            },
            state: p.state.as_str(),
            name: p.name,
            serves: p.serves.join(", "),
        })
        .collect()
}

/// Spend by one dimension (model, provider, key), largest first.
pub struct Breakdown {
    pub key: &'static str,
    pub bars: Vec<Bar>,
}

/// Bars scaled to the largest value.
fn bars(items: Vec<(String, f64, String)>) -> Vec<Bar> {
    let max = items.iter().map(|(_, v, _)| *v).fold(0.0_f64, f64::max);
    items
        .into_iter()
        .map(|(label, v, value)| {
            let percent = if max > 0.0 { ((v / max) * 100.0).round().clamp(0.0, 100.0) as u32 } else { 0 };
            Bar { label, percent, value }
        })
        .collect()
}

pub async fn overview(State(state): State<ConsoleState>, signed: Signed) -> PageResult {
    let lang = signed.lang;
    let t = lang.catalog();
    let tenant = &signed.user.principal.tenant;
    let runtime = &state.runtime;
    let now = Timestamp::now();
    const DAY: i64 = 86_400_000_000;
    let since = Timestamp::from_micros(now.as_micros() - 29 * DAY - now.as_micros().rem_euclid(DAY));
    let (counts, budget, usage, activity) = tokio::join!(
        runtime.overview(tenant),
        runtime.budgets().status(tenant),
        runtime.usage(tenant, since, Timestamp::from_micros(now.as_micros() + 1)),
        runtime.activity(tenant, since),
    );
    let counts = counts.map_err(api(lang))?;
    let activity = activity.map_err(api(lang))?;
    let budget = budget.map_err(api(lang))?;
    let usage = usage.map_err(api(lang))?;
    let cards = vec![
        Card { label: "overview.runs_today", value: counts.runs_today.to_string(), note: String::new() },
        Card { label: "overview.actions_today", value: counts.actions_today.to_string(), note: String::new() },
        Card { label: "overview.blocked_today", value: counts.blocked_today.to_string(), note: String::new() },
        Card { label: "overview.approvals_waiting", value: counts.approvals_waiting.to_string(), note: String::new() },
        Card {
            label: "overview.spend_month",
            value: money(counts.spend_month_usd.max(budget.spent_usd)),
            note: t.fill("overview.of_budget", &[("limit", &money(budget.limit_usd))]),
        },
        Card { label: "overview.tokens_month", value: counts.tokens_month.to_string(), note: String::new() },
    ];
    let first_day = since.as_micros().div_euclid(DAY);
    let mut cost = vec![0.0_f64; 30];
    let mut calls = vec![0_u64; 30];
    let (mut runs, mut actions, mut refusals) = (vec![0_u64; 30], vec![0_u64; 30], vec![0_u64; 30]);
    for day in &activity {
        if let Ok(i) = usize::try_from(day.day - first_day)
            && i < 30
        {
            runs[i] = day.runs;
            actions[i] = day.actions;
            refusals[i] = day.refusals;
        }
    }
    let mut model: std::collections::BTreeMap<String, f64> = Default::default();
    let mut provider: std::collections::BTreeMap<String, f64> = Default::default();
    let mut key: std::collections::BTreeMap<String, f64> = Default::default();
    for row in &usage {
        if let Ok(i) = usize::try_from(row.day - first_day)
            && i < 30
        {
            cost[i] += row.cost_usd;
            calls[i] += row.calls;
        }
        *model.entry(row.model.clone()).or_default() += row.cost_usd;
        *provider.entry(row.provider.clone().unwrap_or_else(|| "-".into())).or_default() += row.cost_usd;
        *key.entry(row.api_key_id.as_ref().map_or_else(|| "-".into(), ToString::to_string)).or_default() +=
            row.cost_usd;
    }
    let day_label = |i: usize| {
        let day = first_day + i64::try_from(i).unwrap_or_default();
        chrono::DateTime::from_timestamp(day * 86_400, 0).map_or_else(String::new, |d| d.format("%Y-%m-%d").to_string())
    };
    let ranked = |map: std::collections::BTreeMap<String, f64>| {
        let mut items: Vec<_> = map.into_iter().collect();
        items.sort_by(|a, b| b.1.total_cmp(&a.1));
        items.truncate(10);
        bars(items.into_iter().map(|(name, v)| (name, v, money(v))).collect())
    };
    let view = OverviewView {
        page: Page::new(&signed, "overview"),
        cards,
        budget_percent: (budget.fraction * 100.0).round().clamp(0.0, 100.0) as u32,
        budget_state: format!("{:?}", budget.state).to_lowercase(),
        cost_days: bars(cost.iter().enumerate().map(|(i, c)| (day_label(i), *c, money(*c))).collect()),
        call_days: bars(calls.iter().enumerate().map(|(i, c)| (day_label(i), *c as f64, c.to_string())).collect()),
        run_days: bars(runs.iter().enumerate().map(|(i, c)| (day_label(i), *c as f64, c.to_string())).collect()),
        // Passed and refused on one scale, so their heights compare.
        verdict_days: {
            let most = actions.iter().chain(&refusals).copied().max().unwrap_or(0).max(1) as f64;
            let scaled = |counts: &[u64]| -> Vec<Bar> {
                counts
                    .iter()
                    .enumerate()
                    .map(|(i, c)| Bar {
                        label: day_label(i),
                        percent: ((*c as f64 / most) * 100.0).round() as u32,
                        value: c.to_string(),
                    })
                    .collect()
            };
            (scaled(&actions), scaled(&refusals))
        },
        breakdowns: vec![
            Breakdown { key: "overview.by_model", bars: ranked(model) },
            Breakdown { key: "overview.by_provider", bars: ranked(provider) },
            Breakdown { key: "overview.by_key", bars: ranked(key) },
        ],
        providers: provider_rows(runtime, t),
    };
    render(&view)
}

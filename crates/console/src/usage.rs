//! The usage page and its CSV export: what a tenant spent over the last days, by day, model,
//! provider, key and person, against the month's budget. Aggregated by the database (`Runtime::usage`
//! groups the cost records), one request per view.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use domain::Timestamp;
use domain::cost::UsageRow;
use serde::Deserialize;

use crate::extract::Query;
use crate::pages::{ConsoleError, Page, PageResult, api, money, render};
use crate::session::Signed;
use crate::state::ConsoleState;

const DAY: i64 = 86_400_000_000;

#[derive(Debug, Deserialize)]
pub struct UsageQuery {
    #[serde(default = "default_days")]
    days: u32,
}

fn default_days() -> u32 {
    30
}

/// One breakdown (by day, model, provider or key).
pub struct UsageSection {
    pub key: &'static str,
    pub lines: Vec<UsageLine>,
}

pub struct UsageLine {
    pub name: String,
    pub calls: u64,
    pub tokens: u64,
    pub cost: String,
}

#[derive(Template)]
#[template(path = "usage.html")]
struct UsageView {
    page: Page,
    days: u32,
    choices: Vec<u32>,
    total: UsageLine,
    sections: Vec<UsageSection>,
    budget_percent: u32,
    budget_state: String,
    budget_text: String,
}

/// The rows of the last `days` (UTC days, today included) a caller may see: members see the
/// spend of their own key only in the per-key column, like the API.
async fn rows(state: &ConsoleState, signed: &Signed, days: u32) -> Result<Vec<UsageRow>, ConsoleError> {
    let lang = signed.lang;
    if !(1..=366).contains(&days) {
        return Err(ConsoleError::Api(lang, gateway::ApiError::invalid("days", "days must be from 1 to 366")));
    }
    let now = Timestamp::now().as_micros();
    let since = Timestamp::from_micros(now - now.rem_euclid(DAY) - i64::from(days - 1) * DAY);
    state.runtime.usage(&signed.user.principal.tenant, since, Timestamp::from_micros(now + 1)).await.map_err(api(lang))
}

/// The names people are shown by: each web user's email (`user:<id>` → email); API keys
/// (`key:<id>`) are shown as they are.
async fn people(state: &ConsoleState, signed: &Signed) -> std::collections::HashMap<String, String> {
    let principal = &signed.user.principal;
    match state.runtime.web_users(&principal.tenant).await {
        Ok(users) => users.into_iter().map(|u| (format!("user:{}", u.user.id), u.email)).collect(),
        Err(error) => {
            tracing::warn!(%error, "could not read the tenant's people for the usage page");
            std::collections::HashMap::new()
        }
    }
}

fn day_of(day: i64) -> String {
    chrono::DateTime::from_timestamp(day * 86_400, 0)
        .map_or_else(|| day.to_string(), |d| d.format("%Y-%m-%d").to_string())
}

fn group(rows: &[UsageRow], key: impl Fn(&UsageRow) -> Option<String>) -> Vec<UsageLine> {
    let mut groups: std::collections::BTreeMap<String, (u64, u64, f64)> = Default::default();
    for row in rows {
        let Some(name) = key(row) else { continue };
        let entry = groups.entry(name).or_default();
        entry.0 += row.calls;
        entry.1 += row.input_tokens + row.output_tokens;
        entry.2 += row.cost_usd;
    }
    groups
        .into_iter()
        .map(|(name, (calls, tokens, cost))| UsageLine { name, calls, tokens, cost: money(cost) })
        .collect()
}

pub async fn usage(State(state): State<ConsoleState>, signed: Signed, Query(query): Query<UsageQuery>) -> PageResult {
    let rows = rows(&state, &signed, query.days).await?;
    let lang = signed.lang;
    let budget = state.runtime.budgets().status(&signed.user.principal.tenant).await.map_err(api(lang))?;
    let principal = &signed.user.principal;
    let own_key = |row: &UsageRow| {
        principal.is_admin() || (row.api_key_id.is_some() && row.api_key_id.as_ref() == principal.key_id())
    };
    let people = people(&state, &signed).await;
    let me = principal.subject();
    let person = |row: &UsageRow| match row.subject.as_deref() {
        Some(subject) if principal.is_admin() || subject == me => {
            Some(people.get(subject).cloned().unwrap_or_else(|| subject.to_owned()))
        }
        Some(_) => None,
        None => principal.is_admin().then(|| "-".to_owned()),
    };
    let total = group(&rows, |_| Some(String::new())).pop().unwrap_or(UsageLine {
        name: String::new(),
        calls: 0,
        tokens: 0,
        cost: money(0.0),
    });
    let view = UsageView {
        page: Page::new(&signed, "usage"),
        days: query.days,
        choices: vec![1, 7, 30, 90],
        total,
        sections: vec![
            UsageSection { key: "usage.by_day", lines: group(&rows, |r| Some(day_of(r.day))) },
            UsageSection { key: "usage.by_model", lines: group(&rows, |r| Some(r.model.clone())) },
            UsageSection {
                key: "usage.by_provider",
                lines: group(&rows, |r| Some(r.provider.clone().unwrap_or_else(|| "-".into()))),
            },
            UsageSection {
                key: "usage.by_key",
                lines: group(&rows, |r| {
                    own_key(r).then(|| r.api_key_id.as_ref().map_or_else(|| "-".into(), ToString::to_string))
                }),
            },
            UsageSection { key: "usage.by_person", lines: group(&rows, person) },
        ],
        budget_percent: (budget.fraction * 100.0).round().clamp(0.0, 100.0) as u32,
        budget_state: format!("{:?}", budget.state).to_lowercase(),
        budget_text: format!("{} / {}", money(budget.spent_usd), money(budget.limit_usd)),
    };
    render(&view)
}

/// One CSV field: quoted when it holds a separator, quote or line break, and never read as a
/// formula by a spreadsheet (a leading `=`, `+`, `-`, `@` is prefixed with `'`).
fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) { format!("'{value}") } else { value.to_owned() };
    if value.contains([',', '"', '\n', '\r']) { format!("\"{}\"", value.replace('"', "\"\"")) } else { value }
}

/// `GET /usage.csv?days=N`: every grouped row, for a spreadsheet.
pub async fn usage_csv(
    State(state): State<ConsoleState>,
    signed: Signed,
    Query(query): Query<UsageQuery>,
) -> Result<Response, ConsoleError> {
    let rows = rows(&state, &signed, query.days).await?;
    let principal = &signed.user.principal;
    let mut csv =
        String::from("day,model,provider,api_key_id,chain_id,subject,calls,input_tokens,output_tokens,cost_usd\n");
    let me = principal.subject();
    for row in &rows {
        let key = match &row.api_key_id {
            Some(id) if principal.is_admin() || Some(id) == principal.key_id() => id.to_string(),
            Some(_) => "other".to_owned(),
            None => String::new(),
        };
        let fields = [
            day_of(row.day),
            csv_field(&row.model),
            csv_field(row.provider.as_deref().unwrap_or_default()),
            key,
            row.chain_id.as_ref().map(ToString::to_string).unwrap_or_default(),
            match row.subject.as_deref() {
                Some(subject) if principal.is_admin() || subject == me => csv_field(subject),
                Some(_) => "other".to_owned(),
                None => String::new(),
            },
            row.calls.to_string(),
            row.input_tokens.to_string(),
            row.output_tokens.to_string(),
            format!("{:.6}", row.cost_usd),
        ];
        csv.push_str(&fields.join(","));
        csv.push('\n');
    }
    let filename = format!("attachment; filename=\"nexus-usage-{}-{}d.csv\"", principal.tenant, query.days);
    let disposition = HeaderValue::from_str(&filename).unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8")),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        csv,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn csv_fields_are_quoted_and_never_formulas() {
        assert_eq!(csv_field("gpt-4o"), "gpt-4o");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("-1"), "'-1");
    }
}

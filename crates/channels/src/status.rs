//! What both adapters show for a status command (`/status`, `/nexus status`): each provider's
//! breaker, the tenant's budget and the work waiting. `escape` makes a provider's name safe for
//! the platform's format.

use domain::TenantId;
use runtime::Runtime;

pub(crate) async fn lines(runtime: &Runtime, tenant: &TenantId, escape: fn(&str) -> String) -> Vec<String> {
    let mut lines = Vec::new();
    let providers = runtime.provider_health();
    if providers.is_empty() {
        lines.push("providers: —".to_owned());
    }
    for provider in providers {
        let mark = if provider.state.as_str() == "open" { "⛔" } else { "✅" };
        lines.push(format!("{mark} {} ({})", escape(&provider.name), provider.state.as_str()));
    }
    match runtime.budgets().status(tenant).await {
        Ok(budget) => lines.push(format!(
            "💶 ${:.2} / ${:.2} ({:.0}%) — {}",
            budget.spent_usd,
            budget.limit_usd,
            budget.fraction * 100.0,
            serde_json::to_value(budget.state).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
        )),
        Err(error) => tracing::warn!(%error, "could not read the budget for a status command"),
    }
    match runtime.overview(tenant).await {
        Ok(overview) => lines.push(format!(
            "⏳ runs today {} · approvals waiting {} · ledger queue {}",
            overview.runs_today,
            overview.approvals_waiting,
            runtime.ledger().queue_depth()
        )),
        Err(error) => tracing::warn!(%error, "could not read the queue for a status command"),
    }
    lines
}

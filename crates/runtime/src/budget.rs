//! Monthly budgets per tenant (by default $50, alert at 80%): a warning from the alert fraction,
//! `nexus/auto` stepping down a tier from 90%, and a refusal at 100% — for every route that
//! spends, gateway calls and agent runs alike.
//!
//! Spend is kept in memory per tenant and re-read from the cost records every
//! [`REFRESH_EVERY`] (so spend by other replicas and background work is seen), with this
//! process's own costs added as they happen. Only a tenant's first check waits for the
//! database; later refreshes run in the background while requests use the cached figure, and
//! never more than one at a time per tenant.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{Datelike as _, TimeZone as _, Utc};
use domain::TenantId;
use domain::Timestamp;
use domain::ports::{Store, StoreError};
use domain::tenant::{DEFAULT_BUDGET_ALERT_FRACTION, DEFAULT_BUDGET_USD};
use serde::Serialize;

use crate::auth::lock;

/// How often a tenant's spend is re-read from the database.
pub const REFRESH_EVERY: Duration = Duration::from_secs(5);
/// From this fraction on, `nexus/auto` picks a cheaper tier.
pub const DEGRADE_FRACTION: f64 = 0.9;

/// Where a tenant stands this month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetState {
    Ok,
    /// At or above the alert fraction.
    Warning,
    /// At or above 90%: automatic routing steps down a tier.
    Degraded,
    /// At or above 100%: calls that cost money are refused.
    Exhausted,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BudgetStatus {
    pub spent_usd: f64,
    pub limit_usd: f64,
    pub fraction: f64,
    pub state: BudgetState,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("monthly budget exhausted: spent ${spent:.4} of ${limit:.2}; raise the tenant's budget or wait for next month")]
pub struct BudgetExhausted {
    pub spent: f64,
    pub limit: f64,
}

struct Spend {
    month_start: Timestamp,
    limit_usd: f64,
    /// As last read from the database.
    stored: f64,
    /// Added by this process since that read.
    local: f64,
    read_at: Instant,
    warned: bool,
    /// A background refresh is under way.
    refreshing: bool,
}

pub struct Budgets {
    store: Arc<dyn Store>,
    /// The alert fraction and the limit of tenants without their own (`tenants.budget_usd`);
    /// changed live by the settings.
    defaults: std::sync::RwLock<BudgetDefaults>,
    spend: Arc<Mutex<HashMap<TenantId, Spend>>>,
}

impl Budgets {
    pub fn new(store: Arc<dyn Store>, default_limit: Option<f64>, alert_fraction: Option<f64>) -> Self {
        Self {
            store,
            defaults: std::sync::RwLock::new(BudgetDefaults::new(default_limit, alert_fraction)),
            spend: Arc::default(),
        }
    }

    fn defaults(&self) -> BudgetDefaults {
        *self.defaults.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Applies a new default limit and alert fraction: every tenant's standing is read again
    /// on its next check.
    pub fn set_defaults(&self, default_limit: Option<f64>, alert_fraction: Option<f64>) {
        *self.defaults.write().unwrap_or_else(std::sync::PoisonError::into_inner) =
            BudgetDefaults::new(default_limit, alert_fraction);
        lock(&self.spend).clear();
    }
}

#[derive(Debug, Clone, Copy)]
struct BudgetDefaults {
    alert_fraction: f64,
    limit: f64,
}

impl BudgetDefaults {
    fn new(limit: Option<f64>, alert_fraction: Option<f64>) -> Self {
        Self {
            alert_fraction: alert_fraction.unwrap_or(DEFAULT_BUDGET_ALERT_FRACTION),
            limit: limit.unwrap_or(DEFAULT_BUDGET_USD),
        }
    }
}

impl Budgets {
    /// Reads the tenant's limit and this month's spend from the database.
    async fn read(
        store: &dyn Store,
        default_limit: f64,
        tenant: &TenantId,
        month_start: Timestamp,
    ) -> Result<(f64, f64), StoreError> {
        let limit_usd = match store.tenant(tenant).await? {
            Some(t) if t.budget_usd > 0.0 && t.budget_usd != DEFAULT_BUDGET_USD => t.budget_usd,
            _ => default_limit,
        };
        let stored = store.tenant_month_spend(tenant, month_start).await?;
        Ok((limit_usd, stored))
    }

    /// The tenant's standing; reads the database at most every [`REFRESH_EVERY`].
    pub async fn status(&self, tenant: &TenantId) -> Result<BudgetStatus, StoreError> {
        let month_start = month_start(Utc::now());
        // Known this month: answer from memory, refreshing in the background when stale.
        let known = {
            let mut spend = lock(&self.spend);
            match spend.get_mut(tenant) {
                Some(s) if s.month_start == month_start => {
                    if s.read_at.elapsed() >= REFRESH_EVERY && !s.refreshing {
                        s.refreshing = true;
                        self.refresh_in_background(tenant.clone(), month_start);
                    }
                    true
                }
                _ => false,
            }
        };
        if !known {
            let (limit_usd, stored) =
                Self::read(self.store.as_ref(), self.defaults().limit, tenant, month_start).await?;
            let mut spend = lock(&self.spend);
            spend.insert(
                tenant.clone(),
                Spend {
                    month_start,
                    limit_usd,
                    stored,
                    local: 0.0,
                    read_at: Instant::now(),
                    warned: false,
                    refreshing: false,
                },
            );
        }
        let spend = lock(&self.spend);
        let s = spend.get(tenant).map_or((0.0, self.defaults().limit), |s| (s.stored + s.local, s.limit_usd));
        Ok(self.standing(s.0, s.1))
    }

    fn refresh_in_background(&self, tenant: TenantId, month_start: Timestamp) {
        let (store, spend, default_limit) = (self.store.clone(), self.spend.clone(), self.defaults().limit);
        crate::tasks::spawn("budget-refresh", async move {
            let started = Instant::now();
            let read = Self::read(store.as_ref(), default_limit, &tenant, month_start).await;
            let mut spend = lock(&spend);
            let Some(s) = spend.get_mut(&tenant) else { return };
            s.refreshing = false;
            match read {
                // Costs added while the query ran and not yet committed are counted again by
                // the next refresh, at most REFRESH_EVERY later.
                Ok((limit_usd, stored)) if s.month_start == month_start => {
                    s.limit_usd = limit_usd;
                    s.stored = stored;
                    s.local = 0.0;
                    s.read_at = started;
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, %tenant, "could not refresh the budget; using the cached spend"),
            }
        });
    }

    fn standing(&self, spent_usd: f64, limit_usd: f64) -> BudgetStatus {
        let fraction = if limit_usd > 0.0 { spent_usd / limit_usd } else { f64::INFINITY };
        let state = if fraction >= 1.0 {
            BudgetState::Exhausted
        } else if fraction >= DEGRADE_FRACTION {
            BudgetState::Degraded
        } else if fraction >= self.defaults().alert_fraction {
            BudgetState::Warning
        } else {
            BudgetState::Ok
        };
        BudgetStatus { spent_usd, limit_usd, fraction, state }
    }

    /// Refuses when the budget is spent.
    pub async fn check(&self, tenant: &TenantId) -> Result<BudgetStatus, BudgetCheckError> {
        let status = self.status(tenant).await?;
        if status.state == BudgetState::Exhausted {
            return Err(BudgetCheckError::Exhausted(BudgetExhausted {
                spent: status.spent_usd,
                limit: status.limit_usd,
            }));
        }
        Ok(status)
    }

    /// Adds a cost this process just recorded. Returns true the first time this month the
    /// tenant crosses the alert fraction (the caller publishes the warning).
    pub fn record(&self, tenant: &TenantId, cost_usd: f64) -> bool {
        let mut spend = lock(&self.spend);
        let Some(s) = spend.get_mut(tenant) else { return false };
        s.local += cost_usd;
        let fraction = if s.limit_usd > 0.0 { (s.stored + s.local) / s.limit_usd } else { f64::INFINITY };
        if fraction >= self.defaults().alert_fraction && !s.warned {
            s.warned = true;
            return true;
        }
        false
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum BudgetCheckError {
    #[error(transparent)]
    Exhausted(BudgetExhausted),
    #[error("could not read the budget: {0}")]
    Store(#[from] StoreError),
}

/// Midnight UTC on the first day of `now`'s month.
pub fn month_start(now: chrono::DateTime<Utc>) -> Timestamp {
    let first = Utc.with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0).single().unwrap_or(now);
    Timestamp::from_micros(first.timestamp_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_start_at_midnight_utc_on_the_first() {
        let at = Utc.with_ymd_and_hms(2026, 11, 21, 7, 30, 0).single().expect("date");
        let start = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).single().expect("date");
        assert_eq!(month_start(at), Timestamp::from_micros(start.timestamp_micros()));
    }
}

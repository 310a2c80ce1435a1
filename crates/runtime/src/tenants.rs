//! Tenants, personas and spending as front-ends read them. Front-ends never reach the store;
//! what they may read of it is a method here (writes that must be in the ledger live with
//! their ledger entry, e.g. `Runtime::add_persona`).

use domain::cost::UsageRow;
use domain::persona::PersonaContract;
use domain::ports::StoreError;
use domain::tenant::Tenant;
use domain::{PersonaId, TenantId, Timestamp};

use crate::Runtime;

impl Runtime {
    /// Every tenant (an operator's view).
    pub async fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        self.store().tenants().await
    }

    /// A tenant's personas.
    pub async fn personas(&self, tenant: &TenantId) -> Result<Vec<PersonaContract>, StoreError> {
        self.store().personas(tenant).await
    }

    /// One persona of a tenant, if it exists.
    pub async fn persona(&self, tenant: &TenantId, id: &PersonaId) -> Result<Option<PersonaContract>, StoreError> {
        self.store().persona(tenant, id).await
    }

    /// Today's (UTC) and this month's activity of a tenant, counted by the database.
    pub async fn overview(&self, tenant: &TenantId) -> Result<domain::cost::Overview, StoreError> {
        let now = Timestamp::now();
        const DAY: i64 = 86_400_000_000;
        let day_start = Timestamp::from_micros(now.as_micros() - now.as_micros().rem_euclid(DAY));
        self.store().overview(tenant, day_start, now.month_start()).await
    }

    /// Runs, sealed actions and gate refusals per day since `since`.
    pub async fn activity(
        &self,
        tenant: &TenantId,
        since: Timestamp,
    ) -> Result<Vec<domain::cost::DayActivity>, StoreError> {
        self.store().activity(tenant, since).await
    }

    /// A tenant, if it exists (its budget, its name).
    pub async fn tenant(&self, tenant: &TenantId) -> Result<Option<Tenant>, StoreError> {
        self.store().tenant(tenant).await
    }

    /// What a tenant spent in `[since, until)`, by day, model, provider, key and chain.
    pub async fn usage(
        &self,
        tenant: &TenantId,
        since: Timestamp,
        until: Timestamp,
    ) -> Result<Vec<UsageRow>, StoreError> {
        self.store().usage(tenant, since, until).await
    }
}

//! `nexus seed`: the demo tenant and the five default personas, created once. Every creation is
//! an admin-change entry in the tenant's ledger.

use domain::TenantId;
use domain::ledger::{EntryDraft, EntryKind};
use domain::persona::default_personas;
use domain::tenant::Tenant;
use serde_json::json;

use crate::{LedgerError, Runtime};

/// The id of the demo tenant.
pub const DEMO_TENANT: &str = "demo";

/// What seeding changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedReport {
    pub tenant: TenantId,
    pub tenant_created: bool,
    pub personas_created: Vec<String>,
}

impl Runtime {
    /// Creates the demo tenant and its default personas where missing. Running it again changes
    /// nothing.
    pub async fn seed_demo(&self) -> Result<SeedReport, LedgerError> {
        let tenant_id = TenantId::parse(DEMO_TENANT)
            .map_err(|e| LedgerError::Store(domain::ports::StoreError::Backend(format!("demo tenant id: {e}"))))?;
        let store = self.store();
        let tenant_created = store.insert_tenant_if_missing(&Tenant::new(tenant_id.clone(), "Demo")).await?;
        if tenant_created {
            self.admin_change(&tenant_id, json!({"action": "tenant.created", "tenant": DEMO_TENANT})).await?;
        }
        let mut personas_created = Vec::new();
        for persona in default_personas(&tenant_id) {
            if store.persona_by_name(&tenant_id, &persona.name).await?.is_some() {
                continue;
            }
            match store.insert_persona(&persona).await {
                Ok(()) => {}
                // Another `nexus seed` got there first: that is the outcome we wanted.
                Err(domain::ports::StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
            self.admin_change(
                &tenant_id,
                json!({
                    "action": "persona.created",
                    "persona_id": persona.id.as_str(),
                    "name": persona.name,
                    "version": persona.version,
                }),
            )
            .await?;
            personas_created.push(persona.name);
        }
        Ok(SeedReport { tenant: tenant_id, tenant_created, personas_created })
    }

    async fn admin_change(&self, tenant: &TenantId, payload: serde_json::Value) -> Result<(), LedgerError> {
        self.ledger().append(tenant, EntryDraft { kind: EntryKind::AdminChange, chain_id: None, payload }).await?;
        Ok(())
    }
}

impl Runtime {
    /// Adds a persona to a tenant (creating the tenant if needed); the change is an admin entry
    /// in the tenant's ledger.
    pub async fn add_persona(&self, persona: &domain::persona::PersonaContract) -> Result<(), LedgerError> {
        let tenant = &persona.tenant_id;
        self.store().insert_tenant_if_missing(&Tenant::new(tenant.clone(), tenant.as_str())).await?;
        self.store().insert_persona(persona).await?;
        self.admin_change(
            tenant,
            json!({
                "action": "persona.created", "persona_id": persona.id.as_str(), "name": persona.name,
                "version": persona.version, "allowed_tools": persona.allowed_tools,
                "resource_scopes": persona.resource_scopes, "risk_tolerance": persona.risk_tolerance.as_str(),
            }),
        )
        .await
    }
}

impl Runtime {
    /// Replaces a persona's contract (bumping its version); the change is an admin entry.
    /// Returns the new version, or `None` if the tenant has no such persona.
    pub async fn update_persona(&self, persona: &domain::persona::PersonaContract) -> Result<Option<u32>, LedgerError> {
        let Some(version) = self.store().update_persona(persona).await? else { return Ok(None) };
        self.admin_change(
            &persona.tenant_id,
            json!({
                "action": "persona.updated", "persona_id": persona.id.as_str(), "name": persona.name,
                "version": version, "allowed_tools": persona.allowed_tools,
                "resource_scopes": persona.resource_scopes, "risk_tolerance": persona.risk_tolerance.as_str(),
                "is_active": persona.is_active,
            }),
        )
        .await?;
        Ok(Some(version))
    }
}

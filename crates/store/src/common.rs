//! The queries both backends share. SQL here is portable between SQLite and PostgreSQL
//! (`$n` placeholders, `ON CONFLICT`, `RETURNING`, integers for times), so one macro
//! implements the ports for both pool types; only what truly differs (bulk ledger inserts,
//! integrity checks, connecting, claiming a job under a per-tenant cap) lives in `sqlite.rs`
//! and `postgres.rs`.

/// Implements every port except `Store` itself for `$store`, a [`SqlBackend`]: the queries
/// below and those of `common_agent`, `common_log`, `common_knowledge`, `common_reports`,
/// `common_web`, `common_feed`, `common_chat`, `common_channels`, `common_jobs`, `common_settings`, `common_plugins`, `common_memory` and `common_watchers` (which call
/// one another's inherent methods, so they are only ever expanded together).
///
/// [`SqlBackend`]: crate::backend::SqlBackend
macro_rules! impl_store {
    ($store:ident) => {
        const _: () = $crate::backend::assert_backend::<$store>();
        $crate::common_agent::impl_agent_ports!($store);
        $crate::common_log::impl_log_heads!($store);
        $crate::common_knowledge::impl_knowledge_port!($store);
        $crate::common_reports::impl_report_queries!($store);
        $crate::common_web::impl_web_port!($store);
        $crate::common_feed::impl_feed_port!($store);
        $crate::common_chat::impl_chat_port!($store);
        $crate::common_channels::impl_channel_port!($store);
        $crate::common_jobs::impl_job_port!($store);
        $crate::common_settings::impl_settings_port!($store);
        $crate::common_plugins::impl_plugins_port!($store);
        $crate::common_memory::impl_memory_port!($store);
        $crate::common_watchers::impl_watcher_port!($store);
        $crate::common::impl_shared_ports!($store);
    };
}

/// The tenant, user, key, persona, ledger and cost ports; part of [`impl_store!`].
macro_rules! impl_shared_ports {
    ($store:ident) => {
        use async_trait::async_trait;
        use domain::cost::CostRecord;
        use domain::ledger::{LedgerRecord, StoredCheckpoint};
        use domain::persona::PersonaContract;
        use domain::ports::{ApiKeyStore, CostStore, LedgerStore, PersonaStore, StoreError, TenantStore, UserStore};
        use domain::tenant::{ApiKey, Tenant, User};
        use domain::{ApiKeyId, ChainId, PersonaId, TenantId, Timestamp, UserId};
        use $crate::error::{classify, classify_insert};
        use $crate::rows::{self, i64_of, list_json};

        #[async_trait]
        impl TenantStore for $store {
            async fn insert_tenant_if_missing(&self, tenant: &Tenant) -> Result<bool, StoreError> {
                let sql = "INSERT INTO tenants (id, name, budget_usd, settings, created_at, is_active) \
                           VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING";
                let done = sqlx::query(sql)
                    .bind(tenant.id.as_str())
                    .bind(&tenant.name)
                    .bind(tenant.budget_usd)
                    .bind(tenant.settings.to_string())
                    .bind(tenant.created_at.as_micros())
                    .bind(tenant.is_active)
                    .execute(self.pool())
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                Ok(done.rows_affected() == 1)
            }

            async fn tenant(&self, id: &TenantId) -> Result<Option<Tenant>, StoreError> {
                let sql = format!("SELECT {} FROM tenants WHERE id = $1", rows::TENANT_COLUMNS);
                let row: Option<rows::TenantRow> = sqlx::query_as(&sql)
                    .bind(id.as_str())
                    .fetch_optional(self.pool())
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                row.map(rows::tenant).transpose()
            }

            async fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
                let sql = format!("SELECT {} FROM tenants ORDER BY id", rows::TENANT_COLUMNS);
                let found: Vec<rows::TenantRow> =
                    sqlx::query_as(&sql).fetch_all(self.pool()).await.map_err(|e| classify(self.target(), e))?;
                found.into_iter().map(rows::tenant).collect()
            }
        }

        #[async_trait]
        impl UserStore for $store {
            async fn insert_user(&self, user: &User) -> Result<(), StoreError> {
                sqlx::query($crate::common_web::INSERT_USER_SQL)
                    .bind(user.tenant_id.as_str())
                    .bind(user.id.as_str())
                    .bind(&user.name)
                    .bind(i64::from(user.level.get()))
                    .bind(user.role.as_str())
                    .bind(user.created_at.as_micros())
                    .execute(self.pool())
                    .await
                    .map_err(|e| classify_insert(self.target(), || format!("user {}", user.id), e))?;
                Ok(())
            }

            async fn user(&self, tenant: &TenantId, id: &UserId) -> Result<Option<User>, StoreError> {
                let sql = format!("SELECT {} FROM users WHERE tenant_id = $1 AND id = $2", rows::USER_COLUMNS);
                let row: Option<rows::UserRow> = sqlx::query_as(&sql)
                    .bind(tenant.as_str())
                    .bind(id.as_str())
                    .fetch_optional(self.pool())
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                row.map(rows::user).transpose()
            }

            async fn users(&self, tenant: &TenantId) -> Result<Vec<User>, StoreError> {
                let sql =
                    format!("SELECT {} FROM users WHERE tenant_id = $1 ORDER BY created_at, id", rows::USER_COLUMNS);
                let found: Vec<rows::UserRow> = sqlx::query_as(&sql)
                    .bind(tenant.as_str())
                    .fetch_all(self.pool())
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                found.into_iter().map(rows::user).collect()
            }
        }

        #[async_trait]
        impl ApiKeyStore for $store {
            async fn insert_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
                let sql = format!(
                    "INSERT INTO api_keys ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                    rows::API_KEY_COLUMNS
                );
                sqlx::query(&sql)
                    .bind(key.id.as_str())
                    .bind(key.tenant_id.as_str())
                    .bind(key.user_id.as_ref().map(|u| u.as_str().to_owned()))
                    .bind(&key.name)
                    .bind(&key.key_hash)
                    .bind(&key.display_prefix)
                    .bind(i64::from(key.access_level.get()))
                    .bind(key.role.as_str())
                    .bind(key.created_at.as_micros())
                    .bind(key.last_used_at.map(Timestamp::as_micros))
                    .bind(key.revoked_at.map(Timestamp::as_micros))
                    .execute(self.pool())
                    .await
                    .map_err(|e| classify_insert(self.target(), || format!("api key {}", key.id), e))?;
                Ok(())
            }

            async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKey>, StoreError> {
                let sql = format!(
                    "SELECT {} FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
                    rows::API_KEY_COLUMNS
                );
                let row: Option<rows::ApiKeyRow> = sqlx::query_as(&sql)
                    .bind(key_hash)
                    .fetch_optional(self.pool())
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                row.map(rows::api_key).transpose()
            }

            async fn api_keys(&self, tenant: &TenantId) -> Result<Vec<ApiKey>, StoreError> {
                let sql = format!(
                    "SELECT {} FROM api_keys WHERE tenant_id = $1 ORDER BY created_at, id",
                    rows::API_KEY_COLUMNS
                );
                let found: Vec<rows::ApiKeyRow> = sqlx::query_as(&sql)
                    .bind(tenant.as_str())
                    .fetch_all(self.pool())
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                found.into_iter().map(rows::api_key).collect()
            }

            async fn revoke_api_key(
                &self,
                tenant: &TenantId,
                id: &ApiKeyId,
                at: Timestamp,
            ) -> Result<bool, StoreError> {
                let sql = "UPDATE api_keys SET revoked_at = $3 \
                           WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL";
                let done = sqlx::query(sql)
                    .bind(tenant.as_str())
                    .bind(id.as_str())
                    .bind(at.as_micros())
                    .execute(self.pool())
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                Ok(done.rows_affected() == 1)
            }

            async fn api_keys_revoked_since(
                &self,
                since: Timestamp,
            ) -> Result<Vec<(ApiKeyId, Timestamp)>, StoreError> {
                let sql = "SELECT id, revoked_at FROM api_keys WHERE revoked_at >= $1 ORDER BY revoked_at, id";
                let found: Vec<(String, i64)> = sqlx::query_as(sql)
                    .bind(since.as_micros())
                    .fetch_all(self.pool())
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                found
                    .into_iter()
                    .map(|(id, at)| {
                        let id = ApiKeyId::parse(id)
                            .map_err(|e| StoreError::InvalidRow { what: "api key id", reason: e.to_string() })?;
                        Ok((id, Timestamp::from_micros(at)))
                    })
                    .collect()
            }

            async fn touch_api_keys(&self, uses: &[(TenantId, ApiKeyId, Timestamp)]) -> Result<(), StoreError> {
                let sql = "UPDATE api_keys SET last_used_at = $3 WHERE tenant_id = $1 AND id = $2 \
                           AND (last_used_at IS NULL OR last_used_at < $3)";
                let mut tx = self.pool().begin().await.map_err(|e| classify(self.target(), e))?;
                for (tenant, id, at) in uses {
                    sqlx::query(sql)
                        .bind(tenant.as_str())
                        .bind(id.as_str())
                        .bind(at.as_micros())
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                }
                tx.commit().await.map_err(|e| classify(self.target(), e))
            }
        }

        #[async_trait]
        impl PersonaStore for $store {
            async fn insert_persona(&self, p: &PersonaContract) -> Result<(), StoreError> {
                let sql = format!(
                    "INSERT INTO personas ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
                    rows::PERSONA_COLUMNS
                );
                sqlx::query(&sql)
                    .bind(p.tenant_id.as_str())
                    .bind(p.id.as_str())
                    .bind(&p.name)
                    .bind(&p.description)
                    .bind(list_json(&p.allowed_tools))
                    .bind(list_json(&p.resource_scopes))
                    .bind(list_json(&p.intent_patterns))
                    .bind(i64::from(p.max_ttl_seconds))
                    .bind(p.risk_tolerance.as_str())
                    .bind(p.trust_tier.as_str())
                    .bind(p.intent_threshold)
                    .bind(i64::from(p.version))
                    .bind(p.is_active)
                    .bind(p.created_at.as_micros())
                    .bind(p.on_low_intent.as_str())
                    .execute(self.pool())
                    .await
                    .map_err(|e| classify_insert(self.target(), || format!("persona {:?}", p.name), e))?;
                Ok(())
            }

            async fn update_persona(&self, p: &PersonaContract) -> Result<Option<u32>, StoreError> {
                let sql = "UPDATE personas SET name = $3, description = $4, allowed_tools = $5, \
                           resource_scopes = $6, intent_patterns = $7, max_ttl_seconds = $8, \
                           risk_tolerance = $9, trust_tier = $10, intent_threshold = $11, is_active = $12, \
                           on_low_intent = $13, version = version + 1 \
                           WHERE tenant_id = $1 AND id = $2 RETURNING version";
                let version: Option<i64> = sqlx::query_scalar(sql)
                    .bind(p.tenant_id.as_str())
                    .bind(p.id.as_str())
                    .bind(&p.name)
                    .bind(&p.description)
                    .bind(list_json(&p.allowed_tools))
                    .bind(list_json(&p.resource_scopes))
                    .bind(list_json(&p.intent_patterns))
                    .bind(i64::from(p.max_ttl_seconds))
                    .bind(p.risk_tolerance.as_str())
                    .bind(p.trust_tier.as_str())
                    .bind(p.intent_threshold)
                    .bind(p.is_active)
                    .bind(p.on_low_intent.as_str())
                    .fetch_optional(self.pool())
                    .await
                    .map_err(|e| classify_insert(self.target(), || format!("persona {:?}", p.name), e))?;
                version
                    .map(|v| {
                        u32::try_from(v)
                            .map_err(|_| StoreError::InvalidRow { what: "persona version", reason: v.to_string() })
                    })
                    .transpose()
            }

            async fn persona(&self, tenant: &TenantId, id: &PersonaId) -> Result<Option<PersonaContract>, StoreError> {
                let sql = format!("SELECT {} FROM personas WHERE tenant_id = $1 AND id = $2", rows::PERSONA_COLUMNS);
                let row: Option<rows::PersonaRow> = sqlx::query_as(&sql)
                    .bind(tenant.as_str())
                    .bind(id.as_str())
                    .fetch_optional(self.pool())
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                row.map(rows::persona).transpose()
            }

            async fn persona_by_name(
                &self,
                tenant: &TenantId,
                name: &str,
            ) -> Result<Option<PersonaContract>, StoreError> {
                let sql = format!("SELECT {} FROM personas WHERE tenant_id = $1 AND name = $2", rows::PERSONA_COLUMNS);
                let row: Option<rows::PersonaRow> = sqlx::query_as(&sql)
                    .bind(tenant.as_str())
                    .bind(name)
                    .fetch_optional(self.pool())
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                row.map(rows::persona).transpose()
            }

            async fn personas(&self, tenant: &TenantId) -> Result<Vec<PersonaContract>, StoreError> {
                let sql = format!(
                    "SELECT {} FROM personas WHERE tenant_id = $1 ORDER BY created_at, name",
                    rows::PERSONA_COLUMNS
                );
                let found: Vec<rows::PersonaRow> = sqlx::query_as(&sql)
                    .bind(tenant.as_str())
                    .fetch_all(self.pool())
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                found.into_iter().map(rows::persona).collect()
            }
        }

        #[async_trait]
        impl LedgerStore for $store {
            async fn append_locked(
                &self,
                locks: &[domain::ledger::LogLock],
                stage: &domain::ports::StageFn<'_>,
                companions: &domain::ports::Companions,
            ) -> Result<Option<Vec<domain::ledger::LogWrite>>, StoreError> {
                self.append_locked_impl(locks, stage, companions).await
            }

            async fn log_head(&self, tenant: &TenantId) -> Result<Option<domain::ledger::LogHead>, StoreError> {
                self.log_head_impl(tenant).await
            }

            async fn tree_hashes(
                &self,
                tenant: &TenantId,
                level: u8,
                from: u64,
                to: u64,
            ) -> Result<Vec<[u8; 32]>, StoreError> {
                self.tree_hashes_impl(tenant, level, from, to).await
            }

            async fn repair_log_head(
                &self,
                tenant: &TenantId,
                expected_size: u64,
                head: &domain::ledger::LogHead,
                nodes: &[domain::ledger::TreeNode],
            ) -> Result<(), StoreError> {
                self.repair_log_head_impl(tenant, expected_size, head, nodes).await
            }

            async fn append_with(
                &self,
                records: &[LedgerRecord],
                companions: &domain::ports::Companions,
            ) -> Result<(), StoreError> {
                if records.is_empty() && companions.is_empty() {
                    return Ok(());
                }
                self.insert_ledger_rows(records, companions).await
            }

            async fn ledger_size(&self, tenant: &TenantId) -> Result<u64, StoreError> {
                let next: Option<i64> =
                    sqlx::query_scalar("SELECT MAX(idx) + 1 FROM ledger_entries WHERE tenant_id = $1")
                        .bind(tenant.as_str())
                        .fetch_one(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                Ok(next.map_or(0, |n| u64::try_from(n).unwrap_or(0)))
            }

            async fn records(&self, tenant: &TenantId, from: u64, limit: u32) -> Result<Vec<LedgerRecord>, StoreError> {
                let sql = format!(
                    "SELECT {} FROM ledger_entries WHERE tenant_id = $1 AND idx >= $2 ORDER BY idx LIMIT $3",
                    rows::LEDGER_COLUMNS
                );
                let found: Vec<rows::LedgerRow> = sqlx::query_as(&sql)
                    .bind(tenant.as_str())
                    .bind(i64_of(from))
                    .bind(i64::from(limit))
                    .fetch_all(self.pool())
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                found.into_iter().map(rows::ledger).collect()
            }

            async fn records_page(
                &self,
                tenant: &TenantId,
                filter: &domain::ports::RecordFilter,
                limit: u32,
            ) -> Result<Vec<LedgerRecord>, StoreError> {
                self.filtered_records(tenant, filter, limit).await
            }

            async fn record(&self, tenant: &TenantId, index: u64) -> Result<Option<LedgerRecord>, StoreError> {
                let sql =
                    format!("SELECT {} FROM ledger_entries WHERE tenant_id = $1 AND idx = $2", rows::LEDGER_COLUMNS);
                let row: Option<rows::LedgerRow> = sqlx::query_as(&sql)
                    .bind(tenant.as_str())
                    .bind(i64_of(index))
                    .fetch_optional(self.pool())
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                row.map(rows::ledger).transpose()
            }

            async fn chain_records(&self, tenant: &TenantId, chain: &ChainId) -> Result<Vec<LedgerRecord>, StoreError> {
                let sql = format!(
                    "SELECT {} FROM ledger_entries WHERE tenant_id = $1 AND chain_id = $2 ORDER BY idx",
                    rows::LEDGER_COLUMNS
                );
                let found: Vec<rows::LedgerRow> = sqlx::query_as(&sql)
                    .bind(tenant.as_str())
                    .bind(chain.as_str())
                    .fetch_all(self.pool())
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                found.into_iter().map(rows::ledger).collect()
            }

            async fn leaf_hashes(&self, tenant: &TenantId) -> Result<Vec<[u8; 32]>, StoreError> {
                self.tree_hashes_impl(tenant, 0, 0, u64::MAX).await
            }

            async fn last_fingerprint(
                &self,
                tenant: &TenantId,
                chain: Option<&ChainId>,
            ) -> Result<Option<String>, StoreError> {
                use $crate::common_log::{LAST_IN_CHAIN_SQL, LAST_OUTSIDE_CHAINS_SQL};
                let query = match chain {
                    Some(chain) => sqlx::query_scalar(LAST_IN_CHAIN_SQL).bind(tenant.as_str()).bind(chain.as_str()),
                    None => sqlx::query_scalar(LAST_OUTSIDE_CHAINS_SQL).bind(tenant.as_str()),
                };
                query.fetch_optional(self.pool()).await.map_err(|e| classify(self.target(), e))
            }

            async fn ledger_tenants(&self) -> Result<Vec<TenantId>, StoreError> {
                let found: Vec<String> = sqlx::query_scalar(
                    "SELECT DISTINCT tenant_id FROM ledger_entries \
                     UNION SELECT DISTINCT tenant_id FROM ledger_checkpoints ORDER BY 1",
                )
                .fetch_all(self.pool())
                .await
                .map_err(|e| classify(self.target(), e))?;
                found
                    .into_iter()
                    .map(|t| {
                        TenantId::parse(t)
                            .map_err(|e| StoreError::InvalidRow { what: "ledger tenant", reason: e.to_string() })
                    })
                    .collect()
            }

            async fn insert_checkpoint(&self, c: &StoredCheckpoint) -> Result<(), StoreError> {
                let sql = format!(
                    "INSERT INTO ledger_checkpoints ({}) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                    rows::CHECKPOINT_COLUMNS
                );
                sqlx::query(&sql)
                    .bind(c.tenant_id.as_str())
                    .bind(i64_of(c.size))
                    .bind(c.root_hash.to_vec())
                    .bind(&c.signed_note)
                    .bind(c.created_at.as_micros())
                    .execute(self.pool())
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                Ok(())
            }

            async fn latest_checkpoint(&self, tenant: &TenantId) -> Result<Option<StoredCheckpoint>, StoreError> {
                let sql = format!(
                    "SELECT {} FROM ledger_checkpoints WHERE tenant_id = $1 ORDER BY size DESC LIMIT 1",
                    rows::CHECKPOINT_COLUMNS
                );
                let row: Option<rows::CheckpointRow> = sqlx::query_as(&sql)
                    .bind(tenant.as_str())
                    .fetch_optional(self.pool())
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                row.map(rows::checkpoint).transpose()
            }

            async fn checkpoints(&self, tenant: &TenantId) -> Result<Vec<StoredCheckpoint>, StoreError> {
                let sql = format!(
                    "SELECT {} FROM ledger_checkpoints WHERE tenant_id = $1 ORDER BY size",
                    rows::CHECKPOINT_COLUMNS
                );
                let found: Vec<rows::CheckpointRow> = sqlx::query_as(&sql)
                    .bind(tenant.as_str())
                    .fetch_all(self.pool())
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                found.into_iter().map(rows::checkpoint).collect()
            }
        }

        #[async_trait]
        impl CostStore for $store {
            async fn overview(
                &self,
                tenant: &TenantId,
                day_start: Timestamp,
                month_start: Timestamp,
            ) -> Result<domain::cost::Overview, StoreError> {
                self.overview_counts(tenant, day_start, month_start).await
            }

            async fn activity(
                &self,
                tenant: &TenantId,
                since: Timestamp,
            ) -> Result<Vec<domain::cost::DayActivity>, StoreError> {
                self.activity_by_day(tenant, since).await
            }

            async fn insert_cost(&self, cost: &CostRecord) -> Result<(), StoreError> {
                // The same rows a ledger batch writes for a cost: the record and the month's total.
                let companions = domain::ports::Companions { costs: vec![cost.clone()], ..Default::default() };
                let mut script = $crate::script::Script::new(Self::JOIN_STATEMENTS);
                Self::stage_companions(&mut script, &companions);
                let mut tx = self.pool().begin().await.map_err(|e| classify(self.target(), e))?;
                self.run_script(&mut tx, script, &|| format!("cost record of tenant {}", cost.tenant_id)).await?;
                tx.commit().await.map_err(|e| classify(self.target(), e))
            }

            async fn tenant_month_spend(&self, tenant: &TenantId, month: Timestamp) -> Result<f64, StoreError> {
                let total: Option<f64> =
                    sqlx::query_scalar("SELECT cost_usd FROM tenant_spend WHERE tenant_id = $1 AND month = $2")
                        .bind(tenant.as_str())
                        .bind(month.as_micros())
                        .fetch_optional(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                Ok(total.unwrap_or(0.0))
            }

            async fn tenant_cost_since(&self, tenant: &TenantId, since: Timestamp) -> Result<f64, StoreError> {
                let total: Option<f64> =
                    sqlx::query_scalar("SELECT SUM(cost_usd) FROM cost_records WHERE tenant_id = $1 AND ts >= $2")
                        .bind(tenant.as_str())
                        .bind(since.as_micros())
                        .fetch_one(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                Ok(total.unwrap_or(0.0))
            }

            async fn usage(
                &self,
                tenant: &TenantId,
                since: Timestamp,
                until: Timestamp,
            ) -> Result<Vec<domain::cost::UsageRow>, StoreError> {
                self.usage_rows(tenant, since, until).await
            }
        }
    };
}

pub(crate) use {impl_shared_ports, impl_store};

//! Shared SQL for the agent's ports (runs, approvals, drift counts), implemented for both pool
//! types by one macro, in a child module of the backend so its imports stay separate.

/// Inserts or replaces a run's state.
pub(crate) const SAVE_RUN_SQL: &str = "INSERT INTO runs (tenant_id, chain_id, task, status, state, created_at, updated_at, owner, personas) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (tenant_id, chain_id) DO UPDATE SET status = excluded.status, \
     state = excluded.state, updated_at = excluded.updated_at, owner = excluded.owner, personas = excluded.personas";
/// Stores (or replaces) a run's context.
pub(crate) const SAVE_RUN_CONTEXT_SQL: &str = "INSERT INTO run_contexts (tenant_id, chain_id, context) VALUES ($1, $2, $3) \
     ON CONFLICT (tenant_id, chain_id) DO UPDATE SET context = excluded.context";
/// Counts one more occurrence of an action fingerprint.
pub(crate) const RECORD_ACTION_SQL: &str = "INSERT INTO action_counts (tenant_id, persona, tool, fingerprint, count) \
     VALUES ($1, $2, $3, $4, 1) ON CONFLICT (tenant_id, persona, tool, fingerprint) \
     DO UPDATE SET count = action_counts.count + 1";

/// Cost records stored per statement at most (eleven placeholders each; a power of two, see
/// `rows::power_of_two_runs`, which says why the most is kept small).
pub(crate) const COSTS_PER_STATEMENT: usize = 64;

/// Stores `rows` cost records in one statement, placeholders numbered in order.
pub(crate) fn insert_costs_sql(rows: usize) -> String {
    crate::rows::values_sql(
        "INSERT INTO cost_records \
         (tenant_id, chain_id, seal_id, api_key_id, provider, model, input_tokens, output_tokens, cost_usd, ts, subject) \
         VALUES ",
        11,
        rows,
        "",
    )
}

/// Adds to a tenant's running total for a month.
pub(crate) const ADD_SPEND_SQL: &str = "INSERT INTO tenant_spend (tenant_id, month, cost_usd) VALUES ($1, $2, $3) \
     ON CONFLICT (tenant_id, month) DO UPDATE SET cost_usd = tenant_spend.cost_usd + excluded.cost_usd";

/// Cost records summed per (tenant, month), for the running totals.
pub(crate) fn spend_by_month(costs: &[domain::cost::CostRecord]) -> Vec<(&str, i64, f64)> {
    let mut totals: Vec<(&str, i64, f64)> = Vec::new();
    for cost in costs {
        let month = cost.timestamp.month_start().as_micros();
        match totals.iter_mut().find(|(t, m, _)| *t == cost.tenant_id.as_str() && *m == month) {
            Some(total) => total.2 += cost.cost_usd,
            None => totals.push((cost.tenant_id.as_str(), month, cost.cost_usd)),
        }
    }
    totals
}

macro_rules! impl_agent_ports {
    ($store:ident) => {
        mod agent_ports {
            use async_trait::async_trait;
            use domain::agent::{ApprovalStatus, ChainStatus};
            use domain::ports::{
                Approval, ApprovalStore, Companions, DriftStore, RunFilter, RunStore, StoreError, StoredRun,
            };
            use domain::{ChainId, TenantId, Timestamp};

            use super::$store;
            use $crate::backend::SqlBackend;

            type Db = <$store as SqlBackend>::Db;
            use $crate::agent_rows::{self, APPROVAL_COLUMNS, RUN_COLUMNS};
            use $crate::common_agent::{
                ADD_SPEND_SQL, COSTS_PER_STATEMENT, RECORD_ACTION_SQL, SAVE_RUN_CONTEXT_SQL, SAVE_RUN_SQL,
                insert_costs_sql, spend_by_month,
            };
            use $crate::error::{classify, classify_insert};
            use $crate::script::Script;

            impl $store {
                /// Writes a run's row, and its context when it carries one (before the row: a
                /// stored state never lacks the context it needs).
                fn stage_run<'q>(script: &mut Script<'q, Db>, run: &'q StoredRun) {
                    if let Some(context) = &run.context {
                        script
                            .statement(SAVE_RUN_CONTEXT_SQL)
                            .bind(run.tenant_id.as_str())
                            .bind(run.chain_id.as_str())
                            .bind(context.as_str());
                    }
                    script
                        .statement(SAVE_RUN_SQL)
                        .bind(run.tenant_id.as_str())
                        .bind(run.chain_id.as_str())
                        .bind(run.task.as_str())
                        .bind(run.status.as_str())
                        .bind(run.state.as_str())
                        .bind(run.created_at.as_micros())
                        .bind(run.updated_at.as_micros())
                        .bind(run.owner.as_deref())
                        .bind(agent_rows::personas_column(&run.personas));
                }

                /// Adds a ledger batch's companion rows to the batch's script.
                pub(crate) fn stage_companions<'q>(script: &mut Script<'q, Db>, companions: &'q Companions) {
                    for run in &companions.runs {
                        Self::stage_run(script, run);
                    }
                    for batch in $crate::rows::power_of_two_runs(&companions.costs, COSTS_PER_STATEMENT) {
                        script.statement(&insert_costs_sql(batch.len()));
                        for cost in batch {
                            let (input, output) = $crate::rows::cost_values(cost);
                            script
                                .bind(cost.tenant_id.as_str())
                                .bind(cost.chain_id.as_ref().map(|c| c.as_str().to_owned()))
                                .bind(cost.seal_id.as_ref().map(|s| s.as_str().to_owned()))
                                .bind(cost.api_key_id.as_ref().map(|k| k.as_str().to_owned()))
                                .bind(cost.provider.clone())
                                .bind(&cost.model)
                                .bind(input)
                                .bind(output)
                                .bind(cost.cost_usd)
                                .bind(cost.timestamp.as_micros())
                                .bind(cost.subject.as_deref());
                        }
                    }
                    for (tenant, month, usd) in spend_by_month(&companions.costs) {
                        script.statement(ADD_SPEND_SQL).bind(tenant).bind(month).bind(usd);
                    }
                    for action in &companions.actions {
                        script
                            .statement(RECORD_ACTION_SQL)
                            .bind(action.tenant_id.as_str())
                            .bind(action.persona.as_str())
                            .bind(action.tool.as_str())
                            .bind(action.fingerprint.as_str());
                    }
                }
            }

            #[async_trait]
            impl RunStore for $store {
                async fn save_run(&self, run: &StoredRun) -> Result<(), StoreError> {
                    let failed = |e| classify(self.target(), e);
                    let mut script = Script::new(Self::JOIN_STATEMENTS);
                    Self::stage_run(&mut script, run);
                    let what = || format!("run {} of tenant {}", run.chain_id, run.tenant_id);
                    if run.context.is_some() {
                        let mut tx = self.pool().begin().await.map_err(failed)?;
                        self.run_script(&mut tx, script, &what).await?;
                        tx.commit().await.map_err(failed)
                    } else {
                        let mut conn = self.pool().acquire().await.map_err(failed)?;
                        self.run_script(&mut conn, script, &what).await
                    }
                }

                async fn run(&self, tenant: &TenantId, chain: &ChainId) -> Result<Option<StoredRun>, StoreError> {
                    let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE tenant_id = $1 AND chain_id = $2");
                    let row: Option<agent_rows::RunRow> = sqlx::query_as(&sql)
                        .bind(tenant.as_str())
                        .bind(chain.as_str())
                        .fetch_optional(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    row.map(agent_rows::run).transpose()
                }

                async fn runs(
                    &self,
                    tenant: &TenantId,
                    filter: &RunFilter,
                    limit: u32,
                ) -> Result<Vec<StoredRun>, StoreError> {
                    // Every filter is in the query, before the limit: asking for ten failed
                    // runs gives ten failed runs, not the failed among the last ten. The cursor
                    // is (created_at, chain_id), the order of the index, so a page is a seek.
                    let sql = format!(
                        "SELECT {RUN_COLUMNS} FROM runs WHERE tenant_id = $1 AND ($2 = '' OR status = $2) \
                         AND ($3 IS NULL OR created_at < $3 OR (created_at = $3 AND chain_id < $4)) \
                         AND ($5 IS NULL OR created_at >= $5) AND ($6 IS NULL OR created_at < $6) \
                         AND ($7 = '' OR LOWER(task) LIKE $7 ESCAPE '!') \
                         AND ($9 = '' OR personas LIKE $9 ESCAPE '!') \
                         ORDER BY created_at DESC, chain_id DESC LIMIT $8"
                    );
                    let pattern = match filter.text.as_deref().map(str::trim) {
                        Some(text) if !text.is_empty() => {
                            let escaped = text.to_lowercase().replace('!', "!!").replace('%', "!%").replace('_', "!_");
                            format!("%{escaped}%")
                        }
                        _ => String::new(),
                    };
                    let persona = match filter.persona.as_deref().map(str::trim) {
                        Some(name) if !name.is_empty() => {
                            format!("%,{},%", name.replace('!', "!!").replace('%', "!%").replace('_', "!_"))
                        }
                        _ => String::new(),
                    };
                    let (before_at, before_chain) = match &filter.before {
                        Some((at, chain)) => (Some(at.as_micros()), chain.as_str().to_owned()),
                        None => (None, String::new()),
                    };
                    let rows: Vec<agent_rows::RunRow> = sqlx::query_as(&sql)
                        .bind(tenant.as_str())
                        .bind(filter.status.map_or("", ChainStatus::as_str))
                        .bind(before_at)
                        .bind(before_chain)
                        .bind(filter.since.map(Timestamp::as_micros))
                        .bind(filter.until.map(Timestamp::as_micros))
                        .bind(pattern)
                        .bind(i64::from(limit))
                        .bind(persona)
                        .fetch_all(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    rows.into_iter().map(agent_rows::run).collect()
                }

                async fn runs_with_status(&self, statuses: &[ChainStatus]) -> Result<Vec<StoredRun>, StoreError> {
                    if statuses.is_empty() {
                        return Ok(Vec::new());
                    }
                    let placeholders: Vec<String> = (1..=statuses.len()).map(|i| format!("${i}")).collect();
                    let sql = format!(
                        "SELECT {RUN_COLUMNS} FROM runs WHERE status IN ({}) ORDER BY created_at",
                        placeholders.join(", ")
                    );
                    let mut query = sqlx::query_as::<_, agent_rows::RunRow>(&sql);
                    for status in statuses {
                        query = query.bind(status.as_str());
                    }
                    let rows = query.fetch_all(self.pool()).await.map_err(|e| classify(self.target(), e))?;
                    rows.into_iter().map(agent_rows::run).collect()
                }

                async fn claim_run(
                    &self,
                    tenant: &TenantId,
                    chain: &ChainId,
                    expected: Option<&str>,
                    owner: &str,
                ) -> Result<bool, StoreError> {
                    let done = sqlx::query(
                        "UPDATE runs SET owner = $3 WHERE tenant_id = $1 AND chain_id = $2 \
                         AND COALESCE(owner, '') = $4",
                    )
                    .bind(tenant.as_str())
                    .bind(chain.as_str())
                    .bind(owner)
                    .bind(expected.unwrap_or(""))
                    .execute(self.pool())
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                    Ok(done.rows_affected() == 1)
                }

                async fn heartbeat(&self, instance: &str, at: Timestamp) -> Result<(), StoreError> {
                    sqlx::query(
                        "INSERT INTO instances (id, heartbeat_at) VALUES ($1, $2) \
                         ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
                    )
                    .bind(instance)
                    .bind(at.as_micros())
                    .execute(self.pool())
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                    Ok(())
                }

                async fn forget_instances(&self, instance: &str, stale_before: Timestamp) -> Result<(), StoreError> {
                    sqlx::query("DELETE FROM instances WHERE id = $1 OR heartbeat_at < $2")
                        .bind(instance)
                        .bind(stale_before.as_micros())
                        .execute(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    Ok(())
                }

                async fn last_heartbeat(&self, instance: &str) -> Result<Option<Timestamp>, StoreError> {
                    let at: Option<i64> = sqlx::query_scalar("SELECT heartbeat_at FROM instances WHERE id = $1")
                        .bind(instance)
                        .fetch_optional(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    Ok(at.map(Timestamp::from_micros))
                }
            }

            #[async_trait]
            impl ApprovalStore for $store {
                async fn insert_approval(&self, a: &Approval) -> Result<(), StoreError> {
                    let sql = format!(
                        "INSERT INTO approvals ({APPROVAL_COLUMNS}) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
                    );
                    sqlx::query(&sql)
                        .bind(&a.id)
                        .bind(a.tenant_id.as_str())
                        .bind(a.chain_id.as_str())
                        .bind(i64::from(a.step))
                        .bind(&a.tool)
                        .bind(&a.params)
                        .bind(&a.call_digest)
                        .bind(&a.reason)
                        .bind(&a.requested_by)
                        .bind(a.status.as_str())
                        .bind(&a.decided_by)
                        .bind(a.decided_at.map(Timestamp::as_micros))
                        .bind(&a.note)
                        .bind(a.created_at.as_micros())
                        .bind(a.expires_at.as_micros())
                        .execute(self.pool())
                        .await
                        .map_err(|e| classify_insert(self.target(), || format!("approval {}", a.id), e))?;
                    Ok(())
                }

                async fn approval(&self, tenant: &TenantId, id: &str) -> Result<Option<Approval>, StoreError> {
                    let sql = format!("SELECT {APPROVAL_COLUMNS} FROM approvals WHERE tenant_id = $1 AND id = $2");
                    let row: Option<agent_rows::ApprovalRow> = sqlx::query_as(&sql)
                        .bind(tenant.as_str())
                        .bind(id)
                        .fetch_optional(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    row.map(agent_rows::approval).transpose()
                }

                async fn approvals(
                    &self,
                    tenant: &TenantId,
                    status: Option<ApprovalStatus>,
                ) -> Result<Vec<Approval>, StoreError> {
                    let sql = format!(
                        "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE tenant_id = $1 AND ($2 = '' OR status = $2) \
                         ORDER BY created_at DESC, id DESC"
                    );
                    let rows: Vec<agent_rows::ApprovalRow> = sqlx::query_as(&sql)
                        .bind(tenant.as_str())
                        .bind(status.map_or("", ApprovalStatus::as_str))
                        .fetch_all(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    rows.into_iter().map(agent_rows::approval).collect()
                }

                async fn decide_approval(
                    &self,
                    tenant: &TenantId,
                    id: &str,
                    status: ApprovalStatus,
                    by: &str,
                    note: &str,
                    at: Timestamp,
                ) -> Result<bool, StoreError> {
                    let done = sqlx::query(
                        "UPDATE approvals SET status = $3, decided_by = $4, note = $5, decided_at = $6 \
                         WHERE tenant_id = $1 AND id = $2 AND status = $7 AND expires_at > $6",
                    )
                    .bind(tenant.as_str())
                    .bind(id)
                    .bind(status.as_str())
                    .bind(by)
                    .bind(note)
                    .bind(at.as_micros())
                    .bind(ApprovalStatus::Pending.as_str())
                    .execute(self.pool())
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                    Ok(done.rows_affected() == 1)
                }
            }

            #[async_trait]
            impl DriftStore for $store {
                async fn record_action(
                    &self,
                    tenant: &TenantId,
                    persona: &str,
                    tool: &str,
                    fingerprint: &str,
                ) -> Result<(), StoreError> {
                    sqlx::query(RECORD_ACTION_SQL)
                        .bind(tenant.as_str())
                        .bind(persona)
                        .bind(tool)
                        .bind(fingerprint)
                        .execute(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    Ok(())
                }

                async fn action_counts(
                    &self,
                    tenant: &TenantId,
                    persona: &str,
                    tool: &str,
                ) -> Result<Vec<(String, u64)>, StoreError> {
                    let rows: Vec<(String, i64)> = sqlx::query_as(
                        "SELECT fingerprint, count FROM action_counts \
                         WHERE tenant_id = $1 AND persona = $2 AND tool = $3 ORDER BY fingerprint",
                    )
                    .bind(tenant.as_str())
                    .bind(persona)
                    .bind(tool)
                    .fetch_all(self.pool())
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                    Ok(rows.into_iter().map(|(f, c)| (f, u64::try_from(c).unwrap_or(0))).collect())
                }
            }
        }
    };
}

pub(crate) use impl_agent_ports;

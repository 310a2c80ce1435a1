//! Read-side queries for the HTTP API, shared by both backends: filtered pages of the ledger
//! and usage grouped for reports. Implemented as inherent methods the ports delegate to.

/// Microseconds in a day, for grouping cost records by UTC day.
pub(crate) const DAY_MICROS: i64 = 86_400_000_000;

pub(crate) type UsageSqlRow =
    (i64, String, Option<String>, Option<String>, Option<String>, Option<String>, i64, i64, i64, f64);

macro_rules! impl_report_queries {
    ($store:ty) => {
        mod report_queries {
            use domain::cost::UsageRow;
            use domain::ledger::LedgerRecord;
            use domain::ports::{RecordFilter, StoreError};
            use domain::{ApiKeyId, ChainId, TenantId, Timestamp};

            use super::*;
            use $crate::backend::SqlBackend;
            use $crate::common_reports::{DAY_MICROS, UsageSqlRow};
            use $crate::error::classify;
            use $crate::rows::{self, i64_of};

            fn invalid(reason: impl ToString) -> StoreError {
                StoreError::InvalidRow { what: "usage row", reason: reason.to_string() }
            }

            impl $store {
                pub(crate) async fn activity_by_day(
                    &self,
                    tenant: &TenantId,
                    since: Timestamp,
                ) -> Result<Vec<domain::cost::DayActivity>, StoreError> {
                    // Each side is counted by its own index (runs by tenant and time, the ledger
                    // by its per-kind partial indexes), then the days are merged.
                    let sql = "SELECT day, CAST(SUM(runs) AS BIGINT), CAST(SUM(actions) AS BIGINT), \
                         CAST(SUM(refusals) AS BIGINT) FROM ( \
                           SELECT created_at / $3 AS day, COUNT(*) AS runs, 0 AS actions, 0 AS refusals \
                           FROM runs WHERE tenant_id = $1 AND created_at >= $2 GROUP BY created_at / $3 \
                           UNION ALL \
                           SELECT ts / $3, 0, COUNT(*), 0 FROM ledger_entries \
                           WHERE tenant_id = $1 AND kind = 'seal_intent' AND ts >= $2 GROUP BY ts / $3 \
                           UNION ALL \
                           SELECT ts / $3, 0, 0, COUNT(*) FROM ledger_entries \
                           WHERE tenant_id = $1 AND kind = 'gate_decision' AND ts >= $2 GROUP BY ts / $3 \
                         ) AS counted GROUP BY day ORDER BY day";
                    let found: Vec<(i64, i64, i64, i64)> = sqlx::query_as(sql)
                        .bind(tenant.as_str())
                        .bind(since.as_micros())
                        .bind(DAY_MICROS)
                        .fetch_all(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    found
                        .into_iter()
                        .map(|(day, runs, actions, refusals)| {
                            Ok(domain::cost::DayActivity {
                                day,
                                runs: u64::try_from(runs).map_err(invalid)?,
                                actions: u64::try_from(actions).map_err(invalid)?,
                                refusals: u64::try_from(refusals).map_err(invalid)?,
                            })
                        })
                        .collect()
                }

                pub(crate) async fn filtered_records(
                    &self,
                    tenant: &TenantId,
                    filter: &RecordFilter,
                    limit: u32,
                ) -> Result<Vec<LedgerRecord>, StoreError> {
                    let sql = format!(
                        "SELECT {} FROM ledger_entries WHERE tenant_id = $1 \
                         AND ($2 IS NULL OR idx < $2) AND ($3 IS NULL OR kind = $3) \
                         AND ($4 IS NULL OR chain_id = $4) AND ($5 IS NULL OR ts >= $5) \
                         AND ($6 IS NULL OR ts < $6) ORDER BY idx DESC LIMIT $7",
                        rows::LEDGER_COLUMNS
                    );
                    let found: Vec<rows::LedgerRow> = sqlx::query_as(&sql)
                        .bind(tenant.as_str())
                        .bind(filter.before.map(i64_of))
                        .bind(filter.kind.map(|k| k.as_str().to_owned()))
                        .bind(filter.chain.as_ref().map(|c| c.as_str().to_owned()))
                        .bind(filter.since.map(Timestamp::as_micros))
                        .bind(filter.until.map(Timestamp::as_micros))
                        .bind(i64::from(limit))
                        .fetch_all(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    found.into_iter().map(rows::ledger).collect()
                }

                pub(crate) async fn overview_counts(
                    &self,
                    tenant: &TenantId,
                    day_start: Timestamp,
                    month_start: Timestamp,
                ) -> Result<domain::cost::Overview, StoreError> {
                    let sql = "SELECT \
                        (SELECT COUNT(*) FROM runs WHERE tenant_id = $1 AND created_at >= $2), \
                        (SELECT COUNT(*) FROM ledger_entries WHERE tenant_id = $1 AND kind = 'seal_intent' AND ts >= $2), \
                        (SELECT COUNT(*) FROM ledger_entries WHERE tenant_id = $1 AND kind = 'gate_decision' AND ts >= $2), \
                        (SELECT COUNT(*) FROM approvals WHERE tenant_id = $1 AND status = 'pending' AND expires_at > $4), \
                        (SELECT CAST(COALESCE(SUM(cost_usd), 0) AS DOUBLE PRECISION) FROM tenant_spend WHERE tenant_id = $1 AND month = $3), \
                        (SELECT CAST(COALESCE(SUM(input_tokens + output_tokens), 0) AS BIGINT) FROM cost_records WHERE tenant_id = $1 AND ts >= $3)";
                    let (runs, actions, blocked, waiting, spend, tokens): (i64, i64, i64, i64, f64, i64) =
                        sqlx::query_as(sql)
                            .bind(tenant.as_str())
                            .bind(day_start.as_micros())
                            .bind(month_start.as_micros())
                            .bind(Timestamp::now().as_micros())
                            .fetch_one(self.pool())
                            .await
                            .map_err(|e| classify(self.target(), e))?;
                    let count = |n: i64| u64::try_from(n).map_err(invalid);
                    Ok(domain::cost::Overview {
                        runs_today: count(runs)?,
                        actions_today: count(actions)?,
                        blocked_today: count(blocked)?,
                        approvals_waiting: count(waiting)?,
                        spend_month_usd: spend,
                        tokens_month: count(tokens)?,
                    })
                }

                pub(crate) async fn usage_rows(
                    &self,
                    tenant: &TenantId,
                    since: Timestamp,
                    until: Timestamp,
                ) -> Result<Vec<UsageRow>, StoreError> {
                    let sql = "SELECT ts / $4 AS day, model, provider, api_key_id, chain_id, subject, COUNT(*), \
                               CAST(SUM(input_tokens) AS BIGINT), CAST(SUM(output_tokens) AS BIGINT), \
                               SUM(cost_usd) FROM cost_records WHERE tenant_id = $1 AND ts >= $2 AND ts < $3 \
                               GROUP BY ts / $4, model, provider, api_key_id, chain_id, subject \
                               ORDER BY day, model";
                    let found: Vec<UsageSqlRow> = sqlx::query_as(sql)
                        .bind(tenant.as_str())
                        .bind(since.as_micros())
                        .bind(until.as_micros())
                        .bind(DAY_MICROS)
                        .fetch_all(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    found
                        .into_iter()
                        .map(|(day, model, provider, key, chain, subject, calls, input, output, cost)| {
                            Ok(UsageRow {
                                day,
                                model,
                                provider,
                                api_key_id: key.map(ApiKeyId::parse).transpose().map_err(invalid)?,
                                chain_id: chain.map(ChainId::parse).transpose().map_err(invalid)?,
                                subject,
                                calls: u64::try_from(calls).map_err(invalid)?,
                                input_tokens: u64::try_from(input).map_err(invalid)?,
                                output_tokens: u64::try_from(output).map_err(invalid)?,
                                cost_usd: cost,
                            })
                        })
                        .collect()
                }
            }
        }
    };
}

pub(crate) use impl_report_queries;

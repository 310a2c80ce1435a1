//! Shared SQL for the chat channels (linked accounts, link codes, claimed updates, cursors,
//! leases, broadcasts and their recipients, moderation cases and strictness), implemented for both pool types by one macro in a child module of the backend.

use domain::channel::{Channel, ChannelIdentity, LinkCode};
use domain::ports::StoreError;
use domain::{ConversationId, TenantId, Timestamp, UserId};

pub(crate) const IDENTITY_COLUMNS: &str = "tenant_id, channel, external_id, user_id, display, chat_id, locale, persona, conversation_id, blocked_at, created_at";
pub(crate) const LINK_CODE_COLUMNS: &str = "code_hash, tenant_id, user_id, created_at, expires_at";

pub(crate) type IdentityRow = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    i64,
);
pub(crate) type LinkCodeRow = (String, String, String, i64, i64);
pub(crate) type BroadcastRow = (String, String, String, String, i64, String, Option<String>, i64, Option<i64>);

pub(crate) fn broadcast_of(row: BroadcastRow) -> Result<domain::channel::Broadcast, StoreError> {
    let (tenant_id, id, channel, body, min_level, created_by, notify_chat, created_at, finished_at) = row;
    let what = "broadcasts";
    Ok(domain::channel::Broadcast {
        id,
        tenant_id: TenantId::parse(tenant_id).map_err(|e| invalid(what, e))?,
        channel: channel.parse::<Channel>().map_err(|e| invalid("broadcasts.channel", e))?,
        body,
        min_level: u8::try_from(min_level).map_err(|_| invalid("broadcasts.min_level", min_level))?,
        created_by,
        notify_chat,
        created_at: Timestamp::from_micros(created_at),
        finished_at: finished_at.map(Timestamp::from_micros),
    })
}

pub(crate) fn progress_of(counts: Vec<(String, i64)>) -> Result<domain::channel::BroadcastProgress, StoreError> {
    use domain::channel::DeliveryStatus;
    let mut progress = domain::channel::BroadcastProgress::default();
    for (status, count) in counts {
        let count = u64::try_from(count).unwrap_or_default();
        match status.parse::<DeliveryStatus>().map_err(|e| invalid("broadcast_deliveries.status", e))? {
            DeliveryStatus::Pending => progress.pending = count,
            DeliveryStatus::Sending => progress.sending = count,
            DeliveryStatus::Delivered => progress.delivered = count,
            DeliveryStatus::Blocked => progress.blocked = count,
            DeliveryStatus::Failed => progress.failed = count,
        }
    }
    Ok(progress)
}

pub(crate) fn case_body(case: &domain::moderation::ModerationCase) -> Result<String, StoreError> {
    serde_json::to_string(case).map_err(|e| invalid("moderation_cases.body", e))
}

pub(crate) fn case_of(body: &str) -> Result<domain::moderation::ModerationCase, StoreError> {
    serde_json::from_str(body).map_err(|e| invalid("moderation_cases.body", e))
}

fn invalid(what: &'static str, reason: impl ToString) -> StoreError {
    StoreError::InvalidRow { what, reason: reason.to_string() }
}

pub(crate) fn identity(row: IdentityRow) -> Result<ChannelIdentity, StoreError> {
    let (
        tenant_id,
        channel,
        external_id,
        user_id,
        display,
        chat_id,
        locale,
        persona,
        conversation_id,
        blocked_at,
        created_at,
    ) = row;
    let what = "channel_identities";
    Ok(ChannelIdentity {
        tenant_id: TenantId::parse(tenant_id).map_err(|e| invalid(what, e))?,
        channel: channel.parse::<Channel>().map_err(|e| invalid("channel_identities.channel", e))?,
        external_id,
        user_id: UserId::parse(user_id).map_err(|e| invalid(what, e))?,
        display,
        chat_id,
        locale,
        persona,
        conversation_id: conversation_id.map(ConversationId::parse).transpose().map_err(|e| invalid(what, e))?,
        blocked_at: blocked_at.map(Timestamp::from_micros),
        created_at: Timestamp::from_micros(created_at),
    })
}

pub(crate) fn link_code(row: LinkCodeRow) -> Result<LinkCode, StoreError> {
    let (code_hash, tenant_id, user_id, created_at, expires_at) = row;
    let what = "channel_link_codes";
    Ok(LinkCode {
        code_hash,
        tenant_id: TenantId::parse(tenant_id).map_err(|e| invalid(what, e))?,
        user_id: UserId::parse(user_id).map_err(|e| invalid(what, e))?,
        created_at: Timestamp::from_micros(created_at),
        expires_at: Timestamp::from_micros(expires_at),
    })
}

macro_rules! impl_channel_port {
    ($store:ident) => {
        mod channel_port {
            use async_trait::async_trait;
            use domain::channel::{Broadcast, BroadcastProgress, Channel, ChannelIdentity, Delivery, DeliveryStatus, LinkCode};
            use domain::moderation::{CaseStatus, ModerationCase};
            use domain::ports::{ChannelStore, StoreError};
            use domain::tenant::User;
            use domain::{TenantId, Timestamp};

            use super::$store;
            use $crate::backend::SqlBackend;
            use $crate::common_channels::{
                BroadcastRow, IDENTITY_COLUMNS, IdentityRow, LINK_CODE_COLUMNS, LinkCodeRow, broadcast_of, case_body, case_of,
                identity, link_code, progress_of,
            };
            use $crate::error::{classify, classify_insert};

            const UPSERT_IDENTITY: &str = "INSERT INTO channel_identities (tenant_id, channel, external_id, user_id, display, \
                 chat_id, locale, persona, conversation_id, blocked_at, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (tenant_id, channel, external_id) DO UPDATE SET user_id = excluded.user_id, \
                 display = excluded.display, chat_id = excluded.chat_id, locale = excluded.locale, \
                 persona = excluded.persona, conversation_id = excluded.conversation_id, blocked_at = excluded.blocked_at";

            macro_rules! bind_identity {
                ($query:expr, $i:expr) => {
                    $query
                        .bind($i.tenant_id.as_str())
                        .bind($i.channel.as_str())
                        .bind(&$i.external_id)
                        .bind($i.user_id.as_str())
                        .bind(&$i.display)
                        .bind($i.chat_id.as_deref())
                        .bind($i.locale.as_deref())
                        .bind($i.persona.as_deref())
                        .bind($i.conversation_id.as_ref().map(|c| c.as_str()))
                        .bind($i.blocked_at.map(|t| t.as_micros()))
                        .bind($i.created_at.as_micros())
                };
            }

            #[async_trait]
            impl ChannelStore for $store {
                async fn channel_identity(
                    &self,
                    tenant: &TenantId,
                    channel: Channel,
                    external_id: &str,
                ) -> Result<Option<ChannelIdentity>, StoreError> {
                    let sql = format!(
                        "SELECT {IDENTITY_COLUMNS} FROM channel_identities \
                         WHERE tenant_id = $1 AND channel = $2 AND external_id = $3"
                    );
                    let row: Option<IdentityRow> = sqlx::query_as(&sql)
                        .bind(tenant.as_str())
                        .bind(channel.as_str())
                        .bind(external_id)
                        .fetch_optional(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    row.map(identity).transpose()
                }

                async fn channel_staff(
                    &self,
                    tenant: &TenantId,
                    channel: Channel,
                    min_level: u8,
                ) -> Result<Vec<ChannelIdentity>, StoreError> {
                    let columns: Vec<String> = IDENTITY_COLUMNS.split(", ").map(|c| format!("i.{c}")).collect();
                    let sql = format!(
                        "SELECT {} FROM channel_identities i JOIN users u ON u.tenant_id = i.tenant_id AND u.id = i.user_id \
                         WHERE i.tenant_id = $1 AND i.channel = $2 AND (u.level >= $3 OR u.role = 'admin') \
                         ORDER BY i.created_at",
                        columns.join(", ")
                    );
                    let rows: Vec<IdentityRow> = sqlx::query_as(&sql)
                        .bind(tenant.as_str())
                        .bind(channel.as_str())
                        .bind(i64::from(min_level))
                        .fetch_all(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    rows.into_iter().map(identity).collect()
                }

                async fn admit_channel_user(&self, user: &User, i: &ChannelIdentity) -> Result<(), StoreError> {
                    let mut tx = self.begin_write().await?;
                    sqlx::query($crate::common_web::INSERT_USER_SQL)
                        .bind(user.tenant_id.as_str())
                        .bind(user.id.as_str())
                        .bind(&user.name)
                        .bind(i64::from(user.level.get()))
                        .bind(user.role.as_str())
                        .bind(user.created_at.as_micros())
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| classify_insert(self.target(), || format!("user {}", user.id), e))?;
                    let sql = format!("INSERT INTO channel_identities ({IDENTITY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)");
                    bind_identity!(sqlx::query(&sql), i)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| classify_insert(self.target(), || format!("{} account {}", i.channel, i.external_id), e))?;
                    tx.commit().await.map_err(|e| classify(self.target(), e))?;
                    Ok(())
                }

                async fn save_channel_identity(&self, i: &ChannelIdentity) -> Result<(), StoreError> {
                    bind_identity!(sqlx::query(UPSERT_IDENTITY), i)
                        .execute(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    Ok(())
                }

                async fn insert_link_code(&self, code: &LinkCode) -> Result<(), StoreError> {
                    let sql = format!("INSERT INTO channel_link_codes ({LINK_CODE_COLUMNS}) VALUES ($1, $2, $3, $4, $5)");
                    sqlx::query(&sql)
                        .bind(&code.code_hash)
                        .bind(code.tenant_id.as_str())
                        .bind(code.user_id.as_str())
                        .bind(code.created_at.as_micros())
                        .bind(code.expires_at.as_micros())
                        .execute(self.pool())
                        .await
                        .map_err(|e| classify_insert(self.target(), || "link code".to_owned(), e))?;
                    Ok(())
                }

                async fn take_link_code(&self, code_hash: &str, now: Timestamp) -> Result<Option<LinkCode>, StoreError> {
                    let sql = format!(
                        "UPDATE channel_link_codes SET used_at = $2 \
                         WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING {LINK_CODE_COLUMNS}"
                    );
                    let row: Option<LinkCodeRow> = sqlx::query_as(&sql)
                        .bind(code_hash)
                        .bind(now.as_micros())
                        .fetch_optional(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    row.map(link_code).transpose()
                }

                async fn claim_channel_update(
                    &self,
                    tenant: &TenantId,
                    channel: Channel,
                    key: &str,
                    at: Timestamp,
                ) -> Result<bool, StoreError> {
                    let done = sqlx::query(
                        "INSERT INTO channel_updates (tenant_id, channel, update_key, taken_at) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (tenant_id, channel, update_key) DO NOTHING",
                    )
                    .bind(tenant.as_str())
                    .bind(channel.as_str())
                    .bind(key)
                    .bind(at.as_micros())
                    .execute(self.pool())
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                    Ok(done.rows_affected() == 1)
                }

                async fn prune_channel_updates(&self, before: Timestamp) -> Result<u64, StoreError> {
                    let done = sqlx::query("DELETE FROM channel_updates WHERE taken_at < $1")
                        .bind(before.as_micros())
                        .execute(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    Ok(done.rows_affected())
                }

                async fn channel_cursor(&self, tenant: &TenantId, channel: Channel) -> Result<Option<String>, StoreError> {
                    let row: Option<(String,)> =
                        sqlx::query_as("SELECT position FROM channel_cursors WHERE tenant_id = $1 AND channel = $2")
                            .bind(tenant.as_str())
                            .bind(channel.as_str())
                            .fetch_optional(self.pool())
                            .await
                            .map_err(|e| classify(self.target(), e))?;
                    Ok(row.map(|(position,)| position))
                }

                async fn set_channel_cursor(
                    &self,
                    tenant: &TenantId,
                    channel: Channel,
                    cursor: &str,
                    at: Timestamp,
                ) -> Result<(), StoreError> {
                    sqlx::query(
                        "INSERT INTO channel_cursors (tenant_id, channel, position, updated_at) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (tenant_id, channel) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
                    )
                    .bind(tenant.as_str())
                    .bind(channel.as_str())
                    .bind(cursor)
                    .bind(at.as_micros())
                    .execute(self.pool())
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                    Ok(())
                }

                async fn lease_channel(&self, bot: &str, owner: &str, now: Timestamp, until: Timestamp) -> Result<String, StoreError> {
                    sqlx::query(
                        "INSERT INTO channel_leases (bot, owner, held_until) VALUES ($1, $2, $4) \
                         ON CONFLICT (bot) DO UPDATE SET owner = excluded.owner, held_until = excluded.held_until \
                         WHERE channel_leases.owner = excluded.owner OR channel_leases.held_until < $3",
                    )
                    .bind(bot)
                    .bind(owner)
                    .bind(now.as_micros())
                    .bind(until.as_micros())
                    .execute(self.pool())
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                    let (holder,): (String,) = sqlx::query_as("SELECT owner FROM channel_leases WHERE bot = $1")
                        .bind(bot)
                        .fetch_one(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    Ok(holder)
                }

                async fn insert_broadcast(&self, b: &Broadcast, recipients: &[(String, String)]) -> Result<(), StoreError> {
                    let mut tx = self.begin_write().await?;
                    sqlx::query(
                        "INSERT INTO broadcasts (tenant_id, id, channel, body, min_level, created_by, notify_chat, created_at, finished_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    )
                    .bind(b.tenant_id.as_str())
                    .bind(&b.id)
                    .bind(b.channel.as_str())
                    .bind(&b.body)
                    .bind(i64::from(b.min_level))
                    .bind(&b.created_by)
                    .bind(b.notify_chat.as_deref())
                    .bind(b.created_at.as_micros())
                    .bind(b.finished_at.map(|t| t.as_micros()))
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| classify_insert(self.target(), || format!("broadcast {}", b.id), e))?;
                    for (external_id, chat_id) in recipients {
                        sqlx::query(
                            "INSERT INTO broadcast_deliveries (tenant_id, broadcast_id, external_id, chat_id, status, detail, updated_at) \
                             VALUES ($1, $2, $3, $4, 'pending', NULL, $5)",
                        )
                        .bind(b.tenant_id.as_str())
                        .bind(&b.id)
                        .bind(external_id)
                        .bind(chat_id)
                        .bind(b.created_at.as_micros())
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| classify_insert(self.target(), || format!("recipient {external_id}"), e))?;
                    }
                    tx.commit().await.map_err(|e| classify(self.target(), e))?;
                    Ok(())
                }

                async fn pending_deliveries(&self, tenant: &TenantId, channel: Channel, limit: u32) -> Result<Vec<Delivery>, StoreError> {
                    let rows: Vec<(String, String, String, String)> = sqlx::query_as(
                        "SELECT d.broadcast_id, d.external_id, d.chat_id, b.body FROM broadcast_deliveries d \
                         JOIN broadcasts b ON b.tenant_id = d.tenant_id AND b.id = d.broadcast_id \
                         WHERE d.tenant_id = $1 AND b.channel = $2 AND b.finished_at IS NULL AND d.status = 'pending' \
                         ORDER BY b.created_at, b.id, d.external_id LIMIT $3",
                    )
                    .bind(tenant.as_str())
                    .bind(channel.as_str())
                    .bind(i64::from(limit))
                    .fetch_all(self.pool())
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                    Ok(rows
                        .into_iter()
                        .map(|(broadcast_id, external_id, chat_id, body)| Delivery { broadcast_id, external_id, chat_id, body })
                        .collect())
                }

                async fn take_delivery(&self, tenant: &TenantId, broadcast: &str, external_id: &str, at: Timestamp) -> Result<bool, StoreError> {
                    let done = sqlx::query(
                        "UPDATE broadcast_deliveries SET status = 'sending', updated_at = $4 \
                         WHERE tenant_id = $1 AND broadcast_id = $2 AND external_id = $3 AND status = 'pending'",
                    )
                    .bind(tenant.as_str())
                    .bind(broadcast)
                    .bind(external_id)
                    .bind(at.as_micros())
                    .execute(self.pool())
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                    Ok(done.rows_affected() == 1)
                }

                async fn finish_delivery(
                    &self,
                    tenant: &TenantId,
                    broadcast: &str,
                    external_id: &str,
                    status: DeliveryStatus,
                    detail: Option<&str>,
                    at: Timestamp,
                ) -> Result<(), StoreError> {
                    sqlx::query(
                        "UPDATE broadcast_deliveries SET status = $4, detail = $5, updated_at = $6 \
                         WHERE tenant_id = $1 AND broadcast_id = $2 AND external_id = $3 AND status = 'sending'",
                    )
                    .bind(tenant.as_str())
                    .bind(broadcast)
                    .bind(external_id)
                    .bind(status.as_str())
                    .bind(detail)
                    .bind(at.as_micros())
                    .execute(self.pool())
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                    Ok(())
                }

                async fn broadcast(&self, tenant: &TenantId, id: &str) -> Result<Option<(Broadcast, BroadcastProgress)>, StoreError> {
                    let row: Option<BroadcastRow> = sqlx::query_as(
                        "SELECT tenant_id, id, channel, body, min_level, created_by, notify_chat, created_at, finished_at \
                         FROM broadcasts WHERE tenant_id = $1 AND id = $2",
                    )
                    .bind(tenant.as_str())
                    .bind(id)
                    .fetch_optional(self.pool())
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                    let Some(row) = row else { return Ok(None) };
                    let counts: Vec<(String, i64)> = sqlx::query_as(
                        "SELECT status, COUNT(*) FROM broadcast_deliveries WHERE tenant_id = $1 AND broadcast_id = $2 GROUP BY status",
                    )
                    .bind(tenant.as_str())
                    .bind(id)
                    .fetch_all(self.pool())
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                    Ok(Some((broadcast_of(row)?, progress_of(counts)?)))
                }

                async fn finish_broadcast(&self, tenant: &TenantId, id: &str, at: Timestamp) -> Result<bool, StoreError> {
                    let done = sqlx::query(
                        "UPDATE broadcasts SET finished_at = $3 WHERE tenant_id = $1 AND id = $2 AND finished_at IS NULL \
                         AND NOT EXISTS (SELECT 1 FROM broadcast_deliveries d WHERE d.tenant_id = $1 AND d.broadcast_id = $2 \
                         AND d.status = 'pending')",
                    )
                    .bind(tenant.as_str())
                    .bind(id)
                    .bind(at.as_micros())
                    .execute(self.pool())
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                    Ok(done.rows_affected() == 1)
                }

                async fn insert_moderation_case(&self, case: &ModerationCase) -> Result<(), StoreError> {
                    sqlx::query(
                        "INSERT INTO moderation_cases (tenant_id, id, scope, status, created_at, body) VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(case.tenant_id.as_str())
                    .bind(&case.id)
                    .bind(&case.scope)
                    .bind(case.status.as_str())
                    .bind(case.created_at.as_micros())
                    .bind(case_body(case)?)
                    .execute(self.pool())
                    .await
                    .map_err(|e| classify_insert(self.target(), || format!("moderation case {}", case.id), e))?;
                    Ok(())
                }

                async fn moderation_case(&self, tenant: &TenantId, id: &str) -> Result<Option<ModerationCase>, StoreError> {
                    let row: Option<(String,)> =
                        sqlx::query_as("SELECT body FROM moderation_cases WHERE tenant_id = $1 AND id = $2")
                            .bind(tenant.as_str())
                            .bind(id)
                            .fetch_optional(self.pool())
                            .await
                            .map_err(|e| classify(self.target(), e))?;
                    row.map(|(body,)| case_of(&body)).transpose()
                }

                async fn moderation_cases(
                    &self,
                    tenant: &TenantId,
                    status: Option<CaseStatus>,
                    limit: u32,
                ) -> Result<Vec<ModerationCase>, StoreError> {
                    let rows: Vec<(String,)> = sqlx::query_as(
                        "SELECT body FROM moderation_cases WHERE tenant_id = $1 AND ($2 IS NULL OR status = $2) \
                         ORDER BY created_at DESC, id DESC LIMIT $3",
                    )
                    .bind(tenant.as_str())
                    .bind(status.map(|s| s.as_str()))
                    .bind(i64::from(limit))
                    .fetch_all(self.pool())
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                    rows.iter().map(|(body,)| case_of(body)).collect()
                }

                async fn review_moderation_case(&self, case: &ModerationCase) -> Result<bool, StoreError> {
                    let done = sqlx::query(
                        "UPDATE moderation_cases SET status = $3, body = $4 WHERE tenant_id = $1 AND id = $2 \
                         AND status IN ('acted', 'dry_run', 'review')",
                    )
                    .bind(case.tenant_id.as_str())
                    .bind(&case.id)
                    .bind(case.status.as_str())
                    .bind(case_body(case)?)
                    .execute(self.pool())
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                    Ok(done.rows_affected() == 1)
                }

                async fn moderation_strictness(&self, tenant: &TenantId, scope: &str) -> Result<Vec<(String, f64)>, StoreError> {
                    sqlx::query_as(
                        "SELECT category, adjustment FROM moderation_strictness WHERE tenant_id = $1 AND scope = $2 ORDER BY category",
                    )
                    .bind(tenant.as_str())
                    .bind(scope)
                    .fetch_all(self.pool())
                    .await
                    .map_err(|e| classify(self.target(), e))
                }

                async fn adjust_moderation_strictness(
                    &self,
                    tenant: &TenantId,
                    scope: &str,
                    category: &str,
                    delta: f64,
                    bound: f64,
                    at: Timestamp,
                ) -> Result<f64, StoreError> {
                    let (adjustment,): (f64,) = sqlx::query_as(
                        "INSERT INTO moderation_strictness (tenant_id, scope, category, adjustment, updated_at) \
                         VALUES ($1, $2, $3, CASE WHEN $4 > $5 THEN $5 WHEN $4 < -$5 THEN -$5 ELSE $4 END, $6) \
                         ON CONFLICT (tenant_id, scope, category) DO UPDATE SET updated_at = excluded.updated_at, \
                         adjustment = CASE WHEN moderation_strictness.adjustment + $4 > $5 THEN $5 \
                         WHEN moderation_strictness.adjustment + $4 < -$5 THEN -$5 \
                         ELSE moderation_strictness.adjustment + $4 END \
                         RETURNING adjustment",
                    )
                    .bind(tenant.as_str())
                    .bind(scope)
                    .bind(category)
                    .bind(delta)
                    .bind(bound)
                    .bind(at.as_micros())
                    .fetch_one(self.pool())
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                    Ok(adjustment)
                }
            }
        }
    };
}

pub(crate) use impl_channel_port;

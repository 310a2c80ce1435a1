//! Shared SQL for chat conversations and their messages, implemented for both pool types by
//! one macro in a child module of the backend.

pub(crate) const CONVERSATION_COLUMNS: &str = "tenant_id, id, owner, title, target, created_at, updated_at";
pub(crate) const MESSAGE_COLUMNS: &str = "conversation_id, seq, role, content, chain_id, model, created_at";

pub(crate) type ConversationRow = (String, String, String, String, String, i64, i64);
pub(crate) type MessageRow = (String, i64, String, String, Option<String>, Option<String>, i64);

fn invalid(reason: impl ToString) -> domain::ports::StoreError {
    domain::ports::StoreError::InvalidRow { what: "conversation", reason: reason.to_string() }
}

pub(crate) fn conversation(row: ConversationRow) -> Result<domain::chat::Conversation, domain::ports::StoreError> {
    let (tenant_id, id, owner, title, target, created_at, updated_at) = row;
    Ok(domain::chat::Conversation {
        id: domain::ConversationId::parse(id).map_err(invalid)?,
        tenant_id: domain::TenantId::parse(tenant_id).map_err(invalid)?,
        owner,
        title,
        target: domain::chat::ChatTarget::parse(&target).ok_or_else(|| invalid(format!("target {target:?}")))?,
        created_at: domain::Timestamp::from_micros(created_at),
        updated_at: domain::Timestamp::from_micros(updated_at),
    })
}

pub(crate) fn message(row: MessageRow) -> Result<domain::chat::ChatMessage, domain::ports::StoreError> {
    let (conversation_id, seq, role, content, chain_id, model, created_at) = row;
    Ok(domain::chat::ChatMessage {
        conversation_id: domain::ConversationId::parse(conversation_id).map_err(invalid)?,
        seq: u32::try_from(seq).map_err(|_| invalid(format!("message number {seq}")))?,
        role: domain::chat::ChatRole::parse(&role).ok_or_else(|| invalid(format!("role {role:?}")))?,
        content,
        chain_id: chain_id.map(domain::ChainId::parse).transpose().map_err(invalid)?,
        model,
        created_at: domain::Timestamp::from_micros(created_at),
    })
}

/// A `LIKE` pattern finding `text` anywhere, its wildcards taken literally (escape `\`).
pub(crate) fn contains_pattern(text: &str) -> String {
    let mut pattern = String::from("%");
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

macro_rules! impl_chat_port {
    ($store:ident) => {
        mod chat_port {
            use async_trait::async_trait;
            use domain::chat::{ChatMessage, Conversation};
            use domain::ports::{ChatStore, StoreError};
            use domain::{ConversationId, TenantId};

            use super::$store;
            use $crate::backend::SqlBackend;
            use $crate::common_chat::{
                CONVERSATION_COLUMNS, ConversationRow, MESSAGE_COLUMNS, MessageRow, contains_pattern, conversation,
                message,
            };
            use $crate::error::{classify, classify_insert};

            #[async_trait]
            impl ChatStore for $store {
                async fn insert_conversation(&self, c: &Conversation) -> Result<(), StoreError> {
                    let sql = format!("INSERT INTO conversations ({CONVERSATION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)");
                    sqlx::query(&sql)
                        .bind(c.tenant_id.as_str())
                        .bind(c.id.as_str())
                        .bind(&c.owner)
                        .bind(&c.title)
                        .bind(c.target.to_text())
                        .bind(c.created_at.as_micros())
                        .bind(c.updated_at.as_micros())
                        .execute(self.pool())
                        .await
                        .map_err(|e| classify_insert(self.target(), || format!("conversation {}", c.id), e))?;
                    Ok(())
                }

                async fn conversations(
                    &self,
                    tenant: &TenantId,
                    owner: &str,
                    text: Option<&str>,
                    limit: u32,
                ) -> Result<Vec<Conversation>, StoreError> {
                    // No text: the pattern is empty and matches every conversation.
                    let pattern = text.map(str::trim).filter(|t| !t.is_empty()).map(contains_pattern).unwrap_or_default();
                    let sql = format!(
                        "SELECT {CONVERSATION_COLUMNS} FROM conversations c WHERE c.tenant_id = $1 AND c.owner = $2 \
                         AND ($3 = '' OR LOWER(c.title) LIKE $3 ESCAPE '\\' OR EXISTS (SELECT 1 FROM chat_messages m \
                         WHERE m.tenant_id = c.tenant_id AND m.conversation_id = c.id \
                         AND LOWER(m.content) LIKE $3 ESCAPE '\\')) \
                         ORDER BY c.updated_at DESC, c.id DESC LIMIT $4"
                    );
                    let rows: Vec<ConversationRow> = sqlx::query_as(&sql)
                        .bind(tenant.as_str())
                        .bind(owner)
                        .bind(pattern)
                        .bind(i64::from(limit))
                        .fetch_all(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    rows.into_iter().map(conversation).collect()
                }

                async fn conversation(
                    &self,
                    tenant: &TenantId,
                    owner: &str,
                    id: &ConversationId,
                ) -> Result<Option<Conversation>, StoreError> {
                    let sql = format!(
                        "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE tenant_id = $1 AND owner = $2 AND id = $3"
                    );
                    let row: Option<ConversationRow> = sqlx::query_as(&sql)
                        .bind(tenant.as_str())
                        .bind(owner)
                        .bind(id.as_str())
                        .fetch_optional(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    row.map(conversation).transpose()
                }

                async fn append_message(&self, tenant: &TenantId, m: &ChatMessage) -> Result<ChatMessage, StoreError> {
                    let mut tx = self.begin_write().await?;
                    let next: i64 = sqlx::query_scalar(
                        "SELECT COALESCE(MAX(seq), 0) + 1 FROM chat_messages WHERE tenant_id = $1 AND conversation_id = $2",
                    )
                    .bind(tenant.as_str())
                    .bind(m.conversation_id.as_str())
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                    let sql = format!("INSERT INTO chat_messages (tenant_id, {MESSAGE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)");
                    sqlx::query(&sql)
                        .bind(tenant.as_str())
                        .bind(m.conversation_id.as_str())
                        .bind(next)
                        .bind(m.role.as_str())
                        .bind(&m.content)
                        .bind(m.chain_id.as_ref().map(|c| c.as_str()))
                        .bind(m.model.as_deref())
                        .bind(m.created_at.as_micros())
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| classify_insert(self.target(), || format!("message of conversation {}", m.conversation_id), e))?;
                    sqlx::query("UPDATE conversations SET updated_at = $3 WHERE tenant_id = $1 AND id = $2")
                        .bind(tenant.as_str())
                        .bind(m.conversation_id.as_str())
                        .bind(m.created_at.as_micros())
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    tx.commit().await.map_err(|e| classify(self.target(), e))?;
                    let seq = u32::try_from(next).map_err(|_| StoreError::InvalidRow { what: "conversation", reason: format!("message number {next}") })?;
                    Ok(ChatMessage { seq, ..m.clone() })
                }

                async fn messages(&self, tenant: &TenantId, id: &ConversationId) -> Result<Vec<ChatMessage>, StoreError> {
                    let sql = format!(
                        "SELECT {MESSAGE_COLUMNS} FROM chat_messages WHERE tenant_id = $1 AND conversation_id = $2 ORDER BY seq"
                    );
                    let rows: Vec<MessageRow> = sqlx::query_as(&sql)
                        .bind(tenant.as_str())
                        .bind(id.as_str())
                        .fetch_all(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    rows.into_iter().map(message).collect()
                }

                async fn delete_conversation(
                    &self,
                    tenant: &TenantId,
                    owner: &str,
                    id: &ConversationId,
                ) -> Result<bool, StoreError> {
                    let mut tx = self.begin_write().await?;
                    sqlx::query(
                        "DELETE FROM chat_messages WHERE tenant_id = $1 AND conversation_id IN \
                         (SELECT id FROM conversations WHERE tenant_id = $1 AND owner = $2 AND id = $3)",
                    )
                    .bind(tenant.as_str())
                    .bind(owner)
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                    let done = sqlx::query("DELETE FROM conversations WHERE tenant_id = $1 AND owner = $2 AND id = $3")
                        .bind(tenant.as_str())
                        .bind(owner)
                        .bind(id.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    tx.commit().await.map_err(|e| classify(self.target(), e))?;
                    Ok(done.rows_affected() > 0)
                }
            }
        }
    };
}

pub(crate) use impl_chat_port;

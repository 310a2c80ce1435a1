//! Shared SQL for console sign-in (users' credentials and sessions), implemented for both pool
//! types by one macro in a child module of the backend.

/// Inserts a user (`UserStore::insert_user`, and the first half of a web user's insert).
pub(crate) const INSERT_USER_SQL: &str =
    "INSERT INTO users (tenant_id, id, name, level, role, created_at) VALUES ($1, $2, $3, $4, $5, $6)";

/// A web user: the user's columns, then the login's.
pub(crate) const WEB_USER_SELECT: &str = "SELECT u.tenant_id, u.id, u.name, u.level, u.role, u.created_at, \
     l.email, l.password_hash, l.locale FROM web_logins l \
     JOIN users u ON u.tenant_id = l.tenant_id AND u.id = l.user_id";
pub(crate) const SESSION_COLUMNS: &str = "token_hash, tenant_id, user_id, csrf, created_at, expires_at";

pub(crate) type WebUserRow = (String, String, String, i64, String, i64, String, String, Option<String>);
pub(crate) type SessionRow = (String, String, String, String, i64, i64);

pub(crate) fn web_user(row: WebUserRow) -> Result<domain::web::WebUser, domain::ports::StoreError> {
    let (tenant_id, id, name, level, role, created_at, email, password_hash, locale) = row;
    let user = crate::rows::user((tenant_id, id, name, level, role, created_at))?;
    Ok(domain::web::WebUser { user, email, password_hash, locale })
}

pub(crate) fn session(row: SessionRow) -> Result<domain::web::WebSession, domain::ports::StoreError> {
    let invalid =
        |e: domain::ids::IdError| domain::ports::StoreError::InvalidRow { what: "web session", reason: e.to_string() };
    let (token_hash, tenant_id, user_id, csrf, created_at, expires_at) = row;
    Ok(domain::web::WebSession {
        token_hash,
        tenant_id: domain::TenantId::parse(tenant_id).map_err(invalid)?,
        user_id: domain::UserId::parse(user_id).map_err(invalid)?,
        csrf,
        created_at: domain::Timestamp::from_micros(created_at),
        expires_at: domain::Timestamp::from_micros(expires_at),
    })
}

macro_rules! impl_web_port {
    ($store:ident) => {
        mod web_port {
            use async_trait::async_trait;
            use domain::ports::{StoreError, WebStore};
            use domain::web::{WebSession, WebUser};
            use domain::{TenantId, Timestamp, UserId};

            use super::$store;
            use $crate::backend::SqlBackend;
            use $crate::common_web::{
                INSERT_USER_SQL, SESSION_COLUMNS, SessionRow, WEB_USER_SELECT, WebUserRow, session, web_user,
            };
            use $crate::error::{classify, classify_insert};

            #[async_trait]
            impl WebStore for $store {
                async fn insert_web_user(&self, web: &WebUser) -> Result<(), StoreError> {
                    let user = &web.user;
                    let what = || format!("user {} or email {}", user.id, web.email);
                    let mut tx = self.pool().begin().await.map_err(|e| classify(self.target(), e))?;
                    sqlx::query(INSERT_USER_SQL)
                        .bind(user.tenant_id.as_str())
                        .bind(user.id.as_str())
                        .bind(&user.name)
                        .bind(i64::from(user.level.get()))
                        .bind(user.role.as_str())
                        .bind(user.created_at.as_micros())
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| classify_insert(self.target(), what, e))?;
                    sqlx::query(
                        "INSERT INTO web_logins (tenant_id, user_id, email, password_hash, locale) \
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(user.tenant_id.as_str())
                    .bind(user.id.as_str())
                    .bind(&web.email)
                    .bind(&web.password_hash)
                    .bind(web.locale.as_deref())
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| classify_insert(self.target(), what, e))?;
                    tx.commit().await.map_err(|e| classify(self.target(), e))
                }

                async fn web_user_by_email(&self, email: &str) -> Result<Option<WebUser>, StoreError> {
                    let sql = format!("{WEB_USER_SELECT} WHERE l.email = $1");
                    let row: Option<WebUserRow> = sqlx::query_as(&sql)
                        .bind(email)
                        .fetch_optional(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    row.map(web_user).transpose()
                }

                async fn web_user(&self, tenant: &TenantId, id: &UserId) -> Result<Option<WebUser>, StoreError> {
                    let sql = format!("{WEB_USER_SELECT} WHERE l.tenant_id = $1 AND l.user_id = $2");
                    let row: Option<WebUserRow> = sqlx::query_as(&sql)
                        .bind(tenant.as_str())
                        .bind(id.as_str())
                        .fetch_optional(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    row.map(web_user).transpose()
                }

                async fn web_users(&self, tenant: &TenantId) -> Result<Vec<WebUser>, StoreError> {
                    let sql = format!("{WEB_USER_SELECT} WHERE l.tenant_id = $1 ORDER BY l.email");
                    let rows: Vec<WebUserRow> = sqlx::query_as(&sql)
                        .bind(tenant.as_str())
                        .fetch_all(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    rows.into_iter().map(web_user).collect()
                }

                async fn any_web_user(&self) -> Result<bool, StoreError> {
                    let found: Option<i64> = sqlx::query_scalar("SELECT CAST(1 AS BIGINT) FROM web_logins LIMIT 1")
                        .fetch_optional(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    Ok(found.is_some())
                }

                async fn set_web_password(
                    &self,
                    tenant: &TenantId,
                    id: &UserId,
                    password_hash: &str,
                ) -> Result<bool, StoreError> {
                    let done =
                        sqlx::query("UPDATE web_logins SET password_hash = $3 WHERE tenant_id = $1 AND user_id = $2")
                            .bind(tenant.as_str())
                            .bind(id.as_str())
                            .bind(password_hash)
                            .execute(self.pool())
                            .await
                            .map_err(|e| classify(self.target(), e))?;
                    Ok(done.rows_affected() == 1)
                }

                async fn set_web_locale(
                    &self,
                    tenant: &TenantId,
                    id: &UserId,
                    locale: Option<&str>,
                ) -> Result<(), StoreError> {
                    sqlx::query("UPDATE web_logins SET locale = $3 WHERE tenant_id = $1 AND user_id = $2")
                        .bind(tenant.as_str())
                        .bind(id.as_str())
                        .bind(locale)
                        .execute(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    Ok(())
                }

                async fn insert_session(&self, s: &WebSession) -> Result<(), StoreError> {
                    let sql = format!("INSERT INTO web_sessions ({SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)");
                    sqlx::query(&sql)
                        .bind(&s.token_hash)
                        .bind(s.tenant_id.as_str())
                        .bind(s.user_id.as_str())
                        .bind(&s.csrf)
                        .bind(s.created_at.as_micros())
                        .bind(s.expires_at.as_micros())
                        .execute(self.pool())
                        .await
                        .map_err(|e| classify_insert(self.target(), || "web session".to_owned(), e))?;
                    Ok(())
                }

                async fn session(&self, token_hash: &str, now: Timestamp) -> Result<Option<WebSession>, StoreError> {
                    let sql =
                        format!("SELECT {SESSION_COLUMNS} FROM web_sessions WHERE token_hash = $1 AND expires_at > $2");
                    let row: Option<SessionRow> = sqlx::query_as(&sql)
                        .bind(token_hash)
                        .bind(now.as_micros())
                        .fetch_optional(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    row.map(session).transpose()
                }

                async fn session_user(
                    &self,
                    token_hash: &str,
                    now: Timestamp,
                ) -> Result<Option<(WebSession, WebUser)>, StoreError> {
                    let sql = "SELECT s.token_hash, s.tenant_id, s.user_id, s.csrf, s.created_at, s.expires_at, \
                         u.tenant_id, u.id, u.name, u.level, u.role, u.created_at, l.email, l.password_hash, l.locale \
                         FROM web_sessions s \
                         JOIN web_logins l ON l.tenant_id = s.tenant_id AND l.user_id = s.user_id \
                         JOIN users u ON u.tenant_id = l.tenant_id AND u.id = l.user_id \
                         WHERE s.token_hash = $1 AND s.expires_at > $2";
                    #[allow(clippy::type_complexity, reason = "one row of the join, as sqlx reads it")]
                    let row: Option<(
                        String, String, String, String, i64, i64,
                        String, String, String, i64, String, i64, String, String, Option<String>,
                    )> = sqlx::query_as(sql)
                        .bind(token_hash)
                        .bind(now.as_micros())
                        .fetch_optional(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    let Some((h, st, su, csrf, sc, se, ut, ui, name, level, role, uc, email, hash, locale)) = row
                    else {
                        return Ok(None);
                    };
                    let session = session((h, st, su, csrf, sc, se))?;
                    let user = web_user((ut, ui, name, level, role, uc, email, hash, locale))?;
                    Ok(Some((session, user)))
                }

                async fn touch_session(&self, token_hash: &str, expires_at: Timestamp) -> Result<(), StoreError> {
                    sqlx::query("UPDATE web_sessions SET expires_at = $2 WHERE token_hash = $1")
                        .bind(token_hash)
                        .bind(expires_at.as_micros())
                        .execute(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    Ok(())
                }

                async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
                    sqlx::query("DELETE FROM web_sessions WHERE token_hash = $1")
                        .bind(token_hash)
                        .execute(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    Ok(())
                }

                async fn delete_sessions_of(&self, tenant: &TenantId, user: &UserId) -> Result<u64, StoreError> {
                    let done = sqlx::query("DELETE FROM web_sessions WHERE tenant_id = $1 AND user_id = $2")
                        .bind(tenant.as_str())
                        .bind(user.as_str())
                        .execute(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    Ok(done.rows_affected())
                }

                async fn delete_expired_sessions(&self, now: Timestamp) -> Result<u64, StoreError> {
                    let done = sqlx::query("DELETE FROM web_sessions WHERE expires_at <= $1")
                        .bind(now.as_micros())
                        .execute(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    Ok(done.rows_affected())
                }
            }
        }
    };
}

pub(crate) use impl_web_port;

//! The settings port for both backends: stored values, the revision every change moves by
//! compare-and-set, and the named facts beside them.

use domain::Timestamp;
use domain::ports::StoreError;
use domain::settings::StoredSetting;

/// A `settings` row as read.
#[derive(sqlx::FromRow)]
pub(crate) struct SettingRow {
    scope: String,
    key: String,
    value: String,
    encrypted: bool,
    updated_at: i64,
    updated_by: String,
}

pub(crate) fn setting_of(row: SettingRow) -> Result<StoredSetting, StoreError> {
    Ok(StoredSetting {
        scope: row.scope,
        key: row.key,
        value: row.value,
        encrypted: row.encrypted,
        updated_at: Timestamp::from_micros(row.updated_at),
        updated_by: row.updated_by,
    })
}

macro_rules! impl_settings_port {
    ($store:ident) => {
        mod settings_port {
            use async_trait::async_trait;
            use domain::ports::{SettingsStore, StoreError};
            use domain::settings::{SettingWrite, SettingsSnapshot};

            use super::$store;
            use $crate::backend::SqlBackend;
            use $crate::common_settings::{SettingRow, setting_of};
            use $crate::error::classify;

            #[async_trait]
            impl SettingsStore for $store {
                async fn settings(&self) -> Result<SettingsSnapshot, StoreError> {
                    // One transaction, so the values and the revision belong together.
                    let mut tx = self.pool().begin().await.map_err(|e| classify(self.target(), e))?;
                    let revision: i64 = sqlx::query_scalar("SELECT revision FROM settings_revision WHERE id = 1")
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    let rows: Vec<SettingRow> = sqlx::query_as(
                        "SELECT scope, key, value, encrypted, updated_at, updated_by FROM settings ORDER BY scope, key",
                    )
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                    tx.commit().await.map_err(|e| classify(self.target(), e))?;
                    let settings = rows.into_iter().map(setting_of).collect::<Result<_, _>>()?;
                    Ok(SettingsSnapshot { revision, settings })
                }

                async fn settings_revision(&self) -> Result<i64, StoreError> {
                    sqlx::query_scalar("SELECT revision FROM settings_revision WHERE id = 1")
                        .fetch_one(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))
                }

                async fn write_settings(
                    &self,
                    expected: i64,
                    writes: &[SettingWrite],
                    meta: &[(&str, Option<&str>)],
                ) -> Result<Option<i64>, StoreError> {
                    let mut tx = self.begin_write().await?;
                    let moved = sqlx::query(
                        "UPDATE settings_revision SET revision = revision + 1 WHERE id = 1 AND revision = $1",
                    )
                    .bind(expected)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| classify(self.target(), e))?;
                    if moved.rows_affected() != 1 {
                        tx.rollback().await.map_err(|e| classify(self.target(), e))?;
                        return Ok(None);
                    }
                    for write in writes {
                        match write {
                            SettingWrite::Put(s) => sqlx::query(
                                "INSERT INTO settings (scope, key, value, encrypted, updated_at, updated_by) \
                                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (scope, key) DO UPDATE SET \
                                 value = excluded.value, encrypted = excluded.encrypted, \
                                 updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                            )
                            .bind(&s.scope)
                            .bind(&s.key)
                            .bind(&s.value)
                            .bind(s.encrypted)
                            .bind(s.updated_at.as_micros())
                            .bind(&s.updated_by),
                            SettingWrite::Delete { scope, key } => {
                                sqlx::query("DELETE FROM settings WHERE scope = $1 AND key = $2").bind(scope).bind(key)
                            }
                        }
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    }
                    for (name, value) in meta {
                        match value {
                            Some(value) => sqlx::query(
                                "INSERT INTO settings_meta (name, value) VALUES ($1, $2) \
                                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                            )
                            .bind(*name)
                            .bind(*value),
                            None => sqlx::query("DELETE FROM settings_meta WHERE name = $1").bind(*name),
                        }
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    }
                    tx.commit().await.map_err(|e| classify(self.target(), e))?;
                    Ok(Some(expected + 1))
                }

                async fn settings_meta(&self, name: &str) -> Result<Option<String>, StoreError> {
                    sqlx::query_scalar("SELECT value FROM settings_meta WHERE name = $1")
                        .bind(name)
                        .fetch_optional(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))
                }
            }
        }
    };
}

pub(crate) use impl_settings_port;

//! The plugins port for both backends: each plugin's record, written by compare-and-set on its
//! revision.

use domain::Timestamp;
use domain::plugin::{McpServerSpec, PinnedTool, PluginRecord};
use domain::ports::StoreError;

/// A `plugins` row as read.
#[derive(sqlx::FromRow)]
pub(crate) struct PluginRow {
    name: String,
    server: Option<String>,
    enabled: bool,
    state: String,
    reason: String,
    pins: String,
    revision: i64,
    updated_at: i64,
    updated_by: String,
}

pub(crate) const PLUGIN_COLUMNS: &str = "name, server, enabled, state, reason, pins, revision, updated_at, updated_by";

pub(crate) fn plugin_of(row: PluginRow) -> Result<PluginRecord, StoreError> {
    let corrupt = |what: &str, e: &dyn std::fmt::Display| StoreError::InvalidRow {
        what: "plugin",
        reason: format!("{:?}: {what}: {e}", row.name),
    };
    let server = match &row.server {
        Some(text) => Some(serde_json::from_str::<McpServerSpec>(text).map_err(|e| corrupt("server", &e))?),
        None => None,
    };
    let pins: Vec<PinnedTool> = serde_json::from_str(&row.pins).map_err(|e| corrupt("pins", &e))?;
    let state = row.state.parse().map_err(|e| corrupt("state", &e))?;
    Ok(PluginRecord {
        server,
        enabled: row.enabled,
        state,
        reason: row.reason,
        pins,
        revision: row.revision,
        updated_at: Timestamp::from_micros(row.updated_at),
        updated_by: row.updated_by,
        name: row.name,
    })
}

/// The stored text of a record's server and pins.
pub(crate) fn plugin_texts(record: &PluginRecord) -> Result<(Option<String>, String), StoreError> {
    let invalid =
        |e: serde_json::Error| StoreError::InvalidRow { what: "plugin", reason: format!("{:?}: {e}", record.name) };
    let server = record.server.as_ref().map(serde_json::to_string).transpose().map_err(invalid)?;
    let pins = serde_json::to_string(&record.pins).map_err(invalid)?;
    Ok((server, pins))
}

macro_rules! impl_plugins_port {
    ($store:ident) => {
        mod plugins_port {
            use async_trait::async_trait;
            use domain::plugin::PluginRecord;
            use domain::ports::{PluginStore, StoreError};

            use super::$store;
            use $crate::backend::SqlBackend;
            use $crate::common_plugins::{PLUGIN_COLUMNS, PluginRow, plugin_of, plugin_texts};
            use $crate::error::classify;

            #[async_trait]
            impl PluginStore for $store {
                async fn plugins(&self) -> Result<Vec<PluginRecord>, StoreError> {
                    let rows: Vec<PluginRow> =
                        sqlx::query_as(&format!("SELECT {PLUGIN_COLUMNS} FROM plugins ORDER BY name"))
                            .fetch_all(self.pool())
                            .await
                            .map_err(|e| classify(self.target(), e))?;
                    rows.into_iter().map(plugin_of).collect()
                }

                async fn put_plugin(&self, record: &PluginRecord) -> Result<bool, StoreError> {
                    let (server, pins) = plugin_texts(record)?;
                    let sql = if record.revision == 0 {
                        format!(
                            "INSERT INTO plugins ({PLUGIN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7 + 1, $8, $9) \
                             ON CONFLICT (name) DO NOTHING"
                        )
                    } else {
                        "UPDATE plugins SET server = $2, enabled = $3, state = $4, reason = $5, pins = $6, \
                         revision = $7 + 1, updated_at = $8, updated_by = $9 WHERE name = $1 AND revision = $7"
                            .to_owned()
                    };
                    let done = sqlx::query(&sql)
                        .bind(&record.name)
                        .bind(server)
                        .bind(record.enabled)
                        .bind(record.state.as_str())
                        .bind(&record.reason)
                        .bind(pins)
                        .bind(record.revision)
                        .bind(record.updated_at.as_micros())
                        .bind(&record.updated_by)
                        .execute(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    Ok(done.rows_affected() == 1)
                }

                async fn delete_plugin(&self, name: &str, revision: i64) -> Result<bool, StoreError> {
                    let done = sqlx::query("DELETE FROM plugins WHERE name = $1 AND revision = $2")
                        .bind(name)
                        .bind(revision)
                        .execute(self.pool())
                        .await
                        .map_err(|e| classify(self.target(), e))?;
                    Ok(done.rows_affected() == 1)
                }
            }
        }
    };
}

pub(crate) use impl_plugins_port;

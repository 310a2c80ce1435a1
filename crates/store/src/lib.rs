//! SQLite and PostgreSQL implementations of the storage ports in `domain::ports`.
//!
//! [`open`] picks the backend from the URL (`sqlite://…`, `postgres://…`) and applies that
//! backend's migrations before returning.
//!
//! **Architecture Invariant:** only this crate speaks SQL; only the `nexus` binary names it.

mod agent_rows;
mod backend;
pub mod backup;
mod common;
mod common_agent;
mod common_channels;
mod common_chat;
mod common_feed;
mod common_jobs;
mod common_knowledge;
mod common_log;
mod common_memory;
mod common_plugins;
mod common_reports;
mod common_settings;
mod common_watchers;
mod common_web;
mod error;
pub mod notify;
pub mod pg_export;
mod postgres;
mod postgres_notify;
pub mod redis;
mod rows;
mod script;
mod sqlite;
#[cfg(feature = "test-support")]
pub mod test_support;

use std::path::PathBuf;
use std::sync::Arc;

use domain::ports::{Store, StoreError};

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// A parsed database URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

/// Why a database URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("database URL {url:?}: {reason}")]
pub struct UrlError {
    pub url: String,
    pub reason: &'static str,
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let err = |reason| UrlError { url: redact(url), reason };
        if let Some(rest) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            let path = rest.split('?').next().unwrap_or_default();
            if path.is_empty() || path == ":memory:" {
                return Err(err("give a file path, e.g. sqlite:///var/lib/nexus/nexus.db"));
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(url.to_owned()));
        }
        Err(err("expected a sqlite:// or postgres:// URL"))
    }
}

/// The URL with any password replaced by `***`, for messages and logs.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let Some((userinfo, host)) = rest.split_once('@') else { return url.to_owned() };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// Opens the store at `url`, creating and migrating it as needed.
pub async fn open(url: &DatabaseUrl) -> Result<Arc<dyn Store>, StoreError> {
    match url {
        DatabaseUrl::Sqlite(path) => Ok(Arc::new(SqliteStore::open(path).await?)),
        DatabaseUrl::Postgres(url) => Ok(Arc::new(PgStore::open(url, redact(url)).await?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_pick_the_backend() {
        assert_eq!(DatabaseUrl::parse("sqlite:///var/lib/n.db"), Ok(DatabaseUrl::Sqlite("/var/lib/n.db".into())));
        assert_eq!(DatabaseUrl::parse("sqlite://data/n.db"), Ok(DatabaseUrl::Sqlite("data/n.db".into())));
        assert_eq!(DatabaseUrl::parse("sqlite:n.db?mode=rwc"), Ok(DatabaseUrl::Sqlite("n.db".into())));
        assert!(matches!(DatabaseUrl::parse("postgres://u@h/db"), Ok(DatabaseUrl::Postgres(_))));
        assert!(DatabaseUrl::parse("mysql://h/db").is_err());
        assert!(DatabaseUrl::parse("sqlite::memory:").is_err());
    }

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(redact("postgres://nexus:s3cret@db:5432/nexus"), "postgres://nexus:***@db:5432/nexus");
        let err = DatabaseUrl::parse("mysql://root:hunter2@h/db").expect_err("unsupported");
        assert!(!err.to_string().contains("hunter2"));
    }
}

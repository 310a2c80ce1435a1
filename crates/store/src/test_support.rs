//! Test helpers: a fresh SQLite file, and a throwaway PostgreSQL schema when
//! `NEXUS_TEST_POSTGRES_URL` is set. With `CI=true` PostgreSQL is required: a missing URL or an
//! unreachable server fails the test instead of skipping it.

use std::sync::Arc;

use domain::ports::Store;
use sqlx::Connection as _;

use crate::{PgStore, SqliteStore, redact};

/// A database that lives as long as the test.
pub struct TestDatabase {
    pub store: Arc<dyn Store>,
    /// A URL that opens this same database (for child processes and the CLI).
    pub url: String,
    pub backend: &'static str,
    _dir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for TestDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDatabase").field("url", &redact(&self.url)).finish_non_exhaustive()
    }
}

/// A new SQLite database in a temporary directory.
pub async fn sqlite() -> TestDatabase {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let path = dir.path().join("nexus.db");
    let store = SqliteStore::open(&path).await.expect("open a fresh SQLite database");
    TestDatabase {
        store: Arc::new(store),
        url: format!("sqlite://{}", path.display()),
        backend: "sqlite",
        _dir: Some(dir),
    }
}

/// The PostgreSQL URL to test against, if any. Panics when `CI=true` and it is not set.
pub fn postgres_url() -> Option<String> {
    match std::env::var("NEXUS_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but NEXUS_TEST_POSTGRES_URL is not set: PostgreSQL tests must run in CI")
        }
        _ => None,
    }
}

/// A URL for a fresh, empty schema in the test PostgreSQL database, or `None` when PostgreSQL
/// tests are not configured (outside CI).
pub async fn postgres_schema_url() -> Option<String> {
    let base = postgres_url()?;
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("NEXUS_TEST_POSTGRES_URL ({}) is unreachable: {e}", redact(&base)));
    sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&mut admin).await.expect("create a test schema");
    let _ = admin.close().await;
    let separator = if base.contains('?') { '&' } else { '?' };
    Some(format!("{base}{separator}options=-c%20search_path%3D{schema}"))
}

/// A fresh PostgreSQL-backed store, or `None` when PostgreSQL tests are not configured.
pub async fn postgres() -> Option<TestDatabase> {
    let url = postgres_schema_url().await?;
    let store = PgStore::open(&url, redact(&url)).await.expect("open the test PostgreSQL schema");
    Some(TestDatabase { store: Arc::new(store), url, backend: "postgres", _dir: None })
}

/// Every backend available to this test run: SQLite always, PostgreSQL when configured.
pub async fn backends() -> Vec<TestDatabase> {
    let mut all = vec![sqlite().await];
    all.extend(postgres().await);
    all
}

/// The Redis URL to test against, if any. Panics when `CI=true` and it is not set.
pub fn redis_url() -> Option<String> {
    match std::env::var("NEXUS_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but NEXUS_TEST_REDIS_URL is not set: Redis tests must run in CI")
        }
        _ => {
            eprintln!("skipped: NEXUS_TEST_REDIS_URL is not set");
            None
        }
    }
}

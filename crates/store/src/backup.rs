//! Consistent copies of the database, and putting one back: the storage half of `nexus backup`
//! and `nexus restore` (the binary adds the manifest, the ledger verification and retention).
//!
//! - SQLite: `VACUUM INTO` a temporary file beside the target — a consistent snapshot taken
//!   while the server keeps writing — then `PRAGMA integrity_check` on the copy, `fsync`, and an
//!   atomic rename. Putting one back copies it beside the live file, syncs it, removes the old
//!   WAL and shared-memory files and renames it over the database.
//! - PostgreSQL: `pg_dump -Fc` of the store's schema (one consistent snapshot); it is verified by
//!   restoring it into a scratch database that is dropped afterwards, and put back with
//!   `pg_restore --clean --if-exists --single-transaction`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr as _;

use domain::Timestamp;
use sqlx::Connection as _;
use sqlx::sqlite::SqliteConnectOptions;

use crate::DatabaseUrl;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// A step failed; `what` names it (the file, the command, the query).
    #[error("{what}: {reason}")]
    Failed { what: String, reason: String },
    /// The copy is not sound (integrity check, missing tables).
    #[error("{0}")]
    Unsound(String),
}

fn failed(what: impl Into<String>, reason: impl ToString) -> BackupError {
    BackupError::Failed { what: what.into(), reason: reason.to_string() }
}

/// What a database holds: its schema version (the last migration applied) and each table's
/// row count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    pub schema_version: i64,
    pub row_counts: BTreeMap<String, i64>,
}

/// The inventory read over an open connection of either backend (the queries are the same but
/// for how the tables are listed): `$tables` lists them, `$what` names the database in errors.
macro_rules! inventory_over {
    ($connection:ident, $tables:expr, $what:expr) => {{
        let what = $what;
        let schema_version: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&mut $connection)
            .await
            .map_err(|e| failed(what.clone(), e))?;
        let tables: Vec<String> =
            sqlx::query_scalar($tables).fetch_all(&mut $connection).await.map_err(|e| failed(what.clone(), e))?;
        let mut row_counts = BTreeMap::new();
        for table in tables {
            let count: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM \"{}\"", table.replace('"', "\"\"")))
                .fetch_one(&mut $connection)
                .await
                .map_err(|e| failed(what.clone(), e))?;
            row_counts.insert(table, count);
        }
        let schema_version = schema_version.ok_or_else(|| BackupError::Unsound("no migrations were applied".into()))?;
        Ok(Inventory { schema_version, row_counts })
    }};
}

/// A snapshot of the SQLite database at `source` written to `into` (never half-written: a
/// temporary file is checked, synced and renamed).
pub async fn snapshot_sqlite(source: &Path, into: &Path) -> Result<(), BackupError> {
    let temporary = temporary_beside(into);
    let _ = std::fs::remove_file(&temporary);
    let mut connection = sqlite_connection(source, true).await?;
    let target = temporary.to_str().ok_or_else(|| failed(into.display().to_string(), "the path is not UTF-8"))?;
    sqlx::query("VACUUM INTO $1")
        .bind(target)
        .execute(&mut connection)
        .await
        .map_err(|e| failed(format!("VACUUM INTO {}", temporary.display()), e))?;
    drop(connection);
    if let Err(error) = check_sqlite(&temporary).await {
        let _ = std::fs::remove_file(&temporary);
        return Err(error);
    }
    sync_and_rename(&temporary, into).await
}

/// `PRAGMA integrity_check` on a SQLite file, read-only.
pub async fn check_sqlite(path: &Path) -> Result<(), BackupError> {
    let mut connection = sqlite_connection(path, false).await?;
    let rows: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut connection)
        .await
        .map_err(|e| failed(format!("integrity check of {}", path.display()), e))?;
    if rows.len() == 1 && rows[0] == "ok" {
        Ok(())
    } else {
        Err(BackupError::Unsound(format!(
            "{} fails SQLite's integrity check: {}",
            path.display(),
            rows.into_iter().take(5).collect::<Vec<_>>().join("; ")
        )))
    }
}

/// The schema version and row counts of a SQLite file or a PostgreSQL schema.
pub async fn inventory(url: &DatabaseUrl) -> Result<Inventory, BackupError> {
    match url {
        DatabaseUrl::Sqlite(path) => {
            let mut connection = sqlite_connection(path, false).await?;
            let tables = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
                          AND name NOT LIKE '%_fts%' AND name <> '_sqlx_migrations' ORDER BY name";
            inventory_over!(connection, tables, format!("reading {}", path.display()))
        }
        DatabaseUrl::Postgres(url) => {
            let mut connection = sqlx::PgConnection::connect(url).await.map_err(|e| failed(crate::redact(url), e))?;
            let tables = "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema() \
                          AND table_type = 'BASE TABLE' AND table_name <> '_sqlx_migrations' ORDER BY table_name";
            inventory_over!(connection, tables, format!("reading {}", crate::redact(url)))
        }
    }
}

/// When a Nexus server last showed it was alive on this database (`None`: never, or the
/// database is new).
pub async fn last_heartbeat(url: &DatabaseUrl) -> Result<Option<Timestamp>, BackupError> {
    let query = "SELECT MAX(heartbeat_at) FROM instances";
    let micros: Option<i64> = match url {
        DatabaseUrl::Sqlite(path) => {
            if !path.exists() {
                return Ok(None);
            }
            let mut connection = sqlite_connection(path, false).await?;
            sqlx::query_scalar(query).fetch_one(&mut connection).await.ok().flatten()
        }
        DatabaseUrl::Postgres(url) => {
            let mut connection = sqlx::PgConnection::connect(url).await.map_err(|e| failed(crate::redact(url), e))?;
            sqlx::query_scalar(query).fetch_one(&mut connection).await.ok().flatten()
        }
    };
    Ok(micros.map(Timestamp::from_micros))
}

/// Puts the SQLite file `backup` in place of the database at `db`: copied beside it, synced,
/// the old WAL and shared-memory files removed, renamed over it. No server may be running.
pub async fn replace_sqlite(backup: &Path, db: &Path) -> Result<(), BackupError> {
    let temporary = temporary_beside(db);
    let (from, to) = (backup.to_owned(), temporary.clone());
    tokio::task::spawn_blocking(move || std::fs::copy(&from, &to))
        .await
        .map_err(|e| failed("the file copier", e))?
        .map_err(|e| failed(format!("copying {} to {}", backup.display(), temporary.display()), e))?;
    for suffix in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{suffix}", db.display()));
        match std::fs::remove_file(&side) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(failed(format!("removing {}", side.display()), e)),
        }
    }
    sync_and_rename(&temporary, db).await
}

/// The schema of a PostgreSQL URL (its `search_path`, else `public`).
pub async fn postgres_schema(url: &str) -> Result<String, BackupError> {
    let mut connection = sqlx::PgConnection::connect(url).await.map_err(|e| failed(crate::redact(url), e))?;
    sqlx::query_scalar("SELECT current_schema()::text")
        .fetch_one(&mut connection)
        .await
        .map_err(|e| failed(crate::redact(url), e))
}

/// Whether PostgreSQL's client tools (`pg_dump`, `pg_restore`) are on the `PATH`; without them
/// backups use the built-in export ([`crate::pg_export`]).
pub fn pg_tools_installed() -> bool {
    let Some(path) = std::env::var_os("PATH") else { return false };
    ["pg_dump", "pg_restore"].iter().all(|tool| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
}

/// A copy of the store's schema into `into` (written to a temporary file, then renamed):
/// `pg_dump -Fc` when PostgreSQL's client tools are installed, else the built-in export.
pub async fn dump_postgres(url: &str, into: &Path) -> Result<(), BackupError> {
    if !pg_tools_installed() {
        return crate::pg_export::export(url, into).await;
    }
    let schema = postgres_schema(url).await?;
    let temporary = temporary_beside(into);
    let args = vec![
        "--format=custom".into(),
        "--no-owner".into(),
        "--no-privileges".into(),
        "--schema".into(),
        schema.into(),
        "--file".into(),
        temporary.clone().into_os_string(),
        "--dbname".into(),
        url.into(),
    ];
    run("pg_dump", args).await?;
    sync_and_rename(&temporary, into).await
}

/// Restores a dump into a new scratch database on the same server (for checking it); returns
/// the scratch database's URL. Drop it with [`drop_postgres_scratch`].
pub async fn restore_postgres_scratch(url: &str, dump: &Path) -> Result<(String, String), BackupError> {
    let name = format!("nexus_check_{}", Timestamp::now().as_micros());
    let mut connection = sqlx::PgConnection::connect(url).await.map_err(|e| failed(crate::redact(url), e))?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut connection)
        .await
        .map_err(|e| failed(format!("creating the scratch database {name}"), e))?;
    let scratch = with_database(url, &name)?;
    if crate::pg_export::is_export(dump).await {
        // The scratch database gets the store's schema (its name, then this version's tables),
        // then the export's rows.
        let schema = postgres_schema(url).await?;
        let created = async {
            let mut connection = sqlx::PgConnection::connect(&scratch).await?;
            sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS \"{}\"", schema.replace('"', "\"\"")))
                .execute(&mut connection)
                .await
                .map(drop)
        };
        if let Err(error) = created.await {
            drop_postgres_scratch(url, &name).await;
            return Err(failed(format!("creating schema {schema} in the scratch database {name}"), error));
        }
        let migrated = match crate::postgres::PgStore::open(&scratch, crate::redact(&scratch)).await {
            Ok(store) => {
                domain::ports::Store::close(&store).await;
                crate::pg_export::import(&scratch, dump).await
            }
            Err(error) => Err(failed(format!("migrating the scratch database {name}"), error)),
        };
        if let Err(error) = migrated {
            drop_postgres_scratch(url, &name).await;
            return Err(error);
        }
        return Ok((scratch, name));
    }
    let mut args: Vec<std::ffi::OsString> =
        ["--clean", "--if-exists", "--no-owner", "--no-privileges", "--exit-on-error", "--dbname"]
            .into_iter()
            .map(Into::into)
            .collect();
    args.extend([scratch.clone().into(), dump.as_os_str().to_owned()]);
    if let Err(error) = run("pg_restore", args).await {
        drop_postgres_scratch(url, &name).await;
        return Err(error);
    }
    Ok((scratch, name))
}

/// Drops a scratch database made by [`restore_postgres_scratch`] (best effort).
pub async fn drop_postgres_scratch(url: &str, name: &str) {
    match sqlx::PgConnection::connect(url).await {
        Ok(mut connection) => {
            if let Err(error) =
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut connection).await
            {
                tracing::warn!(%error, database = name, "could not drop a scratch database");
            }
        }
        Err(error) => tracing::warn!(%error, database = name, "could not drop a scratch database"),
    }
}

/// Puts a dump (or a built-in export) back in place of the store's schema, in one transaction.
pub async fn replace_postgres(url: &str, dump: &Path) -> Result<(), BackupError> {
    if crate::pg_export::is_export(dump).await {
        let store = crate::postgres::PgStore::open(url, crate::redact(url))
            .await
            .map_err(|e| failed("migrating the database", e))?;
        domain::ports::Store::close(&store).await;
        return crate::pg_export::import(url, dump).await;
    }
    let mut args: Vec<std::ffi::OsString> = [
        "--clean",
        "--if-exists",
        "--single-transaction",
        "--no-owner",
        "--no-privileges",
        "--exit-on-error",
        "--dbname",
    ]
    .into_iter()
    .map(Into::into)
    .collect();
    args.extend([url.into(), dump.as_os_str().to_owned()]);
    run("pg_restore", args).await
}

/// `url` naming database `name` instead (its query, e.g. the search path, kept).
fn with_database(url: &str, name: &str) -> Result<String, BackupError> {
    let (head, query) = url.split_once('?').map_or((url, None), |(h, q)| (h, Some(q)));
    let scheme_end = head.find("://").map_or(0, |i| i + 3);
    let path_start = head[scheme_end..].find('/').map(|i| scheme_end + i);
    let base = match path_start {
        Some(i) => &head[..i],
        None => head,
    };
    if base.len() <= scheme_end {
        return Err(failed(crate::redact(url), "not a postgres://host/database URL"));
    }
    Ok(match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    })
}

/// A URL without its password, and the password: the tools get it in `PGPASSWORD`, so it never
/// shows in the process list.
fn without_password(url: &str) -> (String, Option<String>) {
    let Some((scheme, rest)) = url.split_once("://") else { return (url.to_owned(), None) };
    let Some((userinfo, host)) = rest.split_once('@') else { return (url.to_owned(), None) };
    match userinfo.split_once(':') {
        Some((user, password)) => (format!("{scheme}://{user}@{host}"), Some(password.to_owned())),
        None => (url.to_owned(), None),
    }
}

/// Runs one of PostgreSQL's client tools to its end; its error output on failure. Arguments
/// that are database URLs lose their password to `PGPASSWORD`.
async fn run(program: &'static str, args: Vec<std::ffi::OsString>) -> Result<(), BackupError> {
    let mut password = None;
    let args: Vec<std::ffi::OsString> = args
        .into_iter()
        .map(|arg| match arg.to_str() {
            Some(text) if text.starts_with("postgres://") || text.starts_with("postgresql://") => {
                let (url, secret) = without_password(text);
                if password.is_none() {
                    password = secret;
                }
                url.into()
            }
            _ => arg,
        })
        .collect();
    let output = tokio::task::spawn_blocking(move || {
        // Backups of PostgreSQL are made by PostgreSQL's own tools, not by Nexus reimplementing them.
        #[allow(clippy::disallowed_methods)]
        let mut command = std::process::Command::new(program);
        if let Some(password) = password {
            // Percent-decoding is the URL's; the tools read the variable as is.
            command.env("PGPASSWORD", percent_decode(&password));
        }
        command.args(&args).stdin(std::process::Stdio::null()).output()
    })
    .await
    .map_err(|e| failed(program, e))?
    .map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            failed(program, "is not installed (PostgreSQL's client tools are needed for PostgreSQL backups)")
        } else {
            failed(program, e)
        }
    })?;
    if output.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(failed(program, format!("{}: {}", output.status, stderr.trim())))
    }
}

/// `%XX` escapes decoded (as in a URL's password).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = text.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn sqlite_connection(path: &Path, write: bool) -> Result<sqlx::SqliteConnection, BackupError> {
    let options = SqliteConnectOptions::from_str("sqlite://")
        .map_err(|e| failed(path.display().to_string(), e))?
        .filename(path)
        .read_only(!write)
        .busy_timeout(std::time::Duration::from_secs(10));
    sqlx::SqliteConnection::connect_with(&options).await.map_err(|e| failed(path.display().to_string(), e))
}

fn temporary_beside(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".partial");
    path.with_file_name(name)
}

/// Syncs a finished file, renames it into place and syncs its directory.
async fn sync_and_rename(temporary: &Path, into: &Path) -> Result<(), BackupError> {
    let (temporary, into) = (temporary.to_owned(), into.to_owned());
    tokio::task::spawn_blocking(move || {
        std::fs::File::open(&temporary)
            .and_then(|f| f.sync_all())
            .map_err(|e| failed(format!("syncing {}", temporary.display()), e))?;
        std::fs::rename(&temporary, &into).map_err(|e| failed(format!("renaming to {}", into.display()), e))?;
        if let Some(dir) = into.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| failed(format!("syncing {}", dir.display()), e))?;
        }
        Ok(())
    })
    .await
    .map_err(|e| failed("the file writer", e))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_go_to_the_environment_not_the_command_line() {
        assert_eq!(
            without_password("postgres://nexus:s%40cret@db:5432/nexus"),
            ("postgres://nexus@db:5432/nexus".to_owned(), Some("s%40cret".to_owned()))
        );
        assert_eq!(percent_decode("s%40cret"), "s@cret");
        assert_eq!(without_password("postgres://nexus@db/n"), ("postgres://nexus@db/n".to_owned(), None));
    }

    #[test]
    fn scratch_urls_keep_the_query() {
        assert_eq!(
            with_database("postgres://u@h:5432/nexus?options=-c%20search_path%3Dt1", "scratch").ok().as_deref(),
            Some("postgres://u@h:5432/scratch?options=-c%20search_path%3Dt1")
        );
        assert_eq!(with_database("postgres://u:p@h/db", "s").ok().as_deref(), Some("postgres://u:p@h/s"));
        assert_eq!(with_database("postgres://h", "s").ok().as_deref(), Some("postgres://h/s"));
    }
}

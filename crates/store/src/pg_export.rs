//! A logical export of the store's PostgreSQL schema, for machines without PostgreSQL's client
//! tools (`pg_dump`, `pg_restore`). One JSON document per line: a header (the format, the schema
//! version, the tables), then every row of every table as `{"t": table, "r": row}` — read in
//! one repeatable-read, read-only transaction, so the export is one consistent snapshot while
//! servers keep writing.
//!
//! An import replaces the schema's rows in one transaction: every table emptied, rows inserted
//! parents first (by the foreign keys), each table's sequences moved past its largest id. The
//! schema must be at the export's migration version (a backup restores with the Nexus version
//! that took it; a later version migrates the database after the restore). Generated columns
//! are left out and computed again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use futures_util::TryStreamExt as _;
use serde_json::{Value, json};
use sqlx::Connection as _;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};

use crate::backup::BackupError;

/// The first line's `format`.
pub const FORMAT: &str = "nexus-pg-export/v1";

/// Rows inserted per statement.
const BATCH: usize = 500;

fn failed(what: impl Into<String>, reason: impl ToString) -> BackupError {
    BackupError::Failed { what: what.into(), reason: reason.to_string() }
}

/// Whether `path` holds an export (rather than a `pg_dump` archive): its first line says so.
pub async fn is_export(path: &Path) -> bool {
    use tokio::io::AsyncReadExt as _;
    let Ok(mut file) = tokio::fs::File::open(path).await else { return false };
    let mut head = vec![0u8; 4096];
    let Ok(read) = file.read(&mut head).await else { return false };
    let first = head[..read].split(|b| *b == b'\n').next().unwrap_or_default();
    serde_json::from_slice::<Value>(first).is_ok_and(|v| v["format"] == FORMAT)
}

/// The schema's tables (not the migration bookkeeping), parents before children.
async fn tables(connection: &mut sqlx::PgConnection) -> Result<Vec<String>, BackupError> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' AND table_name <> '_sqlx_migrations' \
         ORDER BY table_name",
    )
    .fetch_all(&mut *connection)
    .await
    .map_err(|e| failed("listing the tables", e))?;
    let edges: Vec<(String, String)> = sqlx::query_as(
        "SELECT child.relname::text, parent.relname::text FROM pg_constraint c \
         JOIN pg_class child ON child.oid = c.conrelid JOIN pg_class parent ON parent.oid = c.confrelid \
         JOIN pg_namespace n ON n.oid = child.relnamespace \
         WHERE c.contype = 'f' AND n.nspname = current_schema() AND child.oid <> parent.oid",
    )
    .fetch_all(&mut *connection)
    .await
    .map_err(|e| failed("reading the foreign keys", e))?;
    let mut parents: BTreeMap<&str, BTreeSet<&str>> = names.iter().map(|n| (n.as_str(), BTreeSet::new())).collect();
    for (child, parent) in &edges {
        if let Some(set) = parents.get_mut(child.as_str()) {
            set.insert(parent.as_str());
        }
    }
    let mut ordered: Vec<String> = Vec::with_capacity(names.len());
    while ordered.len() < names.len() {
        let ready: Vec<&str> = parents
            .iter()
            .filter(|(name, deps)| {
                !ordered.iter().any(|o| o == *name) && deps.iter().all(|d| ordered.iter().any(|o| o == d))
            })
            .map(|(name, _)| *name)
            .collect();
        if ready.is_empty() {
            return Err(BackupError::Unsound("the tables' foreign keys form a cycle".to_owned()));
        }
        ordered.extend(ready.into_iter().map(str::to_owned));
    }
    Ok(ordered)
}

async fn schema_version(connection: &mut sqlx::PgConnection) -> Result<i64, BackupError> {
    sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations")
        .fetch_one(&mut *connection)
        .await
        .map_err(|e| failed("reading the schema version", e))
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Exports the schema of `url` into `into` (a temporary file beside it, synced, then renamed).
pub async fn export(url: &str, into: &Path) -> Result<(), BackupError> {
    let target = crate::redact(url);
    let mut connection = sqlx::PgConnection::connect(url).await.map_err(|e| failed(&target, e))?;
    let mut tx = connection.begin().await.map_err(|e| failed(&target, e))?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await
        .map_err(|e| failed(&target, e))?;
    let tables = tables(&mut tx).await?;
    let version = schema_version(&mut tx).await?;
    let temporary = into.with_extension(format!("partial-{}", std::process::id()));
    let file = tokio::fs::File::create(&temporary).await.map_err(|e| failed(temporary.display().to_string(), e))?;
    let mut out = tokio::io::BufWriter::new(file);
    let write_error = |e: std::io::Error| failed(temporary.display().to_string(), e);
    let header = json!({"format": FORMAT, "schema_version": version, "tables": tables});
    out.write_all(format!("{header}\n").as_bytes()).await.map_err(write_error)?;
    for table in &tables {
        let sql = format!("SELECT row_to_json(t)::text FROM {} t", quoted(table));
        let mut rows = sqlx::query_scalar::<_, String>(&sql).fetch(&mut *tx);
        while let Some(row) = rows.try_next().await.map_err(|e| failed(format!("reading {table}"), e))? {
            let line = format!("{{\"t\":{},\"r\":{row}}}\n", Value::String(table.clone()));
            out.write_all(line.as_bytes()).await.map_err(write_error)?;
        }
    }
    out.flush().await.map_err(write_error)?;
    let file = out.into_inner();
    file.sync_all().await.map_err(write_error)?;
    drop(file);
    tx.commit().await.map_err(|e| failed(&target, e))?;
    tokio::fs::rename(&temporary, into).await.map_err(|e| failed(into.display().to_string(), e))?;
    Ok(())
}

/// Replaces every row of the schema of `url` with the export's, in one transaction.
pub async fn import(url: &str, file: &Path) -> Result<(), BackupError> {
    let target = crate::redact(url);
    let what = file.display().to_string();
    let reader = tokio::fs::File::open(file).await.map_err(|e| failed(&what, e))?;
    let mut lines = tokio::io::BufReader::new(reader).lines();
    let header: Value = match lines.next_line().await.map_err(|e| failed(&what, e))? {
        Some(line) => serde_json::from_str(&line).map_err(|e| failed(&what, format!("not an export: {e}")))?,
        None => return Err(BackupError::Unsound(format!("{what} is empty"))),
    };
    if header["format"] != FORMAT {
        return Err(BackupError::Unsound(format!("{what} is not a {FORMAT} file")));
    }
    let mut connection = sqlx::PgConnection::connect(url).await.map_err(|e| failed(&target, e))?;
    let mut tx = connection.begin().await.map_err(|e| failed(&target, e))?;
    let version = schema_version(&mut tx).await?;
    if header["schema_version"].as_i64() != Some(version) {
        return Err(BackupError::Unsound(format!(
            "the export is at schema version {}, the database at {version}: restore it with the Nexus version that took it",
            header["schema_version"]
        )));
    }
    let tables = tables(&mut tx).await?;
    let exported: Vec<&str> = header["tables"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    if let Some(missing) = exported.iter().find(|t| !tables.iter().any(|n| n == *t)) {
        return Err(BackupError::Unsound(format!("the export has table {missing}, the database does not")));
    }
    let all: Vec<String> = tables.iter().map(|t| quoted(t)).collect();
    sqlx::query(&format!("TRUNCATE {} CASCADE", all.join(", ")))
        .execute(&mut *tx)
        .await
        .map_err(|e| failed("emptying the tables", e))?;
    // Rows come table by table in the export's order; they are held per table and inserted
    // parents first, so foreign keys hold at every statement.
    let mut rows: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    while let Some(line) = lines.next_line().await.map_err(|e| failed(&what, e))? {
        if line.trim().is_empty() {
            continue;
        }
        let mut entry: Value =
            serde_json::from_str(&line).map_err(|e| failed(&what, format!("a damaged line: {e}")))?;
        let Some(table) = entry["t"].as_str().map(str::to_owned) else {
            return Err(BackupError::Unsound(format!("{what}: a line without its table")));
        };
        if !tables.contains(&table) {
            return Err(BackupError::Unsound(format!("{what}: rows of unknown table {table}")));
        }
        rows.entry(table).or_default().push(entry["r"].take());
    }
    for table in &tables {
        let Some(table_rows) = rows.get(table) else { continue };
        // Generated columns (a full-text `tsvector`) are computed again, never inserted.
        let columns: Vec<String> = sqlx::query_scalar(
            "SELECT column_name::text FROM information_schema.columns WHERE table_schema = current_schema() \
             AND table_name = $1 AND is_generated = 'NEVER' ORDER BY ordinal_position",
        )
        .bind(table)
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| failed(format!("reading the columns of {table}"), e))?;
        let columns = columns.iter().map(|c| quoted(c)).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "INSERT INTO {t} ({columns}) OVERRIDING SYSTEM VALUE SELECT {columns} \
             FROM json_populate_recordset(NULL::{t}, $1::json)",
            t = quoted(table)
        );
        for chunk in table_rows.chunks(BATCH) {
            sqlx::query(&sql)
                .bind(Value::Array(chunk.to_vec()).to_string())
                .execute(&mut *tx)
                .await
                .map_err(|e| failed(format!("restoring {table}"), e))?;
        }
    }
    // Sequences continue after the restored ids.
    let serials: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND (column_default LIKE 'nextval(%' OR is_identity = 'YES')",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(|e| failed("reading the sequences", e))?;
    for (table, column) in serials {
        let sql = format!(
            "SELECT setval(pg_get_serial_sequence($1, $2), COALESCE(MAX({c}), 1), MAX({c}) IS NOT NULL) FROM {t}",
            c = quoted(&column),
            t = quoted(&table)
        );
        sqlx::query(&sql)
            .bind(quoted(&table))
            .bind(&column)
            .execute(&mut *tx)
            .await
            .map_err(|e| failed(format!("moving the sequence of {table}.{column}"), e))?;
    }
    tx.commit().await.map_err(|e| failed(&target, e))?;
    Ok(())
}

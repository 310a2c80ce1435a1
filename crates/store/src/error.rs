//! Turning `sqlx` errors into the port's `StoreError`, with the database named.

use domain::ports::StoreError;

/// SQLite primary result codes that mean the file is damaged or not a database.
const SQLITE_CORRUPT: i64 = 11;
const SQLITE_NOTADB: i64 = 26;

/// Classifies an error from the database at `target` (a path or a redacted URL).
pub(crate) fn classify(target: &str, error: sqlx::Error) -> StoreError {
    let target = target.to_owned();
    match error {
        sqlx::Error::Io(e) => StoreError::Unavailable { target, reason: e.to_string() },
        sqlx::Error::Tls(e) => StoreError::Unavailable { target, reason: format!("TLS: {e}") },
        sqlx::Error::PoolTimedOut => {
            StoreError::Unavailable { target, reason: "timed out waiting for a connection".into() }
        }
        sqlx::Error::PoolClosed => StoreError::Unavailable { target, reason: "the store is closed".into() },
        sqlx::Error::Database(db) => {
            let message = db.message().to_owned();
            let code = db.code().and_then(|c| c.parse::<i64>().ok());
            match code {
                // Extended SQLite codes keep the primary code in the low byte.
                Some(c) if c & 0xff == SQLITE_CORRUPT || c & 0xff == SQLITE_NOTADB => {
                    StoreError::Corrupt { target, reason: message }
                }
                _ => StoreError::Backend(message),
            }
        }
        other => StoreError::Backend(other.to_string()),
    }
}

/// As [`classify`], but a uniqueness violation becomes a conflict on `what`.
pub(crate) fn classify_insert(target: &str, what: impl FnOnce() -> String, error: sqlx::Error) -> StoreError {
    if error.as_database_error().is_some_and(|db| db.is_unique_violation()) {
        return StoreError::Conflict { what: what() };
    }
    classify(target, error)
}

pub(crate) fn classify_migration(target: &str, error: sqlx::migrate::MigrateError) -> StoreError {
    match error {
        sqlx::migrate::MigrateError::Execute(inner) => match classify(target, inner) {
            StoreError::Backend(reason) => StoreError::Migration { target: target.to_owned(), reason },
            other => other,
        },
        other => StoreError::Migration { target: target.to_owned(), reason: other.to_string() },
    }
}

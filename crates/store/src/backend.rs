//! What a SQL backend gives the shared queries: the contract behind [`impl_store!`].
//!
//! The ports are implemented once, by macros in `common*.rs`, for both pool types: the SQL
//! is portable, but sqlx's executor bounds make the same code generic over a database only
//! at great cost in `where` clauses, so a macro writes it out for each concrete store. The
//! macros may use only what this trait names; a backend that does not implement it (or
//! implements it for another database) fails to compile at the macro call, not inside it.
//!
//! [`impl_store!`]: crate::common::impl_store

use std::future::Future;

use domain::Timestamp;
use domain::ledger::LedgerRecord;
use domain::ports::StoreError;

use crate::common_jobs::JobRow;
use crate::script::Script;

/// A store the shared queries can run on.
pub(crate) trait SqlBackend: Send + Sync + 'static {
    /// The sqlx database the pool speaks.
    type Db: sqlx::Database;

    /// Lexical candidates from the backend's full-text index, best first: $1 tenant, $2
    /// namespace, $3 highest access rank, $4 limit, $5 the match expression from
    /// [`SqlBackend::chunk_search_query`]. Columns: document id, ordinal, source, text.
    const CHUNK_SEARCH_SQL: &'static str;

    /// The pool every shared query runs on.
    fn pool(&self) -> &sqlx::Pool<Self::Db>;

    /// Where the store is, without secrets, for error messages.
    fn target(&self) -> &str;

    /// A transaction that holds the database's write lock for ledger appends, or waits for it
    /// (SQLite takes it at `BEGIN`; PostgreSQL locks the tenant's head row inside).
    fn begin_write(&self) -> impl Future<Output = Result<sqlx::Transaction<'static, Self::Db>, StoreError>> + Send;

    /// A transaction in which live-feed ids are drawn and committed in the same order across
    /// every process (SQLite's write lock; a PostgreSQL advisory lock held until commit).
    fn begin_feed_write(&self)
    -> impl Future<Output = Result<sqlx::Transaction<'static, Self::Db>, StoreError>> + Send;

    /// Whether a transaction's statements are sent to the database together, in one round
    /// trip (see [`crate::script`]).
    const JOIN_STATEMENTS: bool;

    /// Adds the statements inserting ledger rows to `script`, as few as the backend allows.
    fn stage_entries<'q>(script: &mut Script<'q, Self::Db>, records: &'q [LedgerRecord]);

    /// Claims the oldest due pending job of a tenant below `tenant_cap` running jobs (the
    /// contract of `JobStore::claim_job`), returning its row after the claim. Per backend
    /// because the cap must hold under concurrent claims: SQLite has one writer, so one
    /// statement does; PostgreSQL serializes each tenant's claims with an advisory lock.
    fn claim_due_job(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
        tenant_cap: u32,
    ) -> impl Future<Output = Result<Option<JobRow>, StoreError>> + Send;

    /// The match expression for [`SqlBackend::CHUNK_SEARCH_SQL`] finding any of `terms`; no
    /// term is read as query syntax.
    fn chunk_search_query(terms: &[String]) -> String;
}

/// Compiles only for a [`SqlBackend`]: the macros call it first so a missing implementation
/// is reported at the backend, in one line.
pub(crate) const fn assert_backend<B: SqlBackend>() {}

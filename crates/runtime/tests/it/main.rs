//! Runtime integration tests over real databases: SQLite always, PostgreSQL when configured.

mod crash;
mod ledger;
mod support;

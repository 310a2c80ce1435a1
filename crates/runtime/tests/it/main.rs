//! Runtime integration tests over real databases: SQLite always, PostgreSQL when configured.

mod agent;
mod crash;
mod ledger;
mod support;

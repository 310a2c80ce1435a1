//! Runtime integration tests over real databases: SQLite always, PostgreSQL when configured.

mod agent;
mod crash;
mod jobs;
mod keys;
mod knowledge;
mod ledger;
mod memory;
mod replicas;
mod run_fixtures;
mod support;
mod watchers;
mod web_users;

//! The `nexus` binary end to end: real processes, real databases, real signals.

mod agent;
mod backups;
mod cli;
mod eval;
mod fake_openai;
mod faults;
mod ingest;
mod models;
mod plugins;
mod replicas;
mod replicated_discord;
mod replicated_feed;
mod replicated_jobs;
mod replicated_keys;
mod replicated_knowledge;
mod replicated_ledger;
mod replicated_telegram;
mod replicated_watchers;
mod secrets;
mod serve;
mod settings;
mod support;

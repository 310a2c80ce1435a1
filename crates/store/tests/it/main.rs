//! The storage contract: one suite, run against SQLite always and PostgreSQL when configured.

mod contract;
mod contract_agent;
mod contract_channels;
mod contract_chat;
mod contract_feed;
mod contract_jobs;
mod contract_knowledge;
mod contract_memory;
mod contract_plugins;
mod contract_reports;
mod contract_settings;
mod contract_watchers;
mod contract_web;
mod notify;
mod redis_limits;

//! The storage contract: one suite, run against SQLite always and PostgreSQL when configured.

mod contract;

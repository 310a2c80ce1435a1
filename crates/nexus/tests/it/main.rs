//! The `nexus` binary end to end: real processes, real databases, real signals.

mod agent;
mod cli;
mod faults;
mod ingest;
mod models;
mod serve;
mod support;

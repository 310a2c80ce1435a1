//! The tools crate's integration tests: one binary, one module per area. Everything runs
//! against 127.0.0.1 (mock HTTP servers, a fake SMTP server) or temporary directories.

mod email;
mod files;
mod knowledge;
mod registry;
mod sandbox;
mod stats;
mod support;
mod weather;
mod web_fetch;
mod web_search;

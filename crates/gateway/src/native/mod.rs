//! The native `/v1` API: agent runs and their events, the ledger, personas, tools, approvals,
//! knowledge, usage, API keys, broadcasts, the moderation record, the server's logs, equipment, background jobs and schedules, the installation's settings and plugins, watchers, and the token exchange.

pub(crate) mod admin;
pub(crate) mod broadcasts;
pub(crate) mod chains;
pub(crate) mod conversations;
pub(crate) mod equipment;
pub(crate) mod jobs;
pub(crate) mod keys;
pub(crate) mod knowledge;
pub(crate) mod ledger;
pub(crate) mod logs;
pub(crate) mod mcp;
pub(crate) mod memory;
pub(crate) mod moderation;
pub(crate) mod plugins;
pub(crate) mod settings;
pub(crate) mod shapes;
pub(crate) mod usage;
pub(crate) mod watchers;

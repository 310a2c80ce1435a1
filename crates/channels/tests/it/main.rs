//! The channel adapters end to end: a real runtime on SQLite with an agent whose model is a
//! fake OpenAI upstream, and the adapters talking to fake platform servers over HTTP.

mod discord;
mod support;
mod telegram;

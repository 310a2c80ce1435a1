//! The console over real HTTP against a real server on SQLite: signing in and out, the pages,
//! CSRF and admin refusals, escaping, languages, and a tampered ledger shown in red.

mod chat;
mod knowledge;
mod live;
mod logs;
mod pages;
mod personas;
mod plugins;
mod security;
mod settings;
mod support;
mod tasks;

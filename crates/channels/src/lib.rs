//! Chat channels: adapters that read a platform's updates, turn them into runtime calls made
//! as the member who wrote (every answer a run or a governed model call, gated, sealed and on
//! the tenant's budget) and send the answers back in the platform's format.
//!
//! **Architecture Invariant:** adapters go through the runtime only: they never name the store
//! or a model provider. Vendor wire types stay inside their adapter's module.

pub mod discord;
pub mod i18n;
mod outbox;
mod reply;
mod status;
mod supervision;
pub mod telegram;
pub mod text;

#[cfg(feature = "test-support")]
pub mod testing;

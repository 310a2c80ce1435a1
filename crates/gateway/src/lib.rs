//! The HTTP front-end. [`app`] builds the whole router from a runtime so tests can drive it
//! with `oneshot` and `nexus serve` can bind it to a socket.
//!
//! **Architecture Invariant:** handlers extract, call one runtime function and map the result;
//! this crate never touches the store or a provider directly.

mod error;
mod health;
mod routes;

pub use error::ApiError;
pub use routes::app;

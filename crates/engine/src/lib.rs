//! The notarized agent engine, without I/O.
//!
//! Policy lives here as pure functions — scope matching ([`glob`]), resources derived from a
//! call's actual arguments ([`resources`]), the four anomaly gates ([`gates`]), output
//! validation and QA specs ([`validate`]), parsing of model output ([`parse`]), provenance and
//! taint ([`provenance`]) — and the agent
//! loop as a state machine ([`machine`]) that returns the next thing to do and takes results
//! back. The runtime does the awaiting.
//!
//! **Architecture Invariant:** `engine` never awaits, never reads a clock and never does I/O:
//! time, randomness, model replies and tool results all come in as inputs.

pub mod gates;
pub mod glob;
pub mod machine;
pub mod parse;
pub mod prompts;
pub mod provenance;
pub mod resources;
pub mod routing;
pub mod validate;

//! The tamper-evident ledger, as pure logic over records the store returns.
//!
//! - [`encoding`]: the canonical, length-prefixed encoding of an entry and the per-chain
//!   fingerprint chain;
//! - [`tree`]: a per-tenant RFC 6962 Merkle tree with inclusion and consistency proofs;
//! - [`tiles`]: the same tree kept in storage: the right edge an appender needs, stored nodes
//!   every 8 levels, and proofs computed from the few tiles they touch;
//! - [`proof`]: verification of both kinds of proof (RFC 9162 §2.1.3–2.1.4);
//! - [`checkpoint`]: Ed25519-signed tree heads in the signed-note format;
//! - [`verify`]: streaming verification of a whole log that names the first bad entry;
//! - [`bundle`]: self-contained inclusion-proof bundles that verify offline.
//!
//! **Architecture Invariant:** this crate never does I/O, never reads a clock and never awaits.

pub mod bundle;
pub mod checkpoint;
pub mod encoding;
pub mod hash;
pub mod proof;
pub mod tiles;
pub mod tree;
pub mod verify;

pub use hash::Hash;

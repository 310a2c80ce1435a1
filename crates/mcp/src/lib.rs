//! The Model Context Protocol in Nexus: [`wire`] holds the JSON-RPC messages and MCP shapes both
//! directions use; [`client`] reaches an MCP server over stdio or streamable HTTP; [`tool`]
//! mounts a server's tools as Nexus tools — gated, sealed and budgeted like the built-in ones,
//! their risk read from the tool's annotations (unknown means state-changing) and their
//! definitions pinned by hash so a changed one is caught.
//!
//! **Architecture Invariant:** third-party code only ever runs out of process, behind this
//! crate's client; nothing here loads code into the server.

pub mod client;
#[cfg(feature = "test-support")]
pub mod test_support;
pub mod tool;
pub mod wire;

pub use client::{ClientOptions, McpClient, McpError};
pub use tool::{McpTool, pin_of, risk_of};

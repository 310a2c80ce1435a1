//! Tools: what the agent can do. [`Tool`] is the seam every tool implements; the
//! [`Registry`] holds them and shows each persona only its allowed tools; [`sandbox`] runs
//! every call under a timeout, an output cap, panic isolation and cancellation; [`builtin`]
//! holds the built-in tools and [`builtins`] registers them.
//!
//! **Architecture Invariant:** a tool never judges whether it may run — the engine's gates do;
//! a tool only validates its own parameters and confines itself to what its context allows.

pub mod builtin;
pub mod registry;
pub mod sandbox;

use std::path::PathBuf;

use async_trait::async_trait;
use domain::TenantId;
use domain::tool::ToolDefinition;
use serde_json::Value;

pub use builtin::{BuiltinSettings, KnowledgeHit, KnowledgeIndex, builtins};
pub use registry::{Registry, ToolSource};
pub use sandbox::{Sandbox, SandboxLimits};

/// Why a tool call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    /// The parameters do not fit the tool's schema; names the parameter.
    #[error("invalid parameter {param}: {reason}")]
    InvalidParams { param: String, reason: String },
    /// The tool is not configured (names the missing setting).
    #[error("tool {tool} is unavailable: {reason}")]
    Unavailable { tool: String, reason: String },
    /// The tool refused the call (outside its confinement, a blocked address, …).
    #[error("refused: {0}")]
    Refused(String),
    /// The call failed; `transient` when trying again may work (timeouts, 5xx).
    #[error("{message}")]
    Failed { message: String, transient: bool },
    #[error("timed out after {0:?}")]
    Timeout(std::time::Duration),
    #[error("output of {size} bytes exceeds the {limit}-byte cap")]
    OutputTooLarge { size: usize, limit: usize },
    #[error("the tool panicked: {0}")]
    Panicked(String),
    #[error("cancelled")]
    Cancelled,
    #[error("no tool named {0:?}")]
    Unknown(String),
}

impl ToolError {
    /// Whether trying the same call again may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, ToolError::Failed { transient: true, .. } | ToolError::Timeout(_))
    }
}

/// Whether a tool can run here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    Available,
    /// Not configured: `missing` names the setting or variable to set.
    Unconfigured {
        missing: String,
    },
}

/// What a call may touch.
#[derive(Debug, Clone)]
pub struct ToolContext {
    pub tenant: TenantId,
    /// The tenant's workspace directory; file tools are confined to it.
    pub workspace: PathBuf,
    /// Where `remember` leaves what it proposes to remember of the person the run serves (the
    /// runtime writes it after the call, with the run's trust); `None`: the run serves nobody
    /// in particular.
    pub memory: Option<std::sync::Arc<MemoryNotes>>,
}

/// What a call proposed to remember, for the runtime to write after it.
#[derive(Debug, Default)]
pub struct MemoryNotes(std::sync::Mutex<Vec<String>>);

impl MemoryNotes {
    pub fn propose(&self, content: String) {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(content);
    }

    /// Everything proposed so far, emptied.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

/// A tool the agent can call.
#[async_trait]
pub trait Tool: Send + Sync {
    fn definition(&self) -> ToolDefinition;
    fn availability(&self) -> Availability {
        Availability::Available
    }
    async fn call(&self, context: &ToolContext, params: Value) -> Result<Value, ToolError>;
}

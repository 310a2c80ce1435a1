//! The sandbox every tool call runs in: a timeout, a cap on output size, panics caught and
//! reported, and cancellation.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::FutureExt as _;
use serde_json::Value;
use tokio::sync::watch;

use crate::{Tool, ToolContext, ToolError};

#[derive(Debug, Clone, Copy)]
pub struct SandboxLimits {
    /// Largest serialized output accepted.
    pub max_output_bytes: usize,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        Self { max_output_bytes: 256 * 1024 }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Sandbox {
    limits: SandboxLimits,
}

impl Sandbox {
    pub fn new(limits: SandboxLimits) -> Self {
        Self { limits }
    }

    /// Runs one call. `cancel` flipping to `true` abandons it.
    pub async fn run(
        &self,
        tool: &dyn Tool,
        context: &ToolContext,
        params: Value,
        timeout: Duration,
        mut cancel: watch::Receiver<bool>,
    ) -> Result<Value, ToolError> {
        let call = AssertUnwindSafe(tool.call(context, params)).catch_unwind();
        let cancelled = async {
            while !*cancel.borrow() {
                if cancel.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        let outcome = tokio::select! {
            outcome = tokio::time::timeout(timeout, call) => outcome,
            () = cancelled => return Err(ToolError::Cancelled),
        };
        let value = match outcome {
            Err(_) => return Err(ToolError::Timeout(timeout)),
            Ok(Err(panic)) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_owned());
                return Err(ToolError::Panicked(message));
            }
            Ok(Ok(result)) => result?,
        };
        let size = serde_json::to_vec(&value).map_or(usize::MAX, |v| v.len());
        if size > self.limits.max_output_bytes {
            return Err(ToolError::OutputTooLarge { size, limit: self.limits.max_output_bytes });
        }
        Ok(value)
    }
}

//! Shared helpers: contexts, settings with short timeouts, and error matchers.

use std::path::Path;
use std::time::Duration;

use domain::TenantId;
use tools::{BuiltinSettings, ToolContext, ToolError};

pub fn tenant() -> TenantId {
    TenantId::parse("tenant-a").expect("a valid tenant id")
}

pub fn context(workspace: &Path) -> ToolContext {
    ToolContext { tenant: tenant(), workspace: workspace.to_path_buf(), memory: None }
}

/// A context whose workspace no test touches (for tools that do not use files).
pub fn no_files() -> ToolContext {
    context(Path::new("/nonexistent/nexus-test-workspace"))
}

pub fn settings() -> BuiltinSettings {
    BuiltinSettings { http_timeout: Duration::from_secs(5), ..BuiltinSettings::default() }
}

/// The parameter an `InvalidParams` error names.
#[track_caller]
pub fn invalid_param<T: std::fmt::Debug>(result: Result<T, ToolError>) -> String {
    match result {
        Err(ToolError::InvalidParams { param, .. }) => param,
        other => panic!("expected InvalidParams, got {other:?}"),
    }
}

/// The message and transience of a `Failed` error.
#[track_caller]
pub fn failed<T: std::fmt::Debug>(result: Result<T, ToolError>) -> (String, bool) {
    match result {
        Err(ToolError::Failed { message, transient }) => (message, transient),
        other => panic!("expected Failed, got {other:?}"),
    }
}

/// The message of a `Refused` error.
#[track_caller]
pub fn refused<T: std::fmt::Debug>(result: Result<T, ToolError>) -> String {
    match result {
        Err(ToolError::Refused(message)) => message,
        other => panic!("expected Refused, got {other:?}"),
    }
}

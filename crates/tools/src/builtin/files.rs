//! `file_read` and `file_write`: files in the tenant's workspace, and nowhere else. The
//! workspace root is opened once as a capability handle (`cap_std::fs::Dir`) and every
//! operation goes through it, so `..`, absolute paths and symlinks cannot lead outside —
//! there is no check-then-open by name on the ambient filesystem.

use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use cap_std::fs::{Dir, OpenOptions};
use domain::persona::RiskLevel;
use domain::tool::{ResourceArg, ResourceKind, ToolDefinition};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::params::{invalid, parse, schema};
use crate::{Tool, ToolContext, ToolError};

pub const READ_NAME: &str = "file_read";
pub const WRITE_NAME: &str = "file_write";
/// How much `file_read` returns unless asked for less.
pub const DEFAULT_READ_BYTES: usize = 1024 * 1024;
/// The most `file_write` writes in one call.
pub const MAX_WRITE_BYTES: usize = 10 * 1024 * 1024;
/// How the engine names the workspace in resources; accepted as a prefix.
const WORKSPACE_PREFIX: &str = "/workspace";

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ReadParams {
    /// The file to read, relative to the workspace (or starting with /workspace/).
    path: String,
    /// Return at most this many bytes (default and ceiling 1 MiB).
    #[serde(default)]
    #[schemars(range(min = 1))]
    max_bytes: Option<usize>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct WriteParams {
    /// The file to write, relative to the workspace (or starting with /workspace/).
    path: String,
    /// The text to write (at most 10 MiB).
    content: String,
    /// Append to the file instead of replacing it (default false).
    #[serde(default)]
    append: bool,
}

/// Reads a file from the workspace.
#[derive(Debug, Clone, Copy, Default)]
pub struct FileRead;

/// Writes a file in the workspace.
#[derive(Debug, Clone, Copy, Default)]
pub struct FileWrite;

/// The path inside the workspace a parameter names: relative as given, `/workspace/…`
/// stripped of its prefix, any other absolute path refused. `.` and `..` are resolved
/// lexically — as the engine does when it names the resource — so the file touched is the
/// one the gates judged; a `..` above the root is refused. Symlinks are left to the
/// capability handle, which refuses any that lead outside.
fn workspace_relative(raw: &str) -> Result<PathBuf, ToolError> {
    if raw.contains('\0') {
        return Err(invalid("path", "contains a NUL byte"));
    }
    if raw.trim().is_empty() {
        return Err(invalid("path", "must not be empty"));
    }
    let relative = match raw.strip_prefix(WORKSPACE_PREFIX) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
        _ if raw.starts_with('/') => {
            return Err(ToolError::Refused(format!("{raw}: absolute paths outside /workspace are not allowed")));
        }
        _ => raw,
    };
    let mut parts: Vec<&str> = Vec::new();
    for segment in relative.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(outside(raw));
                }
            }
            other => parts.push(other),
        }
    }
    Ok(if parts.is_empty() { PathBuf::from(".") } else { parts.iter().collect() })
}

fn outside(path: &str) -> ToolError {
    ToolError::Refused(format!("{path}: the path leads outside the workspace"))
}

/// Opens the workspace root as a capability, creating it first if it does not exist yet.
fn open_workspace(root: &Path) -> Result<Dir, ToolError> {
    let failed =
        |e: io::Error| ToolError::Failed { message: format!("cannot open the workspace: {e}"), transient: false };
    std::fs::create_dir_all(root).map_err(failed)?;
    Dir::open_ambient_dir(root, cap_std::ambient_authority()).map_err(failed)
}

/// An I/O error on `path`, with escapes reported as refusals.
fn io_error(path: &str, error: &io::Error) -> ToolError {
    match error.kind() {
        io::ErrorKind::PermissionDenied if error.to_string().contains("outside") => outside(path),
        io::ErrorKind::NotFound => {
            ToolError::Failed { message: format!("{path}: no such file in the workspace"), transient: false }
        }
        _ => ToolError::Failed { message: format!("{path}: {error}"), transient: false },
    }
}

/// Runs blocking filesystem work off the async executor.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ToolError> + Send + 'static,
) -> Result<T, ToolError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(error) => Err(ToolError::Failed { message: format!("file operation abandoned: {error}"), transient: true }),
    }
}

fn read_file(root: &Path, shown: &str, relative: &Path, limit: usize) -> Result<Value, ToolError> {
    let dir = open_workspace(root)?;
    let file = dir.open(relative).map_err(|e| io_error(shown, &e))?;
    let metadata = file.metadata().map_err(|e| io_error(shown, &e))?;
    if metadata.is_dir() {
        return Err(ToolError::Failed { message: format!("{shown}: is a directory"), transient: false });
    }
    let mut bytes = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    file.take(cap).read_to_end(&mut bytes).map_err(|e| io_error(shown, &e))?;
    let truncated = bytes.len() > limit;
    bytes.truncate(limit);
    Ok(json!({
        "path": shown,
        "content": String::from_utf8_lossy(&bytes),
        "bytes": bytes.len(),
        "size": metadata.len(),
        "truncated": truncated,
    }))
}

fn write_file(root: &Path, shown: &str, relative: &Path, content: &str, append: bool) -> Result<Value, ToolError> {
    let dir = open_workspace(root)?;
    let mut options = OpenOptions::new();
    options.write(true).create(true);
    if append {
        options.append(true);
    } else {
        options.truncate(true);
    }
    // Open first; only when a parent directory is missing create the parents and open again,
    // so an escaping symlink on the way is reported as such.
    let mut file = match dir.open_with(relative, &options) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = relative.parent().filter(|p| !p.as_os_str().is_empty()) {
                dir.create_dir_all(parent).map_err(|e| io_error(shown, &e))?;
            }
            dir.open_with(relative, &options)
        }
        other => other,
    }
    .map_err(|e| io_error(shown, &e))?;
    file.write_all(content.as_bytes()).map_err(|e| io_error(shown, &e))?;
    file.sync_all().map_err(|e| io_error(shown, &e))?;
    Ok(json!({ "path": shown, "bytes_written": content.len(), "append": append }))
}

fn definition(name: &str, description: &str, parameters: Value, kind: ResourceKind) -> ToolDefinition {
    let writes = kind == ResourceKind::FileWrite;
    ToolDefinition {
        name: name.to_owned(),
        description: description.to_owned(),
        parameters,
        risk_level: if writes { RiskLevel::Medium } else { RiskLevel::Low },
        resource_pattern: if writes { "file:write:/workspace/*" } else { "file:read:/workspace/*" }.to_owned(),
        resource_args: vec![ResourceArg { param: "path".to_owned(), kind, default: None, optional: false }],
        timeout_seconds: 15,
        requires_approval: false,
        state_changing: writes,
        untrusted_output: false,
    }
}

#[async_trait]
impl Tool for FileRead {
    fn definition(&self) -> ToolDefinition {
        definition(READ_NAME, "Read a text file from the workspace.", schema::<ReadParams>(), ResourceKind::FileRead)
    }

    async fn call(&self, context: &ToolContext, params: Value) -> Result<Value, ToolError> {
        let params: ReadParams = parse(params)?;
        let limit = match params.max_bytes {
            Some(0) => return Err(invalid("max_bytes", "must be at least 1")),
            Some(requested) => requested.min(DEFAULT_READ_BYTES),
            None => DEFAULT_READ_BYTES,
        };
        let relative = workspace_relative(&params.path)?;
        let root = context.workspace.clone();
        blocking(move || read_file(&root, &params.path, &relative, limit)).await
    }
}

#[async_trait]
impl Tool for FileWrite {
    fn definition(&self) -> ToolDefinition {
        definition(
            WRITE_NAME,
            "Write (or append to) a text file in the workspace, creating parent directories.",
            schema::<WriteParams>(),
            ResourceKind::FileWrite,
        )
    }

    async fn call(&self, context: &ToolContext, params: Value) -> Result<Value, ToolError> {
        let params: WriteParams = parse(params)?;
        if params.content.len() > MAX_WRITE_BYTES {
            return Err(invalid(
                "content",
                format!("{} bytes exceed the {MAX_WRITE_BYTES}-byte cap", params.content.len()),
            ));
        }
        let relative = workspace_relative(&params.path)?;
        let root = context.workspace.clone();
        blocking(move || write_file(&root, &params.path, &relative, &params.content, params.append)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_paths_map_into_the_workspace() {
        let ok = |raw: &str| workspace_relative(raw).unwrap();
        assert_eq!(ok("notes.txt"), PathBuf::from("notes.txt"));
        assert_eq!(ok("/workspace/a/b.txt"), PathBuf::from("a/b.txt"));
        assert_eq!(ok("/workspace"), PathBuf::from("."));
        assert_eq!(ok("/workspace//x"), PathBuf::from("x"));
        assert_eq!(ok("./a//b/../c.txt"), PathBuf::from("a/c.txt"));
        assert_eq!(ok("a/.."), PathBuf::from("."));
        for escaping in ["..", "../x", "a/../../x", "/workspace/../etc/passwd"] {
            assert!(matches!(workspace_relative(escaping), Err(ToolError::Refused(_))), "{escaping}");
        }
        for outside in ["/etc/passwd", "/workspace-other/x", "/"] {
            assert!(matches!(workspace_relative(outside), Err(ToolError::Refused(_))), "{outside}");
        }
        assert!(matches!(workspace_relative(""), Err(ToolError::InvalidParams { .. })));
        assert!(matches!(workspace_relative("a\0b"), Err(ToolError::InvalidParams { .. })));
    }
}

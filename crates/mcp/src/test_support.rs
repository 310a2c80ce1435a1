//! Real MCP peers for tests: the reference servers and the official Python SDK from the
//! Python package index, installed once per build directory.

use std::path::{Path, PathBuf};

/// The peers, pinned.
pub const PEERS: &[&str] = &["mcp==2.3.0", "mcp-server-time==2026.10.19", "mcp-server-git==2026.10.19"];

/// A server on the Python SDK whose one tool's description is read from a file at every
/// `tools/list` (`drifting_server.py DESCRIPTION_FILE [--http PORT]`).
pub const DRIFTING_SERVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/drifting_server.py");

/// Installs [`PEERS`] under `target_tmp` once; `None` (a skip) only outside CI — with
/// `CI=true` a failed install fails the test.
pub fn peers(target_tmp: &Path) -> Option<PathBuf> {
    let dir = target_tmp.join("py-mcp-peers");
    if dir.is_dir() {
        return Some(dir);
    }
    let staging = dir.with_extension(format!("partial-{}", std::process::id()));
    #[allow(clippy::disallowed_methods)] // installing the test peers
    let status = std::process::Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-warn-conflicts", "--target"])
        .arg(&staging)
        .args(PEERS)
        .status();
    if matches!(&status, Ok(s) if s.success()) && std::fs::rename(&staging, &dir).is_ok() || dir.is_dir() {
        return Some(dir);
    }
    let _ = std::fs::remove_dir_all(&staging);
    assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true but pip could not install {PEERS:?} ({status:?})");
    eprintln!("skipped: could not pip install {PEERS:?} ({status:?})");
    None
}

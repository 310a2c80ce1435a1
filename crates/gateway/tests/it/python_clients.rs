//! Compatibility with the official `openai` and `anthropic` Python packages: they are
//! installed from the Python package index into the target directory (once; pinned versions,
//! [`pip_install`], also used by the OpenAPI checks) and drive a real server. Outside CI a
//! machine without pip or the index skips with a notice; with `CI=true` that is a failure.

use std::path::PathBuf;

use domain::tenant::Role;
use serde_json::Value;

use crate::support::{Options, mount_defaults, spawn_app};

const PACKAGES: &[&str] = &["openai==3.52.0", "anthropic==2.11.0"];

/// Installs pinned Python packages from the package index into
/// `<target>/tmp/py-<packages>` (once: a finished install is renamed into place) and returns
/// that directory for `PYTHONPATH`. Outside CI a machine without pip or the index skips with a
/// notice (`None`); with `CI=true` that is a failure.
pub async fn pip_install(packages: &[&str]) -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("py-{}", packages.join("-").replace("==", "")));
    if dir.is_dir() {
        return Some(dir);
    }
    let staging = dir.with_extension(format!("partial-{}", std::process::id()));
    let status = tokio::process::Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-warn-conflicts", "--target"])
        .arg(&staging)
        .args(packages)
        .status()
        .await;
    let installed = matches!(&status, Ok(s) if s.success()) && std::fs::rename(&staging, &dir).is_ok() || dir.is_dir();
    if installed {
        return Some(dir);
    }
    let _ = std::fs::remove_dir_all(&staging);
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but the Python packages {packages:?} could not be installed with pip ({status:?})"
    );
    eprintln!("skipped: could not pip install {packages:?} ({status:?})");
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_clients_work_unchanged() {
    let Some(site) = pip_install(PACKAGES).await else { return };
    let app = spawn_app(Options::default()).await;
    mount_defaults(&app.openai, &app.anthropic).await;
    let key = app.key("acme", Role::Member).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/clients.py");
    let output = tokio::process::Command::new("python3")
        .arg(script)
        .env("PYTHONPATH", &site)
        .env("NEXUS_BASE", &app.base)
        .env("NEXUS_KEY", &key)
        .env("NO_PROXY", "*")
        .output()
        .await
        .expect("python3 runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the client script failed:\n{stderr}");
    let seen: Value = serde_json::from_slice(&output.stdout).expect("the script prints JSON");
    eprintln!("python clients: {seen}");
    assert_eq!(seen["openai_text"], "Hello from OpenAI");
    assert_eq!(seen["openai_usage"], 1500);
    assert_eq!(seen["openai_finish"], "stop");
    assert_eq!(seen["openai_stream_text"], "Bonjour", "OpenAI client, Anthropic provider, streamed");
    assert_eq!(seen["openai_stream_usage"], 12);
    assert!(seen["models"].as_array().is_some_and(|m| m.iter().any(|id| id == "nexus/auto")));
    assert_eq!(seen["openai_not_found"], 404);
    assert_eq!(seen["openai_auth"], 401);
    assert_eq!(seen["anthropic_text"], "Hello from Claude");
    assert_eq!(seen["anthropic_stop"], "end_turn");
    assert_eq!(seen["anthropic_output_tokens"], 12);
    assert_eq!(seen["anthropic_stream_text"], "Hello", "Anthropic client, OpenAI provider, streamed");
    assert_eq!(seen["anthropic_stream_stop"], "end_turn");
    assert!(matches!(seen["anthropic_bad_request"].as_u64(), Some(400 | 422)), "{seen}");
}

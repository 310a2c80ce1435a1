//! Dependency-boundary checks (the crate rules of ARCHITECTURE.md), run on the real resolved
//! graph with `cargo tree`: a crate must not reach a forbidden crate through normal (non-dev)
//! dependencies, and only the `nexus` binary (and the benchmark tool) may name the concrete
//! `store` implementation.

use std::collections::BTreeSet;
use std::process::Command;

use anyhow::{Context as _, bail};

/// Crates that mean I/O: the pure crates may reach none of them.
const IO_CRATES: &[&str] = &["tokio", "sqlx", "reqwest", "axum", "hyper", "mio", "async-std"];

/// (crate, crates it must not reach through any chain of dependencies).
const TRANSITIVE_RULES: &[(&str, &[&str])] = &[
    ("domain", &["tokio", "sqlx", "reqwest", "axum"]),
    ("engine", IO_CRATES),
    ("ledger", IO_CRATES),
    ("knowledge", IO_CRATES),
    ("feeds", IO_CRATES),
    ("runtime", &["axum", "sqlx"]),
    ("providers", &["runtime", "gateway"]),
    ("models", &["runtime", "gateway"]),
    ("tools", &["gateway", "runtime"]),
    ("mcp", &["gateway", "runtime", "store", "sqlx"]),
    ("store", &["runtime", "gateway"]),
    ("gateway", &["store", "sqlx"]),
    ("channels", &["store", "sqlx"]),
    ("console", &["store", "sqlx"]),
];

/// (crate, crates it must not name as a direct dependency: it goes through the runtime).
const DIRECT_RULES: &[(&str, &[&str])] = &[
    ("gateway", &["providers", "tools"]),
    ("channels", &["providers", "tools"]),
    ("console", &["providers", "tools"]),
];

/// Only these crates may depend on `store`.
const STORE_USERS: &[&str] = &["store", "nexus", "bench"];

pub fn check(cargo: &str) -> anyhow::Result<()> {
    let members = workspace_members(cargo)?;
    let mut violations = Vec::new();
    for (rules, depth) in [(TRANSITIVE_RULES, None), (DIRECT_RULES, Some("1"))] {
        for (krate, forbidden) in rules {
            if !members.contains(*krate) {
                eprintln!("    {krate}: not in the workspace yet");
                continue;
            }
            let mut selector = vec!["-p", krate];
            if let Some(depth) = depth {
                selector.extend(["--depth", depth]);
            }
            let deps = tree(cargo, &selector)?;
            let broken: Vec<&str> = forbidden.iter().copied().filter(|f| deps.contains(*f)).collect();
            let reach = if depth.is_some() { "direct" } else { "all" };
            eprintln!("    {krate} ({reach}): {} dependencies, {} forbidden", deps.len(), broken.len());
            violations.extend(broken.iter().map(|bad| format!("{krate} depends on {bad}")));
        }
    }
    for user in tree(cargo, &["--workspace", "-i", "store"])? {
        if members.contains(&user) && !STORE_USERS.contains(&user.as_str()) {
            violations.push(format!("{user} depends on the concrete store; only the nexus binary may"));
        }
    }
    if !violations.is_empty() {
        bail!("dependency boundaries broken:\n  {}", violations.join("\n  "));
    }
    Ok(())
}

/// Names of the packages in a `cargo tree` over normal dependencies.
fn tree(cargo: &str, selector: &[&str]) -> anyhow::Result<BTreeSet<String>> {
    let mut args = vec!["tree", "-e", "normal", "--prefix", "none", "--format", "{p}"];
    args.extend_from_slice(selector);
    let out = Command::new(cargo).args(&args).output().context("running cargo tree")?;
    if !out.status.success() {
        bail!("cargo tree {selector:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

fn workspace_members(cargo: &str) -> anyhow::Result<BTreeSet<String>> {
    let out = Command::new(cargo)
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!("cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).context("parsing cargo metadata")?;
    let names = metadata["packages"]
        .as_array()
        .context("cargo metadata has no packages")?
        .iter()
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect();
    Ok(names)
}

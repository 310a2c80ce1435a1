//! Tidy checks on the source tree: every `.rs` file opens with a `//!` line saying what it is
//! for; front-ends never reach past the runtime to its store; and code and docs cite only what
//! is in the repository (no documents that live elsewhere, no paths that do not exist).

use std::path::{Path, PathBuf};

use anyhow::bail;

/// Crates whose code serves people (HTTP, the command line, chat channels, the console): they
/// use the runtime's façade, never `Runtime::store()`.
const FRONT_ENDS: &[&str] =
    &["crates/gateway/src", "crates/nexus/src/commands", "crates/channels/src", "crates/console/src"];

/// Names of documents that are not in this repository; citing them leaves a reader stranded.
const OUTSIDE_DOCUMENTS: &[&str] = &["DESIGN §", "DESIGN.md", "STYLE §", "STYLE.md", "../shared", "seeds/"];

pub fn check(root: &Path) -> anyhow::Result<()> {
    let mut files = Vec::new();
    for dir in ["crates", "xtask"] {
        collect(&root.join(dir), &["rs"], &mut files)?;
    }
    let mut problems = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file)?;
        let name = file.strip_prefix(root).unwrap_or(file).display().to_string();
        if !text.lines().next().is_some_and(|line| line.starts_with("//!")) {
            problems.push(format!("{name}: does not open with a //! line saying what it is for"));
        }
        if FRONT_ENDS.iter().any(|dir| name.starts_with(dir)) && calls_store(&text) {
            problems.push(format!("{name}: a front-end calls `store()`; give the runtime a method instead"));
        }
    }
    let mut docs = files.clone();
    collect(&root.join("crates"), &["md"], &mut docs)?;
    for top in ["README.md", "ARCHITECTURE.md", "CONTRIBUTING.md"] {
        if root.join(top).exists() {
            docs.push(root.join(top));
        }
    }
    for file in docs.iter().filter(|f| !f.ends_with("xtask/src/tidy.rs")) {
        let text = std::fs::read_to_string(file)?;
        let name = file.strip_prefix(root).unwrap_or(file).display().to_string();
        problems.extend(unresolved(root, &text).into_iter().map(|what| format!("{name}: {what}")));
    }
    if !problems.is_empty() {
        bail!("tidy checks failed:\n  {}", problems.join("\n  "));
    }
    eprintln!("    {} source files and {} documents checked", files.len(), docs.len() - files.len());
    Ok(())
}

/// Whether the text calls a method named `store` with no arguments (`runtime.store()`, also
/// across a line break).
fn calls_store(text: &str) -> bool {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    compact.contains(".store()")
}

/// References in `text` that do not resolve inside the repository: documents kept elsewhere,
/// seed documents by number, and repository paths (`crates/…`, `xtask/…`) that do not exist.
fn unresolved(root: &Path, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for needle in OUTSIDE_DOCUMENTS {
        if text.contains(needle) {
            out.push(format!("cites {needle:?}, which is not in this repository"));
        }
    }
    let lower = text.to_lowercase();
    for (at, _) in lower.match_indices("seed ") {
        let number: String = lower[at + 5..].chars().take_while(char::is_ascii_digit).collect();
        if number.len() == 3 {
            out.push(format!("cites seed document {number}, which is not in this repository"));
        }
    }
    for prefix in ["crates/", "xtask/"] {
        for (at, _) in text.match_indices(prefix) {
            if at > 0
                && text[..at]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_alphanumeric() || c == '/' || c == '_' || c == '-' || c == '.')
            {
                continue;
            }
            let path: String =
                text[at..].chars().take_while(|c| c.is_alphanumeric() || matches!(c, '/' | '_' | '-' | '.')).collect();
            let path = path.trim_end_matches(['.', '/']);
            if path.contains('*') || path.contains("..") || path == prefix.trim_end_matches('/') {
                continue;
            }
            if !root.join(path).exists() {
                out.push(format!("names {path}, which does not exist"));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn collect(dir: &Path, extensions: &[&str], out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.file_name().is_some_and(|n| n == "target") {
            continue;
        }
        if path.is_dir() {
            collect(&path, extensions, out)?;
        } else if path.extension().is_some_and(|e| extensions.iter().any(|x| e == *x)) {
            out.push(path);
        }
    }
    Ok(())
}

//! Tidy checks on the source tree: every `.rs` file opens with a `//!` line saying what it is for.

use std::path::{Path, PathBuf};

use anyhow::bail;

pub fn check(root: &Path) -> anyhow::Result<()> {
    let mut files = Vec::new();
    for dir in ["crates", "xtask"] {
        collect(&root.join(dir), &mut files)?;
    }
    let mut missing = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file)?;
        if !text.lines().next().is_some_and(|line| line.starts_with("//!")) {
            missing.push(file.strip_prefix(root).unwrap_or(file).display().to_string());
        }
    }
    if !missing.is_empty() {
        bail!("these files do not open with a //! line saying what they are for:\n  {}", missing.join("\n  "));
    }
    eprintln!("    {} files checked", files.len());
    Ok(())
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.file_name().is_some_and(|n| n == "target") {
            continue;
        }
        if path.is_dir() {
            collect(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

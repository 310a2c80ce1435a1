//! `cargo xtask`: the project's automation in Rust instead of shell scripts.
//!
//! - `cargo xtask ci`: everything CI checks — formatting, clippy with warnings denied, the tidy
//!   check, dependency boundaries, and the whole test suite;
//! - `cargo xtask tidy`: the tidy check alone (`tidy.rs`);
//! - `cargo xtask bench ledger|engine|gateway|knowledge|models|console|channels|jobs`: the benchmarks (release build);
//! - `cargo xtask models [--dir DIR]`: fetch the in-process models (`models.rs`);
//! - `cargo xtask dist`: the binary as shipped (`target/dist/ship/nexus`, whole-program
//!   optimised, stripped) and its symbols and line tables for crash reports
//!   (`target/dist/ship/nexus.debug`).

// xtask's whole job is running other programs.
#![allow(clippy::disallowed_methods)]

mod boundaries;
mod models;
mod tidy;

use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{Context as _, bail};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["ci"] => ci(),
        ["tidy"] => workspace_root().and_then(|root| tidy::check(&root)),
        ["bench", rest @ ..] => bench(rest),
        ["models", rest @ ..] => models::run(rest),
        ["dist"] => dist(),
        _ => {
            eprintln!(
                "usage: cargo xtask ci | cargo xtask tidy | cargo xtask bench ledger|engine|gateway|knowledge|models|console|channels|jobs [--quick] (gateway also --soak) | cargo xtask models [--dir DIR] | cargo xtask dist"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a cargo command, failing with its description if it fails.
fn cargo(what: &str, args: &[&str]) -> anyhow::Result<()> {
    let started = Instant::now();
    eprintln!("==> {what}: cargo {}", args.join(" "));
    let status =
        Command::new(env!("CARGO")).args(args).status().with_context(|| format!("running cargo for {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    eprintln!("==> {what}: ok in {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}

fn ci() -> anyhow::Result<()> {
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
    if in_ci && std::env::var("NEXUS_TEST_POSTGRES_URL").map_or(true, |v| v.is_empty()) {
        bail!("CI=true but NEXUS_TEST_POSTGRES_URL is not set: PostgreSQL tests must run in CI (see .ci/run)");
    }
    let root = workspace_root()?;
    cargo("format", &["fmt", "--all", "--check"])?;
    eprintln!("==> tidy: //! lines, no store() in front-ends, references resolve in the repository");
    tidy::check(&root)?;
    eprintln!("==> boundaries: crate dependency rules (ARCHITECTURE.md)");
    boundaries::check(env!("CARGO"))?;
    cargo("clippy", &["clippy", "--workspace", "--all-targets", "--locked", "--", "-D", "warnings"])?;
    if has_nextest() {
        cargo("tests", &["nextest", "run", "--workspace", "--locked", "--no-fail-fast"])
    } else {
        cargo("tests", &["test", "--workspace", "--locked", "--no-fail-fast"])
    }
}

fn bench(args: &[&str]) -> anyhow::Result<()> {
    let [suite, rest @ ..] = args else {
        bail!("usage: cargo xtask bench ledger|engine|gateway|knowledge|models|console|channels|jobs|memory [--quick]")
    };
    // These suites also measure `nexus serve` as a user runs it: the release binary.
    if matches!(*suite, "models" | "gateway") {
        cargo("build nexus", &["build", "--release", "--locked", "-p", "nexus", "--bin", "nexus"])?;
    }
    let mut run = vec!["run", "--release", "--locked", "-p", "bench", "--", suite];
    run.extend_from_slice(rest);
    cargo(&format!("bench {suite}"), &run)
}

/// Builds the shipped binary with `[profile.dist]`, then splits it the way distributions do,
/// into `target/dist/ship/`: `nexus.debug` keeps the symbols and line tables (`gdb`,
/// `addr2line -e nexus.debug` read a crash report's addresses), and `nexus` keeps only what
/// runs, with a link to that file. Cargo's own output is read, never rewritten (it is a hard
/// link to the build's copy).
fn dist() -> anyhow::Result<()> {
    cargo("dist build", &["build", "--profile", "dist", "--locked", "-p", "nexus", "--bin", "nexus"])?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().map(|root| root.join("target")), |dir| Ok(dir.into()))?;
    let built = target.join("dist").join("nexus");
    let ship = target.join("dist").join("ship");
    std::fs::create_dir_all(&ship).with_context(|| format!("creating {}", ship.display()))?;
    let binary = ship.join("nexus");
    let debug = ship.join("nexus.debug");
    for old in [&binary, &debug] {
        if old.exists() {
            std::fs::remove_file(old).with_context(|| format!("removing the old {}", old.display()))?;
        }
    }
    let objcopy = |args: &[&std::ffi::OsStr]| -> anyhow::Result<()> {
        let status = Command::new("objcopy").args(args).status().context("running objcopy (binutils)")?;
        if !status.success() {
            bail!("objcopy {args:?} failed ({status})");
        }
        Ok(())
    };
    objcopy(&["--only-keep-debug".as_ref(), built.as_os_str(), debug.as_os_str()])?;
    // The link names the file and its checksum; gdb looks for it beside the binary.
    let link = format!("--add-gnu-debuglink={}", debug.display());
    objcopy(&["--strip-all".as_ref(), link.as_ref(), built.as_os_str(), binary.as_os_str()])?;
    let size = |path: &std::path::Path| std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    println!("built:   {:>7.1} MiB {} (with symbols and line tables)", mib(size(&built)), built.display());
    println!("shipped: {:>7.1} MiB {}", mib(size(&binary)), binary.display());
    println!("symbols: {:>7.1} MiB {} (keep it for crash reports)", mib(size(&debug)), debug.display());
    Ok(())
}

fn has_nextest() -> bool {
    Command::new(env!("CARGO")).args(["nextest", "--version"]).output().is_ok_and(|out| out.status.success())
}

fn workspace_root() -> anyhow::Result<std::path::PathBuf> {
    let manifest_dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().map(ToOwned::to_owned).context("xtask lives one level below the workspace root")
}

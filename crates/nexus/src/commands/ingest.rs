//! `nexus ingest PATH… --namespace NS`: walks folders, extracts and ingests every file with a
//! progress bar on standard error. A file that fails is reported and counted and the rest are
//! still ingested; the exit code is 1 when any file failed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::bail;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use runtime::knowledge::{KnowledgeError, KnowledgeService};
use serde_json::json;

use super::local_models::Needs;
use super::{Access, runtime_parts};
use crate::cli::IngestArgs;
use crate::config::Config;

/// Files larger than this are refused rather than read into memory.
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// How the files went.
#[derive(Debug, Default)]
struct Tally {
    stored: usize,
    unchanged: usize,
    failed: usize,
    chunks: usize,
}

pub async fn run(args: IngestArgs, config: Config) -> anyhow::Result<ExitCode> {
    let namespace = args.namespace.trim().to_owned();
    if namespace.is_empty() {
        bail!("--namespace must not be empty");
    }
    let mut files = Vec::new();
    let mut unreadable = Vec::new();
    for path in &args.paths {
        walk(path, &mut files, &mut unreadable);
    }
    let (parts, _, _) = runtime_parts(&config, Access::Create, Some(Needs::Embeddings)).await?;
    let runtime = runtime::Runtime::start(parts).await?;
    let knowledge = runtime.knowledge();
    match knowledge.embedding_model() {
        Some(model) => eprintln!("embedding with {model}"),
        None => eprintln!(
            "note: no embedding model is configured; documents are stored for keyword (BM25) search, \
             their vectors can be added later"
        ),
    }
    let mut tally = Tally { failed: unreadable.len(), ..Tally::default() };
    for (path, reason) in &unreadable {
        eprintln!("failed  {}: {reason}", path.display());
    }
    let bar = ProgressBar::with_draw_target(Some(files.len() as u64), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{bar:30.cyan/blue} {pos}/{len} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    for path in &files {
        let name = path.display().to_string();
        bar.set_message(name.clone());
        let line = match ingest_one(&knowledge, &args, &namespace, path, &name).await {
            Ok((true, chunks)) => {
                tally.stored += 1;
                tally.chunks += chunks;
                format!("stored  {name} ({chunks} chunk{})", if chunks == 1 { "" } else { "s" })
            }
            Ok((false, _)) => {
                tally.unchanged += 1;
                format!("same    {name} (already in {namespace})")
            }
            Err(message) => {
                tally.failed += 1;
                bar.suspend(|| eprintln!("failed  {message}"));
                bar.inc(1);
                continue;
            }
        };
        bar.suspend(|| println!("{line}"));
        bar.inc(1);
    }
    bar.finish_and_clear();
    runtime.shutdown().await;
    println!(
        "ingested into {}/{namespace}: {} stored ({} chunks), {} already present, {} failed",
        args.tenant, tally.stored, tally.chunks, tally.unchanged, tally.failed
    );
    Ok(if tally.failed > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// Reads and ingests one file: whether it was new and its chunk count, or a one-line reason
/// that names the file.
async fn ingest_one(
    knowledge: &KnowledgeService,
    args: &IngestArgs,
    namespace: &str,
    path: &Path,
    name: &str,
) -> Result<(bool, usize), String> {
    let size = fs::metadata(path).map_err(|e| format!("{name}: {e}"))?.len();
    if size > MAX_FILE_BYTES {
        return Err(format!("{name}: {size} bytes is over the {MAX_FILE_BYTES}-byte limit"));
    }
    let bytes = fs::read(path).map_err(|e| format!("{name}: {e}"))?;
    let metadata = json!({ "path": name, "bytes": size });
    match knowledge.ingest_file(&args.tenant, namespace, name, None, &bytes, args.access, metadata).await {
        Ok(ingested) => Ok((ingested.new, ingested.chunks)),
        // These name the file themselves.
        Err(error @ (KnowledgeError::Extract(_) | KnowledgeError::NoText { .. } | KnowledgeError::Embed { .. })) => {
            Err(error.to_string())
        }
        Err(error) => Err(format!("{name}: {error}")),
    }
}

/// Collects the files under `path` in name order, skipping hidden entries inside folders and
/// never following symbolic links to folders (so a link loop cannot trap the walk).
fn walk(path: &Path, files: &mut Vec<PathBuf>, unreadable: &mut Vec<(PathBuf, String)>) {
    let metadata = match fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(error) => return unreadable.push((path.to_owned(), error.to_string())),
    };
    if metadata.is_file() {
        return files.push(path.to_owned());
    }
    if !metadata.is_dir() {
        return unreadable.push((path.to_owned(), "not a file or folder".into()));
    }
    let mut stack = vec![path.to_owned()];
    while let Some(dir) = stack.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(error) => {
                unreadable.push((dir, error.to_string()));
                continue;
            }
        };
        let mut children: Vec<(PathBuf, fs::FileType)> = entries
            .filter_map(Result::ok)
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .filter_map(|e| e.file_type().ok().map(|t| (e.path(), t)))
            .collect();
        children.sort_by(|a, b| a.0.cmp(&b.0));
        let mut subdirs = Vec::new();
        for (child, kind) in children {
            if kind.is_dir() {
                subdirs.push(child);
            } else if kind.is_file() || (kind.is_symlink() && child.is_file()) {
                files.push(child);
            }
        }
        // Depth first, in name order.
        stack.extend(subdirs.into_iter().rev());
    }
}

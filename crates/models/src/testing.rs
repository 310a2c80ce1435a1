//! Test support (feature `test-support`): where the model files live for tests that need them.
//! Outside CI a missing model skips the test with a message saying how to fetch it; with
//! `CI=true` it fails, so CI can never pass without having run them.

use std::path::PathBuf;

use crate::{embeddings, local};

/// The models directory from `NEXUS_MODELS_DIR` if it holds every model file, else `None`
/// after printing why the calling test is skipped. Panics when `CI=true`.
pub fn models_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("NEXUS_MODELS_DIR").filter(|v| !v.is_empty()).map(PathBuf::from);
    let missing: Vec<PathBuf> = match &dir {
        Some(dir) => required_files(dir).into_iter().filter(|path| !path.is_file()).collect(),
        None => Vec::new(),
    };
    let problem = match (&dir, missing.first()) {
        (None, _) => "NEXUS_MODELS_DIR is not set".to_owned(),
        (Some(_), Some(path)) => format!("{} is missing", path.display()),
        (Some(dir), None) => return Some(dir.clone()),
    };
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
    assert!(
        !in_ci,
        "CI=true but the models are not available ({problem}): run `cargo xtask models --dir DIR` and set NEXUS_MODELS_DIR=DIR"
    );
    eprintln!("skipped: models not fetched ({problem}); run `cargo xtask models` and set NEXUS_MODELS_DIR");
    None
}

fn required_files(dir: &std::path::Path) -> Vec<PathBuf> {
    let embed = dir.join(embeddings::MODEL_DIR);
    vec![
        embed.join("config.json"),
        embed.join("tokenizer.json"),
        embed.join("model.safetensors"),
        dir.join(local::MODEL_DIR).join(local::GGUF_FILE),
    ]
}

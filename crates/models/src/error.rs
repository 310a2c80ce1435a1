//! Why a model could not be loaded or run. Candle and tokenizer errors are turned into text at
//! this boundary, so no library type leaks into the crate's API.

use std::path::PathBuf;

/// What to do about a missing model file.
pub const FETCH_HINT: &str = "run `cargo xtask models`";

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A model file is not there; `hint` says how to fetch it.
    #[error("model file {} is missing: {hint}", path.display())]
    Missing { path: PathBuf, hint: &'static str },
    /// A model file is there but unusable (corrupt, wrong format, unreadable).
    #[error("model file {}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
    /// Tokenizing or running the model failed.
    #[error("inference failed: {0}")]
    Inference(String),
    /// The prompt does not fit the model's context window.
    #[error("the prompt has {prompt_tokens} tokens; the model's context window holds {limit}")]
    ContextOverflow { prompt_tokens: usize, limit: usize },
    /// Shipped data (e.g. the classifier's labelled examples) is malformed.
    #[error("{what}: {reason}")]
    Data { what: String, reason: String },
}

impl ModelError {
    /// `Missing` if `path` does not exist, so loaders can say so before candle's own error does.
    pub(crate) fn require(path: PathBuf) -> Result<PathBuf, ModelError> {
        if path.exists() { Ok(path) } else { Err(ModelError::Missing { path, hint: FETCH_HINT }) }
    }

    pub(crate) fn invalid(path: &std::path::Path, reason: impl std::fmt::Display) -> ModelError {
        ModelError::Invalid { path: path.to_owned(), reason: reason.to_string() }
    }
}

impl From<candle_core::Error> for ModelError {
    fn from(error: candle_core::Error) -> Self {
        ModelError::Inference(error.to_string())
    }
}

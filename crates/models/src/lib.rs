//! In-process inference on the CPU, on our own forward passes and kernels: sentence embeddings
//! ([`embeddings`], all-MiniLM-L6-v2, implementing `domain::embed::Embedder`), the local chat
//! model ([`local`], SmolLM2-135M-Instruct behind `providers::ModelProvider`) and the tier
//! classifier ([`classifier`], nearest centroids over embeddings). Models load from a models
//! directory filled by `cargo xtask models`; a missing file is [`ModelError::Missing`], never a
//! panic.
//!
//! **Architecture Invariant:** this crate knows nothing of the runtime, the gateway or the
//! store; it implements ports (`Embedder`, `ModelProvider`) that the composition root wires.

mod bert;
mod cache;
pub mod classifier;
pub mod embeddings;
pub mod error;
pub mod local;
mod matrix;
mod panels;
#[cfg(feature = "test-support")]
pub mod testing;

pub use classifier::{Classification, Equipment, Tier, TierClassifier};
pub use embeddings::SentenceEmbedder;
pub use error::ModelError;
pub use local::{GenerationParams, LocalChatProvider, LocalModel};

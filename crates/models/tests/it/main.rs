//! The models crate's integration tests (one binary). Tests that need model files take the
//! directory from `models::testing::models_dir()`: skipped with a message outside CI when the
//! models are not fetched, failing in CI.

mod classifier;
mod embeddings;
mod local;
mod retrieval;

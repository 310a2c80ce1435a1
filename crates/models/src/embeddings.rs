//! Sentence embeddings with all-MiniLM-L6-v2, computed the way `sentence-transformers` does:
//! WordPiece tokens truncated at 256, the BERT encoder, mean pooling over the attention mask,
//! L2 normalisation; 384 dimensions. The encoder is our own forward pass over the file's f32
//! weights (`bert.rs`); texts go through it in batches, sorted by length, each text over its
//! own tokens only (no padding), and a bounded cache answers texts seen recently without
//! running the model.
//!
//! Threads: a batch's texts, or for a few tokens each product's rows, are shared among rayon's
//! pool, sized to the cores
//! (override with `RAYON_NUM_THREADS` before the first model call).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use domain::embed::{EmbedError, Embedder};
use tokenizers::{Tokenizer, TruncationParams};

use crate::bert::{Bert, BertConfig};
use crate::cache::GenerationalCache;
use crate::error::ModelError;

/// The model's folder inside the models directory.
pub const MODEL_DIR: &str = "all-MiniLM-L6-v2";
/// The name recorded with stored vectors.
pub const MODEL_NAME: &str = "all-MiniLM-L6-v2";
/// Vector length.
pub const DIMS: usize = 384;
/// Longer texts are cut to this many tokens, like sentence-transformers' `max_seq_length`.
pub const MAX_TOKENS: usize = 256;
/// Texts per forward pass.
pub const BATCH_SIZE: usize = 32;
/// Distinct texts the cache remembers.
pub const CACHE_ENTRIES: usize = 10_000;

/// all-MiniLM-L6-v2 on the CPU. `Send + Sync`: share it behind an `Arc`.
pub struct SentenceEmbedder {
    model: Bert,
    tokenizer: Tokenizer,
    cache: Mutex<GenerationalCache<String, Arc<[f32]>>>,
}

impl std::fmt::Debug for SentenceEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentenceEmbedder").field("model", &MODEL_NAME).field("dims", &DIMS).finish_non_exhaustive()
    }
}

impl SentenceEmbedder {
    /// Whether `models_dir` holds the model's files (without reading them).
    pub fn is_present(models_dir: &Path) -> bool {
        let dir = models_dir.join(MODEL_DIR);
        ["config.json", "tokenizer.json", "model.safetensors"].iter().all(|f| dir.join(f).is_file())
    }

    /// Loads the model from `models_dir/all-MiniLM-L6-v2/` (`config.json`, `tokenizer.json`,
    /// `model.safetensors`, as `cargo xtask models` leaves them).
    pub fn load(models_dir: &Path) -> Result<Self, ModelError> {
        let dir = models_dir.join(MODEL_DIR);
        let config_path = ModelError::require(dir.join("config.json"))?;
        let tokenizer_path = ModelError::require(dir.join("tokenizer.json"))?;
        let weights_path = ModelError::require(dir.join("model.safetensors"))?;

        let config_text = std::fs::read_to_string(&config_path).map_err(|e| ModelError::invalid(&config_path, e))?;
        let config: BertConfig =
            serde_json::from_str(&config_text).map_err(|e| ModelError::invalid(&config_path, e))?;
        config.check().map_err(|e| ModelError::invalid(&config_path, e))?;
        if config.hidden_size != DIMS {
            return Err(ModelError::invalid(&config_path, format!("hidden size {} is not {DIMS}", config.hidden_size)));
        }

        let mut tokenizer =
            Tokenizer::from_file(&tokenizer_path).map_err(|e| ModelError::invalid(&tokenizer_path, e))?;
        // The shipped tokenizer.json pads and truncates at 128; the encoder needs no padding,
        // and texts are cut where sentence-transformers cuts them.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: MAX_TOKENS, ..TruncationParams::default() }))
            .map_err(|e| ModelError::invalid(&tokenizer_path, e))?;

        // Memory-mapping would need `unsafe`; the 90 MB file is read once instead.
        let weights = std::fs::read(&weights_path).map_err(|e| ModelError::invalid(&weights_path, e))?;
        let model = Bert::load(&config, &weights).map_err(|e| ModelError::invalid(&weights_path, e))?;
        Ok(Self { model, tokenizer, cache: Mutex::new(GenerationalCache::new(CACHE_ENTRIES)) })
    }

    /// One unit vector per text, in order. Recently seen texts come from the cache.
    pub fn embed_texts(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ModelError> {
        let mut found: Vec<Option<Arc<[f32]>>> = {
            let mut cache = self.lock_cache();
            texts.iter().map(|text| cache.get(*text)).collect()
        };
        // Each distinct text missing from the cache, once.
        let mut misses: Vec<&str> =
            texts.iter().zip(&found).filter(|(_, hit)| hit.is_none()).map(|(text, _)| *text).collect();
        misses.sort_unstable();
        misses.dedup();
        if !misses.is_empty() {
            let computed: HashMap<&str, Arc<[f32]>> =
                misses.iter().copied().zip(self.embed_uncached(&misses)?).collect();
            // Answer from what was just computed, not from the cache: a call with more distinct
            // texts than the cache holds evicts its own first results.
            for (slot, text) in found.iter_mut().zip(texts) {
                if slot.is_none() {
                    *slot = computed.get(text).cloned();
                }
            }
            let mut cache = self.lock_cache();
            for (text, vector) in computed {
                cache.insert(text.to_owned(), vector);
            }
        }
        found
            .into_iter()
            .map(|vector| vector.map(|v| v.to_vec()))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| ModelError::Inference("a text was not embedded".into()))
    }

    /// The same embedder with a cache of at most `entries` distinct texts (default
    /// [`CACHE_ENTRIES`]).
    #[must_use]
    pub fn with_cache_entries(self, entries: usize) -> Self {
        Self { cache: Mutex::new(GenerationalCache::new(entries)), ..self }
    }

    /// Runs the model over `texts`, sorted by length and cut into batches.
    fn embed_uncached(&self, texts: &[&str]) -> Result<Vec<Arc<[f32]>>, ModelError> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| ModelError::Inference(format!("tokenizing: {e}")))?;
        let ids: Vec<&[u32]> = encodings.iter().map(|e| e.get_ids()).collect();
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| ids[i].len());
        let mut out: Vec<Option<Arc<[f32]>>> = vec![None; texts.len()];
        for chunk in order.chunks(BATCH_SIZE) {
            let batch: Vec<&[u32]> = chunk.iter().map(|&i| ids[i]).collect();
            for (&i, vector) in chunk.iter().zip(self.forward(&batch)?) {
                out[i] = Some(vector.into());
            }
        }
        out.into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| ModelError::Inference("a text was not embedded".into()))
    }

    /// One forward pass over a batch of token ids.
    fn forward(&self, batch: &[&[u32]]) -> Result<Vec<Vec<f32>>, ModelError> {
        self.model.embed(batch).map_err(|e| ModelError::Inference(e.to_string()))
    }

    /// Bytes of weights the model holds.
    pub fn weight_bytes(&self) -> usize {
        self.model.weight_bytes()
    }

    /// How many texts the cache holds now.
    pub fn cached(&self) -> usize {
        self.lock_cache().len()
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, GenerationalCache<String, Arc<[f32]>>> {
        // A panic while holding the lock cannot leave the cache inconsistent (every operation
        // is a whole insert or lookup), so a poisoned lock is still usable.
        self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Embedder for SentenceEmbedder {
    fn model(&self) -> &str {
        MODEL_NAME
    }

    fn dims(&self) -> usize {
        DIMS
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.embed_texts(texts).map_err(|e| EmbedError(e.to_string()))
    }
}

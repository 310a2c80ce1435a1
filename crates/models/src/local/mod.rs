//! The local chat model: SmolLM2-135M-Instruct from its GGUF file, run by our own llama
//! forward pass (`llama.rs`) over the file's quantized weights as they are, with f32
//! activations (`crate::matrix`); the tokenizer comes from the GGUF metadata (`tokenizer.rs`);
//! prompts are ChatML (`text.rs`). [`LocalModel::generate`] is blocking and streams text
//! through a callback; [`LocalChatProvider`] puts it behind the `providers::ModelProvider` seam.
//!
//! The weights are shared and never change; each generation keeps its own attention cache,
//! sized for its prompt and answer. One generation runs at a time per model: several at once
//! would only share the same cores (and each would hold its own cache).

mod llama;
mod provider;
mod text;
mod tokenizer;

use std::ops::ControlFlow;
use std::path::Path;
use std::time::{Duration, Instant};

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};

pub use provider::{CAPABILITIES, LocalChatProvider, PROVIDER_NAME};
pub use text::{ChatRole, DEFAULT_SYSTEM, chatml_prompt};

use crate::error::ModelError;

/// The model's folder inside the models directory.
pub const MODEL_DIR: &str = "smollm2-135m";
/// The shipped weights (Q4_1).
pub const GGUF_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// The model id callers ask for.
pub const MODEL_ID: &str = "smollm2-135m";
/// Positions the model can attend to (prompt and answer together).
pub const CONTEXT_TOKENS: usize = llama::CONTEXT_TOKENS;
/// What earlier versions cached next to the model file (a Q8_0 re-encoding), removed at load.
const STALE_COPY: &str = "SmolLM2-135M-Instruct.Q4_1.q8_0.gguf";

/// How to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationParams {
    /// At most this many new tokens.
    pub max_tokens: usize,
    /// 0 picks the most likely token every time (deterministic); above 0 samples.
    pub temperature: f32,
    /// Seed of the sampler (ignored when greedy).
    pub seed: u64,
    /// The answer ends before the first of these.
    pub stop: Vec<String>,
    /// Divides the logits of tokens among the last 64 generated (1.0 = off); small models
    /// loop without it.
    pub repeat_penalty: f32,
}

impl Default for GenerationParams {
    fn default() -> Self {
        Self { max_tokens: 256, temperature: 0.0, seed: 0, stop: Vec::new(), repeat_penalty: 1.1 }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The model closed its turn (`<|im_end|>` or end of text).
    EndOfTurn,
    /// A caller's stop sequence appeared (it is not part of the text).
    StopSequence,
    /// `max_tokens` were generated, or the context window is full.
    MaxTokens,
    /// The callback asked to stop.
    Cancelled,
}

/// A finished generation.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    pub text: String,
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    pub stop_reason: StopReason,
    /// Time to read the prompt (up to the first new token's logits).
    pub prompt_time: Duration,
    /// Time spent generating after the prompt.
    pub generation_time: Duration,
}

/// Tokens after which the model has finished its turn.
const END_TOKENS: [&str; 2] = ["<|im_end|>", "<|endoftext|>"];
/// How far back the repeat penalty looks.
const REPEAT_WINDOW: usize = 64;

/// SmolLM2-135M-Instruct, loaded and ready. `Send + Sync`.
pub struct LocalModel {
    llama: llama::Llama,
    /// Held for the whole of a generation.
    generating: std::sync::Mutex<()>,
    tokenizer: tokenizers::Tokenizer,
    end_tokens: Vec<u32>,
}

impl std::fmt::Debug for LocalModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalModel").field("model", &MODEL_ID).finish_non_exhaustive()
    }
}

impl LocalModel {
    /// Whether `models_dir` holds the model's file (without reading it).
    pub fn is_present(models_dir: &Path) -> bool {
        models_dir.join(MODEL_DIR).join(GGUF_FILE).is_file()
    }

    /// Loads `models_dir/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf`.
    pub fn load(models_dir: &Path) -> Result<Self, ModelError> {
        let dir = models_dir.join(MODEL_DIR);
        let path = ModelError::require(dir.join(GGUF_FILE))?;
        let stale = dir.join(STALE_COPY);
        if stale.is_file() {
            match std::fs::remove_file(&stale) {
                Ok(()) => {
                    tracing::info!(path = %stale.display(), "removed an unused re-encoded copy of the local model")
                }
                Err(error) => tracing::debug!(%error, path = %stale.display(), "could not remove an unused copy"),
            }
        }
        let file = std::fs::File::open(&path).map_err(|e| ModelError::invalid(&path, e))?;
        Self::from_gguf(&mut std::io::BufReader::new(file), &path)
    }

    /// Reads weights and tokenizer from a GGUF stream; `path` names it in errors.
    fn from_gguf<R: std::io::Read + std::io::Seek>(reader: &mut R, path: &Path) -> Result<Self, ModelError> {
        let content = gguf_file::Content::read(reader).map_err(|e| ModelError::invalid(path, e))?;
        let tokenizer = tokenizer::from_gguf(&content).map_err(|e| ModelError::invalid(path, e))?;
        let end_tokens = END_TOKENS
            .iter()
            .map(|token| {
                tokenizer.token_to_id(token).ok_or_else(|| ModelError::invalid(path, format!("no {token} token")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let llama = llama::Llama::from_gguf(&content, reader).map_err(|e| ModelError::invalid(path, e))?;
        Ok(Self { llama, generating: std::sync::Mutex::new(()), tokenizer, end_tokens })
    }

    /// Bytes of weights held in memory.
    pub fn weight_bytes(&self) -> usize {
        self.llama.size_in_bytes()
    }

    /// Token ids of `text`; ChatML markers in it become their control tokens.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        let encoding =
            self.tokenizer.encode(text, false).map_err(|e| ModelError::Inference(format!("tokenizing: {e}")))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The text of `ids`, control tokens left out.
    pub fn decode(&self, ids: &[u32]) -> Result<String, ModelError> {
        self.tokenizer.decode(ids, true).map_err(|e| ModelError::Inference(format!("detokenizing: {e}")))
    }

    /// Continues `prompt` (a whole ChatML prompt, see [`chatml_prompt`]) until the model ends
    /// its turn, a stop sequence appears or `max_tokens` are generated. `on_text` receives the
    /// answer piece by piece as it becomes final (never a piece of a stop sequence); returning
    /// `ControlFlow::Break` ends generation early. Blocking and CPU-bound.
    pub fn generate(
        &self,
        prompt: &str,
        params: &GenerationParams,
        on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Generation, ModelError> {
        let started = Instant::now();
        let prompt_ids = self.encode(prompt)?;
        if prompt_ids.is_empty() {
            return Err(ModelError::Inference("empty prompt".into()));
        }
        if prompt_ids.len() >= CONTEXT_TOKENS {
            return Err(ModelError::ContextOverflow { prompt_tokens: prompt_ids.len(), limit: CONTEXT_TOKENS });
        }
        let max_tokens = params.max_tokens.min(CONTEXT_TOKENS - prompt_ids.len());
        let sampling = if params.temperature > 0.0 {
            Sampling::All { temperature: f64::from(params.temperature) }
        } else {
            Sampling::ArgMax
        };
        let mut sampler = LogitsProcessor::from_sampling(params.seed, sampling);

        // A poisoned lock only means an earlier generation panicked; nothing it guards is shared.
        let _one_at_a_time = self.generating.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut cache = self.llama.cache(prompt_ids.len() + max_tokens);
        let mut generated: Vec<u32> = Vec::new();
        let mut text = String::new();
        let mut emitted = 0usize;
        let mut stop_reason = StopReason::MaxTokens;
        let mut prompt_time = Duration::ZERO;
        let mut input = prompt_ids.clone();
        while generated.len() < max_tokens {
            debug_assert_eq!(cache.len(), prompt_ids.len() + generated.len() - input.len());
            // On one of rayon's threads: the products inside then share out their rows
            // without handing each one to the pool from outside and waiting for it.
            let logits = rayon::scope(|_| self.llama.forward(&mut cache, &input)).map_err(ModelError::Inference)?;
            let logits = Tensor::from_vec(logits, self.llama.vocab(), &Device::Cpu)?;
            let logits = if params.repeat_penalty != 1.0 && !generated.is_empty() {
                let recent = &generated[generated.len().saturating_sub(REPEAT_WINDOW)..];
                candle_transformers::utils::apply_repeat_penalty(&logits, params.repeat_penalty, recent)?
            } else {
                logits
            };
            if generated.is_empty() {
                prompt_time = started.elapsed();
            }
            let token = sampler.sample(&logits)?;
            if self.end_tokens.contains(&token) {
                stop_reason = StopReason::EndOfTurn;
                break;
            }
            generated.push(token);
            input = vec![token];

            text = self.decode(&generated)?;
            if text.ends_with('\u{FFFD}') {
                continue; // a character split across tokens: wait for the rest of it
            }
            if let Some(cut) = text::find_stop(&text, &params.stop) {
                text.truncate(cut);
                stop_reason = StopReason::StopSequence;
                break;
            }
            let safe = text::safe_len(&text, &params.stop).max(emitted);
            if safe > emitted {
                let flow = on_text(&text[emitted..safe]);
                emitted = safe;
                if flow.is_break() {
                    stop_reason = StopReason::Cancelled;
                    break;
                }
            }
        }
        drop(cache);
        if emitted < text.len() && stop_reason != StopReason::Cancelled {
            let _ = on_text(&text[emitted..]);
        }
        let generation_time = started.elapsed().saturating_sub(prompt_time);
        Ok(Generation {
            text,
            prompt_tokens: prompt_ids.len(),
            generated_tokens: generated.len(),
            stop_reason,
            prompt_time,
            generation_time,
        })
    }
}

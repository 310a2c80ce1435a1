//! The llama transformer that SmolLM2 is, run directly on f32 activations over the GGUF
//! file's quantized weights (`crate::matrix`): token embedding, then per layer RMS norm, attention
//! with rotary positions (llama's interleaved pairs) and grouped key/value heads, RMS norm and
//! the SiLU-gated feed-forward, each added back to the residual stream; a final norm and the
//! output projection (the token embedding itself when the file ties them).
//!
//! The query, key and value projections are stacked into one matrix, as are the gate and up
//! projections, so each layer makes four matrix products. [`Llama`] is immutable and shared;
//! each generation keeps its own [`Cache`] of keys and values, so generations do not wait
//! for one another.

use candle_core::quantized::{GgmlDType, QTensor, gguf_file};

use rayon::prelude::*;

use crate::matrix::{BLOCK, Matrix, MatrixError, add, dot, exp};

/// Positions a generation can attend to (prompt and answer together).
pub const CONTEXT_TOKENS: usize = 4096;
/// A longer prompt goes through the layers this many tokens at a time.
const PROMPT_CHUNK: usize = 256;

/// Why the file's weights cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LoadError {
    #[error("metadata {key}: {reason}")]
    Metadata { key: &'static str, reason: String },
    #[error("tensor {name}: {reason}")]
    Tensor { name: String, reason: String },
}

/// The shape of the network, from the file's metadata.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Config {
    layers: usize,
    hidden: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    vocab: usize,
    /// Width of the feed-forward layers (the same in every layer).
    ffn: usize,
    rms_eps: f32,
    rope_base: f32,
}

impl Config {
    fn from_gguf(content: &gguf_file::Content) -> Result<Self, LoadError> {
        let get =
            |key: &'static str| content.metadata.get(key).ok_or(LoadError::Metadata { key, reason: "missing".into() });
        let count = |key: &'static str| -> Result<usize, LoadError> {
            let value = get(key)?.to_u32().map_err(|e| LoadError::Metadata { key, reason: e.to_string() })?;
            match usize::try_from(value) {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(LoadError::Metadata { key, reason: format!("{value} is not a positive count") }),
            }
        };
        let float = |key: &'static str| -> Result<f32, LoadError> {
            get(key)?.to_f32().map_err(|e| LoadError::Metadata { key, reason: e.to_string() })
        };
        let architecture = get("general.architecture")?
            .to_string()
            .map_err(|e| LoadError::Metadata { key: "general.architecture", reason: e.to_string() })?;
        if architecture != "llama" {
            return Err(LoadError::Metadata {
                key: "general.architecture",
                reason: format!("{architecture:?} is not llama"),
            });
        }
        let hidden = count("llama.embedding_length")?;
        let heads = count("llama.attention.head_count")?;
        let kv_heads = count("llama.attention.head_count_kv")?;
        let head_dim = hidden / heads;
        if hidden % heads != 0 || heads % kv_heads != 0 || head_dim % 2 != 0 {
            return Err(LoadError::Metadata {
                key: "llama.attention.head_count",
                reason: format!("{heads} heads ({kv_heads} for keys and values) do not divide {hidden} evenly"),
            });
        }
        let rope_dims = count("llama.rope.dimension_count")?;
        if rope_dims != head_dim {
            return Err(LoadError::Metadata {
                key: "llama.rope.dimension_count",
                reason: format!("{rope_dims} rotary dimensions for heads of {head_dim}"),
            });
        }
        Ok(Self {
            layers: count("llama.block_count")?,
            hidden,
            heads,
            kv_heads,
            head_dim,
            vocab: 0, // from the embedding's shape
            ffn: 0,   // from the first layer's shape
            rms_eps: float("llama.attention.layer_norm_rms_epsilon")?,
            rope_base: if content.metadata.contains_key("llama.rope.freq_base") {
                float("llama.rope.freq_base")?
            } else {
                10_000.0
            },
        })
    }

    fn kv_dim(&self) -> usize {
        self.kv_heads * self.head_dim
    }
}

struct Layer {
    attention_norm: Vec<f32>,
    /// Queries, then keys, then values.
    qkv: Matrix,
    output: Matrix,
    ffn_norm: Vec<f32>,
    /// Gate rows, then up rows.
    gate_up: Matrix,
    down: Matrix,
}

/// SmolLM2 (any llama-architecture GGUF file), loaded.
pub(crate) struct Llama {
    config: Config,
    embedding: Matrix,
    /// `None`: the output projection is the embedding.
    output: Option<Matrix>,
    output_norm: Vec<f32>,
    layers: Vec<Layer>,
    /// Per position, `head_dim / 2` angles' cosines and sines.
    rope: Vec<(f32, f32)>,
}

/// The keys and values of the positions seen so far, per layer (made by [`Llama::cache`]).
#[derive(Debug)]
pub(crate) struct Cache {
    keys: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
    len: usize,
}

impl Cache {
    /// Positions held.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Llama {
    /// Reads every tensor of `content` from `reader`.
    pub(crate) fn from_gguf<R: std::io::Read + std::io::Seek>(
        content: &gguf_file::Content,
        reader: &mut R,
    ) -> Result<Self, LoadError> {
        let mut config = Config::from_gguf(content)?;
        let tensor = |reader: &mut R, name: &str| {
            content
                .tensor(reader, name, &candle_core::Device::Cpu)
                .map_err(|e| LoadError::Tensor { name: name.to_owned(), reason: e.to_string() })
        };
        let embedding = matrix(&tensor(reader, "token_embd.weight")?, "token_embd.weight", config.hidden)?;
        config.vocab = embedding.rows();
        let output = if content.tensor_infos.contains_key("output.weight") {
            Some(matrix(&tensor(reader, "output.weight")?, "output.weight", config.hidden)?)
        } else {
            None
        };
        let output_norm = vector(&tensor(reader, "output_norm.weight")?, "output_norm.weight", config.hidden)?;
        let (hidden, kv_dim) = (config.hidden, config.kv_dim());
        let mut layers = Vec::with_capacity(config.layers);
        for index in 0..config.layers {
            let mut load = |part: &str, cols: usize| {
                let name = format!("blk.{index}.{part}.weight");
                matrix(&tensor(reader, &name)?, &name, cols)
            };
            let (q, k, v) = (load("attn_q", hidden)?, load("attn_k", hidden)?, load("attn_v", hidden)?);
            let shapes = (q.rows(), k.rows(), v.rows());
            let qkv = Matrix::stack(vec![q, k, v]).filter(|_| shapes == (hidden, kv_dim, kv_dim)).ok_or_else(|| {
                LoadError::Tensor {
                    name: format!("blk.{index}.attn_q/k/v"),
                    reason: format!("rows {shapes:?} in mixed encodings or not ({hidden}, {kv_dim}, {kv_dim})"),
                }
            })?;
            let output = load("attn_output", hidden)?;
            let (gate, up) = (load("ffn_gate", hidden)?, load("ffn_up", hidden)?);
            let ffn = gate.rows();
            if index == 0 {
                config.ffn = ffn;
            } else if ffn != config.ffn {
                return Err(LoadError::Tensor {
                    name: format!("blk.{index}.ffn_gate.weight"),
                    reason: format!("{ffn} rows where earlier layers have {}", config.ffn),
                });
            }
            let gate_up =
                Matrix::stack(vec![gate, up]).filter(|m| m.rows() == 2 * ffn).ok_or_else(|| LoadError::Tensor {
                    name: format!("blk.{index}.ffn_gate/up"),
                    reason: "different shapes or encodings".into(),
                })?;
            let down = load("ffn_down", ffn)?;
            let norm = |reader: &mut R, part: &str| {
                let name = format!("blk.{index}.{part}.weight");
                vector(&tensor(reader, &name)?, &name, hidden)
            };
            let attention_norm = norm(reader, "attn_norm")?;
            let ffn_norm = norm(reader, "ffn_norm")?;
            if output.rows() != hidden || down.rows() != hidden {
                return Err(LoadError::Tensor {
                    name: format!("blk.{index}.attn_output/ffn_down"),
                    reason: format!("{} and {} rows, expected {hidden}", output.rows(), down.rows()),
                });
            }
            layers.push(Layer { attention_norm, qkv, output, ffn_norm, gate_up, down });
        }
        if let Some(output) = output.as_ref().filter(|o| o.rows() != config.vocab) {
            return Err(LoadError::Tensor {
                name: "output.weight".into(),
                reason: format!("{} rows for a vocabulary of {}", output.rows(), config.vocab),
            });
        }
        let half = config.head_dim / 2;
        let frequencies: Vec<f32> =
            (0..half).map(|i| 1.0 / config.rope_base.powf((2 * i) as f32 / config.head_dim as f32)).collect();
        let rope = (0..CONTEXT_TOKENS)
            .flat_map(|position| frequencies.iter().map(move |f| (position as f32 * f).sin_cos()))
            .map(|(sin, cos)| (cos, sin))
            .collect();
        Ok(Self { config, embedding, output, output_norm, layers, rope })
    }

    /// Entries in the vocabulary (the length of the logits).
    pub(crate) fn vocab(&self) -> usize {
        self.config.vocab
    }

    /// Bytes of weights held.
    pub(crate) fn size_in_bytes(&self) -> usize {
        let layers: usize = self
            .layers
            .iter()
            .map(|l| {
                l.qkv.size_in_bytes() + l.output.size_in_bytes() + l.gate_up.size_in_bytes() + l.down.size_in_bytes()
            })
            .sum();
        layers + self.embedding.size_in_bytes() + self.output.as_ref().map_or(0, Matrix::size_in_bytes)
    }

    /// An empty cache with room for `positions` positions (so it never grows by doubling).
    pub(crate) fn cache(&self, positions: usize) -> Cache {
        let room = positions.min(CONTEXT_TOKENS) * self.config.kv_dim();
        let layers = || (0..self.config.layers).map(|_| Vec::with_capacity(room)).collect();
        Cache { keys: layers(), values: layers(), len: 0 }
    }

    /// Runs `tokens` at the positions after those in `cache` (which keeps their keys and
    /// values) and returns the logits that predict the token after the last one. A long
    /// prompt goes through in chunks of [`PROMPT_CHUNK`] tokens, which bounds the memory its
    /// activations take and changes nothing in the result.
    pub(crate) fn forward(&self, cache: &mut Cache, tokens: &[u32]) -> Result<Vec<f32>, String> {
        let c = self.config;
        let Some(last_chunk) = tokens.rchunks(PROMPT_CHUNK).next() else { return Err("no tokens".into()) };
        if cache.len + tokens.len() > CONTEXT_TOKENS {
            return Err(format!("{} positions exceed the context of {CONTEXT_TOKENS}", cache.len + tokens.len()));
        }
        if let Some(token) = tokens.iter().find(|t| **t as usize >= c.vocab) {
            return Err(format!("token {token} is outside the vocabulary of {}", c.vocab));
        }
        let before_last = &tokens[..tokens.len() - last_chunk.len()];
        for chunk in before_last.chunks(PROMPT_CHUNK) {
            self.run(cache, chunk);
        }
        let last = self.run(cache, last_chunk);
        let mut normed = vec![0f32; c.hidden];
        rms_norm(&last, &self.output_norm, c.rms_eps, &mut normed);
        let mut logits = vec![0f32; c.vocab];
        self.output.as_ref().unwrap_or(&self.embedding).product(&normed, 1, &mut logits);
        Ok(logits)
    }

    /// The layers over `tokens` (checked: in the vocabulary, within the context), keeping
    /// their keys and values in `cache`; returns the last token's hidden state (the last layer
    /// computes no other token's).
    fn run(&self, cache: &mut Cache, tokens: &[u32]) -> Vec<f32> {
        let c = self.config;
        let n = tokens.len();
        let start = cache.len;
        let mut stream = vec![0f32; n * c.hidden];
        for (token, out) in tokens.iter().zip(stream.chunks_exact_mut(c.hidden)) {
            self.embedding.row_into(*token as usize, out);
        }
        let kv_dim = c.kv_dim();
        let qkv_dim = c.hidden + 2 * kv_dim;
        let ffn = c.ffn;
        let mut normed = vec![0f32; n * c.hidden];
        let mut qkv = vec![0f32; n * qkv_dim];
        let mut attended = vec![0f32; n * c.hidden];
        let mut projected = vec![0f32; n * c.hidden];
        let mut gate_up = vec![0f32; n * 2 * ffn];
        let mut gated = vec![0f32; n * ffn];
        for (index, layer) in self.layers.iter().enumerate() {
            rms_norm(&stream, &layer.attention_norm, c.rms_eps, &mut normed);
            layer.qkv.product(&normed, n, &mut qkv);
            let (keys, values) = (&mut cache.keys[index], &mut cache.values[index]);
            for (t, row) in qkv.chunks_exact_mut(qkv_dim).enumerate() {
                let angles = &self.rope[(start + t) * c.head_dim / 2..(start + t + 1) * c.head_dim / 2];
                let (queries, rest) = row.split_at_mut(c.hidden);
                let (k, v) = rest.split_at_mut(kv_dim);
                for head in queries.chunks_exact_mut(c.head_dim).chain(k.chunks_exact_mut(c.head_dim)) {
                    rotate(head, angles);
                }
                keys.extend_from_slice(k);
                values.extend_from_slice(v);
            }
            // Only the last token's hidden state leaves the last layer: there the other tokens'
            // keys and values are kept (above) and the rest of the layer is theirs alone.
            let from = if index + 1 == self.layers.len() { n - 1 } else { 0 };
            let m = n - from;
            let (hidden, stream) = (c.hidden, &mut stream[from * c.hidden..]);
            let (attended, projected) = (&mut attended[..m * hidden], &mut projected[..m * hidden]);
            attention(&c, &qkv[from * qkv_dim..], keys, values, start + from, attended);
            layer.output.product(attended, m, projected);
            add(stream, projected);

            let normed = &mut normed[..m * hidden];
            let (gate_up, gated) = (&mut gate_up[..m * 2 * ffn], &mut gated[..m * ffn]);
            rms_norm(stream, &layer.ffn_norm, c.rms_eps, normed);
            layer.gate_up.product(normed, m, gate_up);
            let rows = gate_up.par_chunks_exact(2 * ffn).zip(gated.par_chunks_exact_mut(ffn));
            rows.with_min_len(8).for_each(|(gate_up, out)| pulp::Arch::new().dispatch(GatedSilu { gate_up, out }));
            layer.down.product(gated, m, projected);
            add(stream, projected);
        }
        cache.len += n;
        stream.split_off((n - 1) * c.hidden)
    }
}

/// A weight matrix with `cols` columns, in its own encoding where the kernels have one.
fn matrix(tensor: &QTensor, name: &str, cols: usize) -> Result<Matrix, LoadError> {
    let invalid = |reason: String| LoadError::Tensor { name: name.to_owned(), reason };
    let (rows, tensor_cols) = tensor.shape().dims2().map_err(|e| invalid(e.to_string()))?;
    if tensor_cols != cols || !cols.is_multiple_of(BLOCK) {
        return Err(invalid(format!("{rows} × {tensor_cols}, expected {cols} columns (a multiple of {BLOCK})")));
    }
    let from_blocks = |result: Result<Matrix, MatrixError>| result.map_err(|e| invalid(e.to_string()));
    match tensor.dtype() {
        GgmlDType::Q4_1 => {
            from_blocks(Matrix::from_q4_1(rows, cols, &tensor.data().map_err(|e| invalid(e.to_string()))?))
        }
        GgmlDType::Q8_0 => {
            from_blocks(Matrix::from_q8_0(rows, cols, &tensor.data().map_err(|e| invalid(e.to_string()))?))
        }
        _ => {
            let weights = tensor
                .dequantize(&candle_core::Device::Cpu)
                .and_then(|t| t.flatten_all()?.to_vec1::<f32>())
                .map_err(|e| invalid(e.to_string()))?;
            from_blocks(Matrix::quantize_q8_0(rows, cols, &weights))
        }
    }
}

/// A norm's weights: `len` values.
fn vector(tensor: &QTensor, name: &str, len: usize) -> Result<Vec<f32>, LoadError> {
    let values = tensor
        .dequantize(&candle_core::Device::Cpu)
        .and_then(|t| t.flatten_all()?.to_vec1::<f32>())
        .map_err(|e| LoadError::Tensor { name: name.to_owned(), reason: e.to_string() })?;
    if values.len() != len {
        return Err(LoadError::Tensor {
            name: name.to_owned(),
            reason: format!("{} values, expected {len}", values.len()),
        });
    }
    Ok(values)
}

/// `out = x / √(mean(x²) + ε) · weight`, for each row of `x`.
fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    pulp::Arch::new().dispatch(RmsNorm { x, weight, eps, out });
}

/// [`rms_norm`] inside `pulp`'s dispatch, the squares summed by [`dot`] (in lanes, so the sum
/// vectorizes).
struct RmsNorm<'a> {
    x: &'a [f32],
    weight: &'a [f32],
    eps: f32,
    out: &'a mut [f32],
}

impl pulp::WithSimd for RmsNorm<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let RmsNorm { x, weight, eps, out } = self;
        for (row, out) in x.chunks_exact(weight.len()).zip(out.chunks_exact_mut(weight.len())) {
            let scale = 1.0 / (dot(row, row) / row.len() as f32 + eps).sqrt();
            for ((o, v), w) in out.iter_mut().zip(row).zip(weight) {
                *o = v * scale * w;
            }
        }
    }
}

/// Rotates each interleaved pair `(x[2i], x[2i+1])` of one head by its position's angle.
fn rotate(head: &mut [f32], angles: &[(f32, f32)]) {
    for (pair, &(cos, sin)) in head.chunks_exact_mut(2).zip(angles) {
        let (a, b) = (pair[0], pair[1]);
        pair[0] = a * cos - b * sin;
        pair[1] = a * sin + b * cos;
    }
}

/// `out = silu(gate) · up` for one token (`gate_up` holds its gate values, then its up values).
/// Run inside `pulp`'s dispatch, so the loop is compiled for the CPU's widest vectors.
struct GatedSilu<'a> {
    gate_up: &'a [f32],
    out: &'a mut [f32],
}

impl pulp::WithSimd for GatedSilu<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let (gate, up) = self.gate_up.split_at(self.out.len());
        for ((o, g), u) in self.out.iter_mut().zip(gate).zip(up) {
            *o = g / (1.0 + exp(-g)) * u;
        }
    }
}

std::thread_local! {
    /// Each thread's attention scores (reused, so attention does not allocate).
    static SCORES: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Causal attention of each new token (rows of `qkv`, at positions `start..`) over every
/// position up to its own; `out` gets the heads' weighted values side by side. Each pair of a
/// token and a head is a task of its own, shared out among rayon's threads; in a prompt with
/// SmolLM2's shape (heads of 64, three per key/value head) a task is a token and a key/value
/// head, its three heads together ([`AttendGroup`]).
fn attention(c: &Config, qkv: &[f32], keys: &[f32], values: &[f32], start: usize, out: &mut [f32]) {
    let (kv_dim, d) = (c.kv_dim(), c.head_dim);
    let qkv_dim = c.hidden + 2 * kv_dim;
    let group = c.heads / c.kv_heads;
    let scale = 1.0 / (d as f32).sqrt();
    let tokens = qkv.len() / qkv_dim;
    // Several tokens (a prompt): the keys, laid out dimension by dimension per key/value head
    // (positions padded to a multiple of 16), give a query's scores sixteen positions at a time
    // without horizontal sums.
    let positions = (start + tokens).next_multiple_of(16);
    let transposed = if tokens >= TRANSPOSE_FROM && d.is_multiple_of(4) {
        let mut transposed = vec![0f32; c.kv_heads * d * positions];
        for (position, key) in keys.chunks_exact(kv_dim).enumerate() {
            for (i, value) in key.iter().enumerate() {
                transposed[i * positions + position] = *value;
            }
        }
        transposed
    } else {
        Vec::new()
    };
    if d == 64 && group == SHARING && !transposed.is_empty() {
        // A prompt with SmolLM2's shape: the three heads of a key/value head together.
        out.par_chunks_exact_mut(SHARING * d).enumerate().for_each(|(index, out)| {
            let (t, kv_head) = (index / c.kv_heads, index % c.kv_heads);
            let (kv, seen) = (kv_head * d, start + t + 1);
            let width = seen.next_multiple_of(16);
            let query = |h: usize| {
                let head = kv_head * SHARING + h;
                qkv[t * qkv_dim + head * d..].first_chunk::<64>().unwrap_or(&[0.0; 64])
            };
            SCORES.with_borrow_mut(|scores| {
                if scores.len() < SHARING * width {
                    scores.resize(SHARING * width, 0.0);
                }
                let attend = AttendGroup {
                    queries: [query(0), query(1), query(2)],
                    keys: (&transposed[kv * positions..(kv + d) * positions], positions),
                    values,
                    kv,
                    kv_dim,
                    scale,
                    scores: &mut scores[..SHARING * width],
                    seen,
                    out,
                };
                pulp::Arch::new().dispatch(attend);
            });
        });
        return;
    }
    out.par_chunks_exact_mut(d).enumerate().with_min_len(4).for_each(|(index, out)| {
        let (t, head) = (index / c.heads, index % c.heads);
        let query = &qkv[t * qkv_dim + head * d..t * qkv_dim + (head + 1) * d];
        let (kv, seen) = ((head / group) * d, start + t + 1);
        let by_dimension = match transposed.is_empty() {
            true => None,
            false => Some((&transposed[kv * positions..(kv + d) * positions], positions)),
        };
        SCORES.with_borrow_mut(|scores| {
            if scores.len() < seen {
                scores.resize(seen, 0.0);
            }
            let scores = &mut scores[..seen];
            let attend = Attend { query, keys, by_dimension, values, kv, kv_dim, scale, scores, out };
            pulp::Arch::new().dispatch(attend);
        });
    });
}

/// From this many tokens on, attention lays the keys out dimension by dimension first.
const TRANSPOSE_FROM: usize = 16;

/// Each score replaced by `e^(score - max)`, the softmax's numerators; returns their sum (the
/// denominator), added in sixteen lanes. Inlined into the callers' `pulp` dispatch, so its
/// loops vectorize with them.
#[inline(always)]
fn exponentiate(scores: &mut [f32]) -> f32 {
    let mut max = f32::NEG_INFINITY;
    for score in scores.iter() {
        max = if *score > max { *score } else { max };
    }
    for score in scores.iter_mut() {
        *score = exp(*score - max);
    }
    let mut lanes = [0f32; 16];
    let (whole, rest) = scores.as_chunks::<16>();
    for chunk in whole {
        for lane in 0..16 {
            lanes[lane] += chunk[lane];
        }
    }
    lanes.iter().sum::<f32>() + rest.iter().sum::<f32>()
}

/// Heads that share one key/value head, which [`AttendGroup`] takes together.
const SHARING: usize = 3;

/// The [`SHARING`] heads of one key/value head for one token of a prompt (heads of 64): each
/// key vector and each row of values is loaded once for the three queries. The keys are laid
/// out dimension by dimension (sixteen positions a vector); each head's scores, softmax and
/// weighted values as [`Attend`] has them. Plain loops inside `pulp`'s dispatch, written
/// array by array so they vectorize along the positions and dimensions.
struct AttendGroup<'a> {
    queries: [&'a [f32; 64]; SHARING],
    /// The key/value head's keys `[dimension][position]` and a dimension's stride.
    keys: (&'a [f32], usize),
    values: &'a [f32],
    /// Where the key/value head's values start within a position's.
    kv: usize,
    kv_dim: usize,
    scale: f32,
    /// `SHARING` rows of scores, each `width` long (the positions seen, padded to sixteen).
    scores: &'a mut [f32],
    seen: usize,
    /// The three heads' outputs side by side.
    out: &'a mut [f32],
}

impl pulp::WithSimd for AttendGroup<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let AttendGroup { queries: [qa, qb, qc], keys: (keys, stride), values, kv, kv_dim, scale, scores, seen, out } =
            self;
        let width = scores.len() / SHARING;
        let key = |i: usize, block: usize| keys[i * stride + 16 * block..].first_chunk::<16>();
        for block in 0..seen.div_ceil(16) {
            // Two dimensions per step for each head: six independent chains.
            let (mut a0, mut a1, mut b0, mut b1, mut c0, mut c1) =
                ([0f32; 16], [0f32; 16], [0f32; 16], [0f32; 16], [0f32; 16], [0f32; 16]);
            for i in (0..64).step_by(2) {
                let (Some(k0), Some(k1)) = (key(i, block), key(i + 1, block)) else {
                    continue; // never: every dimension holds whole blocks of positions
                };
                for lane in 0..16 {
                    a0[lane] += qa[i] * k0[lane];
                    a1[lane] += qa[i + 1] * k1[lane];
                    b0[lane] += qb[i] * k0[lane];
                    b1[lane] += qb[i + 1] * k1[lane];
                    c0[lane] += qc[i] * k0[lane];
                    c1[lane] += qc[i + 1] * k1[lane];
                }
            }
            for (h, (s0, s1)) in [(a0, a1), (b0, b1), (c0, c1)].iter().enumerate() {
                let Some(row) = scores[h * width + 16 * block..].first_chunk_mut::<16>() else {
                    continue; // never: each row holds whole blocks of positions
                };
                for lane in 0..16 {
                    row[lane] = (s0[lane] + s1[lane]) * scale;
                }
            }
        }
        let totals: [f32; SHARING] = std::array::from_fn(|h| exponentiate(&mut scores[h * width..h * width + seen]));
        let (mut a0, mut a1, mut a2, mut a3) = ([0f32; 16], [0f32; 16], [0f32; 16], [0f32; 16]);
        let (mut b0, mut b1, mut b2, mut b3) = ([0f32; 16], [0f32; 16], [0f32; 16], [0f32; 16]);
        let (mut c0, mut c1, mut c2, mut c3) = ([0f32; 16], [0f32; 16], [0f32; 16], [0f32; 16]);
        for position in 0..seen {
            let Some(v) = values[position * kv_dim + kv..].first_chunk::<64>() else {
                continue; // never: a position's values hold the head's 64
            };
            let (wa, wb, wc) = (scores[position], scores[width + position], scores[2 * width + position]);
            for lane in 0..16 {
                a0[lane] += wa * v[lane];
                a1[lane] += wa * v[16 + lane];
                a2[lane] += wa * v[32 + lane];
                a3[lane] += wa * v[48 + lane];
                b0[lane] += wb * v[lane];
                b1[lane] += wb * v[16 + lane];
                b2[lane] += wb * v[32 + lane];
                b3[lane] += wb * v[48 + lane];
                c0[lane] += wc * v[lane];
                c1[lane] += wc * v[16 + lane];
                c2[lane] += wc * v[32 + lane];
                c3[lane] += wc * v[48 + lane];
            }
        }
        let sums = [[a0, a1, a2, a3], [b0, b1, b2, b3], [c0, c1, c2, c3]];
        for (h, (out, sums)) in out.chunks_exact_mut(64).zip(sums).enumerate() {
            for (piece, sums) in sums.iter().enumerate() {
                for lane in 0..16 {
                    out[16 * piece + lane] = sums[lane] / totals[h];
                }
            }
        }
    }
}

/// One head of one token: its query against the keys seen (as many as `scores` holds), then
/// the values weighted by the softmax of the scores. Plain loops inside `pulp`'s dispatch, so
/// they are compiled for the CPU's widest vectors.
struct Attend<'a> {
    query: &'a [f32],
    keys: &'a [f32],
    /// The head's keys dimension by dimension (`[dimension][position]`), and a dimension's
    /// stride, where they were laid out so.
    by_dimension: Option<(&'a [f32], usize)>,
    values: &'a [f32],
    /// Where the head's keys and values start within a position's.
    kv: usize,
    kv_dim: usize,
    scale: f32,
    scores: &'a mut [f32],
    out: &'a mut [f32],
}

impl pulp::WithSimd for Attend<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let Attend { query, keys, by_dimension, values, kv, kv_dim, scale, scores, out } = self;
        let d = query.len();
        match by_dimension {
            Some((keys, stride)) => {
                // Four dimensions per step, each with its own sums (four independent chains).
                let row = |i: usize, block: usize| keys[i * stride + 16 * block..].first_chunk::<16>();
                for (block, scores) in scores.chunks_mut(16).enumerate() {
                    let (mut s0, mut s1, mut s2, mut s3) = ([0f32; 16], [0f32; 16], [0f32; 16], [0f32; 16]);
                    for (i, q) in query.as_chunks::<4>().0.iter().enumerate() {
                        let (Some(k0), Some(k1), Some(k2), Some(k3)) =
                            (row(4 * i, block), row(4 * i + 1, block), row(4 * i + 2, block), row(4 * i + 3, block))
                        else {
                            continue; // never: every dimension holds whole blocks of positions
                        };
                        for lane in 0..16 {
                            s0[lane] += q[0] * k0[lane];
                            s1[lane] += q[1] * k1[lane];
                            s2[lane] += q[2] * k2[lane];
                            s3[lane] += q[3] * k3[lane];
                        }
                    }
                    for (lane, score) in scores.iter_mut().enumerate() {
                        *score = ((s0[lane] + s1[lane]) + (s2[lane] + s3[lane])) * scale;
                    }
                }
            }
            None => {
                for (position, score) in scores.iter_mut().enumerate() {
                    let at = position * kv_dim + kv;
                    *score = dot(query, &keys[at..at + d]) * scale;
                }
            }
        }
        let total = exponentiate(scores);
        // Heads of 64 dimensions (SmolLM2's): four groups of sixteen sums, four independent
        // chains of multiply-adds in registers.
        if let Ok(out) = <&mut [f32; 64]>::try_from(&mut *out) {
            let (mut s0, mut s1, mut s2, mut s3) = ([0f32; 16], [0f32; 16], [0f32; 16], [0f32; 16]);
            for (position, weight) in scores.iter().enumerate() {
                let Some(v) = values[position * kv_dim + kv..].first_chunk::<64>() else {
                    continue; // never: a position's values hold the head's 64
                };
                for lane in 0..16 {
                    s0[lane] += weight * v[lane];
                    s1[lane] += weight * v[16 + lane];
                    s2[lane] += weight * v[32 + lane];
                    s3[lane] += weight * v[48 + lane];
                }
            }
            for lane in 0..16 {
                out[lane] = s0[lane] / total;
                out[16 + lane] = s1[lane] / total;
                out[32 + lane] = s2[lane] / total;
                out[48 + lane] = s3[lane] / total;
            }
            return;
        }
        // Other head sizes: sixteen dimensions at a time, their sums in one register.
        for (piece, out) in out.chunks_mut(16).enumerate() {
            let mut sums = [0f32; 16];
            for (position, weight) in scores.iter().enumerate() {
                let at = position * kv_dim + kv + piece * 16;
                match <&[f32; 16]>::try_from(&values[at..at + out.len()]) {
                    Ok(v) => {
                        for lane in 0..16 {
                            sums[lane] += weight * v[lane];
                        }
                    }
                    Err(_) => {
                        for (sum, v) in sums.iter_mut().zip(&values[at..at + out.len()]) {
                            *sum += weight * v;
                        }
                    }
                }
            }
            for (o, sum) in out.iter_mut().zip(sums) {
                *o = sum / total;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
    use candle_core::{Device, IndexOp, Tensor};
    use candle_transformers::models::quantized_llama::ModelWeights;

    use super::*;

    /// Candle's own llama over the same weights widened to f32: the reference this forward
    /// pass must agree with.
    fn reference(path: &std::path::Path) -> ModelWeights {
        let mut reader = std::io::BufReader::new(std::fs::File::open(path).expect("open"));
        let content = gguf_file::Content::read(&mut reader).expect("gguf");
        let mut tensors = Vec::new();
        for name in content.tensor_infos.keys() {
            let tensor = content.tensor(&mut reader, name, &Device::Cpu).expect("tensor");
            let wide =
                QTensor::quantize(&tensor.dequantize(&Device::Cpu).expect("dequantize"), GgmlDType::F32).expect("f32");
            tensors.push((name.as_str(), wide));
        }
        let metadata: Vec<(&str, &gguf_file::Value)> = content.metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (*n, t)).collect();
        let mut bytes = std::io::Cursor::new(Vec::new());
        gguf_file::write(&mut bytes, &metadata, &refs).expect("write");
        bytes.set_position(0);
        let content = gguf_file::Content::read(&mut bytes).expect("reread");
        ModelWeights::from_gguf(content, &mut bytes, &Device::Cpu).expect("reference model")
    }

    /// The shipped file: its path, its header and our model of it (`None`: not fetched).
    fn shipped() -> Option<(std::path::PathBuf, gguf_file::Content, Llama)> {
        let dir = crate::testing::models_dir()?;
        let path = dir.join(super::super::MODEL_DIR).join(super::super::GGUF_FILE);
        let mut reader = std::io::BufReader::new(std::fs::File::open(&path).expect("open"));
        let content = gguf_file::Content::read(&mut reader).expect("gguf");
        let llama = Llama::from_gguf(&content, &mut reader).expect("loads");
        Some((path, content, llama))
    }

    fn argmax(values: &[f32]) -> u32 {
        values.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i as u32)
    }

    #[test]
    fn the_forward_pass_agrees_with_candles_llama_on_the_same_weights() {
        let Some((path, content, ours)) = shipped() else { return };
        let tokenizer = super::super::tokenizer::from_gguf(&content).expect("tokenizer");
        let mut theirs = reference(&path);

        let prompt = super::super::chatml_prompt(&[(super::super::ChatRole::User, "What is the capital of France?")]);
        let mut tokens = tokenizer.encode(prompt, false).expect("encode").get_ids().to_vec();
        // Long enough for the prompt's paths (decoded rows, keys laid out by dimension); the
        // steps after it take the one-token paths.
        assert!(tokens.len() >= crate::matrix::DECODE_FROM.max(TRANSPOSE_FROM), "{} prompt tokens", tokens.len());
        let mut cache = ours.cache(tokens.len() + 16);
        let mut input = tokens.clone();
        // The prompt at once, then greedy steps one token at a time.
        for step in 0..16 {
            let position = tokens.len() - input.len();
            let logits = ours.forward(&mut cache, &input).expect("forward");
            let wanted = theirs
                .forward(
                    &Tensor::new(input.as_slice(), &Device::Cpu).and_then(|t| t.unsqueeze(0)).expect("input"),
                    position,
                )
                .and_then(|t| t.i(0)?.to_vec1::<f32>())
                .expect("reference forward");
            let worst = logits.iter().zip(&wanted).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(worst < 2e-3, "step {step}: logits differ by up to {worst}");
            let next = argmax(&logits);
            assert_eq!(next, argmax(&wanted), "step {step}");
            tokens.push(next);
            input = vec![next];
        }
        assert_eq!(cache.len(), tokens.len() - 1);
        let answer = tokenizer.decode(&tokens[tokens.len() - 16..], true).expect("decode");
        assert!(answer.contains("Paris"), "{answer:?}");
    }

    #[test]
    fn a_long_prompt_in_chunks_gives_the_logits_of_any_other_split() {
        let Some((_, _, ours)) = shipped() else { return };
        // 300 tokens: one call goes through in chunks of 256 and 44.
        let tokens: Vec<u32> = (0..300u32).map(|i| 1 + (i * 7919) % 40_000).collect();
        let mut whole = ours.cache(tokens.len());
        let at_once = ours.forward(&mut whole, &tokens).expect("forward");
        let mut split = ours.cache(0);
        ours.forward(&mut split, &tokens[..100]).expect("first part");
        let in_parts = ours.forward(&mut split, &tokens[100..]).expect("second part");
        assert_eq!((whole.len(), split.len()), (300, 300));
        let worst = at_once.iter().zip(&in_parts).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-3, "logits differ by up to {worst}");
        assert_eq!(argmax(&at_once), argmax(&in_parts));
        assert_eq!(whole.keys[0].capacity(), 300 * ours.config.kv_dim(), "sized once, never doubled");
    }

    #[test]
    fn attention_matches_its_definition_for_any_head_size_and_number_of_tokens() {
        use crate::matrix::tests::values;
        // Heads of 64 (SmolLM2's) and of other sizes; one token (generation), a few, and a
        // prompt's worth (keys laid out by dimension), after positions already cached or not.
        for (head_dim, tokens, start) in [(64, 1, 40), (64, 3, 0), (64, 37, 5), (20, 1, 7), (20, 40, 0), (6, 17, 3)] {
            let (heads, kv_heads) = (6, 2);
            let c = Config {
                layers: 1,
                hidden: heads * head_dim,
                heads,
                kv_heads,
                head_dim,
                vocab: 1,
                ffn: 1,
                rms_eps: 1e-5,
                rope_base: 10_000.0,
            };
            let (kv_dim, qkv_dim) = (c.kv_dim(), c.hidden + 2 * c.kv_dim());
            let qkv = values(tokens * qkv_dim, head_dim as u64 + tokens as u64);
            let positions = start + tokens;
            let keys = values(positions * kv_dim, 5 + positions as u64);
            let cached = values(positions * kv_dim, 9 + positions as u64);
            let mut out = vec![f32::NAN; tokens * c.hidden];
            attention(&c, &qkv, &keys, &cached, start, &mut out);
            for t in 0..tokens {
                for head in 0..heads {
                    let kv = (head / (heads / kv_heads)) * head_dim;
                    let query = &qkv[t * qkv_dim + head * head_dim..][..head_dim];
                    let scores: Vec<f64> = (0..=start + t)
                        .map(|p| {
                            let key = &keys[p * kv_dim + kv..][..head_dim];
                            query.iter().zip(key).map(|(q, k)| f64::from(*q) * f64::from(*k)).sum::<f64>()
                                / (head_dim as f64).sqrt()
                        })
                        .collect();
                    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                    let total: f64 = weights.iter().sum();
                    for i in 0..head_dim {
                        let want: f64 = weights
                            .iter()
                            .enumerate()
                            .map(|(p, w)| w / total * f64::from(cached[p * kv_dim + kv + i]))
                            .sum();
                        let got = f64::from(out[t * c.hidden + head * head_dim + i]);
                        assert!(
                            (got - want).abs() < 1e-5,
                            "heads of {head_dim}, {tokens} tokens after {start}: token {t}, head {head}, dim {i}: {got} against {want}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn positions_past_the_context_and_unknown_tokens_are_refused() {
        let Some((_, _, ours)) = shipped() else { return };
        let mut cache = ours.cache(0);
        let error = ours.forward(&mut cache, &[u32::MAX]).expect_err("not a token");
        assert!(error.contains("outside the vocabulary"), "{error}");
        assert!(ours.forward(&mut cache, &[]).is_err());
        let error = ours.forward(&mut cache, &vec![1; CONTEXT_TOKENS + 1]).expect_err("too long");
        assert!(error.contains("exceed the context"), "{error}");
        assert_eq!(cache.len(), 0, "nothing was kept from refused calls");
    }
}

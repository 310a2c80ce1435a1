//! all-MiniLM-L6-v2's BERT encoder, run by our own forward pass over the file's f32 weights
//! (packed once at load for many-token products, [`crate::panels`]): word, position and token-type embeddings and their
//! layer norm, then per layer bidirectional multi-head attention (query, key and value stacked
//! into one product), its output projection, residual and layer norm, the GELU feed-forward,
//! its residual and layer norm; the output is mean-pooled over each text's tokens and scaled to
//! unit length, as `sentence-transformers` does.
//!
//! Texts are not padded: the tokens of several texts go through each product together (every
//! product treats tokens independently), and attention stays within each text's own tokens.
//! So a batch computes exactly what each text alone would, with no mask, and one short text
//! costs its own few tokens, not a generic matrix library's set-up (re-packing the weights for
//! every call cost more than the arithmetic for a short text).

use safetensors::{Dtype, SafeTensors};
use std::ops::Range;

use rayon::prelude::*;
use serde::Deserialize;

use crate::matrix::{add, exp};
use crate::panels::{Panels, Share};

/// Tokens that go through the layers together (bounds the activations a large batch holds;
/// past a few dozen tokens, each weight loaded is already reused many times).
const TOKENS_PER_PASS: usize = 512;

/// Tokens per thread from which a batch's texts are shared out among the threads (each taking
/// its texts through every layer alone) rather than each product's rows.
const PARALLEL_TEXTS_FROM: usize = 64;

/// The fields of a BERT `config.json` the forward pass reads.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct BertConfig {
    pub(crate) hidden_size: usize,
    pub(crate) num_attention_heads: usize,
    pub(crate) num_hidden_layers: usize,
    pub(crate) intermediate_size: usize,
    pub(crate) max_position_embeddings: usize,
    pub(crate) layer_norm_eps: f64,
    pub(crate) hidden_act: String,
    #[serde(default = "absolute")]
    pub(crate) position_embedding_type: String,
}

fn absolute() -> String {
    "absolute".into()
}

impl BertConfig {
    /// What the forward pass cannot run, named by its field.
    pub(crate) fn check(&self) -> Result<(), BertError> {
        if self.hidden_act != "gelu" {
            return Err(BertError::Config(format!(
                "hidden_act {:?} is not supported (only \"gelu\")",
                self.hidden_act
            )));
        }
        if self.position_embedding_type != "absolute" {
            return Err(BertError::Config(format!(
                "position_embedding_type {:?} is not supported (only \"absolute\")",
                self.position_embedding_type
            )));
        }
        for (field, value) in [
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
        ] {
            if value == 0 {
                return Err(BertError::Config(format!("{field} is 0")));
            }
        }
        let (dims, heads) = (self.hidden_size, self.num_attention_heads);
        if heads == 0 || !dims.is_multiple_of(heads) {
            return Err(BertError::Config(format!(
                "hidden_size {dims} is not a multiple of num_attention_heads {heads}"
            )));
        }
        Ok(())
    }
}

/// Why the encoder could not be built or run.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BertError {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    File(String),
    #[error("tensor {name}: {reason}")]
    Tensor { name: String, reason: String },
    #[error("token id {id} is outside the vocabulary of {vocabulary}")]
    UnknownToken { id: u32, vocabulary: usize },
    #[error("{tokens} tokens is more than the {max} positions the model has")]
    TooLong { tokens: usize, max: usize },
}

/// A layer norm's scale and shift.
struct Norm {
    weight: Vec<f32>,
    bias: Vec<f32>,
}

/// A linear layer: `out = W·x + b`.
struct Dense {
    weights: Panels,
    bias: Vec<f32>,
}

struct Layer {
    /// Query, key and value, stacked.
    qkv: Dense,
    attention_output: Dense,
    attention_norm: Norm,
    up: Dense,
    down: Dense,
    output_norm: Norm,
}

/// The encoder's weights: immutable, shared by every call.
pub(crate) struct Bert {
    dims: usize,
    heads: usize,
    ffn: usize,
    eps: f32,
    vocabulary: usize,
    max_positions: usize,
    words: Vec<f32>,
    positions: Vec<f32>,
    /// Token type 0's embedding (every token is of type 0 for a single text).
    token_type: Vec<f32>,
    embedding_norm: Norm,
    layers: Vec<Layer>,
}

impl Bert {
    /// Builds the encoder from a safetensors file's bytes (names as `transformers` writes a
    /// `BertModel`, with or without a `bert.` prefix).
    pub(crate) fn load(config: &BertConfig, file: &[u8]) -> Result<Self, BertError> {
        config.check()?;
        let (dims, heads) = (config.hidden_size, config.num_attention_heads);
        let tensors = SafeTensors::deserialize(file).map_err(|e| BertError::File(e.to_string()))?;
        let prefix = if tensors.names().iter().any(|name| name.starts_with("bert.")) { "bert." } else { "" };
        let read = |name: &str, shape: &[usize]| tensor(&tensors, &format!("{prefix}{name}"), shape);
        let ffn = config.intermediate_size;
        // Several layers' weights stacked (one product for query, key and value).
        let dense = |names: &[String], rows: usize, cols: usize| -> Result<Dense, BertError> {
            let (mut weights, mut bias) = (Vec::new(), Vec::new());
            for name in names {
                weights.extend(read(&format!("{name}.weight"), &[rows, cols])?);
                bias.extend(read(&format!("{name}.bias"), &[rows])?);
            }
            let weights = Panels::from_rows(rows * names.len(), cols, &weights).map_err(|e| BertError::Tensor {
                name: format!("{prefix}{}.weight", names[0]),
                reason: e.to_string(),
            })?;
            Ok(Dense { weights, bias })
        };
        let norm = |name: &str| -> Result<Norm, BertError> {
            Ok(Norm {
                weight: read(&format!("{name}.weight"), &[dims])?,
                bias: read(&format!("{name}.bias"), &[dims])?,
            })
        };
        let words = read("embeddings.word_embeddings.weight", &[0, dims])?;
        let max_positions = config.max_position_embeddings;
        let positions = read("embeddings.position_embeddings.weight", &[max_positions, dims])?;
        let token_types = read("embeddings.token_type_embeddings.weight", &[0, dims])?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let at = format!("encoder.layer.{i}");
                let qkv = ["query", "key", "value"].map(|part| format!("{at}.attention.self.{part}"));
                Ok(Layer {
                    qkv: dense(&qkv, dims, dims)?,
                    attention_output: dense(&[format!("{at}.attention.output.dense")], dims, dims)?,
                    attention_norm: norm(&format!("{at}.attention.output.LayerNorm"))?,
                    up: dense(&[format!("{at}.intermediate.dense")], ffn, dims)?,
                    down: dense(&[format!("{at}.output.dense")], dims, ffn)?,
                    output_norm: norm(&format!("{at}.output.LayerNorm"))?,
                })
            })
            .collect::<Result<Vec<_>, BertError>>()?;
        Ok(Self {
            dims,
            heads,
            ffn,
            eps: config.layer_norm_eps as f32,
            vocabulary: words.len() / dims,
            max_positions,
            token_type: token_types.get(..dims).map(<[f32]>::to_vec).ok_or_else(|| BertError::Tensor {
                name: format!("{prefix}embeddings.token_type_embeddings.weight"),
                reason: "no token type 0".into(),
            })?,
            words,
            positions,
            embedding_norm: norm("embeddings.LayerNorm")?,
            layers,
        })
    }

    /// Bytes of weights held.
    pub(crate) fn weight_bytes(&self) -> usize {
        let dense = |d: &Dense| d.weights.size_in_bytes() + d.bias.len() * 4;
        let layers: usize = self
            .layers
            .iter()
            .map(|l| dense(&l.qkv) + dense(&l.attention_output) + dense(&l.up) + dense(&l.down) + 4 * self.dims * 4)
            .sum();
        layers + (self.words.len() + self.positions.len() + 3 * self.dims) * 4
    }

    /// One unit vector per token sequence (each already cut to the model's positions), the
    /// mean of its tokens' outputs.
    pub(crate) fn embed(&self, texts: &[&[u32]]) -> Result<Vec<Vec<f32>>, BertError> {
        for ids in texts {
            if ids.len() > self.max_positions {
                return Err(BertError::TooLong { tokens: ids.len(), max: self.max_positions });
            }
            if let Some(&id) = ids.iter().find(|&&id| id as usize >= self.vocabulary) {
                return Err(BertError::UnknownToken { id, vocabulary: self.vocabulary });
            }
        }
        let threads = rayon::current_num_threads();
        let groups = split_by_tokens(texts, threads);
        let tokens = |group: &&[&[u32]]| group.iter().map(|ids| ids.len()).sum::<usize>();
        if threads > 1 && groups.len() == threads && groups.iter().all(|group| tokens(group) >= PARALLEL_TEXTS_FROM) {
            // Enough tokens for every thread: each takes its own texts through every layer,
            // with no hand-over between threads at each product. (One long text, or one text
            // holding most of the tokens, shares each product's rows instead.)
            let vectors: Vec<Vec<Vec<f32>>> =
                rayon::scope(|_| groups.par_iter().map(|group| self.passes(group, Share::Alone)).collect());
            return Ok(vectors.into_iter().flatten().collect());
        }
        Ok(rayon::scope(|_| self.passes(texts, Share::Threads)))
    }

    /// The texts in passes of at most [`TOKENS_PER_PASS`] tokens (at least one text each).
    fn passes(&self, texts: &[&[u32]], share: Share) -> Vec<Vec<f32>> {
        let mut out = Vec::with_capacity(texts.len());
        let mut rest = texts;
        while !rest.is_empty() {
            let mut take = 1;
            let mut tokens = rest[0].len();
            while take < rest.len() && tokens + rest[take].len() <= TOKENS_PER_PASS {
                tokens += rest[take].len();
                take += 1;
            }
            let (pass, later) = rest.split_at(take);
            out.extend(self.forward(pass, share));
            rest = later;
        }
        out
    }

    /// The layers over the texts' tokens side by side, then pooling.
    fn forward(&self, texts: &[&[u32]], share: Share) -> Vec<Vec<f32>> {
        let d = self.dims;
        let spans: Vec<Range<usize>> = texts
            .iter()
            .scan(0, |start, ids| {
                let span = *start..*start + ids.len();
                *start = span.end;
                Some(span)
            })
            .collect();
        let n = spans.last().map_or(0, |span| span.end);
        let mut stream = vec![0f32; n * d];
        let rows = stream.chunks_exact_mut(d);
        for ((position, &id), row) in texts.iter().flat_map(|ids| ids.iter().enumerate()).zip(rows) {
            let word = &self.words[id as usize * d..(id as usize + 1) * d];
            let place = &self.positions[position * d..(position + 1) * d];
            for (((out, w), p), t) in row.iter_mut().zip(word).zip(place).zip(&self.token_type) {
                *out = w + p + t;
            }
        }
        layer_norm(&mut stream, &self.embedding_norm, self.eps);
        let mut qkv = vec![0f32; n * 3 * d];
        let mut attended = vec![0f32; n * d];
        let mut projected = vec![0f32; n * d];
        let mut hidden = vec![0f32; n * self.ffn];
        for layer in &self.layers {
            layer.qkv.apply(&stream, n, &mut qkv, share);
            attend(d, self.heads, &qkv, &spans, &mut attended, share);
            layer.attention_output.apply(&attended, n, &mut projected, share);
            add(&mut stream, &projected);
            layer_norm(&mut stream, &layer.attention_norm, self.eps);
            layer.up.apply(&stream, n, &mut hidden, share);
            gelu(&mut hidden, self.ffn, share);
            layer.down.apply(&hidden, n, &mut projected, share);
            add(&mut stream, &projected);
            layer_norm(&mut stream, &layer.output_norm, self.eps);
        }
        spans
            .iter()
            .map(|span| {
                let mut mean = vec![0f32; d];
                for row in stream[span.start * d..span.end * d].chunks_exact(d) {
                    add(&mut mean, row);
                }
                let count = (span.len() as f32).max(1e-9);
                mean.iter_mut().for_each(|v| *v /= count);
                let norm = mean.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
                mean.iter_mut().for_each(|v| *v /= norm);
                mean
            })
            .collect()
    }
}

impl Dense {
    fn apply(&self, inputs: &[f32], tokens: usize, out: &mut [f32], share: Share) {
        self.weights.product(inputs, tokens, out, share);
        for row in out.chunks_exact_mut(self.bias.len()) {
            add(row, &self.bias);
        }
    }
}

/// A tensor's f32 values, checked against `shape` (a 0 accepts any length there).
fn tensor(tensors: &SafeTensors<'_>, name: &str, shape: &[usize]) -> Result<Vec<f32>, BertError> {
    let invalid = |reason: String| BertError::Tensor { name: name.to_owned(), reason };
    let view = tensors.tensor(name).map_err(|e| invalid(e.to_string()))?;
    if view.dtype() != Dtype::F32 {
        return Err(invalid(format!("{:?}, expected F32", view.dtype())));
    }
    let fits = view.shape().len() == shape.len()
        && view.shape().iter().zip(shape).all(|(&got, &want)| want == 0 || got == want);
    if !fits || view.shape().contains(&0) {
        return Err(invalid(format!("shape {:?}, expected {shape:?}", view.shape())));
    }
    Ok(view.data().as_chunks::<4>().0.iter().map(|bytes| f32::from_le_bytes(*bytes)).collect())
}

/// `x = (x - mean) / √(var + ε) · weight + bias`, for each row of `x`.
fn layer_norm(x: &mut [f32], norm: &Norm, eps: f32) {
    pulp::Arch::new().dispatch(LayerNorm { x, norm, eps });
}

struct LayerNorm<'a> {
    x: &'a mut [f32],
    norm: &'a Norm,
    eps: f32,
}

impl pulp::WithSimd for LayerNorm<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let LayerNorm { x, norm, eps } = self;
        let d = norm.weight.len();
        let mut centred = vec![0f32; d];
        for row in x.chunks_exact_mut(d) {
            let mean = sum(row) / d as f32;
            for (c, v) in centred.iter_mut().zip(row.iter()) {
                *c = (v - mean) * (v - mean);
            }
            let scale = 1.0 / (sum(&centred) / d as f32 + eps).sqrt();
            for ((v, w), b) in row.iter_mut().zip(&norm.weight).zip(&norm.bias) {
                *v = (*v - mean) * scale * w + b;
            }
        }
    }
}

/// A sum in sixteen lanes (so it vectorizes).
#[inline(always)]
fn sum(values: &[f32]) -> f32 {
    let (chunks, tail) = values.as_chunks::<16>();
    let mut acc = [0f32; 16];
    for chunk in chunks {
        for lane in 0..16 {
            acc[lane] += chunk[lane];
        }
    }
    acc.iter().sum::<f32>() + tail.iter().sum::<f32>()
}

/// `count` groups of consecutive texts with about the same number of tokens each.
fn split_by_tokens<'a, 'b>(texts: &'a [&'b [u32]], count: usize) -> Vec<&'a [&'b [u32]]> {
    let total: usize = texts.iter().map(|ids| ids.len()).sum();
    let mut groups = Vec::with_capacity(count);
    let (mut start, mut seen) = (0, 0);
    for (i, ids) in texts.iter().enumerate() {
        seen += ids.len();
        // Close a group once it holds its share of the tokens so far.
        if seen * count >= total * (groups.len() + 1) && groups.len() + 1 < count {
            groups.push(&texts[start..=i]);
            start = i + 1;
        }
    }
    groups.push(&texts[start..]);
    groups.retain(|group| !group.is_empty());
    groups
}

/// Tokens per parallel task of attention and GELU.
const TOKENS_PER_TASK: usize = 16;

/// Lanes of the blocks attention works in: scores come sixteen keys at a time, and a head's
/// values sixteen dimensions at a time, in plain arrays the compiler turns into vector
/// operations without remainder loops.
const BLOCK: usize = 16;
type Block = [f32; BLOCK];

/// Attention of every token over the tokens of its own text, head by head; `out` gets the
/// heads' weighted values side by side. Tokens are shared among rayon's threads.
fn attend(dims: usize, heads: usize, qkv: &[f32], spans: &[Range<usize>], out: &mut [f32], share: Share) {
    let span_of: Vec<Range<usize>> = spans.iter().flat_map(|span| span.clone().map(|_| span.clone())).collect();
    share.chunks(out, dims * TOKENS_PER_TASK, |task, out| {
        let first = task * TOKENS_PER_TASK;
        let spans = &span_of[first..first + out.len() / dims];
        pulp::Arch::new().dispatch(Attend { dims, heads, qkv, first, spans, out });
    });
}

/// Some tokens' attention (tokens `first..`, each with its text's span), inside `pulp`'s
/// dispatch so its loops are compiled for the CPU's widest vectors.
struct Attend<'a> {
    dims: usize,
    heads: usize,
    qkv: &'a [f32],
    first: usize,
    spans: &'a [Range<usize>],
    out: &'a mut [f32],
}

impl pulp::WithSimd for Attend<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let Attend { dims, heads, qkv, first, spans, out } = self;
        let head = dims / heads;
        let scale = 1.0 / (head as f32).sqrt();
        let row = |t: usize| &qkv[t * 3 * dims..(t + 1) * 3 * dims];
        // A head's keys transposed (dimension by dimension, sixteen keys per block, the last
        // block padded), the scores of one query, both reused for every query of a text here.
        let (mut keys, mut scores): (Vec<Block>, Vec<Block>) = (Vec::new(), Vec::new());
        let mut i = 0;
        while i < spans.len() {
            // The tokens here from the same text, `i..run`, share its keys.
            let span = spans[i].clone();
            let run = i + spans[i..].iter().take_while(|s| **s == span).count();
            let blocks = span.len().div_ceil(BLOCK);
            for h in 0..heads {
                let at = h * head..(h + 1) * head;
                keys.clear();
                keys.resize(head * blocks, [0.0; BLOCK]);
                for (j, t) in span.clone().enumerate() {
                    for (c, value) in row(t)[dims + at.start..dims + at.end].iter().enumerate() {
                        keys[c * blocks + j / BLOCK][j % BLOCK] = *value;
                    }
                }
                for (t, out) in (i..run).zip(out[i * dims..run * dims].chunks_exact_mut(dims)) {
                    let query = &row(first + t)[at.clone()];
                    // Plain loops, not iterator adapters: a closure the compiler does not inline
                    // would be compiled without the dispatch's vector instructions.
                    scores.clear();
                    for b in 0..blocks {
                        scores.push(score_block(query, &keys, blocks, b, scale));
                    }
                    // Padding lanes get no weight.
                    if let Some(last) = scores.last_mut() {
                        last[span.len() - (blocks - 1) * BLOCK..].fill(f32::NEG_INFINITY);
                    }
                    let total = softmax_numerators(&mut scores);
                    let weights = &scores.as_flattened()[..span.len()];
                    let values = &qkv[span.start * 3 * dims..span.end * 3 * dims];
                    weighted_sum(weights, values, 3 * dims, 2 * dims + at.start, 1.0 / total, &mut out[at.clone()]);
                }
            }
            i = run;
        }
    }
}

/// The scores of `query` against keys `b·16..b·16+16` (`keys` transposed, `blocks` per
/// dimension), times `scale`; four partial sums so the additions do not wait on each other.
#[inline(always)]
fn score_block(query: &[f32], keys: &[Block], blocks: usize, b: usize, scale: f32) -> Block {
    let key = |c: usize| &keys[c * blocks + b];
    let (mut a0, mut a1, mut a2, mut a3) = ([0f32; BLOCK], [0f32; BLOCK], [0f32; BLOCK], [0f32; BLOCK]);
    let (quads, rest) = query.as_chunks::<4>();
    for (i, q) in quads.iter().enumerate() {
        let (k0, k1, k2, k3) = (key(4 * i), key(4 * i + 1), key(4 * i + 2), key(4 * i + 3));
        for lane in 0..BLOCK {
            a0[lane] += q[0] * k0[lane];
            a1[lane] += q[1] * k1[lane];
            a2[lane] += q[2] * k2[lane];
            a3[lane] += q[3] * k3[lane];
        }
    }
    for (c, q) in rest.iter().enumerate() {
        let k = key(4 * quads.len() + c);
        for lane in 0..BLOCK {
            a0[lane] += q * k[lane];
        }
    }
    let mut scores = [0f32; BLOCK];
    for lane in 0..BLOCK {
        scores[lane] = (a0[lane] + a1[lane] + (a2[lane] + a3[lane])) * scale;
    }
    scores
}

/// Replaces scores with `e^(score - max)` and returns their sum.
#[inline(always)]
fn softmax_numerators(scores: &mut [Block]) -> f32 {
    let mut most = [f32::NEG_INFINITY; BLOCK];
    for block in scores.iter() {
        for lane in 0..BLOCK {
            most[lane] = if block[lane] > most[lane] { block[lane] } else { most[lane] };
        }
    }
    let max = most.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut total = [0f32; BLOCK];
    for block in scores.iter_mut() {
        for lane in 0..BLOCK {
            block[lane] = exp(block[lane] - max);
            total[lane] += block[lane];
        }
    }
    total.iter().sum()
}

/// `out = scale · Σ weights[j] · values[j]`, sixteen dimensions at a time, where `values[j]`
/// is `rows[j * stride + offset..][..out.len()]`.
#[inline(always)]
fn weighted_sum(weights: &[f32], rows: &[f32], stride: usize, offset: usize, scale: f32, out: &mut [f32]) {
    let width = out.len();
    let value = |j: usize| &rows[j * stride + offset..j * stride + offset + width];
    let (blocks, tail) = out.as_chunks_mut::<BLOCK>();
    for (k, block) in blocks.iter_mut().enumerate() {
        let at = k * BLOCK..(k + 1) * BLOCK;
        let (mut a0, mut a1) = ([0f32; BLOCK], [0f32; BLOCK]);
        let pairs = weights.len() / 2;
        for j in 0..pairs {
            let (w0, w1) = (weights[2 * j], weights[2 * j + 1]);
            let (v0, v1) = (&value(2 * j)[at.clone()], &value(2 * j + 1)[at.clone()]);
            for lane in 0..BLOCK {
                a0[lane] += w0 * v0[lane];
                a1[lane] += w1 * v1[lane];
            }
        }
        if weights.len() % 2 == 1 {
            let j = weights.len() - 1;
            let (w, v) = (weights[j], &value(j)[at.clone()]);
            for lane in 0..BLOCK {
                a0[lane] += w * v[lane];
            }
        }
        for lane in 0..BLOCK {
            block[lane] = (a0[lane] + a1[lane]) * scale;
        }
    }
    let done = width - tail.len();
    for (d, o) in tail.iter_mut().enumerate() {
        let mut total = 0.0;
        for (j, w) in weights.iter().enumerate() {
            total += w * rows[j * stride + offset + done + d];
        }
        *o = total * scale;
    }
}

/// GELU with the error function (BERT's "gelu"), in place, shared among rayon's threads.
fn gelu(values: &mut [f32], width: usize, share: Share) {
    share.chunks(values, width * TOKENS_PER_TASK, |_, values| pulp::Arch::new().dispatch(Gelu(values)));
}

struct Gelu<'a>(&'a mut [f32]);

impl pulp::WithSimd for Gelu<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        for x in self.0.iter_mut() {
            *x *= 0.5 * (1.0 + erf(*x * std::f32::consts::FRAC_1_SQRT_2));
        }
    }
}

/// The error function to within 1.5e-7 (Abramowitz and Stegun 7.1.26), plus f32 rounding.
#[inline(always)]
fn erf(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [0.254_829_6, -0.284_496_74, 1.421_413_8, -1.453_152, 1.061_405_4];
    let z = x.abs();
    let t = 1.0 / (1.0 + P * z);
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    let y = 1.0 - poly * exp(-z * z);
    y.copysign(x)
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Tensor};
    use candle_nn::VarBuilder;
    use candle_transformers::models::bert::{BertModel, Config};

    use super::*;

    /// Candle's BERT over the same file, padded with a mask and pooled as sentence-transformers
    /// pools: the reference this forward pass must agree with.
    fn candle_embed(model: &BertModel, batch: &[&[u32]]) -> Vec<Vec<f32>> {
        let width = batch.iter().map(|ids| ids.len()).max().unwrap_or(1);
        let mut ids = vec![0u32; batch.len() * width];
        let mut mask = vec![0f32; batch.len() * width];
        for (row, text) in batch.iter().enumerate() {
            ids[row * width..row * width + text.len()].copy_from_slice(text);
            mask[row * width..row * width + text.len()].fill(1.0);
        }
        let ids = Tensor::from_vec(ids, (batch.len(), width), &Device::Cpu).expect("ids");
        let mask = Tensor::from_vec(mask, (batch.len(), width), &Device::Cpu).expect("mask");
        let hidden = model.forward(&ids, &ids.zeros_like().expect("types"), Some(&mask)).expect("forward");
        let summed = hidden.broadcast_mul(&mask.unsqueeze(2).expect("mask3")).and_then(|h| h.sum(1)).expect("sum");
        let mean = summed.broadcast_div(&mask.sum_keepdim(1).expect("count")).expect("mean");
        let norms = mean.sqr().and_then(|m| m.sum_keepdim(1)).and_then(|m| m.sqrt()).expect("norms");
        mean.broadcast_div(&norms).and_then(|m| m.to_vec2::<f32>()).expect("vectors")
    }

    #[test]
    fn the_encoder_agrees_with_candles_bert_on_the_same_weights() {
        let Some(dir) = crate::testing::models_dir() else { return };
        let dir = dir.join(crate::embeddings::MODEL_DIR);
        let config_text = std::fs::read_to_string(dir.join("config.json")).expect("config");
        let file = std::fs::read(dir.join("model.safetensors")).expect("weights");
        let ours = Bert::load(&serde_json::from_str(&config_text).expect("our config"), &file).expect("ours");
        let config: Config = serde_json::from_str(&config_text).expect("candle's config");
        let vb = VarBuilder::from_buffered_safetensors(file, DType::F32, &Device::Cpu).expect("vb");
        let theirs = BertModel::load(vb, &config).expect("candle's bert");
        // Token ids of texts of 1, 3, 7, 40 and 256 tokens (CLS ... SEP), in one batch and alone.
        let texts: Vec<Vec<u32>> = [1usize, 3, 7, 40, 256]
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                (0..n)
                    .map(|j| {
                        if j == 0 {
                            101
                        } else if j == n - 1 {
                            102
                        } else {
                            1000 + (j * 37 + i * 101) as u32 % 28000
                        }
                    })
                    .collect()
            })
            .collect();
        let batch: Vec<&[u32]> = texts.iter().map(Vec::as_slice).collect();
        let want = candle_embed(&theirs, &batch);
        let together = ours.embed(&batch).expect("embeds");
        for (i, text) in batch.iter().enumerate() {
            let alone = ours.embed(&[text]).expect("alone");
            for (got, want) in [(&together[i], &want[i]), (&alone[0], &want[i])] {
                let worst = got.iter().zip(want).map(|(g, w)| (g - w).abs()).fold(0f32, f32::max);
                assert!(worst < 2e-5, "text {i} ({} tokens): differs by {worst}", text.len());
            }
        }
    }

    #[test]
    fn unknown_tokens_and_overlong_texts_are_refused() {
        let Some(dir) = crate::testing::models_dir() else { return };
        let dir = dir.join(crate::embeddings::MODEL_DIR);
        let config: BertConfig =
            serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).expect("config")).expect("parses");
        let bert = Bert::load(&config, &std::fs::read(dir.join("model.safetensors")).expect("weights")).expect("loads");
        let error = bert.embed(&[&[101, 40_000, 102]]).expect_err("unknown token");
        assert_eq!(error.to_string(), "token id 40000 is outside the vocabulary of 30522");
        let long = vec![101u32; 513];
        let error = bert.embed(&[&long]).expect_err("too long");
        assert_eq!(error.to_string(), "513 tokens is more than the 512 positions the model has");
    }

    #[test]
    fn configurations_it_cannot_run_are_named() {
        let config = |act: &str, heads: usize| BertConfig {
            hidden_size: 384,
            num_attention_heads: heads,
            num_hidden_layers: 1,
            intermediate_size: 1536,
            max_position_embeddings: 512,
            layer_norm_eps: 1e-12,
            hidden_act: act.into(),
            position_embedding_type: "absolute".into(),
        };
        assert!(config("gelu", 12).check().is_ok());
        assert!(config("relu", 12).check().expect_err("relu").to_string().contains("hidden_act \"relu\""));
        assert!(config("gelu", 5).check().expect_err("heads").to_string().contains("num_attention_heads 5"));
        let empty = BertConfig { intermediate_size: 0, ..config("gelu", 12) };
        assert_eq!(empty.check().expect_err("zero").to_string(), "intermediate_size is 0");
        let error = Bert::load(&config("gelu", 12), b"not a safetensors file").err().expect("garbage is refused");
        assert!(matches!(error, BertError::File(_)), "{error}");
    }

    /// erf to f64 precision by its series (converges for the |x| < 5 tested).
    fn erf_series(x: f64) -> f64 {
        let (mut term, mut sum) = (x, x);
        for n in 1..200 {
            term *= -x * x / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn erf_is_within_its_stated_error() {
        for i in -4000..=4000 {
            let x = i as f32 / 1000.0;
            let want = erf_series(f64::from(x));
            let got = f64::from(erf(x));
            assert!((got - want).abs() < 5e-7, "erf({x}) = {got}, want {want}");
        }
        assert_eq!(erf(10.0), 1.0);
        assert_eq!(erf(-10.0), -1.0);
    }

    #[test]
    fn texts_are_shared_out_in_order_by_their_tokens() {
        let texts: Vec<Vec<u32>> = [10usize, 10, 10, 10, 40, 5, 5].iter().map(|&n| vec![1; n]).collect();
        let texts: Vec<&[u32]> = texts.iter().map(Vec::as_slice).collect();
        let groups = split_by_tokens(&texts, 2);
        let lengths: Vec<Vec<usize>> = groups.iter().map(|g| g.iter().map(|t| t.len()).collect()).collect();
        assert_eq!(lengths, vec![vec![10, 10, 10, 10, 40], vec![5, 5]]);
        assert_eq!(split_by_tokens(&texts[..1], 4).len(), 1, "never an empty group");
        assert_eq!(split_by_tokens(&texts, 3).iter().map(|g| g.len()).sum::<usize>(), texts.len());
    }

    /// Attention written out plainly, in f64: the reference for `attend`.
    fn attention_by_definition(dims: usize, heads: usize, qkv: &[f32], spans: &[Range<usize>]) -> Vec<f64> {
        let head = dims / heads;
        let at = |t: usize, part: usize, h: usize, c: usize| f64::from(qkv[t * 3 * dims + part * dims + h * head + c]);
        let mut out = Vec::new();
        for span in spans {
            for t in span.clone() {
                let mut row = vec![0f64; dims];
                for h in 0..heads {
                    let scores: Vec<f64> = span
                        .clone()
                        .map(|s| (0..head).map(|c| at(t, 0, h, c) * at(s, 1, h, c)).sum::<f64>() / (head as f64).sqrt())
                        .collect();
                    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                    let total: f64 = weights.iter().sum();
                    for (w, s) in weights.iter().zip(span.clone()) {
                        for c in 0..head {
                            row[h * head + c] += w / total * at(s, 2, h, c);
                        }
                    }
                }
                out.extend(row);
            }
        }
        out
    }

    #[test]
    fn attention_matches_its_definition_for_any_head_size_and_text_lengths() {
        // Head sizes below, at and past one block of sixteen, with and without a remainder;
        // texts shorter and longer than a block and than a task's tokens, side by side.
        let lengths = [1, 5, 16, 17, 40, 3];
        let mut spans = Vec::new();
        let mut start = 0;
        for len in lengths {
            spans.push(start..start + len);
            start += len;
        }
        for (dims, heads) in [(12, 2), (32, 2), (60, 3), (64, 1)] {
            let qkv: Vec<f32> =
                crate::matrix::tests::values(start * 3 * dims, dims as u64).iter().map(|v| v * 3.0).collect();
            let want = attention_by_definition(dims, heads, &qkv, &spans);
            for share in [Share::Alone, Share::Threads] {
                let mut out = vec![f32::NAN; start * dims];
                attend(dims, heads, &qkv, &spans, &mut out, share);
                for (i, (got, want)) in out.iter().zip(&want).enumerate() {
                    assert!(
                        (f64::from(*got) - want).abs() < 1e-5,
                        "{dims} dims, {heads} heads, {share:?}: value {i} is {got}, want {want}"
                    );
                }
            }
        }
    }
}

//! The local model's quantized weight matrices and their products with activations.
//!
//! Weights stay in the GGUF file's own block encodings, 32 weights per block along a row:
//! Q4_1 (4-bit codes `q` with a scale `d` and an offset `m`: `w = d·q + m`) and Q8_0 (signed
//! 8-bit codes with a scale: `w = d·q`). Scales are widened to f32 once at load and kept in
//! each block beside its codes, so a row is one contiguous run of memory that the CPU's
//! prefetchers stream well.
//!
//! Activations stay f32: a product multiplies each code, widened to f32, by its activation.
//! Quantizing activations to 8 bits (as integer dot products need) loses the outliers some
//! layers carry, which is enough to change a small model's answers; f32 activations compute
//! exactly what the file's weights say. The offset term of Q4_1 factors out of a block:
//! `Σ (d·q + m)·x = d·Σ q·x + m·Σ x`, and `Σ x` per block is computed once per activation
//! vector, not once per row.
//!
//! The kernels run inside `pulp`'s run-time dispatch: AVX-512 or AVX2/FMA through `pulp`'s
//! safe wrappers of the intrinsics where the CPU has them, plain loops elsewhere, without
//! `unsafe` here. Rows are shared out among rayon's threads. One input vector (a generated
//! token) goes through four rows at a time, sharing each input block's loads; a few go four at
//! a time through a tile of rows, so the tile's codes and the group's inputs stay in the
//! first-level cache while they are reused; there each block is decoded whole once per group
//! (scale and offset applied) and, with AVX-512's registers, four rows share each input
//! block's loads too. From [`DECODE_FROM`] tokens on (a prompt), the inputs are first laid out
//! sixteen tokens together, value by value (one AVX-512 vector holds one input value of
//! sixteen tokens); each task decodes its rows to f32 once, [`DECODE_TILE`] rows at a time,
//! and takes the packed tokens through them as outer products: each weight, broadcast, is
//! multiply-added into a vector of sixteen tokens' sums, so no sum crosses lanes and a row's
//! outputs come out whole. Its outputs go token by token into its own block, copied into place
//! afterwards.

use rayon::prelude::*;

/// Weights per block.
pub(crate) const BLOCK: usize = 32;
/// Tokens multiplied through one row together.
const GROUP: usize = 4;
/// Rows that go through a group of tokens before the next group (their codes stay cached).
const ROW_TILE: usize = 16;
/// Rows per parallel task (at least).
const ROWS_PER_TASK: usize = 32;
/// From this many tokens on, each task decodes its rows to f32 a tile at a time and takes every
/// token through the decoded tile (as outer products over the packed tokens). Decoding then
/// costs once per product instead of once per group of [`GROUP`] tokens, and the
/// multiply-adds no longer share the vector units with it. Each task writes its rows token by
/// token into its own block, copied into place afterwards.
pub(crate) const DECODE_FROM: usize = 16;
/// Rows decoded at a time (for SmolLM2's widest rows, 1,536 columns, 288 KiB of f32 weights),
/// which stay in the second-level cache while the tokens go through them; a multiple of
/// [`OUTER_ROWS`].
const DECODE_TILE: usize = 48;
/// Rows that go through the packs of tokens together (with AVX-512's registers).
const OUTER_ROWS: usize = 8;
/// Tokens whose inputs are laid out together, value by value, for the decoded products: one
/// AVX-512 vector (two of AVX2) holds one input value of each.
const PACK: usize = 16;
/// Packs of tokens that go through a decoded tile before the next ones (for 1,536 columns,
/// 576 KiB of inputs, which stay in the second-level cache beside the tile); a multiple of
/// the three packs the AVX-512 kernel takes at once.
const PACKS_AT_ONCE: usize = 6;

std::thread_local! {
    /// Each thread's decoded rows (reused, so a prompt's products do not allocate).
    static DECODED: std::cell::RefCell<Vec<Wide>> = const { std::cell::RefCell::new(Vec::new()) };
    /// The tasks' outputs of a product with many tokens, before they are put in place.
    static SPREAD: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    /// A product's inputs laid out [`PACK`] tokens together (reused likewise).
    static PACKED: std::cell::RefCell<Vec<[f32; PACK]>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A Q4_1 block: `w_j = scale·q_j + offset`; the low nibble of byte `j` is `q_j`, the high
/// nibble `q_{j+16}`.
#[derive(Debug, Clone, Copy)]
struct Q4 {
    scale: f32,
    offset: f32,
    nibbles: [u8; 16],
}

/// A Q8_0 block: `w_j = scale·q_j`.
#[derive(Debug, Clone, Copy)]
struct Q8 {
    scale: f32,
    codes: [i8; BLOCK],
}

/// A block decoded to its 32 weights (scale and offset applied).
#[derive(Debug, Clone, Copy)]
struct Wide([f32; BLOCK]);

/// A `rows × cols` matrix (`cols` a multiple of [`BLOCK`]), row-major in blocks.
#[derive(Debug, Clone)]
pub(crate) struct Matrix {
    rows: usize,
    cols: usize,
    blocks: Blocks,
}

#[derive(Debug, Clone)]
enum Blocks {
    Q4_1(Vec<Q4>),
    Q8_0(Vec<Q8>),
}

/// Why a matrix could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum MatrixError {
    #[error("{cols} columns are not a multiple of {BLOCK}")]
    Columns { cols: usize },
    #[error("{got} bytes of block data, expected {expected} for {rows} × {cols}")]
    Length { got: usize, expected: usize, rows: usize, cols: usize },
}

/// Which kernels a product may use: the widest the CPU has, at most AVX2, or plain loops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kernels {
    Widest,
    #[cfg_attr(not(test), allow(dead_code))]
    Avx2,
    #[cfg_attr(not(test), allow(dead_code))]
    Portable,
}

impl Matrix {
    /// From GGUF Q4_1 blocks (20 bytes each: `d` and `m` as f16, then 16 bytes of nibbles).
    pub(crate) fn from_q4_1(rows: usize, cols: usize, data: &[u8]) -> Result<Self, MatrixError> {
        Self::check(rows, cols, data.len(), 20)?;
        let blocks = data
            .as_chunks::<20>()
            .0
            .iter()
            .map(|b| Q4 { scale: f16_at(b, 0), offset: f16_at(b, 2), nibbles: std::array::from_fn(|j| b[4 + j]) })
            .collect();
        Ok(Self { rows, cols, blocks: Blocks::Q4_1(blocks) })
    }

    /// From GGUF Q8_0 blocks (34 bytes each: `d` as f16, then 32 signed codes).
    pub(crate) fn from_q8_0(rows: usize, cols: usize, data: &[u8]) -> Result<Self, MatrixError> {
        Self::check(rows, cols, data.len(), 34)?;
        let blocks = data
            .as_chunks::<34>()
            .0
            .iter()
            .map(|b| Q8 { scale: f16_at(b, 0), codes: std::array::from_fn(|j| i8::from_le_bytes([b[2 + j]])) })
            .collect();
        Ok(Self { rows, cols, blocks: Blocks::Q8_0(blocks) })
    }

    /// From f32 weights, row-major, encoded as Q8_0 (for tensors in any other encoding).
    pub(crate) fn quantize_q8_0(rows: usize, cols: usize, weights: &[f32]) -> Result<Self, MatrixError> {
        Self::check(rows, cols, weights.len() * 4, BLOCK * 4)?;
        let blocks = weights
            .as_chunks::<BLOCK>()
            .0
            .iter()
            .map(|block| {
                let max = block.iter().fold(0f32, |m, w| m.max(w.abs()));
                let scale = max / 127.0;
                let inverse = if scale > 0.0 { 1.0 / scale } else { 0.0 };
                // In range by construction: |w / scale| ≤ 127.
                Q8 { scale, codes: std::array::from_fn(|j| (block[j] * inverse).round().clamp(-127.0, 127.0) as i8) }
            })
            .collect();
        Ok(Self { rows, cols, blocks: Blocks::Q8_0(blocks) })
    }

    fn check(rows: usize, cols: usize, bytes: usize, block_bytes: usize) -> Result<(), MatrixError> {
        if !cols.is_multiple_of(BLOCK) {
            return Err(MatrixError::Columns { cols });
        }
        let expected = rows * cols / BLOCK * block_bytes;
        if bytes != expected {
            return Err(MatrixError::Length { got: bytes, expected, rows, cols });
        }
        Ok(())
    }

    /// Stacks matrices with the same columns into one (their rows one after another), so
    /// products that share an input run as one.
    pub(crate) fn stack(parts: Vec<Matrix>) -> Option<Matrix> {
        let mut parts = parts.into_iter();
        let mut out = parts.next()?;
        for part in parts {
            if part.cols != out.cols {
                return None;
            }
            match (&mut out.blocks, part.blocks) {
                (Blocks::Q4_1(blocks), Blocks::Q4_1(more)) => blocks.extend(more),
                (Blocks::Q8_0(blocks), Blocks::Q8_0(more)) => blocks.extend(more),
                _ => return None,
            }
            out.rows += part.rows;
        }
        Some(out)
    }

    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// Bytes the matrix holds.
    pub(crate) fn size_in_bytes(&self) -> usize {
        match &self.blocks {
            Blocks::Q4_1(blocks) => std::mem::size_of_val(blocks.as_slice()),
            Blocks::Q8_0(blocks) => std::mem::size_of_val(blocks.as_slice()),
        }
    }

    /// Row `row` as f32 weights (an embedding lookup). `out` holds `cols` values.
    pub(crate) fn row_into(&self, row: usize, out: &mut [f32]) {
        let per_row = self.cols / BLOCK;
        let range = row * per_row..(row + 1) * per_row;
        let out = out.as_chunks_mut::<BLOCK>().0;
        match &self.blocks {
            Blocks::Q4_1(blocks) => {
                for (out, block) in out.iter_mut().zip(&blocks[range]) {
                    for (o, q) in out.iter_mut().zip(block.codes()) {
                        *o = block.scale * q + block.offset;
                    }
                }
            }
            Blocks::Q8_0(blocks) => {
                for (out, block) in out.iter_mut().zip(&blocks[range]) {
                    for (o, q) in out.iter_mut().zip(block.codes()) {
                        *o = block.scale * q;
                    }
                }
            }
        }
    }

    /// `out[t] = self · inputs[t]` for each of the `tokens` input vectors (`inputs` holds
    /// `tokens × cols` values, `out` `tokens × rows`).
    pub(crate) fn product(&self, inputs: &[f32], tokens: usize, out: &mut [f32]) {
        self.product_with(inputs, tokens, out, Kernels::Widest);
    }

    /// [`Matrix::product`] with the chosen kernels (where the CPU has them).
    fn product_with(&self, inputs: &[f32], tokens: usize, out: &mut [f32], kernels: Kernels) {
        debug_assert_eq!(inputs.len(), tokens * self.cols);
        debug_assert_eq!(out.len(), tokens * self.rows);
        match &self.blocks {
            Blocks::Q4_1(blocks) => self.product_of(blocks, inputs, tokens, out, kernels),
            Blocks::Q8_0(blocks) => self.product_of(blocks, inputs, tokens, out, kernels),
        }
    }

    /// `out[t][r] = Σ_b d_rb·(q_rb · x_tb) + m_rb·sums_tb`, where `sums_tb` is `Σ x` over input
    /// block `b` (for blocks with offsets), or through decoded rows from [`DECODE_FROM`] tokens
    /// on.
    fn product_of<Q: Block>(&self, blocks: &[Q], inputs: &[f32], tokens: usize, out: &mut [f32], kernels: Kernels) {
        let inputs = inputs.as_chunks::<BLOCK>().0;
        if tokens >= DECODE_FROM {
            return self.product_decoded(blocks, inputs, tokens, out, kernels);
        }
        let sums: Vec<f32> =
            if Q::OFFSET { inputs.iter().map(|block| block.iter().sum()).collect() } else { Vec::new() };
        let sums = sums.as_slice();
        let per_row = self.cols / BLOCK;
        let rows_per_task = ROWS_PER_TASK.max(self.rows.div_ceil(rayon::current_num_threads() * 8));
        let task = |(index, out): (usize, &mut [f32])| {
            let first = index * rows_per_task;
            let blocks = &blocks[first * per_row..];
            let rows = out.len() / tokens;
            with_kernel(kernels, Rows { blocks, per_row, inputs, sums, tokens, rows, out });
        };
        if tokens == 1 {
            out.par_chunks_mut(rows_per_task).enumerate().for_each(task);
        } else {
            // Computed row-major by weight row (each task owns whole rows), then transposed
            // (a few tokens: the transposition costs little).
            let mut by_row = vec![0f32; out.len()];
            by_row.par_chunks_mut(rows_per_task * tokens).enumerate().for_each(task);
            for (row, values) in by_row.chunks_exact(tokens).enumerate() {
                for (token, value) in values.iter().enumerate() {
                    out[token * self.rows + row] = *value;
                }
            }
        }
    }

    /// [`Matrix::product_of`] from [`DECODE_FROM`] tokens on: the inputs are laid out
    /// [`PACK`] tokens together, value by value; each task decodes its rows a tile at a time
    /// and takes every pack of tokens through the decoded tile (see [`Outer`]).
    fn product_decoded<Q: Block>(
        &self,
        blocks: &[Q],
        inputs: &[[f32; BLOCK]],
        tokens: usize,
        out: &mut [f32],
        kernels: Kernels,
    ) {
        let per_row = self.cols / BLOCK;
        // Each task writes its rows token by token (`[token][its rows]`) into its own block
        // of `spread`; the blocks are copied into place afterwards, a run of rows at a time.
        // Whole groups of OUTER_ROWS where the matrix has them.
        let rows_per_task =
            ROWS_PER_TASK.max(self.rows.div_ceil(rayon::current_num_threads() * 4)).next_multiple_of(OUTER_ROWS);
        // Taken out of the thread's slot while in use: a thread waiting in the rayon calls
        // below may run another product (another model's forward pass), which then finds
        // the slot empty and allocates its own.
        let mut kept = SPREAD.with_borrow_mut(std::mem::take);
        if kept.len() < out.len() {
            kept.resize(out.len(), 0.0);
        }
        let mut kept_packed = PACKED.with_borrow_mut(std::mem::take);
        pack(inputs.as_flattened(), self.cols, &mut kept_packed);
        let packed = kept_packed.as_slice();
        let spread = &mut kept[..out.len()];
        spread.par_chunks_mut(rows_per_task * tokens).enumerate().for_each(|(index, task_out)| {
            let (first, width) = (index * rows_per_task, task_out.len() / tokens);
            DECODED.with_borrow_mut(|decoded| {
                for start in (0..width).step_by(DECODE_TILE) {
                    let rows = DECODE_TILE.min(width - start);
                    let from = &blocks[(first + start) * per_row..(first + start + rows) * per_row];
                    if decoded.len() < from.len() {
                        decoded.resize(from.len(), Wide([0.0; BLOCK]));
                    }
                    let decoded = &mut decoded[..from.len()];
                    with_kernel(kernels, Decode { from, into: &mut *decoded });
                    let out = &mut task_out[start..];
                    with_kernel(kernels, Outer { rows: &*decoded, per_row, packed, tokens, out, stride: width });
                }
            });
        });
        let spread = &*spread;
        out.par_chunks_exact_mut(self.rows).enumerate().with_min_len(8).for_each(|(token, row)| {
            for (index, task_out) in spread.chunks(rows_per_task * tokens).enumerate() {
                let (first, width) = (index * rows_per_task, task_out.len() / tokens);
                row[first..first + width].copy_from_slice(&task_out[token * width..(token + 1) * width]);
            }
        });
        SPREAD.with_borrow_mut(|slot| *slot = kept);
        PACKED.with_borrow_mut(|slot| *slot = kept_packed);
    }
}

/// `inputs` (tokens of `cols` values each) laid out [`PACK`] tokens together: value `k` of
/// token `t` goes to `packed[(t / PACK) * cols + k][t % PACK]`. A last pack's missing tokens
/// are zeros.
fn pack(inputs: &[f32], cols: usize, packed: &mut Vec<[f32; PACK]>) {
    let tokens = inputs.len() / cols;
    packed.resize(tokens.div_ceil(PACK) * cols, [0.0; PACK]);
    let packed = &mut packed[..tokens.div_ceil(PACK) * cols];
    let zeros = vec![0f32; cols];
    packed.par_chunks_mut(cols).zip(inputs.par_chunks(cols * PACK)).for_each(|(pack, inputs)| {
        // Value by value, each slot written whole (one cache line) from the pack's tokens.
        let tokens: [&[f32]; PACK] =
            std::array::from_fn(|i| inputs.get(i * cols..(i + 1) * cols).unwrap_or(zeros.as_slice()));
        for (k, slot) in pack.iter_mut().enumerate() {
            *slot = std::array::from_fn(|i| tokens[i][k]);
        }
    });
}

/// Work done with one [`Kernel`].
trait Job {
    fn run<K: Kernel>(self, kernel: K);
}

/// Runs `job` on the widest kernel the CPU has among those `kernels` allows, inside `pulp`'s
/// dispatch (so its loops are compiled for that kernel's instructions).
fn with_kernel<J: Job>(kernels: Kernels, job: J) {
    #[cfg(target_arch = "x86_64")]
    {
        if let Some(simd) = pulp::x86::V4::try_new().filter(|_| kernels == Kernels::Widest) {
            return pulp::Simd::vectorize(simd, InSimd(simd::Vectors(simd), job));
        }
        if let Some(simd) = pulp::x86::V3::try_new().filter(|_| kernels != Kernels::Portable) {
            return pulp::Simd::vectorize(simd, InSimd(simd::Vectors(simd), job));
        }
    }
    pulp::Arch::new().dispatch(InSimd(Portable, job));
}

struct InSimd<K, J>(K, J);

impl<K: Kernel, J: Job> pulp::WithSimd for InSimd<K, J> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        self.1.run(self.0);
    }
}

/// Blocks decoded to their weights.
struct Decode<'a, Q> {
    from: &'a [Q],
    into: &'a mut [Wide],
}

impl<Q: Block> Job for Decode<'_, Q> {
    #[inline(always)]
    fn run<K: Kernel>(self, kernel: K) {
        for (block, wide) in self.from.iter().zip(self.into.iter_mut()) {
            wide.0 = kernel.decode(block);
        }
    }
}

/// One block's scale and codes: Q4_1's nibbles (their unsigned values), Q8_0's bytes, or a
/// decoded block's weights themselves.
trait Block: Copy + Send + Sync {
    /// Whether blocks carry an offset (`w = d·q + m`).
    const OFFSET: bool;
    fn scale(&self) -> f32;
    fn offset(&self) -> f32;
    /// The 32 codes as f32, in order.
    fn codes(&self) -> [f32; BLOCK];
    /// The 32 weights the block encodes.
    #[inline(always)]
    fn decode(&self) -> [f32; BLOCK] {
        let (d, m) = (self.scale(), self.offset());
        let mut weights = self.codes();
        for w in &mut weights {
            *w = d * *w + m;
        }
        weights
    }
    /// The 32 codes as four vectors of eight f32.
    #[cfg(target_arch = "x86_64")]
    fn widen(&self, simd: pulp::x86::V3) -> [core::arch::x86_64::__m256; 4];
    /// The 32 codes as two vectors of sixteen f32.
    #[cfg(target_arch = "x86_64")]
    fn widen16(&self, simd: pulp::x86::V4) -> [core::arch::x86_64::__m512; 2];
}

impl Block for Q4 {
    const OFFSET: bool = true;

    #[inline(always)]
    fn scale(&self) -> f32 {
        self.scale
    }

    #[inline(always)]
    fn offset(&self) -> f32 {
        self.offset
    }

    #[inline(always)]
    fn codes(&self) -> [f32; BLOCK] {
        let mut codes = [0f32; BLOCK];
        for (j, q) in self.nibbles.iter().enumerate() {
            codes[j] = f32::from(q & 0x0F);
            codes[j + 16] = f32::from(q >> 4);
        }
        codes
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn widen(&self, s: pulp::x86::V3) -> [core::arch::x86_64::__m256; 4] {
        let v: core::arch::x86_64::__m128i = pulp::cast(self.nibbles);
        let mask = s.sse2._mm_set1_epi8(0x0F);
        let low = s.sse2._mm_and_si128(v, mask);
        let high = s.sse2._mm_and_si128(s.sse2._mm_srli_epi16::<4>(v), mask);
        let widen8 = |v| s.avx._mm256_cvtepi32_ps(s.avx2._mm256_cvtepu8_epi32(v));
        [widen8(low), widen8(s.sse2._mm_srli_si128::<8>(low)), widen8(high), widen8(s.sse2._mm_srli_si128::<8>(high))]
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn widen16(&self, s: pulp::x86::V4) -> [core::arch::x86_64::__m512; 2] {
        let v: core::arch::x86_64::__m128i = pulp::cast(self.nibbles);
        let mask = s.sse2._mm_set1_epi8(0x0F);
        let low = s.sse2._mm_and_si128(v, mask);
        let high = s.sse2._mm_and_si128(s.sse2._mm_srli_epi16::<4>(v), mask);
        let widen16 = |v| s.avx512f._mm512_cvtepi32_ps(s.avx512f._mm512_cvtepu8_epi32(v));
        [widen16(low), widen16(high)]
    }
}

impl Block for Q8 {
    const OFFSET: bool = false;

    #[inline(always)]
    fn scale(&self) -> f32 {
        self.scale
    }

    #[inline(always)]
    fn offset(&self) -> f32 {
        0.0
    }

    #[inline(always)]
    fn codes(&self) -> [f32; BLOCK] {
        let mut codes = [0f32; BLOCK];
        for (c, q) in codes.iter_mut().zip(self.codes) {
            *c = f32::from(q);
        }
        codes
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn widen(&self, s: pulp::x86::V3) -> [core::arch::x86_64::__m256; 4] {
        let [a, b]: [core::arch::x86_64::__m128i; 2] = pulp::cast(self.codes);
        let widen8 = |v| s.avx._mm256_cvtepi32_ps(s.avx2._mm256_cvtepi8_epi32(v));
        [widen8(a), widen8(s.sse2._mm_srli_si128::<8>(a)), widen8(b), widen8(s.sse2._mm_srli_si128::<8>(b))]
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn widen16(&self, s: pulp::x86::V4) -> [core::arch::x86_64::__m512; 2] {
        let halves: [core::arch::x86_64::__m128i; 2] = pulp::cast(self.codes);
        halves.map(|v| s.avx512f._mm512_cvtepi32_ps(s.avx512f._mm512_cvtepi8_epi32(v)))
    }
}

/// `out[r][t] = Σ_b d_rb · (codes of rows[r][b]) · inputs[t][b] + m_rb · sums[t][b]`: `R`
/// rows against `T` input vectors at once (rows share each input block's loads, inputs share
/// each block's widened codes). `sums[t][b]` is `Σ_j inputs[t][b][j]`, read only for blocks
/// with offsets.
trait Kernel: Copy {
    /// Whether the kernel has registers enough to take four rows and four inputs at once.
    const WIDE: bool = false;

    fn dots<Q: Block, const R: usize, const T: usize>(
        self,
        rows: [&[Q]; R],
        inputs: [&[[f32; BLOCK]]; T],
        sums: [&[f32]; T],
    ) -> [[f32; T]; R];

    /// The 32 weights `block` encodes.
    #[inline(always)]
    fn decode<Q: Block>(self, block: &Q) -> [f32; BLOCK] {
        block.decode()
    }

    /// `out[r][g][i] = Σ_k rows[r][k] · packs[g][k][i]`: `R` decoded rows against `G` packs of
    /// [`PACK`] tokens, as outer products (each weight, broadcast, multiply-added into every
    /// token of the packs at once), so nothing is summed across lanes. The weights are read
    /// one at a time, the packs a vector at a time.
    #[inline(always)]
    fn outer<const R: usize, const G: usize>(
        self,
        rows: [&[Wide]; R],
        packs: [&[[f32; PACK]]; G],
    ) -> [[[f32; PACK]; G]; R] {
        let mut acc = [[[0f32; PACK]; G]; R];
        for r in 0..R {
            for (k, w) in rows[r].iter().flat_map(|block| block.0).enumerate() {
                for g in 0..G {
                    for (a, x) in acc[r][g].iter_mut().zip(packs[g][k]) {
                        *a += w * x;
                    }
                }
            }
        }
        acc
    }
}

/// Plain loops, for CPUs without the instructions of [`simd`]'s kernels.
#[derive(Clone, Copy)]
struct Portable;

impl Kernel for Portable {
    #[inline(always)]
    fn dots<Q: Block, const R: usize, const T: usize>(
        self,
        rows: [&[Q]; R],
        inputs: [&[[f32; BLOCK]]; T],
        sums: [&[f32]; T],
    ) -> [[f32; T]; R] {
        let mut acc = [[0f32; T]; R];
        for r in 0..R {
            for (b, block) in rows[r].iter().enumerate() {
                let w = block.codes();
                for t in 0..T {
                    let dot: f32 = w.iter().zip(&inputs[t][b]).map(|(w, x)| w * x).sum();
                    acc[r][t] += block.scale() * dot;
                    if Q::OFFSET {
                        acc[r][t] += block.offset() * sums[t][b];
                    }
                }
            }
        }
        acc
    }
}

/// AVX-512, or AVX2 and FMA, through `pulp`'s safe wrappers of the intrinsics.
#[cfg(target_arch = "x86_64")]
mod simd {
    use core::arch::x86_64::{__m256, __m512, _MM_HINT_T0};

    use pulp::x86::{V3, V4};

    use super::{BLOCK, Block, Kernel, PACK, Wide};

    /// Bytes ahead of the block being read that are asked for early: a product reads its rows
    /// front to back, and the hardware's own prefetching alone leaves the loop waiting on
    /// memory (generation measured 72 tokens/s without, 98 at 2 KiB ahead, 110-120 at 4-8 KiB).
    const PREFETCH_DISTANCE: usize = 4096;

    /// An address `PREFETCH_DISTANCE` past `block` (a prefetch never faults, even past the end).
    #[inline(always)]
    fn ahead<Q>(block: &Q) -> *const i8 {
        (block as *const Q).cast::<i8>().wrapping_add(PREFETCH_DISTANCE)
    }

    /// The vector operations a kernel needs, at one width: AVX-512 (two vectors of sixteen
    /// per block) or AVX2 (four of eight).
    pub(super) trait Lanes: Copy {
        type V: Copy;
        /// One block's 32 values as vectors.
        type Block: Copy + AsRef<[Self::V]> + AsMut<[Self::V]>;
        /// [`PACK`] values as vectors.
        type Pack: Copy + AsRef<[Self::V]> + AsMut<[Self::V]>;
        /// Whether there are registers enough for four rows by four inputs.
        const WIDE: bool;
        fn zero(self) -> Self::V;
        fn splat(self, x: f32) -> Self::V;
        fn mul(self, a: Self::V, b: Self::V) -> Self::V;
        /// `a·b + c`.
        fn fma(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
        fn sum(self, v: Self::V) -> f32;
        /// Each of sixteen vectors' lanes summed (`sums[i]` is `v[i]`'s), where the width has
        /// a cheaper way than one vector at a time.
        fn sum16(self, v: [Self::V; 16]) -> Option<[f32; 16]> {
            let _ = v;
            None
        }
        fn load(self, x: [f32; BLOCK]) -> Self::Block;
        fn store(self, block: Self::Block) -> [f32; BLOCK];
        fn load_pack(self, x: [f32; PACK]) -> Self::Pack;
        fn store_pack(self, pack: Self::Pack) -> [f32; PACK];
        fn widen<Q: Block>(self, block: &Q) -> Self::Block;
        /// Asks for the memory [`PREFETCH_DISTANCE`] past `block`.
        fn prefetch<Q>(self, block: &Q);
    }

    impl Lanes for V4 {
        type V = __m512;
        type Block = [__m512; 2];
        type Pack = [__m512; 1];
        const WIDE: bool = true;

        #[inline(always)]
        fn zero(self) -> __m512 {
            self.avx512f._mm512_setzero_ps()
        }
        #[inline(always)]
        fn splat(self, x: f32) -> __m512 {
            self.avx512f._mm512_set1_ps(x)
        }
        #[inline(always)]
        fn mul(self, a: __m512, b: __m512) -> __m512 {
            self.avx512f._mm512_mul_ps(a, b)
        }
        #[inline(always)]
        fn fma(self, a: __m512, b: __m512, c: __m512) -> __m512 {
            self.avx512f._mm512_fmadd_ps(a, b, c)
        }
        #[inline(always)]
        fn sum(self, v: __m512) -> f32 {
            self.avx512f._mm512_reduce_add_ps(v)
        }
        /// Halves, then quarters, then pairs and single lanes of two vectors at a time are
        /// added: 30 shuffles and 15 additions instead of sixteen separate reductions. Lane
        /// `4k + e` of the last vector is the sum of `v[4e + k]`.
        #[inline(always)]
        fn sum16(self, v: [__m512; 16]) -> Option<[f32; 16]> {
            let f = self.avx512f;
            let halves: [__m512; 8] = std::array::from_fn(|i| {
                let (a, b) = (v[2 * i], v[2 * i + 1]);
                f._mm512_add_ps(f._mm512_shuffle_f32x4::<0x44>(a, b), f._mm512_shuffle_f32x4::<0xEE>(a, b))
            });
            let quarters: [__m512; 4] = std::array::from_fn(|i| {
                let (a, b) = (halves[2 * i], halves[2 * i + 1]);
                f._mm512_add_ps(f._mm512_shuffle_f32x4::<0x88>(a, b), f._mm512_shuffle_f32x4::<0xDD>(a, b))
            });
            let pairs: [__m512; 2] = std::array::from_fn(|i| {
                let (a, b) = (quarters[2 * i], quarters[2 * i + 1]);
                f._mm512_add_ps(f._mm512_shuffle_ps::<0x44>(a, b), f._mm512_shuffle_ps::<0xEE>(a, b))
            });
            let (a, b) = (pairs[0], pairs[1]);
            let lanes: [f32; 16] =
                pulp::cast(f._mm512_add_ps(f._mm512_shuffle_ps::<0x88>(a, b), f._mm512_shuffle_ps::<0xDD>(a, b)));
            Some(std::array::from_fn(|i| lanes[4 * (i % 4) + i / 4]))
        }
        #[inline(always)]
        fn load(self, x: [f32; BLOCK]) -> [__m512; 2] {
            pulp::cast(x)
        }
        #[inline(always)]
        fn store(self, block: [__m512; 2]) -> [f32; BLOCK] {
            pulp::cast(block)
        }
        #[inline(always)]
        fn load_pack(self, x: [f32; PACK]) -> [__m512; 1] {
            pulp::cast(x)
        }
        #[inline(always)]
        fn store_pack(self, pack: [__m512; 1]) -> [f32; PACK] {
            pulp::cast(pack)
        }
        #[inline(always)]
        fn widen<Q: Block>(self, block: &Q) -> [__m512; 2] {
            block.widen16(self)
        }
        #[inline(always)]
        fn prefetch<Q>(self, block: &Q) {
            self.sse._mm_prefetch::<_MM_HINT_T0>(ahead(block));
        }
    }

    impl Lanes for V3 {
        type V = __m256;
        type Block = [__m256; 4];
        type Pack = [__m256; 2];
        const WIDE: bool = false;

        #[inline(always)]
        fn zero(self) -> __m256 {
            self.avx._mm256_setzero_ps()
        }
        #[inline(always)]
        fn splat(self, x: f32) -> __m256 {
            self.avx._mm256_set1_ps(x)
        }
        #[inline(always)]
        fn mul(self, a: __m256, b: __m256) -> __m256 {
            self.avx._mm256_mul_ps(a, b)
        }
        #[inline(always)]
        fn fma(self, a: __m256, b: __m256, c: __m256) -> __m256 {
            self.fma._mm256_fmadd_ps(a, b, c)
        }
        #[inline(always)]
        fn sum(self, v: __m256) -> f32 {
            pulp::cast::<__m256, [f32; 8]>(v).iter().sum()
        }
        #[inline(always)]
        fn load(self, x: [f32; BLOCK]) -> [__m256; 4] {
            pulp::cast(x)
        }
        #[inline(always)]
        fn store(self, block: [__m256; 4]) -> [f32; BLOCK] {
            pulp::cast(block)
        }
        #[inline(always)]
        fn load_pack(self, x: [f32; PACK]) -> [__m256; 2] {
            pulp::cast(x)
        }
        #[inline(always)]
        fn store_pack(self, pack: [__m256; 2]) -> [f32; PACK] {
            pulp::cast(pack)
        }
        #[inline(always)]
        fn widen<Q: Block>(self, block: &Q) -> [__m256; 4] {
            block.widen(self)
        }
        #[inline(always)]
        fn prefetch<Q>(self, block: &Q) {
            self.sse._mm_prefetch::<_MM_HINT_T0>(ahead(block));
        }
    }

    /// The kernel at the width of `L`.
    #[derive(Clone, Copy)]
    pub(super) struct Vectors<L>(pub(super) L);

    impl<L: Lanes> Kernel for Vectors<L> {
        const WIDE: bool = L::WIDE;

        #[inline(always)]
        fn decode<Q: Block>(self, block: &Q) -> [f32; BLOCK] {
            let l = self.0;
            let (d, m) = (l.splat(block.scale()), l.splat(block.offset()));
            let mut w = l.widen(block);
            for w in w.as_mut() {
                *w = l.fma(*w, d, m);
            }
            l.store(w)
        }

        #[inline(always)]
        fn dots<Q: Block, const R: usize, const T: usize>(
            self,
            rows: [&[Q]; R],
            inputs: [&[[f32; BLOCK]]; T],
            sums: [&[f32]; T],
        ) -> [[f32; T]; R] {
            let l = self.0;
            let n = rows.iter().map(|row| row.len()).min().unwrap_or(0);
            let mut acc = [[l.zero(); T]; R];
            if T > 1 {
                // Several inputs: each block's weights are decoded whole (scale and offset
                // applied) once, then multiply-added into every input; each input block is
                // loaded once for all `R` rows.
                for b in 0..n {
                    let x: [L::Block; T] = std::array::from_fn(|t| l.load(inputs[t][b]));
                    for r in 0..R {
                        let block = &rows[r][b];
                        let mut w = l.widen(block);
                        l.prefetch(block);
                        let (d, m) = (l.splat(block.scale()), l.splat(block.offset()));
                        for w in w.as_mut() {
                            *w = l.fma(*w, d, m);
                        }
                        for t in 0..T {
                            for (w, x) in w.as_ref().iter().zip(x[t].as_ref()) {
                                acc[r][t] = l.fma(*w, *x, acc[r][t]);
                            }
                        }
                    }
                }
                if R * T == 16
                    && let Some(sums) = l.sum16(std::array::from_fn(|i| acc[i / T][i % T]))
                {
                    return std::array::from_fn(|r| std::array::from_fn(|t| sums[r * T + t]));
                }
                return std::array::from_fn(|r| std::array::from_fn(|t| l.sum(acc[r][t])));
            }
            // One input: the codes' products are summed, then scaled once per block.
            let mut offsets = [[0f32; T]; R];
            for b in 0..n {
                for r in 0..R {
                    let block = &rows[r][b];
                    l.prefetch(block);
                    let w = l.widen(block);
                    let d = l.splat(block.scale());
                    for t in 0..T {
                        let x = l.load(inputs[t][b]);
                        let (w, x) = (w.as_ref(), x.as_ref());
                        let mut p = l.mul(w[0], x[0]);
                        for i in 1..w.len().min(x.len()) {
                            p = l.fma(w[i], x[i], p);
                        }
                        acc[r][t] = l.fma(d, p, acc[r][t]);
                        if Q::OFFSET {
                            offsets[r][t] += block.offset() * sums[t][b];
                        }
                    }
                }
            }
            std::array::from_fn(|r| std::array::from_fn(|t| l.sum(acc[r][t]) + offsets[r][t]))
        }

        #[inline(always)]
        fn outer<const R: usize, const G: usize>(
            self,
            rows: [&[Wide]; R],
            packs: [&[[f32; PACK]]; G],
        ) -> [[[f32; PACK]; G]; R] {
            let l = self.0;
            let n = rows.iter().map(|row| row.len()).min().unwrap_or(0);
            let packs: [&[[[f32; PACK]; BLOCK]]; G] = std::array::from_fn(|g| packs[g].as_chunks::<BLOCK>().0);
            let mut acc = [[l.load_pack([0.0; PACK]); G]; R];
            for b in 0..n {
                let weights: [&[f32; BLOCK]; R] = std::array::from_fn(|r| &rows[r][b].0);
                let x: [&[[f32; PACK]; BLOCK]; G] = std::array::from_fn(|g| &packs[g][b]);
                for j in 0..BLOCK {
                    let x: [L::Pack; G] = std::array::from_fn(|g| l.load_pack(x[g][j]));
                    for r in 0..R {
                        let w = l.splat(weights[r][j]);
                        for g in 0..G {
                            for (a, x) in acc[r][g].as_mut().iter_mut().zip(x[g].as_ref()) {
                                *a = l.fma(w, *x, *a);
                            }
                        }
                    }
                }
            }
            std::array::from_fn(|r| std::array::from_fn(|g| l.store_pack(acc[r][g])))
        }
    }
}

/// A decoded tile of rows against every pack of tokens, [`PACKS_AT_ONCE`] packs at a time:
/// row `local`'s output for token `t` goes to `out[t * stride + local]`. With AVX-512's
/// registers, [`OUTER_ROWS`] rows go through three packs (48 tokens) at once: 24 sums in
/// registers, each input vector loaded once for the rows and each weight broadcast once for
/// the 48 tokens (eleven loads for 24 multiply-adds). Elsewhere four rows through one pack.
struct Outer<'a> {
    rows: &'a [Wide],
    per_row: usize,
    packed: &'a [[f32; PACK]],
    tokens: usize,
    out: &'a mut [f32],
    stride: usize,
}

impl Job for Outer<'_> {
    #[inline(always)]
    fn run<K: Kernel>(mut self, kernel: K) {
        let packs = self.tokens.div_ceil(PACK);
        for first in (0..packs).step_by(PACKS_AT_ONCE) {
            let packs = first..(first + PACKS_AT_ONCE).min(packs);
            if K::WIDE {
                self.rows_through::<K, OUTER_ROWS, 3>(kernel, packs);
            } else {
                self.rows_through::<K, 4, 1>(kernel, packs);
            }
        }
    }
}

impl Outer<'_> {
    /// Every row, `R` at a time, through `packs`, `G` at a time.
    #[inline(always)]
    fn rows_through<K: Kernel, const R: usize, const G: usize>(&mut self, kernel: K, packs: std::ops::Range<usize>) {
        let count = self.rows.len() / self.per_row;
        let mut local = 0;
        while local + R <= count {
            self.packs_through::<K, R, G>(kernel, local, packs.clone());
            local += R;
        }
        while local + 4 <= count {
            self.packs_through::<K, 4, G>(kernel, local, packs.clone());
            local += 4;
        }
        for local in local..count {
            self.packs_through::<K, 1, G>(kernel, local, packs.clone());
        }
    }

    /// Rows `local..local + R` through `packs`, `G` at a time (one at a time at the end).
    #[inline(always)]
    fn packs_through<K: Kernel, const R: usize, const G: usize>(
        &mut self,
        kernel: K,
        local: usize,
        packs: std::ops::Range<usize>,
    ) {
        let mut first = packs.start;
        while first + G <= packs.end {
            let sums = kernel.outer::<R, G>(self.rows_from(local), std::array::from_fn(|g| self.pack(first + g)));
            self.write(local, first, &sums);
            first += G;
        }
        for pack in first..packs.end {
            let sums = kernel.outer::<R, 1>(self.rows_from(local), [self.pack(pack)]);
            self.write(local, pack, &sums);
        }
    }

    /// Rows `local..local + R`.
    #[inline(always)]
    fn rows_from<const R: usize>(&self, local: usize) -> [&[Wide]; R] {
        std::array::from_fn(|r| &self.rows[(local + r) * self.per_row..(local + r + 1) * self.per_row])
    }

    /// The inputs of pack `pack`.
    #[inline(always)]
    fn pack(&self, pack: usize) -> &[[f32; PACK]] {
        let cols = self.per_row * BLOCK;
        &self.packed[pack * cols..(pack + 1) * cols]
    }

    /// The outputs of rows `local..` for packs `first..`, each token's where it goes (the
    /// last pack's missing tokens are dropped).
    #[inline(always)]
    fn write<const R: usize, const G: usize>(&mut self, local: usize, first: usize, sums: &[[[f32; PACK]; G]; R]) {
        for g in 0..G {
            let start = (first + g) * PACK;
            let present = PACK.min(self.tokens - start);
            for (r, sums) in sums.iter().enumerate() {
                let column = self.out[start * self.stride + local + r..].iter_mut().step_by(self.stride);
                for (out, sum) in column.zip(&sums[g][..present]) {
                    *out = *sum;
                }
            }
        }
    }
}

/// One task's `rows` rows of a product: `blocks` starts at its first row; row `local`'s output
/// for token `t` goes to `out[local * tokens + t]`.
struct Rows<'a, Q> {
    blocks: &'a [Q],
    per_row: usize,
    inputs: &'a [[f32; BLOCK]],
    /// Σ x per input block (empty for blocks without offsets).
    sums: &'a [f32],
    tokens: usize,
    rows: usize,
    out: &'a mut [f32],
}

impl<Q: Block> Job for Rows<'_, Q> {
    #[inline(always)]
    fn run<K: Kernel>(self, kernel: K) {
        let Rows { blocks, per_row, inputs, sums, tokens, rows, out } = self;
        let q = |local: usize| &blocks[local * per_row..(local + 1) * per_row];
        let x = |t: usize| &inputs[t * per_row..(t + 1) * per_row];
        let s = |t: usize| if Q::OFFSET { &sums[t * per_row..(t + 1) * per_row] } else { sums };
        let at = |local: usize, t: usize| local * tokens + t;
        let mut local = 0;
        if tokens == 1 {
            // Four rows at a time share each input block.
            while local + 4 <= rows {
                let dots = kernel.dots::<Q, 4, 1>([q(local), q(local + 1), q(local + 2), q(local + 3)], [x(0)], [s(0)]);
                for (i, dot) in dots.iter().enumerate() {
                    out[at(local + i, 0)] = dot[0];
                }
                local += 4;
            }
        }
        // Several tokens: a tile of rows at a time, so the tile's codes and a group's inputs
        // both stay in the first-level cache while they are reused.
        while local < rows {
            let tile = local..(local + ROW_TILE).min(rows);
            let mut token = 0;
            while token + GROUP <= tokens {
                let group: [_; GROUP] = std::array::from_fn(|t| x(token + t));
                let group_sums: [_; GROUP] = std::array::from_fn(|t| s(token + t));
                let mut row = tile.start;
                // Four rows too where the registers allow: each input block is then loaded
                // once for four rows (the loads, not the arithmetic, bound this loop).
                while K::WIDE && row + 4 <= tile.end {
                    let dots = kernel.dots::<Q, 4, GROUP>(std::array::from_fn(|i| q(row + i)), group, group_sums);
                    for (i, dots) in dots.iter().enumerate() {
                        for (t, dot) in dots.iter().enumerate() {
                            out[at(row + i, token + t)] = *dot;
                        }
                    }
                    row += 4;
                }
                for row in row..tile.end {
                    let [dots] = kernel.dots::<Q, 1, GROUP>([q(row)], group, group_sums);
                    for (t, dot) in dots.iter().enumerate() {
                        out[at(row, token + t)] = *dot;
                    }
                }
                token += GROUP;
            }
            for t in token..tokens {
                for row in tile.clone() {
                    out[at(row, t)] = kernel.dots::<Q, 1, 1>([q(row)], [x(t)], [s(t)])[0][0];
                }
            }
            local = tile.end;
        }
    }
}

/// A dot product in eight lanes (so it vectorizes).
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    for (x, y) in a.as_chunks::<8>().0.iter().zip(b.as_chunks::<8>().0) {
        for lane in 0..8 {
            acc[lane] += x[lane] * y[lane];
        }
    }
    let tail: f32 = a.as_chunks::<8>().1.iter().zip(b.as_chunks::<8>().1).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

/// `into += other`, value by value.
pub(crate) fn add(into: &mut [f32], other: &[f32]) {
    for (a, b) in into.iter_mut().zip(other) {
        *a += b;
    }
}

/// `e^x` to within 3e-7 relative, in operations that vectorize (no library call): `x` split
/// into `n·ln 2 + r` with an integer `n` and `|r| ≤ ln 2 / 2` (`ln 2` in two parts, so `r` is
/// exact), `e^r` by its Taylor series to the seventh power, `2^n` put in the exponent bits.
/// At or below -87 (near where f32 runs out) it is 0.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    // 355/512, exact in f32: `n·LN2_HIGH` is exact for any `n` here.
    const LN2_HIGH: f32 = 355.0 / 512.0;
    const LN2_LOW: f32 = -2.121_944_4e-4;
    // Adding and taking away 1.5·2^23 rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = x - n * LN2_HIGH - n * LN2_LOW;
    let mut p = 1.0 / 5040.0;
    for c in [1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        p = p * r + c;
    }
    // `shifted`'s low bits hold `n` (its exponent is fixed by ROUND), so `2^n` comes from integer
    // operations alone: a float-to-integer conversion would not vectorize as well.
    let n_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    let scale = f32::from_bits(n_bits.wrapping_add(127) << 23);
    if x <= -87.0 { 0.0 } else { p * scale }
}

/// The little-endian f16 at `at`, widened.
fn f16_at(bytes: &[u8], at: usize) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([bytes[at], bytes[at + 1]])).to_f32()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Deterministic values in [-1, 1) (xorshift).
    pub(crate) fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut state = seed | 1;
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0
            })
            .collect()
    }

    fn f16_bytes(value: f32) -> [u8; 2] {
        half::f16::from_f32(value).to_bits().to_le_bytes()
    }

    /// Q4_1 bytes for `rows × cols` with the weights they encode, row-major.
    fn q4_1(rows: usize, cols: usize, seed: u64) -> (Vec<u8>, Vec<f32>) {
        let blocks = rows * cols / BLOCK;
        let noise = values(2 * blocks + rows * cols, seed);
        let mut bytes = Vec::new();
        let mut weights = Vec::new();
        for (b, code_noise) in noise[2 * blocks..].chunks_exact(BLOCK).enumerate() {
            let d = half::f16::from_f32(noise[2 * b].abs() * 0.1).to_f32();
            let m = half::f16::from_f32(noise[2 * b + 1] * 0.5).to_f32();
            bytes.extend(f16_bytes(d));
            bytes.extend(f16_bytes(m));
            let codes: Vec<u8> = code_noise.iter().map(|n| ((n + 1.0) * 7.99) as u8).collect();
            for j in 0..16 {
                bytes.push(codes[j] | (codes[j + 16] << 4));
            }
            weights.extend(codes.iter().map(|&q| d * f32::from(q) + m));
        }
        (bytes, weights)
    }

    fn reference(weights: &[f32], cols: usize, inputs: &[f32]) -> Vec<f32> {
        inputs
            .chunks_exact(cols)
            .flat_map(|x| {
                weights.chunks_exact(cols).map(|w| w.iter().zip(x).map(|(a, b)| a * b).sum::<f32>()).collect::<Vec<_>>()
            })
            .collect()
    }

    fn assert_close(got: &[f32], want: &[f32]) {
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= 1e-3 * (1.0 + w.abs()), "value {i}: {g} against {w}");
        }
    }

    #[test]
    fn q4_1_products_match_the_weights_they_encode_for_any_number_of_tokens() {
        let (rows, cols) = (70, 96);
        let (bytes, weights) = q4_1(rows, cols, 7);
        let matrix = Matrix::from_q4_1(rows, cols, &bytes).expect("matrix");
        // Below and from DECODE_FROM tokens on: one pack of tokens and part of another, three
        // (the AVX-512 kernel's), and more than are taken through a tile at once.
        for tokens in [1, 3, 4, 9, DECODE_FROM, 19, 40, 100] {
            let inputs = values(tokens * cols, 11 + tokens as u64);
            for kernels in [Kernels::Widest, Kernels::Avx2, Kernels::Portable] {
                let mut out = vec![0f32; tokens * rows];
                matrix.product_with(&inputs, tokens, &mut out, kernels);
                assert_close(&out, &reference(&weights, cols, &inputs));
            }
        }
        let mut row = vec![0f32; cols];
        matrix.row_into(5, &mut row);
        assert_close(&row, &weights[5 * cols..6 * cols]);
    }

    #[test]
    fn a_task_of_more_rows_than_a_decoded_tile_decodes_each_tile() {
        // Enough rows that each task holds more than one tile, whatever the number of threads.
        let rows = DECODE_TILE * 4 * rayon::current_num_threads() + 37;
        let cols = 64;
        let (bytes, weights) = q4_1(rows, cols, 17);
        let matrix = Matrix::from_q4_1(rows, cols, &bytes).expect("matrix");
        let tokens = DECODE_FROM + 1;
        let inputs = values(tokens * cols, 23);
        for kernels in [Kernels::Widest, Kernels::Avx2, Kernels::Portable] {
            let mut out = vec![f32::NAN; tokens * rows];
            matrix.product_with(&inputs, tokens, &mut out, kernels);
            assert_close(&out, &reference(&weights, cols, &inputs));
        }
    }

    #[test]
    fn q8_0_products_match_the_weights_they_encode() {
        let (rows, cols) = (33, 64);
        let weights = values(rows * cols, 3);
        let matrix = Matrix::quantize_q8_0(rows, cols, &weights).expect("matrix");
        let mut decoded = vec![0f32; rows * cols];
        for (row, out) in decoded.chunks_exact_mut(cols).enumerate() {
            matrix.row_into(row, out);
        }
        for (d, w) in decoded.iter().zip(&weights) {
            assert!((d - w).abs() <= 1.0 / 127.0, "{d} against {w}");
        }
        for tokens in [1, 5, 21] {
            let inputs = values(tokens * cols, 5);
            for kernels in [Kernels::Widest, Kernels::Avx2, Kernels::Portable] {
                let mut out = vec![0f32; tokens * rows];
                matrix.product_with(&inputs, tokens, &mut out, kernels);
                assert_close(&out, &reference(&decoded, cols, &inputs));
            }
        }
    }

    #[test]
    fn stacked_matrices_answer_as_their_parts_and_mismatches_are_refused() {
        let (bytes_a, weights_a) = q4_1(40, 64, 1);
        let (bytes_b, weights_b) = q4_1(24, 64, 2);
        let a = Matrix::from_q4_1(40, 64, &bytes_a).expect("a");
        let b = Matrix::from_q4_1(24, 64, &bytes_b).expect("b");
        let stacked = Matrix::stack(vec![a.clone(), b]).expect("stacked");
        assert_eq!(stacked.rows(), 64);
        let inputs = values(2 * 64, 9);
        let mut out = vec![0f32; 2 * 64];
        stacked.product(&inputs, 2, &mut out);
        let weights: Vec<f32> = weights_a.into_iter().chain(weights_b).collect();
        assert_close(&out, &reference(&weights, 64, &inputs));

        let q8 = Matrix::quantize_q8_0(4, 64, &values(256, 4)).expect("q8");
        assert!(Matrix::stack(vec![a.clone(), q8]).is_none(), "encodings differ");
        let narrow = Matrix::quantize_q8_0(4, 32, &values(128, 4)).expect("narrow");
        assert!(Matrix::stack(vec![a, narrow]).is_none(), "columns differ");
    }

    #[test]
    fn exp_is_within_its_stated_error() {
        for i in -8699..=8800 {
            let x = i as f32 / 100.0;
            let want = f64::from(x).exp();
            let got = f64::from(exp(x));
            assert!(((got - want) / want).abs() < 3e-7, "exp({x}) = {got}, want {want}");
        }
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn malformed_block_data_is_refused_with_its_sizes() {
        assert_eq!(Matrix::from_q4_1(2, 48, &[0; 60]).unwrap_err(), MatrixError::Columns { cols: 48 });
        assert_eq!(
            Matrix::from_q8_0(2, 64, &[0; 100]).unwrap_err(),
            MatrixError::Length { got: 100, expected: 136, rows: 2, cols: 64 }
        );
    }
}

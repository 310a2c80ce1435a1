//! The local model's weight matrices and their products with activations.
//!
//! Weights stay in the GGUF file's own block encodings, 32 weights per block along a row:
//! Q4_1 (4-bit codes `q` with a scale `d` and an offset `m`: `w = d·q + m`) and Q8_0 (signed
//! 8-bit codes with a scale: `w = d·q`). Scales are widened to f32 once at load.
//!
//! Activations stay f32: a product multiplies each code, widened to f32, by its activation.
//! Quantizing activations to 8 bits (as integer dot products need) loses the outliers some
//! layers carry, which is enough to change a small model's answers; f32 activations compute
//! exactly what the file's weights say. The offset term of Q4_1 factors out of a block:
//! `Σ (d·q + m)·x = d·Σ q·x + m·Σ x`, and `Σ x` per block is computed once per activation
//! vector, not once per row.
//!
//! The inner loops are plain Rust over fixed-size arrays, run inside `pulp`'s dispatch so they
//! are compiled for the widest vector instructions the CPU has (chosen at run time) without
//! `unsafe` here; rows are shared out among rayon's threads. Several activation vectors (the
//! prompt's tokens) go through each row together, so a row's codes are widened once for up
//! to [`GROUP`] tokens.

use rayon::prelude::*;

/// Weights per block.
pub(crate) const BLOCK: usize = 32;
/// Tokens multiplied through one row together.
const GROUP: usize = 4;
/// Rows per parallel task (at least).
const ROWS_PER_TASK: usize = 32;

/// A `rows × cols` matrix (`cols` a multiple of [`BLOCK`]), row-major in blocks.
#[derive(Debug, Clone)]
pub(crate) struct Matrix {
    rows: usize,
    cols: usize,
    codes: Codes,
    /// One scale per block, row after row.
    scales: Vec<f32>,
}

#[derive(Debug, Clone)]
enum Codes {
    /// 16 bytes per block: the low nibble of byte `j` is weight `j`, the high nibble weight
    /// `j + 16`; `offsets` holds each block's `m`.
    Q4_1 { nibbles: Vec<[u8; 16]>, offsets: Vec<f32> },
    /// 32 signed codes per block.
    Q8_0 { codes: Vec<[i8; BLOCK]> },
}

/// Why a matrix could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum MatrixError {
    #[error("{cols} columns are not a multiple of {BLOCK}")]
    Columns { cols: usize },
    #[error("{got} bytes of block data, expected {expected} for {rows} × {cols}")]
    Length { got: usize, expected: usize, rows: usize, cols: usize },
}

impl Matrix {
    /// From GGUF Q4_1 blocks (20 bytes each: `d` and `m` as f16, then 16 bytes of nibbles).
    pub(crate) fn from_q4_1(rows: usize, cols: usize, data: &[u8]) -> Result<Self, MatrixError> {
        let blocks = Self::block_count(rows, cols, data.len(), 20)?;
        let mut scales = Vec::with_capacity(blocks);
        let mut offsets = Vec::with_capacity(blocks);
        let mut nibbles = Vec::with_capacity(blocks);
        for block in data.as_chunks::<20>().0 {
            scales.push(f16_at(block, 0));
            offsets.push(f16_at(block, 2));
            let mut codes = [0u8; 16];
            codes.copy_from_slice(&block[4..]);
            nibbles.push(codes);
        }
        Ok(Self { rows, cols, codes: Codes::Q4_1 { nibbles, offsets }, scales })
    }

    /// From GGUF Q8_0 blocks (34 bytes each: `d` as f16, then 32 signed codes).
    pub(crate) fn from_q8_0(rows: usize, cols: usize, data: &[u8]) -> Result<Self, MatrixError> {
        let blocks = Self::block_count(rows, cols, data.len(), 34)?;
        let mut scales = Vec::with_capacity(blocks);
        let mut codes = Vec::with_capacity(blocks);
        for block in data.as_chunks::<34>().0 {
            scales.push(f16_at(block, 0));
            codes.push(std::array::from_fn(|j| i8::from_le_bytes([block[2 + j]])));
        }
        Ok(Self { rows, cols, codes: Codes::Q8_0 { codes }, scales })
    }

    /// From f32 weights, row-major, encoded as Q8_0 (for tensors in any other encoding).
    pub(crate) fn quantize_q8_0(rows: usize, cols: usize, weights: &[f32]) -> Result<Self, MatrixError> {
        let blocks = Self::block_count(rows, cols, weights.len() * 4, BLOCK * 4)?;
        let mut scales = Vec::with_capacity(blocks);
        let mut codes = Vec::with_capacity(blocks);
        for block in weights.as_chunks::<BLOCK>().0 {
            let max = block.iter().fold(0f32, |m, w| m.max(w.abs()));
            let scale = max / 127.0;
            let inverse = if scale > 0.0 { 1.0 / scale } else { 0.0 };
            scales.push(scale);
            // In range by construction: |w / scale| ≤ 127.
            codes.push(std::array::from_fn(|j| (block[j] * inverse).round().clamp(-127.0, 127.0) as i8));
        }
        Ok(Self { rows, cols, codes: Codes::Q8_0 { codes }, scales })
    }

    fn block_count(rows: usize, cols: usize, bytes: usize, block_bytes: usize) -> Result<usize, MatrixError> {
        if !cols.is_multiple_of(BLOCK) {
            return Err(MatrixError::Columns { cols });
        }
        let blocks = rows * cols / BLOCK;
        if bytes != blocks * block_bytes {
            return Err(MatrixError::Length { got: bytes, expected: blocks * block_bytes, rows, cols });
        }
        Ok(blocks)
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
            match (&mut out.codes, part.codes) {
                (Codes::Q4_1 { nibbles, offsets }, Codes::Q4_1 { nibbles: more, offsets: more_offsets }) => {
                    nibbles.extend(more);
                    offsets.extend(more_offsets);
                }
                (Codes::Q8_0 { codes }, Codes::Q8_0 { codes: more }) => codes.extend(more),
                _ => return None,
            }
            out.scales.extend(part.scales);
            out.rows += part.rows;
        }
        Some(out)
    }

    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    pub(crate) fn cols(&self) -> usize {
        self.cols
    }

    /// Bytes the matrix holds.
    pub(crate) fn size_in_bytes(&self) -> usize {
        let codes = match &self.codes {
            Codes::Q4_1 { nibbles, offsets } => nibbles.len() * 16 + offsets.len() * 4,
            Codes::Q8_0 { codes } => codes.len() * BLOCK,
        };
        codes + self.scales.len() * 4
    }

    /// Row `row` as f32 weights (an embedding lookup). `out` holds `cols` values.
    pub(crate) fn row_into(&self, row: usize, out: &mut [f32]) {
        let per_row = self.cols / BLOCK;
        let range = row * per_row..(row + 1) * per_row;
        let scales = &self.scales[range.clone()];
        let out = out.as_chunks_mut::<BLOCK>().0;
        match &self.codes {
            Codes::Q4_1 { nibbles, offsets } => {
                for (((block, q), &d), &m) in
                    out.iter_mut().zip(&nibbles[range.clone()]).zip(scales).zip(&offsets[range])
                {
                    for j in 0..16 {
                        block[j] = d * f32::from(q[j] & 0x0F) + m;
                        block[j + 16] = d * f32::from(q[j] >> 4) + m;
                    }
                }
            }
            Codes::Q8_0 { codes } => {
                for ((block, q), &d) in out.iter_mut().zip(&codes[range]).zip(scales) {
                    for j in 0..BLOCK {
                        block[j] = d * f32::from(q[j]);
                    }
                }
            }
        }
    }

    /// `out[t] = self · inputs[t]` for each of the `tokens` input vectors (`inputs` holds
    /// `tokens × cols` values, `out` `tokens × rows`).
    pub(crate) fn product(&self, inputs: &[f32], tokens: usize, out: &mut [f32]) {
        self.product_with(inputs, tokens, out, true);
    }

    /// [`Matrix::product`], with the vector kernels or (`vectors` false) the portable loops.
    fn product_with(&self, inputs: &[f32], tokens: usize, out: &mut [f32], vectors: bool) {
        debug_assert_eq!(inputs.len(), tokens * self.cols);
        debug_assert_eq!(out.len(), tokens * self.rows);
        let per_row = self.cols / BLOCK;
        let inputs = inputs.as_chunks::<BLOCK>().0;
        // Σ x per block, for the Q4_1 offsets.
        let sums: Vec<f32> = match self.codes {
            Codes::Q4_1 { .. } => inputs.iter().map(|block| block.iter().sum()).collect(),
            Codes::Q8_0 { .. } => Vec::new(),
        };
        let rows_per_task = ROWS_PER_TASK.max(self.rows.div_ceil(rayon::current_num_threads() * 8));
        let task = |(index, out): (usize, &mut [f32])| {
            let first = index * rows_per_task;
            #[cfg(target_arch = "x86_64")]
            if let Some(simd) = pulp::x86::V3::try_new().filter(|_| vectors) {
                let rows =
                    Rows { kernel: avx2::Avx2(simd), matrix: self, per_row, inputs, sums: &sums, tokens, first, out };
                return pulp::Simd::vectorize(simd, rows);
            }
            pulp::Arch::new().dispatch(Rows {
                kernel: Portable,
                matrix: self,
                per_row,
                inputs,
                sums: &sums,
                tokens,
                first,
                out,
            });
        };
        if tokens == 1 {
            out.par_chunks_mut(rows_per_task).enumerate().for_each(task);
        } else {
            // Computed row-major by weight row (each task owns whole rows), then transposed.
            let mut by_row = vec![0f32; out.len()];
            by_row.par_chunks_mut(rows_per_task * tokens).enumerate().for_each(task);
            for (row, values) in by_row.chunks_exact(tokens).enumerate() {
                for (token, value) in values.iter().enumerate() {
                    out[token * self.rows + row] = *value;
                }
            }
        }
    }
}

/// One block's codes: Q4_1's nibbles (their unsigned values) or Q8_0's signed bytes.
trait Block: Copy {
    /// The 32 codes as f32, in order.
    fn codes(&self) -> [f32; BLOCK];
    /// The 32 codes as four vectors of eight f32.
    #[cfg(target_arch = "x86_64")]
    fn widen(&self, simd: pulp::x86::V3) -> [core::arch::x86_64::__m256; 4];
}

impl Block for [u8; 16] {
    #[inline(always)]
    fn codes(&self) -> [f32; BLOCK] {
        std::array::from_fn(|j| f32::from(if j < 16 { self[j] & 0x0F } else { self[j - 16] >> 4 }))
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn widen(&self, s: pulp::x86::V3) -> [core::arch::x86_64::__m256; 4] {
        let v: core::arch::x86_64::__m128i = pulp::cast(*self);
        let mask = s.sse2._mm_set1_epi8(0x0F);
        let low = s.sse2._mm_and_si128(v, mask);
        let high = s.sse2._mm_and_si128(s.sse2._mm_srli_epi16::<4>(v), mask);
        let widen8 = |v| s.avx._mm256_cvtepi32_ps(s.avx2._mm256_cvtepu8_epi32(v));
        [widen8(low), widen8(s.sse2._mm_srli_si128::<8>(low)), widen8(high), widen8(s.sse2._mm_srli_si128::<8>(high))]
    }
}

impl Block for [i8; BLOCK] {
    #[inline(always)]
    fn codes(&self) -> [f32; BLOCK] {
        std::array::from_fn(|j| f32::from(self[j]))
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn widen(&self, s: pulp::x86::V3) -> [core::arch::x86_64::__m256; 4] {
        let [a, b]: [core::arch::x86_64::__m128i; 2] = pulp::cast(*self);
        let widen8 = |v| s.avx._mm256_cvtepi32_ps(s.avx2._mm256_cvtepi8_epi32(v));
        [widen8(a), widen8(s.sse2._mm_srli_si128::<8>(a)), widen8(b), widen8(s.sse2._mm_srli_si128::<8>(b))]
    }
}

/// `out[r][t] = Σ_b scales[r][b] · (codes of blocks[r][b]) · inputs[t][b]`: `R` rows against
/// `T` input vectors at once (rows share each input block's loads, inputs share each block's
/// widened codes).
trait Kernel: Copy {
    fn dots<Q: Block, const R: usize, const T: usize>(
        self,
        blocks: [&[Q]; R],
        scales: [&[f32]; R],
        inputs: [&[[f32; BLOCK]]; T],
    ) -> [[f32; T]; R];
}

/// Plain loops, for CPUs without the instructions [`avx2::Avx2`] needs.
#[derive(Clone, Copy)]
struct Portable;

impl Kernel for Portable {
    #[inline(always)]
    fn dots<Q: Block, const R: usize, const T: usize>(
        self,
        blocks: [&[Q]; R],
        scales: [&[f32]; R],
        inputs: [&[[f32; BLOCK]]; T],
    ) -> [[f32; T]; R] {
        let mut acc = [[0f32; T]; R];
        for r in 0..R {
            for (b, (q, &d)) in blocks[r].iter().zip(scales[r]).enumerate() {
                let w = q.codes();
                for t in 0..T {
                    let dot: f32 = w.iter().zip(&inputs[t][b]).map(|(w, x)| w * x).sum();
                    acc[r][t] += d * dot;
                }
            }
        }
        acc
    }
}

/// AVX2 and FMA, through `pulp`'s safe wrappers of the intrinsics.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use core::arch::x86_64::__m256;

    use pulp::x86::V3;

    use super::{BLOCK, Block, Kernel};

    #[derive(Clone, Copy)]
    pub(super) struct Avx2(pub(super) V3);

    impl Kernel for Avx2 {
        #[inline(always)]
        fn dots<Q: Block, const R: usize, const T: usize>(
            self,
            blocks: [&[Q]; R],
            scales: [&[f32]; R],
            inputs: [&[[f32; BLOCK]]; T],
        ) -> [[f32; T]; R] {
            let s = self.0;
            let n = blocks.iter().map(|b| b.len()).min().unwrap_or(0);
            let mut acc = [[s.avx._mm256_setzero_ps(); T]; R];
            for b in 0..n {
                for r in 0..R {
                    let w = blocks[r][b].widen(s);
                    let d = s.avx._mm256_set1_ps(scales[r][b]);
                    for t in 0..T {
                        let x: [__m256; 4] = pulp::cast(inputs[t][b]);
                        let mut p = s.avx._mm256_mul_ps(w[0], x[0]);
                        p = s.fma._mm256_fmadd_ps(w[1], x[1], p);
                        p = s.fma._mm256_fmadd_ps(w[2], x[2], p);
                        p = s.fma._mm256_fmadd_ps(w[3], x[3], p);
                        acc[r][t] = s.fma._mm256_fmadd_ps(d, p, acc[r][t]);
                    }
                }
            }
            std::array::from_fn(|r| std::array::from_fn(|t| pulp::cast::<__m256, [f32; 8]>(acc[r][t]).iter().sum()))
        }
    }
}

/// `Σ_b m_b·Σ_j x_bj`: what Q4_1's offsets add to a row's product.
fn offset_terms(offsets: &[f32], sums: &[f32]) -> f32 {
    offsets.iter().zip(sums).map(|(m, s)| m * s).sum()
}

/// One task's rows of a product: `out[(row - first) * tokens + t]`.
struct Rows<'a, K> {
    kernel: K,
    matrix: &'a Matrix,
    per_row: usize,
    inputs: &'a [[f32; BLOCK]],
    sums: &'a [f32],
    tokens: usize,
    first: usize,
    out: &'a mut [f32],
}

impl<K: Kernel> pulp::WithSimd for Rows<'_, K> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        match &self.matrix.codes {
            Codes::Q4_1 { nibbles, offsets } => {
                let (per_row, tokens, first) = (self.per_row, self.tokens, self.first);
                let sums = self.sums;
                let out = self.run(nibbles);
                for (local, out) in out.chunks_exact_mut(tokens).enumerate() {
                    let m = &offsets[(first + local) * per_row..(first + local + 1) * per_row];
                    for (t, value) in out.iter_mut().enumerate() {
                        *value += offset_terms(m, &sums[t * per_row..(t + 1) * per_row]);
                    }
                }
            }
            Codes::Q8_0 { codes } => {
                self.run(codes);
            }
        }
    }
}

impl<'a, K: Kernel> Rows<'a, K> {
    /// The scaled code products of this task's rows (without Q4_1's offsets).
    #[inline(always)]
    fn run<Q: Block>(self, blocks: &[Q]) -> &'a mut [f32] {
        let Rows { kernel, matrix, per_row, inputs, tokens, first, out, .. } = self;
        let row = |local: usize| (first + local) * per_row..(first + local + 1) * per_row;
        let q = |local: usize| &blocks[row(local)];
        let d = |local: usize| &matrix.scales[row(local)];
        let x = |t: usize| &inputs[t * per_row..(t + 1) * per_row];
        let rows = out.len() / tokens;
        let mut local = 0;
        if tokens == 1 {
            // Four rows at a time share each input block.
            while local + 4 <= rows {
                let dots = kernel.dots::<Q, 4, 1>(
                    [q(local), q(local + 1), q(local + 2), q(local + 3)],
                    [d(local), d(local + 1), d(local + 2), d(local + 3)],
                    [x(0)],
                );
                for (i, dot) in dots.iter().enumerate() {
                    out[local + i] = dot[0];
                }
                local += 4;
            }
        }
        while local < rows {
            let out = &mut out[local * tokens..(local + 1) * tokens];
            let mut token = 0;
            while token + GROUP <= tokens {
                let dots = kernel.dots::<Q, 1, GROUP>(
                    [q(local)],
                    [d(local)],
                    [x(token), x(token + 1), x(token + 2), x(token + 3)],
                );
                out[token..token + GROUP].copy_from_slice(&dots[0]);
                token += GROUP;
            }
            for (t, value) in out.iter_mut().enumerate().skip(token) {
                *value = kernel.dots::<Q, 1, 1>([q(local)], [d(local)], [x(t)])[0][0];
            }
            local += 1;
        }
        out
    }
}

/// The little-endian f16 at `at`, widened.
fn f16_at(bytes: &[u8], at: usize) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([bytes[at], bytes[at + 1]])).to_f32()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [-1, 1) (xorshift).
    fn values(n: usize, seed: u64) -> Vec<f32> {
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
        for tokens in [1, 3, 4, 9] {
            let inputs = values(tokens * cols, 11 + tokens as u64);
            for vectors in [true, false] {
                let mut out = vec![0f32; tokens * rows];
                matrix.product_with(&inputs, tokens, &mut out, vectors);
                assert_close(&out, &reference(&weights, cols, &inputs));
            }
        }
        let mut row = vec![0f32; cols];
        matrix.row_into(5, &mut row);
        assert_close(&row, &weights[5 * cols..6 * cols]);
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
        for tokens in [1, 5] {
            let inputs = values(tokens * cols, 5);
            for vectors in [true, false] {
                let mut out = vec![0f32; tokens * rows];
                matrix.product_with(&inputs, tokens, &mut out, vectors);
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
    fn malformed_block_data_is_refused_with_its_sizes() {
        assert_eq!(Matrix::from_q4_1(2, 48, &[0; 60]).unwrap_err(), MatrixError::Columns { cols: 48 });
        assert_eq!(
            Matrix::from_q8_0(2, 64, &[0; 100]).unwrap_err(),
            MatrixError::Length { got: 100, expected: 136, rows: 2, cols: 64 }
        );
    }
}

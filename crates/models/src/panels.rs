//! f32 weight matrices packed for products with many tokens at once (the embedder's layers).
//!
//! The rows are packed in panels of 16: a panel holds, column by column, the 16 weights of its
//! rows in that column, so one vector load gives 16 rows' weights for one column. A product
//! then needs no horizontal sums: each token's 16 outputs of a panel are one accumulator, and
//! each step multiplies a column's weight vector by one input value broadcast to every lane,
//! for eight tokens at once (three panels at once where the registers allow). That is the shape
//! of the fastest matrix libraries' inner loops, without their per-call packing: the weights
//! are packed once, at load.
//!
//! Work is shared among rayon's threads by panels (or done on the calling thread alone, when
//! the caller shares out whole texts instead); each task takes the tokens 64 at a time, so
//! that a task's panels are read from memory once per 64 tokens and those tokens' inputs stay
//! in the second-level cache while its panels pass over them. Alone, the task writes straight
//! into the output; shared, each task writes its own block, copied into place afterwards. A
//! last group of fewer than eight tokens repeats its last token rather than copying the inputs
//! into a padded buffer; those extra outputs are never written. The kernels run inside `pulp`'s
//! run-time dispatch: AVX-512 or AVX2/FMA through `pulp`'s safe intrinsics, plain loops
//! elsewhere, without `unsafe` here.

use rayon::prelude::*;

use crate::matrix::Kernels;

/// Rows per panel (one AVX-512 vector of f32).
pub(crate) const LANES: usize = 16;
/// Tokens multiplied together through a panel.
const GROUP: usize = 8;
/// Panels the widest kernel takes per step (a task's panels are a multiple of it).
const PANELS_PER_STEP: usize = 3;
/// Tokens a task takes through its panels before the next ones.
const TOKEN_BLOCK: usize = 64;

/// A `rows × cols` f32 matrix in panels of [`LANES`] rows (the last one zero-padded).
#[derive(Debug, Clone)]
pub(crate) struct Panels {
    rows: usize,
    cols: usize,
    /// Panel `p`, column `k`: `data[p * cols + k][i]` is row `p * LANES + i`'s weight.
    data: Vec<[f32; LANES]>,
}

/// Why a matrix could not be packed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{got} weights, expected {rows} × {cols}")]
pub(crate) struct PanelsError {
    got: usize,
    rows: usize,
    cols: usize,
}

impl Panels {
    /// From f32 weights, row-major.
    pub(crate) fn from_rows(rows: usize, cols: usize, weights: &[f32]) -> Result<Self, PanelsError> {
        if weights.len() != rows * cols || cols == 0 || rows == 0 {
            return Err(PanelsError { got: weights.len(), rows, cols });
        }
        let panels = rows.div_ceil(LANES);
        let mut data = vec![[0f32; LANES]; panels * cols];
        for (row, values) in weights.chunks_exact(cols).enumerate() {
            let (panel, lane) = (row / LANES, row % LANES);
            for (k, value) in values.iter().enumerate() {
                data[panel * cols + k][lane] = *value;
            }
        }
        Ok(Self { rows, cols, data })
    }

    /// Bytes the matrix holds.
    pub(crate) fn size_in_bytes(&self) -> usize {
        std::mem::size_of_val(self.data.as_slice())
    }

    /// `out[t] = self · inputs[t]` for each of the `tokens` input vectors (`inputs` holds
    /// `tokens × cols` values, `out` `tokens × rows`).
    pub(crate) fn product(&self, inputs: &[f32], tokens: usize, out: &mut [f32], share: Share) {
        self.product_with(inputs, tokens, out, Kernels::Widest, share);
    }

    fn product_with(&self, inputs: &[f32], tokens: usize, out: &mut [f32], kernels: Kernels, share: Share) {
        debug_assert_eq!(inputs.len(), tokens * self.cols);
        debug_assert_eq!(out.len(), tokens * self.rows);
        if tokens == 0 {
            return;
        }
        let cols = self.cols;
        let panels = self.rows.div_ceil(LANES);
        if share == Share::Alone {
            // One task over every panel, writing straight into `out`.
            let task = Task { panels: &self.data, cols, inputs, out, width: self.rows };
            return task.run(kernels);
        }
        // Enough tasks for every thread to get several, each a multiple of the panels a step
        // takes (three with AVX-512).
        let per_task = panels.div_ceil(rayon::current_num_threads() * 4).next_multiple_of(PANELS_PER_STEP).min(panels);
        // Each task's outputs, token-major within the task: `[token][its rows]`, so that tasks
        // write to disjoint memory; copied into `out` afterwards.
        let mut by_task = vec![0f32; panels * LANES * tokens];
        let chunk = per_task * LANES * tokens;
        share.chunks(&mut by_task, chunk, |index, task_out| {
            let first = index * per_task;
            let count = task_out.len() / (LANES * tokens);
            let panels = &self.data[first * cols..(first + count) * cols];
            let task = Task { panels, cols, inputs, out: task_out, width: count * LANES };
            task.run(kernels);
        });
        for (index, task_out) in by_task.chunks(chunk).enumerate() {
            let first_row = index * per_task * LANES;
            let width = task_out.len() / tokens;
            let kept = width.min(self.rows.saturating_sub(first_row));
            for (token, row) in out.chunks_exact_mut(self.rows).enumerate() {
                row[first_row..first_row + kept].copy_from_slice(&task_out[token * width..token * width + kept]);
            }
        }
    }
}

/// Whether work is shared among rayon's threads or done on the calling thread alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Share {
    Threads,
    Alone,
}

impl Share {
    /// `work(index, chunk)` for each `size`-long chunk of `values`, on rayon's threads or here.
    pub(crate) fn chunks<F>(self, values: &mut [f32], size: usize, work: F)
    where
        F: Fn(usize, &mut [f32]) + Send + Sync,
    {
        match self {
            Share::Threads => values.par_chunks_mut(size).enumerate().for_each(|(i, chunk)| work(i, chunk)),
            Share::Alone => values.chunks_mut(size).enumerate().for_each(|(i, chunk)| work(i, chunk)),
        }
    }
}

/// One task's panels against every token: row `r` of the task's panels for token `t` goes to
/// `out[t * width + r]`, for `r < width` (so padding rows of a last panel past `width` are not
/// written).
struct Task<'a> {
    panels: &'a [[f32; LANES]],
    cols: usize,
    inputs: &'a [f32],
    out: &'a mut [f32],
    width: usize,
}

impl Task<'_> {
    fn run(self, kernels: Kernels) {
        #[cfg(target_arch = "x86_64")]
        {
            if let Some(simd) = pulp::x86::V4::try_new().filter(|_| kernels == Kernels::Widest) {
                return pulp::Simd::vectorize(simd, Run::<_, PANELS_PER_STEP, GROUP> { lanes: simd, task: self });
            }
            if let Some(simd) = pulp::x86::V3::try_new().filter(|_| kernels != Kernels::Portable) {
                return pulp::Simd::vectorize(simd, Run::<_, 1, 4> { lanes: simd, task: self });
            }
        }
        pulp::Arch::new().dispatch(Run::<_, 1, GROUP> { lanes: Scalar, task: self });
    }
}

/// A task run with `R` panels by `T` tokens per step.
struct Run<'a, L, const R: usize, const T: usize> {
    lanes: L,
    task: Task<'a>,
}

impl<L: Lanes, const R: usize, const T: usize> pulp::WithSimd for Run<'_, L, R, T> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let Run { lanes, task: Task { panels, cols, inputs, out, width } } = self;
        let tokens = inputs.len() / cols;
        let count = panels.len() / cols;
        let panel = |p: usize| &panels[p * cols..(p + 1) * cols];
        // A group that runs past the last token repeats it; those outputs are not written.
        let input = |t: usize| &inputs[t.min(tokens - 1) * cols..(t.min(tokens - 1) + 1) * cols];
        let mut write = |token: usize, p: usize, sum: &[f32; LANES]| {
            let (row, kept) = (p * LANES, LANES.min(width.saturating_sub(p * LANES)));
            if token < tokens && kept > 0 {
                let at = token * width + row;
                out[at..at + kept].copy_from_slice(&sum[..kept]);
            }
        };
        let mut block = 0;
        while block < tokens {
            let block_end = (block + TOKEN_BLOCK).min(tokens);
            let mut p = 0;
            while p < count {
                let take = if count - p >= R { R } else { 1 };
                let mut token = block;
                while token < block_end {
                    let xs: [&[f32]; T] = std::array::from_fn(|t| input(token + t));
                    if take == R {
                        let sums = steps::<L, R, T>(lanes, std::array::from_fn(|r| panel(p + r)), xs);
                        for (r, sums) in sums.iter().enumerate() {
                            for (t, sum) in sums.iter().enumerate() {
                                write(token + t, p + r, sum);
                            }
                        }
                    } else {
                        let [sums] = steps::<L, 1, T>(lanes, [panel(p)], xs);
                        for (t, sum) in sums.iter().enumerate() {
                            write(token + t, p, sum);
                        }
                    }
                    token += T;
                }
                p += take;
            }
            block = block_end;
        }
    }
}

/// `R` panels against `T` tokens over every column: for each column, each panel's 16
/// weights times the token's value there, added into that token's 16 sums.
#[inline(always)]
fn steps<L: Lanes, const R: usize, const T: usize>(
    l: L,
    panels: [&[[f32; LANES]]; R],
    xs: [&[f32]; T],
) -> [[[f32; LANES]; T]; R] {
    let cols = xs.iter().map(|x| x.len()).chain(panels.iter().map(|p| p.len())).min().unwrap_or(0);
    // Cut to the same length, so the loop below needs no bounds checks.
    let (panels, xs) = (panels.map(|p| &p[..cols]), xs.map(|x| &x[..cols]));
    let mut acc = [[l.zero(); T]; R];
    for k in 0..cols {
        let w: [L::Panel; R] = std::array::from_fn(|r| l.load(&panels[r][k]));
        for t in 0..T {
            let x = l.splat(xs[t][k]);
            for r in 0..R {
                acc[r][t] = l.fma(w[r], x, acc[r][t]);
            }
        }
    }
    acc.map(|panel| panel.map(|sum| l.store(sum)))
}

/// A panel's 16 values in registers, and the three operations the kernel needs.
trait Lanes: Copy {
    type Panel: Copy;
    type Value: Copy;
    fn zero(self) -> Self::Panel;
    fn splat(self, x: f32) -> Self::Value;
    fn load(self, values: &[f32; LANES]) -> Self::Panel;
    fn store(self, panel: Self::Panel) -> [f32; LANES];
    /// `w·x + acc`, lane by lane.
    fn fma(self, w: Self::Panel, x: Self::Value, acc: Self::Panel) -> Self::Panel;
}

/// Plain loops (the compiler vectorizes what the CPU allows).
#[derive(Clone, Copy)]
struct Scalar;

impl Lanes for Scalar {
    type Panel = [f32; LANES];
    type Value = f32;

    #[inline(always)]
    fn zero(self) -> [f32; LANES] {
        [0.0; LANES]
    }
    #[inline(always)]
    fn splat(self, x: f32) -> f32 {
        x
    }
    #[inline(always)]
    fn load(self, values: &[f32; LANES]) -> [f32; LANES] {
        *values
    }
    #[inline(always)]
    fn store(self, panel: [f32; LANES]) -> [f32; LANES] {
        panel
    }
    #[inline(always)]
    fn fma(self, w: [f32; LANES], x: f32, acc: [f32; LANES]) -> [f32; LANES] {
        std::array::from_fn(|i| w[i] * x + acc[i])
    }
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use core::arch::x86_64::{__m256, __m512};

    use pulp::x86::{V3, V4};

    use super::{LANES, Lanes};

    impl Lanes for V4 {
        type Panel = __m512;
        type Value = __m512;

        #[inline(always)]
        fn zero(self) -> __m512 {
            self.avx512f._mm512_setzero_ps()
        }
        #[inline(always)]
        fn splat(self, x: f32) -> __m512 {
            self.avx512f._mm512_set1_ps(x)
        }
        #[inline(always)]
        fn load(self, values: &[f32; LANES]) -> __m512 {
            pulp::cast(*values)
        }
        #[inline(always)]
        fn store(self, panel: __m512) -> [f32; LANES] {
            pulp::cast(panel)
        }
        #[inline(always)]
        fn fma(self, w: __m512, x: __m512, acc: __m512) -> __m512 {
            self.avx512f._mm512_fmadd_ps(w, x, acc)
        }
    }

    impl Lanes for V3 {
        type Panel = [__m256; 2];
        type Value = __m256;

        #[inline(always)]
        fn zero(self) -> [__m256; 2] {
            [self.avx._mm256_setzero_ps(); 2]
        }
        #[inline(always)]
        fn splat(self, x: f32) -> __m256 {
            self.avx._mm256_set1_ps(x)
        }
        #[inline(always)]
        fn load(self, values: &[f32; LANES]) -> [__m256; 2] {
            pulp::cast(*values)
        }
        #[inline(always)]
        fn store(self, panel: [__m256; 2]) -> [f32; LANES] {
            pulp::cast(panel)
        }
        #[inline(always)]
        fn fma(self, w: [__m256; 2], x: __m256, acc: [__m256; 2]) -> [__m256; 2] {
            [self.fma._mm256_fmadd_ps(w[0], x, acc[0]), self.fma._mm256_fmadd_ps(w[1], x, acc[1])]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::tests::values;

    #[test]
    fn products_match_the_row_major_weights_for_any_shape_and_kernel() {
        for (rows, cols) in [(1, 3), (16, 32), (17, 40), (70, 96), (100, 7)] {
            let weights = values(rows * cols, rows as u64 * 31 + cols as u64);
            let matrix = Panels::from_rows(rows, cols, &weights).expect("packs");
            for tokens in [1, 3, 8, 9, 70] {
                let inputs = values(tokens * cols, 11 + tokens as u64);
                let want: Vec<f32> = inputs
                    .chunks_exact(cols)
                    .flat_map(|x| {
                        weights.chunks_exact(cols).map(move |w| w.iter().zip(x).map(|(a, b)| a * b).sum::<f32>())
                    })
                    .collect();
                for kernels in [Kernels::Widest, Kernels::Avx2, Kernels::Portable] {
                    let mut out = vec![f32::NAN; tokens * rows];
                    let share = if tokens % 2 == 0 { Share::Threads } else { Share::Alone };
                    matrix.product_with(&inputs, tokens, &mut out, kernels, share);
                    for (i, (g, w)) in out.iter().zip(&want).enumerate() {
                        assert!(
                            (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                            "{rows}×{cols}, {tokens} tokens, {kernels:?}: value {i} is {g}, want {w}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_wrong_number_of_weights_is_refused_with_the_shape() {
        let error = Panels::from_rows(3, 4, &[0.0; 11]).expect_err("short");
        assert_eq!(error.to_string(), "11 weights, expected 3 × 4");
        assert!(Panels::from_rows(0, 0, &[]).is_err(), "no columns");
        assert!(Panels::from_rows(0, 4, &[]).is_err(), "no rows");
    }
}

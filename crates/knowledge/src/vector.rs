//! An in-memory vector index for one tenant: brute-force similarity over unit vectors, kept
//! per namespace in contiguous arrays so a query only reads its own namespace.
//!
//! Vectors are quantized to `i8` with one scale per vector (symmetric, `max |x| / 127`), and
//! so is the query: a 384-dimension vector takes 388 bytes instead of 1,536, and the scan is
//! an integer dot product the compiler vectorises. The similarity error this costs is about
//! 10⁻³ for unit vectors (measured in the tests); it only reorders near-ties, which rank
//! fusion with BM25 absorbs. No exact re-scoring: the exact vectors are not kept in memory.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use rayon::prelude::*;

/// Why a vector was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VectorError {
    #[error("vector has {got} dimensions, the index holds {want}")]
    Dimensions { got: usize, want: usize },
    #[error("vector has a non-finite component")]
    NotFinite,
}

/// A chunk found by [`VectorIndex::search`].
#[derive(Debug, Clone, PartialEq)]
pub struct VectorHit<D> {
    pub document: D,
    pub ordinal: u32,
    /// Approximate cosine similarity to the query (−1 to 1).
    pub similarity: f32,
}

/// Chunk vectors of one tenant, searchable by namespace and access rank.
#[derive(Debug, Clone)]
pub struct VectorIndex<D> {
    dims: usize,
    namespaces: HashMap<String, Segment<D>>,
}

/// The rows of one namespace: codes are `rows × dims`, row after row.
#[derive(Debug, Clone)]
struct Segment<D> {
    codes: Vec<i8>,
    scales: Vec<f32>,
    rows: Vec<Row<D>>,
}

#[derive(Debug, Clone)]
struct Row<D> {
    document: D,
    ordinal: u32,
    access: u8,
}

impl<D: Clone + PartialEq> VectorIndex<D> {
    pub fn new(dims: usize) -> Self {
        Self { dims, namespaces: HashMap::new() }
    }

    pub fn dims(&self) -> usize {
        self.dims
    }

    /// Number of chunk vectors held.
    pub fn len(&self) -> usize {
        self.namespaces.values().map(|s| s.rows.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of vector data held (codes and scales), for sizing.
    pub fn vector_bytes(&self) -> usize {
        self.namespaces.values().map(|s| s.codes.len() + 4 * s.scales.len()).sum()
    }

    /// Adds one chunk's vector. `access` is the document's access rank (0 = most open).
    pub fn insert(
        &mut self,
        document: D,
        ordinal: u32,
        namespace: &str,
        access: u8,
        vector: &[f32],
    ) -> Result<(), VectorError> {
        if vector.len() != self.dims {
            return Err(VectorError::Dimensions { got: vector.len(), want: self.dims });
        }
        let (codes, scale) = quantize(vector)?;
        let segment = self.namespaces.entry(namespace.to_owned()).or_insert_with(|| Segment {
            codes: Vec::new(),
            scales: Vec::new(),
            rows: Vec::new(),
        });
        segment.codes.extend_from_slice(&codes);
        segment.scales.push(scale);
        segment.rows.push(Row { document, ordinal, access });
        Ok(())
    }

    /// Whether the index holds chunk `ordinal` of `document` (a scan of every row).
    pub fn contains(&self, document: &D, ordinal: u32) -> bool {
        self.namespaces.values().any(|s| s.rows.iter().any(|r| r.ordinal == ordinal && &r.document == document))
    }

    /// Removes every chunk of `document`; returns how many were removed.
    pub fn remove_document(&mut self, document: &D) -> usize {
        let dims = self.dims;
        let mut removed = 0;
        for segment in self.namespaces.values_mut() {
            let mut i = 0;
            while i < segment.rows.len() {
                if &segment.rows[i].document != document {
                    i += 1;
                    continue;
                }
                // Swap-remove: the last row takes this one's place.
                let last = segment.rows.len() - 1;
                if i != last {
                    segment.codes.copy_within(last * dims..(last + 1) * dims, i * dims);
                }
                segment.codes.truncate(last * dims);
                segment.scales.swap_remove(i);
                segment.rows.swap_remove(i);
                removed += 1;
            }
        }
        self.namespaces.retain(|_, s| !s.rows.is_empty());
        removed
    }

    /// The `k` chunks of `namespace` most similar to `query`, among those with an access rank
    /// of at most `max_access`, best first. A query of the wrong size finds nothing.
    pub fn search(&self, query: &[f32], namespace: &str, max_access: u8, k: usize) -> Vec<VectorHit<D>> {
        let Some(segment) = self.namespaces.get(namespace) else { return Vec::new() };
        if k == 0 || query.len() != self.dims {
            return Vec::new();
        }
        let Ok((query_codes, query_scale)) = quantize(query) else { return Vec::new() };
        let (dims, query) = (self.dims, query_codes.as_slice());
        let mut dots = vec![0i32; segment.rows.len()];
        let scan = |(codes, out): (&[i8], &mut [i32])| {
            pulp::Arch::new().dispatch(Scan { query, codes, dims, out });
        };
        if dots.len() >= PARALLEL_ROWS {
            // A large namespace is scanned on every core: the scan reads every vector, so one
            // core alone is bound by how fast it reads memory.
            segment.codes.par_chunks(PARALLEL_ROWS * dims).zip(dots.par_chunks_mut(PARALLEL_ROWS)).for_each(scan);
        } else {
            scan((&segment.codes, &mut dots));
        }
        // A min-heap of the best k so far: the worst of them is on top.
        let mut best: BinaryHeap<Candidate> = BinaryHeap::with_capacity(k + 1);
        for (index, (row, dot)) in segment.rows.iter().zip(dots).enumerate() {
            if row.access > max_access {
                continue;
            }
            let score = dot as f32 * segment.scales[index];
            if best.len() < k {
                best.push(Candidate { score, index });
            } else if best.peek().is_some_and(|worst| score > worst.score) {
                best.pop();
                best.push(Candidate { score, index });
            }
        }
        let mut found = best.into_vec();
        found.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.index.cmp(&b.index)));
        found
            .into_iter()
            .map(|c| {
                let row = &segment.rows[c.index];
                VectorHit { document: row.document.clone(), ordinal: row.ordinal, similarity: c.score * query_scale }
            })
            .collect()
    }
}

/// A scored row; ordered so that `BinaryHeap` keeps the lowest score on top.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    score: f32,
    index: usize,
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Candidate {}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: the heap's "greatest" is the lowest score (later rows lose ties).
        other.score.total_cmp(&self.score).then(self.index.cmp(&other.index))
    }
}

/// Rows per parallel task of a scan; a namespace with fewer is scanned on the calling thread.
const PARALLEL_ROWS: usize = 8192;

/// Symmetric per-vector quantization: `x ≈ code × scale`.
fn quantize(vector: &[f32]) -> Result<(Vec<i8>, f32), VectorError> {
    if vector.iter().any(|x| !x.is_finite()) {
        return Err(VectorError::NotFinite);
    }
    let max = vector.iter().fold(0f32, |m, x| m.max(x.abs()));
    if max == 0.0 {
        return Ok((vec![0; vector.len()], 0.0));
    }
    let scale = max / 127.0;
    // In range by construction: |x / scale| ≤ 127.
    let codes = vector.iter().map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8).collect();
    Ok((codes, scale))
}

/// The dot products of the query with some rows, compiled for the best instruction set the
/// CPU has (AVX-512 or AVX2 where present, chosen at run time by `pulp`; SSE2 otherwise), so
/// the plain loops below vectorise wide without `unsafe` here.
struct Scan<'a> {
    query: &'a [i8],
    codes: &'a [i8],
    dims: usize,
    out: &'a mut [i32],
}

impl pulp::WithSimd for Scan<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        for (row, out) in self.codes.chunks_exact(self.dims).zip(self.out.iter_mut()) {
            *out = dot_i8(self.query, row);
        }
    }
}

/// Integer dot product in 32 lanes; products of two `i8` fit an `i16`, which lets the compiler
/// use multiply-add instructions.
#[inline(always)]
fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    const LANES: usize = 32;
    let mut acc = [0i32; LANES];
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: i32 =
        a_chunks.remainder().iter().zip(b_chunks.remainder()).map(|(&x, &y)| i32::from(x) * i32::from(y)).sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for lane in 0..LANES {
            acc[lane] += i32::from(i16::from(x[lane]) * i16::from(y[lane]));
        }
    }
    acc.iter().sum::<i32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random unit vectors (xorshift).
    fn unit_vectors(n: usize, dims: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut state = seed | 1;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0
        };
        (0..n)
            .map(|_| {
                let v: Vec<f32> = (0..dims).map(|_| next()).collect();
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                v.into_iter().map(|x| x / norm).collect()
            })
            .collect()
    }

    fn exact(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn similarities_are_close_to_exact_and_the_top_matches_agree() {
        let dims = 384;
        let vectors = unit_vectors(2000, dims, 7);
        let mut index = VectorIndex::new(dims);
        for (i, v) in vectors.iter().enumerate() {
            index.insert(i, 0, "docs", 0, v).expect("insert");
        }
        assert_eq!(index.vector_bytes(), 2000 * (dims + 4));
        let mut overlap = 0;
        for (q, query) in unit_vectors(20, dims, 99).iter().enumerate() {
            let hits = index.search(query, "docs", 0, 10);
            assert_eq!(hits.len(), 10);
            for hit in &hits {
                let error = (hit.similarity - exact(query, &vectors[hit.document])).abs();
                assert!(error < 0.01, "query {q}: error {error}");
            }
            let mut by_exact: Vec<(usize, f32)> = vectors.iter().map(|v| exact(query, v)).enumerate().collect();
            by_exact.sort_by(|a, b| b.1.total_cmp(&a.1));
            overlap += hits.iter().filter(|h| by_exact[..10].iter().any(|(i, _)| *i == h.document)).count();
        }
        assert!(overlap >= 180, "top-10 agreement with exact search: {overlap}/200");
        // A vector finds itself first.
        let hits = index.search(&vectors[42], "docs", 0, 1);
        assert_eq!(hits[0].document, 42);
        assert!((hits[0].similarity - 1.0).abs() < 0.01);
    }

    fn docs_of(hits: Vec<VectorHit<&'static str>>) -> Vec<(&'static str, u32)> {
        hits.into_iter().map(|h| (h.document, h.ordinal)).collect()
    }

    #[test]
    fn namespace_and_access_filter_and_documents_are_removed() {
        let vectors = unit_vectors(6, 8, 3);
        let mut index = VectorIndex::new(8);
        // Document "a" has chunks 0 and 1 in docs; "b" is confidential (3); "c" is elsewhere.
        index.insert("a", 0, "docs", 0, &vectors[0]).expect("insert");
        index.insert("a", 1, "docs", 0, &vectors[1]).expect("insert");
        index.insert("b", 0, "docs", 3, &vectors[2]).expect("insert");
        index.insert("c", 0, "other", 0, &vectors[3]).expect("insert");
        index.insert("d", 0, "docs", 1, &vectors[4]).expect("insert");

        let all = docs_of(index.search(&vectors[2], "docs", 3, 10));
        assert_eq!(all.len(), 4);
        assert_eq!(all[0], ("b", 0));
        assert!(!docs_of(index.search(&vectors[2], "docs", 1, 10)).contains(&("b", 0)), "access filter");
        assert_eq!(docs_of(index.search(&vectors[3], "other", 3, 10)), vec![("c", 0)]);
        assert!(index.search(&vectors[0], "missing", 3, 10).is_empty());
        assert!(index.search(&vectors[0][..4], "docs", 3, 10).is_empty(), "wrong size");

        assert!(index.contains(&"a", 1) && index.contains(&"c", 0));
        assert!(!index.contains(&"a", 2) && !index.contains(&"e", 0), "no such chunk");
        assert_eq!(index.remove_document(&"a"), 2);
        assert!(!index.contains(&"a", 0), "removed");
        assert_eq!(index.remove_document(&"a"), 0);
        assert_eq!(index.len(), 3);
        let left = docs_of(index.search(&vectors[4], "docs", 3, 10));
        assert_eq!(left[0], ("d", 0), "the moved row kept its own vector");
        assert_eq!(left.len(), 2);
        let hit = index.search(&vectors[4], "docs", 3, 1);
        assert!((hit[0].similarity - 1.0).abs() < 0.01);
        index.remove_document(&"c");
        assert!(index.search(&vectors[3], "other", 3, 10).is_empty());
    }

    #[test]
    fn bad_vectors_are_refused() {
        let mut index: VectorIndex<u32> = VectorIndex::new(3);
        assert_eq!(index.insert(1, 0, "n", 0, &[1.0, 0.0]), Err(VectorError::Dimensions { got: 2, want: 3 }));
        assert_eq!(index.insert(1, 0, "n", 0, &[f32::NAN, 0.0, 0.0]), Err(VectorError::NotFinite));
        index.insert(1, 0, "n", 0, &[0.0, 0.0, 0.0]).expect("a zero vector is allowed");
        assert_eq!(index.search(&[1.0, 0.0, 0.0], "n", 0, 1)[0].similarity, 0.0);
    }

    #[test]
    fn a_namespace_scanned_on_every_core_finds_each_vector_in_every_part() {
        // More rows than two parallel tasks hold, the last task partial.
        let dims = 48;
        let n = 2 * PARALLEL_ROWS + 1234;
        let vectors = unit_vectors(n, dims, 5);
        let mut index: VectorIndex<usize> = VectorIndex::new(dims);
        for (i, v) in vectors.iter().enumerate() {
            index.insert(i, 0, "docs", 0, v).expect("inserts");
        }
        for wanted in [0, PARALLEL_ROWS - 1, PARALLEL_ROWS, 2 * PARALLEL_ROWS + 7, n - 1] {
            let hits = index.search(&vectors[wanted], "docs", 0, 3);
            assert_eq!(hits.len(), 3);
            assert_eq!(hits[0].document, wanted, "the vector itself is the best match");
            assert!(hits[0].similarity > 0.99, "similarity {}", hits[0].similarity);
            assert!(hits[1].similarity < hits[0].similarity);
        }
    }
}

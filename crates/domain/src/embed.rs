//! The text-embedding port: in-process models (the `models` crate) implement it; the runtime
//! uses it for retrieval and gate 2 without knowing which model or library sits behind it.

/// Why texts could not be embedded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("embedding failed: {0}")]
pub struct EmbedError(pub String);

/// Whether an embedder can embed now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbedderState {
    Ready,
    /// Its model is still loading: [`Embedder::embed`] waits for it.
    Loading,
    /// Its model failed to load: callers fall back as if there were no embedder.
    Unavailable,
}

/// Turns texts into unit-length vectors of a fixed size. Blocking and CPU-bound (and it may
/// wait for its model to load): async callers run it on a blocking thread.
pub trait Embedder: Send + Sync {
    /// The model's name, e.g. `all-MiniLM-L6-v2` (recorded with stored vectors).
    fn model(&self) -> &str;
    /// Vector length, e.g. 384.
    fn dims(&self) -> usize;
    /// One L2-normalised vector per text, in order.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError>;
    /// Whether it can embed now; an embedder built from a loaded model always can.
    fn state(&self) -> EmbedderState {
        EmbedderState::Ready
    }
}

impl std::fmt::Debug for dyn Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Embedder({}, {} dims)", self.model(), self.dims())
    }
}

/// Cosine similarity of two vectors of equal length (their dot product when both are unit
/// length); 0 when either is empty or the lengths differ.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.is_empty() || a.len() != b.len() {
        return 0.0;
    }
    let (mut dot, mut na, mut nb) = (0f32, 0f32, 0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 { 0.0 } else { dot / (na.sqrt() * nb.sqrt()) }
}

/// A vector as stored: its components as little-endian `f32`, 4 bytes each.
pub fn vector_to_bytes(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A stored vector back; `None` when the length is not a multiple of 4.
pub fn vector_from_bytes(bytes: &[u8]) -> Option<Vec<f32>> {
    let chunks = bytes.chunks_exact(4);
    if !chunks.remainder().is_empty() {
        return None;
    }
    Some(chunks.map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

#[cfg(test)]
mod tests {
    use super::{cosine, vector_from_bytes, vector_to_bytes};

    #[test]
    fn vectors_round_trip_through_little_endian_bytes() {
        let v = [1.0f32, -0.5, 3.25e-7, f32::MIN_POSITIVE];
        let bytes = vector_to_bytes(&v);
        assert_eq!(&bytes[..4], &[0, 0, 0x80, 0x3f], "1.0 little-endian");
        assert_eq!(vector_from_bytes(&bytes).as_deref(), Some(&v[..]));
        assert_eq!(vector_from_bytes(&bytes[..5]), None);
        assert_eq!(vector_from_bytes(&[]), Some(Vec::new()));
    }

    #[test]
    fn cosine_of_parallel_orthogonal_and_mismatched_vectors() {
        assert!((cosine(&[1.0, 2.0], &[2.0, 4.0]) - 1.0).abs() < 1e-6);
        assert!(cosine(&[1.0, 0.0], &[0.0, 3.0]).abs() < 1e-6);
        assert_eq!(cosine(&[1.0], &[1.0, 2.0]), 0.0);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 2.0]), 0.0);
    }
}

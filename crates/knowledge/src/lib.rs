//! Knowledge-base logic without I/O: [`extract`] turns uploaded files into text, [`chunk`]
//! splits it (500 characters, 50 overlap, on sentence boundaries where possible), [`terms`]
//! tokenizes, [`rank`] scores candidate chunks with BM25, [`LexicalIndex`] scores a whole
//! namespace with BM25 from memory, [`VectorIndex`] finds similar chunk vectors, and [`rrf`]
//! fuses the two rankings.

pub mod extract;
mod fusion;
mod lexical;
mod vector;

pub use extract::{ExtractError, ExtractFailure, Extracted, Format, extract};
pub use fusion::{RRF_K, rrf};
pub use lexical::{LexicalHit, LexicalIndex};
pub use vector::{VectorError, VectorHit, VectorIndex};

use std::collections::{HashMap, HashSet};

use sha2::{Digest, Sha256};

pub const CHUNK_CHARS: usize = 500;
pub const CHUNK_OVERLAP: usize = 50;

/// Hex SHA-256 of a document's content, for de-duplication.
pub fn content_hash(content: &str) -> String {
    hex::encode(Sha256::digest(content.as_bytes()))
}

/// Splits text into chunks of at most `CHUNK_CHARS` characters, each overlapping the previous
/// by about `CHUNK_OVERLAP`, preferring to end at a sentence boundary (then a space).
pub fn chunk(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut start = 0;
    while start < chars.len() {
        let hard_end = (start + CHUNK_CHARS).min(chars.len());
        let end = if hard_end == chars.len() { hard_end } else { boundary(&chars, start, hard_end) };
        let piece: String = chars[start..end].iter().collect();
        let piece = piece.trim();
        if !piece.is_empty() {
            out.push(piece.to_owned());
        }
        if end == chars.len() {
            break;
        }
        // Step back by the overlap, but always move forward.
        let next = end.saturating_sub(CHUNK_OVERLAP);
        start = if next > start { next } else { end };
    }
    out
}

/// The best place to end a chunk in `start..hard_end`: after the last sentence end in the second
/// half of the window, else at the last space there, else at `hard_end`.
fn boundary(chars: &[char], start: usize, hard_end: usize) -> usize {
    let half = start + (hard_end - start) / 2;
    let sentence = (half..hard_end)
        .rev()
        .find(|&i| matches!(chars[i], '.' | '!' | '?' | '\n') && chars.get(i + 1).is_none_or(|c| c.is_whitespace()));
    if let Some(i) = sentence {
        return i + 1;
    }
    (half..hard_end).rev().find(|&i| chars[i].is_whitespace()).unwrap_or(hard_end)
}

const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "how", "in", "is", "it", "of", "on", "or", "that",
    "the", "this", "to", "was", "what", "when", "where", "which", "who", "why", "with", "about", "does", "do",
];

/// Lower-cased word terms of a text, without stop words or one-letter words.
pub fn terms(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() > 1)
        .map(str::to_lowercase)
        .filter(|w| !STOP_WORDS.contains(&w.as_str()))
        .collect()
}

/// A scored chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked {
    /// Index into the candidates given to [`rank`].
    pub index: usize,
    pub score: f64,
    /// Fraction of distinct query terms the chunk contains (0–1): the retrieval confidence.
    pub coverage: f64,
}

/// Ranks candidate chunk texts against a query with BM25 (k1 = 1.2, b = 0.75), best first,
/// dropping chunks that match no term.
pub fn rank(query: &str, candidates: &[&str]) -> Vec<Ranked> {
    let query_terms: Vec<String> = {
        let mut seen = HashSet::new();
        terms(query).into_iter().filter(|t| seen.insert(t.clone())).collect()
    };
    if query_terms.is_empty() || candidates.is_empty() {
        return Vec::new();
    }
    let docs: Vec<Vec<String>> = candidates.iter().map(|c| terms(c)).collect();
    let n = docs.len() as f64;
    let avg_len = docs.iter().map(Vec::len).sum::<usize>() as f64 / n;
    let mut df: HashMap<&str, usize> = HashMap::new();
    for doc in &docs {
        let unique: HashSet<&str> = doc.iter().map(String::as_str).collect();
        for t in &query_terms {
            if unique.contains(t.as_str()) {
                *df.entry(t.as_str()).or_default() += 1;
            }
        }
    }
    let (k1, b) = (1.2, 0.75);
    let mut ranked: Vec<Ranked> = docs
        .iter()
        .enumerate()
        .filter_map(|(index, doc)| {
            let len = doc.len() as f64;
            let mut score = 0.0;
            let mut matched = 0;
            for t in &query_terms {
                let tf = doc.iter().filter(|w| *w == t).count() as f64;
                if tf == 0.0 {
                    continue;
                }
                matched += 1;
                let df = *df.get(t.as_str()).unwrap_or(&0) as f64;
                let idf = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
                score += idf * tf * (k1 + 1.0) / (tf + k1 * (1.0 - b + b * len / avg_len.max(1.0)));
            }
            (matched > 0).then(|| Ranked { index, score, coverage: matched as f64 / query_terms.len() as f64 })
        })
        .collect();
    ranked.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.index.cmp(&b.index)));
    ranked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_bounded_overlapping_and_prefer_sentence_ends() {
        let sentence = "Nexus seals every action in a ledger. ";
        let text = sentence.repeat(40);
        let chunks = chunk(&text);
        assert!(chunks.len() > 2);
        for c in &chunks {
            assert!(c.chars().count() <= CHUNK_CHARS);
            assert!(c.ends_with('.'), "ends at a sentence: {c:?}");
        }
        // Consecutive chunks share text (the overlap).
        let tail: String = chunks[0].chars().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect();
        assert!(chunks[1].contains(tail.trim()), "overlap");
        assert_eq!(chunk("short text"), vec!["short text".to_owned()]);
        assert!(chunk("   ").is_empty());
        let no_spaces = "x".repeat(1200);
        assert!(chunk(&no_spaces).iter().all(|c| c.chars().count() <= CHUNK_CHARS));
    }

    #[test]
    fn terms_drop_stop_words_and_case() {
        assert_eq!(terms("What is the Ledger of NEXUS?"), vec!["ledger", "nexus"]);
    }

    #[test]
    fn bm25_prefers_the_chunk_about_the_query() {
        let candidates = [
            "Personas are behavioral contracts with allowed tools.",
            "The ledger is a Merkle tree; every seal is a ledger entry with a fingerprint.",
            "Weather in Rome is sunny.",
        ];
        let ranked = rank("How does the ledger store a seal?", &candidates);
        assert_eq!(ranked[0].index, 1);
        assert!((ranked[0].coverage - 2.0 / 3.0).abs() < 1e-9, "ledger and seal, not store: {ranked:?}");
        assert!(ranked.iter().all(|r| r.index != 2), "unrelated chunks are dropped");
        assert!(rank("the of and", &candidates).is_empty());
    }
}

//! Reciprocal rank fusion (Cormack, Clarke & Büttcher, 2009): merges ranked lists whose scores
//! are not comparable (BM25 and cosine similarity) by rank alone.

use std::collections::HashMap;
use std::hash::Hash;

/// The `k` of the original paper: it damps the weight of the very first ranks.
pub const RRF_K: f64 = 60.0;

/// Fuses ranked lists (best first): each item scores `Σ 1 / (k + rank)` over the lists it
/// appears in, ranks counted from 1. Best first; ties keep the order of first appearance.
pub fn rrf<K: Clone + Eq + Hash>(lists: &[Vec<K>], k: f64) -> Vec<(K, f64)> {
    let mut scores: HashMap<K, (f64, usize)> = HashMap::new();
    let mut order = 0;
    for list in lists {
        for (rank, item) in list.iter().enumerate() {
            let entry = scores.entry(item.clone()).or_insert_with(|| {
                order += 1;
                (0.0, order)
            });
            entry.0 += 1.0 / (k + rank as f64 + 1.0);
        }
    }
    let mut fused: Vec<(K, f64, usize)> =
        scores.into_iter().map(|(item, (score, first))| (item, score, first)).collect();
    fused.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.cmp(&b.2)));
    fused.into_iter().map(|(item, score, _)| (item, score)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_high_in_several_lists_win() {
        let lexical = vec!["a", "b", "c"];
        let vector = vec!["c", "d", "a"];
        let fused = rrf(&[lexical, vector], RRF_K);
        let names: Vec<&str> = fused.iter().map(|(n, _)| *n).collect();
        // a: 1/61 + 1/63, c: 1/63 + 1/61 tie, a first seen; then b (1/62) before d (1/62) by order.
        assert_eq!(names, vec!["a", "c", "b", "d"]);
        assert!((fused[0].1 - (1.0 / 61.0 + 1.0 / 63.0)).abs() < 1e-12);
        assert!((fused[2].1 - 1.0 / 62.0).abs() < 1e-12);
        assert!(rrf::<u8>(&[], RRF_K).is_empty());
        assert_eq!(rrf(&[vec![7], vec![]], RRF_K), vec![(7, 1.0 / 61.0)]);
    }
}

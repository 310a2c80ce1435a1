//! An in-memory inverted index over chunk texts, scored with BM25 over a whole namespace.
//!
//! One index holds one tenant's chunks. Each chunk is a *slot* (its document, ordinal,
//! namespace, access rank and length in terms); each term has a postings list of the slots
//! holding it, with the term's count there. A query walks only the postings of its own terms,
//! so its cost follows how many chunks contain them — a few hundred thousand postings for the
//! most common words of a 100k-chunk namespace, scored in a few milliseconds — never the size
//! of the whole index, and nothing is cut off before scoring: every matching chunk is scored.
//!
//! Removing a document marks its slots dead; postings are filtered as they are read (document
//! frequencies count live slots only), and the index compacts itself once dead slots outnumber
//! live ones. Per posting the index keeps 5 bytes (slot and a saturating term count).

use std::collections::HashMap;
use std::hash::Hash;

use crate::terms;

/// BM25's term-frequency saturation and length normalisation.
const K1: f64 = 1.2;
const B: f64 = 0.75;
/// Dead slots tolerated (beyond this many, and more than the live ones) before compacting.
const COMPACT_AFTER: usize = 1024;

/// A chunk a query found.
#[derive(Debug, Clone, PartialEq)]
pub struct LexicalHit<D> {
    pub document: D,
    pub ordinal: u32,
    pub score: f64,
    /// Fraction of the query's distinct terms the chunk contains (0–1).
    pub coverage: f64,
}

/// Where a slot's chunk comes from (read only for the hits a query returns).
struct Slot<D> {
    document: D,
    ordinal: u32,
}

/// What scoring reads per posting, packed in 8 bytes so a query's pass over a long postings
/// list stays in cache: length in terms (bits 0–31), namespace (32–47), access rank (48–55),
/// live (56).
#[derive(Clone, Copy)]
struct Meta(u64);

impl Meta {
    const LIVE: u64 = 1 << 56;

    fn new(len: u32, namespace: u16, access: u8) -> Self {
        Meta(u64::from(len) | u64::from(namespace) << 32 | u64::from(access) << 48 | Self::LIVE)
    }

    fn len(self) -> u32 {
        (self.0 & 0xFFFF_FFFF) as u32
    }

    fn namespace(self) -> u16 {
        ((self.0 >> 32) & 0xFFFF) as u16
    }

    fn access(self) -> u8 {
        ((self.0 >> 48) & 0xFF) as u8
    }

    fn live(self) -> bool {
        self.0 & Self::LIVE != 0
    }

    /// Live and in namespace `ns`: one comparison of the masked bits.
    fn live_in(self, ns: u16) -> bool {
        self.0 & (Self::LIVE | 0xFFFF << 32) == Self::LIVE | u64::from(ns) << 32
    }
}

#[derive(Default)]
struct Postings {
    slots: Vec<u32>,
    counts: Vec<u8>,
}

#[derive(Default, Clone, Copy)]
struct NamespaceStats {
    live: u64,
    total_len: u64,
}

/// One tenant's chunks, searchable by words.
pub struct LexicalIndex<D> {
    terms: HashMap<Box<str>, u32>,
    postings: Vec<Postings>,
    slots: Vec<Slot<D>>,
    meta: Vec<Meta>,
    by_document: HashMap<D, Vec<u32>>,
    namespace_ids: HashMap<Box<str>, u16>,
    namespaces: Vec<NamespaceStats>,
    dead: usize,
}

impl<D: Clone + Eq + Hash> Default for LexicalIndex<D> {
    fn default() -> Self {
        Self::new()
    }
}

impl<D: Clone + Eq + Hash> LexicalIndex<D> {
    pub fn new() -> Self {
        Self {
            terms: HashMap::new(),
            postings: Vec::new(),
            slots: Vec::new(),
            meta: Vec::new(),
            by_document: HashMap::new(),
            namespace_ids: HashMap::new(),
            namespaces: Vec::new(),
            dead: 0,
        }
    }

    /// Live chunks.
    pub fn len(&self) -> usize {
        self.slots.len() - self.dead
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the index holds any chunk of `document`.
    pub fn contains_document(&self, document: &D) -> bool {
        self.by_document.contains_key(document)
    }

    /// Adds one chunk. A chunk already present (same document and ordinal) is not added twice.
    /// Returns false when the index cannot take it (more than 65,535 namespaces, or 4 billion
    /// chunks).
    pub fn insert(&mut self, document: D, ordinal: u32, namespace: &str, access: u8, text: &str) -> bool {
        if let Some(slots) = self.by_document.get(&document)
            && slots.iter().any(|&s| self.slots[s as usize].ordinal == ordinal)
        {
            return true;
        }
        let Ok(slot) = u32::try_from(self.slots.len()) else { return false };
        let namespace = match self.namespace_ids.get(namespace) {
            Some(&id) => id,
            None => {
                let Ok(id) = u16::try_from(self.namespaces.len()) else { return false };
                self.namespace_ids.insert(namespace.into(), id);
                self.namespaces.push(NamespaceStats::default());
                id
            }
        };
        let words = terms(text);
        let mut counts: HashMap<&str, u32> = HashMap::with_capacity(words.len());
        for word in &words {
            *counts.entry(word.as_str()).or_default() += 1;
        }
        for (word, count) in counts {
            let term = match self.terms.get(word) {
                Some(&id) => id,
                None => {
                    let id = u32::try_from(self.postings.len()).unwrap_or(u32::MAX);
                    self.terms.insert(word.into(), id);
                    self.postings.push(Postings::default());
                    id
                }
            };
            let postings = &mut self.postings[term as usize];
            postings.slots.push(slot);
            postings.counts.push(u8::try_from(count).unwrap_or(u8::MAX));
        }
        let len = u32::try_from(words.len()).unwrap_or(u32::MAX);
        let stats = &mut self.namespaces[usize::from(namespace)];
        stats.live += 1;
        stats.total_len += u64::from(len);
        self.slots.push(Slot { document: document.clone(), ordinal });
        self.meta.push(Meta::new(len, namespace, access));
        self.by_document.entry(document).or_default().push(slot);
        true
    }

    /// Removes every chunk of a document; returns how many were removed.
    pub fn remove_document(&mut self, document: &D) -> usize {
        let Some(slots) = self.by_document.remove(document) else { return 0 };
        for &slot in &slots {
            let meta = &mut self.meta[slot as usize];
            if meta.live() {
                meta.0 &= !Meta::LIVE;
                let stats = &mut self.namespaces[usize::from(meta.namespace())];
                stats.live = stats.live.saturating_sub(1);
                stats.total_len = stats.total_len.saturating_sub(u64::from(meta.len()));
                self.dead += 1;
            }
        }
        if self.dead > COMPACT_AFTER && self.dead > self.len() {
            self.compact();
        }
        slots.len()
    }

    /// The best `k` chunks for `query` in `namespace` readable at `max_access`, best first
    /// (ties in insertion order). BM25 statistics (chunk count, average length, document
    /// frequencies) are the namespace's, whatever the reader may see.
    pub fn search(&self, query: &str, namespace: &str, max_access: u8, k: usize) -> Vec<LexicalHit<D>> {
        let mut query_terms: Vec<String> = terms(query);
        let mut seen = std::collections::HashSet::new();
        query_terms.retain(|t| seen.insert(t.clone()));
        let Some(&ns) = self.namespace_ids.get(namespace) else { return Vec::new() };
        let stats = self.namespaces[usize::from(ns)];
        if query_terms.is_empty() || stats.live == 0 || k == 0 {
            return Vec::new();
        }
        let n = stats.live as f64;
        let avg_len = (stats.total_len as f64 / n).max(1.0);
        // Dense accumulators, touched slots remembered so only they are read back.
        let mut scores: Vec<f32> = vec![0.0; self.slots.len()];
        let mut matched: Vec<u16> = vec![0; self.slots.len()];
        let mut touched: Vec<u32> = Vec::new();
        for term in &query_terms {
            let Some(&id) = self.terms.get(term.as_str()) else { continue };
            let postings = &self.postings[id as usize];
            let meta = &self.meta;
            let df = postings.slots.iter().filter(|&&s| meta[s as usize].live_in(ns)).count() as f64;
            if df == 0.0 {
                continue;
            }
            let idf = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
            let (k1_plus_1, len_weight, base) = (K1 + 1.0, K1 * B / avg_len, K1 * (1.0 - B));
            for (&slot, &count) in postings.slots.iter().zip(&postings.counts) {
                let entry = meta[slot as usize];
                if !entry.live_in(ns) || entry.access() > max_access {
                    continue;
                }
                let tf = f64::from(count);
                let norm = base + len_weight * f64::from(entry.len());
                let i = slot as usize;
                if matched[i] == 0 {
                    touched.push(slot);
                }
                matched[i] = matched[i].saturating_add(1);
                scores[i] += (idf * tf * k1_plus_1 / (tf + norm)) as f32;
            }
        }
        let by_rank = |a: &u32, b: &u32| scores[*b as usize].total_cmp(&scores[*a as usize]).then(a.cmp(b));
        if touched.len() > k {
            touched.select_nth_unstable_by(k - 1, by_rank);
            touched.truncate(k);
        }
        touched.sort_unstable_by(by_rank);
        let distinct = query_terms.len() as f64;
        touched
            .into_iter()
            .map(|slot| {
                let entry = &self.slots[slot as usize];
                LexicalHit {
                    document: entry.document.clone(),
                    ordinal: entry.ordinal,
                    score: f64::from(scores[slot as usize]),
                    coverage: f64::from(matched[slot as usize]) / distinct,
                }
            })
            .collect()
    }

    /// Gives back the room lists grew into (after building from a store, when no more
    /// inserts are expected soon).
    pub fn shrink_to_fit(&mut self) {
        for postings in &mut self.postings {
            postings.slots.shrink_to_fit();
            postings.counts.shrink_to_fit();
        }
        self.postings.shrink_to_fit();
        self.slots.shrink_to_fit();
        self.meta.shrink_to_fit();
    }

    /// Approximate heap bytes held (postings, slots, dictionaries).
    pub fn heap_bytes(&self) -> usize {
        let postings: usize = self.postings.iter().map(|p| p.slots.capacity() * 4 + p.counts.capacity()).sum();
        let terms: usize = self.terms.keys().map(|t| t.len() + 32).sum();
        let slots = self.slots.capacity() * std::mem::size_of::<Slot<D>>() + self.meta.capacity() * 8;
        let documents = self.by_document.values().map(|s| s.capacity() * 4 + 64).sum::<usize>();
        postings + self.postings.capacity() * std::mem::size_of::<Postings>() + terms + slots + documents
    }

    /// Drops dead slots and their postings, renumbering the live ones in order.
    fn compact(&mut self) {
        let mut renumber: Vec<u32> = vec![u32::MAX; self.slots.len()];
        let mut next = 0u32;
        for (old, meta) in self.meta.iter().enumerate() {
            if meta.live() {
                renumber[old] = next;
                next += 1;
            }
        }
        for postings in &mut self.postings {
            let mut kept = 0;
            for i in 0..postings.slots.len() {
                let new = renumber[postings.slots[i] as usize];
                if new != u32::MAX {
                    postings.slots[kept] = new;
                    postings.counts[kept] = postings.counts[i];
                    kept += 1;
                }
            }
            postings.slots.truncate(kept);
            postings.counts.truncate(kept);
            postings.slots.shrink_to_fit();
            postings.counts.shrink_to_fit();
        }
        let mut kept = 0;
        for (old, &new) in renumber.iter().enumerate() {
            if new != u32::MAX {
                self.slots.swap(kept, old);
                self.meta[kept] = self.meta[old];
                kept += 1;
            }
        }
        self.slots.truncate(kept);
        self.meta.truncate(kept);
        for slots in self.by_document.values_mut() {
            for slot in slots.iter_mut() {
                *slot = renumber[*slot as usize];
            }
            slots.retain(|&s| s != u32::MAX);
        }
        self.dead = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> LexicalIndex<&'static str> {
        let mut index = LexicalIndex::new();
        index.insert("personas", 0, "default", 0, "Personas are behavioral contracts with allowed tools.");
        index.insert(
            "ledger",
            0,
            "default",
            0,
            "The ledger is a Merkle tree; every seal is a ledger entry with a fingerprint.",
        );
        index.insert("weather", 0, "default", 0, "Weather in Rome is sunny.");
        index.insert("secret", 0, "default", 2, "The ledger signing key is kept in a secret seal file.");
        index.insert("elsewhere", 0, "other", 0, "ledger ledger ledger seal seal");
        index
    }

    #[test]
    fn ranks_by_bm25_within_the_namespace_and_access() {
        let index = index();
        let hits = index.search("How does the ledger store a seal?", "default", 0, 10);
        let found: Vec<&str> = hits.iter().map(|h| h.document).collect();
        assert_eq!(found, vec!["ledger"], "public chunks of the namespace only: {hits:?}");
        assert!((hits[0].coverage - 2.0 / 3.0).abs() < 1e-9, "ledger and seal, not store");
        let all = index.search("ledger seal", "default", 2, 10);
        assert_eq!(all.iter().map(|h| h.document).collect::<Vec<_>>(), vec!["ledger", "secret"]);
        assert!(all[0].score > all[1].score);
        assert!(index.search("the of and", "default", 9, 10).is_empty(), "stop words find nothing");
        assert!(index.search("ledger", "missing", 9, 10).is_empty());
        assert_eq!(index.search("ledger", "other", 0, 10)[0].document, "elsewhere");
    }

    #[test]
    fn scores_match_bm25_over_the_whole_namespace() {
        let index = index();
        let texts = [
            "Personas are behavioral contracts with allowed tools.",
            "The ledger is a Merkle tree; every seal is a ledger entry with a fingerprint.",
            "Weather in Rome is sunny.",
            "The ledger signing key is kept in a secret seal file.",
        ];
        let expected = crate::rank("ledger seal", &texts);
        let hits = index.search("ledger seal", "default", 9, 10);
        assert_eq!(hits.len(), expected.len());
        for (hit, want) in hits.iter().zip(&expected) {
            assert!((hit.score - want.score).abs() < 1e-4, "{hit:?} vs {want:?}");
        }
    }

    #[test]
    fn removed_documents_disappear_and_compaction_keeps_the_rest() {
        let mut index = index();
        assert_eq!(index.remove_document(&"ledger"), 1);
        assert_eq!(index.remove_document(&"ledger"), 0);
        let hits = index.search("ledger seal", "default", 9, 10);
        assert_eq!(hits.iter().map(|h| h.document).collect::<Vec<_>>(), vec!["secret"]);
        // Enough churn to compact: the survivors are still found, with the same scores.
        let before = index.search("weather rome", "default", 0, 10);
        for i in 0..3000u32 {
            let name: &'static str = Box::leak(format!("churn{i}").into_boxed_str());
            index.insert(name, 0, "default", 0, "churn words here");
            index.remove_document(&name);
        }
        assert_eq!(index.len(), 4);
        assert_eq!(index.search("weather rome", "default", 0, 10), before);
        assert!(index.search("churn", "default", 0, 10).is_empty());
    }

    #[test]
    fn top_k_keeps_the_best_and_the_same_chunk_is_added_once() {
        let mut index: LexicalIndex<u32> = LexicalIndex::new();
        for i in 0..100u32 {
            let text = format!("{} filler", "alpha ".repeat(i as usize % 7 + 1));
            index.insert(i, 0, "n", 0, &text);
        }
        assert!(index.insert(5, 0, "n", 0, "alpha"), "a chunk already present is kept as it was");
        assert_eq!(index.len(), 100);
        let top = index.search("alpha", "n", 0, 5);
        let full = index.search("alpha", "n", 0, 1000);
        assert_eq!(full.len(), 100);
        assert_eq!(top, full[..5].to_vec());
    }
}

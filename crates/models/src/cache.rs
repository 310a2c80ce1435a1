//! A bounded, approximately least-recently-used cache: two generations of at most `capacity / 2`
//! entries each. Hits in the old generation move to the new one; when the new generation is
//! full it becomes the old one and the previous old one is dropped. Cheaper than exact LRU
//! bookkeeping and good enough for "the same texts come back often".

use std::collections::HashMap;
use std::hash::Hash;

#[derive(Debug)]
pub(crate) struct GenerationalCache<K, V> {
    young: HashMap<K, V>,
    old: HashMap<K, V>,
    generation_size: usize,
}

impl<K: Hash + Eq, V: Clone> GenerationalCache<K, V> {
    /// A cache holding at most `capacity` entries (at least 2).
    pub(crate) fn new(capacity: usize) -> Self {
        let generation_size = (capacity / 2).max(1);
        Self { young: HashMap::new(), old: HashMap::new(), generation_size }
    }

    pub(crate) fn get<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(value) = self.young.get(key) {
            return Some(value.clone());
        }
        let (key, value) = self.old.remove_entry(key)?;
        self.insert(key, value.clone());
        Some(value)
    }

    pub(crate) fn insert(&mut self, key: K, value: V) {
        if self.young.len() >= self.generation_size && !self.young.contains_key(&key) {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(key, value);
    }

    pub(crate) fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }
}

#[cfg(test)]
mod tests {
    use super::GenerationalCache;

    #[test]
    fn stays_bounded_and_keeps_recently_used_entries() {
        let mut cache = GenerationalCache::new(4);
        for i in 0..100 {
            cache.insert(i, i * 10);
            // Entry 0 is used constantly, so it survives every generation change.
            assert_eq!(cache.get(&0), Some(0), "after inserting {i}");
            assert!(cache.len() <= 4, "len {} after inserting {i}", cache.len());
        }
        assert_eq!(cache.get(&99), Some(990));
        assert_eq!(cache.get(&1), None, "an entry unused for many generations is evicted");
    }

    #[test]
    fn a_hit_in_the_old_generation_is_promoted() {
        let mut cache = GenerationalCache::new(4);
        cache.insert("a", 1);
        cache.insert("b", 2);
        cache.insert("c", 3); // young {c}, old {a, b}
        assert_eq!(cache.get("a"), Some(1)); // promoted: young {c, a}
        cache.insert("d", 4); // young full: old {c, a}, young {d}
        cache.insert("e", 5); // young {d, e}
        assert_eq!(cache.get("a"), Some(1));
        assert_eq!(cache.get("b"), None);
    }
}

//! An append-only RFC 6962 Merkle tree kept as levels of complete subtree hashes.
//!
//! `levels[0]` holds the leaf hashes; `levels[k][i]` is the hash of the complete subtree over
//! leaves `i·2^k .. (i+1)·2^k`. Appending costs amortised O(1) hashes, and any root, inclusion
//! proof or consistency proof for any earlier size costs O(log² n) lookups and hashes, because
//! every left subtree in RFC 6962's recursion is complete and aligned.

use crate::hash::{Hash, empty_root, node_hash};

#[derive(Debug, Clone, Default)]
pub struct MerkleTree {
    levels: Vec<Vec<Hash>>,
}

/// A request for a proof that the tree cannot answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    #[error("leaf index {index} is not below tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("tree size {requested} is larger than the log ({available} entries)")]
    SizeOutOfRange { requested: u64, available: u64 },
    #[error("a consistency proof needs 0 < old size ≤ new size, got {old} and {new}")]
    BadConsistencyRange { old: u64, new: u64 },
}

/// The largest power of two strictly below `n` (for n ≥ 2).
pub(crate) fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

impl MerkleTree {
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a tree from leaf hashes in order.
    pub fn from_leaves(leaves: impl IntoIterator<Item = Hash>) -> Self {
        let mut tree = Self::new();
        for leaf in leaves {
            tree.push(leaf);
        }
        tree
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// Appends a leaf hash and returns its index.
    pub fn push(&mut self, leaf: Hash) -> u64 {
        if self.levels.is_empty() {
            self.levels.push(Vec::new());
        }
        self.levels[0].push(leaf);
        let index = self.levels[0].len() as u64 - 1;
        let mut level = 0;
        while self.levels[level].len().is_multiple_of(2) {
            let len = self.levels[level].len();
            let parent = node_hash(&self.levels[level][len - 2], &self.levels[level][len - 1]);
            if self.levels.len() == level + 1 {
                self.levels.push(Vec::new());
            }
            self.levels[level + 1].push(parent);
            level += 1;
        }
        index
    }

    /// The leaf hash at `index`.
    pub fn leaf(&self, index: u64) -> Option<Hash> {
        self.levels.first()?.get(usize::try_from(index).ok()?).copied()
    }

    /// The root of the tree over the first `size` leaves.
    pub fn root_at(&self, size: u64) -> Result<Hash, TreeError> {
        self.check_size(size)?;
        if size == 0 {
            return Ok(empty_root());
        }
        Ok(self.range_hash(0, size))
    }

    /// The root of the whole tree.
    pub fn root(&self) -> Hash {
        if self.size() == 0 { empty_root() } else { self.range_hash(0, self.size()) }
    }

    /// The audit path for leaf `index` in the tree of size `size`, deepest sibling first
    /// (RFC 6962 §2.1.1).
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, TreeError> {
        self.check_size(size)?;
        if index >= size {
            return Err(TreeError::IndexOutOfRange { index, size });
        }
        let mut proof = Vec::with_capacity(64);
        self.path(index, 0, size, &mut proof);
        Ok(proof)
    }

    /// The consistency proof between sizes `old` and `new` (RFC 6962 §2.1.2).
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, TreeError> {
        self.check_size(new)?;
        if old == 0 || old > new {
            return Err(TreeError::BadConsistencyRange { old, new });
        }
        let mut proof = Vec::with_capacity(64);
        if old < new {
            self.subproof(old, 0, new, true, &mut proof);
        }
        Ok(proof)
    }

    fn check_size(&self, size: u64) -> Result<(), TreeError> {
        if size > self.size() {
            return Err(TreeError::SizeOutOfRange { requested: size, available: self.size() });
        }
        Ok(())
    }

    /// The hash of a complete aligned subtree below the current size.
    fn complete(&self, subtree: Subtree) -> Hash {
        self.levels[subtree.height as usize][subtree.index as usize]
    }

    fn range_hash(&self, start: u64, end: u64) -> Hash {
        range_hash(start, end, &mut |s| self.complete(s))
    }

    fn path(&self, m: u64, start: u64, end: u64, out: &mut Vec<Hash>) {
        path(m, start, end, &mut |s| self.complete(s), out);
    }

    fn subproof(&self, m: u64, start: u64, end: u64, whole: bool, out: &mut Vec<Hash>) {
        subproof(m, start, end, whole, &mut |s| self.complete(s), out);
    }
}

/// A complete, aligned subtree: the leaves `index·2^height .. (index+1)·2^height`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subtree {
    pub height: u32,
    pub index: u64,
}

/// MTH(D[start..end]) with complete subtrees taken from `complete`. RFC 6962's recursion only
/// ever splits off complete aligned subtrees on the left, so the right edge is the only part
/// computed; everything else is a lookup.
pub(crate) fn range_hash(start: u64, end: u64, complete: &mut impl FnMut(Subtree) -> Hash) -> Hash {
    let n = end - start;
    if n.is_power_of_two() && start.is_multiple_of(n) {
        let height = n.trailing_zeros();
        return complete(Subtree { height, index: start >> height });
    }
    let k = split_point(n);
    let left = range_hash(start, start + k, complete);
    let right = range_hash(start + k, end, complete);
    node_hash(&left, &right)
}

/// RFC 6962 §2.1.1 PATH(m, D[start..end]), deepest sibling first.
pub(crate) fn path(m: u64, start: u64, end: u64, complete: &mut impl FnMut(Subtree) -> Hash, out: &mut Vec<Hash>) {
    let n = end - start;
    if n == 1 {
        return;
    }
    let k = split_point(n);
    if m < k {
        path(m, start, start + k, complete, out);
        out.push(range_hash(start + k, end, complete));
    } else {
        path(m - k, start + k, end, complete, out);
        out.push(range_hash(start, start + k, complete));
    }
}

/// RFC 6962 §2.1.2 SUBPROOF(m, D[start..end], whole).
pub(crate) fn subproof(
    m: u64,
    start: u64,
    end: u64,
    whole: bool,
    complete: &mut impl FnMut(Subtree) -> Hash,
    out: &mut Vec<Hash>,
) {
    let n = end - start;
    if m == n {
        if !whole {
            out.push(range_hash(start, end, complete));
        }
        return;
    }
    let k = split_point(n);
    if m <= k {
        subproof(m, start, start + k, whole, complete, out);
        out.push(range_hash(start + k, end, complete));
    } else {
        subproof(m - k, start + k, end, false, complete, out);
        out.push(range_hash(start, start + k, complete));
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::hash::leaf_hash;

    /// RFC 6962's MTH, written directly from the definition, as the reference.
    pub(crate) fn reference_root(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split_point(n as u64) as usize;
                node_hash(&reference_root(&leaves[..k]), &reference_root(&leaves[k..]))
            }
        }
    }

    pub(crate) fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(format!("entry {i}").as_bytes())).collect()
    }

    #[test]
    fn roots_match_the_reference_definition_at_every_size() {
        let all = leaves(130);
        let tree = MerkleTree::from_leaves(all.iter().copied());
        for size in 0..=130u64 {
            assert_eq!(tree.root_at(size), Ok(reference_root(&all[..size as usize])), "size {size}");
        }
    }

    #[test]
    fn split_point_is_largest_power_of_two_below() {
        assert_eq!(split_point(2), 1);
        assert_eq!(split_point(3), 2);
        assert_eq!(split_point(4), 2);
        assert_eq!(split_point(5), 4);
        assert_eq!(split_point(1 << 40), 1 << 39);
    }

    #[test]
    fn out_of_range_requests_are_refused() {
        let tree = MerkleTree::from_leaves(leaves(5));
        assert_eq!(tree.inclusion_proof(5, 5), Err(TreeError::IndexOutOfRange { index: 5, size: 5 }));
        assert_eq!(tree.inclusion_proof(0, 6), Err(TreeError::SizeOutOfRange { requested: 6, available: 5 }));
        assert_eq!(tree.consistency_proof(0, 5), Err(TreeError::BadConsistencyRange { old: 0, new: 5 }));
        assert_eq!(tree.consistency_proof(4, 3), Err(TreeError::BadConsistencyRange { old: 4, new: 3 }));
    }
}

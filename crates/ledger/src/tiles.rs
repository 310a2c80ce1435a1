//! The tree of a log kept in storage rather than in memory, in the spirit of tiled
//! transparency logs (C2SP tlog-tiles).
//!
//! Hashes are stored every [`TILE_HEIGHT`] levels: level 0 is the leaf hashes (stored with the
//! entries), level `q ≥ 1` holds the hash of every complete subtree of height `8q`, written once
//! when its last leaf arrives ([`TreeNode`]). Any complete subtree of height `8q + r` is then
//! the fold of `2^r ≤ 256` consecutive level-`q` hashes, all inside one tile of 256, so a proof
//! reads a few tiles per level and nothing else.
//!
//! An appender needs only the right edge of the tree, the [`Frontier`]: one hash per set bit of
//! the size (at most 64), which also gives the root. Proofs are computed in two passes over the
//! same RFC 6962 recursion as [`crate::tree`]: [`ProofPlan`] lists the complete subtrees a proof
//! needs and the tiles they live in; the caller reads those tiles and [`ProofPlan`] finishes the
//! proof from them. Memory is O(log n) for appending and O(tiles read) for a proof, whatever the
//! size of the log.

use std::collections::{BTreeMap, BTreeSet};

use domain::ledger::TreeNode;

use crate::hash::{Hash, empty_root, node_hash};
use crate::tree::{Subtree, TreeError, path, range_hash, subproof};

/// Levels of the tree between two stored levels.
pub const TILE_HEIGHT: u32 = 8;
/// Hashes in a full tile.
pub const TILE_WIDTH: u64 = 1 << TILE_HEIGHT;

/// A tile: up to [`TILE_WIDTH`] consecutive stored hashes of one level, from
/// `index · TILE_WIDTH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileId {
    pub level: u8,
    pub index: u64,
}

impl TileId {
    /// The first stored index of the tile's level that it holds.
    pub fn start(&self) -> u64 {
        self.index * TILE_WIDTH
    }
}

/// Where a complete subtree's stored hashes are: its tile, and the offsets within it.
fn location(subtree: Subtree) -> (TileId, u64, u64) {
    let level = subtree.height / TILE_HEIGHT;
    let rest = subtree.height % TILE_HEIGHT;
    let first = subtree.index << rest;
    let tile = TileId { level: level as u8, index: first / TILE_WIDTH };
    let offset = first % TILE_WIDTH;
    (tile, offset, offset + (1 << rest))
}

/// Folds a power-of-two run of sibling hashes into their subtree's root.
fn fold(hashes: &[Hash]) -> Hash {
    debug_assert!(hashes.len().is_power_of_two());
    let mut level: Vec<Hash> = hashes.to_vec();
    while level.len() > 1 {
        level = level.chunks_exact(2).map(|pair| node_hash(&pair[0], &pair[1])).collect();
    }
    level[0]
}

/// The right edge of a tree: the roots of its maximal complete subtrees, largest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    nodes: Vec<Hash>,
}

/// A stored frontier that does not fit its size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a tree of size {size} has {expected} edge hashes, but {found} bytes were stored")]
pub struct FrontierError {
    pub size: u64,
    pub expected: u32,
    pub found: usize,
}

impl Frontier {
    pub fn new() -> Self {
        Self::default()
    }

    /// Leaves appended so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash; every newly completed subtree whose height is a positive multiple
    /// of [`TILE_HEIGHT`] is added to `stored`. Returns the leaf's index.
    pub fn push(&mut self, leaf: Hash, stored: &mut Vec<TreeNode>) -> u64 {
        let index = self.size;
        let mut hash = leaf;
        let mut height = 0u32;
        while (self.size >> height) & 1 == 1 {
            // A set bit means a complete subtree of this height waits on the left: merge.
            let left = self.nodes.pop().unwrap_or_default();
            hash = node_hash(&left, &hash);
            height += 1;
            if height.is_multiple_of(TILE_HEIGHT) {
                let covered = (self.size + 1) >> height;
                stored.push(TreeNode { level: (height / TILE_HEIGHT) as u8, index: covered - 1, hash });
            }
        }
        self.nodes.push(hash);
        self.size += 1;
        index
    }

    /// The tree's root.
    pub fn root(&self) -> Hash {
        let mut nodes = self.nodes.iter().rev();
        let Some(last) = nodes.next() else { return empty_root() };
        nodes.fold(*last, |right, left| node_hash(left, &right))
    }

    /// The edge hashes, concatenated (what the store keeps next to the size).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.nodes.concat()
    }

    /// Reads the edge of a tree of `size` leaves back from [`Self::to_bytes`].
    pub fn from_bytes(size: u64, bytes: &[u8]) -> Result<Self, FrontierError> {
        let expected = size.count_ones();
        if bytes.len() != expected as usize * 32 {
            return Err(FrontierError { size, expected, found: bytes.len() });
        }
        let nodes = bytes
            .chunks_exact(32)
            .map(|chunk| {
                let mut hash = [0u8; 32];
                hash.copy_from_slice(chunk);
                hash
            })
            .collect();
        Ok(Self { size, nodes })
    }

    /// Bytes this value holds on the heap (at most 64 hashes, whatever the size).
    pub fn heap_bytes(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<Hash>()
    }
}

/// What a proof needs from storage, and the proof once it has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofPlan {
    kind: ProofKind,
    needed: BTreeSet<Subtree>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProofKind {
    Inclusion { index: u64, size: u64 },
    Consistency { old: u64, new: u64 },
    Root { size: u64 },
}

/// A proof could not be finished from the tiles given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tile {level}/{index} is missing or shorter than {needed} hashes")]
pub struct MissingTile {
    pub level: u8,
    pub index: u64,
    pub needed: u64,
}

impl ProofPlan {
    /// The inclusion proof of leaf `index` in the tree of `size` leaves (`size` must not exceed
    /// what is stored).
    pub fn inclusion(index: u64, size: u64) -> Result<Self, TreeError> {
        if index >= size {
            return Err(TreeError::IndexOutOfRange { index, size });
        }
        Ok(Self::planned(ProofKind::Inclusion { index, size }))
    }

    /// The consistency proof between sizes `old` and `new`.
    pub fn consistency(old: u64, new: u64) -> Result<Self, TreeError> {
        if old == 0 || old > new {
            return Err(TreeError::BadConsistencyRange { old, new });
        }
        Ok(Self::planned(ProofKind::Consistency { old, new }))
    }

    /// The root of the tree of `size` leaves.
    pub fn root(size: u64) -> Self {
        Self::planned(ProofKind::Root { size })
    }

    fn planned(kind: ProofKind) -> Self {
        let mut needed = BTreeSet::new();
        // The recursion's shape does not depend on hash values: walk it once to record the
        // complete subtrees it asks for.
        let _ = Self::walk(kind, &mut |subtree| {
            needed.insert(subtree);
            [0; 32]
        });
        Self { kind, needed }
    }

    fn walk(kind: ProofKind, complete: &mut impl FnMut(Subtree) -> Hash) -> Vec<Hash> {
        let mut out = Vec::with_capacity(64);
        match kind {
            ProofKind::Inclusion { index, size } => path(index, 0, size, complete, &mut out),
            ProofKind::Consistency { old, new } if old < new => subproof(old, 0, new, true, complete, &mut out),
            ProofKind::Consistency { .. } => {}
            ProofKind::Root { size: 0 } => out.push(empty_root()),
            ProofKind::Root { size } => out.push(range_hash(0, size, complete)),
        }
        out
    }

    /// The tiles to read, each with how many of its hashes (from its start) are needed.
    pub fn tiles(&self) -> BTreeMap<TileId, u64> {
        let mut tiles = BTreeMap::new();
        for subtree in &self.needed {
            let (tile, _, end) = location(*subtree);
            let wanted = tiles.entry(tile).or_insert(0);
            *wanted = (*wanted).max(end);
        }
        tiles
    }

    /// Finishes the proof from the tiles read: `tile` returns the stored hashes of a tile from
    /// its start (a partial tile may be shorter than [`TILE_WIDTH`]). For [`Self::root`], the
    /// result is the one root hash.
    pub fn finish<'t>(&self, tile: impl Fn(TileId) -> Option<&'t [Hash]>) -> Result<Vec<Hash>, MissingTile> {
        let mut hashes = std::collections::HashMap::with_capacity(self.needed.len());
        for subtree in &self.needed {
            let (id, from, to) = location(*subtree);
            let found = tile(id).and_then(|hashes| hashes.get(from as usize..to as usize)).ok_or(MissingTile {
                level: id.level,
                index: id.index,
                needed: to,
            })?;
            hashes.insert(*subtree, fold(found));
        }
        Ok(Self::walk(self.kind, &mut |subtree| hashes.get(&subtree).copied().unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::tree::MerkleTree;
    use crate::tree::tests::{leaves, reference_root};

    /// A store of tiles as a map, filled the way the writer fills the database.
    struct Stored {
        frontier: Frontier,
        levels: HashMap<u8, Vec<Hash>>,
    }

    impl Stored {
        fn build(all: &[Hash]) -> Self {
            let mut frontier = Frontier::new();
            let mut levels: HashMap<u8, Vec<Hash>> = HashMap::new();
            let mut nodes = Vec::new();
            for leaf in all {
                levels.entry(0).or_default().push(*leaf);
                frontier.push(*leaf, &mut nodes);
                for node in nodes.drain(..) {
                    let level = levels.entry(node.level).or_default();
                    assert_eq!(level.len() as u64, node.index, "stored nodes arrive in order");
                    level.push(node.hash);
                }
            }
            Self { frontier, levels }
        }

        fn prove(&self, plan: &ProofPlan) -> Result<Vec<Hash>, MissingTile> {
            let tiles: HashMap<TileId, Vec<Hash>> = plan
                .tiles()
                .into_iter()
                .map(|(id, wanted)| {
                    let level = self.levels.get(&id.level).cloned().unwrap_or_default();
                    let start = id.start() as usize;
                    let end = (start + wanted as usize).min(level.len());
                    (id, level.get(start..end).unwrap_or_default().to_vec())
                })
                .collect();
            plan.finish(|id| tiles.get(&id).map(Vec::as_slice))
        }
    }

    #[test]
    fn frontier_root_matches_the_reference_at_every_size() {
        let all = leaves(300);
        let mut frontier = Frontier::new();
        let mut sink = Vec::new();
        assert_eq!(frontier.root(), empty_root());
        for (i, leaf) in all.iter().enumerate() {
            assert_eq!(frontier.push(*leaf, &mut sink), i as u64);
            assert_eq!(frontier.root(), reference_root(&all[..=i]), "size {}", i + 1);
            assert_eq!(frontier.nodes.len() as u32, frontier.size.count_ones());
        }
    }

    #[test]
    fn stored_nodes_are_the_complete_subtrees_every_eight_levels() {
        let all = leaves(70_000);
        let stored = Stored::build(&all);
        let level1 = &stored.levels[&1];
        assert_eq!(level1.len(), 70_000 / 256);
        for (i, hash) in level1.iter().enumerate().step_by(37) {
            assert_eq!(*hash, reference_root(&all[i * 256..(i + 1) * 256]), "level 1 node {i}");
        }
        assert_eq!(stored.levels[&2], vec![reference_root(&all[..65_536])]);
    }

    #[test]
    fn proofs_from_tiles_equal_proofs_from_the_whole_tree() {
        let all = leaves(1_500);
        let stored = Stored::build(&all);
        let tree = MerkleTree::from_leaves(all.iter().copied());
        for size in [1u64, 2, 3, 255, 256, 257, 511, 512, 513, 1_000, 1_500] {
            for index in [0, 1, size / 2, size.saturating_sub(2), size - 1].into_iter().filter(|i| *i < size) {
                let plan = ProofPlan::inclusion(index, size).expect("in range");
                assert_eq!(
                    stored.prove(&plan),
                    Ok(tree.inclusion_proof(index, size).expect("proof")),
                    "{index}/{size}"
                );
            }
            for old in [1, size / 3, size.saturating_sub(1), size] {
                let old = old.max(1);
                let plan = ProofPlan::consistency(old, size).expect("in range");
                assert_eq!(stored.prove(&plan), Ok(tree.consistency_proof(old, size).expect("proof")), "{old}->{size}");
            }
            assert_eq!(stored.prove(&ProofPlan::root(size)), Ok(vec![tree.root_at(size).expect("root")]));
        }
        assert_eq!(stored.prove(&ProofPlan::root(0)), Ok(vec![empty_root()]));
        assert_eq!(stored.frontier.root(), tree.root());
    }

    #[test]
    fn a_proof_reads_a_few_tiles_however_large_the_log() {
        let plan = ProofPlan::inclusion(123_456_789, 1 << 40).expect("in range");
        let tiles = plan.tiles();
        // Two tiles per stored level at most: the path's own and the right edge's.
        assert!(tiles.len() <= 2 * 6, "{} tiles: {tiles:?}", tiles.len());
        assert!(tiles.values().all(|wanted| *wanted <= TILE_WIDTH));
    }

    #[test]
    fn a_missing_tile_is_named_not_guessed() {
        let stored = Stored::build(&leaves(600));
        let plan = ProofPlan::inclusion(3, 600).expect("in range");
        let result =
            plan.finish(|id| if id.level == 0 { None } else { stored.levels.get(&id.level).map(Vec::as_slice) });
        assert!(matches!(result, Err(MissingTile { level: 0, .. })), "{result:?}");
    }

    #[test]
    fn a_million_appends_keep_the_frontier_small() {
        let mut frontier = Frontier::new();
        let mut stored = Vec::new();
        let mut written = 0usize;
        for i in 0u64..1_000_000 {
            frontier.push(crate::hash::leaf_hash(&i.to_be_bytes()), &mut stored);
            written += stored.len();
            stored.clear();
        }
        assert_eq!(frontier.size(), 1_000_000);
        assert!(frontier.heap_bytes() <= 64 * 32, "{} bytes", frontier.heap_bytes());
        assert_eq!(written, 1_000_000 / 256 + 1_000_000 / 65_536);
    }

    #[test]
    fn frontier_round_trips_and_refuses_the_wrong_length() {
        let mut frontier = Frontier::new();
        for leaf in leaves(11) {
            frontier.push(leaf, &mut Vec::new());
        }
        let bytes = frontier.to_bytes();
        assert_eq!(Frontier::from_bytes(11, &bytes), Ok(frontier.clone()));
        assert_eq!(Frontier::from_bytes(12, &bytes), Err(FrontierError { size: 12, expected: 2, found: 96 }));
    }
}

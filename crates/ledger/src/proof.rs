//! Verification of inclusion and consistency proofs, following RFC 9162 §2.1.3.2 and §2.1.4.2
//! exactly: a proof that is too long, too short, or for impossible sizes is rejected, never
//! "mostly" accepted.

use crate::hash::{Hash, node_hash};

/// The longest proof any tree with a 64-bit size can need.
pub const MAX_PROOF_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("tree size 0 has no entries to prove")]
    EmptyTree,
    #[error("leaf index {index} is not below tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("old size {old} is larger than new size {new}")]
    SizesOutOfOrder { old: u64, new: u64 },
    #[error("proof has {len} hashes; no proof is longer than {MAX_PROOF_LEN}")]
    TooLong { len: usize },
    #[error("proof has the wrong number of hashes for these sizes")]
    WrongLength,
    #[error("proof does not lead to the expected root hash")]
    RootMismatch,
    #[error("a consistency proof between equal sizes must be empty and the roots equal")]
    EqualSizesMismatch,
}

fn shift_while_even(fn_: &mut u64, sn: &mut u64) {
    while *fn_ & 1 == 0 && *fn_ != 0 {
        *fn_ >>= 1;
        *sn >>= 1;
    }
}

/// Checks that `leaf` is at `index` in the tree of `size` leaves with root `root`.
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> Result<(), ProofError> {
    if size == 0 {
        return Err(ProofError::EmptyTree);
    }
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    if proof.len() > MAX_PROOF_LEN {
        return Err(ProofError::TooLong { len: proof.len() });
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return Err(ProofError::WrongLength);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                shift_while_even(&mut fn_, &mut sn);
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::WrongLength);
    }
    if r != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Checks that the tree of `old` leaves with root `old_root` is a prefix of the tree of `new`
/// leaves with root `new_root`.
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old == 0 || new == 0 {
        return Err(ProofError::EmptyTree);
    }
    if old > new {
        return Err(ProofError::SizesOutOfOrder { old, new });
    }
    if proof.len() > MAX_PROOF_LEN {
        return Err(ProofError::TooLong { len: proof.len() });
    }
    if old == new {
        return if proof.is_empty() && old_root == new_root { Ok(()) } else { Err(ProofError::EqualSizesMismatch) };
    }
    if proof.is_empty() {
        return Err(ProofError::WrongLength);
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);

    let (mut fn_, mut sn) = (old - 1, new - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let mut fr = path[0];
    let mut sr = path[0];
    for c in &path[1..] {
        if sn == 0 {
            return Err(ProofError::WrongLength);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fn_ & 1 == 0 {
                shift_while_even(&mut fn_, &mut sn);
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::WrongLength);
    }
    if fr != *old_root || sr != *new_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;
    use crate::tree::MerkleTree;
    use crate::tree::tests::leaves;

    #[test]
    fn every_inclusion_proof_verifies_and_fails_for_other_leaves() {
        let tree = MerkleTree::from_leaves(leaves(40));
        for size in 1..=40 {
            let root = tree.root_at(size).expect("size in range");
            for index in 0..size {
                let leaf = tree.leaf(index).expect("leaf exists");
                let proof = tree.inclusion_proof(index, size).expect("proof");
                assert_eq!(verify_inclusion(&leaf, index, size, &proof, &root), Ok(()), "{index}/{size}");
                if size > 1 {
                    let other = (index + 1) % size;
                    assert!(verify_inclusion(&leaf, other, size, &proof, &root).is_err(), "{index}/{size} at {other}");
                }
            }
        }
    }

    #[test]
    fn every_consistency_proof_verifies() {
        let tree = MerkleTree::from_leaves(leaves(40));
        for new in 1..=40 {
            let new_root = tree.root_at(new).expect("size");
            for old in 1..=new {
                let old_root = tree.root_at(old).expect("size");
                let proof = tree.consistency_proof(old, new).expect("proof");
                assert_eq!(verify_consistency(old, new, &old_root, &new_root, &proof), Ok(()), "{old}->{new}");
            }
        }
    }

    #[test]
    fn malformed_inclusion_proofs_are_rejected() {
        let tree = MerkleTree::from_leaves(leaves(13));
        let root = tree.root();
        let leaf = tree.leaf(6).expect("leaf");
        let proof = tree.inclusion_proof(6, 13).expect("proof");

        let mut too_long = proof.clone();
        too_long.push([7u8; 32]);
        assert_eq!(verify_inclusion(&leaf, 6, 13, &too_long, &root), Err(ProofError::WrongLength));
        assert_eq!(verify_inclusion(&leaf, 6, 13, &proof[..proof.len() - 1], &root), Err(ProofError::WrongLength));
        assert_eq!(verify_inclusion(&leaf, 6, 0, &proof, &root), Err(ProofError::EmptyTree));
        assert_eq!(
            verify_inclusion(&leaf, 13, 13, &proof, &root),
            Err(ProofError::IndexOutOfRange { index: 13, size: 13 })
        );
        // A size whose tree has another shape needs a proof of another length. (Sizes with the same
        // shape compute the same root; the signed checkpoint is what binds size and root.)
        assert_eq!(verify_inclusion(&leaf, 6, 7, &proof, &root), Err(ProofError::WrongLength));
        assert_eq!(verify_inclusion(&leaf, 6, 40, &proof, &root), Err(ProofError::WrongLength));
        assert_eq!(verify_inclusion(&leaf, 6, 13, &vec![[0u8; 32]; 65], &root), Err(ProofError::TooLong { len: 65 }));
        let mut flipped = proof.clone();
        flipped[1][0] ^= 1;
        assert_eq!(verify_inclusion(&leaf, 6, 13, &flipped, &root), Err(ProofError::RootMismatch));
    }

    #[test]
    fn an_inner_node_presented_as_a_leaf_is_rejected() {
        let tree = MerkleTree::from_leaves(leaves(8));
        let root = tree.root();
        // The inner node over leaves 0 and 1, with the real path of that node (siblings above it).
        let (l0, l1) = (tree.leaf(0).expect("leaf"), tree.leaf(1).expect("leaf"));
        let full_path = tree.inclusion_proof(0, 8).expect("proof");
        let node_path = &full_path[1..];
        // Presented as a leaf, its two children's bytes hash with the leaf prefix, not the node
        // prefix, so it cannot reach the root at any index.
        let mut data = Vec::new();
        data.extend_from_slice(&l0);
        data.extend_from_slice(&l1);
        let forged_leaf = leaf_hash(&data);
        for index in 0..8 {
            assert!(verify_inclusion(&forged_leaf, index, 8, node_path, &root).is_err());
            assert!(verify_inclusion(&forged_leaf, index, 4, node_path, &root).is_err());
        }
        // The true node hash does reach the root as a 4-leaf tree's leaf: the forgery is
        // caught only because leaves are hashed differently.
        let node = node_hash(&l0, &l1);
        assert_eq!(verify_inclusion(&node, 0, 4, node_path, &root), Ok(()));
    }

    #[test]
    fn malformed_consistency_proofs_are_rejected() {
        let tree = MerkleTree::from_leaves(leaves(21));
        let (old, new) = (7, 21);
        let old_root = tree.root_at(old).expect("size");
        let new_root = tree.root();
        let proof = tree.consistency_proof(old, new).expect("proof");
        let mut too_long = proof.clone();
        too_long.push([1u8; 32]);
        assert!(verify_consistency(old, new, &old_root, &new_root, &too_long).is_err());
        assert!(verify_consistency(old, new, &old_root, &new_root, &proof[..proof.len() - 1]).is_err());
        assert!(verify_consistency(old, new, &old_root, &new_root, &[]).is_err());
        assert_eq!(verify_consistency(0, new, &old_root, &new_root, &proof), Err(ProofError::EmptyTree));
        assert_eq!(
            verify_consistency(new, old, &old_root, &new_root, &proof),
            Err(ProofError::SizesOutOfOrder { old: 21, new: 7 })
        );
        assert!(verify_consistency(old + 1, new, &old_root, &new_root, &proof).is_err(), "wrong old size");
        assert!(verify_consistency(old, 64, &old_root, &new_root, &proof).is_err(), "wrong new size");
        assert_eq!(verify_consistency(old, old, &old_root, &old_root, &[]), Ok(()));
        assert_eq!(verify_consistency(old, old, &old_root, &new_root, &[]), Err(ProofError::EqualSizesMismatch));
    }

    #[test]
    fn rewritten_history_fails_consistency_with_the_old_root() {
        let honest = leaves(30);
        let tree = MerkleTree::from_leaves(honest.iter().copied());
        let old_root = tree.root_at(10).expect("size");
        // Rewrite from entry 5 on and recompute every hash: the new tree is internally valid.
        let mut rewritten = honest.clone();
        for leaf in rewritten.iter_mut().skip(5) {
            leaf[0] ^= 0xff;
        }
        let forged = MerkleTree::from_leaves(rewritten);
        let proof = forged.consistency_proof(10, 30).expect("proof");
        assert_eq!(verify_consistency(10, 30, &old_root, &forged.root(), &proof), Err(ProofError::RootMismatch));
    }
}

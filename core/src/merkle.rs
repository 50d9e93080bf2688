//! RFC 6962 (Certificate Transparency) Merkle tree hashing and inclusion proofs.

use crate::digest::Digest;

/// MTH of a single leaf: SHA-256(0x00 || data).
pub fn leaf_hash(data: &[u8]) -> Digest {
    Digest::of(&[&[0x00], data])
}

fn node_hash(left: &Digest, right: &Digest) -> Digest {
    Digest::of(&[&[0x01], &left.0, &right.0])
}

/// The Merkle tree hash of already-hashed leaves (RFC 6962 §2.1); SHA-256 of nothing when empty.
pub fn root(leaves: &[Digest]) -> Digest {
    match leaves.len() {
        0 => Digest::of(&[]),
        1 => leaves[0],
        n => {
            let split = largest_power_of_two_below(n);
            node_hash(&root(&leaves[..split]), &root(&leaves[split..]))
        }
    }
}

fn largest_power_of_two_below(n: usize) -> usize {
    debug_assert!(n > 1);
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// The audit path of leaf `index` (RFC 6962 §2.1.1), leaf side first.
pub fn inclusion_proof(leaves: &[Digest], index: usize) -> Vec<Digest> {
    if leaves.len() <= 1 || index >= leaves.len() {
        return Vec::new();
    }
    let split = largest_power_of_two_below(leaves.len());
    if index < split {
        let mut path = inclusion_proof(&leaves[..split], index);
        path.push(root(&leaves[split..]));
        path
    } else {
        let mut path = inclusion_proof(&leaves[split..], index - split);
        path.push(root(&leaves[..split]));
        path
    }
}

/// Checks that `leaf` is at `index` of a tree of `size` leaves with root `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(leaf: &Digest, index: u64, size: u64, proof: &[Digest], root: &Digest) -> bool {
    if index >= size {
        return false;
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut hash = *leaf;
    for sibling in proof {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            hash = node_hash(sibling, &hash);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            hash = node_hash(&hash, sibling);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && hash == *root
}

/// The root and the audit path of every leaf, in one pass: O(n log n) hashes, where asking
/// `inclusion_proof` for each leaf would cost O(n²).
pub fn all_inclusion_proofs(leaves: &[Digest]) -> (Digest, Vec<Vec<Digest>>) {
    match leaves.len() {
        0 => (root(&[]), Vec::new()),
        1 => (leaves[0], vec![Vec::new()]),
        n => {
            let split = largest_power_of_two_below(n);
            let (left_root, mut left) = all_inclusion_proofs(&leaves[..split]);
            let (right_root, mut right) = all_inclusion_proofs(&leaves[split..]);
            for path in &mut left {
                path.push(right_root);
            }
            for path in &mut right {
                path.push(left_root);
            }
            left.append(&mut right);
            (node_hash(&left_root, &right_root), left)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Digest> {
        (0..n).map(|i| leaf_hash(&[u8::try_from(i).expect("small")])).collect()
    }

    #[test]
    fn roots_match_the_rfc_6962_definition() {
        assert_eq!(
            root(&[]).to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let l = leaves(3);
        assert_eq!(root(&l), node_hash(&node_hash(&l[0], &l[1]), &l[2]));
        let l = leaves(5);
        let left = node_hash(&node_hash(&l[0], &l[1]), &node_hash(&l[2], &l[3]));
        assert_eq!(root(&l), node_hash(&left, &l[4]));
    }

    #[test]
    fn every_leaf_of_every_size_has_a_verifying_proof_and_only_there() {
        for size in 1..=33 {
            let l = leaves(size);
            let r = root(&l);
            for index in 0..size {
                let proof = inclusion_proof(&l, index);
                let (i, n) = (index as u64, size as u64);
                assert!(
                    verify_inclusion(&l[index], i, n, &proof, &r),
                    "size {size} index {index}"
                );
                if size > 1 {
                    let other = (index + 1) % size;
                    assert!(!verify_inclusion(&l[other], i, n, &proof, &r), "wrong leaf accepted");
                    assert!(!verify_inclusion(&l[index], (i + 1) % n, n, &proof, &r) || l[index] == l[other]);
                }
            }
        }
    }

    #[test]
    fn all_proofs_at_once_equal_the_proofs_one_by_one() {
        for size in 0..=40 {
            let l = leaves(size);
            let (r, proofs) = all_inclusion_proofs(&l);
            assert_eq!(r, root(&l));
            assert_eq!(proofs.len(), size);
            for (index, proof) in proofs.iter().enumerate() {
                assert_eq!(proof, &inclusion_proof(&l, index), "size {size} index {index}");
            }
        }
    }
}

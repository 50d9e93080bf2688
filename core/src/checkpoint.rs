//! Signed checkpoints of a sealed partition (docs/integrity.md, "Checkpoints").

use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};

use crate::canonical::Canonical;
use crate::digest::{Digest, to_hex};
use crate::merkle;
use crate::sealed::{Checkpoint, TenantHead};

pub const CHECKPOINT_TAG: &[u8] = b"sealtrail/v1/checkpoint\0";
pub const CHECKPOINT_GENESIS_TAG: &[u8] = b"sealtrail/v1/checkpoint-genesis\0";
pub const TENANT_HEAD_TAG: &[u8] = b"sealtrail/v1/tenant-head\0";
pub const EPOCH_LINK_TAG: &[u8] = b"sealtrail/v2/epoch-link\0";
pub const EPOCH_GENESIS_TAG: &[u8] = b"sealtrail/v2/checkpoint-genesis\0";

/// The scheme of the checkpoints made now. Version 2 added the partition layout (`epoch`,
/// `partitions`, `closes_epoch`) to the signed body; version 1 checkpoints still verify.
pub const CHECKPOINT_SCHEME: u32 = 2;

/// The `prev_checkpoint_hash` of a partition's first checkpoint in the first layout epoch.
pub fn genesis(partition: i32) -> Digest {
    Digest::of(&[CHECKPOINT_GENESIS_TAG, partition.to_string().as_bytes()])
}

/// What ties a layout epoch to the one before it: the `checkpoint_hash`es of the previous epoch's
/// final checkpoints, one per partition, in partition order.
pub fn epoch_link(final_checkpoint_hashes: &[Digest]) -> Digest {
    let mut parts: Vec<&[u8]> = vec![EPOCH_LINK_TAG];
    parts.extend(final_checkpoint_hashes.iter().map(|hash| hash.0.as_slice()));
    Digest::of(&parts)
}

/// The `prev_checkpoint_hash` of a partition's first checkpoint in a later epoch: every partition
/// of the new layout starts from the whole previous layout's end.
pub fn epoch_genesis(epoch: u32, partition: i32, link: &Digest) -> Digest {
    let mut c = Canonical::with_capacity(128);
    c.begin_object();
    c.field_int("epoch", i64::from(epoch));
    c.field_str("link", &link.to_hex());
    c.field_int("partition", i64::from(partition));
    c.end_object();
    Digest::of(&[EPOCH_GENESIS_TAG, &c.into_bytes()])
}

/// The `prev_checkpoint_hash` a partition's first checkpoint of `epoch` must have; `link` is the
/// epoch's link to the one before ([`epoch_link`]), which the first epoch does not have.
pub fn first_prev_hash(epoch: u32, partition: i32, link: Option<&Digest>) -> Option<Digest> {
    match (epoch, link) {
        (1, _) => Some(genesis(partition)),
        (_, Some(link)) => Some(epoch_genesis(epoch, partition, link)),
        (_, None) => None,
    }
}

/// The RFC 6962 leaf data of a tenant head: the tag, then the canonical head object.
pub fn tenant_head_leaf(head: &TenantHead) -> Digest {
    let mut c = Canonical::with_capacity(128);
    c.begin_object();
    c.field_str("hash", &head.hash.to_hex());
    c.field_int("seq", i64::try_from(head.seq).unwrap_or(i64::MAX));
    c.field_str("tenant_id", &head.tenant_id);
    c.end_object();
    let mut data = TENANT_HEAD_TAG.to_vec();
    data.extend_from_slice(&c.into_bytes());
    merkle::leaf_hash(&data)
}

/// Root of the tenant heads, which must be sorted by tenant id.
pub fn tenant_heads_root(heads: &[TenantHead]) -> Digest {
    let leaves: Vec<Digest> = heads.iter().map(tenant_head_leaf).collect();
    merkle::root(&leaves)
}

/// Root of the entries since the previous checkpoint: their hashes are the leaf data.
pub fn entries_root(entry_hashes: &[Digest]) -> Digest {
    let leaves: Vec<Digest> = entry_hashes.iter().map(|hash| merkle::leaf_hash(&hash.0)).collect();
    merkle::root(&leaves)
}

/// The bytes that are hashed into `checkpoint_hash` and signed: the tag, then the canonical body
/// (with the layout fields from scheme 2 on).
pub fn signed_bytes(checkpoint: &Checkpoint) -> Vec<u8> {
    let layout = checkpoint.scheme >= 2;
    let mut c = Canonical::with_capacity(512);
    c.begin_object();
    if layout {
        c.field_bool("closes_epoch", checkpoint.closes_epoch);
    }
    c.field_int("created_at", checkpoint.created_at);
    c.field_int("dlq_next_offset", checkpoint.dlq_next_offset);
    c.field_str("entries_root", &checkpoint.entries_root.to_hex());
    c.field_int("entry_count", i64::try_from(checkpoint.entry_count).unwrap_or(i64::MAX));
    if layout {
        c.field_int("epoch", i64::from(checkpoint.epoch));
    }
    c.field_str("key_id", &checkpoint.key_id);
    c.field_int("number", i64::try_from(checkpoint.number).unwrap_or(i64::MAX));
    c.field_int("partition", i64::from(checkpoint.partition));
    if layout {
        c.field_int("partitions", i64::from(checkpoint.partitions));
    }
    c.field_str("prev_checkpoint_hash", &checkpoint.prev_checkpoint_hash.to_hex());
    c.field_int("scheme", i64::from(checkpoint.scheme));
    c.field_int("source_offset", checkpoint.source_offset);
    c.field_int(
        "tenant_count",
        i64::try_from(checkpoint.tenant_count).unwrap_or(i64::MAX),
    );
    c.field_str("tenant_heads_root", &checkpoint.tenant_heads_root.to_hex());
    c.end_object();
    let mut bytes = CHECKPOINT_TAG.to_vec();
    bytes.extend_from_slice(&c.into_bytes());
    bytes
}

/// The id of a public key: the first 16 hex characters of its SHA-256.
pub fn key_id(public_key: &[u8]) -> String {
    Digest::of(&[public_key]).to_hex()[..16].to_owned()
}

/// An Ed25519 key that signs checkpoints.
#[derive(Debug)]
pub struct CheckpointSigner {
    pair: Ed25519KeyPair,
    key_id: String,
}

impl CheckpointSigner {
    /// From a PKCS#8 v2 document, as `ring` generates and `sealtrail up` stores.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, String> {
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|e| format!("not an Ed25519 PKCS#8 key: {e}"))?;
        let key_id = key_id(pair.public_key().as_ref());
        Ok(Self { pair, key_id })
    }

    /// A key from a raw 32-byte Ed25519 seed (for reproducible examples and tests; real keys
    /// come from `generate_pkcs8`).
    pub fn from_seed(seed: &[u8; 32]) -> Result<Self, String> {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed).map_err(|e| format!("not an Ed25519 seed: {e}"))?;
        let key_id = key_id(pair.public_key().as_ref());
        Ok(Self { pair, key_id })
    }

    /// A new random key as a PKCS#8 document.
    pub fn generate_pkcs8() -> Result<Vec<u8>, String> {
        Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
            .map(|doc| doc.as_ref().to_vec())
            .map_err(|e| format!("cannot generate a key: {e}"))
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn public_key(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    /// An Ed25519 signature of `message` (export manifests are signed with the checkpoint key).
    pub fn sign_message(&self, message: &[u8]) -> Vec<u8> {
        self.pair.sign(message).as_ref().to_vec()
    }

    /// Fills `checkpoint_hash`, `key_id` and `signature` of a checkpoint whose other fields are set.
    pub fn sign(&self, checkpoint: &mut Checkpoint) {
        checkpoint.scheme = CHECKPOINT_SCHEME;
        checkpoint.key_id.clone_from(&self.key_id);
        let bytes = signed_bytes(checkpoint);
        checkpoint.checkpoint_hash = Digest::of(&[&bytes]);
        checkpoint.signature = self.sign_message(&bytes);
    }
}

/// A public key trusted to have signed checkpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedKey {
    pub key_id: String,
    pub public_key: Vec<u8>,
}

impl TrustedKey {
    /// Whether `signature` is this key's Ed25519 signature of `message`.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.public_key)
            .verify(message, signature)
            .is_ok()
    }

    pub fn new(public_key: Vec<u8>) -> Self {
        Self {
            key_id: key_id(&public_key),
            public_key,
        }
    }

    /// The text form kept in `<key_id>.pub` files: the raw key in hex.
    pub fn to_text(&self) -> String {
        to_hex(&self.public_key)
    }
}

/// What is wrong with a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointProblem {
    #[error("checkpoint {number} of partition {partition} is signed by key {key_id}, which is not trusted")]
    UnknownKey {
        partition: i32,
        number: u64,
        key_id: String,
    },
    #[error("checkpoint {number} of partition {partition}: the signature does not verify")]
    BadSignature { partition: i32, number: u64 },
    #[error(
        "checkpoint {number} of partition {partition}: checkpoint_hash is {found}, the signed fields hash to {expected}"
    )]
    BadHash {
        partition: i32,
        number: u64,
        expected: Digest,
        found: Digest,
    },
    #[error(
        "checkpoint {number} of partition {partition}: its tenant heads hash to {expected}, the signed root is {found}"
    )]
    HeadsMismatch {
        partition: i32,
        number: u64,
        expected: Digest,
        found: Digest,
    },
    #[error("checkpoint {number} of partition {partition}: scheme {scheme} is not supported")]
    UnsupportedScheme { partition: i32, number: u64, scheme: u32 },
    #[error(
        "checkpoint {number} of partition {partition}: a scheme 1 checkpoint has no layout, yet it claims epoch {epoch} (the layout fields are not signed in scheme 1)"
    )]
    UnsignedLayout { partition: i32, number: u64, epoch: u32 },
}

/// Checks the signature and hash of a checkpoint against the trusted keys, and that the tenant
/// heads it carries (if any) are those under its signed root.
pub fn verify_checkpoint(checkpoint: &Checkpoint, trusted: &[TrustedKey]) -> Result<(), CheckpointProblem> {
    let (partition, number) = (checkpoint.partition, checkpoint.number);
    match checkpoint.scheme {
        CHECKPOINT_SCHEME => {}
        1 if checkpoint.epoch == 1 && checkpoint.partitions == 0 && !checkpoint.closes_epoch => {}
        1 => {
            return Err(CheckpointProblem::UnsignedLayout {
                partition,
                number,
                epoch: checkpoint.epoch,
            });
        }
        scheme => {
            return Err(CheckpointProblem::UnsupportedScheme {
                partition,
                number,
                scheme,
            });
        }
    }
    let key = trusted
        .iter()
        .find(|k| k.key_id == checkpoint.key_id)
        .ok_or_else(|| CheckpointProblem::UnknownKey {
            partition,
            number,
            key_id: checkpoint.key_id.clone(),
        })?;
    let bytes = signed_bytes(checkpoint);
    let expected = Digest::of(&[&bytes]);
    if expected != checkpoint.checkpoint_hash {
        return Err(CheckpointProblem::BadHash {
            partition,
            number,
            expected,
            found: checkpoint.checkpoint_hash,
        });
    }
    if !key.verifies(&bytes, &checkpoint.signature) {
        return Err(CheckpointProblem::BadSignature { partition, number });
    }
    if !checkpoint.tenant_heads.is_empty() || checkpoint.tenant_count == 0 {
        let root = tenant_heads_root(&checkpoint.tenant_heads);
        if root != checkpoint.tenant_heads_root {
            return Err(CheckpointProblem::HeadsMismatch {
                partition,
                number,
                expected: root,
                found: checkpoint.tenant_heads_root,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint(heads: Vec<TenantHead>) -> Checkpoint {
        Checkpoint {
            scheme: CHECKPOINT_SCHEME,
            partition: 2,
            number: 1,
            prev_checkpoint_hash: genesis(2),
            entries_root: entries_root(&[Digest::of(&[b"e1"]), Digest::of(&[b"e2"])]),
            entry_count: 2,
            tenant_heads_root: tenant_heads_root(&heads),
            tenant_count: heads.len() as u64,
            source_offset: 41,
            dlq_next_offset: 0,
            created_at: 1_763_856_000_000,
            epoch: 1,
            partitions: 4,
            closes_epoch: false,
            key_id: String::new(),
            checkpoint_hash: Digest::default(),
            signature: Vec::new(),
            tenant_heads: heads,
        }
    }

    #[test]
    fn a_signed_checkpoint_verifies_and_any_change_breaks_it() {
        let key = CheckpointSigner::from_pkcs8(&CheckpointSigner::generate_pkcs8().expect("key")).expect("signer");
        let trusted = [TrustedKey::new(key.public_key().to_vec())];
        let heads = vec![TenantHead {
            tenant_id: "acme".into(),
            seq: 2,
            hash: Digest::of(&[b"h"]),
        }];
        let mut signed = checkpoint(heads);
        key.sign(&mut signed);
        assert_eq!(verify_checkpoint(&signed, &trusted), Ok(()));

        let mut altered = signed.clone();
        altered.source_offset += 1;
        assert!(matches!(
            verify_checkpoint(&altered, &trusted),
            Err(CheckpointProblem::BadHash { .. })
        ));
        for change in [
            |c: &mut Checkpoint| c.epoch = 2,
            |c: &mut Checkpoint| c.partitions = 8,
            |c: &mut Checkpoint| c.closes_epoch = true,
        ] {
            let mut relaid = signed.clone();
            change(&mut relaid);
            assert!(
                matches!(
                    verify_checkpoint(&relaid, &trusted),
                    Err(CheckpointProblem::BadHash { .. })
                ),
                "the layout fields are signed"
            );
        }
        let mut forged_heads = signed.clone();
        forged_heads.tenant_heads[0].seq = 3;
        assert!(matches!(
            verify_checkpoint(&forged_heads, &trusted),
            Err(CheckpointProblem::HeadsMismatch { .. })
        ));
        let stranger = CheckpointSigner::from_pkcs8(&CheckpointSigner::generate_pkcs8().expect("key")).expect("signer");
        assert!(matches!(
            verify_checkpoint(&signed, &[TrustedKey::new(stranger.public_key().to_vec())]),
            Err(CheckpointProblem::UnknownKey { .. })
        ));
        let mut bad_signature = signed.clone();
        bad_signature.signature[0] ^= 1;
        assert!(matches!(
            verify_checkpoint(&bad_signature, &trusted),
            Err(CheckpointProblem::BadSignature { .. })
        ));
    }
}

//! Witness cosigning of checkpoints (docs/integrity.md, "Witnesses"), after the C2SP signed-note,
//! tlog-checkpoint and tlog-cosignature specifications.
//!
//! A witness holds its own Ed25519 key and, per partition chain ("origin"), the checkpoints it
//! has cosigned. It cosigns a checkpoint only if a trusted log key signed it and it extends the
//! last one cosigned (next number, linked hash), or is one it cosigned before; anything else is a
//! fork, a gap or a replay, refused. A cosignature is a signed-note signature line over
//! `cosignature/v1\ntime <t>\n` followed by the checkpoint's note body.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::checkpoint::{self, TrustedKey, verify_checkpoint};
use crate::digest::{Digest, from_hex, to_hex};
use crate::sealed::Checkpoint;

/// The signature type byte of a `cosignature/v1` key (C2SP tlog-cosignature).
const COSIGNATURE_V1: u8 = 0x04;
const COSIGNATURE_HEADER: &str = "cosignature/v1";
/// The em dash that starts a signed note's signature line.
const SIGNATURE_LINE_PREFIX: &str = "\u{2014} ";

/// The origin line of a partition chain's checkpoints: the log's name, then the layout epoch and
/// partition the checkpoint signs.
pub fn origin(log_origin: &str, checkpoint: &Checkpoint) -> String {
    format!(
        "{log_origin}/epoch-{}/partition-{}",
        checkpoint.epoch, checkpoint.partition
    )
}

/// The checkpoint's note body (C2SP tlog-checkpoint): origin, "tree size" (the checkpoint's
/// number) and "root hash" (its `checkpoint_hash`, base64), each on its own line.
pub fn note_body(origin: &str, number: u64, checkpoint_hash: &Digest) -> String {
    format!("{origin}\n{number}\n{}\n", STANDARD.encode(checkpoint_hash.0))
}

/// What a cosignature signs.
pub fn cosigned_message(timestamp: u64, body: &str) -> Vec<u8> {
    format!("{COSIGNATURE_HEADER}\ntime {timestamp}\n{body}").into_bytes()
}

/// The 4-byte key hash of a `cosignature/v1` key: SHA-256(name || "\n" || 0x04 || key).
pub fn key_hash(name: &str, public_key: &[u8]) -> [u8; 4] {
    let digest = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update(b"\n")
        .chain_update([COSIGNATURE_V1])
        .chain_update(public_key)
        .finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// Why a witness key or cosignature line cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WitnessKeyError {
    #[error("a witness name must be non-empty, without spaces or '+'")]
    BadName,
    #[error("not a cosignature/v1 verifier key (name+hash+base64 of 0x04 and a 32-byte Ed25519 key): {0}")]
    BadVerifierKey(&'static str),
    #[error("not an Ed25519 PKCS#8 key: {0}")]
    BadPrivateKey(String),
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(|c: char| c.is_whitespace() || c == '+')
}

/// A witness's public key, as its verifier key string `name+hash+base64(0x04 || key)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessKey {
    pub name: String,
    pub public_key: Vec<u8>,
}

impl WitnessKey {
    pub fn parse(vkey: &str) -> Result<Self, WitnessKeyError> {
        // The base64 key may itself hold '+': only the first two separate.
        let mut parts = vkey.trim().splitn(3, '+');
        let (Some(name), Some(hash), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(WitnessKeyError::BadVerifierKey("three '+'-separated parts"));
        };
        if !valid_name(name) {
            return Err(WitnessKeyError::BadName);
        }
        let bytes = STANDARD
            .decode(key)
            .map_err(|_| WitnessKeyError::BadVerifierKey("the key is not base64"))?;
        let (Some(&COSIGNATURE_V1), Some(public_key)) = (bytes.first(), bytes.get(1..)) else {
            return Err(WitnessKeyError::BadVerifierKey("the key type is not 0x04"));
        };
        if public_key.len() != 32 {
            return Err(WitnessKeyError::BadVerifierKey("the key is not 32 bytes"));
        }
        if hash != to_hex(&key_hash(name, public_key)) {
            return Err(WitnessKeyError::BadVerifierKey("the key hash does not match"));
        }
        Ok(Self {
            name: name.to_owned(),
            public_key: public_key.to_vec(),
        })
    }

    pub fn to_vkey(&self) -> String {
        let mut typed = vec![COSIGNATURE_V1];
        typed.extend_from_slice(&self.public_key);
        format!(
            "{}+{}+{}",
            self.name,
            to_hex(&key_hash(&self.name, &self.public_key)),
            STANDARD.encode(typed)
        )
    }

    /// The timestamp of `line` if it is this witness's valid cosignature of `body`.
    pub fn verify(&self, line: &str, body: &str) -> Option<u64> {
        let rest = line.trim_end_matches('\n').strip_prefix(SIGNATURE_LINE_PREFIX)?;
        let (name, encoded) = rest.split_once(' ')?;
        if name != self.name {
            return None;
        }
        let bytes = STANDARD.decode(encoded).ok()?;
        if bytes.len() != 4 + 8 + 64 || bytes[..4] != key_hash(&self.name, &self.public_key) {
            return None;
        }
        let timestamp = u64::from_be_bytes(bytes[4..12].try_into().ok()?);
        UnparsedPublicKey::new(&ED25519, &self.public_key)
            .verify(&cosigned_message(timestamp, body), &bytes[12..])
            .ok()?;
        Some(timestamp)
    }
}

/// A witness's signing key.
#[derive(Debug)]
pub struct WitnessSigner {
    name: String,
    pair: Ed25519KeyPair,
}

impl WitnessSigner {
    pub fn from_pkcs8(name: &str, pkcs8: &[u8]) -> Result<Self, WitnessKeyError> {
        if !valid_name(name) {
            return Err(WitnessKeyError::BadName);
        }
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|e| WitnessKeyError::BadPrivateKey(e.to_string()))?;
        Ok(Self {
            name: name.to_owned(),
            pair,
        })
    }

    /// A key from a raw 32-byte Ed25519 seed (for reproducible examples; real keys come from
    /// PKCS#8 documents made at random).
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self, WitnessKeyError> {
        if !valid_name(name) {
            return Err(WitnessKeyError::BadName);
        }
        let pair =
            Ed25519KeyPair::from_seed_unchecked(seed).map_err(|e| WitnessKeyError::BadPrivateKey(e.to_string()))?;
        Ok(Self {
            name: name.to_owned(),
            pair,
        })
    }

    pub fn key(&self) -> WitnessKey {
        WitnessKey {
            name: self.name.clone(),
            public_key: self.pair.public_key().as_ref().to_vec(),
        }
    }

    /// The cosignature line (ending with a newline) of `body` at `timestamp` (Unix seconds).
    pub fn cosign(&self, body: &str, timestamp: u64) -> String {
        let signature = self.pair.sign(&cosigned_message(timestamp, body));
        let mut bytes = key_hash(&self.name, self.pair.public_key().as_ref()).to_vec();
        bytes.extend_from_slice(&timestamp.to_be_bytes());
        bytes.extend_from_slice(signature.as_ref());
        format!("{SIGNATURE_LINE_PREFIX}{} {}\n", self.name, STANDARD.encode(bytes))
    }
}

/// A checkpoint as sent to a witness: every signed field, its hash and signature (hex), without
/// tenant heads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmittedCheckpoint {
    pub scheme: u32,
    pub partition: i32,
    pub number: u64,
    pub prev_checkpoint_hash: String,
    pub entries_root: String,
    pub entry_count: u64,
    pub tenant_heads_root: String,
    pub tenant_count: u64,
    pub source_offset: i64,
    pub dlq_next_offset: i64,
    pub created_at: i64,
    pub epoch: u32,
    pub partitions: u32,
    pub closes_epoch: bool,
    pub key_id: String,
    pub checkpoint_hash: String,
    pub signature: String,
}

impl From<&Checkpoint> for SubmittedCheckpoint {
    fn from(c: &Checkpoint) -> Self {
        Self {
            scheme: c.scheme,
            partition: c.partition,
            number: c.number,
            prev_checkpoint_hash: c.prev_checkpoint_hash.to_hex(),
            entries_root: c.entries_root.to_hex(),
            entry_count: c.entry_count,
            tenant_heads_root: c.tenant_heads_root.to_hex(),
            tenant_count: c.tenant_count,
            source_offset: c.source_offset,
            dlq_next_offset: c.dlq_next_offset,
            created_at: c.created_at,
            epoch: c.epoch,
            partitions: c.partitions,
            closes_epoch: c.closes_epoch,
            key_id: c.key_id.clone(),
            checkpoint_hash: c.checkpoint_hash.to_hex(),
            signature: to_hex(&c.signature),
        }
    }
}

impl SubmittedCheckpoint {
    pub fn to_checkpoint(&self) -> Result<Checkpoint, String> {
        let digest = |text: &str, what: &str| Digest::from_hex(text).ok_or_else(|| format!("{what} is not hex"));
        Ok(Checkpoint {
            scheme: self.scheme,
            partition: self.partition,
            number: self.number,
            prev_checkpoint_hash: digest(&self.prev_checkpoint_hash, "prev_checkpoint_hash")?,
            entries_root: digest(&self.entries_root, "entries_root")?,
            entry_count: self.entry_count,
            tenant_heads_root: digest(&self.tenant_heads_root, "tenant_heads_root")?,
            tenant_count: self.tenant_count,
            source_offset: self.source_offset,
            dlq_next_offset: self.dlq_next_offset,
            created_at: self.created_at,
            epoch: self.epoch,
            partitions: self.partitions,
            closes_epoch: self.closes_epoch,
            key_id: self.key_id.clone(),
            checkpoint_hash: digest(&self.checkpoint_hash, "checkpoint_hash")?,
            signature: from_hex(&self.signature).ok_or("signature is not hex")?,
            tenant_heads: Vec::new(),
        })
    }
}

/// Why a witness refuses a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No trusted log key signed it (or its hash is not its signed fields').
    Untrusted(String),
    /// The witness cosigned another checkpoint with this number, or the one before it is not
    /// the one this links to: two histories exist.
    Fork,
    /// It is further on than the next number: the checkpoints between must come first.
    Gap,
    /// It is older than the first checkpoint the witness saw of the origin: it cannot judge it.
    Before,
}

impl Refusal {
    pub fn label(&self) -> &'static str {
        match self {
            Self::Untrusted(_) => "untrusted",
            Self::Fork => "fork",
            Self::Gap => "gap",
            Self::Before => "before",
        }
    }
}

/// What a witness remembers of one origin: the hash it cosigned at each number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginHistory {
    cosigned: BTreeMap<u64, Digest>,
}

impl OriginHistory {
    /// The newest checkpoint cosigned: its number and hash.
    pub fn latest(&self) -> Option<(u64, Digest)> {
        self.cosigned.last_key_value().map(|(n, h)| (*n, *h))
    }

    /// Records a checkpoint cosigned (when the history is loaded, or after [`Self::decide`]).
    pub fn record(&mut self, number: u64, hash: Digest) {
        self.cosigned.insert(number, hash);
    }

    /// Whether to cosign `checkpoint`: `Ok(true)` for a new one (record it before answering),
    /// `Ok(false)` for one cosigned before (cosign again), or why not.
    pub fn decide(&self, checkpoint: &Checkpoint, trusted: &[TrustedKey]) -> Result<bool, Refusal> {
        verify_checkpoint(checkpoint, trusted).map_err(|problem| Refusal::Untrusted(problem.to_string()))?;
        let (number, hash) = (checkpoint.number, checkpoint.checkpoint_hash);
        if let Some(known) = self.cosigned.get(&number) {
            return if *known == hash { Ok(false) } else { Err(Refusal::Fork) };
        }
        let Some((latest, latest_hash)) = self.latest() else {
            // The first checkpoint this witness sees of the origin is taken on trust; the chain's
            // very first must still start from its genesis.
            if number == 1
                && checkpoint.epoch == 1
                && checkpoint.prev_checkpoint_hash != checkpoint::genesis(checkpoint.partition)
            {
                return Err(Refusal::Fork);
            }
            return Ok(true);
        };
        if self
            .cosigned
            .first_key_value()
            .is_some_and(|(first, _)| number < *first)
        {
            return Err(Refusal::Before);
        }
        if number < latest {
            // Between the first and the newest, yet never cosigned: the history is not this one.
            return Err(Refusal::Fork);
        }
        if number > latest + 1 {
            return Err(Refusal::Gap);
        }
        if checkpoint.prev_checkpoint_hash != latest_hash {
            return Err(Refusal::Fork);
        }
        Ok(true)
    }
}

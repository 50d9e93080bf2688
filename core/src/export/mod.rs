//! Signed eDiscovery exports: the artifact's format and the checks an offline verifier makes
//! (docs/integrity.md, "Exports").
//!
//! An export is a directory: `events-NNNNN.ndjson.gz` files of [`ExportLine`]s in sequence
//! order, `manifest.json`, and `manifest.sig` (hex Ed25519 over `MANIFEST_TAG || manifest bytes`).
//! Each line carries the event's canonical entry verbatim, so its hash is checked without
//! re-encoding anything, and the audit path of its hash to the signed checkpoint covering it.
//! Events of the range that are not exported (outside a filtered scope, or purged by a retention
//! policy) are witness lines: their sequence and hashes only, so the chain still links through.

mod check;
mod write;

pub use check::LineChecker;
pub use write::{LineBody, LineOut, ProofOut};

use serde::{Deserialize, Serialize};

use crate::checkpoint::{TrustedKey, tenant_head_leaf, verify_checkpoint};
use crate::digest::{Digest, from_hex};
use crate::merkle;
use crate::sealed::{Checkpoint, TenantHead};
use crate::witness::{WitnessKey, note_body};

pub const FORMAT: &str = "sealtrail-export/4";
/// Checkpoints without witness cosignatures; still verified.
pub const FORMAT_V3: &str = "sealtrail-export/3";
/// Lines without `layout_epoch` (all of the first layout epoch); still verified.
pub const FORMAT_V2: &str = "sealtrail-export/2";
/// The first format, without witness lines; still verified.
pub const FORMAT_V1: &str = "sealtrail-export/1";
pub const MANIFEST_TAG: &[u8] = b"sealtrail/v1/export-manifest\0";
pub const MANIFEST_FILE: &str = "manifest.json";
pub const SIGNATURE_FILE: &str = "manifest.sig";

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub export_id: String,
    pub tenant_id: String,
    /// What was asked for, as given (time window and filters).
    pub scope: serde_json::Value,
    pub created_at: i64,
    /// The key that signed the manifest (and, for this export, the checkpoints).
    pub key_id: String,
    /// Events exported with their entries.
    pub event_count: u64,
    /// Witness lines: events of the range not exported (see [`ExportLine::omitted`]).
    #[serde(default)]
    pub omitted_count: u64,
    /// Events at the end of the range not yet covered by a signed checkpoint.
    pub unsigned_tail: u64,
    pub files: Vec<ManifestFile>,
    pub chain: Option<ChainRange>,
    pub checkpoints: Vec<ManifestCheckpoint>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    pub name: String,
    /// SHA-256 of the file's bytes as stored (compressed), hex.
    pub sha256: String,
    pub bytes: u64,
    pub events: u64,
}

/// The stretch of the tenant's chain the export holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainRange {
    pub first_seq: u64,
    pub first_prev_hash: String,
    pub last_seq: u64,
    pub last_hash: String,
}

/// A covering checkpoint: its signed fields, and the tenant's head in it with its audit path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestCheckpoint {
    pub partition: i32,
    pub number: u64,
    pub scheme: u32,
    pub prev_checkpoint_hash: String,
    pub entries_root: String,
    pub entry_count: u64,
    pub tenant_heads_root: String,
    pub tenant_count: u64,
    pub source_offset: i64,
    pub dlq_next_offset: i64,
    pub created_at: i64,
    /// The layout fields of a scheme 2 checkpoint (absent from scheme 1 ones).
    #[serde(default = "first_epoch")]
    pub epoch: u32,
    #[serde(default)]
    pub partitions: u32,
    #[serde(default)]
    pub closes_epoch: bool,
    pub key_id: String,
    pub checkpoint_hash: String,
    pub signature: String,
    pub tenant_head: HeadProof,
    /// Witness cosignatures of the checkpoint (format 4; docs/integrity.md, "Witnesses").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cosignatures: Vec<ManifestCosignature>,
}

/// A witness's cosignature of a checkpoint: the note origin it signed, and its signature line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestCosignature {
    pub witness: String,
    pub origin: String,
    pub line: String,
}

fn first_epoch() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadProof {
    pub seq: u64,
    pub hash: String,
    pub leaf_index: u64,
    pub tree_size: u64,
    pub audit_path: Vec<String>,
}

/// One line of an events file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportLine {
    pub seq: u64,
    pub prev_hash: String,
    pub hash: String,
    /// The partition layout epoch of `sealed_partition` (format 3; 1 before).
    #[serde(default = "first_epoch")]
    pub layout_epoch: u32,
    pub sealed_partition: u32,
    pub sealed_offset: u64,
    /// The canonical entry (RFC 8785 JSON), exactly the bytes that were hashed, embedded as JSON
    /// (format 1 embedded it as a JSON string); absent on a witness line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<Box<serde_json::value::RawValue>>,
    /// Why a witness line has no entry: `out_of_scope` (the export's filter left it out) or
    /// `purged:<policy id>` (a retention policy deleted it; only its tombstone remains).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub omitted: Option<String>,
    /// `None` for the unsigned tail.
    pub proof: Option<EntryProof>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryProof {
    /// The covering checkpoint's number (in the event's partition).
    pub checkpoint: u64,
    pub leaf_index: u64,
    pub tree_size: u64,
    pub audit_path: Vec<String>,
}

/// What is wrong with an export, named precisely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportProblem {
    #[error("manifest.sig is not a valid signature of manifest.json by a trusted key ({0})")]
    BadSignature(String),
    #[error("manifest.json is not a sealtrail export manifest: {0}")]
    BadManifest(String),
    #[error("checkpoint {number} in the manifest does not verify: {reason}")]
    BadCheckpoint { number: u64, reason: String },
    #[error("file {name}: {reason}")]
    BadFile { name: String, reason: String },
    #[error("{file} line {line} (seq {seq}): {reason}")]
    BadLine {
        file: String,
        line: u64,
        seq: u64,
        reason: String,
    },
    #[error(
        "checkpoint {number} of partition {partition} carries no valid cosignature of witness {witness}: the witness never saw it (a fork, or a checkpoint not yet witnessed)"
    )]
    NotWitnessed {
        number: u64,
        partition: i32,
        witness: String,
    },
    #[error("the files end at {found} events; the manifest says {expected}")]
    Incomplete { expected: String, found: String },
}

/// The bytes the manifest signature covers.
pub fn signed_manifest_bytes(manifest_json: &[u8]) -> Vec<u8> {
    [MANIFEST_TAG, manifest_json].concat()
}

fn digest(text: &str, what: &str) -> Result<Digest, String> {
    Digest::from_hex(text).ok_or_else(|| format!("{what} is not a SHA-256 hex digest"))
}

fn path(hexes: &[String]) -> Result<Vec<Digest>, String> {
    hexes.iter().map(|h| digest(h, "an audit path entry")).collect()
}

/// Checks the signature, then each checkpoint (signature, hash, and the tenant's head in it).
pub fn check_manifest(
    manifest_json: &[u8],
    signature_hex: &str,
    trusted: &[TrustedKey],
) -> Result<Manifest, ExportProblem> {
    let signature = from_hex(signature_hex.trim()).ok_or_else(|| ExportProblem::BadSignature("not hex".to_owned()))?;
    let message = signed_manifest_bytes(manifest_json);
    let signer = trusted
        .iter()
        .find(|key| key.verifies(&message, &signature))
        .ok_or_else(|| ExportProblem::BadSignature("no trusted key verifies it".to_owned()))?;
    let manifest: Manifest =
        serde_json::from_slice(manifest_json).map_err(|e| ExportProblem::BadManifest(e.to_string()))?;
    // The key the manifest names must be the one that signed it (docs/integrity.md): another
    // trusted key's signature does not stand for it.
    if signer.key_id != manifest.key_id {
        return Err(ExportProblem::BadSignature(format!(
            "it is signed by the trusted key `{}`, but the manifest names `{}`",
            signer.key_id, manifest.key_id
        )));
    }
    if ![FORMAT, FORMAT_V3, FORMAT_V2, FORMAT_V1].contains(&manifest.format.as_str()) {
        return Err(ExportProblem::BadManifest(format!(
            "format `{}`, expected `{FORMAT}`, `{FORMAT_V3}`, `{FORMAT_V2}` or `{FORMAT_V1}`",
            manifest.format
        )));
    }
    for entry in &manifest.checkpoints {
        check_checkpoint(&manifest.tenant_id, entry, trusted).map_err(|reason| ExportProblem::BadCheckpoint {
            number: entry.number,
            reason,
        })?;
    }
    Ok(manifest)
}

/// Requires every checkpoint of the manifest to carry a valid cosignature of each witness: over
/// the checkpoint's note body, with an origin naming its epoch and partition.
pub fn check_cosignatures(manifest: &Manifest, witnesses: &[WitnessKey]) -> Result<(), ExportProblem> {
    for checkpoint in &manifest.checkpoints {
        let hash =
            digest(&checkpoint.checkpoint_hash, "checkpoint_hash").map_err(|reason| ExportProblem::BadCheckpoint {
                number: checkpoint.number,
                reason,
            })?;
        let suffix = format!("/epoch-{}/partition-{}", checkpoint.epoch, checkpoint.partition);
        for witness in witnesses {
            let cosigned = checkpoint.cosignatures.iter().any(|c| {
                c.origin.ends_with(&suffix)
                    && witness
                        .verify(&c.line, &note_body(&c.origin, checkpoint.number, &hash))
                        .is_some()
            });
            if !cosigned {
                return Err(ExportProblem::NotWitnessed {
                    number: checkpoint.number,
                    partition: checkpoint.partition,
                    witness: witness.name.clone(),
                });
            }
        }
    }
    Ok(())
}

fn check_checkpoint(tenant_id: &str, entry: &ManifestCheckpoint, trusted: &[TrustedKey]) -> Result<(), String> {
    let checkpoint = Checkpoint {
        scheme: entry.scheme,
        partition: entry.partition,
        number: entry.number,
        prev_checkpoint_hash: digest(&entry.prev_checkpoint_hash, "prev_checkpoint_hash")?,
        entries_root: digest(&entry.entries_root, "entries_root")?,
        entry_count: entry.entry_count,
        tenant_heads_root: digest(&entry.tenant_heads_root, "tenant_heads_root")?,
        tenant_count: entry.tenant_count,
        source_offset: entry.source_offset,
        dlq_next_offset: entry.dlq_next_offset,
        created_at: entry.created_at,
        epoch: entry.epoch,
        partitions: entry.partitions,
        closes_epoch: entry.closes_epoch,
        key_id: entry.key_id.clone(),
        checkpoint_hash: digest(&entry.checkpoint_hash, "checkpoint_hash")?,
        signature: from_hex(&entry.signature).ok_or("signature is not hex")?,
        tenant_heads: Vec::new(),
    };
    verify_checkpoint(&checkpoint, trusted).map_err(|e| e.to_string())?;
    let head = &entry.tenant_head;
    let leaf = tenant_head_leaf(&TenantHead {
        tenant_id: tenant_id.to_owned(),
        seq: head.seq,
        hash: digest(&head.hash, "the tenant head hash")?,
    });
    if head.tree_size != entry.tenant_count
        || !merkle::verify_inclusion(
            &leaf,
            head.leaf_index,
            head.tree_size,
            &path(&head.audit_path)?,
            &checkpoint.tenant_heads_root,
        )
    {
        return Err("the tenant's head is not in its signed tenant heads root".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests;

//! Signed eDiscovery exports: the artifact's format and the checks an offline verifier makes
//! (docs/integrity.md, "Exports").
//!
//! An export is a directory: `events-NNNNN.ndjson.gz` files of [`ExportLine`]s in sequence
//! order, `manifest.json`, and `manifest.sig` (hex Ed25519 over `MANIFEST_TAG || manifest bytes`).
//! Each line carries the event's canonical entry verbatim, so its hash is checked without
//! re-encoding anything, and the audit path of its hash to the signed checkpoint covering it.
//! Events of the range that are not exported (outside a filtered scope, or purged by a retention
//! policy) are witness lines: their sequence and hashes only, so the chain still links through.

use serde::{Deserialize, Serialize};

use crate::chain;
use crate::checkpoint::{TrustedKey, tenant_head_leaf, verify_checkpoint};
use crate::digest::{Digest, from_hex};
use crate::merkle;
use crate::sealed::{Checkpoint, TenantHead};

pub const FORMAT: &str = "sealtrail-export/3";
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
    if !trusted.iter().any(|key| key.verifies(&message, &signature)) {
        return Err(ExportProblem::BadSignature("no trusted key verifies it".to_owned()));
    }
    let manifest: Manifest =
        serde_json::from_slice(manifest_json).map_err(|e| ExportProblem::BadManifest(e.to_string()))?;
    if ![FORMAT, FORMAT_V2, FORMAT_V1].contains(&manifest.format.as_str()) {
        return Err(ExportProblem::BadManifest(format!(
            "format `{}`, expected `{FORMAT}`, `{FORMAT_V2}` or `{FORMAT_V1}`",
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

/// The exact bytes of an entry: embedded as JSON (format 2) or as a JSON string (format 1).
fn entry_text(raw: &serde_json::value::RawValue) -> Result<std::borrow::Cow<'_, str>, String> {
    let text = raw.get();
    if text.starts_with('"') {
        serde_json::from_str::<String>(text)
            .map(std::borrow::Cow::Owned)
            .map_err(|e| format!("the entry is not a string: {e}"))
    } else {
        Ok(std::borrow::Cow::Borrowed(text))
    }
}

/// A line to write, borrowing its parts: written by hand, so the entry goes in verbatim and the
/// hashes are hex-encoded straight into the output.
#[derive(Debug, Clone, Copy)]
pub struct LineOut<'a> {
    pub seq: u64,
    pub prev_hash: &'a str,
    pub hash: &'a str,
    pub layout_epoch: u32,
    pub sealed_partition: u32,
    pub sealed_offset: u64,
    pub body: LineBody<'a>,
    pub proof: Option<ProofOut<'a>>,
}

#[derive(Debug, Clone, Copy)]
pub enum LineBody<'a> {
    /// The canonical entry's bytes (a JSON object).
    Entry(&'a [u8]),
    /// A witness line's reason.
    Omitted(&'a str),
}

#[derive(Debug, Clone, Copy)]
pub struct ProofOut<'a> {
    pub checkpoint: u64,
    pub leaf_index: u64,
    pub tree_size: u64,
    pub audit_path: &'a [Digest],
}

impl LineOut<'_> {
    /// Appends the line's JSON (without the newline) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let string = |out: &mut Vec<u8>, text: &str| {
            serde_json::to_writer(&mut *out, text).expect("writing a string to a Vec cannot fail");
        };
        out.extend_from_slice(format!("{{\"seq\":{},\"prev_hash\":", self.seq).as_bytes());
        string(out, self.prev_hash);
        out.extend_from_slice(b",\"hash\":");
        string(out, self.hash);
        out.extend_from_slice(
            format!(
                ",\"layout_epoch\":{},\"sealed_partition\":{},\"sealed_offset\":{},",
                self.layout_epoch, self.sealed_partition, self.sealed_offset
            )
            .as_bytes(),
        );
        match self.body {
            LineBody::Entry(entry) => {
                out.extend_from_slice(b"\"entry\":");
                out.extend_from_slice(entry);
            }
            LineBody::Omitted(reason) => {
                out.extend_from_slice(b"\"omitted\":");
                string(out, reason);
            }
        }
        match &self.proof {
            None => out.extend_from_slice(b",\"proof\":null}"),
            Some(proof) => {
                out.extend_from_slice(
                    format!(
                        ",\"proof\":{{\"checkpoint\":{},\"leaf_index\":{},\"tree_size\":{},\"audit_path\":[",
                        proof.checkpoint, proof.leaf_index, proof.tree_size
                    )
                    .as_bytes(),
                );
                for (index, digest) in proof.audit_path.iter().enumerate() {
                    if index > 0 {
                        out.push(b',');
                    }
                    out.push(b'"');
                    crate::digest::push_hex(&digest.0, out);
                    out.push(b'"');
                }
                out.extend_from_slice(b"]}}");
            }
        }
    }
}

/// The fields of an entry that say whose and which it is.
#[derive(Deserialize)]
struct EntryNames {
    seq: u64,
    tenant_id: String,
}

/// Checks the lines of the events files in order: each hash, each link, each proof, and that
/// every signed head of the tenant inside the range is the chain's hash at that sequence.
#[derive(Debug)]
pub struct LineChecker<'m> {
    manifest: &'m Manifest,
    previous: Option<(u64, Digest)>,
    count: u64,
    omitted: u64,
    covered_tail_started: bool,
}

impl<'m> LineChecker<'m> {
    pub fn new(manifest: &'m Manifest) -> Self {
        Self {
            manifest,
            previous: None,
            count: 0,
            omitted: 0,
            covered_tail_started: false,
        }
    }

    /// Checks the next line (`file`, 1-based `line` only name it in errors).
    pub fn check(&mut self, file: &str, line: u64, text: &str) -> Result<(), ExportProblem> {
        let parsed: ExportLine = serde_json::from_str(text).map_err(|e| ExportProblem::BadLine {
            file: file.to_owned(),
            line,
            seq: 0,
            reason: format!("not an export line: {e}"),
        })?;
        let fail = |reason: String| ExportProblem::BadLine {
            file: file.to_owned(),
            line,
            seq: parsed.seq,
            reason,
        };
        let prev_hash = digest(&parsed.prev_hash, "prev_hash").map_err(fail)?;
        let hash = digest(&parsed.hash, "hash").map_err(fail)?;
        match self.previous {
            None => {
                let range = self
                    .manifest
                    .chain
                    .as_ref()
                    .ok_or_else(|| fail("the manifest has no chain range".to_owned()))?;
                if parsed.seq != range.first_seq || parsed.prev_hash != range.first_prev_hash {
                    return Err(fail(format!(
                        "the first event is not the signed start of the range (seq {}, prev_hash {})",
                        range.first_seq, range.first_prev_hash
                    )));
                }
            }
            Some((seq, previous_hash)) => {
                if parsed.seq != seq + 1 {
                    return Err(fail(format!("expected seq {}, found {}", seq + 1, parsed.seq)));
                }
                if prev_hash != previous_hash {
                    return Err(fail(format!(
                        "prev_hash {prev_hash} does not link to the previous event's hash {previous_hash}"
                    )));
                }
            }
        }
        match (&parsed.entry, &parsed.omitted) {
            (Some(entry), None) => {
                let entry = entry_text(entry).map_err(fail)?;
                self.check_entry(&parsed, &entry, &prev_hash, &hash).map_err(fail)?;
            }
            (None, Some(reason)) if reason == "out_of_scope" || reason.starts_with("purged:") => {
                if self.manifest.format == FORMAT_V1 {
                    return Err(fail(format!("{FORMAT_V1} has no witness lines")));
                }
            }
            (None, Some(reason)) => return Err(fail(format!("unknown reason `{reason}` for a missing entry"))),
            (Some(_), Some(_)) => return Err(fail("a line with an entry cannot be omitted".to_owned())),
            (None, None) => return Err(fail("the line has no entry and no reason for its absence".to_owned())),
        }
        match &parsed.proof {
            Some(proof) => {
                if self.covered_tail_started {
                    return Err(fail("a covered event after the unsigned tail began".to_owned()));
                }
                self.check_proof(&parsed, proof, &hash).map_err(fail)?;
            }
            None => self.covered_tail_started = true,
        }
        self.previous = Some((parsed.seq, hash));
        if parsed.entry.is_some() {
            self.count += 1;
        } else {
            self.omitted += 1;
        }
        Ok(())
    }

    /// The line's hash is in the entries root of the manifest checkpoint its proof names (in its
    /// epoch and partition), and that checkpoint signed no other hash for its sequence.
    fn check_proof(&self, parsed: &ExportLine, proof: &EntryProof, hash: &Digest) -> Result<(), String> {
        let checkpoint = self
            .manifest
            .checkpoints
            .iter()
            .find(|c| {
                c.number == proof.checkpoint
                    && c.epoch == parsed.layout_epoch
                    && c.partition == i32::try_from(parsed.sealed_partition).unwrap_or(-1)
            })
            .ok_or_else(|| {
                format!(
                    "checkpoint {} of partition {} in layout epoch {} is not in the manifest",
                    proof.checkpoint, parsed.sealed_partition, parsed.layout_epoch
                )
            })?;
        let root = digest(&checkpoint.entries_root, "entries_root")?;
        let audit_path = path(&proof.audit_path)?;
        if proof.tree_size != checkpoint.entry_count
            || !merkle::verify_inclusion(
                &merkle::leaf_hash(&hash.0),
                proof.leaf_index,
                proof.tree_size,
                &audit_path,
                &root,
            )
        {
            return Err(format!(
                "not included in the entries root of checkpoint {}",
                checkpoint.number
            ));
        }
        if checkpoint.tenant_head.seq == parsed.seq && checkpoint.tenant_head.hash != parsed.hash {
            return Err(format!(
                "checkpoint {} signed another hash for this sequence",
                checkpoint.number
            ));
        }
        Ok(())
    }

    /// The entry names its tenant and sequence (they must be the export's and the line's), and
    /// hashes, after the previous hash, to the line's hash.
    fn check_entry(&self, line: &ExportLine, entry: &str, prev_hash: &Digest, hash: &Digest) -> Result<(), String> {
        let names: EntryNames = serde_json::from_str(entry).map_err(|e| format!("the entry is not an entry: {e}"))?;
        if names.seq != line.seq || names.tenant_id != self.manifest.tenant_id {
            return Err(format!(
                "the entry is seq {} of tenant {}, not seq {} of {}",
                names.seq, names.tenant_id, line.seq, self.manifest.tenant_id
            ));
        }
        let recomputed = chain::entry_hash(prev_hash, entry.as_bytes());
        if recomputed != *hash {
            return Err(format!("the entry hashes to {recomputed}, not to the recorded {hash}"));
        }
        Ok(())
    }

    /// After the last line: the range and counts the manifest signed.
    pub fn finish(self) -> Result<u64, ExportProblem> {
        let found = self.previous.map(|(seq, hash)| format!("seq {seq} ({hash})"));
        let expected = self
            .manifest
            .chain
            .as_ref()
            .map(|r| format!("seq {} ({})", r.last_seq, r.last_hash));
        let matches = match (&self.previous, &self.manifest.chain) {
            (None, None) => true,
            (Some((seq, hash)), Some(range)) => *seq == range.last_seq && hash.to_hex() == range.last_hash,
            _ => false,
        };
        if !matches || self.count != self.manifest.event_count || self.omitted != self.manifest.omitted_count {
            return Err(ExportProblem::Incomplete {
                expected: format!(
                    "{} events and {} witness lines ending at {}",
                    self.manifest.event_count,
                    self.manifest.omitted_count,
                    expected.unwrap_or_default()
                ),
                found: format!(
                    "{} events and {} witness lines ending at {}",
                    self.count,
                    self.omitted,
                    found.unwrap_or_default()
                ),
            });
        }
        Ok(self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three chained lines of tenant `t`, with no checkpoint (an unsigned tail), and their manifest.
    fn lines() -> (Manifest, Vec<ExportLine>) {
        let mut previous = chain::genesis("t");
        let mut lines: Vec<ExportLine> = Vec::new();
        for seq in 1..=3 {
            let entry = format!(r#"{{"seq":{seq},"tenant_id":"t"}}"#);
            let hash = chain::entry_hash(&previous, entry.as_bytes());
            let mut text = Vec::new();
            LineOut {
                seq,
                prev_hash: &previous.to_hex(),
                hash: &hash.to_hex(),
                layout_epoch: 1,
                sealed_partition: 0,
                sealed_offset: seq,
                body: LineBody::Entry(entry.as_bytes()),
                proof: None,
            }
            .encode(&mut text);
            lines.push(serde_json::from_slice(&text).expect("a line"));
            previous = hash;
        }
        let manifest = Manifest {
            format: FORMAT.to_owned(),
            export_id: "exp".to_owned(),
            tenant_id: "t".to_owned(),
            scope: serde_json::Value::Null,
            created_at: 0,
            key_id: "k".to_owned(),
            event_count: 3,
            omitted_count: 0,
            unsigned_tail: 3,
            files: Vec::new(),
            chain: Some(ChainRange {
                first_seq: 1,
                first_prev_hash: lines[0].prev_hash.clone(),
                last_seq: 3,
                last_hash: lines[2].hash.clone(),
            }),
            checkpoints: Vec::new(),
        };
        (manifest, lines)
    }

    fn check(manifest: &Manifest, lines: &[ExportLine]) -> Result<u64, ExportProblem> {
        let mut checker = LineChecker::new(manifest);
        for (index, line) in lines.iter().enumerate() {
            let text = serde_json::to_string(line).expect("JSON");
            checker.check("events-00001.ndjson.gz", index as u64 + 1, &text)?;
        }
        checker.finish()
    }

    fn witness(line: &mut ExportLine, reason: &str) {
        line.entry = None;
        line.omitted = Some(reason.to_owned());
    }

    #[test]
    fn witness_lines_keep_the_chain_without_the_content() {
        let (mut manifest, mut lines) = lines();
        assert_eq!(check(&manifest, &lines), Ok(3));
        witness(&mut lines[1], "purged:config:*:*");
        // The counts must say so.
        assert!(matches!(
            check(&manifest, &lines),
            Err(ExportProblem::Incomplete { .. })
        ));
        (manifest.event_count, manifest.omitted_count) = (2, 1);
        assert_eq!(check(&manifest, &lines), Ok(2));
        // A witness line still has to link.
        let mut broken = lines.clone();
        broken[1].hash = lines[0].hash.clone();
        assert!(matches!(
            check(&manifest, &broken),
            Err(ExportProblem::BadLine { line: 3, .. })
        ));
    }

    #[test]
    fn witness_lines_need_a_known_reason_and_format_2() {
        let (mut manifest, mut lines) = lines();
        (manifest.event_count, manifest.omitted_count) = (2, 1);
        witness(&mut lines[1], "because");
        assert!(matches!(
            check(&manifest, &lines),
            Err(ExportProblem::BadLine { line: 2, .. })
        ));
        witness(&mut lines[1], "out_of_scope");
        assert_eq!(check(&manifest, &lines), Ok(2));
        lines[1].omitted = None;
        assert!(matches!(
            check(&manifest, &lines),
            Err(ExportProblem::BadLine { line: 2, .. })
        ));
        witness(&mut lines[1], "out_of_scope");
        manifest.format = FORMAT_V1.to_owned();
        assert!(matches!(
            check(&manifest, &lines),
            Err(ExportProblem::BadLine { line: 2, .. })
        ));
    }
}

//! Checking an events file's lines against the signed manifest.

use serde::Deserialize;

use super::{EntryProof, ExportLine, ExportProblem, FORMAT_V1, Manifest, digest, path};
use crate::chain;
use crate::digest::Digest;
use crate::merkle;

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

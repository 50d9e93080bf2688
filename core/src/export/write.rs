//! Writing an events file's lines.

use crate::digest::Digest;

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

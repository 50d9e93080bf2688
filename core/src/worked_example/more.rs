//! The worked examples beyond the first entry (docs/integrity.md, "More worked examples"): an
//! audit path, a two-tenant heads proof, an export line with its manifest and signature, a
//! witness cosignature, and a retention-run digest. Where a value stands in for another event's
//! hash, it is SHA-256 of a short text named in the document.

use crate::checkpoint::{self, CheckpointSigner};
use crate::digest::{Digest, to_hex};
use crate::export::{
    ChainRange, FORMAT, HeadProof, LineBody, LineOut, Manifest, ManifestCheckpoint, ManifestCosignature, ManifestFile,
    ProofOut, signed_manifest_bytes,
};
use crate::merkle;
use crate::retention;
use crate::sealed::{Checkpoint, TenantHead};
use crate::witness::{self, WitnessSigner};

/// What the first example made.
pub(super) struct First<'a> {
    pub genesis: Digest,
    pub entry: &'a [u8],
    pub hash: Digest,
    pub checkpoint: &'a Checkpoint,
    pub signer: &'a CheckpointSigner,
}

fn stand_in(text: &str) -> Digest {
    Digest::of(&[text.as_bytes()])
}

/// Entries tree of three leaves: the first entry, and the stand-ins "entry 2" and "entry 3".
fn audit_path(first: &First<'_>) -> Vec<(&'static str, String)> {
    let hashes = [first.hash, stand_in("entry 2"), stand_in("entry 3")];
    let leaves: Vec<Digest> = hashes.iter().map(|h| merkle::leaf_hash(&h.0)).collect();
    let path = merkle::inclusion_proof(&leaves, 1);
    vec![
        ("entry 2 stand-in", hashes[1].to_hex()),
        ("entry 3 stand-in", hashes[2].to_hex()),
        ("three-leaf entries_root", checkpoint::entries_root(&hashes).to_hex()),
        ("leaf 1 audit path, first", path[0].to_hex()),
        ("leaf 1 audit path, second", path[1].to_hex()),
        ("node(leaf 0, leaf 1)", merkle::root(&leaves[..2]).to_hex()),
    ]
}

/// Tenant heads of `acme` (the first entry) and `globex` (seq 4, stand-in "globex head").
fn heads_proof(first: &First<'_>) -> Vec<(&'static str, String)> {
    let heads = [
        TenantHead {
            tenant_id: "acme".to_owned(),
            seq: 1,
            hash: first.hash,
        },
        TenantHead {
            tenant_id: "globex".to_owned(),
            seq: 4,
            hash: stand_in("globex head"),
        },
    ];
    let leaves: Vec<Digest> = heads.iter().map(checkpoint::tenant_head_leaf).collect();
    vec![
        ("globex head leaf", leaves[1].to_hex()),
        ("two-tenant heads root", checkpoint::tenant_heads_root(&heads).to_hex()),
        ("acme head audit path", merkle::inclusion_proof(&leaves, 0)[0].to_hex()),
    ]
}

/// The first entry as an export line, its manifest and the manifest's signature.
fn export(first: &First<'_>, cosignature: &ManifestCosignature) -> Vec<(&'static str, String)> {
    let (genesis, hash) = (first.genesis.to_hex(), first.hash.to_hex());
    let mut line = Vec::new();
    LineOut {
        seq: 1,
        prev_hash: &genesis,
        hash: &hash,
        layout_epoch: 1,
        sealed_partition: 0,
        sealed_offset: 0,
        body: LineBody::Entry(first.entry),
        proof: Some(ProofOut {
            checkpoint: 1,
            leaf_index: 0,
            tree_size: 1,
            audit_path: &[],
        }),
    }
    .encode(&mut line);
    let c = first.checkpoint;
    let manifest = Manifest {
        format: FORMAT.to_owned(),
        export_id: "exp_example".to_owned(),
        tenant_id: "acme".to_owned(),
        scope: serde_json::json!({}),
        created_at: 1_763_856_002_000,
        key_id: first.signer.key_id().to_owned(),
        event_count: 1,
        omitted_count: 0,
        unsigned_tail: 0,
        files: vec![ManifestFile {
            name: "events-00001.ndjson.gz".to_owned(),
            // The SHA-256 of the gzip file depends on the compressor: it is given as it was.
            sha256: stand_in("events-00001.ndjson.gz").to_hex(),
            bytes: 612,
            events: 1,
        }],
        chain: Some(ChainRange {
            first_seq: 1,
            first_prev_hash: genesis.clone(),
            last_seq: 1,
            last_hash: hash.clone(),
        }),
        checkpoints: vec![ManifestCheckpoint {
            partition: c.partition,
            number: c.number,
            scheme: c.scheme,
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
            tenant_head: HeadProof {
                seq: 1,
                hash,
                leaf_index: 0,
                tree_size: 1,
                audit_path: Vec::new(),
            },
            cosignatures: vec![cosignature.clone()],
        }],
    };
    let json = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    let signature = first.signer.sign_message(&signed_manifest_bytes(&json));
    vec![
        ("export line", String::from_utf8(line).unwrap_or_default()),
        ("manifest.json", String::from_utf8(json).unwrap_or_default()),
        ("manifest.sig", to_hex(&signature)),
    ]
}

/// Every value of the further examples, labelled as in the document.
pub(super) fn values(first: &First<'_>) -> Vec<(&'static str, String)> {
    let witness = WitnessSigner::from_seed("witness.example/w1", &[9; 32]).expect("seed");
    let origin = witness::origin("sealtrail.example/audit", first.checkpoint);
    let body = witness::note_body(&origin, first.checkpoint.number, &first.checkpoint.checkpoint_hash);
    let line = witness.cosign(&body, 1_795_000_000);
    let cosignature = ManifestCosignature {
        witness: "witness.example/w1".to_owned(),
        origin: origin.clone(),
        line: line.trim_end().to_owned(),
    };
    let digest = retention::tombstones_digest([(1, &first.hash), (2, &stand_in("entry 2"))]);
    let mut values = audit_path(first);
    values.extend(heads_proof(first));
    values.extend([
        ("witness vkey", witness.key().to_vkey()),
        ("note body", body),
        ("cosignature line", line.trim_end().to_owned()),
        ("retention run digest", digest.to_hex()),
    ]);
    values.extend(export(first, &cosignature));
    values
}

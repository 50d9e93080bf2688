//! Unit tests of the line checker: witness lines.

use super::*;
use crate::chain;

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

#[test]
fn the_manifest_must_be_signed_by_the_key_it_names() {
    let (manifest, _) = lines();
    let signer = |seed| crate::checkpoint::CheckpointSigner::from_seed(&[seed; 32]).expect("signer");
    let (first, second) = (signer(1), signer(2));
    let trusted = [
        TrustedKey::new(first.public_key().to_vec()),
        TrustedKey::new(second.public_key().to_vec()),
    ];
    let naming_second = Manifest {
        key_id: second.key_id().to_owned(),
        ..manifest
    };
    let json = serde_json::to_vec(&naming_second).expect("json");
    let signed_by = |key: &crate::checkpoint::CheckpointSigner| {
        crate::digest::to_hex(&key.sign_message(&signed_manifest_bytes(&json)))
    };
    let refused = check_manifest(&json, &signed_by(&first), &trusted).expect_err("another key signed");
    assert!(
        matches!(&refused, ExportProblem::BadSignature(why) if why.contains(second.key_id())),
        "{refused:?}"
    );
    assert!(
        !matches!(
            check_manifest(&json, &signed_by(&second), &trusted),
            Err(ExportProblem::BadSignature(_))
        ),
        "the named key's signature stands"
    );
}

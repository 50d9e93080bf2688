//! Witness cosigning: the C2SP formats, and which checkpoints a witness cosigns.

use super::{Harness, sample_event};
use crate::checkpoint::{CheckpointSigner, TrustedKey};
use crate::sealed::Checkpoint;
use crate::witness::{OriginHistory, Refusal, WitnessKey, WitnessSigner, note_body, origin};

const NOW: i64 = 1_763_856_000_000;

fn witness() -> WitnessSigner {
    let pkcs8 = CheckpointSigner::generate_pkcs8().expect("key");
    WitnessSigner::from_pkcs8("witness.example/w1", &pkcs8).expect("witness key")
}

/// Three checkpoints of partition 0, signed by `signer`.
fn checkpoints(signer: &CheckpointSigner) -> Vec<Checkpoint> {
    let mut h = Harness::new();
    (0..3_u32)
        .map(|n| {
            h.seal(i64::from(n), &sample_event("acme", n));
            h.sealer.checkpoint(signer, 0, NOW)
        })
        .collect()
}

#[test]
fn a_cosignature_verifies_with_the_witness_key_and_only_for_its_body() {
    let signer = witness();
    let key = WitnessKey::parse(&signer.key().to_vkey()).expect("the verifier key reads back");
    assert_eq!(key, signer.key());
    let body = note_body(
        "sealtrail.example/audit/epoch-1/partition-0",
        7,
        &crate::digest::Digest::of(&[b"x"]),
    );
    let line = signer.cosign(&body, 1_795_000_000);
    assert!(line.starts_with("\u{2014} witness.example/w1 "), "{line}");
    assert_eq!(key.verify(&line, &body), Some(1_795_000_000));
    let other = body.replace("\n7\n", "\n8\n");
    assert_eq!(key.verify(&line, &other), None, "another checkpoint");
    assert_eq!(witness().key().verify(&line, &body), None, "another witness");
    assert!(WitnessKey::parse("w1+00000000+AAAA").is_err());
}

#[test]
fn a_witness_cosigns_a_chain_in_order_and_refuses_forks_gaps_and_strangers() {
    let log = CheckpointSigner::from_seed(&[3; 32]).expect("log key");
    let trusted = [TrustedKey::new(log.public_key().to_vec())];
    let chain = checkpoints(&log);
    let mut history = OriginHistory::default();
    assert_eq!(
        history.decide(&chain[1], &trusted),
        Ok(true),
        "the first seen is taken on trust"
    );
    history.record(chain[1].number, chain[1].checkpoint_hash);
    assert_eq!(history.decide(&chain[1], &trusted), Ok(false), "cosigned before: again");
    assert_eq!(history.decide(&chain[0], &trusted), Err(Refusal::Before));

    // The stolen log key signs another checkpoint 3 (or 2): a fork, however well signed.
    let mut forked = chain[2].clone();
    forked.created_at += 1;
    log.sign(&mut forked);
    assert_eq!(history.decide(&chain[2], &trusted), Ok(true));
    history.record(chain[2].number, chain[2].checkpoint_hash);
    assert_eq!(history.decide(&forked, &trusted), Err(Refusal::Fork));
    let mut older = chain[1].clone();
    older.entry_count += 1;
    log.sign(&mut older);
    assert_eq!(history.decide(&older, &trusted), Err(Refusal::Fork));

    // A checkpoint that skips numbers, or links elsewhere, or that no trusted key signed.
    let mut ahead = chain[2].clone();
    ahead.number = 5;
    log.sign(&mut ahead);
    assert_eq!(history.decide(&ahead, &trusted), Err(Refusal::Gap));
    let mut unlinked = chain[2].clone();
    unlinked.number = 4;
    log.sign(&mut unlinked);
    assert_eq!(history.decide(&unlinked, &trusted), Err(Refusal::Fork));
    let stranger = CheckpointSigner::from_seed(&[4; 32]).expect("key");
    let mut unknown = chain[2].clone();
    stranger.sign(&mut unknown);
    assert!(matches!(history.decide(&unknown, &trusted), Err(Refusal::Untrusted(_))));
    assert_eq!(
        origin("sealtrail.example/audit", &chain[0]),
        "sealtrail.example/audit/epoch-1/partition-0"
    );
}

//! The follower `sealtrail monitor` runs on each sealed partition.

use super::{Harness, sample_event};
use crate::checkpoint::{CheckpointSigner, TrustedKey};
use crate::follow::{BreakClass, PartitionFollower};
use crate::sealed::SealedEvent;

const NOW: i64 = 1_763_856_000_000;

fn signer() -> (CheckpointSigner, Vec<TrustedKey>) {
    let signer = CheckpointSigner::from_seed(&[5; 32]).expect("signer");
    let trusted = vec![TrustedKey::new(signer.public_key().to_vec())];
    (signer, trusted)
}

fn sealed(h: &mut Harness, offsets: std::ops::Range<u32>) -> Vec<SealedEvent> {
    offsets
        .map(|n| h.seal(i64::from(n), &sample_event(["acme", "globex"][n as usize % 2], n)))
        .collect()
}

#[test]
fn an_honest_partition_verifies_checkpoint_by_checkpoint() {
    let (signer, trusted) = signer();
    let mut h = Harness::new();
    let mut follower = PartitionFollower::new(0, trusted, None);
    for round in 0..3_u32 {
        for event in sealed(&mut h, round * 4..round * 4 + 4) {
            follower.event(&event).expect("links");
        }
        let checkpoint = h.sealer.checkpoint(&signer, 0, NOW);
        let verified = follower.checkpoint(&checkpoint).expect("verifies");
        assert_eq!(verified.number, u64::from(round) + 1);
        assert_eq!(verified.entry_count, 4);
    }
    assert_eq!(follower.uncovered(), 0);
}

#[test]
fn each_break_is_reported_once_and_following_resumes_after_it() {
    let (signer, trusted) = signer();
    let mut h = Harness::new();
    let mut follower = PartitionFollower::new(0, trusted, None);
    let mut events = sealed(&mut h, 0..4);
    // An event altered in the sealed topic: its own hash no longer matches its content.
    events[1].event.action = "user.deleted".to_owned();
    let outcomes: Vec<_> = events.iter().map(|e| follower.event(e)).collect();
    let broken: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    assert_eq!(broken.len(), 1, "{outcomes:?}");
    assert_eq!(broken[0].class, BreakClass::Chain);
    assert_eq!(broken[0].tenant.as_deref(), Some("globex"));
    // The checkpoint itself is sound: the sealer hashed the original content.
    let checkpoint = h.sealer.checkpoint(&signer, 0, NOW);
    follower
        .checkpoint(&checkpoint)
        .expect("the checkpoint matches the recorded hashes");

    // A checkpoint whose entries do not match what was read, and one signed by an unknown key.
    sealed(&mut h, 4..6)
        .iter()
        .take(1)
        .for_each(|e| follower.event(e).expect("links"));
    let short = h.sealer.checkpoint(&signer, 0, NOW);
    let breaks = follower.checkpoint(&short).expect_err("one event was never read");
    assert!(breaks.iter().any(|b| b.class == BreakClass::Entries), "{breaks:?}");
    assert!(breaks.iter().any(|b| b.class == BreakClass::Heads), "{breaks:?}");
    let stranger = CheckpointSigner::from_seed(&[6; 32]).expect("signer");
    for event in sealed(&mut h, 6..8) {
        follower.event(&event).expect("links, from the adopted checkpoint");
    }
    let forged = h.sealer.checkpoint(&stranger, 0, NOW);
    let breaks = follower.checkpoint(&forged).expect_err("an untrusted key");
    assert_eq!(
        breaks.iter().map(|b| b.class).collect::<Vec<_>>(),
        vec![BreakClass::Checkpoint]
    );
}

#[test]
fn a_checkpoint_that_skips_raw_records_breaks_the_accounting() {
    let (signer, trusted) = signer();
    let mut h = Harness::new();
    let mut follower = PartitionFollower::new(0, trusted, None);
    for event in sealed(&mut h, 0..2) {
        follower.event(&event).expect("links");
    }
    follower
        .checkpoint(&h.sealer.checkpoint(&signer, 0, NOW))
        .expect("verifies");
    // Raw offset 2 was rejected, but the checkpoint's DLQ position says no DLQ record exists.
    let _ = h.handle(2, "acme", b"not avro");
    for event in sealed(&mut h, 3..4) {
        follower.event(&event).expect("links");
    }
    let breaks = follower
        .checkpoint(&h.sealer.checkpoint(&signer, 0, NOW))
        .expect_err("offset 2 is unaccounted for");
    assert_eq!(
        breaks.iter().map(|b| b.class).collect::<Vec<_>>(),
        vec![BreakClass::Accounting]
    );
}

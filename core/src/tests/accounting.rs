//! Offset accounting: every raw offset up to a checkpoint is sealed or has a DLQ record.

use super::{Harness, sample_event};
use crate::checkpoint::{CheckpointSigner, TrustedKey};
use crate::sealer::Disposition;
use crate::verify::{CheckpointChainProblem, verify_checkpoints};

const NOW: i64 = 1_763_856_000_000;

fn signer() -> (CheckpointSigner, Vec<TrustedKey>) {
    let signer = CheckpointSigner::from_seed(&[9; 32]).expect("signer");
    let trusted = vec![TrustedKey::new(signer.public_key().to_vec())];
    (signer, trusted)
}

#[test]
fn sealed_and_rejected_records_account_for_every_raw_offset() {
    let (signer, trusted) = signer();
    let mut h = Harness::new();
    h.seal(0, &sample_event("acme", 1));
    assert!(matches!(h.handle(1, "acme", b"not avro"), Disposition::Rejected(_)));
    h.seal(2, &sample_event("acme", 2));
    // One DLQ record so far: the next DLQ offset is 1.
    let first = h.sealer.checkpoint(&signer, 1, NOW);
    h.seal(3, &sample_event("acme", 3));
    let second = h.sealer.checkpoint(&signer, 1, NOW);
    assert_eq!(
        verify_checkpoints(&[first.clone(), second.clone()], &trusted, None, None),
        Ok(())
    );
    // Given after a trusted checkpoint, the totals before it are unknown: only the links are checked.
    assert_eq!(
        verify_checkpoints(std::slice::from_ref(&second), &trusted, Some(&first), None),
        Ok(())
    );
}

#[test]
fn a_raw_record_dropped_without_a_trace_breaks_the_accounting() {
    let (signer, trusted) = signer();
    let mut h = Harness::new();
    h.seal(0, &sample_event("acme", 1));
    // Offset 1 was rejected but its DLQ record never written: the checkpoint says the DLQ is empty.
    assert!(matches!(h.handle(1, "acme", b"not avro"), Disposition::Rejected(_)));
    h.seal(2, &sample_event("acme", 2));
    let checkpoint = h.sealer.checkpoint(&signer, 0, NOW);
    let problem = verify_checkpoints(&[checkpoint], &trusted, None, None).expect_err("the drop is caught");
    assert!(
        matches!(
            problem,
            CheckpointChainProblem::Accounting {
                expected: 3,
                sealed: 2,
                dlq: 0,
                ..
            }
        ),
        "{problem:?}"
    );
    assert!(problem.to_string().contains("without a trace"), "{problem}");
}

#[test]
fn skipped_offsets_are_named_once_so_each_gets_a_dlq_record() {
    let mut h = Harness::new();
    assert_eq!(h.sealer.undelivered_before(0), Vec::<i64>::new());
    h.seal(0, &sample_event("acme", 1));
    // A transaction marker at 1 and an aborted record at 2 never reach a read_committed consumer.
    assert_eq!(h.sealer.undelivered_before(3), vec![1, 2]);
    h.seal(3, &sample_event("acme", 2));
    assert_eq!(h.sealer.undelivered_before(4), Vec::<i64>::new());
    // A rewind names nothing.
    assert_eq!(h.sealer.undelivered_before(1), Vec::<i64>::new());
    let (signer, trusted) = signer();
    // The two not_delivered DLQ records make the DLQ's next offset 2.
    let checkpoint = h.sealer.checkpoint(&signer, 2, NOW);
    assert_eq!(verify_checkpoints(&[checkpoint], &trusted, None, None), Ok(()));
}

#[test]
fn after_a_restart_records_handled_beyond_a_gap_wait_for_it_before_a_checkpoint() {
    use crate::sealer::PartitionSealer;
    let (signer, trusted) = signer();
    let mut before = Harness::new();
    let first = before.seal(0, &sample_event("acme", 1));
    // Offset 1 was rejected, but its DLQ record was lost in the crash; offset 2's sealed record was not.
    assert!(matches!(
        before.handle(1, "acme", b"not avro"),
        Disposition::Rejected(_)
    ));
    let third = before.seal(2, &sample_event("acme", 2));
    let mut after = Harness::new();
    after.sealer = PartitionSealer::recover(super::settings(), None, &[], &[first, third], &[], NOW).expect("recovers");
    assert_eq!(after.sealer.resume_offset(), 1);
    assert!(!after.sealer.can_checkpoint(), "offset 2 is handled, offset 1 is not");
    assert!(!after.sealer.checkpoint_due(NOW + 60_000, -1));
    assert!(matches!(after.handle(1, "acme", b"not avro"), Disposition::Rejected(_)));
    assert!(after.sealer.can_checkpoint());
    assert_eq!(after.sealer.resume_offset(), 3);
    let checkpoint = after.sealer.checkpoint(&signer, 1, NOW);
    assert_eq!(verify_checkpoints(&[checkpoint], &trusted, None, None), Ok(()));
}

//! Partition layout epochs: closing a partition, the handover, and recovery around them.

use super::*;

#[test]
fn a_reshard_closes_the_old_partition_and_every_chain_continues_in_the_new_layout() {
    use crate::checkpoint::TrustedKey;
    use crate::layout::{Handover, Layout};

    let signer = CheckpointSigner::from_seed(&[9; 32]).expect("key");
    let trusted = [TrustedKey::new(signer.public_key().to_vec())];
    let tenant = |n: u32| if n.is_multiple_of(2) { "acme" } else { "globex" };
    let mut old = Harness::new();
    let mut sealed: Vec<SealedEvent> = (0..6_u32)
        .map(|n| old.seal(i64::from(n), &sample_event(tenant(n), n)))
        .collect();
    let first = old.sealer.checkpoint(&signer, 0, NOW);
    sealed.push(old.seal(6, &sample_event("acme", 6)));
    let last = old
        .sealer
        .close_epoch(7, &signer, 0, NOW)
        .expect("the marker closes the partition");
    assert!(last.closes_epoch && last.epoch == 1 && last.partitions == 1);
    assert_eq!((last.source_offset, last.entry_count), (7, 1));
    assert!(
        old.sealer.close_epoch(7, &signer, 0, NOW).is_none(),
        "a marker read again changes nothing"
    );
    match old.handle(8, "acme", &encoded(&sample_event("acme", 8))) {
        Disposition::Rejected(rejection) => assert_eq!(rejection.code, RejectCode::LayoutClosed),
        other => panic!("a closed partition seals nothing, got {other:?}"),
    }
    assert_eq!(
        verify_checkpoints(&[first.clone(), last.clone()], &trusted, None, None),
        Ok(())
    );

    let previous = Layout {
        epoch: 1,
        raw_topic: "audit-events".into(),
        sealed_topic: "audit-events-sealed".into(),
        dlq_topic: "audit-events-dlq".into(),
        partitions: 1,
    };
    assert!(
        Handover::from_finals(&previous, std::slice::from_ref(&first), &trusted).is_err(),
        "only final checkpoints hand over"
    );
    let handover =
        std::sync::Arc::new(Handover::from_finals(&previous, std::slice::from_ref(&last), &trusted).expect("handover"));
    let mut next = settings();
    next.source_topic = "audit-events.v2".into();
    next.epoch = 2;
    next.handover = Some(std::sync::Arc::clone(&handover));
    let mut new = Harness::with(next);
    let continued = new.seal(0, &sample_event("acme", 9));
    assert_eq!(continued.seal.tenant_seq, 5, "acme's chain goes on from its final head");
    sealed.push(continued);
    sealed.push(new.seal(1, &sample_event("initech", 10)));
    let acme: Vec<SealedEvent> = sealed.iter().filter(|e| e.event.tenant_id == "acme").cloned().collect();
    assert_eq!(
        verify_chain("acme", &acme, ChainStart::Genesis).map(|v| v.head_seq),
        Ok(5)
    );
    let initech: Vec<SealedEvent> = sealed
        .iter()
        .filter(|e| e.event.tenant_id == "initech")
        .cloned()
        .collect();
    assert_eq!(
        initech[0].seal.tenant_seq, 1,
        "a tenant new to the pipeline starts at genesis"
    );

    let opening = new.sealer.checkpoint(&signer, 0, NOW);
    assert_eq!(opening.epoch, 2);
    assert!(
        verify_checkpoints(std::slice::from_ref(&opening), &trusted, None, None).is_err(),
        "a later epoch's first checkpoint needs the link to the epoch before"
    );
    assert_eq!(
        verify_checkpoints(std::slice::from_ref(&opening), &trusted, None, Some(&handover.link)),
        Ok(())
    );
    assert!(
        verify_checkpoints(&[last, opening], &trusted, Some(&first), None).is_err(),
        "nothing follows a checkpoint that closed its epoch"
    );
}

#[test]
fn recovery_keeps_a_closed_partition_closed_and_refuses_another_layout() {
    use crate::sealer::RecoveryError;

    let signer = CheckpointSigner::from_seed(&[9; 32]).expect("key");
    let mut old = Harness::new();
    old.seal(0, &sample_event("acme", 0));
    let last = old.sealer.close_epoch(1, &signer, 0, NOW).expect("closes");

    // A restart after the close: the partition stays closed, the change is not met twice.
    let mut again = Harness::new();
    again.sealer = PartitionSealer::recover(settings(), Some(&last), &[], &[], &[], NOW).expect("recovers");
    assert!(again.sealer.is_closed());
    assert_eq!(again.sealer.resume_offset(), 2);
    match again.handle(2, "acme", &encoded(&sample_event("acme", 2))) {
        Disposition::Rejected(rejection) => assert_eq!(rejection.code, RejectCode::LayoutClosed),
        other => panic!("a closed partition seals nothing after a restart, got {other:?}"),
    }
    assert!(
        !again.sealer.checkpoint_due(NOW + 60_000, -1),
        "no checkpoint follows the final one"
    );

    // The raw topic grew in place: the chains would move, so the partition is not continued.
    let mut grown = settings();
    grown.partition_count = 2;
    assert!(matches!(
        PartitionSealer::recover(grown, Some(&last), &[], &[], &[], NOW),
        Err(RecoveryError::PartitionsChanged { then: 1, now: 2, .. })
    ));
    // A processor of the next layout pointed at this layout's sealed topic.
    let mut next = settings();
    next.epoch = 2;
    next.handover = None;
    assert!(matches!(
        PartitionSealer::recover(next, Some(&last), &[], &[], &[], NOW),
        Err(RecoveryError::NoHandover { epoch: 2, .. })
    ));
}

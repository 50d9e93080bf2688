//! The seal processor on the driver's memory source: crashes at every point of a small run, a
//! rewind, a revocation in the middle of a checkpoint interval, a producer's duplicate retry and
//! poison records. tests/it runs the same scenarios against the real broker.

mod world;

use sealtrail_runtime::driver::memory::{Halt, Rebalance};

use world::{Check as _, RAW, World};

/// Ten events over four tenants and both partitions, with a producer's duplicate and two poison
/// records among them.
fn workload(world: &World) -> usize {
    let mut produced = 0;
    for n in 0..10 {
        let tenant = ["acme", "globex", "initech", "umbrella"][n % 4];
        world.produce_event(tenant, n, None);
        produced += 1;
    }
    world.produce_raw(0, Some(b"acme"), Some(b"not avro at all"));
    world.produce_raw(1, None, None);
    produced += 2;
    produced
}

#[test]
fn a_clean_run_seals_every_record_once_and_checkpoints_all_of_it() {
    let world = World::new();
    let produced = workload(&world);
    world.run_to_end(usize::MAX).expect("runs");
    let report = world.check();
    assert_eq!(report.sealed + report.rejected, produced);
    assert_eq!(report.rejected, 2, "the two poison records, in the DLQ");
    assert_eq!(report.reasons(), vec!["missing_tenant", "not_avro"]);
    assert!(report.checkpoints >= 2, "every partition is checkpointed");
}

#[test]
fn a_crash_at_any_point_loses_nothing_and_forks_nothing() {
    for per_poll in [1, usize::MAX] {
        let probe = World::new();
        let produced = workload(&probe);
        for crash_after in 0..=produced as u64 {
            let world = World::new();
            workload(&world);
            let crashed = world.run_crashing(per_poll, crash_after);
            assert!(
                matches!(crashed, Err(Halt::Crashed)) || crash_after == produced as u64,
                "crash point {crash_after}: {crashed:?}"
            );
            world.run_to_end(per_poll).expect("the restart recovers");
            let report = world.check();
            assert_eq!(
                report.sealed + report.rejected,
                produced,
                "crash after {crash_after} records, {per_poll} deliveries per poll"
            );
        }
    }
}

#[test]
fn a_rewound_group_reads_again_and_seals_nothing_twice() {
    let world = World::new();
    let produced = workload(&world);
    world.run_to_end(usize::MAX).expect("runs");
    let before = world.check();
    for partition in 0..world::PARTITIONS {
        world.log.set_committed(world::GROUP, RAW, partition, 0);
    }
    world.run_to_end(usize::MAX).expect("runs again");
    let after = world.check();
    assert_eq!(after.sealed + after.rejected, produced);
    assert_eq!(after.sealed, before.sealed, "nothing sealed twice");
    for partition in 0..world::PARTITIONS {
        let end = world.raw_end(partition);
        assert_eq!(
            world.log.committed(world::GROUP, RAW, partition),
            Some(end),
            "the commit moves on to the end again"
        );
    }
}

#[test]
fn a_revocation_mid_interval_checkpoints_and_the_next_owner_continues_the_chains() {
    let world = World::new();
    let produced = workload(&world);
    // The first owner loses both partitions after five records; another instance takes them.
    let first = world.run_with_script(usize::MAX, &[(5, Rebalance::Revoke)]);
    assert!(first.is_ok(), "{first:?}");
    let halfway = world.check();
    assert!(halfway.sealed + halfway.rejected >= 5);
    assert!(halfway.uncovered == 0, "the revocation checkpointed what it sealed");
    world.run_to_end(usize::MAX).expect("the next owner runs");
    let report = world.check();
    assert_eq!(report.sealed + report.rejected, produced);
}

#[test]
fn a_producer_retry_with_the_same_idempotency_key_is_sealed_once() {
    let world = World::new();
    world.produce_event("acme", 1, Some("order-17"));
    world.produce_event("acme", 2, Some("order-17"));
    world.produce_event("acme", 3, Some("order-18"));
    world.run_to_end(usize::MAX).expect("runs");
    let report = world.check();
    assert_eq!(report.sealed, 2);
    assert_eq!(report.reasons(), vec!["duplicate"]);
}

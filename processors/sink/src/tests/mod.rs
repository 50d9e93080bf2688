//! The sink on the driver's memory source, over a sealed topic the seal processor wrote in
//! memory: crashes at every point, a rewind after ClickHouse lost rows, a revocation in the
//! middle of a batch, an insert retried after its answer was lost (alone, and among partitions
//! flushed together), an insert still running after its sender gave up, and a poison record.
//! tests/it runs the same scenarios against the real broker and ClickHouse.

mod store;

use std::collections::HashMap;
use std::time::Duration;

use sealtrail_clickhouse::ClickHouseSettings;
use sealtrail_kafka::KafkaSettings;
use sealtrail_runtime::driver::memory::{Halt, MemorySource, Rebalance, UntilIdle};
use sealtrail_runtime::driver::{self, Cadence};
use sealtrail_runtime::{Metrics, SealedReaders, StopSignal, Telemetry};
use sealtrail_seal::memory::{MemoryPipeline, PARTITIONS, SEALED};

use crate::{SinkConfig, SinkError, SinkProcessor};
use store::MemoryStore;

const GROUP: &str = "sink";

/// A pipeline whose sealed topic holds twelve events over four tenants and their checkpoints.
fn sealed_pipeline() -> MemoryPipeline {
    let pipeline = MemoryPipeline::new();
    for n in 0..12 {
        pipeline.produce_event(["acme", "globex", "initech", "umbrella"][n % 4], n, None);
    }
    pipeline.run_to_end(usize::MAX).expect("sealed");
    pipeline
}

fn sealed_offsets(pipeline: &MemoryPipeline) -> usize {
    (0..PARTITIONS).map(|p| pipeline.log.records(SEALED, p).len()).sum()
}

fn sink(pipeline: &MemoryPipeline, store: &MemoryStore, batch_rows: usize, batch_wait: Duration) -> SinkProcessor {
    capped_sink(pipeline, store, (batch_rows, batch_wait), usize::MAX)
}

fn capped_sink(
    pipeline: &MemoryPipeline,
    store: &MemoryStore,
    (batch_rows, batch_wait): (usize, Duration),
    max_buffered_bytes: usize,
) -> SinkProcessor {
    let config = SinkConfig {
        kafka: KafkaSettings::new("memory"),
        clickhouse: ClickHouseSettings::new("memory"),
        sealed_topic: SEALED.to_owned(),
        layout_epoch: 1,
        group: GROUP.to_owned(),
        instance_id: None,
        batch_rows,
        batch_wait,
        max_buffered_bytes,
        stop_after: None,
        metrics: Metrics::new("sink"),
    };
    SinkProcessor::new(
        config,
        Box::new(store.clone()),
        SealedReaders::new(pipeline.registry.clone()),
    )
}

fn run(
    pipeline: &MemoryPipeline,
    sink: &mut UntilIdle<SinkProcessor>,
    script: &[(usize, Rebalance)],
) -> Result<(), Halt<SinkError>> {
    let mut source = MemorySource::new(&pipeline.log, SEALED, GROUP);
    source.rebalance(Rebalance::Assign((0..PARTITIONS).collect()));
    for (after, rebalance) in script {
        source.rebalance_after(*after, rebalance.clone());
    }
    let quick = Cadence {
        poll: Duration::ZERO,
        tick: Duration::ZERO,
        commit: Duration::ZERO,
        lag: Duration::from_secs(3600),
    };
    let mut telemetry = Telemetry::new(Metrics::new("sink"));
    driver::run(&mut source, sink, &mut telemetry, &StopSignal::new(), quick)
}

fn run_to_end(pipeline: &MemoryPipeline, store: &MemoryStore) {
    let mut sink = UntilIdle::new(sink(pipeline, store, 4, Duration::ZERO));
    run(pipeline, &mut sink, &[]).expect("the sink runs to the end");
}

/// Every sealed record is in the store exactly once.
fn assert_projected_once(pipeline: &MemoryPipeline, store: &MemoryStore, scenario: &str) {
    let tables = store.tables();
    let mut rows: HashMap<(u32, u64), usize> = HashMap::new();
    for row in tables.events.iter().chain(&tables.checkpoints) {
        *rows.entry(*row).or_default() += 1;
    }
    assert_eq!(
        rows.len(),
        sealed_offsets(pipeline),
        "{scenario}: every sealed record stored"
    );
    for (row, times) in rows {
        assert_eq!(
            times, 1,
            "{scenario}: sealed partition {} offset {} stored {times} times",
            row.0, row.1
        );
    }
    // Exports read stored entries only for a stretch where every event has one.
    for event in &tables.events {
        assert!(
            tables.entries.contains(event),
            "{scenario}: the event at sealed partition {} offset {} has no stored entry",
            event.0,
            event.1
        );
    }
}

#[test]
fn a_crash_at_any_point_stores_every_row_once() {
    let records = sealed_offsets(&sealed_pipeline()) as u64;
    for crash_after in 0..records {
        for (batch_rows, wait) in [
            (1, Duration::ZERO),
            (4, Duration::ZERO),
            (1000, Duration::from_secs(3600)),
        ] {
            // A fresh pipeline each time: no commit of an earlier round may leak into this one.
            let pipeline = sealed_pipeline();
            let store = MemoryStore::default();
            let mut crashing = UntilIdle::new(sink(&pipeline, &store, batch_rows, wait)).crash_after(crash_after);
            let crashed = run(&pipeline, &mut crashing, &[]);
            assert!(
                matches!(crashed, Err(Halt::Crashed)),
                "crash point {crash_after}: {crashed:?}"
            );
            run_to_end(&pipeline, &store);
            assert_projected_once(
                &pipeline,
                &store,
                &format!("crash after {crash_after}, batches of {batch_rows}"),
            );
        }
    }
}

#[test]
fn a_rewind_after_clickhouse_lost_rows_restores_them_and_only_them() {
    let pipeline = sealed_pipeline();
    let store = MemoryStore::default();
    run_to_end(&pipeline, &store);
    {
        let mut tables = store.tables();
        tables
            .events
            .retain(|(partition, offset)| *partition != 0 || *offset < 2);
    }
    pipeline.log.set_committed(GROUP, SEALED, 0, 0);
    run_to_end(&pipeline, &store);
    assert_projected_once(&pipeline, &store, "rewind");
}

#[test]
fn a_revocation_mid_batch_drops_the_batch_and_the_next_owner_stores_it() {
    let pipeline = sealed_pipeline();
    let store = MemoryStore::default();
    let mut first = UntilIdle::new(sink(&pipeline, &store, 1000, Duration::from_secs(3600)));
    run(&pipeline, &mut first, &[(3, Rebalance::Revoke)]).expect("runs");
    assert!(
        store.tables().events.is_empty(),
        "nothing committed, nothing inserted: the batch is the next owner's"
    );
    run_to_end(&pipeline, &store);
    assert_projected_once(&pipeline, &store, "revocation");
}

#[test]
fn an_insert_whose_answer_was_lost_is_retried_and_lands_once() {
    let pipeline = sealed_pipeline();
    let store = MemoryStore::default();
    store.tables().refuse_next = 2;
    store.tables().lose_next_answers = 3;
    run_to_end(&pipeline, &store);
    assert_projected_once(&pipeline, &store, "lost answers");
}

/// An insert that outlives the sink that sent it (unanswered, then the partitions were revoked
/// while it retried) still lands. The next owner settles it before it reads where the partitions
/// stand, so it does not insert those rows again under tokens of its own.
#[test]
fn an_insert_still_running_after_a_revocation_is_settled_before_the_next_owner_reads_the_store() {
    let pipeline = sealed_pipeline();
    let store = MemoryStore::default();
    store.tables().leave_next_events_running = 1;
    let mut first = UntilIdle::new(sink(&pipeline, &store, 1000, Duration::ZERO));
    // The first flush goes unanswered; the revocation comes while it waits to retry.
    run(&pipeline, &mut first, &[(1, Rebalance::Revoke)]).expect("runs");
    assert!(store.tables().events.is_empty(), "the insert is still running");
    run_to_end(&pipeline, &store);
    assert_projected_once(&pipeline, &store, "an insert running after a revocation");
    assert_eq!(store.tables().settled, 1, "the next owner settled the running insert");
}

/// Nothing is due before the end, so the four partitions' batches are flushed together when the
/// sink leaves, in one insert per table: refused and lost answers are retried with the same
/// tokens.
#[test]
fn partitions_flushed_together_store_every_row_once_when_first_attempts_fail() {
    let pipeline = sealed_pipeline();
    let store = MemoryStore::default();
    store.tables().refuse_next = 3;
    store.tables().lose_next_answers = 2;
    let mut sink = UntilIdle::new(sink(&pipeline, &store, 1000, Duration::from_secs(3600)));
    run(&pipeline, &mut sink, &[]).expect("the sink runs to the end");
    assert_projected_once(&pipeline, &store, "partitions flushed together");
}

/// Partitions flushed together are inserted together: one `events` insert (per month) holding
/// every partition's rows, not one per partition. Each insert makes a part ClickHouse merges
/// again later, and merging four times the parts took most of its CPU.
#[test]
fn partitions_flushed_together_make_one_insert_per_table() {
    let pipeline = sealed_pipeline();
    let store = MemoryStore::default();
    let mut sink = UntilIdle::new(sink(&pipeline, &store, usize::MAX, Duration::from_secs(3600)));
    run(&pipeline, &mut sink, &[]).expect("the sink runs to the end");
    assert_projected_once(&pipeline, &store, "inserted together");
    let tables = store.tables();
    let with_events: std::collections::BTreeSet<u32> = tables.events.iter().map(|(partition, _)| *partition).collect();
    assert!(with_events.len() > 1, "the tenants' events are in several partitions");
    // One insert per month: two only if the events straddle a month's end.
    let inserts = &tables.event_inserts;
    assert!((1..=2).contains(&inserts.len()), "{inserts:?}");
    let together: std::collections::BTreeSet<u32> = inserts.iter().flatten().copied().collect();
    assert_eq!(together, with_events);
    assert!(
        inserts.iter().any(|partitions| partitions.len() > 1),
        "an insert holds several partitions' events: {inserts:?}"
    );
}

#[test]
fn a_poison_record_stops_the_sink_at_its_offset_and_commits_nothing_past_it() {
    let pipeline = sealed_pipeline();
    let poison_at = pipeline
        .log
        .append(SEALED, 0, None, Some(b"\x00\x00\x00\x00\x02garbage"), Vec::new(), 0);
    // A valid record after it, which must not be stored or committed past the poison.
    let valid = pipeline.log.records(SEALED, 0).remove(0);
    pipeline
        .log
        .append(SEALED, 0, None, valid.value.as_deref(), Vec::new(), 0);
    let store = MemoryStore::default();
    let mut sink = UntilIdle::new(sink(&pipeline, &store, 1, Duration::ZERO));
    let outcome = run(&pipeline, &mut sink, &[]);
    match outcome {
        Err(Halt::Failed(SinkError::CorruptSealed { partition, offset, .. })) => {
            assert_eq!((partition, offset), (0, poison_at));
        }
        other => panic!("the poison record must stop the sink, got {other:?}"),
    }
    let committed = pipeline.log.committed(GROUP, SEALED, 0).unwrap_or(0);
    assert!(committed <= poison_at, "committed {committed}, poison at {poison_at}");
}

/// However many partitions a sink holds, what it buffers stays bounded: once its sealed records
/// total `max_buffered_bytes`, every partition's rows are inserted, though none is due on its own.
#[test]
fn the_rows_buffered_over_all_partitions_are_bounded() {
    let pipeline = sealed_pipeline();
    let store = MemoryStore::default();
    let sealed_bytes: usize = (0..PARTITIONS)
        .flat_map(|p| pipeline.log.records(SEALED, p))
        .map(|record| record.value.as_ref().map_or(0, Vec::len))
        .sum();
    // About four records' worth.
    let cap = 4 * sealed_bytes / sealed_offsets(&pipeline);
    let mut sink = UntilIdle::new(capped_sink(
        &pipeline,
        &store,
        (usize::MAX, Duration::from_secs(3600)),
        cap,
    ));
    run(&pipeline, &mut sink, &[]).expect("the sink runs to the end");
    assert_projected_once(&pipeline, &store, "bounded buffer");
    let tables = store.tables();
    let inserts = &tables.event_inserts;
    assert!(
        inserts.len() >= sealed_offsets(&pipeline) / 4 - 1,
        "an insert per 4 rows buffered, not one at the end: {inserts:?}"
    );
    assert!(
        inserts.iter().any(|partitions| partitions.len() > 1),
        "each holds every partition's rows: {inserts:?}"
    );
}

/// Once one partition is due, every partition at least half due flushes with it (one stop of the
/// loop instead of one per partition); a partition that just began a batch, or holds nothing, is
/// left alone, and nothing flushes before some partition is due.
#[test]
fn a_due_partition_takes_the_partitions_half_due_with_it() {
    let wait = Duration::from_secs(60);
    let start = std::time::Instant::now();
    let buffered_at = |after: Option<Duration>| {
        let mut batch = crate::batch::PartitionBatch::new(-1, -1);
        batch.first_buffered_at = after.map(|after| start + after);
        batch
    };
    let batches = HashMap::from([
        (0, buffered_at(Some(Duration::ZERO))),
        (1, buffered_at(None)),
        (2, buffered_at(Some(Duration::from_secs(20)))),
        (3, buffered_at(Some(Duration::from_secs(50)))),
    ]);
    let due = |everything, at: u64| {
        crate::flush::due_partitions(
            &batches,
            (1000, wait, usize::MAX),
            everything,
            start + Duration::from_secs(at),
        )
    };
    assert_eq!(due(false, 59), Vec::<i32>::new(), "nothing is due yet");
    assert_eq!(due(true, 0), vec![0, 1, 2, 3], "leaving flushes every partition");
    assert_eq!(
        due(false, 60),
        vec![0, 2],
        "partition 0 is due and takes 2 (buffering for 40 s) with it, not 3 (10 s) nor 1 (empty)"
    );
}

use std::collections::HashMap;
use std::time::Duration;

use super::memory::{MemoryLog, MemorySource, Rebalance};
use super::*;
use crate::{Metrics, Telemetry};

/// Counts what it is handed, and stops after `limit` records.
#[derive(Debug, Default)]
struct Tally {
    limit: usize,
    seen: Vec<(i32, i64)>,
    next: HashMap<i32, i64>,
    revoked: Vec<Vec<i32>>,
    /// Revocations met by a wait inside a tick, once.
    wait_once: bool,
    met_while_waiting: Vec<i32>,
    fail_at: Option<usize>,
    /// Whether each assignment came with the committed offsets known.
    offsets_known: Vec<bool>,
}

impl PartitionedProcessor for Tally {
    type Error = String;

    fn on_assign(
        &mut self,
        partitions: &[i32],
        committed: &Committed,
        _control: &mut dyn Control,
    ) -> Result<Vec<(i32, i64)>, String> {
        self.offsets_known.push(committed.unknown.is_none());
        let positions: Vec<(i32, i64)> = partitions
            .iter()
            .map(|p| (*p, committed.get(*p).unwrap_or(0)))
            .collect();
        self.next.extend(positions.iter().copied());
        Ok(positions)
    }

    fn on_record(&mut self, record: &dyn InputRecord, _control: &mut dyn Control) -> Result<(), String> {
        if !self.next.contains_key(&record.partition()) {
            return Err(format!("a record of unassigned partition {}", record.partition()));
        }
        if self.fail_at == Some(self.seen.len()) {
            return Err(format!("failing at record {}", self.seen.len()));
        }
        self.seen.push((record.partition(), record.offset()));
        self.next.insert(record.partition(), record.offset() + 1);
        Ok(())
    }

    fn on_tick(&mut self, control: &mut dyn Control) -> Result<(), String> {
        if self.wait_once {
            self.wait_once = false;
            self.met_while_waiting = control.pause_for(Duration::from_millis(1));
        }
        Ok(())
    }

    fn on_revoke(&mut self, partitions: &[i32], _control: &mut dyn Control) -> Result<(), String> {
        self.revoked.push(partitions.to_vec());
        Ok(())
    }

    fn release(&mut self, partitions: &[i32]) {
        for partition in partitions {
            self.next.remove(partition);
        }
    }

    fn positions(&self) -> Vec<(i32, i64)> {
        self.next.iter().map(|(p, o)| (*p, *o)).collect()
    }

    fn committable(&self) -> Vec<(i32, i64)> {
        self.positions()
    }

    fn is_done(&self) -> bool {
        self.seen.len() >= self.limit
    }
}

fn log_with(records_per_partition: &[usize]) -> MemoryLog {
    let log = MemoryLog::new();
    log.create_topic("in", records_per_partition.len());
    for (partition, count) in (0..).zip(records_per_partition) {
        for n in 0..*count {
            log.append("in", partition, None, Some(&n.to_be_bytes()), Vec::new(), 0);
        }
    }
    log
}

fn stats() -> Telemetry {
    Telemetry::new(Metrics::new("test"))
}

fn quick() -> Cadence {
    Cadence {
        poll: Duration::ZERO,
        tick: Duration::ZERO,
        commit: Duration::ZERO,
        lag: Duration::ZERO,
    }
}

#[test]
fn every_record_once_then_commits_and_revokes_on_stop() {
    let log = log_with(&[3, 2]);
    let mut source = MemorySource::new(&log, "in", "g");
    source.rebalance(Rebalance::Assign(vec![0, 1]));
    let mut tally = Tally {
        limit: 5,
        ..Tally::default()
    };
    run(&mut source, &mut tally, &mut stats(), &StopSignal::new(), quick()).expect("runs");
    let mut seen = tally.seen.clone();
    seen.sort_unstable();
    assert_eq!(seen, vec![(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]);
    assert_eq!(tally.revoked, vec![vec![0, 1]], "the stop revokes what is assigned");
    assert_eq!(log.committed("g", "in", 0), Some(3));
    assert_eq!(log.committed("g", "in", 1), Some(2));
}

#[test]
fn a_rewound_group_is_offered_its_committed_offsets() {
    let log = log_with(&[4]);
    log.set_committed("g", "in", 0, 2);
    let mut source = MemorySource::new(&log, "in", "g");
    source.rebalance(Rebalance::Assign(vec![0]));
    let mut tally = Tally {
        limit: 2,
        ..Tally::default()
    };
    run(&mut source, &mut tally, &mut stats(), &StopSignal::new(), quick()).expect("runs");
    assert_eq!(tally.seen, vec![(0, 2), (0, 3)]);
}

#[test]
fn a_revocation_met_while_paused_runs_after_the_handler() {
    let log = log_with(&[2]);
    let mut source = MemorySource::new(&log, "in", "g");
    source.rebalance(Rebalance::Assign(vec![0]));
    let mut tally = Tally {
        limit: 2,
        wait_once: true,
        ..Tally::default()
    };
    source.rebalance(Rebalance::Revoke);
    source.rebalance(Rebalance::Assign(vec![0]));
    run(&mut source, &mut tally, &mut stats(), &StopSignal::new(), quick()).expect("runs");
    assert_eq!(tally.met_while_waiting, vec![0], "the wait reports the revocation");
    assert_eq!(
        tally.revoked.len(),
        2,
        "the revocation met while waiting, then the stop"
    );
    assert_eq!(tally.seen, vec![(0, 0), (0, 1)]);
}

#[test]
fn a_failing_handler_stops_the_run_without_revoking() {
    let log = log_with(&[3]);
    let mut source = MemorySource::new(&log, "in", "g");
    source.rebalance(Rebalance::Assign(vec![0]));
    let mut tally = Tally {
        limit: 10,
        fail_at: Some(2),
        ..Tally::default()
    };
    let outcome = run(&mut source, &mut tally, &mut stats(), &StopSignal::new(), quick());
    assert_eq!(outcome, Err("failing at record 2".to_owned()));
    assert!(tally.revoked.is_empty(), "a failed processor finishes nothing");
    assert!(source.assigned().is_empty(), "the group is left");
}

#[test]
fn a_commit_the_broker_refused_is_made_again() {
    let log = log_with(&[3]);
    let mut source = MemorySource::new(&log, "in", "g");
    source.rebalance(Rebalance::Assign(vec![0]));
    source.refuse_commits = 100;
    let mut tally = Tally {
        limit: 3,
        ..Tally::default()
    };
    run(&mut source, &mut tally, &mut stats(), &StopSignal::new(), quick()).expect("runs");
    assert_eq!(
        log.committed("g", "in", 0),
        Some(3),
        "the waited commit at the stop commits what every refused one did not"
    );
}

#[test]
fn committed_offsets_the_broker_cannot_read_are_asked_again_then_said_unknown() {
    let log = log_with(&[1, 1]);
    let mut source = MemorySource::new(&log, "in", "g");
    source.rebalance(Rebalance::Assign(vec![0]));
    source.fail_committed_reads = 2;
    let mut tally = Tally {
        limit: 1,
        ..Tally::default()
    };
    run(&mut source, &mut tally, &mut stats(), &StopSignal::new(), quick()).expect("runs");
    assert_eq!(tally.offsets_known, vec![true], "two failures, then the answer");

    let mut source = MemorySource::new(&log, "in", "g");
    source.rebalance(Rebalance::Assign(vec![1]));
    source.fail_committed_reads = 100;
    let mut tally = Tally {
        limit: 1,
        ..Tally::default()
    };
    run(&mut source, &mut tally, &mut stats(), &StopSignal::new(), quick()).expect("runs");
    assert_eq!(
        tally.offsets_known,
        vec![false],
        "the processor is told they are unknown"
    );
}

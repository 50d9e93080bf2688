//! One loop for every processor that consumes partitioned input in a consumer group.
//!
//! The driver owns what all of them share: polling, assignment and revocation, pausing while
//! a processor waits for something outside, commits, lag and the standard telemetry, and a
//! clean stop. A processor says what to do on each of those moments ([`PartitionedProcessor`]);
//! where the records come from is a [`PartitionSource`]: Kafka in production
//! (`sealtrail_kafka::KafkaSource`) and [`memory::MemorySource`] in unit tests.
//!
//! Rebalances reach the processor as events of this loop, never inside a client callback: a
//! source only queues them, so a recovery that reads for minutes runs on the processor's own
//! thread, where it can be stopped and measured like any other work.

mod group_stall;
pub mod memory;
mod record;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use group_stall::GroupStallWatch;
pub use group_stall::{GroupLag, PartitionStanding};
pub use record::{Header, InputRecord, PRODUCED_AT_HEADER};

use crate::StopSignal;
use crate::telemetry::Telemetry;
use crate::telemetry::events::{ComponentError, ErrorKind, LagMeasured};

/// What one poll of a source found.
#[derive(Debug)]
pub enum Polled<R> {
    Nothing,
    Record(R),
    /// The group gave this member these partitions; the source waits for [`PartitionSource::assign`].
    Assigned(Vec<i32>),
    /// The group takes these partitions away; the source waits for [`PartitionSource::unassign`].
    Revoked(Vec<i32>),
    /// Something went wrong around the records; emitted as a [`ComponentError`] of `kind`.
    Trouble {
        kind: ErrorKind,
        detail: String,
    },
}

/// What a source found for one partition's lag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionLag {
    pub partition: i32,
    /// Records between the position and the high watermark.
    pub lag: i64,
    /// The high watermark could not be read this time; `lag` uses the last one known.
    pub stale: bool,
}

/// Where a processor's records come from, and where its progress is committed.
pub trait PartitionSource {
    type Record<'a>: InputRecord
    where
        Self: 'a;

    fn topic(&self) -> &str;
    fn poll(&mut self, timeout: Duration) -> Polled<Self::Record<'_>>;
    /// The group's committed offsets of `partitions` (none for one the group never committed);
    /// an error when the broker cannot say now.
    fn committed(&mut self, partitions: &[i32]) -> Result<HashMap<i32, i64>, String>;
    /// Starts reading the assigned partitions at these offsets.
    fn assign(&mut self, positions: &[(i32, i64)]) -> Result<(), String>;
    /// Completes a revocation.
    fn unassign(&mut self) -> Result<(), String>;
    /// Commits `offsets`; without `wait` the broker's answer comes later, and a refusal is
    /// reported by [`PartitionSource::take_commit_failure`].
    fn commit(&mut self, offsets: &[(i32, i64)], wait: bool) -> Result<(), String>;
    /// Why an earlier commit without `wait` was refused, once.
    fn take_commit_failure(&mut self) -> Option<String> {
        None
    }
    /// Stops fetching (or resumes) every assigned partition, staying in the group.
    fn pause(&mut self, paused: bool);
    /// Records not read yet per partition, from `positions` (the next offset each will read).
    fn lags(&mut self, positions: &[(i32, i64)]) -> Vec<PartitionLag>;
    /// The whole group's lag, counting partitions no live member owns.
    fn group_lag(&mut self) -> Option<GroupLag>;
    /// Leaves the group for good, so the partitions move to the other members now.
    fn leave(&mut self);
}

/// What a processor may ask of the driver while it handles a moment of the loop.
pub trait Control {
    fn telemetry(&mut self) -> &mut Telemetry;
    fn is_stopped(&self) -> bool;
    /// True while the processor gives its partitions up because it stops for good (not because
    /// the group moves them): work worth finishing before leaving is finished now.
    fn is_leaving(&self) -> bool;
    /// Waits `duration` with every partition paused but the membership kept; returns the
    /// partitions the group revoked meanwhile (their revocation runs once the caller returns).
    fn pause_for(&mut self, duration: Duration) -> Vec<i32>;
}

/// A processor the driver runs: one handler per moment of a consumer's life.
pub trait PartitionedProcessor {
    type Error;

    /// Takes on `partitions`, given the group's committed offsets; returns where to read each.
    fn on_assign(
        &mut self,
        partitions: &[i32],
        committed: &Committed,
        control: &mut dyn Control,
    ) -> Result<Vec<(i32, i64)>, Self::Error>;
    fn on_record(&mut self, record: &dyn InputRecord, control: &mut dyn Control) -> Result<(), Self::Error>;
    /// Periodic work: checkpoints, flushes, timers.
    fn on_tick(&mut self, control: &mut dyn Control) -> Result<(), Self::Error>;
    /// Gives `partitions` up: finish what the next owner must find done.
    fn on_revoke(&mut self, partitions: &[i32], control: &mut dyn Control) -> Result<(), Self::Error>;
    /// Forgets `partitions`, once the driver has committed what `on_revoke` finished.
    fn release(&mut self, partitions: &[i32]);
    /// Per assigned partition, the next offset it will handle (for lag).
    fn positions(&self) -> Vec<(i32, i64)>;
    /// Per partition, the offset the group may commit now.
    fn committable(&self) -> Vec<(i32, i64)>;
    /// True when the processor has done what it was asked (a benchmark's record count).
    fn is_done(&self) -> bool {
        false
    }
    /// Extra gauges measured with the lag (a DLQ depth, say).
    fn report(&mut self, _control: &mut dyn Control) {}
}

/// How often the driver does what it does besides handling records.
#[derive(Debug, Clone, Copy)]
pub struct Cadence {
    pub poll: Duration,
    pub tick: Duration,
    pub commit: Duration,
    pub lag: Duration,
}

impl Default for Cadence {
    fn default() -> Self {
        Self {
            poll: Duration::from_millis(100),
            tick: Duration::from_millis(100),
            commit: Duration::from_secs(1),
            lag: Duration::from_secs(10),
        }
    }
}

/// The group's committed offsets of newly assigned partitions, as far as the broker could say.
#[derive(Debug, Clone, Default)]
pub struct Committed {
    offsets: HashMap<i32, i64>,
    /// Why the broker could not say, when it could not: a processor that must not redo work
    /// refuses to start rather than guess.
    pub unknown: Option<String>,
}

impl Committed {
    pub fn known(offsets: HashMap<i32, i64>) -> Self {
        Self { offsets, unknown: None }
    }

    pub fn unknown(why: impl Into<String>) -> Self {
        Self {
            offsets: HashMap::new(),
            unknown: Some(why.into()),
        }
    }

    pub fn get(&self, partition: i32) -> Option<i64> {
        self.offsets.get(&partition).copied()
    }

    /// Where to read `partition` from: `own`, where the processor's own output says it stands,
    /// or the committed offset when the group was rewound below that (to do the work again).
    pub fn resume(&self, partition: i32, own: i64) -> i64 {
        self.get(partition).filter(|committed| *committed < own).unwrap_or(own)
    }
}

/// Tries to read the committed offsets this many times before a processor is told they are
/// unknown.
const COMMITTED_ATTEMPTS: u32 = 5;

/// Records waiting this long with none arriving is reported as a stalled fetch.
const FETCH_STALL_WARNING: Duration = Duration::from_secs(30);

/// Runs `processor` on `source` until `stop` is set, the processor is done, or a handler fails.
/// On a clean way out every partition is revoked (so the processor finishes its work) and the
/// last offsets are committed; either way the group is left.
pub fn run<S, P>(
    source: &mut S,
    processor: &mut P,
    telemetry: &mut Telemetry,
    stop: &StopSignal,
    cadence: Cadence,
) -> Result<(), P::Error>
where
    S: PartitionSource,
    P: PartitionedProcessor,
{
    let mut driver = Driver {
        source,
        telemetry,
        stop,
        assigned: Vec::new(),
        revoked_while_paused: Vec::new(),
        committed: HashMap::new(),
        last_record: Instant::now(),
        group_stall: GroupStallWatch::default(),
        leaving: false,
    };
    let mut outcome = driver.until_stopped(processor, cadence);
    // A processor that failed is in no state to finish anything: what it did not commit is
    // done again by the next owner.
    let all = driver.assigned.clone();
    if outcome.is_ok() && !all.is_empty() {
        driver.leaving = true;
        outcome = driver.revoke(processor, &all, false);
    }
    driver.source.leave();
    driver.telemetry.summary();
    outcome
}

struct Driver<'a, S> {
    source: &'a mut S,
    telemetry: &'a mut Telemetry,
    stop: &'a StopSignal,
    assigned: Vec<i32>,
    /// Revocations a processor's wait met, run when its handler returns.
    revoked_while_paused: Vec<i32>,
    /// What was last committed, so an unchanged offset is not committed again.
    committed: HashMap<i32, i64>,
    last_record: Instant,
    group_stall: GroupStallWatch,
    leaving: bool,
}

impl<S: PartitionSource> Control for Driver<'_, S> {
    fn telemetry(&mut self) -> &mut Telemetry {
        self.telemetry
    }

    fn is_stopped(&self) -> bool {
        self.stop.is_stopped()
    }

    fn is_leaving(&self) -> bool {
        self.leaving
    }

    fn pause_for(&mut self, duration: Duration) -> Vec<i32> {
        self.source.pause(true);
        let until = Instant::now() + duration;
        while Instant::now() < until && !self.stop.is_stopped() {
            let trouble = match self.source.poll(Duration::from_millis(100).min(duration)) {
                Polled::Revoked(partitions) => {
                    // The group waits for this member: the caller must give them up now.
                    self.revoked_while_paused.extend(partitions);
                    break;
                }
                Polled::Trouble { kind, detail } => Some((kind, detail)),
                // A paused source hands out no record, and an assignment comes only after a
                // revocation has completed, which waits for the caller.
                Polled::Nothing | Polled::Record(_) | Polled::Assigned(_) => None,
            };
            if let Some((kind, detail)) = trouble {
                self.trouble(kind, &detail);
            }
        }
        self.source.pause(false);
        self.revoked_while_paused.clone()
    }
}

impl<S: PartitionSource> Driver<'_, S> {
    fn until_stopped<P: PartitionedProcessor>(&mut self, processor: &mut P, cadence: Cadence) -> Result<(), P::Error> {
        let mut last_tick = Instant::now();
        let mut last_commit = Instant::now();
        let mut last_lag: Option<Instant> = None;
        loop {
            if self.stop.is_stopped() || processor.is_done() {
                return Ok(());
            }
            self.poll_once(processor, cadence.poll)?;
            if last_tick.elapsed() >= cadence.tick {
                last_tick = Instant::now();
                processor.on_tick(self)?;
                self.after_handler(processor)?;
                if last_commit.elapsed() >= cadence.commit {
                    last_commit = Instant::now();
                    self.commit(processor, false);
                }
                if last_lag.is_none_or(|at| at.elapsed() >= cadence.lag) {
                    last_lag = Some(Instant::now());
                    self.measure_lag(processor);
                    processor.report(self);
                }
                self.telemetry.report_if_due();
            }
        }
    }

    fn poll_once<P: PartitionedProcessor>(&mut self, processor: &mut P, timeout: Duration) -> Result<(), P::Error> {
        let polled = match self.source.poll(timeout) {
            Polled::Record(record) => {
                self.last_record = Instant::now();
                // `record` borrows the source; the processor gets a control without it.
                let mut control = RecordControl {
                    telemetry: self.telemetry,
                    stop: self.stop,
                };
                return processor.on_record(&record, &mut control);
            }
            Polled::Nothing => Polled::Nothing,
            Polled::Assigned(partitions) => Polled::Assigned(partitions),
            Polled::Revoked(partitions) => Polled::Revoked(partitions),
            Polled::Trouble { kind, detail } => Polled::Trouble { kind, detail },
        };
        match polled {
            Polled::Nothing | Polled::Record(()) => Ok(()),
            Polled::Assigned(partitions) => self.assign(processor, &partitions),
            Polled::Revoked(partitions) => self.revoke(processor, &partitions, true),
            Polled::Trouble { kind, detail } => {
                self.trouble(kind, &detail);
                Ok(())
            }
        }
    }

    fn assign<P: PartitionedProcessor>(&mut self, processor: &mut P, partitions: &[i32]) -> Result<(), P::Error> {
        let committed = self.committed(partitions);
        let positions = processor.on_assign(partitions, &committed, self)?;
        self.assigned.extend(positions.iter().map(|(partition, _)| *partition));
        self.assigned.sort_unstable();
        self.assigned.dedup();
        if let Err(error) = self.source.assign(&positions) {
            self.trouble(ErrorKind::Rebalance, &error);
        }
        self.telemetry.metrics().set_ready();
        self.after_handler(processor)
    }

    /// The committed offsets of `partitions`, asked again a few times when the broker cannot say
    /// (a coordinator still loading after a restart).
    fn committed(&mut self, partitions: &[i32]) -> Committed {
        let mut backoff = Duration::from_millis(200);
        let mut attempt = 1;
        loop {
            match self.source.committed(partitions) {
                Ok(offsets) => return Committed::known(offsets),
                Err(error) if attempt >= COMMITTED_ATTEMPTS || self.stop.is_stopped() => {
                    self.trouble(
                        ErrorKind::Rebalance,
                        &format!("the group's committed offsets are unknown: {error}"),
                    );
                    return Committed::unknown(error);
                }
                Err(_) => {
                    std::thread::sleep(backoff);
                    backoff *= 2;
                    attempt += 1;
                }
            }
        }
    }

    fn revoke<P: PartitionedProcessor>(
        &mut self,
        processor: &mut P,
        partitions: &[i32],
        unassign: bool,
    ) -> Result<(), P::Error> {
        let revoking: Vec<i32> = partitions
            .iter()
            .copied()
            .filter(|p| self.assigned.contains(p))
            .collect();
        let outcome = processor.on_revoke(&revoking, self);
        // Whatever the processor finished is committed, even when it failed on the rest.
        self.commit(processor, true);
        processor.release(&revoking);
        self.assigned.retain(|partition| !revoking.contains(partition));
        self.revoked_while_paused
            .retain(|partition| !revoking.contains(partition));
        let topic = self.source.topic().to_owned();
        for partition in &revoking {
            self.committed.remove(partition);
            self.telemetry.metrics().forget_partition(&topic, *partition);
        }
        if unassign && let Err(error) = self.source.unassign() {
            self.trouble(ErrorKind::Rebalance, &error);
        }
        outcome
    }

    /// Runs the revocations a processor's wait met.
    fn after_handler<P: PartitionedProcessor>(&mut self, processor: &mut P) -> Result<(), P::Error> {
        if self.revoked_while_paused.is_empty() {
            return Ok(());
        }
        let revoked = std::mem::take(&mut self.revoked_while_paused);
        self.revoke(processor, &revoked, true)
    }

    /// Commits what changed since the last commit; a waited commit (at a revocation, at the
    /// stop) commits everything, so an earlier refused one is made good.
    fn commit<P: PartitionedProcessor>(&mut self, processor: &P, wait: bool) {
        if let Some(refused) = self.source.take_commit_failure() {
            self.trouble(ErrorKind::Commit, &refused);
            self.committed.clear();
        }
        let changed: Vec<(i32, i64)> = processor
            .committable()
            .into_iter()
            .filter(|(partition, offset)| wait || self.committed.get(partition) != Some(offset))
            .collect();
        if changed.is_empty() {
            return;
        }
        match self.source.commit(&changed, wait) {
            Ok(()) => self.committed.extend(changed),
            Err(error) => self.trouble(ErrorKind::Commit, &error),
        }
    }

    fn measure_lag<P: PartitionedProcessor>(&mut self, processor: &P) {
        let lags = self.source.lags(&processor.positions());
        let group = self.source.group_lag();
        let topic = self.source.topic().to_owned();
        self.telemetry.emit(LagMeasured {
            topic: &topic,
            partitions: &lags,
            group: group.as_ref().map(GroupLag::waiting),
        });
        if let Some(group) = &group
            && let Some(stalled) = self.group_stall.observe(group, Instant::now())
        {
            let detail = format!(
                "{} records wait in {topic} partitions {:?} and no member of the group has committed any of them for {} s; this member holds partitions {:?}",
                stalled.waiting,
                stalled.partitions,
                stalled.longest.as_secs(),
                self.assigned
            );
            self.trouble(ErrorKind::GroupStalled, &detail);
        }
        let idle = self.last_record.elapsed();
        if self.telemetry.lag() > 0 && idle >= FETCH_STALL_WARNING {
            let detail = format!(
                "{} records wait in {topic}, none arrived for {} s",
                self.telemetry.lag(),
                idle.as_secs()
            );
            self.trouble(ErrorKind::FetchStalled, &detail);
        }
    }

    fn trouble(&mut self, kind: ErrorKind, detail: &str) {
        self.telemetry.emit(ComponentError {
            kind,
            partition: None,
            detail,
        });
    }
}

/// The control a record handler gets: the source is busy lending the record, so a wait is a
/// plain sleep (a record handler waits only for something outside, such as the registry).
struct RecordControl<'a> {
    telemetry: &'a mut Telemetry,
    stop: &'a StopSignal,
}

impl Control for RecordControl<'_> {
    fn telemetry(&mut self) -> &mut Telemetry {
        self.telemetry
    }

    fn is_stopped(&self) -> bool {
        self.stop.is_stopped()
    }

    fn is_leaving(&self) -> bool {
        false
    }

    fn pause_for(&mut self, duration: Duration) -> Vec<i32> {
        std::thread::sleep(duration);
        Vec::new()
    }
}

#[cfg(test)]
mod tests;

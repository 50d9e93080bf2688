//! The driver's interface without Kafka: topics held in memory, and a consumer over them whose
//! rebalances and committed offsets a test scripts. Seal and sink unit tests run on it the same
//! scenarios tests/it runs against the real broker.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::{Header, InputRecord, PartitionLag, PartitionSource, Polled};
use crate::log::{LogError, PartitionLog, PartitionRecord};

#[derive(Debug, Default)]
struct Topics {
    /// Per topic, per partition, the records with the time they were written.
    partitions: HashMap<String, Vec<Vec<(PartitionRecord, i64)>>>,
    /// Per (group, topic, partition), the committed offset.
    committed: HashMap<(String, String, i32), i64>,
}

/// Topics in memory, shared by every handle (clones see the same records).
#[derive(Debug, Clone, Default)]
pub struct MemoryLog {
    topics: Arc<Mutex<Topics>>,
}

impl MemoryLog {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Topics> {
        self.topics.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn create_topic(&self, topic: &str, partitions: usize) {
        self.lock()
            .partitions
            .entry(topic.to_owned())
            .or_insert_with(|| vec![Vec::new(); partitions]);
    }

    pub fn partition_count(&self, topic: &str) -> usize {
        self.lock().partitions.get(topic).map_or(0, Vec::len)
    }

    /// Appends a record written at `at_ms` and returns its offset.
    ///
    /// # Panics
    /// When the topic or partition does not exist: a test wrote where nothing can be written.
    pub fn append(
        &self,
        topic: &str,
        partition: i32,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: Vec<(String, Vec<u8>)>,
        at_ms: i64,
    ) -> i64 {
        let mut topics = self.lock();
        let records = topics
            .partitions
            .get_mut(topic)
            .and_then(|partitions| partitions.get_mut(usize::try_from(partition).ok()?))
            .unwrap_or_else(|| panic!("memory log: no partition {partition} of {topic}"));
        let offset = i64::try_from(records.len()).unwrap_or(i64::MAX);
        records.push((
            PartitionRecord {
                offset,
                key: key.map(<[u8]>::to_vec),
                value: value.map(<[u8]>::to_vec),
                headers,
            },
            at_ms,
        ));
        offset
    }

    /// Every record of a partition.
    pub fn records(&self, topic: &str, partition: i32) -> Vec<PartitionRecord> {
        self.read(topic, partition, 0, i64::MAX).unwrap_or_default()
    }

    pub fn committed(&self, group: &str, topic: &str, partition: i32) -> Option<i64> {
        self.lock()
            .committed
            .get(&(group.to_owned(), topic.to_owned(), partition))
            .copied()
    }

    /// Sets a group's committed offset, as an operator's rewind does.
    pub fn set_committed(&self, group: &str, topic: &str, partition: i32, offset: i64) {
        self.lock()
            .committed
            .insert((group.to_owned(), topic.to_owned(), partition), offset);
    }

    fn with_partition<T>(
        &self,
        topic: &str,
        partition: i32,
        read: impl FnOnce(&[(PartitionRecord, i64)]) -> T,
    ) -> Result<T, LogError> {
        let topics = self.lock();
        let records = topics
            .partitions
            .get(topic)
            .and_then(|partitions| partitions.get(usize::try_from(partition).ok()?))
            .ok_or_else(|| LogError(format!("memory log: no partition {partition} of {topic}")))?;
        Ok(read(records))
    }
}

impl PartitionLog for MemoryLog {
    fn watermarks(&self, topic: &str, partition: i32) -> Result<(i64, i64), LogError> {
        self.with_partition(topic, partition, |records| {
            (0, i64::try_from(records.len()).unwrap_or(i64::MAX))
        })
    }

    fn read(&self, topic: &str, partition: i32, from: i64, until: i64) -> Result<Vec<PartitionRecord>, LogError> {
        self.with_partition(topic, partition, |records| {
            records
                .iter()
                .filter(|(record, _)| record.offset >= from && record.offset < until)
                .map(|(record, _)| record.clone())
                .collect()
        })
    }

    fn offset_for_time(&self, topic: &str, partition: i32, at_ms: i64) -> Result<Option<i64>, LogError> {
        self.with_partition(topic, partition, |records| {
            records
                .iter()
                .find(|(_, written)| *written >= at_ms)
                .map(|(record, _)| record.offset)
        })
    }
}

/// A record handed out by [`MemorySource`].
#[derive(Debug, Clone)]
pub struct MemoryRecord {
    pub partition: i32,
    pub record: PartitionRecord,
}

impl InputRecord for MemoryRecord {
    fn partition(&self) -> i32 {
        self.partition
    }

    fn offset(&self) -> i64 {
        self.record.offset
    }

    fn key(&self) -> Option<&[u8]> {
        self.record.key.as_deref()
    }

    fn value(&self) -> Option<&[u8]> {
        self.record.value.as_deref()
    }

    fn headers(&self) -> Vec<Header<'_>> {
        self.record
            .headers
            .iter()
            .map(|(key, value)| (key.as_str(), Some(value.as_slice())))
            .collect()
    }
}

/// A rebalance a test hands to the consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rebalance {
    Assign(Vec<i32>),
    /// Every assigned partition, as in Kafka's eager protocol.
    Revoke,
}

/// One member of a consumer group over a [`MemoryLog`] topic. Records come out partition by
/// partition in turns; rebalances come when a test queues them, before the next record.
#[derive(Debug)]
pub struct MemorySource {
    log: MemoryLog,
    topic: String,
    group: String,
    rebalances: VecDeque<Rebalance>,
    /// Rebalances that come once this many records have been handed out.
    scheduled: Vec<(usize, Rebalance)>,
    handed_out: usize,
    /// Assigned partitions and the next offset each reads.
    positions: Vec<(i32, i64)>,
    next_turn: usize,
    paused: bool,
    /// The partitions of a revocation that waits for `unassign`.
    revoking: Option<Vec<i32>>,
    /// The next reads of committed offsets that fail, as when a coordinator is still loading.
    pub fail_committed_reads: u32,
    /// The next commits made without waiting that the broker refuses after accepting them.
    pub refuse_commits: u32,
    commit_failure: Option<String>,
}

impl MemorySource {
    pub fn new(log: &MemoryLog, topic: &str, group: &str) -> Self {
        Self {
            log: log.clone(),
            topic: topic.to_owned(),
            group: group.to_owned(),
            rebalances: VecDeque::new(),
            scheduled: Vec::new(),
            handed_out: 0,
            positions: Vec::new(),
            next_turn: 0,
            paused: false,
            revoking: None,
            fail_committed_reads: 0,
            refuse_commits: 0,
            commit_failure: None,
        }
    }

    /// Queues a rebalance; it is handed out at the next poll.
    pub fn rebalance(&mut self, rebalance: Rebalance) {
        self.rebalances.push_back(rebalance);
    }

    /// Queues a rebalance for when `records` records have been handed out in all.
    pub fn rebalance_after(&mut self, records: usize, rebalance: Rebalance) {
        self.scheduled.push((records, rebalance));
    }

    /// The partitions assigned now.
    pub fn assigned(&self) -> Vec<i32> {
        self.positions.iter().map(|(partition, _)| *partition).collect()
    }
}

impl PartitionSource for MemorySource {
    type Record<'a> = MemoryRecord;

    fn topic(&self) -> &str {
        &self.topic
    }

    fn poll(&mut self, _timeout: Duration) -> Polled<MemoryRecord> {
        let handed_out = self.handed_out;
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.scheduled)
            .into_iter()
            .partition(|(after, _)| *after <= handed_out);
        self.scheduled = later;
        self.rebalances.extend(due.into_iter().map(|(_, rebalance)| rebalance));
        if self.revoking.is_none()
            && let Some(rebalance) = self.rebalances.pop_front()
        {
            return match rebalance {
                Rebalance::Assign(partitions) => Polled::Assigned(partitions),
                // The eager protocol Kafka uses here: a revocation takes every partition.
                Rebalance::Revoke => {
                    let all = self.assigned();
                    self.revoking = Some(all.clone());
                    Polled::Revoked(all)
                }
            };
        }
        if self.paused || self.revoking.is_some() || self.positions.is_empty() {
            return Polled::Nothing;
        }
        for turn in 0..self.positions.len() {
            let index = (self.next_turn + turn) % self.positions.len();
            let (partition, next) = self.positions[index];
            let found = self
                .log
                .read(&self.topic, partition, next, next + 1)
                .unwrap_or_default();
            if let Some(record) = found.into_iter().next() {
                self.positions[index].1 = record.offset + 1;
                self.next_turn = index + 1;
                self.handed_out += 1;
                return Polled::Record(MemoryRecord { partition, record });
            }
        }
        Polled::Nothing
    }

    fn committed(&mut self, partitions: &[i32]) -> Result<HashMap<i32, i64>, String> {
        if self.fail_committed_reads > 0 {
            self.fail_committed_reads -= 1;
            return Err("the group coordinator is loading".to_owned());
        }
        Ok(partitions
            .iter()
            .filter_map(|partition| {
                self.log
                    .committed(&self.group, &self.topic, *partition)
                    .map(|offset| (*partition, offset))
            })
            .collect())
    }

    /// As Kafka's `assign`: the new assignment replaces the old one.
    fn assign(&mut self, positions: &[(i32, i64)]) -> Result<(), String> {
        self.positions = positions.to_vec();
        Ok(())
    }

    fn unassign(&mut self) -> Result<(), String> {
        self.revoking = None;
        self.positions.clear();
        Ok(())
    }

    fn commit(&mut self, offsets: &[(i32, i64)], wait: bool) -> Result<(), String> {
        if !wait && self.refuse_commits > 0 {
            self.refuse_commits -= 1;
            self.commit_failure = Some("REBALANCE_IN_PROGRESS".to_owned());
            return Ok(());
        }
        for (partition, offset) in offsets {
            self.log.set_committed(&self.group, &self.topic, *partition, *offset);
        }
        Ok(())
    }

    fn take_commit_failure(&mut self) -> Option<String> {
        self.commit_failure.take()
    }

    fn pause(&mut self, paused: bool) {
        self.paused = paused;
    }

    fn lags(&mut self, positions: &[(i32, i64)]) -> Vec<PartitionLag> {
        positions
            .iter()
            .map(|(partition, next)| {
                let high = self.log.watermarks(&self.topic, *partition).map(|(_, high)| high);
                PartitionLag {
                    partition: *partition,
                    lag: high.as_ref().map_or(0, |high| (high - next).max(0)),
                    stale: high.is_err(),
                }
            })
            .collect()
    }

    fn group_lag(&mut self) -> Option<super::GroupLag> {
        None
    }

    fn leave(&mut self) {
        self.positions.clear();
    }
}

/// Why a run under [`UntilIdle`] ended with an error.
#[derive(Debug)]
pub enum Halt<E> {
    /// The scripted crash: the processor is dropped as a killed process would be.
    Crashed,
    Failed(E),
}

/// Runs a processor until its input is drained (a few ticks pass with no record), or crashes it
/// after a given number of records: what unit tests need to run a scenario to its end.
#[derive(Debug)]
pub struct UntilIdle<P> {
    pub inner: P,
    crash_after: Option<u64>,
    handled: u64,
    idle_ticks: u32,
}

impl<P> UntilIdle<P> {
    pub fn new(inner: P) -> Self {
        Self {
            inner,
            crash_after: None,
            handled: 0,
            idle_ticks: 0,
        }
    }

    /// Fails (as [`Halt::Crashed`]) when the record after the first `records` arrives.
    #[must_use]
    pub fn crash_after(mut self, records: u64) -> Self {
        self.crash_after = Some(records);
        self
    }
}

impl<P: super::PartitionedProcessor> super::PartitionedProcessor for UntilIdle<P> {
    type Error = Halt<P::Error>;

    fn on_assign(
        &mut self,
        partitions: &[i32],
        committed: &super::Committed,
        control: &mut dyn super::Control,
    ) -> Result<Vec<(i32, i64)>, Self::Error> {
        self.inner
            .on_assign(partitions, committed, control)
            .map_err(Halt::Failed)
    }

    fn on_record(&mut self, record: &dyn InputRecord, control: &mut dyn super::Control) -> Result<(), Self::Error> {
        if self.crash_after == Some(self.handled) {
            return Err(Halt::Crashed);
        }
        self.handled += 1;
        self.idle_ticks = 0;
        self.inner.on_record(record, control).map_err(Halt::Failed)
    }

    fn on_tick(&mut self, control: &mut dyn super::Control) -> Result<(), Self::Error> {
        self.idle_ticks += 1;
        self.inner.on_tick(control).map_err(Halt::Failed)
    }

    fn on_revoke(&mut self, partitions: &[i32], control: &mut dyn super::Control) -> Result<(), Self::Error> {
        self.inner.on_revoke(partitions, control).map_err(Halt::Failed)
    }

    fn release(&mut self, partitions: &[i32]) {
        self.inner.release(partitions);
    }

    fn positions(&self) -> Vec<(i32, i64)> {
        self.inner.positions()
    }

    fn committable(&self) -> Vec<(i32, i64)> {
        self.inner.committable()
    }

    fn is_done(&self) -> bool {
        self.idle_ticks >= 3 || self.inner.is_done()
    }
}

//! Reading a processor's own output topics back, whatever holds them: the Kafka adapter's
//! `PartitionReader` in production, [`crate::driver::memory::MemoryLog`] in unit tests.

/// A record read back from a partition, with its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRecord {
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl PartitionRecord {
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_slice())
    }
}

/// A partition could not be read back; the message names the topic and what failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LogError(pub String);

/// Random reads of single partitions, outside any consumer group.
pub trait PartitionLog {
    /// The first offset still stored and the offset the next record will get.
    fn watermarks(&self, topic: &str, partition: i32) -> Result<(i64, i64), LogError>;
    /// The records of `partition` with offsets in `from..until`, in order.
    fn read(&self, topic: &str, partition: i32, from: i64, until: i64) -> Result<Vec<PartitionRecord>, LogError>;
    /// The first offset whose record was written at or after `at_ms`; `None` when none is that late.
    fn offset_for_time(&self, topic: &str, partition: i32, at_ms: i64) -> Result<Option<i64>, LogError>;
}

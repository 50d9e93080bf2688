//! A record as a processor sees it, whichever source it came from.

/// On a sample of sealed records: the Kafka timestamp of the raw record it was sealed from, in
/// Unix milliseconds (decimal text), from which the sink measures produce -> queryable.
pub const PRODUCED_AT_HEADER: &str = "sealtrail.produced_at";

/// A record header: its name, and its value unless it is null.
pub type Header<'a> = (&'a str, Option<&'a [u8]>);

pub trait InputRecord {
    fn partition(&self) -> i32;
    fn offset(&self) -> i64;
    fn key(&self) -> Option<&[u8]>;
    fn value(&self) -> Option<&[u8]>;
    /// Every header, in order.
    fn headers(&self) -> Vec<Header<'_>>;

    /// The record's Kafka timestamp (the producer's create time, or the broker's append time) in
    /// Unix milliseconds, if it has one.
    fn timestamp_ms(&self) -> Option<i64> {
        None
    }

    /// The value of the first header called `name`.
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers()
            .into_iter()
            .find(|(key, _)| *key == name)
            .and_then(|(_, value)| value)
    }
}

impl std::fmt::Debug for dyn InputRecord + '_ {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InputRecord")
            .field("partition", &self.partition())
            .field("offset", &self.offset())
            .finish_non_exhaustive()
    }
}

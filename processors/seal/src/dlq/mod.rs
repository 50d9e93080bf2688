//! Dead-letter records: the original bytes and headers, plus headers that say why and where from;
//! reading them back and replaying them ([`replay`]).

mod replay;

use sealtrail_core::validate::Rejection;

pub const REASON: &str = "sealtrail.reason";
pub const DETAIL: &str = "sealtrail.detail";
pub const SOURCE_TOPIC: &str = "sealtrail.source.topic";
pub const SOURCE_PARTITION: &str = "sealtrail.source.partition";
pub const SOURCE_OFFSET: &str = "sealtrail.source.offset";
pub const REJECTED_AT: &str = "sealtrail.rejected_at";
/// On a record `sealtrail dlq replay` re-published: the DLQ record it came from (`partition/offset`)
/// and how many times it has been replayed. Kept when the record is rejected again.
pub const REPLAY_OF: &str = "sealtrail.replay.of";
pub const REPLAY_ATTEMPT: &str = "sealtrail.replay.attempt";

pub use replay::{Rejected, ReplayError, ReplayPlan, ReplaySummary, plan_replay, read_rejected, replay};

/// The headers of a DLQ record: the raw record's own headers (with its replay provenance, if it was
/// replayed), then sealtrail's.
pub fn headers(
    original: &[(&str, Option<&[u8]>)],
    rejection: &Rejection,
    topic: &str,
    partition: i32,
    offset: i64,
    now_ms: i64,
) -> Vec<(String, Option<Vec<u8>>)> {
    let mut headers: Vec<(String, Option<Vec<u8>>)> = original
        .iter()
        .filter(|(key, _)| !key.starts_with("sealtrail.") || key.starts_with("sealtrail.replay."))
        .map(|(key, value)| ((*key).to_owned(), value.map(<[u8]>::to_vec)))
        .collect();
    for (key, value) in [
        (REASON, rejection.code.as_str()),
        (DETAIL, rejection.detail.as_str()),
        (SOURCE_TOPIC, topic),
        (SOURCE_PARTITION, &partition.to_string()),
        (SOURCE_OFFSET, &offset.to_string()),
        (REJECTED_AT, &now_ms.to_string()),
    ] {
        headers.push((key.to_owned(), Some(value.as_bytes().to_vec())));
    }
    headers
}

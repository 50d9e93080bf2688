//! Dead-letter records: the original bytes and headers, plus headers that say why and where from;
//! reading them back and replaying them ([`replay`]).

mod replay;

use rdkafka::message::{Header, Headers, OwnedHeaders};

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
    original: Option<&rdkafka::message::BorrowedHeaders>,
    rejection: &Rejection,
    topic: &str,
    partition: i32,
    offset: i64,
    now_ms: i64,
) -> OwnedHeaders {
    let mut headers = OwnedHeaders::new();
    if let Some(original) = original {
        for header in original
            .iter()
            .filter(|h| !h.key.starts_with("sealtrail.") || h.key.starts_with("sealtrail.replay."))
        {
            headers = headers.insert(Header {
                key: header.key,
                value: header.value,
            });
        }
    }
    let partition = partition.to_string();
    let offset = offset.to_string();
    let now = now_ms.to_string();
    for (key, value) in [
        (REASON, rejection.code.as_str()),
        (DETAIL, rejection.detail.as_str()),
        (SOURCE_TOPIC, topic),
        (SOURCE_PARTITION, partition.as_str()),
        (SOURCE_OFFSET, offset.as_str()),
        (REJECTED_AT, now.as_str()),
    ] {
        headers = headers.insert(Header {
            key,
            value: Some(value),
        });
    }
    headers
}

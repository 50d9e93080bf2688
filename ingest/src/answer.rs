//! What the edge answers for each event: accepted with where Kafka stored it, or rejected with
//! the reason code the DLQ would have used (`invalid_json` for what never became an event).

use sealtrail_core::validate::Rejection;
use serde::Serialize;
use utoipa::ToSchema;

/// Why one event was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: &'static str,
    pub detail: String,
}

impl Refusal {
    pub fn invalid_json(detail: &str) -> Self {
        Self {
            reason: "invalid_json",
            detail: detail.to_owned(),
        }
    }
}

impl From<Rejection> for Refusal {
    fn from(rejection: Rejection) -> Self {
        Self {
            reason: rejection.code.as_str(),
            detail: rejection.detail,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    /// Kafka acknowledged the event (`acks=all`): it will be sealed.
    Accepted,
    /// Not sent: `reason` says why. Nothing of it reached Kafka.
    Rejected,
}

/// The answer for the event at `index` of the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct EventResult {
    pub index: usize,
    /// The event's id, when the event had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    pub status: EventStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
    /// The DLQ's reason code (`key_mismatch`, `invalid_event_id`, ...) or `invalid_json`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl EventResult {
    pub fn accepted(index: usize, event_id: String, partition: i32, offset: i64) -> Self {
        Self {
            index,
            event_id: Some(event_id),
            status: EventStatus::Accepted,
            partition: Some(partition),
            offset: Some(offset),
            reason: None,
            detail: None,
        }
    }

    /// A rejected event's result. The id and detail echo what the caller sent, so both are cut
    /// to a bounded length: a request of huge bad ids must not make a huge answer.
    pub fn rejected(index: usize, event_id: Option<String>, refusal: Refusal) -> Self {
        Self {
            index,
            event_id: event_id.map(|id| bounded(id, MAX_ECHOED_ID)),
            status: EventStatus::Rejected,
            partition: None,
            offset: None,
            reason: Some(refusal.reason.to_owned()),
            detail: Some(bounded(refusal.detail, MAX_ECHOED_DETAIL)),
        }
    }
}

/// The longest event id a rejected result repeats (a ULID is 26 characters).
const MAX_ECHOED_ID: usize = 128;
/// The longest detail a rejected result carries.
const MAX_ECHOED_DETAIL: usize = 512;

/// `text` cut to at most `max` bytes on a character boundary, marked when cut.
fn bounded(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("...");
    }
    text
}

/// The answer to a request: 200 when every event was accepted, 207 when some (or all) were
/// rejected; each event's own result either way, in the request's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(example = json!({
    "accepted": 1, "rejected": 1,
    "results": [
        {"index": 0, "event_id": "01JE5W7J6ZK8Q3V4M2N9P0R1ST", "status": "accepted", "partition": 3, "offset": 1207},
        {"index": 1, "event_id": "not-a-ulid", "status": "rejected", "reason": "invalid_event_id", "detail": "event_id \"not-a-ulid\" is not a ULID"}
    ]
}))]
pub struct IngestAnswer {
    pub accepted: usize,
    pub rejected: usize,
    pub results: Vec<EventResult>,
}

impl IngestAnswer {
    pub fn new(results: Vec<EventResult>) -> Self {
        let accepted = results.iter().filter(|r| r.status == EventStatus::Accepted).count();
        Self {
            accepted,
            rejected: results.len() - accepted,
            results,
        }
    }
}

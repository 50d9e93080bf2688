//! From a producer's JSON to the event the raw topic gets: the request's idempotency key and
//! trace context applied where the event has none, then the seal processor's own validation, so
//! what the edge accepts is what the seal seals.

use sealtrail_core::event::AuditEvent;
use sealtrail_core::validate::{Limits, check_event};

use crate::answer::Refusal;
use crate::event_json::EventJson;

/// What the request says about all its events.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// `X-Tenant-Id`, already matched with the credential: the record key of every event.
    pub tenant: String,
    /// `X-Idempotency-Key`: an event of a batch gets `<key>/<event_id>` (the same on a retry of
    /// the batch, whatever its order), a lone event the key itself.
    pub idempotency_key: Option<String>,
    /// `traceparent`, when valid: the trace and parent span of events that name none.
    pub trace: Option<TraceParent>,
    pub batch_size: usize,
}

/// A W3C `traceparent`: version 00, the trace id and the parent span id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: String,
    pub span_id: String,
    pub header: String,
}

fn is_lower_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl TraceParent {
    /// The header's trace context, `None` unless it is well formed with non-zero ids. A later
    /// version than 00 is read as 00 and what follows its four fields ignored, as W3C asks.
    pub fn parse(header: &str) -> Option<Self> {
        let mut parts = header.trim().split('-');
        let (Some(version), Some(trace_id), Some(span_id), Some(flags)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let extra = parts.next().is_some();
        let valid = is_lower_hex(version, 2)
            && version != "ff"
            && !(version == "00" && extra)
            && is_lower_hex(trace_id, 32)
            && is_lower_hex(span_id, 16)
            && is_lower_hex(flags, 2)
            && trace_id.bytes().any(|b| b != b'0')
            && span_id.bytes().any(|b| b != b'0');
        valid.then(|| Self {
            trace_id: trace_id.to_owned(),
            span_id: span_id.to_owned(),
            header: header.trim().to_owned(),
        })
    }
}

/// Action namespaces only sealtrail itself writes (the audit of reads, exports, legal holds,
/// retention, integrity incidents): a producer writing them could forge the platform's records.
const RESERVED_ACTIONS: [&str; 6] = [
    "audit.",
    "export.",
    "integrity.",
    "legalhold.",
    "retention.",
    "sealtrail.",
];
const RESERVED_ACTION_NAMES: [&str; 1] = ["policy.applied"];
/// Actor ids of sealtrail's own components.
const RESERVED_ACTOR_PREFIX: &str = "sealtrail-";

fn refuse_reserved(event: &AuditEvent) -> Result<(), Refusal> {
    if RESERVED_ACTIONS.iter().any(|prefix| event.action.starts_with(prefix))
        || RESERVED_ACTION_NAMES.contains(&event.action.as_str())
    {
        return Err(Refusal {
            reason: "invalid_action",
            detail: format!(
                "the action namespaces {} and {} are written by sealtrail itself",
                RESERVED_ACTIONS.join(", "),
                RESERVED_ACTION_NAMES.join(", ")
            ),
        });
    }
    if event.actor.id.starts_with(RESERVED_ACTOR_PREFIX) {
        return Err(Refusal {
            reason: "invalid_actor",
            detail: format!("actor ids starting with {RESERVED_ACTOR_PREFIX} are sealtrail's own components"),
        });
    }
    Ok(())
}

/// An event of the request, ready for the raw topic, or why not.
pub fn prepare(json: EventJson, request: &RequestContext, now_ms: i64, limits: &Limits) -> Result<AuditEvent, Refusal> {
    let mut event = json.into_event().map_err(|error| Refusal::invalid_json(&error.0))?;
    refuse_reserved(&event)?;
    if event.idempotency_key.is_none() {
        event.idempotency_key = request.idempotency_key.as_ref().map(|key| {
            if request.batch_size > 1 {
                format!("{key}/{}", event.event_id)
            } else {
                key.clone()
            }
        });
    }
    if let Some(trace) = &request.trace
        && event.trace_id.is_none()
        && event.span_id.is_none()
    {
        event.trace_id = Some(trace.trace_id.clone());
        event.span_id = Some(trace.span_id.clone());
    }
    check_event(&event, &request.tenant, now_ms, limits).map_err(Refusal::from)?;
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(tenant: &str) -> EventJson {
        serde_json::from_value(serde_json::json!({
            "event_id": "01JE5W7J6ZK8Q3V4M2N9P0R1ST", "tenant_id": tenant, "occurred_at": 1_000_000,
            "action": "user.login", "actor": {"id": "u"}, "resource": {"type": "t", "id": "i"},
            "outcome": {"status": "SUCCESS"}
        }))
        .expect("valid")
    }

    fn request(batch_size: usize) -> RequestContext {
        RequestContext {
            tenant: "acme".to_owned(),
            idempotency_key: Some("req-7".to_owned()),
            trace: TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            batch_size,
        }
    }

    #[test]
    fn the_requests_key_and_trace_reach_events_that_name_none() {
        let alone = prepare(json("acme"), &request(1), 1_000_000, &Limits::default()).expect("valid");
        assert_eq!(alone.idempotency_key.as_deref(), Some("req-7"));
        assert_eq!(alone.trace_id.as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert_eq!(alone.span_id.as_deref(), Some("00f067aa0ba902b7"));
        let third = prepare(json("acme"), &request(5), 1_000_000, &Limits::default()).expect("valid");
        assert_eq!(
            third.idempotency_key.as_deref(),
            Some("req-7/01JE5W7J6ZK8Q3V4M2N9P0R1ST")
        );
    }

    #[test]
    fn the_seal_processors_rules_refuse_with_its_codes() {
        let other = prepare(json("globex"), &request(1), 1_000_000, &Limits::default()).expect_err("tenant");
        assert_eq!(other.reason, "key_mismatch");
        let future = prepare(json("acme"), &request(1), 0, &Limits::default()).expect_err("future");
        assert_eq!(future.reason, "future_timestamp");
    }

    #[test]
    fn the_platforms_own_actions_and_actors_are_refused() {
        for (action, actor) in [
            ("audit.events.read", "u"),
            ("policy.applied", "u"),
            ("user.login", "sealtrail-retention"),
        ] {
            let mut forged = json("acme");
            forged.action = action.to_owned();
            forged.actor.id = actor.to_owned();
            let refused = prepare(forged, &request(1), 1_000_000, &Limits::default()).expect_err(action);
            assert!(
                ["invalid_action", "invalid_actor"].contains(&refused.reason),
                "{refused:?}"
            );
        }
    }

    #[test]
    fn only_well_formed_trace_parents_count() {
        assert!(TraceParent::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-later").is_some());
        for bad in [
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
    }
}

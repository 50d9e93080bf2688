//! Events the platform itself records in a tenant's trail: a legal hold, an export, a retention
//! policy or run, a verification incident. They are sealed like any producer's event.

use sealtrail_core::event::{Actor, AuditEvent, Outcome, OutcomeStatus, Resource};

/// An event the platform itself records in a tenant's trail (a legal hold, an export, a policy, a
/// retention run, an incident): successful unless the caller says otherwise with struct update.
pub fn platform_event(
    tenant: &str,
    at: time::OffsetDateTime,
    action: &str,
    actor: Actor,
    (resource_kind, resource_id): (&str, &str),
    correlation_id: &str,
    attributes: Vec<(String, String)>,
) -> AuditEvent {
    AuditEvent {
        event_id: ulid::Ulid::new().to_string(),
        tenant_id: tenant.to_owned(),
        occurred_at: i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX),
        action: action.to_owned(),
        actor,
        resource: Resource {
            kind: resource_kind.to_owned(),
            id: resource_id.to_owned(),
            path: None,
        },
        outcome: Outcome {
            status: OutcomeStatus::Success,
            reason_code: None,
            reason_text: None,
        },
        correlation_id: Some(correlation_id.to_owned()),
        attributes,
        ..AuditEvent::default()
    }
}

//! gRPC messages to the edge's model and back: an event of `schemas/ingest.proto` becomes the
//! same `EventJson` a REST body gives, so both go through one validation.

use sealtrail_core::event::{ActorType, AuditEvent, OutcomeStatus};
use sealtrail_ingest::event_json::{
    ActorJson, Attributes, ChangeJson, EvidenceJson, OutcomeJson, ResourceJson, Timestamp,
};
use sealtrail_ingest::{EventJson, EventResult, EventStatus, IngestAnswer, Refusal};

use super::pb;

fn missing(field: &str) -> Refusal {
    Refusal {
        reason: "missing_field",
        detail: format!("{field} is required"),
    }
}

/// The contract's name of an actor type (`USER`...); unspecified reads as unknown.
fn actor_type(value: i32) -> Result<Option<String>, Refusal> {
    let kind = pb::ActorType::try_from(value).map_err(|_| Refusal {
        reason: "invalid_json",
        detail: format!("actor.type {value} is not an ActorType of sealtrail.ingest.v1"),
    })?;
    Ok(match kind {
        pb::ActorType::Unspecified => None,
        named => named.as_str_name().strip_prefix("ACTOR_TYPE_").map(str::to_owned),
    })
}

fn outcome_status(value: i32) -> Result<String, Refusal> {
    match pb::OutcomeStatus::try_from(value) {
        Ok(pb::OutcomeStatus::Unspecified) => Err(missing("outcome.status")),
        Ok(named) => Ok(named
            .as_str_name()
            .strip_prefix("OUTCOME_STATUS_")
            .unwrap_or_default()
            .to_owned()),
        Err(_) => Err(Refusal {
            reason: "invalid_json",
            detail: format!("outcome.status {value} is not an OutcomeStatus of sealtrail.ingest.v1"),
        }),
    }
}

/// One event of a batch, in the edge's model.
pub fn event(event: pb::AuditEvent) -> Result<EventJson, Refusal> {
    let actor = event.actor.ok_or_else(|| missing("actor"))?;
    let resource = event.resource.ok_or_else(|| missing("resource"))?;
    let outcome = event.outcome.ok_or_else(|| missing("outcome"))?;
    Ok(EventJson {
        event_id: event.event_id,
        tenant_id: event.tenant_id,
        occurred_at: Timestamp::Millis(event.occurred_at_ms),
        action: event.action,
        actor: ActorJson {
            id: actor.id,
            kind: actor_type(actor.r#type)?,
            display_name: actor.display_name,
            authority: actor.authority,
            on_behalf_of: actor.on_behalf_of,
        },
        resource: ResourceJson {
            kind: resource.r#type,
            id: resource.id,
            path: resource.path,
        },
        outcome: OutcomeJson {
            status: outcome_status(outcome.status)?,
            reason_code: outcome.reason_code,
            reason_text: outcome.reason_text,
        },
        correlation_id: event.correlation_id,
        causation_id: event.causation_id,
        trace_id: event.trace_id,
        span_id: event.span_id,
        idempotency_key: event.idempotency_key,
        policy_version: event.policy_version,
        evidence: event
            .evidence
            .into_iter()
            .map(|evidence| EvidenceJson {
                kind: evidence.kind,
                uri: evidence.uri,
                sha256: evidence.sha256,
            })
            .collect(),
        changes: event
            .changes
            .into_iter()
            .map(|change| ChangeJson {
                field: change.field,
                before: change.before,
                after: change.after,
            })
            .collect(),
        attributes: Attributes(
            event
                .attributes
                .into_iter()
                .map(|attribute| (attribute.name, attribute.value))
                .collect(),
        ),
        session_id: event.session_id,
    })
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn result(result: EventResult) -> pb::EventResult {
    pb::EventResult {
        index: count(result.index),
        event_id: result.event_id,
        status: match result.status {
            EventStatus::Accepted => pb::event_result::Status::Accepted,
            EventStatus::Rejected => pb::event_result::Status::Rejected,
        }
        .into(),
        partition: result.partition,
        offset: result.offset,
        reason: result.reason,
        detail: result.detail,
    }
}

pub fn answer(answer: IngestAnswer) -> pb::IngestAnswer {
    pb::IngestAnswer {
        accepted: count(answer.accepted),
        rejected: count(answer.rejected),
        results: answer.results.into_iter().map(result).collect(),
    }
}

/// An event as the gRPC message that carries it: what a Rust caller of the service sends.
pub fn message(event: &AuditEvent) -> pb::AuditEvent {
    let actor_type = match event.actor.kind {
        ActorType::User => pb::ActorType::User,
        ActorType::Service => pb::ActorType::Service,
        ActorType::System => pb::ActorType::System,
        ActorType::SupportAgent => pb::ActorType::SupportAgent,
        ActorType::ApiClient => pb::ActorType::ApiClient,
        ActorType::Unknown => pb::ActorType::Unknown,
    };
    let status = match event.outcome.status {
        OutcomeStatus::Success => pb::OutcomeStatus::Success,
        OutcomeStatus::Failure => pb::OutcomeStatus::Failure,
        OutcomeStatus::Denied => pb::OutcomeStatus::Denied,
    };
    pb::AuditEvent {
        event_id: event.event_id.clone(),
        tenant_id: event.tenant_id.clone(),
        occurred_at_ms: event.occurred_at,
        action: event.action.clone(),
        actor: Some(pb::Actor {
            id: event.actor.id.clone(),
            r#type: actor_type.into(),
            display_name: event.actor.display_name.clone(),
            authority: event.actor.authority.clone(),
            on_behalf_of: event.actor.on_behalf_of.clone(),
        }),
        resource: Some(pb::Resource {
            r#type: event.resource.kind.clone(),
            id: event.resource.id.clone(),
            path: event.resource.path.clone(),
        }),
        outcome: Some(pb::Outcome {
            status: status.into(),
            reason_code: event.outcome.reason_code.clone(),
            reason_text: event.outcome.reason_text.clone(),
        }),
        correlation_id: event.correlation_id.clone(),
        causation_id: event.causation_id.clone(),
        trace_id: event.trace_id.clone(),
        span_id: event.span_id.clone(),
        idempotency_key: event.idempotency_key.clone(),
        policy_version: event.policy_version.clone(),
        evidence: event
            .evidence
            .iter()
            .map(|evidence| pb::Evidence {
                kind: evidence.kind.clone(),
                uri: evidence.uri.clone(),
                sha256: evidence.sha256.clone(),
            })
            .collect(),
        changes: event
            .changes
            .iter()
            .map(|change| pb::Change {
                field: change.field.clone(),
                before: change.before.clone(),
                after: change.after.clone(),
            })
            .collect(),
        attributes: event
            .attributes
            .iter()
            .map(|(name, value)| pb::Attribute {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
        session_id: event.session_id.clone(),
    }
}

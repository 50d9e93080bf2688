//! sealtrail's Avro contract (`schemas/`): the schemas, and the mapping between decoded values
//! and the event model, in both directions.

mod from_val;
mod write;

pub use from_val::{ShapeError, audit_event_from_val, sealed_record_from_val};
pub use write::{encode_audit_event, encode_sealed_record};

use std::sync::OnceLock;

use apache_avro::Schema;

use super::decode::{DecodeError, Reader, decode_all};
use super::plan::{Plan, PlanError, compile};
use crate::event::{Actor, ActorType, AuditEvent, Change, Evidence, Outcome, OutcomeStatus, Resource};

/// The raw event contract, as registered under `<raw topic>-value`.
pub const AUDIT_EVENT_SCHEMA: &str = include_str!("../../../../schemas/audit-event.avsc");
/// The sealed topic's contract: a union of sealed event and checkpoint.
pub const SEALED_RECORD_SCHEMA: &str = include_str!("../../../../schemas/sealed-record.avsc");
/// Attribute key prefix under which fields unknown to this version of the contract are kept.
pub const UNKNOWN_FIELD_PREFIX: &str = "schema.";

pub fn audit_event_schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| Schema::parse_str(AUDIT_EVENT_SCHEMA).expect("the audit event contract parses"))
}

pub fn sealed_record_schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| Schema::parse_str(SEALED_RECORD_SCHEMA).expect("the sealed record contract parses"))
}

/// How to read events written with one writer schema.
///
/// Built once per schema id: a writer schema with the contract's binary layout (equal Parsing
/// Canonical Form) is read by a decoder written for it; any other compatible schema goes through
/// a compiled resolution plan.
#[derive(Debug, Clone)]
pub enum EventReader {
    Contract,
    Resolved(Box<Plan>),
}

impl EventReader {
    pub fn for_writer(writer: &Schema) -> Result<Self, PlanError> {
        static CONTRACT_FORM: OnceLock<String> = OnceLock::new();
        let contract = CONTRACT_FORM.get_or_init(|| audit_event_schema().canonical_form());
        if writer.canonical_form() == *contract {
            return Ok(Self::Contract);
        }
        Ok(Self::Resolved(Box::new(compile(writer, audit_event_schema(), true)?)))
    }

    /// Reads one Avro body (without the Confluent header).
    pub fn read(&self, body: &[u8]) -> Result<AuditEvent, String> {
        match self {
            Self::Contract => decode_audit_event(body).map_err(|e| e.to_string()),
            Self::Resolved(plan) => {
                let value = decode_all(plan, body).map_err(|e| e.to_string())?;
                audit_event_from_val(value).map_err(|e| e.to_string())
            }
        }
    }
}

/// Decodes a body written with the contract schema itself, straight into the event model.
pub fn decode_audit_event(body: &[u8]) -> Result<AuditEvent, DecodeError> {
    let mut r = Reader::new(body);
    let event_id = r.string()?;
    let tenant_id = r.string()?;
    let occurred_at = r.long()?;
    let action = r.string()?;
    let actor = Actor {
        id: r.string()?,
        kind: ActorType::ALL[r.enum_index(ActorType::ALL.len())?],
        display_name: r.optional_string()?,
        authority: r.optional_string()?,
        on_behalf_of: r.optional_string()?,
    };
    let resource = Resource {
        kind: r.string()?,
        id: r.string()?,
        path: r.optional_string()?,
    };
    let outcome = Outcome {
        status: OutcomeStatus::ALL[r.enum_index(OutcomeStatus::ALL.len())?],
        reason_code: r.optional_string()?,
        reason_text: r.optional_string()?,
    };
    let correlation_id = r.optional_string()?;
    let causation_id = r.optional_string()?;
    let trace_id = r.optional_string()?;
    let span_id = r.optional_string()?;
    let idempotency_key = r.optional_string()?;
    let policy_version = r.optional_string()?;
    let mut evidence = Vec::new();
    r.blocks(|r| {
        evidence.push(Evidence {
            kind: r.string()?,
            uri: r.string()?,
            sha256: r.optional_string()?,
        });
        Ok(())
    })?;
    let mut changes = Vec::new();
    r.blocks(|r| {
        changes.push(Change {
            field: r.string()?,
            before: r.optional_string()?,
            after: r.optional_string()?,
        });
        Ok(())
    })?;
    let mut attributes = Vec::new();
    r.blocks(|r| {
        attributes.push((r.string()?, r.string()?));
        Ok(())
    })?;
    let session_id = r.optional_string()?;
    if r.remaining() > 0 {
        return Err(DecodeError::TrailingBytes(r.remaining()));
    }
    Ok(AuditEvent {
        event_id,
        tenant_id,
        occurred_at,
        action,
        actor,
        resource,
        outcome,
        correlation_id,
        causation_id,
        trace_id,
        span_id,
        idempotency_key,
        policy_version,
        evidence,
        changes,
        attributes,
        session_id,
    })
}

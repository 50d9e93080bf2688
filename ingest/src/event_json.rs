//! An audit event as JSON, in the Avro contract's shape (`schemas/audit-event.avsc`): the same
//! field names and nesting, optional fields `null` or absent, `occurred_at` in milliseconds since
//! the epoch or as RFC 3339. Unknown fields are refused, so a misspelt field is an error rather
//! than a silent loss.

use std::fmt;

use sealtrail_core::event::{Actor, ActorType, AuditEvent, Change, Evidence, Outcome, OutcomeStatus, Resource};
use serde::Deserialize;
use serde::de::{MapAccess, Visitor};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

/// One audit event as a producer sends it to the edge.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "event_id": "01JE5W7J6ZK8Q3V4M2N9P0R1ST",
    "tenant_id": "acme",
    "occurred_at": "2026-12-06T10:15:30.123Z",
    "action": "user.login",
    "actor": {"id": "alice@example.com", "type": "USER"},
    "resource": {"type": "account", "id": "acct-42"},
    "outcome": {"status": "SUCCESS"},
    "attributes": {"ip": "203.0.113.7"}
}))]
pub struct EventJson {
    /// A ULID chosen by the producer.
    pub event_id: String,
    pub tenant_id: String,
    /// Milliseconds since the Unix epoch, or an RFC 3339 time.
    #[schema(value_type = String)]
    pub occurred_at: Timestamp,
    /// A dotted lowercase name such as `user.login`.
    pub action: String,
    pub actor: ActorJson,
    pub resource: ResourceJson,
    pub outcome: OutcomeJson,
    #[serde(default)]
    pub correlation_id: Option<String>,
    #[serde(default)]
    pub causation_id: Option<String>,
    #[serde(default)]
    pub trace_id: Option<String>,
    #[serde(default)]
    pub span_id: Option<String>,
    #[serde(default)]
    pub idempotency_key: Option<String>,
    #[serde(default)]
    pub policy_version: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub evidence: Vec<EvidenceJson>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub changes: Vec<ChangeJson>,
    /// Free-form string details, kept in the order written; a name given twice is refused
    /// (`duplicate_attribute`).
    #[serde(default, deserialize_with = "null_as_empty")]
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    pub attributes: Attributes,
    #[serde(default)]
    pub session_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActorJson {
    pub id: String,
    /// `USER`, `SERVICE`, `SYSTEM`, `SUPPORT_AGENT`, `API_CLIENT` or `UNKNOWN` (the default).
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub authority: Option<String>,
    #[serde(default)]
    pub on_behalf_of: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceJson {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    #[serde(default)]
    pub path: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutcomeJson {
    /// `SUCCESS`, `FAILURE` or `DENIED`.
    pub status: String,
    #[serde(default)]
    pub reason_code: Option<String>,
    #[serde(default)]
    pub reason_text: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvidenceJson {
    pub kind: String,
    pub uri: String,
    #[serde(default)]
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeJson {
    pub field: String,
    #[serde(default)]
    pub before: Option<String>,
    #[serde(default)]
    pub after: Option<String>,
}

/// `null` read as the contract's default (an empty array or map), as for an absent field.
fn null_as_empty<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// `occurred_at`: milliseconds since the epoch, or RFC 3339.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Timestamp {
    Millis(i64),
    Text(String),
}

/// The attributes in the order written, duplicates kept (a JSON object read into a map would
/// keep only the last of two equal names, hiding what the seal processor refuses).
#[derive(Debug, Clone, Default)]
pub struct Attributes(pub Vec<(String, String)>);

impl<'de> Deserialize<'de> for Attributes {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct InOrder;
        impl<'de> Visitor<'de> for InOrder {
            type Value = Attributes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of string values")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Attributes, M::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, String>()? {
                    entries.push(entry);
                }
                Ok(Attributes(entries))
            }
        }
        deserializer.deserialize_map(InOrder)
    }
}

/// Why a JSON event is not an event of the contract (before the pipeline's own validation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeError(pub String);

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Timestamp {
    fn millis(&self) -> Result<i64, ShapeError> {
        match self {
            Self::Millis(millis) => Ok(*millis),
            Self::Text(text) => OffsetDateTime::parse(text, &Rfc3339)
                .map(|at| {
                    let nanos = at.unix_timestamp_nanos() / 1_000_000;
                    i64::try_from(nanos).unwrap_or(i64::MAX)
                })
                .map_err(|_| {
                    ShapeError("occurred_at is neither milliseconds since the epoch nor an RFC 3339 time".to_owned())
                }),
        }
    }
}

impl EventJson {
    /// One event's JSON text. A refusal names the field and what is wrong with it, never the
    /// value found there, which may be personal data.
    pub fn parse(text: &str) -> Result<Self, ShapeError> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let parsed: Self = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
            let at = error.path().to_string();
            let inner = error.inner();
            let what = if inner.is_syntax() || inner.is_eof() {
                format!("is not JSON (line {}, column {})", inner.line(), inner.column())
            } else {
                let message = inner.to_string();
                // serde names missing and unknown fields without quoting any value.
                match ["missing field", "unknown field"]
                    .iter()
                    .find(|kind| message.starts_with(*kind))
                {
                    Some(_) => message.split(" at line").next().unwrap_or_default().to_owned(),
                    None => "has a value of the wrong type or form".to_owned(),
                }
            };
            ShapeError(if at == "." { what } else { format!("{at}: {what}") })
        })?;
        deserializer
            .end()
            .map_err(|_| ShapeError("text follows the event's JSON".to_owned()))?;
        Ok(parsed)
    }

    /// The event of the contract this JSON describes.
    pub fn into_event(self) -> Result<AuditEvent, ShapeError> {
        let kind = match self.actor.kind.as_deref() {
            None => ActorType::Unknown,
            Some(symbol) => ActorType::from_symbol(symbol).ok_or_else(|| {
                ShapeError(format!(
                    "actor.type is not one of {}",
                    ActorType::ALL.map(ActorType::symbol).join(", ")
                ))
            })?,
        };
        let status = OutcomeStatus::from_symbol(&self.outcome.status).ok_or_else(|| {
            ShapeError(format!(
                "outcome.status is not one of {}",
                OutcomeStatus::ALL.map(OutcomeStatus::symbol).join(", ")
            ))
        })?;
        Ok(AuditEvent {
            event_id: self.event_id,
            tenant_id: self.tenant_id,
            occurred_at: self.occurred_at.millis()?,
            action: self.action,
            actor: Actor {
                id: self.actor.id,
                kind,
                display_name: self.actor.display_name,
                authority: self.actor.authority,
                on_behalf_of: self.actor.on_behalf_of,
            },
            resource: Resource {
                kind: self.resource.kind,
                id: self.resource.id,
                path: self.resource.path,
            },
            outcome: Outcome {
                status,
                reason_code: self.outcome.reason_code,
                reason_text: self.outcome.reason_text,
            },
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            trace_id: self.trace_id,
            span_id: self.span_id,
            idempotency_key: self.idempotency_key,
            policy_version: self.policy_version,
            evidence: self
                .evidence
                .into_iter()
                .map(|e| Evidence {
                    kind: e.kind,
                    uri: e.uri,
                    sha256: e.sha256,
                })
                .collect(),
            changes: self
                .changes
                .into_iter()
                .map(|c| Change {
                    field: c.field,
                    before: c.before,
                    after: c.after,
                })
                .collect(),
            attributes: self.attributes.0,
            session_id: self.session_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<AuditEvent, String> {
        EventJson::parse(json).map_err(|e| e.0)?.into_event().map_err(|e| e.0)
    }

    const MINIMAL: &str = r#"{"event_id":"01JE5W7J6ZK8Q3V4M2N9P0R1ST","tenant_id":"acme","occurred_at":1765016130123,
        "action":"user.login","actor":{"id":"u1"},"resource":{"type":"account","id":"a1"},"outcome":{"status":"DENIED"}}"#;

    #[test]
    fn the_contracts_shape_becomes_the_event_with_its_defaults() {
        let event = parse(MINIMAL).expect("valid");
        assert_eq!(event.occurred_at, 1_765_016_130_123);
        assert_eq!(event.actor.kind, ActorType::Unknown);
        assert_eq!(event.outcome.status, OutcomeStatus::Denied);
        assert!(event.attributes.is_empty() && event.session_id.is_none());
    }

    #[test]
    fn rfc3339_times_and_attribute_order_and_duplicates_are_kept() {
        let json = MINIMAL
            .replace("1765016130123", r#""2025-12-06T10:15:30.123Z""#)
            .replace(r#""outcome""#, r#""attributes":{"b":"1","a":"2","b":"3"},"outcome""#);
        let event = parse(&json).expect("valid");
        assert_eq!(event.occurred_at, 1_765_016_130_123);
        assert_eq!(
            event.attributes,
            vec![
                ("b".into(), "1".into()),
                ("a".into(), "2".into()),
                ("b".into(), "3".into())
            ]
        );
    }

    #[test]
    fn a_wrong_value_is_named_by_its_field_never_quoted() {
        let wrong = MINIMAL.replace(r#""actor":{"id":"u1"}"#, r#""actor":"alice@example.com""#);
        let refused = parse(&wrong).expect_err("wrong type");
        assert!(refused.starts_with("actor: "), "{refused}");
        assert!(!refused.contains("alice"), "{refused}");
        let missing = MINIMAL.replace(r#""action":"user.login","#, "");
        assert!(parse(&missing).expect_err("missing").contains("missing field `action`"));
    }

    #[test]
    fn null_lists_and_maps_are_empty() {
        let nulls = MINIMAL.replace(
            r#""outcome""#,
            r#""evidence":null,"changes":null,"attributes":null,"outcome""#,
        );
        let event = parse(&nulls).expect("valid");
        assert!(event.evidence.is_empty() && event.changes.is_empty() && event.attributes.is_empty());
    }

    #[test]
    fn unknown_fields_symbols_and_times_are_named() {
        let misspelt = MINIMAL.replace(r#""action""#, r#""actoin":"x","action""#);
        assert!(parse(&misspelt).expect_err("unknown field").contains("actoin"));
        let symbol = MINIMAL.replace(r#""DENIED""#, r#""MAYBE""#);
        assert!(parse(&symbol).expect_err("symbol").contains("outcome.status"));
        let time = MINIMAL.replace("1765016130123", r#""yesterday""#);
        assert!(parse(&time).expect_err("time").contains("occurred_at"));
    }
}

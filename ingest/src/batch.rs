//! A request's body as events: one JSON object, a JSON array of them, or NDJSON (one per line),
//! each read on its own so that one bad event does not refuse the others.

use crate::event_json::{EventJson, ShapeError};

/// The most events one request may carry; larger batches are refused whole (413), never cut.
pub const MAX_EVENTS_PER_REQUEST: usize = 1_000;

/// How the body is laid out, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// `application/json`: an object or an array of objects.
    Json,
    /// `application/x-ndjson` (or `application/jsonl`): one object per line.
    NdJson,
}

impl BodyFormat {
    /// The format of a `Content-Type`, `None` for one the edge does not read.
    pub fn of(content_type: &str) -> Option<Self> {
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        if essence.eq_ignore_ascii_case("application/json") {
            Some(Self::Json)
        } else if ["application/x-ndjson", "application/jsonl", "application/jsonlines"]
            .iter()
            .any(|name| essence.eq_ignore_ascii_case(name))
        {
            Some(Self::NdJson)
        } else {
            None
        }
    }
}

/// Why a whole body is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// Not JSON at all, or JSON that is neither an object nor an array.
    NotJson(String),
    Empty,
    TooMany(usize),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotJson(reason) => write!(f, "the body is not a JSON event, array of events or NDJSON: {reason}"),
            Self::Empty => f.write_str("the body holds no event"),
            Self::TooMany(count) => write!(
                f,
                "the body holds {count} events; at most {MAX_EVENTS_PER_REQUEST} per request, send the rest in another"
            ),
        }
    }
}

/// The events of `body`, each parsed or refused with the reason.
pub fn parse_body(body: &[u8], format: BodyFormat) -> Result<Vec<Result<EventJson, ShapeError>>, BodyError> {
    let values: Vec<Result<serde_json::Value, ShapeError>> = match format {
        BodyFormat::Json => match serde_json::from_slice(body).map_err(|e| BodyError::NotJson(e.to_string()))? {
            serde_json::Value::Array(items) => items.into_iter().map(Ok).collect(),
            object @ serde_json::Value::Object(_) => vec![Ok(object)],
            _ => return Err(BodyError::NotJson("neither an object nor an array".to_owned())),
        },
        BodyFormat::NdJson => {
            let text = std::str::from_utf8(body).map_err(|e| BodyError::NotJson(e.to_string()))?;
            text.lines()
                .enumerate()
                .filter(|(_, line)| !line.trim().is_empty())
                .map(|(number, line)| {
                    serde_json::from_str(line).map_err(|e| ShapeError(format!("line {} is not JSON: {e}", number + 1)))
                })
                .collect()
        }
    };
    if values.is_empty() {
        return Err(BodyError::Empty);
    }
    if values.len() > MAX_EVENTS_PER_REQUEST {
        return Err(BodyError::TooMany(values.len()));
    }
    Ok(values
        .into_iter()
        .map(|value| value.and_then(|value| serde_json::from_value(value).map_err(|e| ShapeError(e.to_string()))))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENT: &str = r#"{"event_id":"01JE5W7J6ZK8Q3V4M2N9P0R1ST","tenant_id":"acme","occurred_at":1,"action":"user.login","actor":{"id":"u"},"resource":{"type":"t","id":"i"},"outcome":{"status":"SUCCESS"}}"#;

    #[test]
    fn an_object_an_array_and_ndjson_are_read_event_by_event() {
        assert_eq!(parse_body(EVENT.as_bytes(), BodyFormat::Json).expect("one").len(), 1);
        let array = format!("[{EVENT},{{\"event_id\":1}},{EVENT}]");
        let parsed = parse_body(array.as_bytes(), BodyFormat::Json).expect("three");
        assert!(parsed[0].is_ok() && parsed[1].is_err() && parsed[2].is_ok());
        let lines = format!("{EVENT}\n\nnot json\n{EVENT}\n");
        let parsed = parse_body(lines.as_bytes(), BodyFormat::NdJson).expect("three");
        assert_eq!(parsed.len(), 3);
        assert!(
            parsed[1]
                .as_ref()
                .expect_err("bad line")
                .0
                .starts_with("line 3 is not JSON")
        );
    }

    #[test]
    fn bodies_that_hold_no_events_or_too_many_are_refused_whole() {
        assert!(matches!(
            parse_body(b"nope", BodyFormat::Json),
            Err(BodyError::NotJson(_))
        ));
        assert!(matches!(
            parse_body(b"42", BodyFormat::Json),
            Err(BodyError::NotJson(_))
        ));
        assert_eq!(parse_body(b"[]", BodyFormat::Json).err(), Some(BodyError::Empty));
        let many = format!("[{}]", vec![EVENT; MAX_EVENTS_PER_REQUEST + 1].join(","));
        assert_eq!(
            parse_body(many.as_bytes(), BodyFormat::Json).err(),
            Some(BodyError::TooMany(MAX_EVENTS_PER_REQUEST + 1))
        );
    }

    #[test]
    fn content_types_choose_the_layout() {
        assert_eq!(
            BodyFormat::of("application/json; charset=utf-8"),
            Some(BodyFormat::Json)
        );
        assert_eq!(BodyFormat::of("application/x-ndjson"), Some(BodyFormat::NdJson));
        assert_eq!(BodyFormat::of("text/plain"), None);
    }
}

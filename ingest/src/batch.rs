//! A request's body as events: one JSON object, a JSON array of them, or NDJSON (one per line),
//! each read on its own so that one bad event does not refuse the others.

use serde::Deserialize;
use serde::de::{SeqAccess, Visitor};
use serde_json::value::RawValue;

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
            Self::TooMany(_) => write!(
                f,
                "the body holds more than {MAX_EVENTS_PER_REQUEST} events; send at most {MAX_EVENTS_PER_REQUEST} per request"
            ),
        }
    }
}

const TOO_MANY: &str = "more events than a request may hold";

/// A JSON array's elements, each left as text, read no further than one past the limit: a body of
/// millions of tiny elements is refused without building them all.
struct Bounded<'a>(Vec<&'a RawValue>);

impl<'de> Deserialize<'de> for Bounded<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Elements;
        impl<'de> Visitor<'de> for Elements {
            type Value = Bounded<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an array of events")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Bounded<'de>, A::Error> {
                let mut elements = Vec::new();
                while let Some(element) = seq.next_element::<&'de RawValue>()? {
                    if elements.len() == MAX_EVENTS_PER_REQUEST {
                        return Err(serde::de::Error::custom(TOO_MANY));
                    }
                    elements.push(element);
                }
                Ok(Bounded(elements))
            }
        }
        deserializer.deserialize_seq(Elements)
    }
}

/// The events of `body`, each parsed or refused with the reason. Each event is read from its own
/// text (never through a map that would sort its attributes and keep one of two equal names),
/// and one whose text is longer than `max_event_bytes` is refused before it is parsed.
pub fn parse_body(
    body: &[u8],
    format: BodyFormat,
    max_event_bytes: usize,
) -> Result<Vec<Result<EventJson, ShapeError>>, BodyError> {
    let text = std::str::from_utf8(body).map_err(|e| BodyError::NotJson(e.to_string()))?;
    // Each event's text, with its line number in NDJSON.
    let items: Vec<(Option<usize>, &str)> = match format {
        BodyFormat::Json if text.trim_start().starts_with('[') => {
            let elements = match serde_json::from_str::<Bounded<'_>>(text) {
                Ok(Bounded(elements)) => elements,
                Err(error) if error.to_string().starts_with(TOO_MANY) => {
                    return Err(BodyError::TooMany(MAX_EVENTS_PER_REQUEST + 1));
                }
                Err(error) => return Err(BodyError::NotJson(error.to_string())),
            };
            elements.into_iter().map(|raw| (None, raw.get())).collect()
        }
        BodyFormat::Json if text.trim_start().starts_with('{') => vec![(None, text)],
        BodyFormat::Json => return Err(BodyError::NotJson("neither an object nor an array".to_owned())),
        BodyFormat::NdJson => text
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(number, line)| (Some(number + 1), line))
            // One past the limit is enough to refuse the body.
            .take(MAX_EVENTS_PER_REQUEST + 1)
            .collect(),
    };
    if items.is_empty() {
        return Err(BodyError::Empty);
    }
    if items.len() > MAX_EVENTS_PER_REQUEST {
        return Err(BodyError::TooMany(items.len()));
    }
    Ok(items
        .into_iter()
        .map(|(line, raw)| {
            let parsed = if raw.len() > max_event_bytes {
                Err(ShapeError(format!(
                    "the event's JSON is {} bytes; at most {max_event_bytes}",
                    raw.len()
                )))
            } else {
                EventJson::parse(raw)
            };
            parsed.map_err(|error| match line {
                Some(line) => ShapeError(format!("line {line}: {}", error.0)),
                None => error,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENT: &str = r#"{"event_id":"01JE5W7J6ZK8Q3V4M2N9P0R1ST","tenant_id":"acme","occurred_at":1,"action":"user.login","actor":{"id":"u"},"resource":{"type":"t","id":"i"},"outcome":{"status":"SUCCESS"}}"#;

    #[test]
    fn an_object_an_array_and_ndjson_are_read_event_by_event() {
        assert_eq!(
            parse_body(EVENT.as_bytes(), BodyFormat::Json, 1 << 16)
                .expect("one")
                .len(),
            1
        );
        let array = format!("[{EVENT},{{\"event_id\":1}},{EVENT}]");
        let parsed = parse_body(array.as_bytes(), BodyFormat::Json, 1 << 16).expect("three");
        assert!(parsed[0].is_ok() && parsed[1].is_err() && parsed[2].is_ok());
        let lines = format!("{EVENT}\n\nnot json\n{EVENT}\n");
        let parsed = parse_body(lines.as_bytes(), BodyFormat::NdJson, 1 << 16).expect("three");
        assert_eq!(parsed.len(), 3);
        assert!(
            parsed[1]
                .as_ref()
                .expect_err("bad line")
                .0
                .starts_with("line 3: is not JSON")
        );
    }

    #[test]
    fn bodies_that_hold_no_events_or_too_many_are_refused_whole() {
        assert!(matches!(
            parse_body(b"nope", BodyFormat::Json, 100),
            Err(BodyError::NotJson(_))
        ));
        assert!(matches!(
            parse_body(b"42", BodyFormat::Json, 100),
            Err(BodyError::NotJson(_))
        ));
        assert_eq!(parse_body(b"[]", BodyFormat::Json, 100).err(), Some(BodyError::Empty));
        let many = format!("[{}]", vec![EVENT; MAX_EVENTS_PER_REQUEST + 1].join(","));
        assert_eq!(
            parse_body(many.as_bytes(), BodyFormat::Json, 1 << 16).err(),
            Some(BodyError::TooMany(MAX_EVENTS_PER_REQUEST + 1))
        );
    }

    #[test]
    fn attributes_keep_their_order_and_a_repeated_name_in_every_layout() {
        let repeated = EVENT.replace(r#""outcome""#, r#""attributes":{"b":"1","a":"2","b":"3"},"outcome""#);
        for (body, format) in [
            (repeated.clone(), BodyFormat::Json),
            (format!("[{repeated}]"), BodyFormat::Json),
            (format!("{repeated}\n"), BodyFormat::NdJson),
        ] {
            let parsed = parse_body(body.as_bytes(), format, 1 << 16).expect("read");
            let event = parsed[0].clone().expect("valid").into_event().expect("event");
            let names: Vec<&str> = event.attributes.iter().map(|(name, _)| name.as_str()).collect();
            assert_eq!(names, ["b", "a", "b"], "{format:?}");
        }
    }

    #[test]
    fn an_event_longer_than_the_limit_is_refused_unread() {
        let parsed = parse_body(format!("[{EVENT},{EVENT}]").as_bytes(), BodyFormat::Json, 100).expect("read");
        assert!(
            parsed
                .iter()
                .all(|item| item.as_ref().is_err_and(|e| e.0.contains("bytes")))
        );
    }

    #[test]
    fn millions_of_tiny_elements_are_refused_after_the_first_thousand() {
        let array = format!("[{}{{}}]", "{},".repeat(2_000_000));
        let lines = "{}\n".repeat(2_000_000);
        for (body, format) in [(array, BodyFormat::Json), (lines, BodyFormat::NdJson)] {
            assert_eq!(
                parse_body(body.as_bytes(), format, 100).err(),
                Some(BodyError::TooMany(MAX_EVENTS_PER_REQUEST + 1)),
                "{format:?}"
            );
        }
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

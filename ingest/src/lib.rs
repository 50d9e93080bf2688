//! The ingest edge's core, for producers without a Kafka client: audit events as JSON in the
//! Avro contract's shape (`event_json`), request bodies of one or many events (`batch`), the
//! seal processor's validation applied before anything is sent (`prepare`), and the answer for
//! each event (`answer`). No I/O: the HTTP route that produces to Kafka lives in the API.

pub mod answer;
pub mod batch;
pub mod event_json;
pub mod prepare;

pub use answer::{EventResult, EventStatus, IngestAnswer, Refusal};
pub use batch::{BodyError, BodyFormat, MAX_EVENTS_PER_REQUEST, parse_body};
pub use event_json::EventJson;
pub use prepare::{RequestContext, TraceParent, prepare};

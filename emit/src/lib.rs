//! Emitting audit events: [`AuditEmitter`] is what a Rust service uses to publish its audit
//! events (Confluent wire format, keyed by tenant, idempotent, `acks=all`); [`generator`] makes the
//! realistic demo and test workload that `sealtrail produce` sends; [`DurableEmitter`] keeps events
//! in a local [`outbox`] on disk while Kafka is unreachable.

mod emitter;
pub mod generator;
pub mod outbox;
mod platform;
mod workload;

pub use emitter::{AuditEmitter, EmitError, Enqueue, acknowledged};
pub use outbox::{Accepted, DurableEmitter, OutboxSettings};
pub use platform::platform_event;
pub use workload::{Destination, Settled, WorkloadSent, send_workload};

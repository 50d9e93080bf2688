//! Kafka adapter shared by every sealtrail component.
//!
//! It owns the client settings that the project relies on (idempotent, `acks=all` producers,
//! `murmur2_random` partitioning so Rust and Java producers agree on a tenant's partition,
//! manual offset commits) and the few administrative operations the stack needs. Everything
//! here works unchanged against Apache Kafka and against Tansu.

mod client_properties;
mod config;
mod context;
mod error;
mod group_heal;
mod log;
pub mod oauth;
mod offsets;
mod partition_reader;
mod reset;
mod source;
mod topics;
mod watermarks;

pub use client_properties::{ClientProperties, ClientPropertiesError, is_secret_property, redacted};
pub use config::KafkaSettings;
pub use context::{KafkaClient, KafkaContext, RefreshesTokens};
pub use error::KafkaError;
pub use group_heal::{RebalanceWatch, leave_group};
pub use log::{LogRecord, read_log_to_end};
pub use offsets::{GroupOffsets, Members, PartitionOffsets, ResetTarget, planned_offset};
pub use partition_reader::PartitionReader;
pub use reset::{ResetApplied, ResetError, ResetPlan};
pub use sealtrail_runtime::driver::PartitionLag;
pub use sealtrail_runtime::log::PartitionRecord;
pub use source::KafkaSource;
pub use topics::{TopicSpec, ensure_topics, wait_for_broker};
pub use watermarks::{GroupLagProbe, WatermarkProbe};

//! A schema registry that speaks the subset of Confluent Schema Registry's REST API that clients
//! use, for machines where Confluent's registry cannot run.
//!
//! Like Confluent's, it keeps its state as a log in a Kafka topic (`_schemas`), rebuilt at start,
//! so it survives restarts; compatibility is decided with apache-avro's schema resolution rules.
//! The state and its rules are pure ([`state`], [`compatibility`]); Kafka and HTTP sit at the edges.

pub mod compatibility;
mod error;
mod http;
mod log_record;
mod service;
pub mod state;
#[cfg(test)]
mod state_tests;

pub use compatibility::CompatibilityLevel;
pub use error::RegistryError;
pub use http::access::{AccessFileError, RegistryAccess, RegistryRole};
pub use service::{RegistryService, RegistrySettings};

//! `sealtrail seal`: the stateless processor between the raw topic and the sealed topic.
//!
//! Each raw partition is sealed into the sealed partition of the same number, by whichever
//! instance of the consumer group owns it. Nothing is kept locally: on assignment the instance
//! rebuilds the partition's state from the sealed partition (last checkpoint plus tail) and the
//! DLQ, so a crash, restart or rebalance at any moment leaves no gap, duplicate or fork.

mod config;
mod consume;
mod deliveries;
pub mod dlq;
pub mod layouts;
pub mod memory;
mod outputs;
mod processor;
mod producer;
mod recovery;
mod run;
#[cfg(test)]
mod tests;

pub use config::SealConfig;
pub use deliveries::{Deliveries, Produced};
pub use processor::{SealError, SealParts, SealProcessor, SealSummary};
pub use producer::{KafkaOutputs, OutputRecord, Outputs};
pub use run::run;

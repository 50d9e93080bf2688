//! The pure core of sealtrail: everything that decides what a sealed audit trail is, with no
//! Kafka, ClickHouse or HTTP types, so the processors, the verifier and the API share one
//! definition of it.
//!
//! The data path through this crate: [`avro`] decodes a raw record, [`validate`] checks it,
//! [`classify`] labels and redacts it under a [`policy`], [`canonical`] and [`chain`] seal it into
//! its tenant's chain, [`checkpoint`] and [`merkle`] sign the partition's progress, and [`verify`]
//! checks all of it. [`sealer`] runs that sequence for one partition.

pub mod alerting;
pub mod avro;
pub mod canonical;
pub mod chain;
pub mod checkpoint;
pub mod classify;
pub mod digest;
pub mod event;
pub mod export;
pub mod follow;
pub mod idempotency;
pub mod layout;
pub mod merkle;
pub mod placement;
pub mod policy;
pub mod retention;
pub mod sealed;
pub mod sealer;
pub mod tokenize;
pub mod validate;
pub mod verify;
pub mod webhook;
pub mod witness;
pub mod worked_example;

#[cfg(test)]
mod tests;

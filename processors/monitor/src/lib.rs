//! `sealtrail monitor`: continuous assurance over the sealed topic and its ClickHouse projection.
//!
//! Data path: the sealed topic is read in its own consumer group; each partition is followed
//! from its first record ([`sealtrail_core::follow`]): every event's chain link and every
//! checkpoint's signature, link, entries root, tenant heads and offset accounting, as they
//! arrive, independently of ClickHouse. On a timer the projection is swept ([`projection`]):
//! every stretch of sealed offsets both covered by a checkpoint and stored by the sink is
//! fingerprinted in ClickHouse, and a stretch whose fingerprint is new or changed is compared
//! row by row with the rows its sealed records make, re-read from Kafka. What does not match is
//! an [`Incident`], raised once to an [`IncidentSink`] and counted in
//! `sealtrail_integrity_incidents`.

mod alerts;
pub mod incident;
mod processor;
pub mod projection;
mod sweep;
mod witnessing;

use std::time::Duration;

pub use alerts::AlertRulesFile;
pub use incident::{Incident, IncidentKind, IncidentSink};
pub use processor::{MonitorConfig, MonitorError, MonitorProcessor, MonitorSummary};
pub use witnessing::WitnessTarget;

use sealtrail_kafka::{KafkaSource, PartitionReader};
use sealtrail_runtime::driver::{self, Cadence};
use sealtrail_runtime::{RegistryClient, SealedReaders, StopSignal, Telemetry};
use tokio::runtime::Handle;

use crate::projection::Projection;

/// How long a read of the sealed topic or the sink's offsets may take.
const KAFKA_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) fn now_ms() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Runs the monitor until stopped.
pub fn run(
    config: MonitorConfig,
    registry: &RegistryClient,
    incidents: Box<dyn IncidentSink>,
    runtime: Handle,
    stop: &StopSignal,
) -> Result<MonitorSummary, MonitorError> {
    let client_error = |e: sealtrail_kafka::KafkaError| MonitorError::Client(e.to_string());
    let mut source = KafkaSource::subscribe(
        &config.kafka,
        &config.group,
        &config.sealed_topic,
        config.instance_id.as_deref(),
        &[],
    )
    .map_err(client_error)?;
    let reader = PartitionReader::new(&config.kafka, KAFKA_TIMEOUT).map_err(client_error)?;
    let projection = Projection::new(config.clickhouse.client(), runtime.clone(), config.layout_epoch);
    let cosigned_through = config
        .witnesses
        .iter()
        .map(|witness| projection.cosigned_through(&witness.key.name))
        .collect::<Result<Vec<_>, _>>()
        .map_err(MonitorError::ClickHouse)?;
    tracing::info!(
        sealed = %config.sealed_topic,
        layout_epoch = config.layout_epoch,
        sweep_every = ?config.sweep_every,
        "monitor started"
    );
    let mut telemetry = Telemetry::new(config.metrics.clone());
    let mut monitor = MonitorProcessor::new(
        config,
        (SealedReaders::new(registry.clone()), reader),
        projection,
        incidents,
        (runtime, cosigned_through),
    );
    driver::run(&mut source, &mut monitor, &mut telemetry, stop, Cadence::default())?;
    Ok(monitor.summary())
}

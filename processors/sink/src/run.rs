//! The sink on Kafka and ClickHouse: the driver with a consumer of the sealed topic and the
//! ClickHouse store.

use std::time::Duration;

use sealtrail_kafka::KafkaSource;
use sealtrail_runtime::driver::{self, Cadence};
use sealtrail_runtime::{RegistryClient, SealedReaders, StopSignal, Telemetry};
use tokio::runtime::Handle;

use crate::processor::{SinkConfig, SinkError, SinkProcessor, SinkSummary};
use crate::store::ClickHouseStore;

/// Runs the sink until stopped (or `stop_after` records are read), or an error makes it unsafe
/// to continue.
pub fn run(
    config: SinkConfig,
    registry: &RegistryClient,
    runtime: Handle,
    stop: &StopSignal,
) -> Result<SinkSummary, SinkError> {
    let mut source = KafkaSource::subscribe(
        &config.kafka,
        &config.group,
        &config.sealed_topic,
        config.instance_id.as_deref(),
        &[],
    )
    .map_err(|e| SinkError::Client(e.to_string()))?;
    tracing::info!(sealed = %config.sealed_topic, clickhouse = %config.clickhouse.url, "sink started");
    let store = ClickHouseStore::new(&config.clickhouse, runtime, config.layout_epoch);
    let mut telemetry = Telemetry::new(config.metrics.clone());
    let mut sink = SinkProcessor::new(config, Box::new(store), SealedReaders::new(registry.clone()));
    // Offsets change only when a flush lands; commit them as soon as one has.
    let cadence = Cadence {
        commit: Duration::from_millis(100),
        ..Cadence::default()
    };
    driver::run(&mut source, &mut sink, &mut telemetry, stop, cadence)?;
    Ok(sink.summary())
}

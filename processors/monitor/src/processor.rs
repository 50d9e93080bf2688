//! The monitor as the driver runs it: each assigned sealed partition is read from its first
//! record and followed ([`PartitionFollower`]); on ticks, the projection is swept
//! ([`crate::sweep`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sealtrail_clickhouse::ClickHouseSettings;
use sealtrail_core::checkpoint::TrustedKey;
use sealtrail_core::follow::PartitionFollower;
use sealtrail_core::layout::Handover;
use sealtrail_core::sealed::SealedRecord;
use sealtrail_kafka::{KafkaSettings, PartitionReader};
use sealtrail_runtime::driver::{Committed, Control, InputRecord, PartitionedProcessor};
use sealtrail_runtime::telemetry::events::RecordsReceived;
use sealtrail_runtime::{Metrics, SealedReaders};

use crate::alerts::{AlertRulesFile, Alerting};
use crate::incident::{Incident, IncidentKind, IncidentSink};
use crate::projection::Projection;
use crate::projection::sweep::Print;
use crate::witnessing::{WitnessQueue, WitnessTarget};

/// Everything the monitor needs.
#[derive(Debug, Clone)]
pub struct MonitorConfig {
    pub kafka: KafkaSettings,
    pub clickhouse: ClickHouseSettings,
    pub sealed_topic: String,
    /// The layout epoch of `sealed_topic` and its partition count.
    pub layout_epoch: u32,
    pub partitions: u32,
    pub group: String,
    pub instance_id: Option<String>,
    pub trusted: Vec<TrustedKey>,
    /// For a layout epoch after the first: where its chains start.
    pub handover: Option<Arc<Handover>>,
    /// How often the projection is swept.
    pub sweep_every: Duration,
    /// Sealed offsets per fingerprinted stretch.
    pub bucket_offsets: u64,
    /// Witnesses every verified checkpoint is sent to, and the log name they know it by.
    pub witnesses: Vec<WitnessTarget>,
    pub log_origin: String,
    /// For the witnesses (trusting the configured CA).
    pub http: reqwest::Client,
    /// Security alert rules of the rules file (`SEALTRAIL_ALERT_RULES`).
    pub alert_rules: AlertRulesFile,
    pub metrics: Metrics,
}

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("cannot create a Kafka client: {0}")]
    Client(String),
    #[error("cannot read ClickHouse: {0}")]
    ClickHouse(String),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MonitorSummary {
    pub records: u64,
    pub checkpoints_verified: u64,
    pub incidents: u64,
    pub buckets_compared: u64,
}

pub(crate) struct PartitionState {
    pub(crate) follower: PartitionFollower,
    pub(crate) next_offset: i64,
    /// Sealed offset of the last checkpoint read; -1 before the first.
    pub(crate) covered_through: i64,
}

/// The monitor: a follower per assigned sealed partition, and the projection's fingerprints.
pub struct MonitorProcessor {
    pub(crate) config: MonitorConfig,
    pub(crate) readers: SealedReaders,
    pub(crate) reader: PartitionReader,
    pub(crate) projection: Projection,
    pub(crate) incidents: Box<dyn IncidentSink>,
    pub(crate) alerting: Alerting,
    pub(crate) partitions: BTreeMap<i32, PartitionState>,
    pub(crate) baselines: HashMap<(i32, u64), Print>,
    /// Per partition, the newest sealed offset the projection was ever seen to hold.
    pub(crate) stored_through: HashMap<i32, i64>,
    raised: HashSet<(IncidentKind, u32, i32, i64, Option<String>)>,
    pub(crate) last_sweep: Option<Instant>,
    pub(crate) summary: MonitorSummary,
    pub(crate) witness_queues: Vec<WitnessQueue>,
    /// Per witness and partition, the newest checkpoint number already cosigned (found in
    /// ClickHouse at start), so a restart does not submit the whole history again.
    pub(crate) cosigned_through: Vec<HashMap<i32, u64>>,
    pub(crate) http: reqwest::Client,
    pub(crate) runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for MonitorProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MonitorProcessor")
            .field("sealed_topic", &self.config.sealed_topic)
            .field("partitions", &self.partitions.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl MonitorProcessor {
    pub(crate) fn new(
        config: MonitorConfig,
        (readers, reader): (SealedReaders, PartitionReader),
        projection: Projection,
        incidents: Box<dyn IncidentSink>,
        (runtime, cosigned_through): (tokio::runtime::Handle, Vec<HashMap<i32, u64>>),
    ) -> Self {
        for kind in IncidentKind::ALL {
            config.metrics.assurance().incidents(kind.label());
        }
        for rule in sealtrail_core::alerting::AlertRule::ALL {
            config.metrics.assurance().security_alert_rule(rule.name());
        }
        Self {
            readers,
            reader,
            projection,
            incidents,
            partitions: BTreeMap::new(),
            baselines: HashMap::new(),
            stored_through: HashMap::new(),
            raised: HashSet::new(),
            last_sweep: None,
            summary: MonitorSummary::default(),
            witness_queues: config.witnesses.iter().map(|_| WitnessQueue::default()).collect(),
            alerting: Alerting::new(config.alert_rules.clone()),
            http: config.http.clone(),
            cosigned_through,
            runtime,
            config,
        }
    }

    pub fn summary(&self) -> MonitorSummary {
        self.summary
    }

    /// Raises `incident` unless this process raised it already.
    pub(crate) fn raise(&mut self, incident: &Incident) {
        if !self.raised.insert(incident.identity()) {
            return;
        }
        self.summary.incidents += 1;
        self.config.metrics.assurance().incidents(incident.kind.label()).inc();
        tracing::error!(
            kind = incident.kind.label(),
            tenant = incident.tenant.as_deref().unwrap_or("(platform)"),
            layout_epoch = incident.layout_epoch,
            partition = incident.sealed_partition,
            sealed_offset = incident.sealed_offset,
            detail = %incident.detail,
            "integrity incident"
        );
        self.incidents.raise(incident);
    }

    fn follow(&mut self, message: &dyn InputRecord) {
        let (partition, offset) = (message.partition(), message.offset());
        let epoch = self.config.layout_epoch;
        let decoded = self.readers.decode(message.value().unwrap_or_default());
        let Some(state) = self.partitions.get_mut(&partition) else {
            return;
        };
        state.next_offset = offset + 1;
        let found = match decoded {
            Ok(SealedRecord::Event(event)) => {
                let found: Vec<_> = state.follower.event(&event).err().into_iter().collect();
                self.watch_event(partition, offset, &event);
                found
            }
            Ok(SealedRecord::Checkpoint(checkpoint)) => {
                state.covered_through = offset;
                match state.follower.checkpoint(&checkpoint) {
                    Ok(verified) => {
                        let already = |cosigned: &HashMap<i32, u64>| {
                            cosigned.get(&partition).is_some_and(|n| *n >= checkpoint.number)
                        };
                        if !self.cosigned_through.iter().all(already) {
                            self.queue_for_witnesses(offset, &checkpoint);
                        }
                        self.summary.checkpoints_verified += 1;
                        let delay = (crate::now_ms() - verified.created_at) as f64 / 1000.0;
                        self.config
                            .metrics
                            .assurance()
                            .checkpoint_verified(partition, offset, delay);
                        Vec::new()
                    }
                    Err(breaks) => breaks,
                }
            }
            Err(reason) => {
                let incident = Incident {
                    kind: IncidentKind::Unreadable,
                    tenant: None,
                    layout_epoch: epoch,
                    sealed_partition: partition,
                    sealed_offset: offset,
                    detail: format!("sealed partition {partition} offset {offset} is not a sealed record: {reason}"),
                };
                self.raise(&incident);
                return;
            }
        };
        for found in found {
            self.raise(&Incident::of_break(found, epoch, partition, offset));
        }
        self.release_alerts(partition, offset);
    }
}

impl PartitionedProcessor for MonitorProcessor {
    type Error = MonitorError;

    fn on_assign(
        &mut self,
        partitions: &[i32],
        _committed: &Committed,
        _control: &mut dyn Control,
    ) -> Result<Vec<(i32, i64)>, MonitorError> {
        // Everything is verified again from the first record: the monitor trusts no state it
        // did not build itself.
        for partition in partitions {
            self.partitions.insert(
                *partition,
                PartitionState {
                    follower: PartitionFollower::new(
                        *partition,
                        self.config.trusted.clone(),
                        self.config.handover.clone(),
                    ),
                    next_offset: 0,
                    covered_through: -1,
                },
            );
            self.baselines.retain(|(p, _), _| p != partition);
        }
        tracing::info!(
            ?partitions,
            "monitor partitions assigned: following from the first record"
        );
        Ok(partitions.iter().map(|p| (*p, 0)).collect())
    }

    fn on_record(&mut self, record: &dyn InputRecord, control: &mut dyn Control) -> Result<(), MonitorError> {
        self.summary.records += 1;
        control.telemetry().emit(RecordsReceived { count: 1 });
        self.follow(record);
        Ok(())
    }

    fn on_tick(&mut self, _control: &mut dyn Control) -> Result<(), MonitorError> {
        self.witness();
        self.refresh_alert_rules();
        if self
            .last_sweep
            .is_none_or(|last| last.elapsed() >= self.config.sweep_every)
        {
            self.sweep();
            self.last_sweep = Some(Instant::now());
        }
        Ok(())
    }

    fn on_revoke(&mut self, _partitions: &[i32], _control: &mut dyn Control) -> Result<(), MonitorError> {
        Ok(())
    }

    fn release(&mut self, partitions: &[i32]) {
        for partition in partitions {
            self.partitions.remove(partition);
            self.baselines.retain(|(p, _), _| p != partition);
            self.config.metrics.assurance().forget_partition(*partition);
        }
    }

    fn positions(&self) -> Vec<(i32, i64)> {
        self.partitions.iter().map(|(p, s)| (*p, s.next_offset)).collect()
    }

    fn committable(&self) -> Vec<(i32, i64)> {
        self.positions()
    }
}

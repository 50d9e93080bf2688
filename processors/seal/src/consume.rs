//! The seal processor's consume loop: poll, seal or reject each raw record, publish the result,
//! checkpoint and commit when due, report lag.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode};
use rdkafka::message::{BorrowedMessage, Message, OwnedHeaders};
use sealtrail_core::avro::Framed;
use sealtrail_core::layout::{CONTROL_HEADER, LAYOUT_CHANGE_CONTROL, LayoutChange};
use sealtrail_core::sealed::SealedRecord;
use sealtrail_core::sealer::{Disposition, RawRecord, SchemaLookup, SealContext};
use sealtrail_core::tokenize::Tokenizer;
use sealtrail_kafka::{GroupLagProbe, WatermarkProbe, rejoin};
use sealtrail_runtime::{AuditStage, ComponentStats, RegistryClient, SchemaVerdict, StopSignal};
use sealtrail_telemetry::trace_context;

use crate::deliveries::Produced;
use crate::dlq;
use crate::processor::{SealContextOf, SealError, SealSummary, Shared, lock, now_ms};

/// Records waiting this long with none arriving is reported as a stalled fetch.
const FETCH_STALL_WARNING: Duration = Duration::from_secs(30);

/// The state of the consume loop.
pub(crate) struct Loop<'a> {
    pub(crate) shared: &'a Shared,
    /// Reads high watermarks on a connection of its own, so a stalled fetch cannot hide the lag.
    pub(crate) probe: WatermarkProbe,
    /// The whole group's lag, which also counts partitions no live member owns.
    pub(crate) group_lag: GroupLagProbe,
    /// When the last raw record arrived, to tell a stalled fetch from an idle topic.
    pub(crate) last_record: Instant,
    pub(crate) registry: &'a RegistryClient,
    pub(crate) stop: &'a StopSignal,
    pub(crate) tokenizer: Tokenizer,
    pub(crate) verdicts: HashMap<u32, SchemaVerdict>,
    pub(crate) stats: ComponentStats,
    pub(crate) summary: SealSummary,
    pub(crate) first_record: Option<Instant>,
}

impl Loop<'_> {
    pub(crate) fn until_stopped(&mut self, consumer: &BaseConsumer<SealContextOf>) -> Result<(), SealError> {
        let shared = self.shared;
        let mut last_housekeeping = Instant::now();
        let mut last_commit = Instant::now();
        let mut last_lag: Option<Instant> = None;
        loop {
            if let Some(error) = lock(&shared.failure).take() {
                return Err(error);
            }
            if self.stop.is_stopped()
                || shared
                    .config
                    .stop_after
                    .is_some_and(|limit| self.summary.records >= limit)
            {
                return Ok(());
            }
            shared.producer.poll(Duration::ZERO);
            shared.check_deliveries()?;
            if lock(&shared.rebalances).take_rejoin(Instant::now()) {
                self.stats.error("stale_assignment");
                rejoin(consumer, &[&shared.config.raw_topic])?;
            }
            match consumer.poll(Duration::from_millis(100)) {
                None => {}
                Some(Err(error)) => {
                    self.stats.error("consume");
                    tracing::warn!(%error, "consume error");
                }
                Some(Ok(message)) => self.handle(&message)?,
            }
            if last_housekeeping.elapsed() >= Duration::from_millis(50) {
                last_housekeeping = Instant::now();
                let assigned: Vec<i32> = lock(&shared.partitions).keys().copied().collect();
                for partition in assigned {
                    shared.checkpoint_if_pending(partition, false)?;
                }
                if last_commit.elapsed() >= Duration::from_secs(1) {
                    last_commit = Instant::now();
                    shared.commit(consumer, CommitMode::Async);
                    for (partition, state) in lock(&shared.partitions).iter() {
                        let handled = state.sealer.handled_through();
                        shared.config.metrics.chain_head(*partition, handled);
                    }
                }
                if last_lag.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
                    last_lag = Some(Instant::now());
                    let lag = self.lag();
                    self.stats.set_lag(lag);
                    let raw = &shared.config.raw_topic;
                    if let Some(group_lag) = self.group_lag.lag(&self.probe, raw) {
                        shared.config.metrics.group_lag(raw, group_lag);
                    }
                    dlq_depth(&self.probe, shared);
                }
                self.stats.report_if_due();
            }
        }
    }

    /// The raw records not handled yet, per assigned partition (as gauges) and in total, from the
    /// high watermarks; warns when records wait but none has arrived for a while.
    fn lag(&mut self) -> i64 {
        let shared = self.shared;
        let positions: Vec<(i32, i64)> = lock(&shared.partitions)
            .iter()
            .map(|(partition, state)| (*partition, state.sealer.handled_through() + 1))
            .collect();
        let topic = &shared.config.raw_topic;
        let lags = self.probe.lags(topic, positions);
        if lags.iter().any(|partition| partition.stale) {
            self.stats.error("watermarks_unavailable");
        }
        let pairs: Vec<(i32, i64)> = lags.iter().map(|p| (p.partition, p.lag)).collect();
        let total = shared.config.metrics.consumer_lags(topic, &pairs);
        let idle = self.last_record.elapsed();
        if total > 0 && idle >= FETCH_STALL_WARNING {
            self.stats.error("fetch_stalled");
            tracing::warn!(
                lag = total,
                idle_s = idle.as_secs(),
                "raw records are waiting but none has arrived; fetches from the broker may be stalled"
            );
        }
        total
    }

    fn handle(&mut self, message: &BorrowedMessage<'_>) -> Result<(), SealError> {
        let shared = self.shared;
        let partition = message.partition();
        let payload = message.payload();
        if let Some(change) = self.layout_change(message) {
            self.summary.records += 1;
            self.stats.received(1);
            self.stats.skipped("layout_change");
            return shared.close_epoch(partition, message.offset(), &change);
        }
        // Learn what the schema id means before sealing; a registry that cannot be reached is
        // waited for (the record is not bad), a registry that does not know the id rejects it.
        if let Some(framed) = payload.and_then(|bytes| Framed::parse(bytes).ok()) {
            let mut backoff = Duration::from_millis(200);
            while let Err(error) = self.registry.event_reader(&mut self.verdicts, framed.schema_id) {
                if self.stop.is_stopped() {
                    return Ok(());
                }
                tracing::warn!(%error, retry_in = ?backoff, "schema registry unavailable; retrying");
                self.stats.error("registry_unavailable");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
        self.summary.records += 1;
        self.last_record = Instant::now();
        self.first_record.get_or_insert_with(Instant::now);
        self.stats.received(1);
        // Only records that carry a producer's trace context get a span of their own.
        let span = trace_context::record_span(message.headers(), || {
            tracing::info_span!(
                "seal.record",
                otel.kind = "consumer",
                partition,
                offset = message.offset(),
                tenant = tracing::field::Empty,
                seq = tracing::field::Empty,
                outcome = tracing::field::Empty,
                trace_id = tracing::field::Empty,
            )
        });
        let _entered = span.as_ref().map(tracing::Span::enter);
        let now = now_ms();
        let mut partitions = lock(&shared.partitions);
        let Some(assigned) = partitions.get_mut(&partition) else {
            return Ok(());
        };
        let record = RawRecord {
            offset: message.offset(),
            key: message.key(),
            value: payload,
        };
        let mut context = SealContext {
            policy: &shared.config.policy,
            tokenizer: &mut self.tokenizer,
            now_ms: now,
            key_id: shared.signer.key_id(),
        };
        let verdicts = &self.verdicts;
        let disposition = assigned.sealer.handle(
            &record,
            |id| match verdicts.get(&id) {
                Some(SchemaVerdict::Readable(reader)) => SchemaLookup::Found(reader),
                Some(SchemaVerdict::Incompatible(reason)) => SchemaLookup::Incompatible(reason),
                Some(SchemaVerdict::Unknown) | None => SchemaLookup::Unknown,
            },
            &mut context,
        );
        let due = assigned.sealer.pending_entries() >= shared.config.checkpoint_every;
        if matches!(disposition, Disposition::AlreadyHandled) {
            assigned.reread_through = message.offset();
        }
        drop(partitions);
        self.publish(message, disposition, span.as_ref(), now)?;
        if due {
            shared.checkpoint_if_pending(partition, false)?;
        }
        Ok(())
    }

    /// The signed layout change a record carries, if it is one that ends this processor's epoch.
    /// Anything else marked as a layout change goes down the normal path, to the DLQ.
    fn layout_change(&mut self, message: &BorrowedMessage<'_>) -> Option<LayoutChange> {
        use rdkafka::message::Headers as _;
        let marked = message.headers().is_some_and(|headers| {
            headers
                .iter()
                .any(|h| h.key == CONTROL_HEADER && h.value == Some(LAYOUT_CHANGE_CONTROL))
        });
        if !marked {
            return None;
        }
        let shared = self.shared;
        let problem = match LayoutChange::parse_verified(message.payload().unwrap_or_default(), &shared.trusted) {
            Ok(change) if change.from.raw_topic == shared.config.raw_topic && change.from.epoch == shared.epoch => {
                return Some(change);
            }
            Ok(change) => format!(
                "it changes layout epoch {} of {}, this is epoch {} of {}",
                change.from.epoch, change.from.raw_topic, shared.epoch, shared.config.raw_topic
            ),
            Err(error) => error.to_string(),
        };
        self.stats.error("bad_layout_change");
        tracing::warn!(partition = message.partition(), offset = message.offset(), %problem, "a record marked as a layout change is refused and goes to the DLQ");
        None
    }

    /// Sends a sealed event to the sealed topic, or a rejected record to the DLQ.
    fn publish(
        &mut self,
        message: &BorrowedMessage<'_>,
        disposition: Disposition,
        span: Option<&tracing::Span>,
        now: i64,
    ) -> Result<(), SealError> {
        let shared = self.shared;
        let partition = message.partition();
        let payload = message.payload();
        match disposition {
            Disposition::Sealed(sealed) => {
                let tenant = sealed.event.tenant_id.clone();
                let occurred_at = sealed.event.occurred_at;
                let headers = span.map(|span| {
                    span.record("tenant", tenant.as_str());
                    span.record("seq", sealed.seal.tenant_seq);
                    span.record("outcome", "sealed");
                    // The sink continues the trace from the sealed record.
                    trace_context::inject(span, OwnedHeaders::new())
                });
                let bytes = shared.encode(&SealedRecord::Event(sealed));
                shared.send(
                    &shared.config.sealed_topic,
                    partition,
                    tenant.as_bytes(),
                    &bytes,
                    Produced::Sealed { partition },
                    headers,
                )?;
                self.summary.sealed += 1;
                self.stats.emitted(1);
                self.stats
                    .metrics()
                    .audit_lag(AuditStage::OccurredToSealed, (now - occurred_at) as f64 / 1000.0);
            }
            Disposition::Rejected(rejection) => {
                if let Some(span) = span {
                    span.record("outcome", rejection.code.as_str());
                }
                tracing::info!(partition, offset = message.offset(), reason = rejection.code.as_str(), detail = %rejection.detail, "record rejected to the DLQ");
                let headers = dlq::headers(
                    message.headers(),
                    &rejection,
                    &shared.config.raw_topic,
                    partition,
                    message.offset(),
                    now,
                );
                shared.send(
                    &shared.config.dlq_topic,
                    partition,
                    message.key().unwrap_or_default(),
                    payload.unwrap_or_default(),
                    Produced::Rejected { partition },
                    Some(headers),
                )?;
                self.summary.rejected += 1;
                self.stats.rejected(rejection.code.as_str());
            }
            Disposition::AlreadyHandled => {
                if let Some(span) = span {
                    span.record("outcome", "already_sealed");
                }
                self.stats.skipped("already_sealed");
            }
        }
        Ok(())
    }
}

/// Records held in the DLQ partitions this instance writes.
fn dlq_depth(probe: &WatermarkProbe, shared: &Shared) {
    let assigned: Vec<i32> = lock(&shared.partitions).keys().copied().collect();
    let mut depth = 0;
    for partition in assigned {
        match probe.watermarks(&shared.config.dlq_topic, partition) {
            Some((low, high)) => depth += (high - low).max(0),
            None => return,
        }
    }
    shared.config.metrics.dlq_depth(&shared.config.dlq_topic, depth);
}

//! Produce -> queryable latency at a steady rate, through a running pipeline (seal and sink):
//! events are produced at `rate` per second for `duration`, each stamped with the time it was
//! handed to the producer, and ClickHouse is polled for their rows; an event's latency is from its
//! stamp to the first poll that returns its row (so it is measured up to one poll interval late).
//!
//! The clock starts once warm-up events have gone through the whole pipeline: on a stack just
//! started, the first events wait for connections to open (and, before `sealtrail up` waited for
//! the seal and the sink to hold partitions, for their groups to form: six seconds in which nothing
//! was sealed), a one-time cost that is reported apart, not as latency.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sealtrail_clickhouse::ClickHouseSettings;
use sealtrail_emit::AuditEmitter;
use sealtrail_emit::generator::{Generated, Generator, Workload};
use sealtrail_kafka::KafkaSettings;
use sealtrail_runtime::RegistryConnection;

/// What to measure.
#[derive(Debug, Clone)]
pub struct LatencyBench {
    pub kafka: KafkaSettings,
    pub registry: RegistryConnection,
    pub clickhouse: ClickHouseSettings,
    pub raw_topic: String,
    /// Events per second.
    pub rate: u64,
    pub duration: Duration,
    pub tenants: usize,
    /// How often ClickHouse is asked for new rows.
    pub poll: Duration,
}

/// The latencies measured, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct LatencyReport {
    pub sent: u64,
    pub seen: u64,
    pub achieved_rate: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// The share of events queryable within 2 s (the objective of docs/slo.md).
    pub within_2s: f64,
    /// From the first warm-up event produced to the last one queryable.
    pub warm_up: Duration,
}

fn now_ms() -> i64 {
    sealtrail_clickhouse::unix_ms(time::OffsetDateTime::now_utc())
}

#[derive(Debug, clickhouse::Row, serde::Deserialize)]
struct Seen {
    event_id: String,
    sealed_partition: u32,
    sealed_offset: u64,
}

/// The rows of one tenant prefix that became queryable since the last look: per sealed
/// partition, the next offset not seen yet.
struct NewRows {
    prefix: String,
    cursors: Vec<u64>,
}

impl NewRows {
    fn of(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            cursors: vec![0; 256],
        }
    }

    async fn poll(&mut self, client: &clickhouse::Client) -> anyhow::Result<Vec<Seen>> {
        let rows: Vec<Seen> = client
            .query(
                "SELECT event_id, sealed_partition, sealed_offset FROM events \
                 WHERE startsWith(tenant_id, {prefix:String}) \
                   AND sealed_offset >= arrayElement({cursors:Array(UInt64)}, sealed_partition + 1)",
            )
            .param("prefix", &self.prefix)
            .param("cursors", &self.cursors)
            .fetch_all()
            .await?;
        for row in &rows {
            if let Some(slot) = self.cursors.get_mut(row.sealed_partition as usize) {
                *slot = (*slot).max(row.sealed_offset + 1);
            }
        }
        Ok(rows)
    }
}

/// The demo workload over `tenants` tenants named after `prefix`, with no malformed records.
fn workload(tenants: usize, prefix: &str, seed: u64) -> Generator {
    Generator::new(Workload {
        tenants,
        bad_ratio: 0.0,
        seed,
        now_ms: now_ms(),
        tenant_prefix: prefix.to_owned(),
    })
}

/// Runs the measurement; the pipeline must be running.
pub async fn measure(bench: LatencyBench) -> anyhow::Result<LatencyReport> {
    let emitter = AuditEmitter::connect(&bench.kafka, &bench.registry, &bench.raw_topic).await?;
    let client = bench.clickhouse.client();
    let warm_up = warm_up(&bench, &emitter, &client).await?;
    let prefix = format!("lat{}-", now_ms());
    let mut generator = workload(bench.tenants, &prefix, 7);
    let mut new_rows = NewRows::of(&prefix);
    let mut sent_at: HashMap<String, i64> = HashMap::new();
    let mut latencies: Vec<f64> = Vec::new();
    let total = bench.rate * bench.duration.as_secs();
    let started = Instant::now();
    let mut last_poll = Instant::now();
    let mut sent = 0_u64;
    let mut last_report = Instant::now();
    eprintln!(
        "bench-latency: {} events/s for {:?} ({total} events), polling ClickHouse every {:?}",
        bench.rate, bench.duration, bench.poll
    );
    while sent < total {
        // Paced: by now, this many should have been handed to the producer.
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a positive count"
        )]
        let due = (started.elapsed().as_secs_f64() * bench.rate as f64) as u64;
        while sent < due.min(total) {
            let Generated::Good(mut event) = generator.next_record() else {
                continue;
            };
            event.occurred_at = now_ms();
            sent_at.insert(event.event_id.clone(), event.occurred_at);
            // Not awaited: an event Kafka never acknowledges is never seen, and counts as missing.
            drop(emitter.enqueue(&event)?);
            sent += 1;
        }
        if last_poll.elapsed() >= bench.poll {
            observe(&client, &mut new_rows, &sent_at, &mut latencies).await?;
            last_poll = Instant::now();
            if last_report.elapsed() >= Duration::from_secs(10) {
                eprintln!("bench-latency: {sent} sent, {} queryable", latencies.len());
                last_report = Instant::now();
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let achieved_rate = sent as f64 / started.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(120);
    while (latencies.len() as u64) < sent && Instant::now() < deadline {
        tokio::time::sleep(bench.poll).await;
        observe(&client, &mut new_rows, &sent_at, &mut latencies).await?;
    }
    latencies.sort_by(f64::total_cmp);
    let at = |quantile: f64| {
        #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "a small index")]
        let index = ((latencies.len() as f64 - 1.0) * quantile).round() as usize;
        latencies.get(index).copied().unwrap_or(f64::NAN)
    };
    let within = latencies.iter().filter(|ms| **ms <= 2000.0).count();
    Ok(LatencyReport {
        sent,
        seen: latencies.len() as u64,
        achieved_rate,
        p50_ms: at(0.50),
        p95_ms: at(0.95),
        p99_ms: at(0.99),
        max_ms: latencies.last().copied().unwrap_or(f64::NAN),
        within_2s: within as f64 / sent.max(1) as f64,
        warm_up,
    })
}

/// How long warm-up may take before the pipeline is taken to be down.
const WARM_UP_DEADLINE: Duration = Duration::from_secs(120);

/// Sends one event for each of `bench.tenants` tenants of a prefix of their own (spread over the
/// partitions as the measured events are) and waits until every one is queryable.
async fn warm_up(
    bench: &LatencyBench,
    emitter: &AuditEmitter,
    client: &clickhouse::Client,
) -> anyhow::Result<Duration> {
    let prefix = format!("warm{}-", now_ms());
    let mut generator = workload(bench.tenants, &prefix, 11);
    let started = Instant::now();
    let mut sent = 0_usize;
    while sent < bench.tenants {
        if let Generated::Good(event) = generator.next_record() {
            drop(emitter.enqueue(&event)?);
            sent += 1;
        }
    }
    let mut new_rows = NewRows::of(&prefix);
    let mut seen = 0_usize;
    while seen < sent {
        anyhow::ensure!(
            started.elapsed() < WARM_UP_DEADLINE,
            "warm-up: only {seen} of {sent} events queryable after {WARM_UP_DEADLINE:?}; is the pipeline (seal, sink) running?"
        );
        tokio::time::sleep(bench.poll).await;
        seen += new_rows.poll(client).await?.len();
    }
    let took = started.elapsed();
    eprintln!("bench-latency: warm-up: {sent} events queryable after {took:.1?}; the clock starts now");
    Ok(took)
}

async fn observe(
    client: &clickhouse::Client,
    new_rows: &mut NewRows,
    sent_at: &HashMap<String, i64>,
    latencies: &mut Vec<f64>,
) -> anyhow::Result<()> {
    let rows = new_rows.poll(client).await?;
    let observed = now_ms();
    for row in rows {
        if let Some(sent) = sent_at.get(&row.event_id) {
            latencies.push((observed - sent) as f64);
        }
    }
    Ok(())
}

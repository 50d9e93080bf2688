//! sealtrail next to what a team would otherwise run: the same raw topic made queryable by
//! ClickHouse's own Kafka engine (no sealing) and by `seal` + `sink`, rounds alternating which goes
//! first. Each side is timed from its start until every event is a row in ClickHouse.

mod kafka_engine;
mod pipeline;

pub use kafka_engine::PeerSource;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sealtrail_clickhouse::ClickHouseSettings;
use sealtrail_kafka::{KafkaSettings, TopicSpec, ensure_topics};
use sealtrail_runtime::RegistryConnection;

use crate::end_to_end::fill;

const PARTITIONS: i32 = 4;

/// How long one side may take before the round fails (1,000,000 events at a tenth of the rates
/// measured here still fit).
const DEADLINE: Duration = Duration::from_secs(1800);

/// When a side's first row and its last became queryable.
#[derive(Debug, Clone, Copy)]
pub struct Queryable {
    pub first_row: Duration,
    pub all_rows: Duration,
}

impl Queryable {
    pub fn rows_per_second(&self, events: u64) -> f64 {
        crate::per_second(events, self.all_rows)
    }
}

/// What to compare.
#[derive(Debug)]
pub struct PeerBench {
    pub kafka: KafkaSettings,
    pub registry: RegistryConnection,
    /// Admin credentials: the bench creates and drops a database per side and round.
    pub clickhouse: ClickHouseSettings,
    /// The broker and registry as ClickHouse reaches them.
    pub peer_broker_list: String,
    pub peer_registry_url: String,
    pub peer_consumers: u32,
    pub events: u64,
    pub tenants: usize,
    pub rounds: usize,
}

/// One round's two measurements.
#[derive(Debug, Clone, Copy)]
pub struct PeerRound {
    pub peer_first: bool,
    pub peer: Queryable,
    pub sealtrail: Queryable,
}

/// Fills a fresh raw topic with `bench.events` events, then runs the rounds.
pub async fn measure(bench: &PeerBench) -> anyhow::Result<Vec<PeerRound>> {
    let run = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let raw = format!("peer-raw-{run}");
    ensure_topics(&bench.kafka, &[TopicSpec::new(&raw, PARTITIONS)]).await?;
    eprintln!(
        "bench-peer: producing {} events of {} tenants to {raw} (not timed)",
        bench.events, bench.tenants
    );
    let filling = Instant::now();
    fill(&bench.kafka, &bench.registry, &raw, bench.events, bench.tenants).await?;
    eprintln!("bench-peer: produced in {:.1} s", filling.elapsed().as_secs_f64());
    let keys = std::env::temp_dir().join(format!("sealtrail-bench-peer-keys-{run}"));
    sealtrail_runtime::keys::init_key_dir(&keys)?;
    let admin = bench.clickhouse.server_client();
    let source = PeerSource {
        broker_list: bench.peer_broker_list.clone(),
        registry_url: bench.peer_registry_url.clone(),
        topic: raw.clone(),
        consumers: bench.peer_consumers,
    };
    let mut rounds = Vec::with_capacity(bench.rounds);
    for round in 0..bench.rounds {
        let peer_first = round % 2 == 0;
        let (mut peer, mut sealtrail) = (None, None);
        for peer_turn in [peer_first, !peer_first] {
            let name = format!(
                "peer-{run}-{round}-{}",
                if peer_turn { "kafka-engine" } else { "sealtrail" }
            );
            if peer_turn {
                let database = name.replace('-', "_");
                peer = Some(kafka_engine::run(&admin, &database, &source, &name, bench.events).await?);
            } else {
                let pipeline = pipeline::PipelineRound {
                    kafka: &bench.kafka,
                    registry: &bench.registry,
                    clickhouse: &bench.clickhouse,
                    keys: &keys,
                    raw_topic: &raw,
                    partitions: PARTITIONS,
                    name: &name,
                };
                sealtrail = Some(pipeline::run(&pipeline, bench.events).await?);
            }
        }
        let (Some(peer), Some(sealtrail)) = (peer, sealtrail) else {
            unreachable!("each round runs both sides");
        };
        eprintln!(
            "bench-peer: round {}: Kafka engine {:.0} rows/s, sealtrail {:.0} rows/s, ratio {:.2}",
            round + 1,
            peer.rows_per_second(bench.events),
            sealtrail.rows_per_second(bench.events),
            sealtrail.rows_per_second(bench.events) / peer.rows_per_second(bench.events)
        );
        rounds.push(PeerRound {
            peer_first,
            peer,
            sealtrail,
        });
    }
    std::fs::remove_dir_all(&keys).ok();
    Ok(rounds)
}

/// Polls `database.events` every 100 ms until it holds `events` rows, showing progress every 5 s;
/// fails as soon as `running` says the side stopped.
async fn wait_until_queryable(
    admin: &clickhouse::Client,
    database: &str,
    events: u64,
    started: Instant,
    side: &str,
    running: impl Fn() -> bool,
) -> anyhow::Result<Queryable> {
    let count = format!("SELECT count() FROM {database}.events");
    let mut first_row = None;
    let mut last_report = Instant::now();
    loop {
        // A table not created yet (the sink applies nothing, but a slow start is possible) counts as empty.
        let rows = admin.query(&count).fetch_one::<u64>().await.unwrap_or(0);
        if rows > 0 && first_row.is_none() {
            first_row = Some(started.elapsed());
        }
        if rows >= events {
            anyhow::ensure!(rows == events, "{side}: {rows} rows for {events} events");
            return Ok(Queryable {
                first_row: first_row.unwrap_or_default(),
                all_rows: started.elapsed(),
            });
        }
        anyhow::ensure!(running(), "{side} stopped with {rows} of {events} rows queryable");
        anyhow::ensure!(
            started.elapsed() < DEADLINE,
            "{side}: only {rows} of {events} rows queryable after {DEADLINE:?}"
        );
        if last_report.elapsed() >= Duration::from_secs(5) {
            eprintln!(
                "bench-peer: {side}: {rows} of {events} rows queryable after {:.0} s",
                started.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

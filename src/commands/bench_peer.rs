//! `sealtrail bench-peer`: the same raw topic made queryable by ClickHouse's own Kafka engine and
//! by `seal` + `sink` (the measurement: `sealtrail_bench::peer`).

use sealtrail_bench::median;
use sealtrail_bench::peer::{PeerBench, PeerRound, measure};

use crate::settings::{ClickHouseArgs, KafkaArgs, RegistryUrlArgs};

#[derive(Debug, clap::Args)]
pub struct BenchPeerArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    registry: RegistryUrlArgs,
    #[command(flatten)]
    clickhouse: ClickHouseArgs,
    /// Raw events produced once and made queryable by each side in every round.
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// Tenants the events are spread over.
    #[arg(long, default_value_t = 20)]
    tenants: usize,
    /// Rounds; each runs both sides, alternating which goes first.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// The broker list as ClickHouse reaches it (default: the bootstrap servers).
    #[arg(long)]
    peer_broker_list: Option<String>,
    /// The registry URL as ClickHouse reaches it (default: the registry URL).
    #[arg(long)]
    peer_registry_url: Option<String>,
    /// The Kafka engine's `kafka_num_consumers`.
    #[arg(long, default_value_t = 2)]
    peer_consumers: u32,
}

pub async fn run(args: BenchPeerArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.events > 0 && args.tenants > 0 && args.rounds > 0,
        "--events, --tenants and --rounds must be positive"
    );
    let kafka = args.kafka.settings();
    let registry = args.registry.connection()?;
    // The Kafka engine's TLS and SASL settings live in ClickHouse's server configuration, which
    // this command does not manage: compare on a plaintext stack (`sealtrail up --insecure`).
    let secured = kafka
        .extra
        .iter()
        .any(|(key, value)| key == "security.protocol" && !value.eq_ignore_ascii_case("plaintext"));
    anyhow::ensure!(
        !secured && !registry.url.starts_with("https://"),
        "bench-peer needs a plaintext broker and registry that ClickHouse's Kafka engine can read without its own TLS settings; start the stack with `sealtrail up --insecure --no-pipeline`"
    );
    sealtrail_kafka::wait_for_broker(&kafka, args.kafka.connect_timeout()).await?;
    let bench = PeerBench {
        peer_broker_list: args.peer_broker_list.unwrap_or_else(|| kafka.bootstrap.clone()),
        peer_registry_url: args.peer_registry_url.unwrap_or_else(|| registry.url.clone()),
        peer_consumers: args.peer_consumers,
        kafka,
        registry,
        clickhouse: args.clickhouse.settings()?,
        events: args.events,
        tenants: args.tenants,
        rounds: args.rounds,
    };
    let rounds = measure(&bench).await?;
    report(&rounds, args.events);
    Ok(())
}

fn report(rounds: &[PeerRound], events: u64) {
    for (index, round) in rounds.iter().enumerate() {
        println!(
            "round {} ({} first): Kafka engine {:.0} rows/s (first row {:.1} s, all {:.1} s); sealtrail seal + sink {:.0} rows/s (first row {:.1} s, all {:.1} s)",
            index + 1,
            if round.peer_first { "Kafka engine" } else { "sealtrail" },
            round.peer.rows_per_second(events),
            round.peer.first_row.as_secs_f64(),
            round.peer.all_rows.as_secs_f64(),
            round.sealtrail.rows_per_second(events),
            round.sealtrail.first_row.as_secs_f64(),
            round.sealtrail.all_rows.as_secs_f64(),
        );
    }
    let mut peer: Vec<f64> = rounds.iter().map(|r| r.peer.rows_per_second(events)).collect();
    let mut sealtrail: Vec<f64> = rounds.iter().map(|r| r.sealtrail.rows_per_second(events)).collect();
    let mut first_peer: Vec<f64> = rounds.iter().map(|r| r.peer.first_row.as_secs_f64()).collect();
    let mut first_sealtrail: Vec<f64> = rounds.iter().map(|r| r.sealtrail.first_row.as_secs_f64()).collect();
    let (peer, sealtrail) = (median(&mut peer), median(&mut sealtrail));
    println!(
        "{events} events: ClickHouse Kafka engine median {peer:.0} rows/s, sealtrail seal + sink median {sealtrail:.0} rows/s; ratio sealtrail / Kafka engine {:.2}; first row queryable after {:.1} s (Kafka engine) and {:.1} s (sealtrail), medians",
        sealtrail / peer,
        median(&mut first_peer),
        median(&mut first_sealtrail),
    );
}

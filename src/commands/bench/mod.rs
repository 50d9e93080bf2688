//! `sealtrail bench`: throughput of the seal core in process, and of the seal processor end to end
//! next to a plain consume-and-produce copy of the same topic on the same broker, in one run.
//!
//! Figures are medians over rounds: the machine is shared and noisy.

use sealtrail_bench::{core_throughput, end_to_end, median, scaling};

use crate::settings::{KafkaArgs, RegistryUrlArgs};

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    registry: RegistryUrlArgs,
    /// Events per round of the in-process measurement.
    #[arg(long, default_value_t = 200_000)]
    core_events: usize,
    /// Events per round of the end-to-end measurement.
    #[arg(long, default_value_t = 100_000)]
    e2e_events: u64,
    /// Rounds of each measurement; the median is reported.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Only the in-process measurement (no broker needed).
    #[arg(long)]
    core_only: bool,
    /// Also seal the in-process workload with this many threads on one partition (decode,
    /// validate, classify and redact shared out, chaining in order on one); 1 skips it.
    #[arg(long, default_value_t = 2)]
    core_threads: usize,
    /// Instead of the default measurements: drain a backlog of `--e2e-events` with one seal
    /// instance and with two in one group, and seal one tenant's events on one partition.
    #[arg(long, conflicts_with = "core_only")]
    scaling: bool,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.rounds > 0, "--rounds must be at least 1");
    if args.scaling {
        return scaling(&args).await;
    }
    let core = core_throughput::measure(args.core_events, args.rounds)?;
    println!(
        "seal core, in process, one thread: median {:.0} events/s over {} rounds of {} events (mean size {} bytes; rounds: {})",
        core.median,
        args.rounds,
        args.core_events,
        core.mean_size,
        list(&core.rounds)
    );
    let floor = &core.floor;
    println!(
        "  of which cryptography, measured alone: SHA-256 of the {}-byte canonical entry {:.0} ns + {:.2} HMAC tokens x {:.0} ns = {:.0} ns per event (the whole seal: {:.0} ns per event)",
        floor.mean_entry_bytes,
        floor.entry_hash_ns,
        floor.tokens_per_event,
        floor.token_ns,
        floor.per_event_ns(),
        1e9 / core.median
    );
    if args.core_threads > 1 {
        let mut threaded = core_throughput::measure_threads(args.core_events, args.rounds, args.core_threads)?;
        let rounds = list(&threaded);
        let threaded_median = median(&mut threaded);
        println!(
            "seal core, in process, one partition on {} threads: median {threaded_median:.0} events/s (rounds: {rounds}); {:.2} x one thread",
            args.core_threads,
            threaded_median / core.median
        );
    }
    if args.core_only {
        return Ok(());
    }
    let kafka = args.kafka.settings();
    sealtrail_kafka::wait_for_broker(&kafka, args.kafka.connect_timeout()).await?;
    let e2e = end_to_end::measure(&kafka, &args.registry.connection()?, args.e2e_events, args.rounds).await?;
    println!(
        "plain copy (consume -> produce, idempotent, acks=all): median {:.0} events/s (rounds: {})",
        e2e.copy_median,
        list(&e2e.copy_rounds)
    );
    println!(
        "seal processor end to end (consume -> seal -> produce, checkpoints): median {:.0} events/s (rounds: {})",
        e2e.seal_median,
        list(&e2e.seal_rounds)
    );
    println!("ratio seal / plain copy: {:.2}", e2e.seal_median / e2e.copy_median);
    Ok(())
}

async fn scaling(args: &BenchArgs) -> anyhow::Result<()> {
    let kafka = args.kafka.settings();
    sealtrail_kafka::wait_for_broker(&kafka, args.kafka.connect_timeout()).await?;
    let registry = &args.registry.connection()?;
    let drained = scaling::measure_scaling(&kafka, registry, args.e2e_events, args.rounds).await?;
    let hot = scaling::measure_hot_tenant(&kafka, registry, args.e2e_events, args.rounds).await?;
    let whole = |drains: &[scaling::Drain]| drains.iter().map(|d| d.whole).collect::<Vec<_>>();
    let steady = |drains: &[scaling::Drain]| drains.iter().map(|d| d.steady).collect::<Vec<_>>();
    let backlog = args.e2e_events;
    print_scaling(
        backlog,
        "whole drain, joining the group included",
        &whole(&drained.one),
        &whole(&drained.two),
    );
    print_scaling(
        backlog,
        "steady, from 10% to 90% committed",
        &steady(&drained.one),
        &steady(&drained.two),
    );
    let hot_median = median(&mut hot.clone());
    println!(
        "one tenant on one partition (one chain), 1 seal instance: median {hot_median:.0} events/s (rounds: {})",
        list(&hot)
    );
    Ok(())
}

fn print_scaling(backlog: u64, label: &str, one: &[f64], two: &[f64]) {
    let (one_median, two_median) = (median(&mut one.to_vec()), median(&mut two.to_vec()));
    println!(
        "backlog of {backlog} events on 4 partitions, {label}: 1 seal instance median {one_median:.0} events/s (rounds: {}); 2 instances in one group median {two_median:.0} events/s (rounds: {}); ratio 2 / 1: {:.2}",
        list(one),
        list(two),
        two_median / one_median
    );
}

fn list(rounds: &[f64]) -> String {
    rounds.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(", ")
}

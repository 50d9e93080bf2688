//! How sealing scales out, and where one tenant's chain tops out.
//!
//! Scaling: the same backlog drained by one seal instance, then by two in one consumer group.
//! Two rates per drain: the whole drain, from the instances' start until the group's commits cover
//! every raw record (joining the group included: an operator adding an instance waits for that
//! too), and the steady rate, between the moments 10% and 90% of the backlog were committed.
//!
//! Hot tenant: one tenant's events on a one-partition raw topic, sealed by one instance: a chain
//! is sealed by one partition's owner, so this is the ceiling of a single tenant.

use sealtrail_runtime::RegistryConnection;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use sealtrail_kafka::{KafkaContext, KafkaSettings, TopicSpec, WatermarkProbe, ensure_topics};
use sealtrail_runtime::{RegistryClient, StopSignal};

use crate::end_to_end::{fill, seal_config, seal_round};
use sealtrail_runtime::run_blocking;

const PARTITIONS: i32 = 4;

/// Events per second of one drain.
#[derive(Debug, Clone, Copy)]
pub struct Drain {
    pub whole: f64,
    pub steady: f64,
}

#[derive(Debug)]
pub struct ScalingFigures {
    pub one: Vec<Drain>,
    pub two: Vec<Drain>,
}

/// Drains a backlog of `events` with one and with two seal instances, `rounds` times each
/// (alternating which goes first); events per second, per round.
pub async fn measure_scaling(
    kafka: &KafkaSettings,
    registry: &RegistryConnection,
    events: u64,
    rounds: usize,
) -> anyhow::Result<ScalingFigures> {
    let run = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let raw = format!("bench-scaling-raw-{run}");
    ensure_topics(kafka, &[TopicSpec::new(&raw, PARTITIONS)]).await?;
    eprintln!("bench: producing {events} events to {raw} (not timed)");
    fill(kafka, registry, &raw, events, 50).await?;
    let keys = std::env::temp_dir().join(format!("sealtrail-bench-scaling-keys-{run}"));
    sealtrail_runtime::keys::init_key_dir(&keys)?;
    let mut figures = ScalingFigures {
        one: Vec::new(),
        two: Vec::new(),
    };
    for round in 0..rounds {
        let order = if round % 2 == 0 { [1, 2] } else { [2, 1] };
        for instances in order {
            let name = format!("{run}-{round}-{instances}");
            let rate = drain(kafka, registry, &raw, &keys, instances, &name).await?;
            eprintln!(
                "bench: round {} {instances} instance(s): whole drain {:.0} events/s, steady {:.0} events/s",
                round + 1,
                rate.whole,
                rate.steady
            );
            if instances == 1 {
                figures.one.push(rate);
            } else {
                figures.two.push(rate);
            }
        }
    }
    std::fs::remove_dir_all(&keys).ok();
    Ok(figures)
}

/// Runs `instances` seal processors in one group over `raw` until the group has committed every
/// raw record.
async fn drain(
    kafka: &KafkaSettings,
    registry: &RegistryConnection,
    raw: &str,
    keys: &std::path::Path,
    instances: usize,
    name: &str,
) -> anyhow::Result<Drain> {
    let (sealed, dlq) = (
        format!("bench-scaling-sealed-{name}"),
        format!("bench-scaling-dlq-{name}"),
    );
    ensure_topics(
        kafka,
        &[TopicSpec::new(&sealed, PARTITIONS), TopicSpec::new(&dlq, PARTITIONS)],
    )
    .await?;
    let group = format!("bench-scaling-{name}");
    let stop = StopSignal::new();
    let started = Instant::now();
    let mut running = Vec::new();
    for instance in 0..instances {
        let mut config = seal_config(kafka, raw, &sealed, &dlq, keys, &group);
        config.instance_id = Some(format!("bench-{instance}"));
        config.stop_after = None;
        // Commits follow checkpoints; frequent ones keep the end of the drain precise.
        config.checkpoint_interval = Duration::from_millis(200);
        let registry = RegistryClient::new(registry, tokio::runtime::Handle::current()).map_err(anyhow::Error::msg)?;
        let stop = stop.clone();
        // Spawned, so every instance starts now rather than when its result is awaited.
        running.push(tokio::spawn(run_blocking(move || {
            sealtrail_seal::run(config, &registry, &stop)
        })));
    }
    let watcher = {
        let (kafka, raw, group, stop) = (kafka.clone(), raw.to_owned(), group.clone(), stop.clone());
        run_blocking(move || wait_until_committed(&kafka, &raw, &group, &stop, started))
    };
    let drained = watcher.await?;
    stop.stop();
    let mut sealed_total = 0;
    for instance in running {
        sealed_total += instance.await???.sealed;
    }
    let progress = drained?;
    anyhow::ensure!(
        sealed_total == progress.total,
        "{instances} instance(s) sealed {sealed_total} of {} records",
        progress.total
    );
    Ok(progress.rates())
}

/// How far a group's commits had come, sampled over a drain.
struct Progress {
    total: u64,
    /// (time since the start, records committed)
    samples: Vec<(Duration, u64)>,
}

impl Progress {
    fn first_reaching(&self, percent: u64) -> (Duration, u64) {
        let target = (self.total * percent).div_ceil(100);
        self.samples
            .iter()
            .copied()
            .find(|(_, committed)| *committed >= target)
            .unwrap_or((Duration::MAX, self.total))
    }

    fn rates(&self) -> Drain {
        let (end, _) = self.first_reaching(100);
        let ((from, low), (to, high)) = (self.first_reaching(10), self.first_reaching(90));
        Drain {
            whole: crate::per_second(self.total, end),
            steady: crate::per_second(high - low, to.saturating_sub(from)),
        }
    }
}

/// Samples `group`'s committed offsets until they reach the end of every partition of `raw`.
/// Stops `stop` (the instances) if it gives up.
fn wait_until_committed(
    kafka: &KafkaSettings,
    raw: &str,
    group: &str,
    stop: &StopSignal,
    started: Instant,
) -> anyhow::Result<Progress> {
    let probe = WatermarkProbe::new(kafka, Duration::from_secs(10))?;
    // Not a member: it only asks the group's committed offsets.
    let observer: BaseConsumer<KafkaContext> = kafka.create(&kafka.consumer(group)).context("observer consumer")?;
    let mut ends = TopicPartitionList::new();
    let mut progress = Progress {
        total: 0,
        samples: Vec::new(),
    };
    let mut lows = Vec::new();
    for partition in 0..PARTITIONS {
        let (low, high) = probe
            .watermarks(raw, partition)
            .with_context(|| format!("the broker did not tell the end of {raw} partition {partition}"))?;
        progress.total += u64::try_from(high - low).unwrap_or_default();
        lows.push(low);
        ends.add_partition(raw, partition);
    }
    let deadline = started + Duration::from_secs(900);
    loop {
        if let Ok(committed) = observer.committed_offsets(ends.clone(), Duration::from_secs(10)) {
            let done: u64 = committed
                .elements()
                .iter()
                .map(
                    |element| match (element.offset(), usize::try_from(element.partition())) {
                        (Offset::Offset(offset), Ok(index)) => {
                            u64::try_from(offset - lows.get(index).copied().unwrap_or_default()).unwrap_or_default()
                        }
                        _ => 0,
                    },
                )
                .sum();
            progress.samples.push((started.elapsed(), done));
            if done >= progress.total {
                return Ok(progress);
            }
        }
        if Instant::now() > deadline {
            stop.stop();
            anyhow::bail!("the group did not commit the whole backlog within 15 minutes");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Seals one tenant's `events` on a one-partition raw topic, `rounds` times; events per second.
pub async fn measure_hot_tenant(
    kafka: &KafkaSettings,
    registry: &RegistryConnection,
    events: u64,
    rounds: usize,
) -> anyhow::Result<Vec<f64>> {
    let run = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let raw = format!("bench-hot-raw-{run}");
    ensure_topics(kafka, &[TopicSpec::new(&raw, 1)]).await?;
    eprintln!("bench: producing {events} events of one tenant to {raw} (not timed)");
    fill(kafka, registry, &raw, events, 1).await?;
    let keys = std::env::temp_dir().join(format!("sealtrail-bench-hot-keys-{run}"));
    sealtrail_runtime::keys::init_key_dir(&keys)?;
    let mut rates = Vec::new();
    for round in 0..rounds {
        let name = format!("hot-{run}-{round}");
        let (sealed, dlq) = (format!("bench-hot-sealed-{name}"), format!("bench-hot-dlq-{name}"));
        ensure_topics(kafka, &[TopicSpec::new(&sealed, 1), TopicSpec::new(&dlq, 1)]).await?;
        let config = seal_config(kafka, &raw, &sealed, &dlq, &keys, &format!("bench-seal-{name}"));
        let rate = seal_round(registry, config, events).await?;
        eprintln!(
            "bench: round {} one tenant, one partition {rate:.0} events/s",
            round + 1
        );
        rates.push(rate);
    }
    std::fs::remove_dir_all(&keys).ok();
    Ok(rates)
}

//! Many instances, proven: three seal and three sink processes (`up --instances 3`) in the same
//! consumer groups while a workload flows. Instances are killed with SIGKILL (`up` restarts them under the
//! same static id), extra instances join, one leaves cleanly and one dies for good, and ClickHouse
//! is frozen for 60 s. A second workload follows the last fault, on every partition, so the
//! partitions of the members that are gone must have come back to the others. Afterwards every
//! good event is stored once, every malformed record is in the DLQ once with its reason, and every
//! tenant's chain verifies gap-free and signed.
//!
//! The schedule is fixed, so a failure can be replayed; the waits between steps only spread the
//! faults over the workload, and no assertion depends on how long anything took.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use sealtrail_core::placement::partition_for_key;

use crate::harness::{Processor, TestStack, fresh_data_dir};
use crate::pipeline::{assert_outcome, prefix, send_workload_at};

const EVENTS: u64 = 16_000;
const AFTER_EVENTS: u64 = 2_000;
const AFTER_TENANTS: usize = 40;
/// The raw topic's partition count under `up`.
const LOCAL_PARTITIONS: i32 = 4;
const PER_SECOND: u64 = 200;
const CLICKHOUSE_FROZEN: Duration = Duration::from_secs(60);
const SINK_CLICKHOUSE_ERRORS: &str = r#"sealtrail_errors_total{component="sink",kind="clickhouse"}"#;

fn signal(pid: i32, signal: Signal) {
    kill(Pid::from_raw(pid), signal).unwrap_or_else(|e| panic!("{signal} to {pid}: {e}"));
}

/// Kills one of the processors with SIGKILL `up` runs and waits until `up` has started it again.
async fn kill_and_wait_for_restart(stack: &TestStack, name: &str) {
    let before = stack.child_pid(name);
    signal(before, Signal::SIGKILL);
    let started = Instant::now();
    while stack.try_child_pid(name).is_none_or(|pid| pid == before) {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "up did not restart {name}:\n{}",
            stack.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("instances: {name} killed and restarted");
}

/// The sum of one counter sample over every processor `up` runs.
async fn sum_over_processors(stack: &TestStack, sample: &str) -> u64 {
    let urls = stack
        .endpoints
        .get("METRICS_URLS")
        .expect("up lists its metrics URLs")
        .to_owned();
    let mut total = 0;
    for url in urls.split_whitespace() {
        let Ok(response) = stack.http().get(url).send().await else {
            continue; // a processor being restarted
        };
        let text = response.text().await.unwrap_or_default();
        total += text
            .lines()
            .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' ')?.parse::<u64>().ok())
            .unwrap_or(0);
    }
    total
}

#[tokio::test(flavor = "multi_thread")]
async fn three_instances_each_survive_kills_joins_leaves_and_a_clickhouse_outage() {
    let stack = TestStack::try_start(&fresh_data_dir("instances"), &["--instances", "3"])
        .unwrap_or_else(|failure| panic!("{failure}"));
    let during_prefix = prefix("instances");
    let workload = {
        let (stack, prefix) = (&stack, during_prefix.clone());
        async move { send_workload_at(stack, EVENTS, 24, 0.01, &prefix, Some(PER_SECOND)).await }
    };
    let chaos = async {
        let step = || tokio::time::sleep(Duration::from_secs(4));
        step().await;
        kill_and_wait_for_restart(&stack, "seal-1").await;
        step().await;
        // Two more members join each group.
        let extra_seal = Processor::start(&stack, "seal", "sealtrail-seal", &[("SEAL_INSTANCE_ID", "seal-extra")]);
        let extra_sink = Processor::start(&stack, "sink", "sealtrail-sink", &[("SINK_INSTANCE_ID", "sink-extra")]);
        step().await;
        kill_and_wait_for_restart(&stack, "sink-2").await;
        step().await;

        // ClickHouse stops answering; the sinks time out, back off and report it.
        let clickhouse = stack.child_pid("clickhouse");
        let sink_errors = || async {
            sum_over_processors(&stack, SINK_CLICKHOUSE_ERRORS).await + extra_sink.metric(SINK_CLICKHOUSE_ERRORS).await
        };
        let errors_before = sink_errors().await;
        signal(clickhouse, Signal::SIGSTOP);
        eprintln!("instances: ClickHouse frozen");
        tokio::time::sleep(CLICKHOUSE_FROZEN / 2).await;
        kill_and_wait_for_restart(&stack, "seal").await;
        tokio::time::sleep(CLICKHOUSE_FROZEN / 2).await;
        let errors_during = sink_errors().await;
        signal(clickhouse, Signal::SIGCONT);
        eprintln!("instances: ClickHouse back");
        assert!(
            errors_during > errors_before,
            "the sinks report ClickHouse failing ({errors_before} errors before, {errors_during} after)"
        );

        step().await;
        // One extra member leaves cleanly, the other dies and never comes back: their
        // partitions must return to the others without anyone stepping in.
        extra_seal.stop();
        step().await;
        extra_sink.kill();
        eprintln!("instances: the extra members are gone");
        step().await;
        kill_and_wait_for_restart(&stack, "sink").await;
    };
    let (during, ()) = tokio::join!(workload, chaos);
    let after = send_workload_at(
        &stack,
        AFTER_EVENTS,
        AFTER_TENANTS,
        0.01,
        &format!("{during_prefix}after-"),
        None,
    )
    .await;
    let partitions: HashSet<i32> = after
        .tenants
        .iter()
        .map(|tenant| partition_for_key(tenant.as_bytes(), LOCAL_PARTITIONS))
        .collect();
    assert_eq!(
        partitions.len(),
        4,
        "the workload after the faults reaches every raw partition"
    );
    let sent = during.and(after);
    eprintln!(
        "instances: {} good and {} malformed records sent",
        sent.good.len(),
        sent.bad.values().sum::<u64>()
    );
    assert_outcome(&stack, &sent).await;
    let status = stack.stop();
    assert!(status.success(), "up stopped cleanly: {status}");
}

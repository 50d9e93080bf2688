//! The durable outbox of the Rust emitter against the real broker: the broker killed during a
//! stream, then the producing process killed, then both restarted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::harness::{SEALTRAIL, TestStack, free_port, fresh_data_dir, unique};

/// Bounds a broken run; a working one never waits this long.
const GIVE_UP: Duration = Duration::from_secs(300);

fn acknowledged(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Waits until `file` lists at least `count` acknowledged ids.
fn wait_for_acknowledged(file: &Path, count: usize, producer: &mut std::process::Child) {
    let started = Instant::now();
    while acknowledged(file).len() < count {
        if let Some(status) = producer.try_wait().expect("producer status") {
            panic!("the producer exited with {status} before {count} events were acknowledged");
        }
        assert!(started.elapsed() < GIVE_UP, "fewer than {count} events acknowledged");
        std::thread::sleep(Duration::from_millis(100));
    }
}

async fn metric(url: &str, name: &str) -> f64 {
    let text = reqwest::get(url).await.expect("metrics").text().await.expect("text");
    text.lines()
        .find(|line| line.starts_with(name))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}

/// How many times each event of `prefix`'s tenants was stored, once every one of `expected` is.
async fn stored_counts(stack: &TestStack, prefix: &str, expected: &BTreeSet<String>) -> BTreeMap<String, u64> {
    let client = stack.clickhouse().client();
    let started = Instant::now();
    loop {
        let rows: Vec<(String, u64)> = client
            .query("SELECT event_id, count() FROM events WHERE startsWith(tenant_id, ?) GROUP BY event_id")
            .bind(prefix)
            .fetch_all()
            .await
            .expect("stored events");
        let stored: BTreeMap<String, u64> = rows.into_iter().collect();
        if expected.iter().all(|id| stored.contains_key(id)) || started.elapsed() > GIVE_UP {
            return stored;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn events_the_emitter_acknowledged_are_sealed_once_after_the_broker_and_the_producer_were_killed() {
    let data_dir = fresh_data_dir("outbox");
    let stack = TestStack::start(&data_dir);
    let outbox = data_dir.join("producer-outbox");
    let ids_file = data_dir.join("acknowledged.txt");
    let prefix = format!("{}-", unique("ob"));
    let metrics_port = free_port();
    let mut producer = Command::new(SEALTRAIL)
        .args([
            "produce",
            "--events",
            "1000000",
            "--rate",
            "150",
            "--tenants",
            "3",
            "--tenant-prefix",
        ])
        .arg(&prefix)
        .arg("--outbox")
        .arg(&outbox)
        .args(["--outbox-spill-after", "2", "--acknowledged-ids"])
        .arg(&ids_file)
        .envs(stack.env())
        .env("SEALTRAIL_METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the producer");
    wait_for_acknowledged(&ids_file, 150, &mut producer);
    let metrics = format!("http://127.0.0.1:{metrics_port}/metrics");
    assert!(
        metric(&metrics, "sealtrail_outbox_records").await < 0.5,
        "Kafka acknowledges: the outbox is empty"
    );

    kill(Pid::from_raw(stack.child_pid("tansu")), Signal::SIGKILL).expect("kill -9 the broker");
    let (status, _) = stack.wait_for_exit();
    assert!(!status.success());
    let at_kill = acknowledged(&ids_file).len();
    // Acknowledged after the broker died: only the outbox can have taken these.
    wait_for_acknowledged(&ids_file, at_kill + 200, &mut producer);
    assert!(metric(&metrics, "sealtrail_outbox_records").await >= 200.0);
    assert!(metric(&metrics, "sealtrail_outbox_bytes").await > 0.0);
    producer.kill().expect("kill -9 the producer");
    producer.wait().expect("reap the producer");
    let told: BTreeSet<String> = acknowledged(&ids_file).into_iter().collect();
    assert!(told.len() > at_kill + 200, "ids are unique and all recorded");

    let restarted = TestStack::start(&data_dir);
    let outbox_arg = outbox.display().to_string();
    let (status, stdout, stderr) = restarted.sealtrail(
        &[
            "produce",
            "--events",
            "0",
            "--outbox",
            &outbox_arg,
            "--outbox-drain-timeout",
            "240",
        ],
        &[],
    );
    assert!(status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("the outbox is drained"), "{stdout}");

    let stored = stored_counts(&restarted, &prefix, &told).await;
    let missing: Vec<&String> = told.iter().filter(|id| !stored.contains_key(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged events were lost: {missing:?}",
        missing.len()
    );
    let doubled: Vec<(&String, &u64)> = stored.iter().filter(|(_, count)| **count != 1).collect();
    assert!(doubled.is_empty(), "events sealed more than once: {doubled:?}");
    assert!(restarted.stop().success());
}

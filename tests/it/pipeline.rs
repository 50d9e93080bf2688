//! The sealing pipeline end to end on the real stack: raw topic -> seal -> sealed topic -> sink
//! -> ClickHouse, with rejects in the DLQ and every chain verified.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aho_corasick::AhoCorasick;
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use rand::Rng as _;
use sealtrail_clickhouse::{VerifyReport, VerifyRequest, verify_tenant};
use sealtrail_emit::generator::{Generated, Generator, Payload, Workload};
use sealtrail_emit::{AuditEmitter, acknowledged};
use sealtrail_kafka::PartitionReader;

use crate::harness::{TestStack, fresh_data_dir, unique};

pub const RAW: &str = "audit-events";
pub const SEALED: &str = "audit-events-sealed";
pub const DLQ: &str = "audit-events-dlq";

/// What a workload sent.
pub struct Sent {
    pub prefix: String,
    pub tenants: Vec<String>,
    /// event id -> tenant, for every good event.
    pub good: HashMap<String, String>,
    pub bad: HashMap<&'static str, u64>,
    pub planted: Vec<String>,
}

impl Sent {
    /// Two workloads sent to one stack, as one: the outcome of both is asserted together (the
    /// DLQ cannot tell them apart). `later`'s prefix must start with this one's.
    pub fn and(mut self, later: Self) -> Self {
        assert!(
            later.prefix.starts_with(&self.prefix),
            "{} extends {}",
            later.prefix,
            self.prefix
        );
        self.tenants.extend(later.tenants);
        self.good.extend(later.good);
        for (reason, count) in later.bad {
            *self.bad.entry(reason).or_default() += count;
        }
        self.planted.extend(later.planted);
        self
    }
}

pub fn now_ms() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis()).expect("ms")
}

/// Sends `events` records for `tenants` tenants, a share `bad_ratio` of them malformed.
pub async fn send_workload(stack: &TestStack, events: u64, tenants: usize, bad_ratio: f64, prefix: &str) -> Sent {
    send_workload_at(stack, events, tenants, bad_ratio, prefix, None).await
}

/// Like `send_workload`, at most `per_second` records a second when given (a workload that flows
/// while a test does other things).
pub async fn send_workload_at(
    stack: &TestStack,
    events: u64,
    tenants: usize,
    bad_ratio: f64,
    prefix: &str,
    per_second: Option<u64>,
) -> Sent {
    let workload = Workload {
        tenants,
        bad_ratio,
        seed: 42,
        now_ms: now_ms(),
        tenant_prefix: prefix.to_owned(),
    };
    send_workload_into(stack, RAW, workload, events, per_second).await
}

/// Sends `events` records of `workload` to the raw topic `raw`, at most `per_second` a second
/// when given.
pub async fn send_workload_into(
    stack: &TestStack,
    raw: &str,
    workload: Workload,
    events: u64,
    per_second: Option<u64>,
) -> Sent {
    let emitter = AuditEmitter::connect(&stack.kafka(), &stack.registry(), raw)
        .await
        .expect("emitter");
    let prefix = workload.tenant_prefix.clone();
    let mut generator = Generator::new(workload).keeping_planted();
    let mut good = HashMap::new();
    let mut bad: HashMap<&'static str, u64> = HashMap::new();
    let mut in_flight = FuturesUnordered::new();
    let started = tokio::time::Instant::now();
    for sent in 0..events {
        if let Some(rate) = per_second.filter(|_| sent % 50 == 0) {
            tokio::time::sleep_until(started + Duration::from_millis(sent * 1000 / rate.max(1))).await;
        }
        let delivery = match generator.next_record() {
            Generated::Good(event) => {
                good.insert(event.event_id.clone(), event.tenant_id.clone());
                emitter.enqueue(&event).expect("queued")
            }
            Generated::Bad { kind, key, payload } => {
                *bad.entry(kind.reason()).or_default() += 1;
                let bytes = match payload {
                    Payload::Bytes(bytes) => bytes,
                    Payload::Event(event) => emitter.encode(&event),
                };
                emitter.enqueue_raw(key.as_deref(), &bytes).expect("queued")
            }
        };
        in_flight.push(acknowledged(delivery));
        if per_second.is_some() {
            while let Some(Some(result)) = futures::FutureExt::now_or_never(in_flight.next()) {
                result.expect("acknowledged by the broker");
            }
        }
    }
    while let Some(result) = in_flight.next().await {
        result.expect("acknowledged by the broker");
    }
    Sent {
        prefix,
        tenants: generator.tenant_ids().to_vec(),
        good,
        bad,
        planted: generator.planted().to_vec(),
    }
}

/// Waits until ClickHouse holds `expected` events of the workload (the pipeline is
/// asynchronous; the deadline only bounds a broken run).
pub async fn wait_until_stored(stack: &TestStack, prefix: &str, expected: usize) -> Vec<String> {
    let client = stack.clickhouse().client();
    let started = Instant::now();
    loop {
        let ids: Vec<String> = client
            .query("SELECT event_id FROM events WHERE startsWith(tenant_id, ?)")
            .bind(prefix)
            .fetch_all()
            .await
            .expect("query events");
        if ids.len() >= expected || started.elapsed() > Duration::from_secs(900) {
            return ids;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Reads every record of a topic: (headers, key, value).
pub fn read_topic(stack: &TestStack, topic: &str) -> Vec<sealtrail_kafka::PartitionRecord> {
    let reader = PartitionReader::new(&stack.kafka(), Duration::from_secs(120)).expect("reader");
    let partitions = reader.partition_count(topic).expect("partitions");
    let mut records = Vec::new();
    for partition in 0..i32::try_from(partitions).expect("few") {
        let (low, high) = reader.watermarks(topic, partition).expect("watermarks");
        records.extend(reader.read(topic, partition, low, high).expect("read"));
    }
    records
}

/// DLQ records by reason, once `expected` of them are there.
fn dlq_reasons(stack: &TestStack, expected: u64) -> HashMap<String, u64> {
    let started = Instant::now();
    loop {
        let records = read_topic(stack, DLQ);
        if records.len() as u64 >= expected || started.elapsed() > Duration::from_secs(600) {
            let mut reasons = HashMap::new();
            for record in &records {
                assert!(
                    record.header("sealtrail.source.offset").is_some(),
                    "DLQ records name their source offset"
                );
                assert_eq!(record.header("sealtrail.source.topic"), Some(RAW.as_bytes()));
                let reason =
                    String::from_utf8(record.header("sealtrail.reason").expect("a reason").to_vec()).expect("utf-8");
                *reasons.entry(reason).or_default() += 1;
            }
            return reasons;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Asserts the whole outcome of a workload: exactly-once in ClickHouse, rejects in the DLQ with
/// their reasons, every chain verifying and signed, and no planted value stored anywhere.
pub async fn assert_outcome(stack: &TestStack, sent: &Sent) {
    let stored = wait_until_stored(stack, &sent.prefix, sent.good.len()).await;
    let unique_ids: HashSet<&String> = stored.iter().collect();
    assert_eq!(unique_ids.len(), stored.len(), "no event is stored twice");
    let expected: HashSet<&String> = sent.good.keys().collect();
    assert_eq!(unique_ids, expected, "every good event is stored, and nothing else");

    let expected_bad: u64 = sent.bad.values().sum();
    let reasons = dlq_reasons(stack, expected_bad);
    let expected_reasons: HashMap<String, u64> = sent.bad.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
    assert_eq!(
        reasons, expected_reasons,
        "every bad record is in the DLQ once, with its reason"
    );

    let mut per_tenant: HashMap<&String, u64> = HashMap::new();
    for tenant in sent.good.values() {
        *per_tenant.entry(tenant).or_default() += 1;
    }
    for (tenant, count) in per_tenant {
        let report = verify_once_signed(stack, tenant).await;
        assert_eq!(report.events, count, "tenant {tenant}");
        assert_eq!(
            (report.first_seq, report.last_seq),
            (Some(1), Some(count)),
            "tenant {tenant}: gap-free from 1"
        );
        assert_eq!(
            report.signed_through, count,
            "tenant {tenant}: every event under a signed checkpoint"
        );
    }

    assert_nothing_planted_is_stored(stack, sent).await;
}

/// Verifies a tenant's whole chain once the next checkpoint has signed its newest events (the
/// deadline only bounds a broken run); panics if it does not verify.
pub async fn verify_once_signed(stack: &TestStack, tenant: &str) -> VerifyReport {
    let request = VerifyRequest {
        tenant: tenant.to_owned(),
        from: None,
        to: None,
    };
    let trusted = stack.trusted_keys();
    let started = Instant::now();
    loop {
        let report = verify_tenant(&stack.clickhouse(), &request, &trusted)
            .await
            .unwrap_or_else(|e| panic!("tenant {tenant} verifies: {e}"));
        if report.unsigned_tail() == 0 || started.elapsed() > Duration::from_secs(900) {
            return report;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn assert_nothing_planted_is_stored(stack: &TestStack, sent: &Sent) {
    assert!(sent.planted.len() > 100, "the workload planted sensitive values");
    let planted = AhoCorasick::new(&sent.planted).expect("matcher");
    let leak = |place: &str, haystack: &[u8]| {
        if let Some(found) = planted.find(haystack) {
            panic!(
                "planted value {:?} reached {place}",
                sent.planted[found.pattern().as_usize()]
            );
        }
    };
    for record in read_topic(stack, SEALED) {
        leak("the sealed topic", record.value.as_deref().unwrap_or_default());
        leak("the sealed topic keys", record.key.as_deref().unwrap_or_default());
    }
    let client = stack.clickhouse().client();
    for table in ["events", "checkpoints"] {
        let mut cursor = client
            .query(&format!("SELECT * FROM {table}"))
            .fetch_bytes("TabSeparated")
            .expect("query");
        let mut dump = Vec::new();
        while let Some(chunk) = cursor.next().await.expect("rows") {
            dump.extend_from_slice(&chunk);
        }
        leak(&format!("ClickHouse table {table}"), &dump);
    }
    for entry in std::fs::read_dir(stack.data_dir.join("logs")).expect("logs") {
        let path = entry.expect("entry").path();
        leak(&format!("log {}", path.display()), &std::fs::read(&path).expect("log"));
    }
    leak("the output of sealtrail up", stack.stderr().as_bytes());
}

#[tokio::test]
async fn twenty_thousand_events_over_fifty_tenants_arrive_once_verified_and_redacted() {
    let stack = TestStack::start(&fresh_data_dir("pipeline"));
    let sent = send_workload(&stack, 20_000, 50, 0.01, "p20k-").await;
    assert_eq!(sent.tenants.len(), 50);
    assert!(sent.bad.values().sum::<u64>() > 100, "about 1% planted bad records");
    assert_outcome(&stack, &sent).await;
    assert!(stack.stop().success());
}

/// Kills the named processor `times` times at random moments, each time after `up` restarted it.
async fn kill_repeatedly(data_dir: std::path::PathBuf, name: &'static str, times: usize) -> usize {
    let pid_file = data_dir.join("run").join(format!("{name}.pid"));
    let read_pid = || -> Option<i32> {
        std::fs::read_to_string(&pid_file)
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let mut killed = 0;
    let mut last = None;
    while killed < times {
        // Wait for the processor to be (re)started, then for a random moment.
        let started = Instant::now();
        let pid = loop {
            match read_pid() {
                Some(pid) if Some(pid) != last => break pid,
                _ if started.elapsed() > Duration::from_secs(120) => panic!("{name} was not restarted"),
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        let pause = rand::rng().random_range(200..1500);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        if nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).is_ok() {
            killed += 1;
        }
        last = Some(pid);
    }
    killed
}

#[tokio::test]
async fn the_same_run_survives_seal_and_sink_being_killed_repeatedly() {
    let stack = TestStack::start(&fresh_data_dir("chaos"));
    let seal = tokio::spawn(kill_repeatedly(stack.data_dir.clone(), "seal", 5));
    let sink = tokio::spawn(kill_repeatedly(stack.data_dir.clone(), "sink", 5));
    let sent = send_workload(&stack, 20_000, 50, 0.01, "chaos-").await;
    assert_eq!(seal.await.expect("killer"), 5);
    assert_eq!(sink.await.expect("killer"), 5);
    assert_outcome(&stack, &sent).await;
    let restarts = stack.stderr().matches("processor exited; restarting").count();
    assert!(
        restarts >= 10,
        "up restarted the processors after each kill ({restarts})"
    );
    assert!(stack.stop().success());
}

/// A unique prefix per test for workloads on the shared stack.
pub fn prefix(name: &str) -> String {
    format!("{}-", unique(name).replace('_', "-"))
}

//! A differential fuzzer for the tenant rewrite: every input the SQL check accepts is handed to
//! ClickHouse, whose own reading of the rendered text must read only the caller's tenant (the
//! second wall, `sealtrail_api::sql::confirm_scope`); a sample of them is also run for real as
//! tenant alfa, and no answer may hold anything of tenant bravo's.
//!
//! The suite runs a few thousand inputs. The long run (docs/security.md):
//! `SEALTRAIL_SQL_FUZZ_INPUTS=1000000 cargo test --test it -- sql_fuzz --nocapture`
//! (`SEALTRAIL_SQL_FUZZ_SEED` picks another sequence of inputs).

mod generator;

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sealtrail_api::sql::{ConfirmError, TENANT_PARAMETER, confirm_scope, rewrite};
use sealtrail_clickhouse::access::TenantReader;
use tokio::sync::Mutex;

use crate::api::{Api, BRAVO_MARKER};

/// Inputs in the suite's run.
const SUITE_INPUTS: u64 = 3_000;
/// Accepted inputs checked by ClickHouse at once.
const IN_FLIGHT: usize = 4;
/// One accepted input in this many is also run for real.
const RUN_ONE_IN: u64 = 10;

#[derive(Debug, Default)]
struct Tally {
    inputs: AtomicU64,
    refused_by_check: AtomicU64,
    confirmed: AtomicU64,
    refused_by_clickhouse: AtomicU64,
    run: AtomicU64,
    findings: Mutex<Vec<String>>,
    /// Why the check refused, by the start of its reason.
    refusals: std::sync::Mutex<std::collections::BTreeMap<String, (u64, String)>>,
}

/// Where accepted inputs are checked: ClickHouse, as the tenant-bound analyst of alfa.
struct Target {
    client: clickhouse::Client,
    database: String,
    alfa: String,
    bravo: String,
}

#[tokio::test]
async fn every_query_the_check_accepts_reads_only_the_callers_tenant_in_clickhouses_reading() {
    let setting = |name: &str, default: u64| std::env::var(name).ok().and_then(|n| n.parse().ok()).unwrap_or(default);
    let inputs = setting("SEALTRAIL_SQL_FUZZ_INPUTS", SUITE_INPUTS);
    let seed = setting("SEALTRAIL_SQL_FUZZ_SEED", 12);
    let api = Api::start().await;
    let target = Arc::new(Target {
        client: api.reader_of_alfa(TenantReader::Analyst),
        database: api.settings.database.clone(),
        alfa: api.alfa.clone(),
        bravo: api.bravo.clone(),
    });
    let tally = Arc::new(Tally::default());
    let mut generator = generator::seeded(seed);
    let started = std::time::Instant::now();
    let mut pending = tokio::task::JoinSet::new();
    for index in 0..inputs {
        let input = generator.next_input();
        tally.inputs.fetch_add(1, Ordering::Relaxed);
        let query = match rewrite(&input, &target.database) {
            Ok(query) => query,
            Err(refusal) => {
                tally.refused(&refusal.reason, &input);
                continue;
            }
        };
        while pending.len() >= IN_FLIGHT {
            pending.join_next().await;
        }
        let (target, tally) = (target.clone(), tally.clone());
        let run = index % RUN_ONE_IN == 0;
        pending.spawn(async move { check(&target, &tally, &input, &query.client_text(), run).await });
        if (index + 1) % 100_000 == 0 {
            eprintln!("sql fuzz: {} inputs, {:?}", index + 1, started.elapsed());
        }
    }
    while pending.join_next().await.is_some() {}
    let findings = tally.findings.lock().await.clone();
    let summary = tally.summary(seed, started.elapsed(), findings.len());
    eprintln!("{summary}");
    assert!(
        findings.is_empty(),
        "{summary}\n{}",
        findings.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
    // The generator must keep producing queries the check accepts, or this proves nothing.
    let confirmed = tally.confirmed.load(Ordering::Relaxed);
    let accepted = confirmed + tally.refused_by_clickhouse.load(Ordering::Relaxed);
    assert!(
        accepted * 4 >= inputs && confirmed * 40 >= inputs,
        "too few accepted inputs: {summary}"
    );
}

/// ClickHouse's reading of one accepted input must pass the second wall; when `run`, its answer
/// as alfa must hold nothing of bravo's.
async fn check(target: &Target, tally: &Tally, input: &str, text: &str, run: bool) {
    match confirm_scope(&target.client, text, &target.database, &target.alfa).await {
        Ok(()) => {
            tally.confirmed.fetch_add(1, Ordering::Relaxed);
        }
        Err(ConfirmError::Violation(violation)) => {
            tally
                .findings
                .lock()
                .await
                .push(format!("{violation}: {input:?} -> {text:?}"));
            return;
        }
        Err(ConfirmError::ClickHouse(_)) => {
            tally.refused_by_clickhouse.fetch_add(1, Ordering::Relaxed);
            return;
        }
    }
    if !run {
        return;
    }
    tally.run.fetch_add(1, Ordering::Relaxed);
    let answer = match target
        .client
        .query(text)
        .param(TENANT_PARAMETER, &target.alfa)
        .fetch_bytes("JSONEachRow")
    {
        Ok(mut cursor) => cursor.collect().await.map(|b| String::from_utf8_lossy(&b).into_owned()),
        Err(error) => Err(error),
    };
    let answer = answer.unwrap_or_else(|error| error.to_string());
    if answer.contains(&target.bravo) || answer.contains(BRAVO_MARKER) {
        tally
            .findings
            .lock()
            .await
            .push(format!("LEAK: {input:?} -> {text:?}: {answer}"));
    }
}

impl Tally {
    fn refused(&self, reason: &str, input: &str) {
        self.refused_by_check.fetch_add(1, Ordering::Relaxed);
        if std::env::var_os("SEALTRAIL_SQL_FUZZ_SHOW").is_some() {
            eprintln!("REFUSED {reason}: {input:?}");
        }
        let reason: String = reason.chars().take(48).collect();
        let mut refusals = self.refusals.lock().expect("not poisoned");
        let entry = refusals.entry(reason).or_insert_with(|| (0, input.to_owned()));
        entry.0 += 1;
    }

    fn summary(&self, seed: u64, took: std::time::Duration, findings: usize) -> String {
        let mut summary = format!(
            "sql fuzz (seed {seed}): {} inputs in {took:.0?}: {} refused by the check, {} confirmed by ClickHouse, {} refused by ClickHouse, {} run for real; {findings} findings",
            self.inputs.load(Ordering::Relaxed),
            self.refused_by_check.load(Ordering::Relaxed),
            self.confirmed.load(Ordering::Relaxed),
            self.refused_by_clickhouse.load(Ordering::Relaxed),
            self.run.load(Ordering::Relaxed),
        );
        let mut reasons: Vec<(String, (u64, String))> = self
            .refusals
            .lock()
            .expect("not poisoned")
            .clone()
            .into_iter()
            .collect();
        reasons.sort_by_key(|(_, (count, _))| std::cmp::Reverse(*count));
        for (reason, (count, example)) in reasons.iter().take(12) {
            let example: String = example.chars().take(120).collect();
            let _ = write!(summary, "\n  refused {count:>8}: {reason}... (first: {example:?})");
        }
        summary
    }
}

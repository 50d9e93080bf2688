//! An independent witness cosigns every checkpoint the monitor verifies; exports carry the
//! cosignatures, and `verify-export --witness-key` checks them. A fork (the same checkpoint
//! number, other content, validly signed with the stolen signing key) is refused by the witness,
//! and an export rewritten around it passes the signing key alone but fails `--witness-key`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sealtrail_core::checkpoint::CheckpointSigner;
use sealtrail_core::export::{MANIFEST_FILE, Manifest, ManifestCheckpoint, SIGNATURE_FILE, signed_manifest_bytes};
use sealtrail_core::sealed::Checkpoint;
use sealtrail_core::witness::SubmittedCheckpoint;
use sealtrail_export::exporter::{ExportRequest, write_export};
use serde_json::Value;

use crate::harness::{SEALTRAIL, TestStack, free_port, fresh_data_dir, run_sealtrail};
use crate::pipeline::{assert_outcome, prefix, send_workload};

/// `sealtrail witness`, killed with the test.
struct WitnessProcess(Child);

impl Drop for WitnessProcess {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

async fn start_witness(state: &Path, log_keys: &Path, port: u16) -> WitnessProcess {
    let log = std::fs::File::create(state.with_extension("log")).expect("witness log");
    let child = Command::new(SEALTRAIL)
        .args(["witness", "--name", "witness.test/w1", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--state-dir")
        .arg(state)
        .arg("--log-keys")
        .arg(log_keys)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start the witness");
    let process = WitnessProcess(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::get(format!("http://127.0.0.1:{port}/vkey")).await.is_err() {
        assert!(Instant::now() < deadline, "the witness did not answer within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    process
}

/// Waits until every checkpoint of `partition` in ClickHouse has the witness's cosignature.
async fn wait_until_witnessed(stack: &TestStack, partition: u32) {
    let client = stack.clickhouse().client();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (checkpoints, cosigned): (u64, u64) = client
            .query(
                "SELECT ifNull((SELECT max(number) FROM checkpoints WHERE sealed_partition = ?), 0), \
                        ifNull((SELECT max(number) FROM cosignatures WHERE sealed_partition = ?), 0)",
            )
            .bind(partition)
            .bind(partition)
            .fetch_one()
            .await
            .expect("counts");
        if checkpoints > 0 && cosigned >= checkpoints {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "partition {partition}: {cosigned} of {checkpoints} checkpoints cosigned after 90 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn verify_export(dir: &Path, public_key: &Path, witness_key: Option<&Path>) -> (bool, String) {
    let mut args = vec![
        "verify-export".to_owned(),
        dir.display().to_string(),
        "--public-key".to_owned(),
        public_key.display().to_string(),
    ];
    if let Some(key) = witness_key {
        args.extend(["--witness-key".to_owned(), key.display().to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (status, stdout, stderr) = run_sealtrail(&args, &[]);
    (status.success(), format!("{stdout}{stderr}"))
}

/// Another checkpoint with `last`'s number, signed with the stolen key.
fn fork(last: &ManifestCheckpoint, signer: &CheckpointSigner) -> Checkpoint {
    let mut forked = SubmittedCheckpoint {
        scheme: last.scheme,
        partition: last.partition,
        number: last.number,
        prev_checkpoint_hash: last.prev_checkpoint_hash.clone(),
        entries_root: last.entries_root.clone(),
        entry_count: last.entry_count,
        tenant_heads_root: last.tenant_heads_root.clone(),
        tenant_count: last.tenant_count,
        source_offset: last.source_offset,
        dlq_next_offset: last.dlq_next_offset,
        created_at: last.created_at + 1,
        epoch: last.epoch,
        partitions: last.partitions,
        closes_epoch: last.closes_epoch,
        // Replaced when the stolen key signs it.
        key_id: last.key_id.clone(),
        checkpoint_hash: last.checkpoint_hash.clone(),
        signature: last.signature.clone(),
    }
    .to_checkpoint()
    .expect("fields");
    signer.sign(&mut forked);
    forked
}

async fn assert_the_witness_refuses(port: u16, forked: &Checkpoint) {
    let refused = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/add-checkpoint"))
        .json(&SubmittedCheckpoint::from(forked))
        .send()
        .await
        .expect("the witness answers");
    assert_eq!(refused.status(), 409);
    let refusal: Value = refused.json().await.expect("JSON");
    assert_eq!(refusal["refused"], "fork", "{refusal}");
    assert!(refusal["latest_hash"].as_str().is_some(), "{refusal}");
    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("sealtrail_witness_refusals_total{reason=\"fork\"} 1"),
        "{metrics}"
    );
}

/// A copy of the export in `dir` whose last checkpoint is `forked`, its manifest signed again.
fn rewrite_export(out: &Path, dir: &Path, manifest: &Manifest, forked: &Checkpoint, signer: &CheckpointSigner) {
    std::fs::create_dir_all(dir).expect("dir");
    for entry in std::fs::read_dir(out).expect("export files") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, dir.join(path.file_name().expect("name"))).expect("copy");
    }
    let mut rewritten = manifest.clone();
    let entry = rewritten.checkpoints.last_mut().expect("a checkpoint");
    entry.created_at = forked.created_at;
    entry.checkpoint_hash = forked.checkpoint_hash.to_hex();
    entry.signature = sealtrail_core::digest::to_hex(&forked.signature);
    let json = serde_json::to_vec_pretty(&rewritten).expect("JSON");
    let signature = signer.sign_message(&signed_manifest_bytes(&json));
    std::fs::write(dir.join(MANIFEST_FILE), &json).expect("manifest");
    std::fs::write(dir.join(SIGNATURE_FILE), sealtrail_core::digest::to_hex(&signature)).expect("sig");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fork_signed_with_the_stolen_key_is_refused_by_the_witness_and_fails_verify_export() {
    let data_dir = fresh_data_dir("witness");
    let keys = data_dir.join("keys");
    let (status, stdout, stderr) = run_sealtrail(&["keys", "init", "--dir", &keys.display().to_string()], &[]);
    assert!(status.success(), "keys init: {stdout}{stderr}");
    let state = data_dir.with_extension("witness");
    let port = free_port();
    let _witness = start_witness(&state, &keys.join("trusted"), port).await;
    let vkey = state.join("witness.vkey");
    let witnesses = format!("http://127.0.0.1:{port}={}", vkey.display());
    let stack = TestStack::try_start_with_env(&data_dir, &[], &[("MONITOR_WITNESSES", witnesses.as_str())])
        .unwrap_or_else(|failure| panic!("{failure}"));

    let sent = send_workload(&stack, 200, 2, 0.0, &prefix("witnessed")).await;
    assert_outcome(&stack, &sent).await;
    let tenant = sent.tenants[0].clone();
    let partition: u32 = stack
        .clickhouse()
        .client()
        .query("SELECT any(sealed_partition) FROM events WHERE tenant_id = ?")
        .bind(&tenant)
        .fetch_one()
        .await
        .expect("partition");
    wait_until_witnessed(&stack, partition).await;

    let signer = sealtrail_runtime::keys::load_signer(&keys.join(sealtrail_runtime::keys::SIGNING_KEY_FILE))
        .expect("the signing key");
    let out = data_dir.join("export");
    let manifest = write_export(
        &stack.clickhouse(),
        &signer,
        &ExportRequest {
            export_id: "exp_witnessed".to_owned(),
            tenant: tenant.clone(),
            scope: sealtrail_api::scope::EventScope::default(),
            out_dir: out.clone(),
            max_file_bytes: 64 << 20,
        },
        |_| {},
    )
    .await
    .expect("export");
    assert!(
        manifest.checkpoints.iter().all(|c| c.cosignatures.len() == 1),
        "every checkpoint of the export carries the witness's cosignature"
    );
    let public = data_dir.join("signing-key.pub");
    let (verified, printed) = verify_export(&out, &public, Some(&vkey));
    assert!(
        verified && printed.contains("witnessed"),
        "verify-export --witness-key: {printed}"
    );

    // Whoever stole the signing key signs another checkpoint with the number of the last one.
    let last = manifest.checkpoints.last().expect("a checkpoint").clone();
    let forked = fork(&last, &signer);
    assert_the_witness_refuses(port, &forked).await;

    // The export rewritten around the fork, its manifest signed again with the stolen key.
    let forged_dir = data_dir.join("forged-export");
    rewrite_export(&out, &forged_dir, &manifest, &forked, &signer);
    let (verified, printed) = verify_export(&forged_dir, &public, None);
    assert!(verified, "the signing key alone cannot tell the fork: {printed}");
    let (verified, printed) = verify_export(&forged_dir, &public, Some(&vkey));
    assert!(!verified, "the witness's key catches the fork: {printed}");
    assert!(
        printed.contains(&format!("checkpoint {} of partition", last.number)) && printed.contains("witness.test/w1"),
        "{printed}"
    );
    stack.stop();
}

//! Signed exports: written from the real ClickHouse, verified offline by `sealtrail verify-export`,
//! and refused by it after any change to a file, the manifest or its signature.

use std::io::{Read as _, Write as _};
use std::path::Path;

use sealtrail_core::checkpoint::CheckpointSigner;
use sealtrail_core::digest::to_hex;
use sealtrail_core::export::{MANIFEST_FILE, Manifest, SIGNATURE_FILE, signed_manifest_bytes};
use sealtrail_export::exporter::{ExportRequest, write_export};

use super::events::{seal_events, seal_into_clickhouse};
use super::{Api, SIGNER_SEED};
use crate::harness::run_sealtrail;

pub(crate) fn verify_export(dir: &Path, key: &Path) -> (bool, String) {
    let (status, stdout, stderr) = run_sealtrail(
        &[
            "verify-export",
            &dir.display().to_string(),
            "--public-key",
            &key.display().to_string(),
        ],
        &[],
    );
    (status.success(), format!("{stdout}{stderr}"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("dir");
    for entry in std::fs::read_dir(from).expect("read dir").flatten() {
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}

#[tokio::test]
async fn an_export_verifies_offline_and_any_change_is_caught_and_named() {
    let api = Api::empty().await;
    let sealed = seal_into_clickhouse(&api).await;
    let signer = CheckpointSigner::from_seed(&SIGNER_SEED).expect("signer");
    let work = tempfile::tempdir().expect("temp dir");
    let key = work.path().join("signing-key.pub");
    std::fs::write(&key, to_hex(signer.public_key())).expect("key");
    let original = work.path().join("export");
    let request = ExportRequest {
        export_id: "exp_test".to_owned(),
        tenant: api.alfa.clone(),
        scope: sealtrail_api::scope::EventScope::default(),
        out_dir: original.clone(),
        // Small files, so the export spans several.
        max_file_bytes: 4096,
    };
    let manifest = write_export(&api.settings, &signer, &request, |_| {})
        .await
        .expect("export");
    let alfa_events = sealed.events.iter().filter(|e| e.tenant_id == api.alfa).count() as u64;
    assert_eq!(manifest.event_count, alfa_events);
    assert!(manifest.files.len() > 1, "{:?}", manifest.files);
    assert_eq!(manifest.checkpoints.len(), 1);
    assert!(
        manifest.unsigned_tail > 0,
        "the events after the checkpoint are exported too"
    );

    let (ok, printed) = verify_export(&original, &key);
    assert!(ok, "{printed}");
    assert!(printed.contains("VERIFIED"), "{printed}");

    // One byte of an events file.
    let case = work.path().join("file");
    copy_dir(&original, &case);
    let file = case.join(&manifest.files[0].name);
    let mut bytes = std::fs::read(&file).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&file, bytes).expect("write");
    let (ok, printed) = verify_export(&case, &key);
    assert!(!ok && printed.contains(&manifest.files[0].name), "{printed}");

    // One byte of the manifest, then of the signature.
    for (name, at) in [(MANIFEST_FILE, 40), (SIGNATURE_FILE, 10)] {
        let case = work.path().join(format!("case-{name}"));
        copy_dir(&original, &case);
        let mut bytes = std::fs::read(case.join(name)).expect("read");
        bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
        std::fs::write(case.join(name), bytes).expect("write");
        let (ok, printed) = verify_export(&case, &key);
        assert!(!ok && printed.contains("manifest.sig"), "{name}: {printed}");
    }

    // An edited event, with file hashes updated and the manifest re-signed by the key holder:
    // the chain itself still gives it away, at that line.
    let case = work.path().join("event");
    copy_dir(&original, &case);
    let first = &manifest.files[0];
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::read(case.join(&first.name)).expect("read").as_slice())
        .read_to_string(&mut text)
        .expect("gunzip");
    let edited = text.replacen("user.login", "user.logout", 1);
    assert_ne!(edited, text);
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(edited.as_bytes()).expect("gzip");
    let bytes = encoder.finish().expect("gzip");
    std::fs::write(case.join(&first.name), &bytes).expect("write");
    let mut forged: Manifest = manifest.clone();
    forged.files[0].sha256 = to_hex(&<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    forged.files[0].bytes = bytes.len() as u64;
    let forged_json = serde_json::to_vec_pretty(&forged).expect("JSON");
    std::fs::write(case.join(MANIFEST_FILE), &forged_json).expect("write");
    let signature = signer.sign_message(&signed_manifest_bytes(&forged_json));
    std::fs::write(case.join(SIGNATURE_FILE), to_hex(&signature)).expect("write");
    let (ok, printed) = verify_export(&case, &key);
    assert!(
        !ok && printed.contains("line") && printed.contains("hashes to"),
        "{printed}"
    );
}

#[tokio::test]
async fn an_export_from_stored_entries_equals_one_rebuilt_from_events_and_an_altered_entry_is_refused() {
    let api = Api::empty().await;
    seal_into_clickhouse(&api).await;
    let signer = CheckpointSigner::from_seed(&SIGNER_SEED).expect("signer");
    let work = tempfile::tempdir().expect("temp dir");
    let request = |name: &str| ExportRequest {
        export_id: format!("exp_{name}"),
        tenant: api.alfa.clone(),
        scope: sealtrail_api::scope::EventScope::default(),
        out_dir: work.path().join(name),
        max_file_bytes: 4096,
    };
    let stored = write_export(&api.settings, &signer, &request("stored"), |_| {})
        .await
        .expect("export");
    assert!(stored.event_count > 0);

    // One stored entry altered in ClickHouse, its event row untouched: the export reads the
    // entry, re-hashes it and refuses, naming it.
    let client = api.settings.client().with_setting("mutations_sync", "2");
    client
        .query("ALTER TABLE event_entries UPDATE entry = concat(entry, ' ') WHERE tenant_id = ? AND seq = 2")
        .bind(&api.alfa)
        .execute()
        .await
        .expect("entry altered");
    let refused = write_export(&api.settings, &signer, &request("altered"), |_| {})
        .await
        .expect_err("an altered entry is never exported");
    let refused = refused.to_string();
    assert!(
        refused.contains("seq 2 ") && refused.contains("does not hash"),
        "{refused}"
    );

    // Without stored entries every entry is rebuilt from its row: the very same files.
    client
        .query("TRUNCATE TABLE event_entries")
        .execute()
        .await
        .expect("entries emptied");
    let rebuilt = write_export(&api.settings, &signer, &request("rebuilt"), |_| {})
        .await
        .expect("export");
    assert_eq!(rebuilt.files, stored.files);
    assert_eq!(rebuilt.event_count, stored.event_count);
}

#[tokio::test]
async fn an_export_of_100_000_events_verifies_offline() {
    let api = Api::empty().await;
    // 150,000 events of two tenants, a checkpoint every 1,000: alfa has 100,000 of them.
    let sealed = seal_events(&api, 150_000, |i| (i + 1) % 1000 == 0).await;
    let alfa_events = sealed.events.iter().filter(|e| e.tenant_id == api.alfa).count() as u64;
    assert_eq!(alfa_events, 100_000);
    let signer = CheckpointSigner::from_seed(&SIGNER_SEED).expect("signer");
    let work = tempfile::tempdir().expect("temp dir");
    let key = work.path().join("signing-key.pub");
    std::fs::write(&key, to_hex(signer.public_key())).expect("key");
    let request = ExportRequest {
        export_id: "exp_large".to_owned(),
        tenant: api.alfa.clone(),
        scope: sealtrail_api::scope::EventScope::default(),
        out_dir: work.path().join("export"),
        max_file_bytes: 16 * 1024 * 1024,
    };
    let manifest = write_export(&api.settings, &signer, &request, |_| {})
        .await
        .expect("export");
    assert_eq!(manifest.event_count, 100_000);
    assert_eq!(manifest.checkpoints.len(), 150);
    assert_eq!(manifest.unsigned_tail, 0);
    let (ok, printed) = verify_export(&request.out_dir, &key);
    assert!(ok && printed.contains("100000 events"), "{printed}");
}

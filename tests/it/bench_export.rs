//! `sealtrail bench-export --keep`: the benchmark's own rows are a real sealed chain that
//! `sealtrail verify` accepts under the key the command prints, and no other key.

use crate::harness::shared;

#[tokio::test]
async fn a_kept_bench_export_database_verifies_under_the_key_it_prints() {
    let stack = shared();
    let (status, stdout, stderr) = stack.sealtrail(&["bench-export", "--events", "2500", "--keep"], &[]);
    assert!(status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("2500 events of one tenant"), "{stdout}");
    let verify_line = stdout
        .lines()
        .find(|line| line.trim_start().starts_with("sealtrail verify "))
        .unwrap_or_else(|| panic!("no verify command printed:\n{stdout}"));
    let args: Vec<&str> = verify_line.split_whitespace().skip(1).collect();
    let database = args[args
        .iter()
        .position(|arg| *arg == "--clickhouse-database")
        .expect("a database")
        + 1];

    let (status, verified, stderr) = stack.sealtrail(&args, &[]);
    assert!(status.success(), "{verified}\n{stderr}");
    assert!(
        verified.contains("tenant bench-export verified: 2500 events (sequence 1..2500)"),
        "{verified}"
    );
    assert!(verified.contains("3 checkpoints of partition 0 verified"), "{verified}");

    // The stored entries the benchmark set aside for its second export are back, every one.
    let mut clickhouse = stack.clickhouse();
    database.clone_into(&mut clickhouse.database);
    let entries: u64 = clickhouse
        .client()
        .query("SELECT count() FROM event_entries WHERE tenant_id = 'bench-export'")
        .fetch_one()
        .await
        .expect("count the stored entries");
    assert_eq!(entries, 2500);

    // The pipeline's own key did not sign these checkpoints.
    let own_keys = stack.data_dir.join("keys/trusted");
    let mut wrong = args.clone();
    let keys_at = wrong
        .iter()
        .position(|arg| *arg == "--trusted-keys")
        .expect("a key directory")
        + 1;
    wrong[keys_at] = own_keys.to_str().expect("utf-8");
    let (status, stdout, stderr) = stack.sealtrail(&wrong, &[]);
    assert!(!status.success(), "verified under another key:\n{stdout}");
    assert!(stderr.contains("FAILED"), "{stderr}");

    clickhouse
        .server_client()
        .query(&format!("DROP DATABASE {database}"))
        .execute()
        .await
        .expect("drop the kept database");
}

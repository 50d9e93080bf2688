//! Bad configuration ends with a one-line error that says what to do: never a panic or a hang.

use std::net::TcpListener;

use crate::harness::{TestStack, fresh_data_dir, run_sealtrail, shared};

/// The final line of stderr is the error; nothing panicked.
fn assert_one_line_error(stderr: &str, expected: &[&str]) {
    assert!(!stderr.contains("panicked"), "{stderr}");
    let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default();
    assert!(last.starts_with("error: "), "last line is the error: {stderr}");
    for part in expected {
        assert!(last.contains(part), "`{part}` in `{last}`");
    }
}

#[test]
fn a_taken_port_names_the_port_and_the_flag() {
    let holder = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = holder.local_addr().expect("address").port().to_string();
    let data_dir = fresh_data_dir("port-taken");
    let result = TestStack::try_start(&data_dir, &["--kafka-port", &port]);
    let printed = result.expect_err("up refuses");
    assert_one_line_error(&printed, &[&format!("port {port}"), "--kafka-port"]);
}

#[test]
fn a_missing_broker_binary_says_how_to_get_one() {
    let data_dir = fresh_data_dir("no-binary");
    let (status, _, stderr) = run_sealtrail(
        &["up", "--ports", "auto", "--data-dir", data_dir.to_str().expect("utf-8")],
        &[("SEALTRAIL_TANSU_BIN", "/nonexistent/tansu")],
    );
    assert!(!status.success());
    assert_one_line_error(&stderr, &["/nonexistent/tansu", "unset SEALTRAIL_TANSU_BIN"]);
}

#[test]
fn an_unreachable_broker_is_reported_not_waited_for_forever() {
    let closed = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = closed.local_addr().expect("address").to_string();
    drop(closed);
    let (status, _, stderr) = run_sealtrail(
        &[
            "registry",
            "--kafka-bootstrap",
            &address,
            "--kafka-connect-timeout",
            "2",
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    assert!(!status.success());
    assert_one_line_error(
        &stderr,
        &[&format!("cannot reach the Kafka broker at {address}"), "sealtrail up"],
    );
}

#[test]
fn a_corrupt_broker_store_is_refused_before_anything_starts() {
    let data_dir = fresh_data_dir("corrupt");
    std::fs::create_dir_all(data_dir.join("kafka")).expect("mkdir");
    std::fs::write(data_dir.join("kafka/tansu.db"), b"this is not a SQLite database at all").expect("write");
    let printed = TestStack::try_start(&data_dir, &[]).expect_err("up refuses");
    assert_one_line_error(&printed, &["tansu.db is corrupt", "move it away"]);
}

#[test]
fn a_corrupt_ports_file_is_refused_with_what_to_do() {
    let data_dir = fresh_data_dir("corrupt-ports");
    std::fs::write(data_dir.join("ports.json"), b"{ not json").expect("write");
    let printed = TestStack::try_start(&data_dir, &[]).expect_err("up refuses");
    assert_one_line_error(&printed, &["ports.json is corrupt", "deleting it is safe"]);
}

#[test]
fn a_data_dir_that_is_a_file_is_refused() {
    let parent = fresh_data_dir("file-data-dir");
    let file = parent.join("plain-file");
    std::fs::write(&file, b"x").expect("write");
    let (status, _, stderr) = run_sealtrail(&["up", "--data-dir", file.to_str().expect("utf-8")], &[]);
    assert!(!status.success());
    assert_one_line_error(&stderr, &["is not a usable directory", "--data-dir"]);
}

#[test]
fn a_second_up_on_a_running_data_dir_points_at_down() {
    let stack = shared();
    let (status, _, stderr) = run_sealtrail(&["up", "--data-dir", stack.data_dir.to_str().expect("utf-8")], &[]);
    assert!(!status.success());
    assert_one_line_error(&stderr, &["already running", "sealtrail down --data-dir"]);
}

#[test]
fn down_with_nothing_running_is_not_an_error() {
    let data_dir = fresh_data_dir("nothing");
    let (status, stdout, _) = run_sealtrail(&["down", "--data-dir", data_dir.to_str().expect("utf-8")], &[]);
    assert!(status.success());
    assert!(stdout.contains("nothing runs"), "{stdout}");
}

#[test]
fn kafka_secrets_are_refused_on_the_command_line_and_in_files_others_can_read() {
    let (status, _, stderr) = run_sealtrail(&["topics", "--kafka-option", "sasl.password=hunter2-xyz"], &[]);
    assert!(!status.success());
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("--kafka-config") && stderr.contains("sasl.password"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("hunter2-xyz"),
        "the refusal does not repeat the secret: {stderr}"
    );

    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("client.properties");
    std::fs::write(&file, "security.protocol=SASL_SSL\nsasl.password=hunter2-xyz\n").expect("written");
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("mode");
    }
    let path = file.to_str().expect("utf-8");
    let (status, _, stderr) = run_sealtrail(&["topics", "--kafka-config", path], &[]);
    assert!(!status.success());
    assert!(stderr.contains(&format!("chmod 600 {path}")), "{stderr}");
    assert!(!stderr.contains("hunter2-xyz"), "{stderr}");
}

/// OAUTHBEARER without the OIDC client credentials sealtrail fetches tokens with is refused
/// before any connection, naming the properties to set.
#[test]
fn an_oauthbearer_client_without_client_credentials_names_what_to_set() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("client.properties");
    sealtrail_local::write_private(
        &file,
        b"security.protocol=SASL_SSL\nsasl.mechanism=OAUTHBEARER\nsasl.oauthbearer.method=oidc\n\
          sasl.oauthbearer.client.id=seal\nsasl.oauthbearer.client.secret=s3cret-xyz\n\
          sasl.oauthbearer.token.endpoint.url=http://idp.example/token\n",
    )
    .expect("written");
    let (status, _, stderr) = run_sealtrail(&["topics", "--kafka-config", file.to_str().expect("utf-8")], &[]);
    assert!(!status.success());
    assert_one_line_error(
        &stderr,
        &["sasl.oauthbearer.token.endpoint.url must be an https:// URL"],
    );
    assert!(!stderr.contains("s3cret-xyz"), "{stderr}");
}

/// A password file or a TLS key others may read is refused before anything connects, with the
/// fix, and without showing what it holds.
#[test]
fn password_files_and_tls_keys_others_can_read_are_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("dir");
    let password = dir.path().join("clickhouse.password");
    std::fs::write(&password, "s3cret-4a7e\n").expect("written");
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o644)).expect("mode");
    let path = password.to_str().expect("utf-8");
    let (status, _, stderr) = run_sealtrail(
        &[
            "migrate",
            "--clickhouse-user",
            "sealtrail_admin",
            "--clickhouse-password-file",
            path,
        ],
        &[],
    );
    assert!(!status.success());
    assert_one_line_error(&stderr, &[&format!("chmod 600 {path}")]);
    assert!(!stderr.contains("s3cret-4a7e"), "{stderr}");

    let ca = sealtrail_local::LocalCa::ensure(&dir.path().join("tls")).expect("a CA");
    std::fs::set_permissions(&ca.key_file, std::fs::Permissions::from_mode(0o640)).expect("mode");
    let (status, _, stderr) = run_sealtrail(
        &[
            "api",
            "--tls-cert",
            ca.cert_file.to_str().expect("utf-8"),
            "--tls-key",
            ca.key_file.to_str().expect("utf-8"),
        ],
        &[],
    );
    assert!(!status.success());
    assert_one_line_error(&stderr, &["chmod 600", "server.key"]);
    let (status, _, stderr) = run_sealtrail(&["api", "--tls-cert", ca.cert_file.to_str().expect("utf-8")], &[]);
    assert!(!status.success(), "a certificate without its key is refused");
    assert!(stderr.contains("--tls-key"), "{stderr}");
}

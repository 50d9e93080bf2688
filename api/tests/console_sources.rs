//! The console's own checks, run with the workspace's tests: TypeScript's strict type check, and
//! the browser verifier's suites (`npm test`), which replay docs/integrity.md's worked examples
//! and tamper with each step. The API's build script has installed the packages (`npm ci`).

use std::path::Path;
use std::process::Command;

fn npm(script: &str) {
    let console = Path::new(env!("CARGO_MANIFEST_DIR")).join("console");
    let output = Command::new("npm")
        .args(["run", "--silent", script])
        .current_dir(&console)
        .output()
        .unwrap_or_else(|error| panic!("cannot run npm ({error}); `cargo run -- setup` installs Node.js"));
    assert!(
        output.status.success(),
        "npm run {script} in {} failed:\n{}\n{}",
        console.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_console_type_checks() {
    npm("check");
}

#[test]
fn the_browser_verifier_agrees_with_the_documented_vectors() {
    npm("test");
}

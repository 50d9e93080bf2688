use sealtrail_local::{
    CacheDir, ensure_browser, ensure_clickhouse_engine, ensure_node, ensure_python_interop, ensure_tansu,
};

#[derive(Debug, clap::Args)]
pub struct SetupArgs {}

/// Installs Tansu, the ClickHouse engine and the tests' Python environment into the cache, and
/// Node.js (the console's build) and Chromium (its browser tests) from apt, if they are missing.
pub async fn run(_args: SetupArgs) -> anyhow::Result<()> {
    let cache = CacheDir::from_env();
    let tansu = ensure_tansu(&cache, true).await?;
    let engine = ensure_clickhouse_engine(&cache, true).await?;
    let python = tokio::task::spawn_blocking(move || ensure_python_interop(&CacheDir::from_env(), true)).await??;
    let node = tokio::task::spawn_blocking(|| ensure_node(true)).await??;
    let browser = tokio::task::spawn_blocking(|| ensure_browser(true)).await??;
    for (what, installed) in [
        ("Tansu 0.6.0", &tansu),
        ("ClickHouse engine 26.7", &engine),
        ("Python test environment (tests/interop/requirements.txt)", &python),
        ("Node.js (builds the web console)", &node),
        ("Chromium's WebDriver (the console's browser tests)", &browser),
    ] {
        let state = if installed.newly_installed {
            "installed"
        } else {
            "already installed"
        };
        println!("{what}: {state} at {}", installed.path.display());
    }
    Ok(())
}

//! `sealtrail witness`: the independent cosigner of checkpoints (`sealtrail_witness`). Run it on
//! another machine, under another operator, with its own key: it is only worth its signature
//! if whoever holds the log's signing key cannot also make it sign.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use sealtrail_core::checkpoint::CheckpointSigner;
use sealtrail_core::witness::WitnessSigner;

use crate::settings::ServerTlsArgs;

#[derive(Debug, clap::Args)]
pub struct WitnessArgs {
    /// Where to serve `POST /add-checkpoint`, `GET /latest`, `GET /vkey` and `/metrics`.
    #[arg(long, env = "WITNESS_LISTEN", default_value = "127.0.0.1:9470")]
    listen: std::net::SocketAddr,
    /// The witness's own state: its key (made on first start) and the checkpoints it cosigned.
    /// Back it up: a witness that loses it can be led to cosign a second history.
    #[arg(long, env = "WITNESS_STATE_DIR")]
    state_dir: PathBuf,
    /// The witness's name in its cosignatures and verifier key (for example
    /// `witness.example.com/audit`; no spaces or '+').
    #[arg(long, env = "WITNESS_NAME")]
    name: String,
    /// The name of the log it witnesses: the origin of a partition's checkpoints is
    /// `<log origin>/epoch-E/partition-P`. The monitor must use the same (`SEALTRAIL_LOG_ORIGIN`).
    #[arg(long, env = "SEALTRAIL_LOG_ORIGIN", default_value = "sealtrail.local/audit")]
    log_origin: String,
    /// The log's public checkpoint keys: a `.pub` file or a directory of them.
    #[arg(long, env = "WITNESS_LOG_KEYS")]
    log_keys: PathBuf,
    #[command(flatten)]
    tls: ServerTlsArgs,
}

const KEY_FILE: &str = "witness.key";
const VKEY_FILE: &str = "witness.vkey";

/// The witness's key from the state directory, made there on first start (owner-only).
fn witness_key(dir: &Path, name: &str) -> anyhow::Result<WitnessSigner> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(KEY_FILE);
    if !path.exists() {
        let pkcs8 = CheckpointSigner::generate_pkcs8().map_err(anyhow::Error::msg)?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        file.write_all(&pkcs8)?;
        file.sync_all()?;
    }
    let pkcs8 = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let signer = WitnessSigner::from_pkcs8(name, &pkcs8)
        .with_context(|| format!("{}: set WITNESS_NAME, or restore the witness key", path.display()))?;
    std::fs::write(dir.join(VKEY_FILE), format!("{}\n", signer.key().to_vkey()))?;
    Ok(signer)
}

pub async fn run(args: WitnessArgs) -> anyhow::Result<()> {
    let tls = args.tls.load(None)?;
    let signer = witness_key(&args.state_dir, &args.name)?;
    let log_keys = sealtrail_runtime::keys::load_trusted(&args.log_keys)
        .context("the witness checks checkpoints against the log's public keys: set WITNESS_LOG_KEYS")?;
    let store = sealtrail_witness::Store::open(&args.state_dir)?;
    let origins = store.origins().count();
    eprintln!(
        "witness {} (verifier key {}) cosigns checkpoints of {}; it remembers {origins} origins",
        args.name,
        signer.key().to_vkey(),
        args.log_origin
    );
    let metrics = sealtrail_runtime::Metrics::new("witness");
    let app = sealtrail_witness::router(
        sealtrail_witness::WitnessConfig {
            log_origin: args.log_origin,
            log_keys,
            signer,
            metrics: metrics.clone(),
        },
        store,
    );
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}; set WITNESS_LISTEN to a free address", args.listen))?;
    tracing::info!(address = %listener.local_addr()?, tls = tls.is_some(), "witness serving");
    metrics.set_ready();
    sealtrail_http::serve::serve(listener, app, tls, sealtrail_runtime::termination()).await?;
    Ok(())
}

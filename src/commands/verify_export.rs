//! `sealtrail verify-export PATH --public-key FILE [--witness-key FILE]`: offline, network-free verification of an
//! export against the signing public key (the checks: `sealtrail-export-verifier`).

use std::path::PathBuf;

use anyhow::Context as _;
use sealtrail_core::witness::WitnessKey;
use sealtrail_export_verifier::{ExportDirectory, ExportFiles, ExportTar, VerifiedExport, verify_witnessed_export};

#[derive(Debug, clap::Args)]
pub struct VerifyExportArgs {
    /// The export: its directory, or the `.tar` downloaded from `GET /v1/exports/{id}/artifact`.
    path: PathBuf,
    /// The signing public key (a `.pub` file of 64 hex characters), or a directory of them.
    #[arg(long)]
    public_key: PathBuf,
    /// A witness's verifier key file (`witness.vkey`): every checkpoint must carry its valid
    /// cosignature. Repeatable.
    #[arg(long = "witness-key")]
    witness_keys: Vec<PathBuf>,
}

/// Exits 0 only if the signature, every file, every link and every proof hold.
pub fn run(args: &VerifyExportArgs) -> anyhow::Result<()> {
    let trusted = sealtrail_runtime::keys::load_trusted(&args.public_key)?;
    let files: Box<dyn ExportFiles> = if args.path.is_file() {
        Box::new(ExportTar::open(&args.path)?)
    } else {
        Box::new(ExportDirectory::new(&args.path))
    };
    let witnesses = args
        .witness_keys
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the witness key {}", path.display()))?;
            WitnessKey::parse(&text).with_context(|| format!("{} is not a witness verifier key", path.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let verified = verify_witnessed_export(files.as_ref(), &trusted, &witnesses)?;
    print_verified(&verified);
    for witness in &witnesses {
        println!(
            "  witnessed: every checkpoint carries a valid cosignature of {}",
            witness.name
        );
    }
    Ok(())
}

fn print_verified(verified: &VerifiedExport) {
    let manifest = &verified.manifest;
    let range = manifest.chain.as_ref().map_or_else(
        || "no events".to_owned(),
        |r| format!("sequences {} to {}", r.first_seq, r.last_seq),
    );
    println!(
        "VERIFIED: export {} of tenant {}: {} events ({range}) in {} files; every hash, link and file matches, {} checkpoints and the manifest are signed by a trusted key",
        manifest.export_id,
        manifest.tenant_id,
        verified.events,
        manifest.files.len(),
        manifest.checkpoints.len()
    );
    if manifest.omitted_count > 0 {
        println!(
            "  note: {} events of the range are witness lines (hashes only): outside the export's scope, or purged by a retention policy; the chain links through them",
            manifest.omitted_count
        );
    }
    if manifest.unsigned_tail > 0 {
        println!(
            "  note: the last {} events are chained to the others but no signed checkpoint covered them when the export was made",
            manifest.unsigned_tail
        );
    }
}

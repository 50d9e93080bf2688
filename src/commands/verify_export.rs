//! `sealtrail verify-export PATH --public-key FILE`: offline, network-free verification of an
//! export against the signing public key.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use flate2::read::GzDecoder;
use sealtrail_core::digest::to_hex;
use sealtrail_core::export::{ExportProblem, LineChecker, MANIFEST_FILE, SIGNATURE_FILE, check_manifest};
use sha2::{Digest as _, Sha256};

#[derive(Debug, clap::Args)]
pub struct VerifyExportArgs {
    /// The export: its directory, or the `.tar` downloaded from `GET /v1/exports/{id}/artifact`.
    path: PathBuf,
    /// The signing public key (a `.pub` file of 64 hex characters), or a directory of them.
    #[arg(long)]
    public_key: PathBuf,
}

/// Exits 0 only if the signature, every file, every link and every proof hold.
pub fn run(args: &VerifyExportArgs) -> anyhow::Result<()> {
    let trusted = sealtrail_runtime::keys::load_trusted(&args.public_key)?;
    // A tar is unpacked into a private temporary directory, removed afterwards.
    let unpacked;
    let dir = if args.path.is_file() {
        unpacked = tempfile::tempdir().context("cannot create a temporary directory to unpack the tar")?;
        unpack(&args.path, unpacked.path())?;
        unpacked.path().to_owned()
    } else {
        args.path.clone()
    };
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))
    };
    let manifest_json = read(MANIFEST_FILE)?;
    let signature = String::from_utf8_lossy(&read(SIGNATURE_FILE)?).into_owned();
    let outcome = check_manifest(&manifest_json, &signature, &trusted).and_then(|manifest| {
        let mut checker = LineChecker::new(&manifest);
        for file in &manifest.files {
            check_file(&dir, file, &mut checker)?;
        }
        let events = checker.finish()?;
        Ok((events, manifest.clone()))
    });
    match outcome {
        Ok((events, manifest)) => {
            let range = manifest.chain.as_ref().map_or_else(
                || "no events".to_owned(),
                |r| format!("sequences {} to {}", r.first_seq, r.last_seq),
            );
            println!(
                "VERIFIED: export {} of tenant {}: {events} events ({range}) in {} files; every hash, link and file matches, {} checkpoints and the manifest are signed by a trusted key",
                manifest.export_id,
                manifest.tenant_id,
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
            Ok(())
        }
        Err(problem) => anyhow::bail!("NOT VERIFIED: {problem}"),
    }
}

/// Unpacks the regular files of a tar (plain names only: nothing may land outside `into`).
fn unpack(tar_path: &Path, into: &Path) -> anyhow::Result<()> {
    let file = std::fs::File::open(tar_path).with_context(|| format!("cannot read {}", tar_path.display()))?;
    let mut archive = tar::Archive::new(file);
    let entries = archive
        .entries()
        .with_context(|| format!("{} is not a tar", tar_path.display()))?;
    for entry in entries {
        let mut entry = entry.with_context(|| format!("{} is not a readable tar", tar_path.display()))?;
        let name = entry.path()?.to_string_lossy().into_owned();
        anyhow::ensure!(
            !name.is_empty() && !name.contains(['/', '\\']) && name != ".." && name != ".",
            "NOT VERIFIED: the tar holds `{name}`; an export holds plain file names only"
        );
        if entry.header().entry_type().is_file() {
            entry
                .unpack(into.join(&name))
                .with_context(|| format!("cannot unpack {name}"))?;
        }
    }
    Ok(())
}

fn check_file(
    dir: &Path,
    file: &sealtrail_core::export::ManifestFile,
    checker: &mut LineChecker<'_>,
) -> Result<(), ExportProblem> {
    let bad = |reason: String| ExportProblem::BadFile {
        name: file.name.clone(),
        reason,
    };
    let bytes = std::fs::read(dir.join(&file.name)).map_err(|e| bad(format!("cannot be read: {e}")))?;
    let sha256 = to_hex(&Sha256::digest(&bytes));
    if bytes.len() as u64 != file.bytes || sha256 != file.sha256 {
        return Err(bad(format!(
            "its SHA-256 is {sha256} ({} bytes); the signed manifest says {} ({} bytes)",
            bytes.len(),
            file.sha256,
            file.bytes
        )));
    }
    let mut lines = 0_u64;
    for line in std::io::BufReader::new(GzDecoder::new(bytes.as_slice())).lines() {
        let line = line.map_err(|e| bad(format!("does not decompress: {e}")))?;
        lines += 1;
        checker.check(&file.name, lines, &line)?;
    }
    if lines != file.events {
        return Err(bad(format!("holds {lines} events; the manifest says {}", file.events)));
    }
    Ok(())
}

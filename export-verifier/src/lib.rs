//! Offline verification of a signed sealtrail export: the manifest's signature, every file's
//! SHA-256 and size, and every line's hash, link and proof (docs/integrity.md, "Exports").
//!
//! The checks themselves are `sealtrail_core::export`; this crate reads the export's files
//! through an [`ExportFiles`] source (a directory, or the tar `GET /v1/exports/{id}/artifact`
//! serves) and feeds them to the checks in the order the signed manifest lists them. It has no
//! network, Kafka, ClickHouse or async dependency, so an auditor can build it alone.

mod source;

use std::io::BufRead as _;

use flate2::read::GzDecoder;
use sealtrail_core::checkpoint::TrustedKey;
use sealtrail_core::digest::to_hex;
use sealtrail_core::export::{
    ExportProblem, LineChecker, MANIFEST_FILE, Manifest, ManifestFile, SIGNATURE_FILE, check_cosignatures,
    check_manifest,
};
use sealtrail_core::witness::WitnessKey;
use sha2::{Digest as _, Sha256};

pub use source::{ExportDirectory, ExportFiles, ExportTar, SourceError};

/// Why an export does not verify.
#[derive(Debug, thiserror::Error)]
pub enum VerifyExportError {
    /// The export was read, and something in it does not hold.
    #[error("NOT VERIFIED: {0}")]
    Problem(#[from] ExportProblem),
    /// The export could not be read at all.
    #[error(transparent)]
    Source(#[from] SourceError),
}

/// A verified export: its signed manifest and the number of events with an entry.
#[derive(Debug, Clone)]
pub struct VerifiedExport {
    pub manifest: Manifest,
    pub events: u64,
}

/// Verifies the export `files` holds against the trusted checkpoint keys.
pub fn verify_export(files: &dyn ExportFiles, trusted: &[TrustedKey]) -> Result<VerifiedExport, VerifyExportError> {
    verify_witnessed_export(files, trusted, &[])
}

/// Like [`verify_export`], and every checkpoint must carry a valid cosignature of each of
/// `witnesses`: a history the witnesses did not see (a fork signed with a stolen key) fails.
pub fn verify_witnessed_export(
    files: &dyn ExportFiles,
    trusted: &[TrustedKey],
    witnesses: &[WitnessKey],
) -> Result<VerifiedExport, VerifyExportError> {
    let manifest_json = files.read(MANIFEST_FILE)?;
    let signature = String::from_utf8_lossy(&files.read(SIGNATURE_FILE)?).into_owned();
    let manifest = check_manifest(&manifest_json, &signature, trusted)?;
    check_cosignatures(&manifest, witnesses)?;
    let mut checker = LineChecker::new(&manifest);
    for file in &manifest.files {
        check_file(files, file, &mut checker)?;
    }
    let events = checker.finish()?;
    Ok(VerifiedExport { manifest, events })
}

/// One events file: its bytes as the manifest signed them, then each of its lines in order.
fn check_file(
    files: &dyn ExportFiles,
    file: &ManifestFile,
    checker: &mut LineChecker<'_>,
) -> Result<(), ExportProblem> {
    let bad = |reason: String| ExportProblem::BadFile {
        name: file.name.clone(),
        reason,
    };
    let bytes = files
        .read(&file.name)
        .map_err(|e| bad(format!("cannot be read: {e}")))?;
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

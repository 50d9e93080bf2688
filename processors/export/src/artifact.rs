//! An artifact as one download: a POSIX tar of `manifest.json`, `manifest.sig` and the events
//! files, streamed from disk without holding a file in memory.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::Stream;
use sealtrail_core::export::{MANIFEST_FILE, Manifest, SIGNATURE_FILE};
use tokio::io::AsyncReadExt as _;

const BLOCK: usize = 512;
const CHUNK: usize = 256 * 1024;

/// The files of the artifact in `dir`, in the order a verifier reads them, with their sizes.
pub fn artifact_files(dir: &Path) -> std::io::Result<Vec<(String, u64)>> {
    let manifest: Manifest = serde_json::from_slice(&std::fs::read(dir.join(MANIFEST_FILE))?)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    let names = [MANIFEST_FILE.to_owned(), SIGNATURE_FILE.to_owned()]
        .into_iter()
        .chain(manifest.files.into_iter().map(|file| file.name));
    names
        .map(|name| {
            let size = std::fs::metadata(dir.join(&name))?.len();
            Ok((name, size))
        })
        .collect()
}

fn header(name: &str, size: u64) -> std::io::Result<[u8; BLOCK]> {
    let mut header = tar::Header::new_ustar();
    header.set_path(name)?;
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut block = [0; BLOCK];
    block.copy_from_slice(header.as_bytes());
    Ok(block)
}

/// The tar of the artifact in `dir`, and its exact length (for `Content-Length`).
pub fn tar_stream(dir: PathBuf) -> std::io::Result<(u64, impl Stream<Item = std::io::Result<Bytes>>)> {
    let files = artifact_files(&dir)?;
    let padded = |size: u64| size.div_ceil(BLOCK as u64) * BLOCK as u64;
    let length = files.iter().map(|(_, size)| BLOCK as u64 + padded(*size)).sum::<u64>() + 2 * BLOCK as u64;
    let stream = futures::stream::try_unfold(
        (files.into_iter(), None::<(tokio::fs::File, u64, u64)>, false),
        move |(mut files, mut current, ended)| {
            let dir = dir.clone();
            async move {
                if let Some((file, _, left)) = current.as_mut()
                    && *left > 0
                {
                    let mut buffer = vec![0; CHUNK.min(usize::try_from(*left).unwrap_or(CHUNK))];
                    let read = file.read(&mut buffer).await?;
                    if read == 0 {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "an artifact file shrank while it was sent",
                        ));
                    }
                    buffer.truncate(read);
                    *left -= read as u64;
                    return Ok(Some((Bytes::from(buffer), (files, current, ended))));
                }
                if let Some((_, size, _)) = current.take() {
                    let padding = padded(size) - size;
                    if padding > 0 {
                        let zeros = Bytes::from(vec![0; usize::try_from(padding).unwrap_or_default()]);
                        return Ok(Some((zeros, (files, None, ended))));
                    }
                }
                match files.next() {
                    Some((name, size)) => {
                        let file = tokio::fs::File::open(dir.join(&name)).await?;
                        let block = Bytes::copy_from_slice(&header(&name, size)?);
                        Ok(Some((block, (files, Some((file, size, size)), ended))))
                    }
                    None if !ended => Ok(Some((Bytes::from(vec![0; 2 * BLOCK]), (files, None, true)))),
                    None => Ok(None),
                }
            }
        },
    );
    Ok((length, stream))
}

//! The events files of an export: lines split into size-bounded files, compressed, hashed and
//! written on a thread of their own.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;
use sealtrail_core::digest::to_hex;
use sealtrail_core::export::ManifestFile;
use sha2::{Digest as _, Sha256};

use super::{ExportError, write_error};

/// Counts and hashes what reaches the disk.
struct Hashing {
    file: BufWriter<File>,
    sha256: Sha256,
    bytes: u64,
}

impl Write for Hashing {
    fn write(&mut self, buffer: &[u8]) -> std::io::Result<usize> {
        let written = self.file.write(buffer)?;
        self.sha256.update(&buffer[..written]);
        self.bytes += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Lines are handed to the compressing thread in chunks of about this many bytes.
const CHUNK_BYTES: usize = 1 << 20;

/// What the compressing thread is told.
pub(super) enum Piece {
    /// Whole lines, and how many.
    Lines(Vec<u8>, u64),
    /// The current file is complete.
    Close,
}

/// `events-00001.ndjson.gz`, `events-00002.ndjson.gz`, ...: a new file past the size bound.
/// Compression, hashing and writing run on their own thread, fed through a bounded channel, so
/// they overlap with reading and encoding (memory: a few chunks).
pub(super) struct FileSplitter {
    sender: Option<std::sync::mpsc::SyncSender<Piece>>,
    worker: Option<std::thread::JoinHandle<Result<Vec<ManifestFile>, ExportError>>>,
    buffer: Vec<u8>,
    buffered_lines: u64,
    max_bytes: u64,
    in_file: u64,
}

impl FileSplitter {
    pub(super) fn new(dir: &Path, max_bytes: u64) -> Self {
        let (sender, receiver) = std::sync::mpsc::sync_channel::<Piece>(4);
        let dir = dir.to_owned();
        let worker = std::thread::Builder::new()
            .name("export-gzip".to_owned())
            .spawn(move || compress_files(&dir, &receiver))
            .ok();
        Self {
            sender: Some(sender),
            worker,
            buffer: Vec::with_capacity(CHUNK_BYTES + 64 * 1024),
            buffered_lines: 0,
            max_bytes: max_bytes.max(1),
            in_file: 0,
        }
    }

    pub(super) fn write_line(&mut self, line: &[u8]) -> Result<(), ExportError> {
        self.buffer.extend_from_slice(line);
        self.buffer.push(b'\n');
        self.buffered_lines += 1;
        self.in_file += line.len() as u64 + 1;
        if self.in_file >= self.max_bytes {
            self.send_buffer()?;
            self.send(Piece::Close)?;
            self.in_file = 0;
        } else if self.buffer.len() >= CHUNK_BYTES {
            self.send_buffer()?;
        }
        Ok(())
    }

    fn send_buffer(&mut self) -> Result<(), ExportError> {
        if self.buffered_lines == 0 {
            return Ok(());
        }
        let lines = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK_BYTES + 64 * 1024));
        let count = std::mem::take(&mut self.buffered_lines);
        self.send(Piece::Lines(lines, count))
    }

    /// A refused send means the thread stopped on an error, which `finish` reports.
    fn send(&mut self, piece: Piece) -> Result<(), ExportError> {
        let sent = self.sender.as_ref().is_some_and(|sender| sender.send(piece).is_ok());
        if sent { Ok(()) } else { self.join().map(drop) }
    }

    fn join(&mut self) -> Result<Vec<ManifestFile>, ExportError> {
        self.sender = None;
        let failed = || ExportError::Inconsistent("the export's compressing thread stopped".to_owned());
        let worker = self.worker.take().ok_or_else(failed)?;
        let files = worker.join().map_err(|_| failed())??;
        Ok(files)
    }

    pub(super) fn finish(mut self) -> Result<Vec<ManifestFile>, ExportError> {
        self.send_buffer()?;
        self.join()
    }
}

/// The compressing thread: gzip, SHA-256 and write each file, and describe it for the manifest.
fn compress_files(dir: &Path, pieces: &std::sync::mpsc::Receiver<Piece>) -> Result<Vec<ManifestFile>, ExportError> {
    let mut done: Vec<ManifestFile> = Vec::new();
    let mut current: Option<(String, GzEncoder<Hashing>, u64)> = None;
    let close = |current: Option<(String, GzEncoder<Hashing>, u64)>, done: &mut Vec<ManifestFile>| {
        if let Some((name, encoder, events)) = current {
            let path = dir.join(&name);
            let mut hashing = encoder.finish().map_err(write_error(&path))?;
            hashing.flush().map_err(write_error(&path))?;
            done.push(ManifestFile {
                name,
                sha256: to_hex(&hashing.sha256.finalize()),
                bytes: hashing.bytes,
                events,
            });
        }
        Ok::<_, ExportError>(())
    };
    // The sender hanging up is the end of the export.
    while let Ok(piece) = pieces.recv() {
        match piece {
            Piece::Lines(bytes, lines) => {
                if current.is_none() {
                    let name = format!("events-{:05}.ndjson.gz", done.len() + 1);
                    let path = dir.join(&name);
                    let file = File::create(&path).map_err(write_error(&path))?;
                    let hashing = Hashing {
                        file: BufWriter::with_capacity(256 * 1024, file),
                        sha256: Sha256::new(),
                        bytes: 0,
                    };
                    current = Some((name, GzEncoder::new(hashing, Compression::fast()), 0));
                }
                let (name, encoder, events) = current.as_mut().expect("opened above");
                encoder
                    .write_all(&bytes)
                    .map_err(write_error(&dir.join(name.as_str())))?;
                *events += lines;
            }
            Piece::Close => close(current.take(), &mut done)?,
        }
    }
    close(current.take(), &mut done)?;
    Ok(done)
}

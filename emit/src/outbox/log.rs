//! The outbox on disk: an append-only log of segment files and a cursor saying how much of it
//! Kafka has acknowledged.
//!
//! - `NNNNNNNNNNNNNNNNNNNN.log`: segments named by their first sequence number; a new one starts
//!   once the last is `segment_bytes` long, and a segment is deleted once all of it is drained.
//! - `drained`: the first sequence Kafka has not acknowledged, with a checksum, replaced
//!   atomically (write, fsync, rename, fsync the directory).
//! - `refused.log`: records Kafka refused for good, set aside so the rest can drain.
//! - `LOCK`: held while a process uses the outbox, so two emitters never interleave in one log.
//!
//! Appends are fsync'd before they are reported, so what the log reports written survives a crash;
//! a record torn by a crash mid-write is cut at the next open (it was never reported written).

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read as _, Seek as _, SeekFrom, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use super::record::{self, Damage, FRAME_HEADER, OutboxRecord, Stored};

const CURSOR: &str = "drained";
/// Records Kafka refused for good (too large, invalid), kept for the operator.
pub const REFUSED: &str = "refused.log";

/// Why the outbox cannot take or give records.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the outbox {0} is in use by another process; give each emitting process an outbox of its own")]
    Locked(PathBuf),
    #[error(
        "the outbox {0} can be read by other users (mode {1:o}); run `chmod 700` on it: it holds events before redaction"
    )]
    Exposed(PathBuf, u32),
    #[error(
        "{path} is damaged at byte {offset} ({why}); nothing after it can be sent: move the outbox aside and report it"
    )]
    Damaged {
        path: PathBuf,
        offset: u64,
        why: &'static str,
    },
    #[error(
        "the outbox {dir} is full ({max_bytes} bytes): Kafka has been unreachable for too long; the event was not accepted"
    )]
    Full { dir: PathBuf, max_bytes: u64 },
    #[error("the outbox {dir} failed earlier ({reason}) and takes no more records; restart the process")]
    Broken { dir: PathBuf, reason: String },
}

/// How large the outbox may grow.
#[derive(Debug, Clone, Copy)]
pub struct LogLimits {
    /// Bytes on disk, all segments together.
    pub max_bytes: u64,
    /// A new segment starts once the last one is this long.
    pub segment_bytes: u64,
}

/// A place in the log: the record `sequence` starts at `offset` in the segment starting at
/// `segment` (its first sequence number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub sequence: u64,
    segment: u64,
    offset: u64,
}

#[derive(Debug)]
struct Segment {
    first_sequence: u64,
    path: PathBuf,
    bytes: u64,
}

/// What the outbox holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxStats {
    /// Records not yet acknowledged by Kafka.
    pub records: u64,
    /// Bytes on disk.
    pub bytes: u64,
    /// When the oldest record not yet acknowledged entered the outbox.
    pub oldest_enqueued_ms: Option<i64>,
}

/// The open log; one per process (see `LOCK`).
#[derive(Debug)]
pub struct OutboxLog {
    dir: PathBuf,
    limits: LogLimits,
    _lock: File,
    segments: VecDeque<Segment>,
    active: File,
    next_sequence: u64,
    drained: Position,
    unsent: Position,
    oldest_pending_ms: Option<i64>,
    broken: Option<String>,
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> OutboxError + 'a {
    move |source| OutboxError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

fn segment_path(dir: &Path, first_sequence: u64) -> PathBuf {
    dir.join(format!("{first_sequence:020}.log"))
}

fn sync_dir(dir: &Path) -> Result<(), OutboxError> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(io("sync the directory", dir))
}

fn private_file(path: &Path, truncate: bool) -> Result<File, OutboxError> {
    OpenOptions::new()
        .create(true)
        .read(true)
        .append(!truncate)
        .write(true)
        .truncate(truncate)
        .mode(0o600)
        .open(path)
        .map_err(io("open", path))
}

impl OutboxLog {
    /// Opens (or creates) the outbox in `dir`: checks every record, cuts a torn tail, finds what
    /// is left to send.
    pub fn open(dir: &Path, limits: LogLimits) -> Result<Self, OutboxError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io("create", dir))?;
        let mode = std::fs::metadata(dir).map_err(io("inspect", dir))?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(OutboxError::Exposed(dir.to_owned(), mode & 0o777));
        }
        let lock_path = dir.join("LOCK");
        let lock = private_file(&lock_path, false)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(OutboxError::Locked(dir.to_owned())),
            Err(std::fs::TryLockError::Error(error)) => return Err(io("lock", &lock_path)(error)),
        }
        let cursor = read_cursor(dir)?;
        let mut segments = list_segments(dir)?;
        let scan = scan(&mut segments, cursor)?;
        if segments.is_empty() {
            let first = scan.next_sequence;
            let path = segment_path(dir, first);
            private_file(&path, true)?;
            sync_dir(dir)?;
            segments.push_back(Segment {
                first_sequence: first,
                path,
                bytes: 0,
            });
        }
        let last = segments.back().map_or(0, |segment| segment.first_sequence);
        let drained = scan.drained.unwrap_or(Position {
            sequence: scan.next_sequence,
            segment: last,
            offset: segments.back().map_or(0, |segment| segment.bytes),
        });
        let active_path = segment_path(dir, last);
        let mut log = Self {
            dir: dir.to_owned(),
            limits,
            _lock: lock,
            active: private_file(&active_path, false)?,
            segments,
            next_sequence: scan.next_sequence,
            drained,
            unsent: drained,
            oldest_pending_ms: scan.oldest_pending_ms,
            broken: None,
        };
        log.delete_drained_segments()?;
        Ok(log)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// True when Kafka has acknowledged everything the outbox took.
    pub fn is_drained(&self) -> bool {
        self.drained.sequence == self.next_sequence
    }

    pub fn stats(&self) -> OutboxStats {
        OutboxStats {
            records: self.next_sequence - self.drained.sequence,
            bytes: self.segments.iter().map(|segment| segment.bytes).sum(),
            oldest_enqueued_ms: self.oldest_pending_ms,
        }
    }

    /// Appends `records` and fsyncs them: each gets its sequence number, or the reason it was not
    /// taken (the outbox is full). Returns an error for all when the disk fails.
    pub fn append(
        &mut self,
        records: &[OutboxRecord],
        now_ms: i64,
    ) -> Result<Vec<Result<u64, OutboxError>>, OutboxError> {
        if let Some(reason) = &self.broken {
            return Err(OutboxError::Broken {
                dir: self.dir.clone(),
                reason: reason.clone(),
            });
        }
        let written = self.write_all(records, now_ms);
        let synced = written.and_then(|taken| {
            self.active
                .sync_data()
                .map_err(io("fsync", &segment_path(&self.dir, self.last_segment())))?;
            Ok(taken)
        });
        synced.inspect_err(|error| self.broken = Some(error.to_string()))
    }

    fn last_segment(&self) -> u64 {
        self.segments.back().map_or(0, |segment| segment.first_sequence)
    }

    fn write_all(
        &mut self,
        records: &[OutboxRecord],
        now_ms: i64,
    ) -> Result<Vec<Result<u64, OutboxError>>, OutboxError> {
        let mut taken = Vec::with_capacity(records.len());
        for record in records {
            let frame = record::encode(self.next_sequence, now_ms, record);
            if self.stats().bytes + frame.len() as u64 > self.limits.max_bytes {
                taken.push(Err(OutboxError::Full {
                    dir: self.dir.clone(),
                    max_bytes: self.limits.max_bytes,
                }));
                continue;
            }
            if self
                .segments
                .back()
                .is_some_and(|last| last.bytes >= self.limits.segment_bytes)
            {
                self.roll()?;
            }
            let path = segment_path(&self.dir, self.last_segment());
            self.active.write_all(&frame).map_err(io("append to", &path))?;
            if let Some(last) = self.segments.back_mut() {
                last.bytes += frame.len() as u64;
            }
            if self.is_drained() {
                self.oldest_pending_ms = Some(now_ms);
            }
            taken.push(Ok(self.next_sequence));
            self.next_sequence += 1;
        }
        Ok(taken)
    }

    /// Starts a new segment (the previous one is fsync'd first, so no record is left unsynced).
    fn roll(&mut self) -> Result<(), OutboxError> {
        let previous = segment_path(&self.dir, self.last_segment());
        self.active.sync_data().map_err(io("fsync", &previous))?;
        let path = segment_path(&self.dir, self.next_sequence);
        self.active = private_file(&path, true)?;
        sync_dir(&self.dir)?;
        self.segments.push_back(Segment {
            first_sequence: self.next_sequence,
            path,
            bytes: 0,
        });
        if self.is_drained() {
            self.drained = Position {
                sequence: self.next_sequence,
                segment: self.next_sequence,
                offset: 0,
            };
            self.unsent = self.drained;
            self.delete_drained_segments()?;
        }
        Ok(())
    }

    /// Up to `max` records not yet handed out, oldest first, each with the position after it.
    pub fn next_unsent(&mut self, max: usize) -> Result<Vec<(Stored, Position)>, OutboxError> {
        let mut out = Vec::new();
        while out.len() < max && self.unsent.sequence < self.next_sequence {
            let index = self
                .segments
                .iter()
                .position(|segment| segment.first_sequence == self.unsent.segment)
                .ok_or_else(|| damaged(&self.dir, self.unsent.offset, "the next record's segment is missing"))?;
            let segment = &self.segments[index];
            if self.unsent.offset >= segment.bytes {
                match self.segments.get(index + 1) {
                    Some(next) => {
                        self.unsent = Position {
                            sequence: self.unsent.sequence,
                            segment: next.first_sequence,
                            offset: 0,
                        };
                        continue;
                    }
                    None => break,
                }
            }
            let path = segment.path.clone();
            let mut reader = BufReader::new(File::open(&path).map_err(io("open", &path))?);
            reader
                .seek(SeekFrom::Start(self.unsent.offset))
                .map_err(io("read", &path))?;
            let mut offset = self.unsent.offset;
            while out.len() < max && offset < segment.bytes {
                let stored = read_record(&mut reader, &path, offset, segment.bytes - offset)?;
                offset += stored.1;
                let after = Position {
                    sequence: stored.0.sequence + 1,
                    segment: segment.first_sequence,
                    offset,
                };
                out.push((stored.0, after));
            }
            self.unsent.offset = offset;
            self.unsent.sequence = out.last().map_or(self.unsent.sequence, |(_, after)| after.sequence);
        }
        Ok(out)
    }

    /// Kafka acknowledged everything before `position`: remember it durably and delete the
    /// segments it leaves behind.
    pub fn mark_drained(&mut self, position: Position) -> Result<(), OutboxError> {
        write_cursor(&self.dir, position.sequence)?;
        self.drained = position;
        if self.unsent.sequence < position.sequence {
            self.unsent = position;
        }
        self.oldest_pending_ms = if self.is_drained() {
            None
        } else {
            self.peek_enqueued_ms(position)
        };
        self.delete_drained_segments()
    }

    /// Keeps a record Kafka refused for good in `refused.log` (the segments' format), so it is not
    /// deleted with its segment.
    pub fn set_aside(&self, stored: &Stored) -> Result<(), OutboxError> {
        let path = self.dir.join(REFUSED);
        let mut file = private_file(&path, false)?;
        let frame = record::encode(stored.sequence, stored.enqueued_ms, &stored.record);
        file.write_all(&frame).map_err(io("append to", &path))?;
        file.sync_data().map_err(io("fsync", &path))
    }

    /// Hands out again what was handed out but not drained (Kafka refused or timed out).
    pub fn rewind(&mut self) {
        self.unsent = self.drained;
    }

    /// When the record at `position` entered the outbox.
    fn peek_enqueued_ms(&self, position: Position) -> Option<i64> {
        let index = self
            .segments
            .iter()
            .position(|s| s.first_sequence == position.segment)?;
        let (segment, offset) = match &self.segments[index] {
            segment if position.offset < segment.bytes => (segment, position.offset),
            _ => (self.segments.get(index + 1)?, 0),
        };
        let mut reader = BufReader::new(File::open(&segment.path).ok()?);
        reader.seek(SeekFrom::Start(offset)).ok()?;
        read_record(&mut reader, &segment.path, offset, segment.bytes - offset)
            .ok()
            .map(|(stored, _)| stored.enqueued_ms)
    }

    fn delete_drained_segments(&mut self) -> Result<(), OutboxError> {
        let mut deleted = false;
        while self.segments.len() > 1 && self.segments[0].first_sequence < self.drained.segment {
            if let Some(segment) = self.segments.pop_front() {
                std::fs::remove_file(&segment.path).map_err(io("delete", &segment.path))?;
                deleted = true;
            }
        }
        if deleted {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

/// The record at `offset`, of which `left` bytes remain in its segment.
fn read_record(
    reader: &mut BufReader<File>,
    path: &Path,
    offset: u64,
    left: u64,
) -> Result<(Stored, u64), OutboxError> {
    let mut frame = vec![0; FRAME_HEADER];
    reader.read_exact(&mut frame).map_err(io("read", path))?;
    let length = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
    // Checked before allocating: the length comes from disk.
    if (FRAME_HEADER + length) as u64 > left {
        return Err(damaged(path, offset, "record cut short"));
    }
    frame.resize(FRAME_HEADER + length, 0);
    reader
        .read_exact(&mut frame[FRAME_HEADER..])
        .map_err(io("read", path))?;
    match record::decode(&frame) {
        Ok((stored, used)) => Ok((stored, used as u64)),
        Err(Damage::Torn) => Err(damaged(path, offset, "record cut short")),
        Err(Damage::Corrupt(why)) => Err(damaged(path, offset, why)),
    }
}

fn damaged(path: &Path, offset: u64, why: &'static str) -> OutboxError {
    OutboxError::Damaged {
        path: path.to_owned(),
        offset,
        why,
    }
}

fn read_cursor(dir: &Path) -> Result<u64, OutboxError> {
    let path = dir.join(CURSOR);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(io("read", &path)(error)),
    };
    let sequence = bytes
        .get(..8)
        .and_then(|head| <[u8; 8]>::try_from(head).ok())
        .filter(|head| bytes.get(8..) == Some(&sealtrail_core::digest::Digest::of(&[head]).0[..8]))
        .ok_or_else(|| damaged(&path, 0, "cursor checksum mismatch"))?;
    Ok(u64::from_be_bytes(sequence))
}

fn write_cursor(dir: &Path, sequence: u64) -> Result<(), OutboxError> {
    let head = sequence.to_be_bytes();
    let mut bytes = head.to_vec();
    bytes.extend_from_slice(&sealtrail_core::digest::Digest::of(&[&head]).0[..8]);
    let temporary = dir.join(format!("{CURSOR}.tmp"));
    let mut file = private_file(&temporary, true)?;
    file.write_all(&bytes).map_err(io("write", &temporary))?;
    file.sync_data().map_err(io("fsync", &temporary))?;
    let path = dir.join(CURSOR);
    std::fs::rename(&temporary, &path).map_err(io("replace", &path))?;
    sync_dir(dir)
}

fn list_segments(dir: &Path) -> Result<VecDeque<Segment>, OutboxError> {
    let mut segments = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io("list", dir))? {
        let entry = entry.map_err(io("list", dir))?;
        let name = entry.file_name();
        let Some(first) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".log"))
            .and_then(|n| n.parse().ok())
        else {
            continue;
        };
        let bytes = entry.metadata().map_err(io("inspect", &entry.path()))?.len();
        segments.push(Segment {
            first_sequence: first,
            path: entry.path(),
            bytes,
        });
    }
    segments.sort_by_key(|segment| segment.first_sequence);
    Ok(segments.into())
}

/// Whether damaged bytes at the end of the last segment are an append a power cut left unsynced:
/// the damaged frame reaches the end of the file, or everything from it on is zeros. A whole record
/// after the damage would mean real corruption of what was acknowledged.
fn unsynced_tail(rest: &[u8]) -> bool {
    let claimed = rest.get(..4).map_or(0, |head| {
        u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize
    });
    FRAME_HEADER + claimed >= rest.len() || rest.iter().all(|byte| *byte == 0)
}

/// Cuts `path` at `length` (a tail that was never acknowledged).
fn cut(path: &Path, length: u64) -> Result<(), OutboxError> {
    let file = OpenOptions::new().write(true).open(path).map_err(io("open", path))?;
    file.set_len(length).map_err(io("truncate", path))?;
    file.sync_all().map_err(io("fsync", path))
}

/// What reading every segment found.
struct Scan {
    next_sequence: u64,
    /// Where the first record not drained starts, when there is one.
    drained: Option<Position>,
    oldest_pending_ms: Option<i64>,
}

/// Checks every record of every segment, in order; cuts a torn tail off the last segment.
fn scan(segments: &mut VecDeque<Segment>, cursor: u64) -> Result<Scan, OutboxError> {
    // Without its cursor (deleted by hand), the outbox sends everything it holds again: the
    // seal processor drops the copies by idempotency key, where losing them could not be undone.
    let first = segments.front().map_or(cursor, |segment| segment.first_sequence);
    let cursor = cursor.max(first);
    let mut found = Scan {
        next_sequence: first,
        drained: None,
        oldest_pending_ms: None,
    };
    let count = segments.len();
    for (index, segment) in segments.iter_mut().enumerate() {
        let bytes = std::fs::read(&segment.path).map_err(io("read", &segment.path))?;
        let mut offset = 0;
        while offset < bytes.len() {
            match record::decode(&bytes[offset..]) {
                Ok((stored, used)) => {
                    if stored.sequence != found.next_sequence {
                        return Err(damaged(&segment.path, offset as u64, "sequence numbers out of order"));
                    }
                    if stored.sequence == cursor {
                        found.drained = Some(Position {
                            sequence: cursor,
                            segment: segment.first_sequence,
                            offset: offset as u64,
                        });
                        found.oldest_pending_ms = Some(stored.enqueued_ms);
                    }
                    found.next_sequence += 1;
                    offset += used;
                }
                Err(Damage::Corrupt(_)) if index + 1 == count && unsynced_tail(&bytes[offset..]) => {
                    // A power cut can leave the tail of the last append as zeros or stale bytes:
                    // it was never fsync'd, so never acknowledged. Cut like a torn write.
                    cut(&segment.path, offset as u64)?;
                    break;
                }
                Err(Damage::Torn) if index + 1 == count => {
                    // A crash cut this append short: it was never reported written.
                    cut(&segment.path, offset as u64)?;
                    break;
                }
                Err(Damage::Torn) => return Err(damaged(&segment.path, offset as u64, "record cut short")),
                Err(Damage::Corrupt(why)) => return Err(damaged(&segment.path, offset as u64, why)),
            }
        }
        segment.bytes = offset as u64;
    }
    if cursor > found.next_sequence {
        found.next_sequence = cursor;
    }
    Ok(found)
}

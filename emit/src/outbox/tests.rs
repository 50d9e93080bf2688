//! The outbox log on a real file system: order, crash recovery, limits.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use super::log::{LogLimits, OutboxError, OutboxLog};
use super::record::OutboxRecord;

const ROOMY: LogLimits = LogLimits {
    max_bytes: 1 << 20,
    segment_bytes: 300,
};

fn record(n: u64) -> OutboxRecord {
    OutboxRecord {
        key: Some(format!("tenant-{}", n % 3).into_bytes()),
        headers: vec![("n".to_owned(), n.to_string())],
        payload: format!("payload-{n}").into_bytes(),
    }
}

fn appended(log: &mut OutboxLog, range: std::ops::Range<u64>) -> Vec<u64> {
    let records: Vec<OutboxRecord> = range.map(record).collect();
    log.append(&records, 1_000)
        .expect("disk")
        .into_iter()
        .map(|taken| taken.expect("room"))
        .collect()
}

fn payloads(log: &mut OutboxLog, max: usize) -> Vec<String> {
    log.next_unsent(max)
        .expect("read")
        .into_iter()
        .map(|(stored, _)| String::from_utf8(stored.record.payload).expect("utf-8"))
        .collect()
}

/// A directory the outbox creates itself (with its own mode), removed afterwards.
struct Scratch(tempfile::TempDir);

impl Scratch {
    fn new() -> Self {
        Self(tempfile::tempdir().expect("temp dir"))
    }

    fn path(&self) -> std::path::PathBuf {
        self.0.path().join("outbox")
    }
}

fn segment_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .expect("list")
        .filter(|entry| {
            entry
                .as_ref()
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .ends_with(".log")
        })
        .count()
}

#[test]
fn records_drain_in_order_across_segments_and_reopens_resume_at_the_cursor() {
    let dir = Scratch::new();
    let mut log = OutboxLog::open(&dir.path(), ROOMY).expect("open");
    assert_eq!(appended(&mut log, 0..20), (0..20).collect::<Vec<_>>());
    assert!(segment_files(&dir.path()) > 2, "small segments roll");
    assert_eq!(log.stats().records, 20);
    assert_eq!(log.stats().oldest_enqueued_ms, Some(1_000));

    let first = log.next_unsent(7).expect("read");
    assert_eq!(first.len(), 7);
    assert_eq!(first[6].0.record, record(6));
    log.mark_drained(first[6].1).expect("drained");
    assert_eq!(log.stats().records, 13);
    // Handed out but not acknowledged: handed out again after a rewind.
    let handed = payloads(&mut log, 3);
    assert_eq!(handed, ["payload-7", "payload-8", "payload-9"]);
    log.rewind();
    drop(log);

    let mut reopened = OutboxLog::open(&dir.path(), ROOMY).expect("reopen");
    assert_eq!(reopened.stats().records, 13);
    let rest = payloads(&mut reopened, 100);
    assert_eq!(rest, (7..20).map(|n| format!("payload-{n}")).collect::<Vec<_>>());
    assert_eq!(appended(&mut reopened, 20..21), [20], "sequences go on");
}

#[test]
fn draining_everything_deletes_all_but_the_last_segment() {
    let dir = Scratch::new();
    let mut log = OutboxLog::open(&dir.path(), ROOMY).expect("open");
    appended(&mut log, 0..30);
    let all = log.next_unsent(100).expect("read");
    log.mark_drained(all.last().expect("some").1).expect("drained");
    assert!(log.is_drained());
    assert_eq!(segment_files(&dir.path()), 1);
    assert_eq!(log.stats().oldest_enqueued_ms, None);
    drop(log);
    let mut reopened = OutboxLog::open(&dir.path(), ROOMY).expect("reopen");
    assert!(reopened.is_drained());
    assert!(reopened.next_unsent(10).expect("read").is_empty());
    assert_eq!(appended(&mut reopened, 30..31), [30]);
}

#[test]
fn a_torn_tail_is_cut_and_damage_in_the_middle_is_refused() {
    let dir = Scratch::new();
    let mut log = OutboxLog::open(
        &dir.path(),
        LogLimits {
            max_bytes: 1 << 20,
            segment_bytes: 1 << 20,
        },
    )
    .expect("open");
    appended(&mut log, 0..3);
    drop(log);
    let segment = dir.path().join(format!("{:020}.log", 0));
    let whole = std::fs::metadata(&segment).expect("segment").len();
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&segment)
        .expect("open segment");
    file.write_all(&[0, 0, 1, 0, 9, 9]).expect("a write cut short");
    drop(file);

    let mut reopened = OutboxLog::open(&dir.path(), ROOMY).expect("a torn tail is not damage");
    assert_eq!(std::fs::metadata(&segment).expect("segment").len(), whole);
    assert_eq!(payloads(&mut reopened, 10), ["payload-0", "payload-1", "payload-2"]);
    drop(reopened);

    // A power cut can leave an unsynced append as zeros: never acknowledged, so cut too.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&segment)
        .expect("open segment");
    file.write_all(&[0; 4096]).expect("zeros");
    drop(file);
    let mut reopened = OutboxLog::open(&dir.path(), ROOMY).expect("zeros at the tail are not damage");
    assert_eq!(std::fs::metadata(&segment).expect("segment").len(), whole);
    assert_eq!(payloads(&mut reopened, 10).len(), 3);
    drop(reopened);

    let mut bytes = std::fs::read(&segment).expect("read");
    bytes[20] ^= 0xff;
    std::fs::write(&segment, bytes).expect("damage");
    let refused = OutboxLog::open(&dir.path(), ROOMY).expect_err("damage is never skipped");
    assert!(matches!(refused, OutboxError::Damaged { offset: 0, .. }), "{refused}");
    assert!(refused.to_string().contains("move the outbox aside"), "{refused}");
}

#[test]
fn a_full_outbox_refuses_the_record_that_does_not_fit_and_takes_the_rest() {
    let dir = Scratch::new();
    let mut log = OutboxLog::open(
        &dir.path(),
        LogLimits {
            max_bytes: 200,
            segment_bytes: 100,
        },
    )
    .expect("open");
    let big = OutboxRecord {
        key: None,
        headers: Vec::new(),
        payload: vec![7; 500],
    };
    let taken = log.append(&[record(0), big, record(1)], 5).expect("disk");
    assert_eq!(taken[0].as_ref().ok(), Some(&0));
    assert!(matches!(taken[1], Err(OutboxError::Full { max_bytes: 200, .. })));
    assert_eq!(taken[2].as_ref().ok(), Some(&1));
}

#[test]
fn one_process_at_a_time_and_never_readable_by_others() {
    let dir = tempfile::tempdir().expect("temp dir");
    let outbox = dir.path().join("outbox");
    let held = OutboxLog::open(&outbox, ROOMY).expect("open");
    let mode = std::fs::metadata(&outbox).expect("dir").permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    let second = OutboxLog::open(&outbox, ROOMY).expect_err("locked");
    assert!(matches!(second, OutboxError::Locked(_)), "{second}");
    drop(held);
    OutboxLog::open(&outbox, ROOMY).expect("free again");

    std::fs::set_permissions(&outbox, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let exposed = OutboxLog::open(&outbox, ROOMY).expect_err("exposed");
    assert!(exposed.to_string().contains("chmod 700"), "{exposed}");
}

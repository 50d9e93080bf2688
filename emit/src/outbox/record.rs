//! One outbox record on disk: a Kafka record (key, headers, framed payload) with its sequence
//! number and the time it entered the outbox.
//!
//! Frame: `u32 body length | 8 bytes of SHA-256(body) | body`, big-endian. The checksum tells a
//! record torn by a crash mid-write from a whole one: a torn tail is cut at open, never sent.

use sealtrail_core::digest::Digest;

/// Bytes before the body: its length and checksum.
pub const FRAME_HEADER: usize = 4 + 8;

/// No absent key is this long, so the length stands for "no key".
const NO_KEY: u32 = u32::MAX;

/// A record waiting to be sent to Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRecord {
    pub key: Option<Vec<u8>>,
    pub headers: Vec<(String, String)>,
    pub payload: Vec<u8>,
}

/// A record read back, with where it stands in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub sequence: u64,
    pub enqueued_ms: i64,
    pub record: OutboxRecord,
}

/// Why bytes are not a whole record.
#[derive(Debug, PartialEq, Eq)]
pub enum Damage {
    /// Fewer bytes than the frame announces: a write cut short (only ever at the tail).
    Torn,
    /// The bytes are all there but do not match their checksum, or do not parse.
    Corrupt(&'static str),
}

fn checksum(body: &[u8]) -> [u8; 8] {
    let digest = Digest::of(&[body]);
    let mut first = [0; 8];
    first.copy_from_slice(&digest.0[..8]);
    first
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// The frame of `record` as sequence `sequence`, entered at `enqueued_ms`.
pub fn encode(sequence: u64, enqueued_ms: i64, record: &OutboxRecord) -> Vec<u8> {
    let mut body = Vec::with_capacity(64 + record.payload.len());
    body.extend_from_slice(&sequence.to_be_bytes());
    body.extend_from_slice(&enqueued_ms.to_be_bytes());
    match &record.key {
        Some(key) => put_bytes(&mut body, key),
        None => body.extend_from_slice(&NO_KEY.to_be_bytes()),
    }
    body.extend_from_slice(&u32::try_from(record.headers.len()).unwrap_or(u32::MAX).to_be_bytes());
    for (name, value) in &record.headers {
        put_bytes(&mut body, name.as_bytes());
        put_bytes(&mut body, value.as_bytes());
    }
    put_bytes(&mut body, &record.payload);
    let mut frame = Vec::with_capacity(FRAME_HEADER + body.len());
    frame.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_be_bytes());
    frame.extend_from_slice(&checksum(&body));
    frame.extend_from_slice(&body);
    frame
}

/// Reads the record at the start of `bytes`; returns it and the bytes its frame took.
pub fn decode(bytes: &[u8]) -> Result<(Stored, usize), Damage> {
    let header = bytes.get(..FRAME_HEADER).ok_or(Damage::Torn)?;
    let length = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let body = bytes.get(FRAME_HEADER..FRAME_HEADER + length).ok_or(Damage::Torn)?;
    if checksum(body) != header[4..12] {
        return Err(Damage::Corrupt("checksum mismatch"));
    }
    let mut reader = Reader { rest: body };
    let sequence = u64::from_be_bytes(reader.array()?);
    let enqueued_ms = i64::from_be_bytes(reader.array()?);
    let key_length = u32::from_be_bytes(reader.array()?);
    let key = if key_length == NO_KEY {
        None
    } else {
        Some(reader.take(key_length as usize)?.to_vec())
    };
    let header_count = u32::from_be_bytes(reader.array()?);
    let mut headers = Vec::new();
    for _ in 0..header_count {
        let name = reader.text()?;
        let value = reader.text()?;
        headers.push((name, value));
    }
    let payload = reader.bytes()?.to_vec();
    if !reader.rest.is_empty() {
        return Err(Damage::Corrupt("bytes after the payload"));
    }
    let stored = Stored {
        sequence,
        enqueued_ms,
        record: OutboxRecord { key, headers, payload },
    };
    Ok((stored, FRAME_HEADER + length))
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Damage> {
        if self.rest.len() < n {
            return Err(Damage::Corrupt("a field runs past the record"));
        }
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Damage> {
        let mut array = [0; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }

    fn bytes(&mut self) -> Result<&'a [u8], Damage> {
        let length = u32::from_be_bytes(self.array()?) as usize;
        self.take(length)
    }

    fn text(&mut self) -> Result<String, Damage> {
        let bytes = self.bytes()?;
        String::from_utf8(bytes.to_vec()).map_err(|_| Damage::Corrupt("a header is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> OutboxRecord {
        OutboxRecord {
            key: Some(b"acme".to_vec()),
            headers: vec![("traceparent".to_owned(), "00-abc-def-01".to_owned())],
            payload: vec![0, 0, 0, 0, 7, 1, 2, 3],
        }
    }

    #[test]
    fn a_record_reads_back_as_written() {
        let frame = encode(42, 1_700_000_000_000, &record());
        let (stored, used) = decode(&frame).expect("whole");
        assert_eq!(used, frame.len());
        assert_eq!((stored.sequence, stored.enqueued_ms), (42, 1_700_000_000_000));
        assert_eq!(stored.record, record());
        let keyless = OutboxRecord {
            key: None,
            headers: Vec::new(),
            payload: Vec::new(),
        };
        let (stored, _) = decode(&encode(0, 0, &keyless)).expect("whole");
        assert_eq!(stored.record, keyless);
    }

    #[test]
    fn a_cut_frame_is_torn_and_a_changed_byte_is_corrupt() {
        let frame = encode(1, 2, &record());
        for cut in 0..frame.len() {
            assert_eq!(decode(&frame[..cut]), Err(Damage::Torn), "cut at {cut}");
        }
        for index in 4..frame.len() {
            let mut changed = frame.clone();
            changed[index] ^= 0x01;
            assert!(
                matches!(decode(&changed), Err(Damage::Corrupt(_))),
                "byte {index} changed"
            );
        }
    }
}

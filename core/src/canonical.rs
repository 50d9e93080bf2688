//! The canonical encoding that sealtrail hashes: RFC 8785 (JSON Canonicalization Scheme) of the
//! entry object described in docs/integrity.md.
//!
//! Objects are written with their keys already in JCS order: the fixed keys of the contract are
//! ASCII and listed here sorted; free-form keys (attributes) are sorted by UTF-16 code units.
//! Every number in an entry is an integer of magnitude below 2^53, which JCS writes as plain
//! decimal digits.

use crate::event::AuditEvent;
use crate::sealed::{Classification, Redaction};

/// The scheme number written into every entry. Entries are unchanged since version 1 of the
/// scheme (version 2 changed only checkpoints, see [`crate::checkpoint::CHECKPOINT_SCHEME`]), so
/// they keep `"scheme": 1` and every chain sealed before and after the change links alike.
pub const ENTRY_SCHEME: u32 = 1;

/// Appends canonical JSON to a buffer.
#[derive(Debug, Default)]
pub struct Canonical {
    out: Vec<u8>,
    /// Whether the next member or element needs a comma before it.
    needs_comma: bool,
}

impl Canonical {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            out: Vec::with_capacity(capacity),
            needs_comma: false,
        }
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.out
    }

    fn separator(&mut self) {
        if self.needs_comma {
            self.out.push(b',');
        }
        self.needs_comma = true;
    }

    pub fn begin_object(&mut self) {
        self.out.push(b'{');
        self.needs_comma = false;
    }

    pub fn end_object(&mut self) {
        self.out.push(b'}');
        self.needs_comma = true;
    }

    pub fn begin_array(&mut self) {
        self.out.push(b'[');
        self.needs_comma = false;
    }

    pub fn end_array(&mut self) {
        self.out.push(b']');
        self.needs_comma = true;
    }

    /// Writes `"key":`; the caller writes the value next.
    pub fn key(&mut self, key: &str) {
        self.separator();
        self.string_literal(key);
        self.out.push(b':');
        self.needs_comma = false;
    }

    pub fn string(&mut self, value: &str) {
        self.separator();
        self.string_literal(value);
    }

    pub fn integer(&mut self, value: i64) {
        self.separator();
        // Digits written backwards into a stack buffer: no allocation per number.
        let mut digits = [0_u8; 20];
        let mut at = digits.len();
        let mut rest = value.unsigned_abs();
        loop {
            at -= 1;
            digits[at] = b'0' + u8::try_from(rest % 10).expect("a digit");
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        if value < 0 {
            self.out.push(b'-');
        }
        self.out.extend_from_slice(&digits[at..]);
    }

    /// Writes `"key":` for one of the contract's own member names: plain ASCII that needs no
    /// escaping, so it is copied as is (free-form names go through `key`).
    fn fixed_key(&mut self, key: &'static str) {
        debug_assert!(key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        self.separator();
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.needs_comma = false;
    }

    pub fn field_str(&mut self, key: &'static str, value: &str) {
        self.fixed_key(key);
        self.string(value);
    }

    /// Absent optional fields are left out, not written as null.
    pub fn field_opt(&mut self, key: &'static str, value: Option<&str>) {
        if let Some(value) = value {
            self.field_str(key, value);
        }
    }

    pub fn field_int(&mut self, key: &'static str, value: i64) {
        self.fixed_key(key);
        self.integer(value);
    }

    pub fn field_bool(&mut self, key: &'static str, value: bool) {
        self.fixed_key(key);
        self.out.extend_from_slice(if value { b"true" } else { b"false" });
        self.needs_comma = true;
    }

    fn string_literal(&mut self, value: &str) {
        self.out.push(b'"');
        let bytes = value.as_bytes();
        let mut start = 0;
        // Most strings need no escaping: copy runs between escapes in one go.
        while let Some(offset) = first_to_escape(&bytes[start..]) {
            let index = start + offset;
            self.out.extend_from_slice(&bytes[start..index]);
            let byte = bytes[index];
            match byte {
                b'"' => self.out.extend_from_slice(b"\\\""),
                b'\\' => self.out.extend_from_slice(b"\\\\"),
                0x08 => self.out.extend_from_slice(b"\\b"),
                0x09 => self.out.extend_from_slice(b"\\t"),
                0x0a => self.out.extend_from_slice(b"\\n"),
                0x0c => self.out.extend_from_slice(b"\\f"),
                0x0d => self.out.extend_from_slice(b"\\r"),
                _ => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    self.out.extend_from_slice(b"\\u00");
                    self.out.push(HEX[usize::from(byte >> 4)]);
                    self.out.push(HEX[usize::from(byte & 0x0f)]);
                }
            }
            start = index + 1;
        }
        self.out.extend_from_slice(&bytes[start..]);
        self.out.push(b'"');
    }
}

/// The position of the first byte that needs escaping, eight bytes at a time where it can.
fn first_to_escape(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |word: u64| word.wrapping_sub(ONES) & !word & HIGHS;
    let mut chunks = bytes.chunks_exact(8);
    let mut position = 0;
    for chunk in chunks.by_ref() {
        let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        // A byte below 0x20, or equal to '"' or '\\', sets its high bit in one of these.
        let flagged = (word.wrapping_sub(ONES * 0x20) & !word & HIGHS)
            | has_zero(word ^ (ONES * 0x22))
            | has_zero(word ^ (ONES * 0x5c));
        // The test can flag a byte that needs nothing (a borrow between bytes); look closer.
        if flagged != 0
            && let Some(index) = chunk.iter().position(|b| NEEDS_ESCAPE[usize::from(*b)])
        {
            return Some(position + index);
        }
        position += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|b| NEEDS_ESCAPE[usize::from(*b)])
        .map(|i| position + i)
}

/// Bytes JCS escapes in strings: control characters, the quotation mark and the backslash.
const NEEDS_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = true;
        byte += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// Orders keys as JCS does: by their UTF-16 code units.
pub fn jcs_key_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// The canonical entry of a sealed event: what its hash covers (docs/integrity.md).
pub fn entry(
    tenant_id: &str,
    seq: u64,
    event: &AuditEvent,
    classification: &Classification,
    redactions: &[Redaction],
) -> Vec<u8> {
    let mut c = Canonical::with_capacity(2048);
    c.begin_object();
    c.fixed_key("classification");
    write_classification(&mut c, classification);
    c.fixed_key("event");
    write_event(&mut c, event);
    c.fixed_key("redactions");
    c.begin_array();
    for redaction in redactions {
        c.separator();
        c.begin_object();
        c.field_str("label", &redaction.label);
        c.field_str("method", &redaction.method);
        c.field_str("path", &redaction.path);
        c.end_object();
    }
    c.end_array();
    c.field_int("scheme", i64::from(ENTRY_SCHEME));
    c.field_int("seq", i64::try_from(seq).unwrap_or(i64::MAX));
    c.field_str("tenant_id", tenant_id);
    c.end_object();
    c.into_bytes()
}

fn write_classification(c: &mut Canonical, classification: &Classification) {
    c.begin_object();
    c.field_str("category", &classification.category);
    c.field_str("data_class", classification.data_class.symbol());
    c.fixed_key("labels");
    c.begin_array();
    for label in &classification.labels {
        c.string(label);
    }
    c.end_array();
    c.field_str("policy_version", &classification.policy_version);
    c.end_object();
}

fn write_event(c: &mut Canonical, event: &AuditEvent) {
    c.begin_object();
    c.field_str("action", &event.action);
    c.fixed_key("actor");
    c.begin_object();
    c.field_opt("authority", event.actor.authority.as_deref());
    c.field_opt("display_name", event.actor.display_name.as_deref());
    c.field_str("id", &event.actor.id);
    c.field_opt("on_behalf_of", event.actor.on_behalf_of.as_deref());
    c.field_str("type", event.actor.kind.symbol());
    c.end_object();
    c.fixed_key("attributes");
    c.begin_object();
    let mut attributes: Vec<&(String, String)> = event.attributes.iter().collect();
    attributes.sort_by(|a, b| jcs_key_order(&a.0, &b.0));
    for (key, value) in attributes {
        c.key(key);
        c.string(value);
    }
    c.end_object();
    c.field_opt("causation_id", event.causation_id.as_deref());
    c.fixed_key("changes");
    c.begin_array();
    for change in &event.changes {
        c.separator();
        c.begin_object();
        c.field_opt("after", change.after.as_deref());
        c.field_opt("before", change.before.as_deref());
        c.field_str("field", &change.field);
        c.end_object();
    }
    c.end_array();
    c.field_opt("correlation_id", event.correlation_id.as_deref());
    c.field_str("event_id", &event.event_id);
    c.fixed_key("evidence");
    c.begin_array();
    for evidence in &event.evidence {
        c.separator();
        c.begin_object();
        c.field_str("kind", &evidence.kind);
        c.field_opt("sha256", evidence.sha256.as_deref());
        c.field_str("uri", &evidence.uri);
        c.end_object();
    }
    c.end_array();
    c.field_opt("idempotency_key", event.idempotency_key.as_deref());
    c.field_int("occurred_at", event.occurred_at);
    c.fixed_key("outcome");
    c.begin_object();
    c.field_opt("reason_code", event.outcome.reason_code.as_deref());
    c.field_opt("reason_text", event.outcome.reason_text.as_deref());
    c.field_str("status", event.outcome.status.symbol());
    c.end_object();
    c.field_opt("policy_version", event.policy_version.as_deref());
    c.fixed_key("resource");
    c.begin_object();
    c.field_str("id", &event.resource.id);
    c.field_opt("path", event.resource.path.as_deref());
    c.field_str("type", &event.resource.kind);
    c.end_object();
    c.field_opt("session_id", event.session_id.as_deref());
    c.field_opt("span_id", event.span_id.as_deref());
    c.field_str("tenant_id", &event.tenant_id);
    c.field_opt("trace_id", event.trace_id.as_deref());
    c.end_object();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A straightforward JCS of a JSON value, to check the hand-ordered writer against.
    fn reference_jcs(value: &serde_json::Value) -> String {
        match value {
            serde_json::Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| jcs_key_order(a.0, b.0));
                let body: Vec<String> = entries
                    .into_iter()
                    .map(|(k, v)| {
                        format!(
                            "{}:{}",
                            reference_jcs(&serde_json::Value::String(k.clone())),
                            reference_jcs(v)
                        )
                    })
                    .collect();
                format!("{{{}}}", body.join(","))
            }
            serde_json::Value::Array(items) => {
                format!("[{}]", items.iter().map(reference_jcs).collect::<Vec<_>>().join(","))
            }
            serde_json::Value::String(text) => {
                let mut c = Canonical::default();
                c.string(text);
                String::from_utf8(c.into_bytes()).expect("utf-8")
            }
            other => other.to_string(),
        }
    }

    #[test]
    fn strings_escape_exactly_as_rfc_8785_says() {
        let mut c = Canonical::default();
        c.string("a\"b\\c\u{8}\t\n\u{c}\r\u{1}\u{1f}\u{7f}é€😀/");
        assert_eq!(
            String::from_utf8(c.into_bytes()).expect("utf-8"),
            "\"a\\\"b\\\\c\\b\\t\\n\\f\\r\\u0001\\u001f\u{7f}é€😀/\""
        );
    }

    #[test]
    fn the_word_at_a_time_scan_finds_exactly_the_bytes_to_escape() {
        for length in 0..40 {
            for position in 0..length {
                for special in [0x00_u8, 0x1f, b'"', b'\\'] {
                    let mut bytes = vec![b'a'; length];
                    bytes[position] = special;
                    assert_eq!(
                        first_to_escape(&bytes),
                        Some(position),
                        "{special} at {position} of {length}"
                    );
                }
            }
            for filler in [0x20_u8, 0x21, 0x23, 0x5b, 0x5d, 0x7f, 0x80, 0xff] {
                assert_eq!(first_to_escape(&vec![filler; length]), None, "{filler}");
            }
        }
    }

    #[test]
    fn integers_are_plain_decimal() {
        for value in [0_i64, 7, -7, 10, 1_763_856_000_123, -(1 << 53), i64::MAX, i64::MIN] {
            let mut c = Canonical::default();
            c.integer(value);
            assert_eq!(String::from_utf8(c.into_bytes()).expect("utf-8"), value.to_string());
        }
    }

    #[test]
    fn keys_sort_by_utf16_code_units_not_bytes() {
        // U+E000 sorts after U+1F600 in UTF-8 bytes but before it in UTF-16 (surrogates D83D..).
        let mut keys = vec!["\u{1F600}", "\u{E000}", "a", "B"];
        keys.sort_by(|a, b| jcs_key_order(a, b));
        assert_eq!(keys, vec!["B", "a", "\u{1F600}", "\u{E000}"]);
    }

    #[test]
    fn the_entry_writer_agrees_with_a_generic_jcs() {
        let mut event = AuditEvent {
            event_id: "01JD7Z8Y9X0W1V2K3T4S5R6Q7P".into(),
            tenant_id: "acme".into(),
            occurred_at: 1_763_856_000_123,
            action: "billing.refund.posted".into(),
            ..AuditEvent::default()
        };
        event.actor.id = "tok:email:00ff".into();
        event.actor.display_name = Some("Zoë \"Z\" O'Neil".into());
        event.resource.kind = "invoice".into();
        event.resource.id = "inv-1".into();
        event.attributes = vec![
            ("zeta".into(), "1".into()),
            ("\u{E000}".into(), "x".into()),
            ("amount".into(), "12.50".into()),
        ];
        event.changes.push(crate::event::Change {
            field: "status".into(),
            before: None,
            after: Some("refunded".into()),
        });
        let classification = Classification {
            category: "billing".into(),
            data_class: crate::sealed::DataClass::Restricted,
            labels: vec!["payment_card".into()],
            policy_version: "2026-11-01.1".into(),
        };
        let redactions = vec![Redaction {
            path: "attributes.card".into(),
            label: "payment_card".into(),
            method: "mask".into(),
        }];
        let written = String::from_utf8(entry("acme", 7, &event, &classification, &redactions)).expect("utf-8");
        let parsed: serde_json::Value = serde_json::from_str(&written).expect("valid JSON");
        assert_eq!(written, reference_jcs(&parsed));
        assert!(written.starts_with(r#"{"classification":{"category":"billing","data_class":"RESTRICTED""#));
        assert!(!written.contains("null"), "absent fields are omitted: {written}");
    }
}

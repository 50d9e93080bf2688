//! Writing Avro binary data: the primitives, used by the hand-written encoders of the contract.

/// Appends Avro-encoded values to a buffer.
#[derive(Debug, Default)]
pub struct Writer {
    buffer: Vec<u8>,
}

impl Writer {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            buffer: Vec::with_capacity(capacity),
        }
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buffer
    }

    pub fn raw(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    pub fn long(&mut self, value: i64) {
        #[expect(clippy::cast_sign_loss, reason = "zig-zag encoding reinterprets the bits")]
        let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
        while zigzag >= 0x80 {
            #[expect(clippy::cast_possible_truncation, reason = "seven bits at a time")]
            self.buffer.push((zigzag as u8) | 0x80);
            zigzag >>= 7;
        }
        #[expect(clippy::cast_possible_truncation, reason = "the last seven bits")]
        self.buffer.push(zigzag as u8);
    }

    pub fn int(&mut self, value: i32) {
        self.long(i64::from(value));
    }

    pub fn boolean(&mut self, value: bool) {
        self.buffer.push(u8::from(value));
    }

    pub fn bytes(&mut self, value: &[u8]) {
        self.long(i64::try_from(value.len()).unwrap_or(i64::MAX));
        self.buffer.extend_from_slice(value);
    }

    pub fn str(&mut self, value: &str) {
        self.bytes(value.as_bytes());
    }

    /// A `["null", "string"]` union.
    pub fn optional_str(&mut self, value: Option<&str>) {
        match value {
            None => self.long(0),
            Some(text) => {
                self.long(1);
                self.str(text);
            }
        }
    }

    pub fn enum_index(&mut self, index: usize) {
        self.long(i64::try_from(index).unwrap_or(i64::MAX));
    }

    /// An array or map: one block with every item, then the end marker.
    pub fn block<T>(&mut self, items: &[T], mut item: impl FnMut(&mut Self, &T)) {
        if !items.is_empty() {
            self.long(i64::try_from(items.len()).unwrap_or(i64::MAX));
            for value in items {
                item(self, value);
            }
        }
        self.long(0);
    }
}

//! Avro: the Confluent wire format, schema resolution compiled once per schema pair, decoding
//! without per-field allocation of names, and the encoders of sealtrail's own records.

pub mod contract;
mod decode;
mod encode;
mod plan;
mod value;

pub use decode::{DecodeError, Reader, decode, decode_all};
pub use encode::Writer;
pub use plan::{FieldStep, Plan, PlanError, RecordPlan, compile, identity};
pub use value::Val;

/// The first byte of every Confluent-framed record.
pub const MAGIC_BYTE: u8 = 0;

/// A record in the Confluent wire format: magic byte, 4-byte big-endian schema id, Avro body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framed<'a> {
    pub schema_id: u32,
    pub body: &'a [u8],
}

/// Why bytes are not a Confluent-framed record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("the record is empty")]
    Empty,
    #[error("the record starts with byte 0x{0:02x}, not the Confluent magic byte 0x00")]
    BadMagic(u8),
    #[error("the record is {0} bytes long, too short for the 5-byte Confluent header")]
    TooShort(usize),
}

impl<'a> Framed<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self, FramingError> {
        match bytes {
            [] => Err(FramingError::Empty),
            [magic, ..] if *magic != MAGIC_BYTE => Err(FramingError::BadMagic(*magic)),
            [_, a, b, c, d, body @ ..] => Ok(Self {
                schema_id: u32::from_be_bytes([*a, *b, *c, *d]),
                body,
            }),
            short => Err(FramingError::TooShort(short.len())),
        }
    }

    /// Prefixes an Avro body with the Confluent header.
    pub fn frame(schema_id: u32, body: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(5 + body.len());
        bytes.push(MAGIC_BYTE);
        bytes.extend_from_slice(&schema_id.to_be_bytes());
        bytes.extend_from_slice(body);
        bytes
    }
}

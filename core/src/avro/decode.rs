//! Decoding Avro binary data by following a [`Plan`].

use std::borrow::Cow;

use super::plan::{FieldStep, Plan, RecordPlan};
use super::value::Val;

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("the data ends early")]
    Truncated,
    #[error("a variable-length integer is longer than 10 bytes")]
    VarintOverflow,
    #[error("a length or count is negative or too large: {0}")]
    BadLength(i64),
    #[error("a string is not valid UTF-8")]
    BadUtf8,
    #[error("union branch {0} does not exist")]
    BadUnionBranch(i64),
    #[error("union branch {index} cannot be read: {reason}")]
    UnreadableBranch { index: usize, reason: String },
    #[error("enum symbol {0} is unknown to the reader and it has no default")]
    UnknownSymbol(String),
    #[error("enum index {0} does not exist")]
    BadEnumIndex(i64),
    #[error("{0} bytes are left after the record")]
    TrailingBytes(usize),
}

/// A cursor over Avro binary data.
#[derive(Debug)]
pub struct Reader<'a> {
    data: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, position: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.data.len() - self.position
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        let byte = *self.data.get(self.position).ok_or(DecodeError::Truncated)?;
        self.position += 1;
        Ok(byte)
    }

    pub fn long(&mut self) -> Result<i64, DecodeError> {
        let mut value: u64 = 0;
        for shift in (0..70).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                // Zig-zag: the sign lives in the lowest bit.
                #[expect(clippy::cast_possible_wrap, reason = "zig-zag decoding reinterprets the bits")]
                return Ok((value >> 1) as i64 ^ -((value & 1) as i64));
            }
        }
        Err(DecodeError::VarintOverflow)
    }

    fn take(&mut self, length: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.position.checked_add(length).ok_or(DecodeError::Truncated)?;
        let slice = self.data.get(self.position..end).ok_or(DecodeError::Truncated)?;
        self.position = end;
        Ok(slice)
    }

    fn length(&mut self) -> Result<usize, DecodeError> {
        let length = self.long()?;
        let length = usize::try_from(length).map_err(|_| DecodeError::BadLength(length))?;
        if length > self.remaining() {
            return Err(DecodeError::Truncated);
        }
        Ok(length)
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let length = self.length()?;
        self.take(length)
    }

    /// An owned string, for decoding straight into the event model.
    pub fn string(&mut self) -> Result<String, DecodeError> {
        self.str().map(str::to_owned)
    }

    /// A `["null", "string"]` union.
    pub fn optional_string(&mut self) -> Result<Option<String>, DecodeError> {
        match self.long()? {
            0 => Ok(None),
            1 => self.string().map(Some),
            other => Err(DecodeError::BadUnionBranch(other)),
        }
    }

    /// An enum index below `symbols`.
    pub fn enum_index(&mut self, symbols: usize) -> Result<usize, DecodeError> {
        let index = self.long()?;
        usize::try_from(index)
            .ok()
            .filter(|i| *i < symbols)
            .ok_or(DecodeError::BadEnumIndex(index))
    }

    pub fn str(&mut self) -> Result<&'a str, DecodeError> {
        simdutf8::basic::from_utf8(self.bytes()?).map_err(|_| DecodeError::BadUtf8)
    }

    fn float(&mut self) -> Result<f32, DecodeError> {
        Ok(f32::from_le_bytes(
            self.take(4)?.try_into().map_err(|_| DecodeError::Truncated)?,
        ))
    }

    fn double(&mut self) -> Result<f64, DecodeError> {
        Ok(f64::from_le_bytes(
            self.take(8)?.try_into().map_err(|_| DecodeError::Truncated)?,
        ))
    }

    /// Reads the blocks of an array or map, calling `item` once per element.
    pub fn blocks(&mut self, mut item: impl FnMut(&mut Self) -> Result<(), DecodeError>) -> Result<(), DecodeError> {
        loop {
            let mut count = self.long()?;
            if count == 0 {
                return Ok(());
            }
            if count < 0 {
                // A negative count is followed by the block's size in bytes.
                count = count.checked_neg().ok_or(DecodeError::BadLength(count))?;
                self.long()?;
            }
            // Every element takes at least one byte, except nulls; bound the count anyway.
            if usize::try_from(count).map_or(true, |c| c > self.remaining().max(1) * 8) {
                return Err(DecodeError::BadLength(count));
            }
            for _ in 0..count {
                item(self)?;
            }
        }
    }
}

/// Decodes one value following `plan`, and checks that nothing is left over.
pub fn decode_all<'a>(plan: &Plan, data: &'a [u8]) -> Result<Val<'a>, DecodeError> {
    let mut reader = Reader::new(data);
    let value = decode(plan, &mut reader)?;
    match reader.remaining() {
        0 => Ok(value),
        left => Err(DecodeError::TrailingBytes(left)),
    }
}

pub fn decode<'a>(plan: &Plan, reader: &mut Reader<'a>) -> Result<Val<'a>, DecodeError> {
    Ok(match plan {
        Plan::Null => Val::Null,
        Plan::Bool => Val::Bool(reader.byte()? != 0),
        Plan::Long => Val::Long(reader.long()?),
        Plan::LongToDouble => Val::Double(reader.long()? as f64),
        Plan::Float | Plan::FloatToDouble => Val::Double(f64::from(reader.float()?)),
        Plan::Double => Val::Double(reader.double()?),
        Plan::Str | Plan::BytesConverted { as_string: true } => Val::Str(Cow::Borrowed(reader.str()?)),
        Plan::Bytes | Plan::BytesConverted { as_string: false } => Val::Bytes(Cow::Borrowed(reader.bytes()?)),
        Plan::Fixed(size) => Val::Bytes(Cow::Borrowed(reader.take(*size)?)),
        Plan::Enum { map, symbols } => {
            let index = reader.long()?;
            let slot = usize::try_from(index)
                .ok()
                .filter(|i| *i < map.len())
                .ok_or(DecodeError::BadEnumIndex(index))?;
            Val::Enum(map[slot].ok_or_else(|| DecodeError::UnknownSymbol(symbols[slot].clone()))?)
        }
        Plan::Array(items) => {
            let mut values = Vec::new();
            reader.blocks(|r| {
                values.push(decode(items, r)?);
                Ok(())
            })?;
            Val::Array(values)
        }
        Plan::Map(values_plan) => {
            let mut entries = Vec::new();
            reader.blocks(|r| {
                let key = Cow::Borrowed(r.str()?);
                entries.push((key, decode(values_plan, r)?));
                Ok(())
            })?;
            Val::Map(entries)
        }
        Plan::Record(record) => decode_record(record, reader)?,
        Plan::WriterUnion(branches) => {
            let index = reader.long()?;
            let branch = usize::try_from(index)
                .ok()
                .and_then(|i| branches.get(i))
                .ok_or(DecodeError::BadUnionBranch(index))?;
            match branch {
                Ok(plan) => decode(plan, reader)?,
                Err(reason) => {
                    return Err(DecodeError::UnreadableBranch {
                        index: usize::try_from(index).unwrap_or_default(),
                        reason: reason.clone(),
                    });
                }
            }
        }
        Plan::IntoReaderUnion { branch, inner } => Val::Union(*branch, Box::new(decode(inner, reader)?)),
    })
}

fn decode_record<'a>(plan: &RecordPlan, reader: &mut Reader<'a>) -> Result<Val<'a>, DecodeError> {
    let mut fields = vec![Val::Null; plan.reader_len + usize::from(plan.capture_unknown)];
    let mut unknown = Vec::new();
    for step in &plan.steps {
        match step {
            FieldStep::Read { slot, plan: field_plan } => fields[*slot] = decode(field_plan, reader)?,
            FieldStep::Unknown { name, plan: field_plan } => {
                // Read either way: the bytes must be consumed to reach the next field.
                let value = decode(field_plan, reader)?;
                if plan.capture_unknown {
                    unknown.push((Cow::Owned(name.clone()), value));
                }
            }
        }
    }
    for (slot, default) in &plan.defaults {
        fields[*slot] = default.clone();
    }
    if plan.capture_unknown {
        fields[plan.reader_len] = Val::Map(unknown);
    }
    Ok(Val::Record(fields))
}

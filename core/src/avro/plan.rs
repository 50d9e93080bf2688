//! Schema resolution compiled once per (writer schema, reader schema) pair.
//!
//! Resolving the writer schema against the reader schema for every record costs more than the
//! decoding itself; a [`Plan`] does it once, and decoding then just follows it.

use std::collections::HashMap;

use apache_avro::Schema;
use apache_avro::schema::{Name, RecordSchema, UnionSchema};

use super::value::Val;

/// How to read one writer value into the reader's shape.
#[derive(Debug, Clone)]
pub enum Plan {
    Null,
    Bool,
    /// Writer `int`/`long` read as a reader `int`/`long`.
    Long,
    /// Writer `int`/`long` promoted to a reader `float`/`double`.
    LongToDouble,
    Float,
    FloatToDouble,
    Double,
    Str,
    Bytes,
    /// Writer `bytes` read as a reader `string` (or the reverse, `as_string = false`).
    BytesConverted {
        as_string: bool,
    },
    Fixed(usize),
    /// Writer symbol index to reader symbol index; `None` where the reader lacks the symbol.
    Enum {
        map: Vec<Option<u32>>,
        symbols: Vec<String>,
    },
    Array(Box<Plan>),
    Map(Box<Plan>),
    Record(RecordPlan),
    /// The writer wrote a union: per writer branch, how to read it (or why it cannot be read).
    WriterUnion(Vec<Result<Plan, String>>),
    /// The writer wrote a plain value that the reader expects inside a union.
    IntoReaderUnion {
        branch: u32,
        inner: Box<Plan>,
    },
}

#[derive(Debug, Clone)]
pub struct RecordPlan {
    pub steps: Vec<FieldStep>,
    /// Reader fields the writer does not have, with their defaults.
    pub defaults: Vec<(usize, Val<'static>)>,
    pub reader_len: usize,
    pub capture_unknown: bool,
}

#[derive(Debug, Clone)]
pub enum FieldStep {
    Read {
        slot: usize,
        plan: Plan,
    },
    /// A writer field the reader does not know: read and kept (when capturing) or skipped.
    Unknown {
        name: String,
        plan: Plan,
    },
}

/// Why a writer schema cannot be read with the reader schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct PlanError {
    pub path: String,
    pub reason: String,
}

/// Compiles the plan for reading data written with `writer` as `reader`. Unknown writer fields of
/// the top-level record are captured when `capture_unknown_top_level`.
pub fn compile(writer: &Schema, reader: &Schema, capture_unknown_top_level: bool) -> Result<Plan, PlanError> {
    let mut compiler = Compiler {
        writer_names: named_types(writer),
        reader_names: named_types(reader),
    };
    compiler.plan(writer, reader, "$", capture_unknown_top_level)
}

/// The plan for reading data with its own schema.
pub fn identity(schema: &Schema) -> Result<Plan, PlanError> {
    compile(schema, schema, false)
}

struct Compiler<'s> {
    writer_names: HashMap<Name, &'s Schema>,
    reader_names: HashMap<Name, &'s Schema>,
}

fn named_types(schema: &Schema) -> HashMap<Name, &Schema> {
    fn walk<'s>(schema: &'s Schema, names: &mut HashMap<Name, &'s Schema>) {
        match schema {
            Schema::Record(record) => {
                names.insert(record.name.clone(), schema);
                for field in &record.fields {
                    walk(&field.schema, names);
                }
            }
            Schema::Enum(e) => {
                names.insert(e.name.clone(), schema);
            }
            Schema::Fixed(f) | Schema::Duration(f) => {
                names.insert(f.name.clone(), schema);
            }
            Schema::Array(array) => walk(&array.items, names),
            Schema::Map(map) => walk(&map.types, names),
            Schema::Union(union) => union.variants().iter().for_each(|v| walk(v, names)),
            _ => {}
        }
    }
    let mut names = HashMap::new();
    walk(schema, &mut names);
    names
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Bool,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    Str,
    Fixed,
    Enum,
    Array,
    Map,
    Record,
    Union,
    /// A reference to a name the schema does not define; nothing reads as it.
    Unresolved,
}

impl<'s> Compiler<'s> {
    fn deref_writer(&self, schema: &'s Schema) -> &'s Schema {
        match schema {
            Schema::Ref { name } => self.writer_names.get(name).copied().unwrap_or(schema),
            other => other,
        }
    }

    fn deref_reader(&self, schema: &'s Schema) -> &'s Schema {
        match schema {
            Schema::Ref { name } => self.reader_names.get(name).copied().unwrap_or(schema),
            other => other,
        }
    }

    fn plan(&mut self, writer: &'s Schema, reader: &'s Schema, path: &str, capture: bool) -> Result<Plan, PlanError> {
        let writer = self.deref_writer(writer);
        let reader = self.deref_reader(reader);
        let error = |reason: String| PlanError {
            path: path.to_owned(),
            reason,
        };
        if let Schema::Union(writer_union) = writer {
            let branches = writer_union
                .variants()
                .iter()
                .map(|branch| self.plan(branch, reader, path, false).map_err(|e| e.to_string()))
                .collect::<Vec<_>>();
            if branches.iter().all(Result::is_err) {
                return Err(error("no branch of the writer union can be read".to_owned()));
            }
            return Ok(Plan::WriterUnion(branches));
        }
        if let Schema::Union(reader_union) = reader {
            return self.wrap_in_reader_union(writer, reader_union, path);
        }
        let (w, r) = (kind(writer), kind(reader));
        let plan = match (w, r) {
            (Kind::Null, Kind::Null) => Plan::Null,
            (Kind::Bool, Kind::Bool) => Plan::Bool,
            (Kind::Int | Kind::Long, Kind::Int | Kind::Long) if !(w == Kind::Long && r == Kind::Int) => Plan::Long,
            (Kind::Int | Kind::Long, Kind::Float | Kind::Double) => Plan::LongToDouble,
            (Kind::Float, Kind::Float) => Plan::Float,
            (Kind::Float, Kind::Double) => Plan::FloatToDouble,
            (Kind::Double, Kind::Double) => Plan::Double,
            (Kind::Str, Kind::Str) => Plan::Str,
            (Kind::Bytes, Kind::Bytes) => Plan::Bytes,
            (Kind::Bytes, Kind::Str) => Plan::BytesConverted { as_string: true },
            (Kind::Str, Kind::Bytes) => Plan::BytesConverted { as_string: false },
            (Kind::Fixed, Kind::Fixed) => {
                let (ws, rs) = (fixed_size(writer), fixed_size(reader));
                if ws != rs {
                    return Err(error(format!("fixed of size {ws} cannot be read as size {rs}")));
                }
                Plan::Fixed(ws)
            }
            (Kind::Enum, Kind::Enum) => {
                let (Schema::Enum(we), Schema::Enum(re)) = (writer, reader) else {
                    unreachable!("kinds checked")
                };
                let default = re.default.as_ref().and_then(|d| re.symbols.iter().position(|s| s == d));
                let map = we
                    .symbols
                    .iter()
                    .map(|symbol| {
                        re.symbols
                            .iter()
                            .position(|s| s == symbol)
                            .or(default)
                            .and_then(|i| u32::try_from(i).ok())
                    })
                    .collect();
                Plan::Enum {
                    map,
                    symbols: we.symbols.clone(),
                }
            }
            (Kind::Array, Kind::Array) => {
                let (Schema::Array(wa), Schema::Array(ra)) = (writer, reader) else {
                    unreachable!("kinds checked")
                };
                Plan::Array(Box::new(self.plan(
                    &wa.items,
                    &ra.items,
                    &format!("{path}[]"),
                    false,
                )?))
            }
            (Kind::Map, Kind::Map) => {
                let (Schema::Map(wm), Schema::Map(rm)) = (writer, reader) else {
                    unreachable!("kinds checked")
                };
                Plan::Map(Box::new(self.plan(
                    &wm.types,
                    &rm.types,
                    &format!("{path}{{}}"),
                    false,
                )?))
            }
            (Kind::Record, Kind::Record) => {
                let (Schema::Record(wr), Schema::Record(rr)) = (writer, reader) else {
                    unreachable!("kinds checked")
                };
                Plan::Record(self.record(wr, rr, path, capture)?)
            }
            _ => return Err(error(format!("{w:?} cannot be read as {r:?}"))),
        };
        Ok(plan)
    }

    fn wrap_in_reader_union(
        &mut self,
        writer: &'s Schema,
        reader: &'s UnionSchema,
        path: &str,
    ) -> Result<Plan, PlanError> {
        // The first reader branch of the same kind (and name, for named types) wins; failing that,
        // the first one the value can be promoted to.
        let writer_kind = kind(writer);
        let writer_name = name_of(writer);
        let exact = reader.variants().iter().position(|branch| {
            let branch = self.deref_reader(branch);
            kind(branch) == writer_kind && name_of(branch).is_none_or(|n| Some(n) == writer_name)
        });
        let candidates = exact.into_iter().chain(0..reader.variants().len());
        for index in candidates {
            if let Ok(inner) = self.plan(writer, &reader.variants()[index], path, false) {
                return Ok(Plan::IntoReaderUnion {
                    branch: u32::try_from(index).unwrap_or(u32::MAX),
                    inner: Box::new(inner),
                });
            }
        }
        Err(PlanError {
            path: path.to_owned(),
            reason: format!("{writer_kind:?} matches no branch of the reader union"),
        })
    }

    fn record(
        &mut self,
        writer: &'s RecordSchema,
        reader: &'s RecordSchema,
        path: &str,
        capture: bool,
    ) -> Result<RecordPlan, PlanError> {
        let mut steps = Vec::with_capacity(writer.fields.len());
        let mut filled = vec![false; reader.fields.len()];
        for field in &writer.fields {
            let slot = reader
                .fields
                .iter()
                .position(|r| r.name == field.name || r.aliases.iter().any(|a| a == &field.name));
            let field_path = format!("{path}.{}", field.name);
            if let Some(slot) = slot {
                let plan = self.plan(&field.schema, &reader.fields[slot].schema, &field_path, false)?;
                filled[slot] = true;
                steps.push(FieldStep::Read { slot, plan });
            } else {
                let plan = self.plan(&field.schema, &field.schema, &field_path, false)?;
                steps.push(FieldStep::Unknown {
                    name: field.name.clone(),
                    plan,
                });
            }
        }
        let mut defaults = Vec::new();
        for (slot, field) in reader.fields.iter().enumerate().filter(|(slot, _)| !filled[*slot]) {
            let Some(default) = &field.default else {
                return Err(PlanError {
                    path: format!("{path}.{}", field.name),
                    reason: "the writer lacks this field and the reader has no default".to_owned(),
                });
            };
            let value =
                default_value(self.deref_reader(&field.schema), default, &self.reader_names).ok_or_else(|| {
                    PlanError {
                        path: format!("{path}.{}", field.name),
                        reason: format!("default {default} does not fit the field's type"),
                    }
                })?;
            defaults.push((slot, value));
        }
        Ok(RecordPlan {
            steps,
            defaults,
            reader_len: reader.fields.len(),
            capture_unknown: capture,
        })
    }
}

fn kind(schema: &Schema) -> Kind {
    match schema {
        Schema::Null => Kind::Null,
        Schema::Boolean => Kind::Bool,
        Schema::Int | Schema::Date | Schema::TimeMillis => Kind::Int,
        Schema::Long
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => Kind::Long,
        Schema::Float => Kind::Float,
        Schema::Double => Kind::Double,
        Schema::Bytes | Schema::BigDecimal => Kind::Bytes,
        Schema::Decimal(decimal) => match decimal.inner {
            apache_avro::schema::InnerDecimalSchema::Bytes => Kind::Bytes,
            apache_avro::schema::InnerDecimalSchema::Fixed(_) => Kind::Fixed,
        },
        Schema::String => Kind::Str,
        Schema::Uuid(uuid) => match uuid {
            apache_avro::schema::UuidSchema::String => Kind::Str,
            _ => Kind::Fixed,
        },
        Schema::Fixed(_) | Schema::Duration(_) => Kind::Fixed,
        Schema::Enum(_) => Kind::Enum,
        Schema::Array(_) => Kind::Array,
        Schema::Map(_) => Kind::Map,
        Schema::Record(_) => Kind::Record,
        Schema::Union(_) => Kind::Union,
        Schema::Ref { .. } => Kind::Unresolved,
    }
}

fn name_of(schema: &Schema) -> Option<&Name> {
    match schema {
        Schema::Record(r) => Some(&r.name),
        Schema::Enum(e) => Some(&e.name),
        Schema::Fixed(f) | Schema::Duration(f) => Some(&f.name),
        _ => None,
    }
}

fn fixed_size(schema: &Schema) -> usize {
    match schema {
        Schema::Fixed(f) | Schema::Duration(f) => f.size,
        Schema::Decimal(decimal) => match &decimal.inner {
            apache_avro::schema::InnerDecimalSchema::Fixed(f) => f.size,
            apache_avro::schema::InnerDecimalSchema::Bytes => 0,
        },
        Schema::Uuid(_) => 16,
        _ => 0,
    }
}

/// The value of a field default (JSON) under the field's schema; for a union, the first branch.
fn default_value(schema: &Schema, json: &serde_json::Value, names: &HashMap<Name, &Schema>) -> Option<Val<'static>> {
    use serde_json::Value as J;
    let schema = match schema {
        Schema::Ref { name } => names.get(name).copied()?,
        other => other,
    };
    Some(match (kind(schema), json) {
        (Kind::Union, _) => {
            let Schema::Union(union) = schema else { return None };
            Val::Union(0, Box::new(default_value(union.variants().first()?, json, names)?))
        }
        (Kind::Null, J::Null) => Val::Null,
        (Kind::Bool, J::Bool(b)) => Val::Bool(*b),
        (Kind::Int | Kind::Long, J::Number(n)) => Val::Long(n.as_i64()?),
        (Kind::Float | Kind::Double, J::Number(n)) => Val::Double(n.as_f64()?),
        (Kind::Str, J::String(s)) => Val::Str(s.clone().into()),
        (Kind::Bytes | Kind::Fixed, J::String(s)) => Val::Bytes(
            s.chars()
                .map(|c| u8::try_from(c).unwrap_or(b'?'))
                .collect::<Vec<u8>>()
                .into(),
        ),
        (Kind::Enum, J::String(s)) => {
            let Schema::Enum(e) = schema else { return None };
            Val::Enum(u32::try_from(e.symbols.iter().position(|sym| sym == s)?).ok()?)
        }
        (Kind::Array, J::Array(items)) => {
            let Schema::Array(a) = schema else { return None };
            Val::Array(
                items
                    .iter()
                    .map(|i| default_value(&a.items, i, names))
                    .collect::<Option<_>>()?,
            )
        }
        (Kind::Map, J::Object(entries)) => {
            let Schema::Map(m) = schema else { return None };
            Val::Map(
                entries
                    .iter()
                    .map(|(k, v)| Some((k.clone().into(), default_value(&m.types, v, names)?)))
                    .collect::<Option<_>>()?,
            )
        }
        (Kind::Record, J::Object(entries)) => {
            let Schema::Record(r) = schema else { return None };
            Val::Record(
                r.fields
                    .iter()
                    .map(|f| match entries.get(&f.name).or(f.default.as_ref()) {
                        Some(v) => default_value(&f.schema, v, names),
                        None => None,
                    })
                    .collect::<Option<_>>()?,
            )
        }
        _ => return None,
    })
}

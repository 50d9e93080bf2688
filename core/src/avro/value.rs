use std::borrow::Cow;

/// A decoded Avro value shaped by the reader schema: records hold their fields in the reader's
/// order (no field names), strings and bytes borrow from the input when they can.
#[derive(Debug, Clone, PartialEq)]
pub enum Val<'a> {
    Null,
    Bool(bool),
    /// `int` and `long` (and the logical types built on them).
    Long(i64),
    /// `float` and `double`.
    Double(f64),
    Str(Cow<'a, str>),
    Bytes(Cow<'a, [u8]>),
    /// Index into the reader enum's symbols.
    Enum(u32),
    Array(Vec<Val<'a>>),
    Map(Vec<(Cow<'a, str>, Val<'a>)>),
    /// Fields in the reader schema's order. A record read with `capture_unknown` has one more
    /// element: a `Map` of the writer fields the reader does not know, rendered as values.
    Record(Vec<Val<'a>>),
    /// Index of the reader union's branch, and the value.
    Union(u32, Box<Val<'a>>),
}

impl Val<'_> {
    /// Converts to a value that owns its data, for defaults kept in a plan.
    pub fn into_owned(self) -> Val<'static> {
        match self {
            Val::Null => Val::Null,
            Val::Bool(b) => Val::Bool(b),
            Val::Long(n) => Val::Long(n),
            Val::Double(d) => Val::Double(d),
            Val::Str(s) => Val::Str(Cow::Owned(s.into_owned())),
            Val::Bytes(b) => Val::Bytes(Cow::Owned(b.into_owned())),
            Val::Enum(i) => Val::Enum(i),
            Val::Array(items) => Val::Array(items.into_iter().map(Val::into_owned).collect()),
            Val::Map(entries) => Val::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| (Cow::Owned(k.into_owned()), v.into_owned()))
                    .collect(),
            ),
            Val::Record(fields) => Val::Record(fields.into_iter().map(Val::into_owned).collect()),
            Val::Union(i, v) => Val::Union(i, Box::new(v.into_owned())),
        }
    }

    /// A compact JSON-like rendering, used to keep fields that the reader does not know.
    pub fn render(&self) -> String {
        match self {
            Val::Null => "null".to_owned(),
            Val::Bool(b) => b.to_string(),
            Val::Long(n) => n.to_string(),
            Val::Double(d) => d.to_string(),
            Val::Str(s) => serde_json::Value::String(s.to_string()).to_string(),
            Val::Bytes(b) => serde_json::Value::String(String::from_utf8_lossy(b).into_owned()).to_string(),
            Val::Enum(i) => format!("#{i}"),
            Val::Array(items) => format!("[{}]", items.iter().map(Val::render).collect::<Vec<_>>().join(",")),
            Val::Map(entries) => format!(
                "{{{}}}",
                entries
                    .iter()
                    .map(|(k, v)| format!("{}:{}", serde_json::Value::String(k.to_string()), v.render()))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            Val::Record(fields) => format!("[{}]", fields.iter().map(Val::render).collect::<Vec<_>>().join(",")),
            Val::Union(_, v) => v.render(),
        }
    }
}

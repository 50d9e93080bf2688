//! Compatibility levels and the check between a new schema and the versions already registered.

use std::fmt;
use std::str::FromStr;

use apache_avro::Schema;
use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};
use serde::{Deserialize, Serialize};

/// Confluent's compatibility levels, with the same names on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CompatibilityLevel {
    None,
    Backward,
    #[default]
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl CompatibilityLevel {
    pub const ALL: [Self; 7] = [
        Self::None,
        Self::Backward,
        Self::BackwardTransitive,
        Self::Forward,
        Self::ForwardTransitive,
        Self::Full,
        Self::FullTransitive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Backward => "BACKWARD",
            Self::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Self::Forward => "FORWARD",
            Self::ForwardTransitive => "FORWARD_TRANSITIVE",
            Self::Full => "FULL",
            Self::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    /// Whether every earlier version is checked, not only the latest.
    pub fn is_transitive(self) -> bool {
        matches!(
            self,
            Self::BackwardTransitive | Self::ForwardTransitive | Self::FullTransitive
        )
    }

    fn checks_backward(self) -> bool {
        matches!(
            self,
            Self::Backward | Self::BackwardTransitive | Self::Full | Self::FullTransitive
        )
    }

    fn checks_forward(self) -> bool {
        matches!(
            self,
            Self::Forward | Self::ForwardTransitive | Self::Full | Self::FullTransitive
        )
    }
}

impl fmt::Display for CompatibilityLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CompatibilityLevel {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        Self::ALL
            .into_iter()
            .find(|level| level.as_str().eq_ignore_ascii_case(text.trim()))
            .ok_or(())
    }
}

/// An earlier version the new schema is checked against.
#[derive(Debug, Clone, Copy)]
pub struct EarlierVersion<'a> {
    pub version: u32,
    pub schema: &'a Schema,
}

/// Checks `new` against `earlier` (oldest first) under `level`, returning one message per
/// incompatibility. Non-transitive levels only look at the latest earlier version.
pub fn check(level: CompatibilityLevel, new: &Schema, earlier: &[EarlierVersion<'_>]) -> Vec<String> {
    let against: &[EarlierVersion<'_>] = if level.is_transitive() {
        earlier
    } else {
        earlier.last().map(std::slice::from_ref).unwrap_or_default()
    };
    let mut messages = Vec::new();
    for old in against {
        if level.checks_backward()
            && let Some(reason) = incompatibility(old.schema, new)
        {
            messages.push(format!(
                "the new schema cannot read data written with version {}: {reason}",
                old.version
            ));
        }
        if level.checks_forward()
            && let Some(reason) = incompatibility(new, old.schema)
        {
            messages.push(format!(
                "version {} cannot read data written with the new schema: {reason}",
                old.version
            ));
        }
    }
    messages
}

/// Why data written with `writer` may fail to decode with `reader`, if it may.
///
/// A partial match (an enum or union that covers only some of the writer's symbols or branches)
/// counts as incompatible, as in Confluent's registry: some records would fail to decode.
fn incompatibility(writer: &Schema, reader: &Schema) -> Option<String> {
    match SchemaCompatibility::can_read(writer, reader) {
        Ok(Compatibility::Full) => None,
        Ok(Compatibility::Partial) => Some(
            "an enum lacks some of the writer's symbols or a union lacks some of its branches, \
             so some records would fail to decode"
                .to_owned(),
        ),
        Err(error) => Some(error_chain(&error)),
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(fields: &str) -> Schema {
        Schema::parse_str(&format!(r#"{{"type":"record","name":"Event","fields":[{fields}]}}"#))
            .expect("test schema parses")
    }

    #[test]
    fn adding_an_optional_field_is_backward_compatible() {
        let v1 = schema(r#"{"name":"id","type":"string"}"#);
        let v2 = schema(r#"{"name":"id","type":"string"},{"name":"note","type":["null","string"],"default":null}"#);
        let earlier = [EarlierVersion {
            version: 1,
            schema: &v1,
        }];
        assert!(check(CompatibilityLevel::BackwardTransitive, &v2, &earlier).is_empty());
        assert!(check(CompatibilityLevel::FullTransitive, &v2, &earlier).is_empty());
    }

    #[test]
    fn adding_a_required_field_names_the_field() {
        let v1 = schema(r#"{"name":"id","type":"string"}"#);
        let v2 = schema(r#"{"name":"id","type":"string"},{"name":"email","type":"string"}"#);
        let messages = check(
            CompatibilityLevel::Backward,
            &v2,
            &[EarlierVersion {
                version: 1,
                schema: &v1,
            }],
        );
        assert_eq!(messages.len(), 1);
        assert!(messages[0].contains("'email'"), "{messages:?}");
        assert!(messages[0].contains("version 1"), "{messages:?}");
        // Forward compatibility does not care: old readers ignore the new field.
        assert!(
            check(
                CompatibilityLevel::Forward,
                &v2,
                &[EarlierVersion {
                    version: 1,
                    schema: &v1
                }]
            )
            .is_empty()
        );
    }

    #[test]
    fn changing_a_type_names_the_field() {
        let v1 = schema(r#"{"name":"amount","type":"long"}"#);
        let v2 = schema(r#"{"name":"amount","type":"string"}"#);
        let messages = check(
            CompatibilityLevel::Backward,
            &v2,
            &[EarlierVersion {
                version: 1,
                schema: &v1,
            }],
        );
        assert!(messages.iter().any(|m| m.contains("'amount'")), "{messages:?}");
    }

    #[test]
    fn transitive_levels_check_every_earlier_version() {
        let v1 = schema(r#"{"name":"id","type":"string"}"#);
        let v2 = schema(r#"{"name":"id","type":"string"},{"name":"a","type":"int","default":0}"#);
        // Drops the default of `a`: still readable against v2 (which has `a`), not against v1.
        let v3 = schema(r#"{"name":"id","type":"string"},{"name":"a","type":"int"}"#);
        let earlier = [
            EarlierVersion {
                version: 1,
                schema: &v1,
            },
            EarlierVersion {
                version: 2,
                schema: &v2,
            },
        ];
        assert!(check(CompatibilityLevel::Backward, &v3, &earlier).is_empty());
        let messages = check(CompatibilityLevel::BackwardTransitive, &v3, &earlier);
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(messages[0].contains("version 1"));
        assert!(check(CompatibilityLevel::None, &v3, &earlier).is_empty());
    }

    #[test]
    fn levels_parse_case_insensitively() {
        assert_eq!(
            "backward_transitive".parse(),
            Ok(CompatibilityLevel::BackwardTransitive)
        );
        assert_eq!(" FULL ".parse(), Ok(CompatibilityLevel::Full));
        assert_eq!("sideways".parse::<CompatibilityLevel>(), Err(()));
    }
}

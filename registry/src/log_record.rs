//! The records of the registry's Kafka log, shaped like Confluent's `_schemas` topic.

use serde::{Deserialize, Serialize};

use crate::CompatibilityLevel;

/// The key of a log record; compaction keeps the last value per key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "keytype", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LogKey {
    Schema {
        subject: String,
        version: u32,
        magic: u8,
    },
    Config {
        subject: Option<String>,
        magic: u8,
    },
    /// Written by Confluent's registry for leader election; carries no state.
    Noop {
        #[serde(default)]
        magic: u8,
    },
}

impl LogKey {
    pub fn schema(subject: &str, version: u32) -> Self {
        Self::Schema {
            subject: subject.to_owned(),
            version,
            magic: 1,
        }
    }

    pub fn config(subject: Option<&str>) -> Self {
        Self::Config {
            subject: subject.map(str::to_owned),
            magic: 0,
        }
    }
}

/// The value of a `SCHEMA` record: one version of a subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaValue {
    pub subject: String,
    pub version: u32,
    pub id: u32,
    pub schema: String,
    #[serde(default)]
    pub deleted: bool,
}

/// The value of a `CONFIG` record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigValue {
    #[serde(rename = "compatibilityLevel")]
    pub compatibility_level: CompatibilityLevel,
}

/// A change to append to the log: a key and its new value, `None` deleting the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEntry {
    Schema(LogKey, Option<SchemaValue>),
    Config(LogKey, Option<ConfigValue>),
}

impl LogEntry {
    pub fn key(&self) -> &LogKey {
        match self {
            Self::Schema(key, _) | Self::Config(key, _) => key,
        }
    }

    pub fn encode(&self) -> (Vec<u8>, Option<Vec<u8>>) {
        let key = serde_json::to_vec(self.key()).expect("log keys serialize");
        let value = match self {
            Self::Schema(_, value) => value
                .as_ref()
                .map(|v| serde_json::to_vec(v).expect("schema values serialize")),
            Self::Config(_, value) => value
                .as_ref()
                .map(|v| serde_json::to_vec(v).expect("config values serialize")),
        };
        (key, value)
    }

    /// Decodes a record read back from the log; `None` for records that carry no state.
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Option<Self>, serde_json::Error> {
        let key: LogKey = serde_json::from_slice(key)?;
        Ok(match key {
            LogKey::Schema { .. } => Some(Self::Schema(key, value.map(serde_json::from_slice).transpose()?)),
            LogKey::Config { .. } => Some(Self::Config(key, value.map(serde_json::from_slice).transpose()?)),
            LogKey::Noop { .. } => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_match_confluents_layout() {
        let entry = LogEntry::Schema(
            LogKey::schema("audit-value", 2),
            Some(SchemaValue {
                subject: "audit-value".into(),
                version: 2,
                id: 7,
                schema: "\"string\"".into(),
                deleted: false,
            }),
        );
        let (key, value) = entry.encode();
        assert_eq!(
            String::from_utf8(key.clone()).expect("utf-8"),
            r#"{"keytype":"SCHEMA","subject":"audit-value","version":2,"magic":1}"#
        );
        let decoded = LogEntry::decode(&key, value.as_deref()).expect("decodes");
        assert_eq!(decoded, Some(entry));

        let config = LogEntry::Config(
            LogKey::config(None),
            Some(ConfigValue {
                compatibility_level: CompatibilityLevel::Full,
            }),
        );
        let (key, value) = config.encode();
        assert_eq!(
            String::from_utf8(value.clone().expect("value")).expect("utf-8"),
            r#"{"compatibilityLevel":"FULL"}"#
        );
        assert_eq!(LogEntry::decode(&key, value.as_deref()).expect("decodes"), Some(config));
        assert_eq!(
            LogEntry::decode(br#"{"keytype":"NOOP","magic":0}"#, None).expect("decodes"),
            None
        );
    }
}

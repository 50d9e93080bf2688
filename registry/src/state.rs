//! The registry's state, rebuilt from its log, and the decisions made on it.
//!
//! Nothing here does I/O: a write is planned as [`LogEntry`]s, appended to the log by the service,
//! then applied with [`RegistryState::apply`], the same function that replays the log at start.

use std::collections::{BTreeMap, HashMap};

use apache_avro::Schema;

use crate::RegistryError;
use crate::compatibility::{self, CompatibilityLevel, EarlierVersion};
use crate::log_record::{ConfigValue, LogEntry, LogKey, SchemaValue};

/// A schema submitted by a client, validated and in the form used to recognise it again.
#[derive(Debug, Clone)]
pub struct CandidateSchema {
    /// Compact JSON with object keys sorted: two submissions that differ only in whitespace or key
    /// order are the same schema and get the same id.
    pub text: String,
    pub schema: Schema,
}

impl CandidateSchema {
    pub fn parse(raw: &str) -> Result<Self, RegistryError> {
        let json: serde_json::Value =
            serde_json::from_str(raw).map_err(|error| RegistryError::InvalidSchema(error.to_string()))?;
        let schema = Schema::parse(&json).map_err(|error| RegistryError::InvalidSchema(error.to_string()))?;
        Ok(Self {
            text: sorted_json(&json),
            schema,
        })
    }
}

fn sorted_json(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<(&String, &serde_json::Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let body: Vec<String> = entries
                .into_iter()
                .map(|(key, value)| format!("{}:{}", serde_json::Value::String(key.clone()), sorted_json(value)))
                .collect();
            format!("{{{}}}", body.join(","))
        }
        serde_json::Value::Array(items) => {
            let body: Vec<String> = items.iter().map(sorted_json).collect();
            format!("[{}]", body.join(","))
        }
        scalar => scalar.to_string(),
    }
}

/// Which version of a subject a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionRef {
    Latest,
    Number(u32),
}

impl VersionRef {
    pub fn parse(text: &str) -> Result<Self, RegistryError> {
        if text == "latest" || text == "-1" {
            return Ok(Self::Latest);
        }
        match text.parse::<u32>() {
            Ok(number) if (1..=i32::MAX.unsigned_abs()).contains(&number) => Ok(Self::Number(number)),
            _ => Err(RegistryError::InvalidVersion(text.to_owned())),
        }
    }
}

/// One registered version of a subject, as answered to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredVersion {
    pub subject: String,
    pub version: u32,
    pub id: u32,
    pub schema: String,
    pub deleted: bool,
}

/// The outcome of a registration request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    /// The subject already has this schema: nothing to write.
    Existing { id: u32, version: u32 },
    /// A new version to append to the log.
    New { id: u32, version: u32, entry: LogEntry },
}

#[derive(Debug, Clone, Copy)]
struct SubjectVersion {
    version: u32,
    id: u32,
    deleted: bool,
}

#[derive(Debug)]
struct StoredSchema {
    text: String,
    schema: Schema,
}

/// Everything the registry knows, rebuilt by applying its log in order.
#[derive(Debug, Default)]
pub struct RegistryState {
    schemas: BTreeMap<u32, StoredSchema>,
    ids_by_text: HashMap<String, u32>,
    subjects: BTreeMap<String, Vec<SubjectVersion>>,
    global_level: CompatibilityLevel,
    subject_levels: BTreeMap<String, CompatibilityLevel>,
}

impl RegistryState {
    /// Applies one log entry. Fails only when a stored schema no longer parses, which means the
    /// log was written by something else or is corrupt.
    pub fn apply(&mut self, entry: &LogEntry) -> Result<(), String> {
        match entry {
            LogEntry::Schema(LogKey::Schema { subject, version, .. }, value) => {
                let versions = self.subjects.entry(subject.clone()).or_default();
                versions.retain(|v| v.version != *version);
                if let Some(value) = value {
                    if !self.schemas.contains_key(&value.id) {
                        let candidate = CandidateSchema::parse(&value.schema)
                            .map_err(|error| format!("schema id {} does not parse: {error}", value.id))?;
                        self.ids_by_text.insert(candidate.text.clone(), value.id);
                        self.schemas.insert(
                            value.id,
                            StoredSchema {
                                text: candidate.text,
                                schema: candidate.schema,
                            },
                        );
                    }
                    versions.push(SubjectVersion {
                        version: *version,
                        id: value.id,
                        deleted: value.deleted,
                    });
                    versions.sort_by_key(|v| v.version);
                }
                if versions.is_empty() {
                    self.subjects.remove(subject);
                }
            }
            LogEntry::Config(LogKey::Config { subject, .. }, value) => {
                let level = value.map(|v| v.compatibility_level);
                match (subject, level) {
                    (None, Some(level)) => self.global_level = level,
                    (None, None) => self.global_level = CompatibilityLevel::default(),
                    (Some(subject), Some(level)) => {
                        self.subject_levels.insert(subject.clone(), level);
                    }
                    (Some(subject), None) => {
                        self.subject_levels.remove(subject);
                    }
                }
            }
            LogEntry::Schema(..) | LogEntry::Config(..) => {
                return Err(format!("log entry with a mismatched key: {:?}", entry.key()));
            }
        }
        Ok(())
    }

    pub fn global_level(&self) -> CompatibilityLevel {
        self.global_level
    }

    pub fn subject_level(&self, subject: &str) -> Option<CompatibilityLevel> {
        self.subject_levels.get(subject).copied()
    }

    pub fn effective_level(&self, subject: &str) -> CompatibilityLevel {
        self.subject_level(subject).unwrap_or(self.global_level)
    }

    pub fn subjects(&self, include_deleted: bool) -> Vec<String> {
        self.subjects
            .iter()
            .filter(|(_, versions)| include_deleted || versions.iter().any(|v| !v.deleted))
            .map(|(subject, _)| subject.clone())
            .collect()
    }

    pub fn versions(&self, subject: &str, include_deleted: bool) -> Result<Vec<u32>, RegistryError> {
        let versions: Vec<u32> = self.live_or_all(subject, include_deleted).map(|v| v.version).collect();
        if versions.is_empty() {
            return Err(RegistryError::SubjectNotFound(subject.to_owned()));
        }
        Ok(versions)
    }

    pub fn version(
        &self,
        subject: &str,
        version: VersionRef,
        include_deleted: bool,
    ) -> Result<RegisteredVersion, RegistryError> {
        let found = self.find_version(subject, version, include_deleted)?;
        Ok(self.registered(subject, found))
    }

    pub fn schema_by_id(&self, id: u32) -> Result<&str, RegistryError> {
        self.schemas
            .get(&id)
            .map(|stored| stored.text.as_str())
            .ok_or_else(|| RegistryError::SchemaNotFound(id.to_string()))
    }

    /// The subject/version pairs that use schema `id`.
    pub fn usages_of(&self, id: u32, include_deleted: bool) -> Result<Vec<(String, u32)>, RegistryError> {
        self.schema_by_id(id)?;
        Ok(self
            .subjects
            .iter()
            .flat_map(|(subject, versions)| {
                versions
                    .iter()
                    .filter(move |v| v.id == id && (include_deleted || !v.deleted))
                    .map(move |v| (subject.clone(), v.version))
            })
            .collect())
    }

    /// Finds the version of `subject` that holds `candidate`.
    pub fn lookup(
        &self,
        subject: &str,
        candidate: &CandidateSchema,
        include_deleted: bool,
    ) -> Result<RegisteredVersion, RegistryError> {
        if self.live_or_all(subject, include_deleted).next().is_none() {
            return Err(RegistryError::SubjectNotFound(subject.to_owned()));
        }
        let id = self.ids_by_text.get(&candidate.text).copied();
        self.live_or_all(subject, include_deleted)
            .filter(|v| Some(v.id) == id)
            .last()
            .map(|found| self.registered(subject, found))
            .ok_or_else(|| RegistryError::SchemaNotFound(format!("not registered under subject '{subject}'")))
    }

    /// Decides what registering `candidate` under `subject` means.
    pub fn plan_register(&self, subject: &str, candidate: &CandidateSchema) -> Result<Registration, RegistryError> {
        let known_id = self.ids_by_text.get(&candidate.text).copied();
        if let Some(existing) = self.live_or_all(subject, false).find(|v| Some(v.id) == known_id) {
            return Ok(Registration::Existing {
                id: existing.id,
                version: existing.version,
            });
        }
        let messages = self.incompatibilities(subject, candidate, None)?;
        if !messages.is_empty() {
            return Err(RegistryError::Incompatible {
                subject: subject.to_owned(),
                messages,
            });
        }
        let id = known_id.unwrap_or_else(|| self.schemas.keys().next_back().map_or(1, |max| max + 1));
        let version = self
            .subjects
            .get(subject)
            .and_then(|versions| versions.last())
            .map_or(1, |latest| latest.version + 1);
        let entry = LogEntry::Schema(
            LogKey::schema(subject, version),
            Some(SchemaValue {
                subject: subject.to_owned(),
                version,
                id,
                schema: candidate.text.clone(),
                deleted: false,
            }),
        );
        Ok(Registration::New { id, version, entry })
    }

    /// Why `candidate` may not be registered under `subject`: checked against one version when
    /// `against` names it, otherwise against those the subject's compatibility level requires.
    pub fn incompatibilities(
        &self,
        subject: &str,
        candidate: &CandidateSchema,
        against: Option<VersionRef>,
    ) -> Result<Vec<String>, RegistryError> {
        let level = self.effective_level(subject);
        let earlier: Vec<EarlierVersion<'_>> = match against {
            Some(version) => {
                let found = self.find_version(subject, version, false)?;
                vec![self.earlier(found)]
            }
            None => self.live_or_all(subject, false).map(|v| self.earlier(v)).collect(),
        };
        Ok(compatibility::check(level, &candidate.schema, &earlier))
    }

    /// Plans deleting a subject: soft (versions marked deleted) or, after that, permanent.
    pub fn plan_delete_subject(
        &self,
        subject: &str,
        permanent: bool,
    ) -> Result<(Vec<u32>, Vec<LogEntry>), RegistryError> {
        let versions = self
            .subjects
            .get(subject)
            .ok_or_else(|| RegistryError::SubjectNotFound(subject.to_owned()))?;
        let live: Vec<&SubjectVersion> = versions.iter().filter(|v| !v.deleted).collect();
        if permanent {
            if !live.is_empty() {
                return Err(RegistryError::SubjectNotSoftDeleted(subject.to_owned()));
            }
            let entries = versions
                .iter()
                .map(|v| LogEntry::Schema(LogKey::schema(subject, v.version), None))
                .collect();
            return Ok((versions.iter().map(|v| v.version).collect(), entries));
        }
        if live.is_empty() {
            return Err(RegistryError::SubjectSoftDeleted(subject.to_owned()));
        }
        let entries = live.iter().map(|v| self.soft_deletion(subject, v)).collect();
        Ok((live.iter().map(|v| v.version).collect(), entries))
    }

    /// Plans deleting one version: soft or, after that, permanent.
    pub fn plan_delete_version(
        &self,
        subject: &str,
        version: VersionRef,
        permanent: bool,
    ) -> Result<(u32, LogEntry), RegistryError> {
        let include_deleted = permanent || matches!(version, VersionRef::Number(_));
        let found = self.find_version(subject, version, include_deleted)?;
        if !permanent && found.deleted {
            return Err(RegistryError::VersionSoftDeleted {
                subject: subject.to_owned(),
                version: found.version,
            });
        }
        if permanent {
            if !found.deleted {
                return Err(RegistryError::VersionNotSoftDeleted {
                    subject: subject.to_owned(),
                    version: found.version,
                });
            }
            return Ok((
                found.version,
                LogEntry::Schema(LogKey::schema(subject, found.version), None),
            ));
        }
        Ok((found.version, self.soft_deletion(subject, found)))
    }

    pub fn plan_set_level(subject: Option<&str>, level: CompatibilityLevel) -> LogEntry {
        LogEntry::Config(
            LogKey::config(subject),
            Some(ConfigValue {
                compatibility_level: level,
            }),
        )
    }

    pub fn plan_delete_subject_level(&self, subject: &str) -> Result<(CompatibilityLevel, LogEntry), RegistryError> {
        let level = self
            .subject_level(subject)
            .ok_or_else(|| RegistryError::SubjectConfigNotFound(subject.to_owned()))?;
        Ok((level, LogEntry::Config(LogKey::config(Some(subject)), None)))
    }

    fn live_or_all<'a>(&'a self, subject: &str, include_deleted: bool) -> impl Iterator<Item = &'a SubjectVersion> {
        self.subjects
            .get(subject)
            .into_iter()
            .flatten()
            .filter(move |v| include_deleted || !v.deleted)
    }

    fn find_version(
        &self,
        subject: &str,
        version: VersionRef,
        include_deleted: bool,
    ) -> Result<&SubjectVersion, RegistryError> {
        if self.live_or_all(subject, include_deleted).next().is_none() {
            return Err(RegistryError::SubjectNotFound(subject.to_owned()));
        }
        let found = match version {
            VersionRef::Latest => self.live_or_all(subject, include_deleted).last(),
            VersionRef::Number(number) => self.live_or_all(subject, include_deleted).find(|v| v.version == number),
        };
        found.ok_or_else(|| RegistryError::VersionNotFound {
            version: match version {
                VersionRef::Latest => "latest".to_owned(),
                VersionRef::Number(number) => number.to_string(),
            },
        })
    }

    fn soft_deletion(&self, subject: &str, version: &SubjectVersion) -> LogEntry {
        LogEntry::Schema(
            LogKey::schema(subject, version.version),
            Some(SchemaValue {
                subject: subject.to_owned(),
                version: version.version,
                id: version.id,
                schema: self.schemas[&version.id].text.clone(),
                deleted: true,
            }),
        )
    }

    fn earlier(&self, version: &SubjectVersion) -> EarlierVersion<'_> {
        EarlierVersion {
            version: version.version,
            schema: &self.schemas[&version.id].schema,
        }
    }

    fn registered(&self, subject: &str, version: &SubjectVersion) -> RegisteredVersion {
        RegisteredVersion {
            subject: subject.to_owned(),
            version: version.version,
            id: version.id,
            schema: self.schemas[&version.id].text.clone(),
            deleted: version.deleted,
        }
    }
}

//! The schema registry as services use it: fetching writer schemas by id and registering their
//! own, with the readers built from them cached per schema id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use apache_avro::Schema;
use schema_registry_converter::async_impl::schema_registry::{SrSettings, get_schema_by_id, post_schema};

use crate::RegistryConnection;
use schema_registry_converter::schema_registry_common::{SchemaType, SuppliedSchema};
use sealtrail_core::avro::contract::{EventReader, sealed_record_from_val, sealed_record_schema};
use sealtrail_core::avro::{Framed, Plan, compile, decode_all};
use sealtrail_core::sealed::SealedRecord;
use tokio::runtime::Handle;

/// A blocking client of a Confluent-compatible registry, for processors running on their own
/// threads (it drives the async client on the given runtime).
#[derive(Clone)]
pub struct RegistryClient {
    url: String,
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Remote {
        settings: SrSettings,
        runtime: Handle,
    },
    /// Schemas registered in this process only, as (subject, schema); the id is the position + 1.
    Memory(Arc<Mutex<Vec<(String, String)>>>),
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// What a schema id means for the audit event contract.
#[derive(Debug, Clone)]
pub enum SchemaVerdict {
    Readable(Arc<EventReader>),
    /// The registry does not know the id.
    Unknown,
    /// The schema cannot be read as the contract; why.
    Incompatible(String),
}

impl RegistryClient {
    /// Must not be called from inside `runtime`'s worker threads (it blocks on it); fails when
    /// the connection's CA cannot be read.
    pub fn new(connection: &RegistryConnection, runtime: Handle) -> Result<Self, String> {
        Ok(Self {
            url: connection.url.clone(),
            backend: Backend::Remote {
                settings: connection.sr_settings()?,
                runtime,
            },
        })
    }

    /// A registry that lives in this process, for processors run without any server (unit tests).
    pub fn in_memory() -> Self {
        Self {
            url: "memory:".to_owned(),
            backend: Backend::Memory(Arc::default()),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The schema registered under `id`: `Ok(None)` when the registry does not know it, `Err`
    /// when the registry cannot be asked (worth retrying).
    pub fn schema(&self, id: u32) -> Result<Option<String>, String> {
        let (settings, runtime) = match &self.backend {
            Backend::Remote { settings, runtime } => (settings, runtime),
            Backend::Memory(schemas) => {
                let schemas = schemas.lock().unwrap_or_else(PoisonError::into_inner);
                let index = usize::try_from(id).ok().and_then(|id| id.checked_sub(1));
                return Ok(index
                    .and_then(|index| schemas.get(index))
                    .map(|(_, schema)| schema.clone()));
            }
        };
        match runtime.block_on(get_schema_by_id(id, settings)) {
            Ok(registered) => Ok(Some(registered.schema)),
            // The client reports a 404 (Confluent's 40403) only in its message.
            Err(error) if error.error.contains("status 404") => Ok(None),
            Err(error) => Err(format!("schema registry at {}: {error}", self.url)),
        }
    }

    /// Registers `schema` under `subject` (or finds it registered) and returns its id.
    pub fn register(&self, subject: &str, record_name: Option<&str>, schema: &str) -> Result<u32, String> {
        let (settings, runtime) = match &self.backend {
            Backend::Remote { settings, runtime } => (settings, runtime),
            Backend::Memory(schemas) => {
                let mut schemas = schemas.lock().unwrap_or_else(PoisonError::into_inner);
                let entry = (subject.to_owned(), schema.to_owned());
                let index = schemas.iter().position(|known| *known == entry).unwrap_or_else(|| {
                    schemas.push(entry);
                    schemas.len() - 1
                });
                return u32::try_from(index + 1).map_err(|_| "the memory registry is full".to_owned());
            }
        };
        let supplied = SuppliedSchema::new(record_name.map(str::to_owned), SchemaType::Avro, schema.to_owned());
        runtime
            .block_on(post_schema(settings, subject.to_owned(), supplied))
            .map(|registered| registered.id)
            .map_err(|error| format!("cannot register {subject} at {}: {error}", self.url))
    }

    /// The verdict for a writer schema id of the raw topic, fetched once and cached; an unknown id
    /// is asked again next time, so a schema registered late (then its records replayed from the
    /// DLQ) is found.
    pub fn event_reader(&self, cache: &mut HashMap<u32, SchemaVerdict>, id: u32) -> Result<SchemaVerdict, String> {
        if let Some(verdict) = cache.get(&id) {
            return Ok(verdict.clone());
        }
        let verdict = match self.schema(id)? {
            None => SchemaVerdict::Unknown,
            Some(text) => match Schema::parse_str(&text) {
                Err(error) => SchemaVerdict::Incompatible(format!("the registered schema does not parse: {error}")),
                Ok(writer) => match EventReader::for_writer(&writer) {
                    Ok(reader) => SchemaVerdict::Readable(Arc::new(reader)),
                    Err(error) => SchemaVerdict::Incompatible(error.to_string()),
                },
            },
        };
        if !matches!(verdict, SchemaVerdict::Unknown) {
            cache.insert(id, verdict.clone());
        }
        Ok(verdict)
    }
}

/// Decodes records of the sealed topic, whatever version of its schema wrote them.
#[derive(Debug)]
pub struct SealedReaders {
    registry: RegistryClient,
    plans: HashMap<u32, Arc<Plan>>,
}

impl SealedReaders {
    pub fn new(registry: RegistryClient) -> Self {
        Self {
            registry,
            plans: HashMap::new(),
        }
    }

    /// Decodes one Confluent-framed sealed record.
    pub fn decode(&mut self, bytes: &[u8]) -> Result<SealedRecord, String> {
        let framed = Framed::parse(bytes).map_err(|e| e.to_string())?;
        let plan = if let Some(plan) = self.plans.get(&framed.schema_id) {
            Arc::clone(plan)
        } else {
            let text = self.registry.schema(framed.schema_id)?.ok_or_else(|| {
                format!(
                    "schema id {} of a sealed record is not in the registry",
                    framed.schema_id
                )
            })?;
            let writer = Schema::parse_str(&text)
                .map_err(|e| format!("sealed schema {} does not parse: {e}", framed.schema_id))?;
            let plan = Arc::new(compile(&writer, sealed_record_schema(), false).map_err(|e| e.to_string())?);
            self.plans.insert(framed.schema_id, Arc::clone(&plan));
            plan
        };
        let value = decode_all(&plan, framed.body).map_err(|e| e.to_string())?;
        sealed_record_from_val(value).map_err(|e| e.to_string())
    }
}

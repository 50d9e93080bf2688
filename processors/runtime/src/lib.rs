//! What every sealtrail service needs at run time, whatever it talks to: its keys, the schema
//! registry and the decoders built from it, a stop signal, and the telemetry every component
//! reports (events in and out, errors, lag).

mod blocking;
pub mod driver;
pub mod keys;
pub mod log;
mod metrics;
mod registry;
mod registry_connection;
mod stop;
pub mod telemetry;

pub use blocking::{BlockingError, run_blocking};
pub use metrics::{AssuranceMetrics, AuditStage, Metrics};
pub use registry::{RegistryClient, SchemaVerdict, SealedReaders};
pub use registry_connection::{BasicCredentials, RegistryConnection};
pub use stop::{StopSignal, termination};
pub use telemetry::Telemetry;

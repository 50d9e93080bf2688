//! The local stack: everything `sealtrail up` and the test harness need to run sealtrail's real
//! dependencies on one machine without Docker: installing Tansu and the ClickHouse engine when
//! missing, and starting, watching and stopping them on loopback.

mod clickhouse_access;
pub mod clickhouse_engine;
mod data_dir;
mod endpoint_clients;
mod error;
mod install;
mod ports;
mod private_file;
mod process;
mod services;
mod stack_security;
mod supervisor;
mod tls;
mod tls_proxy;

pub use clickhouse_access::{ADMIN_USER, EngineAccess, prepare_engine_access};
pub use data_dir::{DataDir, DataDirLock, Endpoints};
pub use error::LocalError;
pub use install::{
    CacheDir, Installed, ensure_browser, ensure_clickhouse_engine, ensure_node, ensure_python_interop, ensure_tansu,
};
pub use ports::{PortChoice, PortOverrides, StackPorts};
pub use private_file::{stored_or_new_secret, write_private};
pub use process::{ManagedProcess, stop_leftovers};
pub use services::{Served, admin_settings, start_broker, start_clickhouse, start_secured_broker};
pub use stack_security::{SCRAM_MECHANISM, StackIdentity, StackSecurity};
pub use supervisor::SupervisedProcessor;
pub use tls::LocalCa;
pub use tls_proxy::TlsFront;

pub mod clickhouse_server;
pub mod down;
pub mod migrate;
pub mod registry;
pub mod setup;
pub mod status;
pub mod up;

//! Integration tests against real components: Tansu, the ClickHouse engine and sealtrail's own
//! schema registry, started by `sealtrail up` on free ports (see `harness`).

mod api;
mod backlog;
mod bench_export;
mod clickhouse_roundtrip;
mod compose;
mod console;
mod dlq;
mod durability;
mod harness;
mod idempotent_producer;
mod instances;
mod integrity;
mod interop;
mod kafka_oauth;
mod kafka_roundtrip;
mod misconfiguration;
mod monitor;
mod offsets;
mod outbox;
mod pipeline;
mod placement;
mod registry;
mod replay;
mod reshard;
mod sdk;
mod secured_stack;
mod security_alerts;
mod sink_settle;
mod slo;
mod sql_fuzz;
mod telemetry;
mod witness;
mod workspace_rules;

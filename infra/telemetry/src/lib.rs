//! Telemetry shared by every hop of sealtrail. Today: W3C trace context (`traceparent`,
//! `tracestate`) carried in Kafka record headers and in HTTP request headers, so one trace follows
//! an event from its producer through the seal processor and the sink, and an API request from its
//! caller ([`trace_context`]).

pub mod trace_context;

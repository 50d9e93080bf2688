//! W3C trace context (`traceparent`, `tracestate`), carried in Kafka record headers ([`kafka`]) so
//! one trace follows an event from its producer through seal and sink, and in HTTP request headers
//! ([`http`]) so an API request continues its caller's trace.
//!
//! Records are only traced when tracing is exported ([`enable`], called by the binary when an
//! OTLP endpoint is configured) and the record carries a `traceparent`: a span per record costs
//! too much to make one for every untraced record.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::Context;
use opentelemetry::trace::TraceContextExt as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

pub mod http;
pub mod kafka;

pub use http::request_span;
pub use kafka::{HeaderPairs, inject, record_span, remote_parent, trace_headers};

pub const TRACEPARENT: &str = "traceparent";

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns per-record spans on (once an exporter is installed).
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

pub fn is_enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// `make`'s span as a child of `parent`, with its `trace_id` field filled when it declares one.
fn child_span(parent: Context, make: impl FnOnce() -> tracing::Span) -> Option<tracing::Span> {
    let span = make();
    span.set_parent(parent).ok()?;
    if let Some(id) = trace_id(&span) {
        span.record("trace_id", id.as_str());
    }
    Some(span)
}

/// The trace id of `span` (32 hex digits), for log lines; `None` when it is not traced.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then(|| span_context.trace_id().to_string())
}

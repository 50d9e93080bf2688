//! The HTTP carrier: trace context in request headers.

use opentelemetry::trace::TraceContextExt as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::{is_enabled, trace_id};

/// A span for one HTTP request, child of the caller's span when it sent a valid `traceparent`
/// (a new trace otherwise). A `trace_id` field, when `make` declares one, is filled.
pub fn request_span(
    traceparent: Option<&str>,
    tracestate: Option<&str>,
    make: impl FnOnce() -> tracing::Span,
) -> tracing::Span {
    let span = make();
    if !is_enabled() {
        return span;
    }
    let carrier: std::collections::HashMap<String, String> = [("traceparent", traceparent), ("tracestate", tracestate)]
        .into_iter()
        .filter_map(|(key, value)| Some((key.to_owned(), value?.to_owned())))
        .collect();
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| propagator.extract(&carrier));
    if parent.span().span_context().is_valid() {
        span.set_parent(parent).ok();
    }
    if let Some(id) = trace_id(&span) {
        span.record("trace_id", id.as_str());
    }
    span
}

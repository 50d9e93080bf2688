//! The Kafka carrier: trace context in record headers.

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TraceContextExt as _;
use rdkafka::message::{Header, OwnedHeaders};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::{TRACEPARENT, child_span, is_enabled};

/// A record's headers as (name, value) pairs, as every record source hands them out.
pub type HeaderPairs<'a> = [(&'a str, Option<&'a [u8]>)];

struct FromHeaders<'h, 'a>(&'h HeaderPairs<'a>);

impl Extractor for FromHeaders<'_, '_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(key))
            .and_then(|(_, value)| std::str::from_utf8((*value)?).ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(name, _)| *name).collect()
    }
}

#[derive(Default)]
struct ToHeaders(Vec<(String, String)>);

impl Injector for ToHeaders {
    fn set(&mut self, key: &str, value: String) {
        if !value.is_empty() {
            self.0.push((key.to_owned(), value));
        }
    }
}

/// The producer's context, when tracing is on and the record carries a valid `traceparent`.
pub fn remote_parent(headers: &HeaderPairs<'_>) -> Option<Context> {
    if !is_enabled() || !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case(TRACEPARENT)) {
        return None;
    }
    let context =
        opentelemetry::global::get_text_map_propagator(|propagator| propagator.extract(&FromHeaders(headers)));
    context.span().span_context().is_valid().then_some(context)
}

/// A span for one record, child of its producer's span, made by `make` only when the record is
/// traced. A `trace_id` field, when `make` declares one, is filled for the log lines.
pub fn record_span(headers: &HeaderPairs<'_>, make: impl FnOnce() -> tracing::Span) -> Option<tracing::Span> {
    child_span(remote_parent(headers)?, make)
}

/// The `traceparent` (and `tracestate`) headers of `span`, so the consumer of a record continues
/// the trace; none when tracing is off or the span is not traced.
pub fn trace_headers(span: &tracing::Span) -> Vec<(String, String)> {
    if !is_enabled() {
        return Vec::new();
    }
    let context = span.context();
    if !context.span().span_context().is_valid() {
        return Vec::new();
    }
    let mut carrier = ToHeaders::default();
    opentelemetry::global::get_text_map_propagator(|propagator| propagator.inject_context(&context, &mut carrier));
    carrier.0
}

/// `headers` plus the trace headers of `span` (see [`trace_headers`]).
pub fn inject(span: &tracing::Span, headers: OwnedHeaders) -> OwnedHeaders {
    trace_headers(span).iter().fold(headers, |headers, (key, value)| {
        headers.insert(Header {
            key: key.as_str(),
            value: Some(value.as_bytes()),
        })
    })
}

//! The Kafka carrier: trace context in record headers.

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TraceContextExt as _;
use rdkafka::message::{BorrowedHeaders, Header, Headers, OwnedHeaders};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::{TRACEPARENT, child_span, is_enabled};

struct FromHeaders<'a>(Option<&'a BorrowedHeaders>);

impl Extractor for FromHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        let headers = self.0?;
        headers
            .iter()
            .find(|header| header.key.eq_ignore_ascii_case(key))
            .and_then(|header| std::str::from_utf8(header.value?).ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .map(|headers| headers.iter().map(|header| header.key).collect())
            .unwrap_or_default()
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
pub fn remote_parent(headers: Option<&BorrowedHeaders>) -> Option<Context> {
    if !is_enabled() || headers.is_none_or(|headers| !headers.iter().any(|h| h.key.eq_ignore_ascii_case(TRACEPARENT))) {
        return None;
    }
    let context =
        opentelemetry::global::get_text_map_propagator(|propagator| propagator.extract(&FromHeaders(headers)));
    context.span().span_context().is_valid().then_some(context)
}

/// A span for one record, child of its producer's span, made by `make` only when the record is
/// traced. A `trace_id` field, when `make` declares one, is filled for the log lines.
pub fn record_span(headers: Option<&BorrowedHeaders>, make: impl FnOnce() -> tracing::Span) -> Option<tracing::Span> {
    child_span(remote_parent(headers)?, make)
}

/// `headers` plus the `traceparent` (and `tracestate`) of `span`, so the consumer of the record
/// continues the trace; unchanged when tracing is off or the span is not traced.
pub fn inject(span: &tracing::Span, headers: OwnedHeaders) -> OwnedHeaders {
    if !is_enabled() {
        return headers;
    }
    let context = span.context();
    if !context.span().span_context().is_valid() {
        return headers;
    }
    let mut carrier = ToHeaders::default();
    opentelemetry::global::get_text_map_propagator(|propagator| propagator.inject_context(&context, &mut carrier));
    carrier.0.iter().fold(headers, |headers, (key, value)| {
        headers.insert(Header {
            key: key.as_str(),
            value: Some(value.as_bytes()),
        })
    })
}

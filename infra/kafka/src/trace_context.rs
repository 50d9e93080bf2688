//! W3C trace context in Kafka headers (`traceparent`, `tracestate`), so one trace follows an
//! event from its producer through seal and sink.
//!
//! Records are only traced when tracing is exported ([`enable`], called by the binary when an
//! OTLP endpoint is configured) and the record carries a `traceparent`: a span per record costs
//! too much to make one for every untraced record.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TraceContextExt as _;
use rdkafka::message::{BorrowedHeaders, Header, Headers, OwnedHeaders};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

pub const TRACEPARENT: &str = "traceparent";

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns per-record spans on (once an exporter is installed).
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

pub fn is_enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

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

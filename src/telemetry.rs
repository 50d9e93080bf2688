//! Logs and traces of every sealtrail process.
//!
//! Logs go to stderr, as text or JSON lines (with the trace id of the record or request they
//! concern). Traces are exported over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; the other standard `OTEL_*` variables apply
//! (`OTEL_SERVICE_NAME`, `OTEL_EXPORTER_OTLP_PROTOCOL` = `http/protobuf` (default) or
//! `http/json`, `OTEL_TRACES_SAMPLER`, `OTEL_BSP_*`, headers, timeout). Only sealtrail's own
//! spans are exported, never the client libraries'.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{LevelFilter, filter_fn};
use tracing_subscriber::prelude::*;

#[derive(Debug, Clone, Copy, clap::ValueEnum, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct TelemetryArgs {
    /// Log line format on stderr; the level comes from `RUST_LOG` (default: info).
    #[arg(long, global = true, env = "SEALTRAIL_LOG_FORMAT", value_enum, default_value_t)]
    log_format: LogFormat,
}

/// Flushes the traces still buffered when dropped... which a global subscriber never is: call
/// [`Telemetry::shutdown`] at exit.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(error) = provider.shutdown()
        {
            eprintln!("warning: traces not exported at exit: {error}");
        }
    }
}

fn env_set(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.trim().is_empty())
}

/// The spec's default is protobuf; the crate would pick JSON when both are compiled in.
fn protocol() -> Protocol {
    let chosen = env_set("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").or_else(|| env_set("OTEL_EXPORTER_OTLP_PROTOCOL"));
    match chosen.as_deref().map(str::trim) {
        Some("http/json") => Protocol::HttpJson,
        _ => Protocol::HttpBinary,
    }
}

fn tracer_provider(service: &'static str) -> Result<Option<SdkTracerProvider>, String> {
    if env_set("OTEL_EXPORTER_OTLP_ENDPOINT").is_none() && env_set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_none() {
        return Ok(None);
    }
    if env_set("OTEL_SDK_DISABLED").is_some_and(|value| value.eq_ignore_ascii_case("true")) {
        return Ok(None);
    }
    let exporter = SpanExporter::builder()
        .with_http()
        .with_protocol(protocol())
        .build()
        .map_err(|error| error.to_string())?;
    let mut resource = Resource::builder();
    if env_set("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(service);
    }
    Ok(Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build(),
    ))
}

/// Installs the global subscriber (and the OTLP trace pipeline when configured). `service` names
/// the process in traces unless `OTEL_SERVICE_NAME` does.
pub fn init(args: &TelemetryArgs, service: &'static str) -> Telemetry {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let provider = tracer_provider(service).unwrap_or_else(|error| {
        eprintln!("warning: traces are not exported: the OTLP exporter cannot start: {error}");
        None
    });
    // RUST_LOG decides what is logged, not what is traced: spans at info and above, ours only.
    let traces = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("sealtrail"))
            .with_tracked_inactivity(false)
            .with_threads(false)
            .with_filter(LevelFilter::INFO)
            // Spans only: log events inside a span would become span events carrying their
            // free-text fields (a rejection's detail quotes producer values).
            .with_filter(filter_fn(|metadata| {
                metadata.is_span() && metadata.target().starts_with("sealtrail")
            }))
    });
    if provider.is_some() {
        sealtrail_telemetry::trace_context::enable();
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rdkafka=warn"));
    let logs = match args.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
    };
    tracing_subscriber::registry().with(traces).with(logs).init();
    Telemetry { provider }
}

//! Logging and trace export shared by the stampede binaries, set up in one place.
//!
//! Logs: `tracing` to stderr, plain or JSON, filtered by `RUST_LOG` (default
//! `info`), coloured only on a terminal. Traces (optional): spans with the
//! target [`SPAN_TARGET`] go through `tracing-opentelemetry` to an OTLP/gRPC
//! exporter that the standard `OTEL_*` variables configure. Only that target
//! reaches the exporter, so the exporter's own transport (h2, hyper, tonic,
//! tower) is never traced back into itself, and the log lines do not carry
//! the spans either.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The `tracing` target of every span exported as an OpenTelemetry span.
pub const SPAN_TARGET: &str = "stampede::trace";

/// Instrumentation scope of stampede's spans.
pub const TRACER: &str = "stampede";

/// Longest wait for the last spans to be exported at shutdown.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether this process exports spans (set once, by [`init_traced`]).
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Plain,
    /// One JSON object per line.
    Json,
}

/// The trace exporter could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the OTLP trace exporter (OTEL_EXPORTER_OTLP_ENDPOINT): {0}")]
pub struct TelemetryError(String);

/// Owns the trace pipeline; [`Telemetry::shutdown`] exports what is left.
#[derive(Debug, Default)]
#[must_use = "call shutdown() at the end of the run, or the last spans are lost"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Export the spans still buffered and stop the exporter, waiting at most
    /// a few seconds (an unreachable collector must not hang the exit).
    /// Runs the blocking flush off the async runtime.
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        let flush =
            tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT));
        match tokio::time::timeout(SHUTDOWN_TIMEOUT + Duration::from_secs(1), flush).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!("trace export at shutdown: {e}"),
            Ok(Err(e)) => tracing::warn!("trace export at shutdown: {e}"),
            Err(_) => {
                tracing::warn!("trace export at shutdown: gave up after {SHUTDOWN_TIMEOUT:?}")
            }
        }
    }
}

/// Whether this process exports spans: [`init_traced`] installed an exporter.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// Whether the environment names an OTLP collector for traces
/// (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) and
/// does not turn the SDK off (`OTEL_SDK_DISABLED=true`).
pub fn otlp_configured() -> bool {
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    !sdk_disabled()
        && (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
}

/// Whether the environment turns OpenTelemetry off (`OTEL_SDK_DISABLED=true`).
pub fn sdk_disabled() -> bool {
    std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// Install the global subscriber with logs only (a second call is a no-op).
pub fn init(format: LogFormat) {
    let _ = install(format, None);
}

/// Install the global subscriber; with `service` (the default
/// `service.name`, overridden by `OTEL_SERVICE_NAME`) also export spans over
/// OTLP/gRPC. Must run inside a multi-threaded Tokio runtime when exporting.
/// When the exporter cannot be built, logs are still set up.
pub fn init_traced(
    format: LogFormat,
    service: Option<&'static str>,
) -> Result<Telemetry, TelemetryError> {
    init_traced_to(format, service, None)
}

/// [`init_traced`], exporting to `endpoint` instead of the one the
/// environment names (benchmarks and tests set their own collector).
pub fn init_traced_to(
    format: LogFormat,
    service: Option<&'static str>,
    endpoint: Option<&str>,
) -> Result<Telemetry, TelemetryError> {
    let provider = match service.map(|s| provider(s, endpoint)).transpose() {
        Ok(p) => p,
        Err(e) => {
            // Logs still work, so the caller can report the error.
            install(format, None);
            return Err(e);
        }
    };
    if install(format, provider.as_ref())
        && let Some(p) = &provider
    {
        // Spans built with the OpenTelemetry API (explicit start and end
        // times) go through the same pipeline.
        opentelemetry::global::set_tracer_provider(p.clone());
        EXPORTING.store(true, Ordering::Relaxed);
        Ok(Telemetry { provider })
    } else {
        Ok(Telemetry::default())
    }
}

fn provider(
    service: &'static str,
    endpoint: Option<&str>,
) -> Result<SdkTracerProvider, TelemetryError> {
    use opentelemetry_otlp::WithExportConfig;
    let mut builder = opentelemetry_otlp::SpanExporter::builder().with_tonic();
    if let Some(url) = endpoint {
        builder = builder.with_endpoint(url);
    }
    let exporter = builder.build().map_err(|e| TelemetryError(e.to_string()))?;
    let mut resource = Resource::builder().with_attribute(opentelemetry::KeyValue::new(
        "service.version",
        stampede_common::VERSION,
    ));
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(service);
    }
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

/// Returns whether this call installed the subscriber.
fn install(format: LogFormat, provider: Option<&SdkTracerProvider>) -> bool {
    // The SDK's own notices (e.g. "global tracer provider is set") are not
    // worth a line; its export errors are.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,opentelemetry=warn,opentelemetry_sdk=warn"));
    // The exported spans stay out of the log lines. Every callsite's
    // interest must be settled once, when it is registered: with a closure
    // filter and an empty `Option` layer in the stack (as this was), the
    // `trace!`s and per-poll spans of h2 were asked about, and the spans
    // built, at every frame — 8–10% of the controller's CPU per window
    // report in a profile at 1,000 agents.
    let logs_filter = match format!("{SPAN_TARGET}=off").parse() {
        Ok(d) => filter.add_directive(d),
        Err(_) => filter,
    };
    // Colours only on a terminal: piped logs (CI, files, kubectl logs) stay plain text.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    let fmt = match format {
        LogFormat::Plain => fmt.boxed(),
        LogFormat::Json => fmt.json().boxed(),
    };
    let logs = tracing_subscriber::registry().with(fmt.with_filter(logs_filter));
    let Some(p) = provider else {
        return logs.try_init().is_ok();
    };
    // Spans carry what they measure, not where the code ran: no source
    // location, thread or busy/idle time attributes.
    let otel = tracing_opentelemetry::layer()
        .with_tracer(p.tracer(TRACER))
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_filter(Targets::new().with_target(SPAN_TARGET, tracing::Level::TRACE));
    logs.with(otel).try_init().is_ok()
}

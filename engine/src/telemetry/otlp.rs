//! OTLP export of traces (feature `otlp`), configured the way every OpenTelemetry SDK is: by
//! the standard `OTEL_*` environment variables, and off when they are unset.
//!
//! - on when `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT` is set,
//!   unless `OTEL_TRACES_EXPORTER=none` or `OTEL_SDK_DISABLED=true`;
//! - `http/protobuf` (the specification's default), over plain HTTP: point it at a collector
//!   beside the process, which can forward over TLS (`grpc` and `https` endpoints are refused
//!   with an error at start, not dropped silently);
//! - `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER(_ARG)`,
//!   `OTEL_EXPORTER_OTLP_(TRACES_)HEADERS` and `_TIMEOUT` are read by the exporter and SDK.
//!
//! Spans are exported by a background thread in batches; [`OtlpTracing::shutdown`] flushes
//! what is left when the process stops.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

/// Why trace export could not be set up from the environment.
#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    /// `OTEL_EXPORTER_OTLP_PROTOCOL` names a protocol this build does not speak.
    #[error(
        "OTEL_EXPORTER_OTLP_PROTOCOL={0:?} is not supported: Reprise exports http/protobuf; run a collector that accepts it"
    )]
    UnsupportedProtocol(String),
    /// The endpoint is not plain HTTP.
    #[error(
        "OTLP endpoint {0:?} is not supported: Reprise exports over plain http; send to a collector beside the process, which can forward over TLS"
    )]
    UnsupportedEndpoint(String),
    /// The exporter refused its configuration.
    #[error("the OTLP exporter could not be built: {0}")]
    Build(#[from] opentelemetry_otlp::ExporterBuildError),
}

/// Trace export to an OTLP collector. Keep it for the life of the process; shut it down to
/// flush the spans not yet sent.
pub struct OtlpTracing {
    provider: SdkTracerProvider,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl OtlpTracing {
    /// Trace export as the `OTEL_*` variables configure it; `None` when they ask for none.
    /// `service_name` is used when `OTEL_SERVICE_NAME` is unset.
    pub fn from_env(service_name: &str) -> Result<Option<OtlpTracing>, OtlpError> {
        let disabled = env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
            || env("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"));
        let endpoint = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .or_else(|| env("OTEL_EXPORTER_OTLP_ENDPOINT"));
        let Some(endpoint) = endpoint.filter(|_| !disabled) else {
            return Ok(None);
        };
        let protocol = env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"));
        if let Some(protocol) = protocol.filter(|p| p != "http/protobuf") {
            return Err(OtlpError::UnsupportedProtocol(protocol));
        }
        if !endpoint.starts_with("http://") {
            return Err(OtlpError::UnsupportedEndpoint(endpoint));
        }
        // The builder reads the endpoint, headers and timeout variables itself.
        let exporter = SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .build()?;
        let mut resource = Resource::builder();
        if env("OTEL_SERVICE_NAME").is_none() {
            resource = resource.with_service_name(service_name.to_string());
        }
        let provider = SdkTracerProvider::builder()
            .with_resource(resource.build())
            .with_batch_exporter(exporter)
            .build();
        Ok(Some(OtlpTracing { provider }))
    }

    /// The `tracing` layer that turns spans into OpenTelemetry spans for this exporter. Give it
    /// its own filter (`Layer::with_filter`) so that traces and logs can differ in detail.
    pub fn layer<S>(&self) -> impl Layer<S> + use<S>
    where
        S: tracing::Subscriber + for<'span> LookupSpan<'span>,
    {
        tracing_opentelemetry::layer().with_tracer(self.provider.tracer("reprise"))
    }

    /// Sends the spans not yet exported and stops the exporter.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "flushing the last spans failed");
        }
    }
}

impl std::fmt::Debug for OtlpTracing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OtlpTracing")
    }
}

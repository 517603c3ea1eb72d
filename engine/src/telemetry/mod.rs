//! What a running system shows of itself: Prometheus metrics ([`Metrics`]), the gauges one
//! process samples for all ([`gauges`]), the HTTP endpoints `/metrics`, `/healthz` and
//! `/readyz` ([`http`]), trace context carried through history and task rows ([`trace`]), and
//! OTLP export of traces ([`otlp`], feature `otlp`).

mod gauges;
pub mod http;
mod labels;
mod metrics;
#[cfg(feature = "otlp")]
pub mod otlp;
mod series;
#[cfg(test)]
mod tests;
pub(crate) mod trace;

pub(crate) use gauges::sample_gauges;
pub use labels::{AttemptOutcome, LocalAttemptOutcome, ParkKind, StepPath};
pub use metrics::Metrics;

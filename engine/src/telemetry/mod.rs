//! What a running system shows of itself: Prometheus metrics ([`Metrics`]), the gauges one
//! process samples for all ([`gauges`]), and the HTTP endpoints `/metrics`, `/healthz` and
//! `/readyz` ([`http`]).

mod gauges;
pub mod http;
mod metrics;
#[cfg(test)]
mod tests;

pub(crate) use gauges::sample_gauges;
pub use metrics::{AttemptOutcome, Metrics, ParkKind, StepPath};

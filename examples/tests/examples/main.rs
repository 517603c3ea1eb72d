//! The examples' tests: an application tested on a `TestCluster`, process-level tests (engines and workers as real processes against a
//! real PostgreSQL) and the versioning example's recorded histories (no database).

// Tests fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// Shared with the engine's tests: a fresh database per test.
#[path = "../../../engine/tests/integration/support.rs"]
#[allow(dead_code)] // Not every helper is used here.
mod support;

mod chaos;

/// Taken alone by the chaos test, shared by the pattern demos: the chaos run's liveness bounds
/// (how long a run may stall) assume the two cores are not also running the demos' engines,
/// workers and processes.
pub(crate) static CHAOS: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());
mod cluster;
mod patterns;
mod processes;
mod scheduled;
mod telemetry;
mod versioning;

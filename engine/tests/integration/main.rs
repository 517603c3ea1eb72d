//! The engine's integration tests, against a real PostgreSQL server: the one `DATABASE_URL`
//! names (as `cargo xtask test` sets it), or else the project's private server.
//! Each test works in a database of its own, created fresh and dropped at the end.

// Test helpers fail loudly on purpose: a broken fixture should stop the test at once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod activities;
mod activity_cache;
mod activity_options;
mod batches;
mod conformance;
mod deadlines;
mod engine;
mod flow_control;
mod hosts;
mod hot_path;
mod lifecycle;
mod local_activities;
mod nondeterminism;
mod payloads;
mod plans;
mod queries;
mod resilience;
mod roles;
mod schedules;
mod schema;
mod security;
mod support;
mod telemetry;
mod traces;
mod updates;
mod versions;

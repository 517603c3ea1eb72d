//! The executor's tests: every operation live and replayed, every nondeterminism with its
//! message, and property tests over random orchestrator programs.

// Tests fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod activities;
mod harness;
mod inputs;
mod local_activities;
mod nondeterminism;
mod operations;
mod payloads;
mod programs;
mod queries;
mod updates;

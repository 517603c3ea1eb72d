//! The testkit's tests: the replayer's reports, the test environment in virtual time, and
//! determinism checks.

// Tests fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod activity_options;
mod deadlines;
mod env;
mod evolution;
mod inputs;
mod local_activities;
mod replay;
mod schedules;
mod talk;

//! The authoring API and the deterministic replay executor of Reprise.
//!
//! This crate will hold (issue: "The sdk"): the `WorkflowContext` and `ActivityContext` that
//! orchestrators and activities are written against; the registry value that maps workflow
//! and activity types to code; and the sans-IO executor that polls an orchestrator future with
//! its own waker, applies history inputs one at a time, turns awaits into commands, matches
//! them to recorded decisions and reports nondeterminism as a typed error.
//!
//! It never does I/O, never reads a clock and never spawns on a runtime: everything it knows
//! comes from [`reprise_history`] events handed to it.

pub use reprise_history as history;

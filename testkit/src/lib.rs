//! Testing tools for Reprise users, with no database.
//!
//! This crate will hold (issue: "The testkit"): the `Replayer` that replays recorded histories
//! (files, folders, in memory) against the user's workflow registry and reports every history
//! that no longer replays; the in-process `TestEnv` with a virtual clock and stand-in
//! activities; and proptest strategies and `check_determinism` for users' own workflows.
//!
//! It depends on `reprise-sdk` and `reprise-history` only: replaying a file needs no database.

pub use reprise_history as history;
pub use reprise_sdk as sdk;

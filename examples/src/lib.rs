//! Reprise's example workflows, shared by the `reprise-example` binary, the benchmarks and the
//! process-level tests.

pub mod bench;
pub mod chaos;
pub mod patterns;
pub mod versioning;
pub mod workflows;

/// The versioning guide (`docs/versioning.md`); its code samples compile as doc tests.
#[doc = include_str!("../../docs/versioning.md")]
pub mod versioning_guide {}

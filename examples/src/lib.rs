//! Reprise's example workflows, shared by the `reprise-example` binary, the benchmarks and the
//! process-level tests.

pub mod timeline;
pub mod workflows;

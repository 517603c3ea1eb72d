//! Property tests over random orchestrator programs.

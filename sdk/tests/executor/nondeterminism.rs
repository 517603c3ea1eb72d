//! Every kind of nondeterminism, with its message. Each test shows the original and the
//! changed orchestrator.

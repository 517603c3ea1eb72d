//! Database time, through a seam that tests can move.
//!
//! Every time the engine uses — leases, timers, retries, deadlines — is the PostgreSQL
//! transaction's `now()`, never a process clock, so clock skew between machines cannot
//! duplicate or stall work. `DbClock` adds an offset to it, zero in production; tests advance
//! the offset to make timers fire and leases expire without sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Database time plus an offset (zero unless a test advanced it).
#[derive(Clone, Debug, Default)]
pub struct DbClock {
    offset_micros: Arc<AtomicI64>,
}

impl DbClock {
    /// Database time as it is.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves this clock (and every store sharing it) forward.
    pub fn advance(&self, by: Duration) {
        let micros = i64::try_from(by.as_micros()).unwrap_or(i64::MAX);
        self.offset_micros.fetch_add(micros, Ordering::SeqCst);
    }

    /// The offset in microseconds, bound as `$1` of every query (see `store::NOW`).
    pub(crate) fn offset_micros(&self) -> i64 {
        self.offset_micros.load(Ordering::SeqCst)
    }
}

//! The engine's deadline loop: closes the open runs whose run or execution deadline passed
//! (see `store/deadlines.rs`), in transactions that skip runs another engine holds, so any
//! number of engines may run it. It sleeps until the earliest deadline, at most the idle
//! poll: a run timed out is closed within the idle poll of its deadline.

use std::time::Duration;

use tokio::sync::watch;

use super::Engine;
use crate::backoff::Backoff;
use crate::error::Result;

/// Runs closed in one transaction, at most.
const TIMEOUTS_PER_BATCH: i64 = 64;

impl Engine {
    /// Closes runs at their deadlines, until `stop`.
    pub(super) async fn enforce_deadlines(&self, mut stop: watch::Receiver<bool>) -> Result<()> {
        let mut backoff = Backoff::default();
        while !*stop.borrow() {
            let wait = match self.close_timed_out().await {
                Ok(wait) => {
                    backoff.reset();
                    wait
                }
                Err(error) => {
                    tracing::warn!(%error, "closing runs past their deadline failed; trying again");
                    backoff.next_delay()
                }
            };
            tokio::select! {
                _ = stop.changed() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
        Ok(())
    }

    /// Closes what is past its deadline; returns how long to wait before looking again.
    async fn close_timed_out(&self) -> Result<Duration> {
        loop {
            let closed = self.store.time_out_runs(TIMEOUTS_PER_BATCH).await?;
            if closed > 0 {
                self.progressed();
            }
            if closed < TIMEOUTS_PER_BATCH as usize {
                break;
            }
        }
        Ok(match self.store.next_deadline().await? {
            // Held by another engine's sweep (or by a step): look again soon.
            Some(due_in) if due_in.is_zero() => Duration::from_millis(20),
            Some(due_in) => due_in.min(self.options.idle_poll),
            None => self.options.idle_poll,
        })
    }
}

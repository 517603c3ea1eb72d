//! The engine's scheduler loop: fires the schedules that are due (and starts buffered firings
//! whose workflow closed), each in its own transaction that holds the schedule's row, so that
//! any number of engines may run it and each firing happens once (see
//! `store/schedules.rs`). It sleeps until the earliest schedule is due, at most the idle poll,
//! and wakes on `reprise_schedules` when a schedule is created, changed, resumed or triggered.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{Notify, watch};

use super::Engine;
use crate::backoff::Backoff;
use crate::error::Result;

/// Schedules fired in one transaction, at most.
const FIRINGS_PER_BATCH: i64 = 64;

/// Schedules fired in a row before the loop looks at the time again.
const FIRINGS_PER_ROUND: usize = 256;

/// The shortest wait while a due schedule is held by another engine's tick.
const HELD_ELSEWHERE: Duration = Duration::from_millis(20);

impl Engine {
    /// Fires schedules as they come due, until `stop`.
    pub(super) async fn run_schedules(
        &self,
        wakeups: &Notify,
        mut stop: watch::Receiver<bool>,
    ) -> Result<()> {
        let mut backoff = Backoff::default();
        while !*stop.borrow() {
            let wait = match self.fire_due_schedules().await {
                Ok(wait) => {
                    backoff.reset();
                    wait
                }
                Err(error) => {
                    tracing::warn!(%error, "firing schedules failed; trying again");
                    backoff.next_delay()
                }
            };
            tokio::select! {
                _ = stop.changed() => {}
                () = wakeups.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
        Ok(())
    }

    /// Fires what is due; returns how long to wait before looking again.
    async fn fire_due_schedules(&self) -> Result<Duration> {
        let mut fired = 0;
        while fired < FIRINGS_PER_ROUND {
            let batch = self.store.fire_due_schedules(FIRINGS_PER_BATCH).await?;
            if batch == 0 {
                break;
            }
            fired += batch;
            self.counters
                .schedule_ticks
                .fetch_add(batch as u64, Ordering::Relaxed);
            self.progressed();
        }
        if fired >= FIRINGS_PER_ROUND {
            return Ok(Duration::ZERO);
        }
        // Buffered firings whose workflow closed are found at the next look: at most the idle
        // poll later.
        Ok(match self.store.next_schedule_due().await? {
            Some(due_in) if due_in.is_zero() => HELD_ELSEWHERE,
            Some(due_in) => due_in.min(self.options.idle_poll),
            None => self.options.idle_poll,
        })
    }
}

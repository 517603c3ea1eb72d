//! Runs whose workflow something outside Reprise woke between steps (a thread, a channel fed
//! from outside): replay could never reproduce that wake, so the run must be parked (ND05),
//! and at once — not when an input happens to arrive, which for a run waiting on a signal may
//! be never. The executor tells us (`Execution::on_foreign_wake`); a loop queues the run; the
//! batch that claims it steps it with no inputs, and that step fails with ND05.
//!
//! Only the engine holding the orchestrator in its cache knows of the wake: if another engine
//! takes the run first, it replays it, and the wake is gone with the old orchestrator.

use std::sync::{Arc, Mutex, PoisonError};

use reprise_history::RunId;
use reprise_sdk::Execution;
use tokio::sync::{Notify, watch};

use super::Engine;
use crate::error::Result;

/// Runs woken from outside, waiting to be queued.
#[derive(Default)]
pub(super) struct ForeignWakes {
    runs: Mutex<Vec<RunId>>,
    notify: Notify,
}

impl ForeignWakes {
    /// Listens for a wake from outside of `execution`, the orchestrator of `run_id`.
    pub(super) fn watch(self: &Arc<Self>, run_id: RunId, execution: &Execution) {
        let wakes = Arc::clone(self);
        execution.on_foreign_wake(move || {
            wakes
                .runs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(run_id);
            wakes.notify.notify_one();
        });
    }

    fn take(&self) -> Vec<RunId> {
        std::mem::take(&mut *self.runs.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Engine {
    /// Queues each run woken from outside Reprise to be stepped now, until `stop`.
    pub(super) async fn queue_foreign_wakes(&self, mut stop: watch::Receiver<bool>) -> Result<()> {
        while !*stop.borrow() {
            tokio::select! {
                _ = stop.changed() => {}
                () = self.foreign.notify.notified() => {}
            }
            for run_id in self.foreign.take() {
                tracing::warn!(run_id = %run_id, "something outside Reprise woke this run's workflow; stepping it to park it (ND05)");
                if let Err(e) = self.store.queue_now(run_id).await {
                    tracing::warn!(run_id = %run_id, error = %e, "queueing a run woken from outside failed; its next input parks it");
                }
            }
        }
        Ok(())
    }
}

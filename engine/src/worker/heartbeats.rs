//! An attempt's heartbeats: the latest one waiting to be written, the loop that writes them
//! and extends the lease (never past the start-to-close timeout), and the checkpoint a failed
//! attempt leaves for the next.

use std::sync::{Mutex, PoisonError};

use reprise_history::Payload;
use reprise_sdk::{ActivityInfo, CancellationSignal, HeartbeatSink};
use tokio::time::Instant;

use super::Worker;
use crate::store::ClaimedTask;

/// The latest heartbeat of a running attempt, waiting to be written.
#[derive(Default)]
pub(super) struct PendingHeartbeat(Mutex<Option<Payload>>);

impl HeartbeatSink for PendingHeartbeat {
    fn heartbeat(&self, _info: &ActivityInfo, details: Payload) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(details);
    }
}

impl Worker {
    /// Writes the heartbeat an attempt that did not complete made last, if the heartbeat
    /// loop had not written it yet: it is the checkpoint the next attempt resumes from (an
    /// attempt that heartbeats and fails at once would otherwise leave an older one). A write
    /// that fails is logged: the next attempt then resumes from the checkpoint before.
    pub(super) async fn flush_checkpoint(&self, task: &ClaimedTask, pending: &PendingHeartbeat) {
        let details = pending
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(details) = details else { return };
        let owner = &self.options.owner;
        if let Err(e) = self.store.heartbeat(task, owner, &details).await {
            tracing::warn!(error = %e, "writing the failed attempt's last heartbeat failed");
        }
    }

    /// Writes heartbeats while the attempt runs; raises its cancellation when the workflow
    /// no longer wants it, the lease is lost, or its start-to-close timeout runs out. Never
    /// returns while the lease is held and the timeout has not run out.
    pub(super) async fn heartbeat_loop(
        &self,
        task: &ClaimedTask,
        pending: &PendingHeartbeat,
        cancellation: &CancellationSignal,
        extended: &Mutex<Instant>,
    ) {
        let deadline = task.start_to_close_deadline();
        loop {
            let next_beat = Instant::now() + self.options.heartbeat_interval;
            match deadline {
                Some(deadline) if deadline <= next_beat => {
                    // No heartbeat extends the lease past it (`Store::heartbeat`): the lease
                    // runs out, and the reaper times the attempt out and retries it.
                    tokio::time::sleep_until(deadline).await;
                    cancellation.cancel();
                    return;
                }
                _ => tokio::time::sleep_until(next_beat).await,
            }
            let details = pending
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            let Some(details) = details else { continue };
            let sent_at = Instant::now();
            match self
                .store
                .heartbeat(task, &self.options.owner, &details)
                .await
            {
                Ok(Some(false)) => {
                    *extended.lock().unwrap_or_else(PoisonError::into_inner) = sent_at;
                    self.count(&self.counters.heartbeats_written);
                }
                Ok(Some(true)) | Ok(None) => {
                    cancellation.cancel();
                    return;
                }
                Err(e) => {
                    // Kept for the next beat unless a newer one came meanwhile: a database
                    // that is back within the lease then still gets the checkpoint.
                    tracing::warn!(error = %e, "heartbeat failed; it goes with the next beat");
                    pending
                        .0
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .get_or_insert(details);
                }
            }
        }
    }
}

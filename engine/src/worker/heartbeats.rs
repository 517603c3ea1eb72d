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
    /// Writes the heartbeat an attempt that did not complete (or ran out of time) made last,
    /// if the heartbeat loop had not written it yet: it is the checkpoint the next attempt
    /// resumes from (an attempt that heartbeats and fails at once would otherwise leave an
    /// older one). A write that fails is logged: the next attempt then resumes from the
    /// checkpoint before.
    pub(super) async fn flush_checkpoint(&self, task: &ClaimedTask, pending: &PendingHeartbeat) {
        let details = pending
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(details) = details else { return };
        let owner = &self.options.owner;
        if let Err(e) = self.store.heartbeat(task, owner, &details).await {
            tracing::warn!(error = %e, "writing the attempt's last heartbeat failed");
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
            // None: an interval too long to add to an instant, so never another beat.
            let next_beat = Instant::now().checked_add(self.options.heartbeat_interval);
            match (deadline, next_beat) {
                (Some(deadline), next_beat) if next_beat.is_none_or(|beat| deadline <= beat) => {
                    // No heartbeat extends the lease past it (`Store::heartbeat`): the lease
                    // runs out, and the reaper times the attempt out and retries it. The
                    // checkpoint is written for that retry even if the attempt ignores its
                    // cancellation.
                    tokio::time::sleep_until(deadline).await;
                    cancellation.cancel();
                    self.flush_checkpoint(task, pending).await;
                    return;
                }
                (_, Some(next_beat)) => tokio::time::sleep_until(next_beat).await,
                (_, None) => std::future::pending().await,
            }
            let details = pending
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            let Some(details) = details else { continue };
            let sent_at = Instant::now();
            let write = self.store.heartbeat(task, &self.options.owner, &details);
            // A write stuck in an outage must not hold back the cancellation at the deadline;
            // its details then go with the checkpoint written after the attempt.
            let written = match deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, write).await.ok(),
                None => Some(write.await),
            };
            match written {
                Some(Ok(Some(false))) => {
                    *extended.lock().unwrap_or_else(PoisonError::into_inner) = sent_at;
                    self.count(&self.counters.heartbeats_written);
                }
                Some(Ok(Some(true))) | Some(Ok(None)) => {
                    cancellation.cancel();
                    return;
                }
                None => {
                    keep_unless_newer(pending, details);
                    cancellation.cancel();
                    return;
                }
                Some(Err(e)) => {
                    // Kept for the next beat unless a newer one came meanwhile: a database
                    // that is back within the lease then still gets the checkpoint.
                    tracing::warn!(error = %e, "heartbeat failed; it goes with the next beat");
                    keep_unless_newer(pending, details);
                }
            }
        }
    }
}

/// Puts back details that were not written, unless the attempt heartbeat newer ones meanwhile.
fn keep_unless_newer(pending: &PendingHeartbeat, details: Payload) {
    pending
        .0
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get_or_insert(details);
}

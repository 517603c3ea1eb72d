//! Plain starts from many tasks of one client share statements.
//!
//! A start is two round trips (the database's time, then one statement that writes the run,
//! its first event and its place in the queue) and a commit. An application starting many
//! workflows at once (a web server, a fan-out from a job) would pay that for each. Starts
//! queue instead: one task writes every start waiting in one statement, and the starts that
//! arrive while it runs share the next one. A lone start goes at once, so nothing waits for a
//! batch to fill. Any start the shared statement cannot take (its workflow id has an open run,
//! or the statement failed) is done again by its caller alone, which is where its answer and
//! its error come from.

use std::collections::HashSet;

use reprise_history::RunId;
use tokio::sync::{mpsc, oneshot};

use crate::store::{NewRun, Store, on_live_connection};

/// Starts written in one statement, at most.
const STARTS_PER_STATEMENT: usize = 256;

/// A start waiting for the shared statement, and who waits for its answer.
struct QueuedStart {
    new: NewRun,
    /// The started run, or `None` if the caller must start it alone.
    started: oneshot::Sender<Option<RunId>>,
}

/// The queue of plain starts of one client (and its clones).
pub(crate) struct StartQueue {
    queue: mpsc::UnboundedSender<QueuedStart>,
}

impl StartQueue {
    /// A queue whose writer runs until every clone of the client is gone.
    pub(crate) fn spawn(store: &Store) -> StartQueue {
        let (queue, queued) = mpsc::unbounded_channel();
        tokio::spawn(write_starts(store.clone(), queued));
        StartQueue { queue }
    }

    /// Starts `new` in a shared statement: its run id, or `None` when the caller must start
    /// it alone (see the module's documentation).
    pub(crate) async fn start(&self, new: NewRun) -> Option<RunId> {
        let (started, answer) = oneshot::channel();
        self.queue.send(QueuedStart { new, started }).ok()?;
        answer.await.ok().flatten()
    }
}

async fn write_starts(store: Store, mut queued: mpsc::UnboundedReceiver<QueuedStart>) {
    while let Some(first) = queued.recv().await {
        let mut batch = vec![first];
        // One row per workflow id in a statement: a second start of the same id is answered
        // by the first's run, which only the caller's own path looks up.
        let mut ids = HashSet::from([batch[0].new.workflow_id.clone()]);
        let mut alone = Vec::new();
        while batch.len() < STARTS_PER_STATEMENT {
            match queued.try_recv() {
                Ok(next) if ids.insert(next.new.workflow_id.clone()) => batch.push(next),
                Ok(next) => alone.push(next),
                Err(_) => break,
            }
        }
        let (news, answers): (Vec<NewRun>, Vec<_>) =
            batch.into_iter().map(|q| (q.new, q.started)).unzip();
        let started = match on_live_connection!(store, store.start_plain_runs(&news)) {
            Ok(started) => started,
            Err(e) => {
                tracing::debug!(error = %e, starts = news.len(), "a shared start failed; each start is done alone");
                vec![None; news.len()]
            }
        };
        for (answer, started) in answers.into_iter().zip(started) {
            let _ = answer.send(started);
        }
        for queued in alone {
            let _ = queued.started.send(None);
        }
    }
}

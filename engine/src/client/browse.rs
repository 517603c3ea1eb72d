//! Reading runs for people and tools beyond one workflow's latest run: counts per status, a
//! run's children and successor, pages of a history, and bulk operations over a filter.

use reprise_history::{Event, RunId, Seq};

use crate::backoff::Backoff;
use crate::client::Client;
use crate::error::Result;
use crate::store::{
    BatchProgress, BulkAction, QueueBacklog, RunFilter, RunSummary, StatusCount, TypeUsage,
    on_live_connection, on_live_read,
};

/// The runs a run leads to.
#[derive(Clone, Debug)]
pub struct RunRelations {
    /// The runs it started as children, oldest first (up to the limit asked for).
    pub children: Vec<RunSummary>,
    /// The run that continues it (continue-as-new, a workflow retry, a reset), if one does.
    pub next_run_id: Option<RunId>,
}

/// How many times a chunk that failed on a retryable error (the database restarting, a
/// deadlock with a step) is tried again before the batch stops and says why.
const CHUNK_TRIES: u32 = 5;

impl Client {
    /// How many runs of each status `filter` matches, each counted up to `cap` (then
    /// [`StatusCount::more`] is set): a bounded count that stays fast on a large table.
    pub async fn count_by_status(&self, filter: &RunFilter, cap: u64) -> Result<Vec<StatusCount>> {
        let cap = i64::try_from(cap).unwrap_or(i64::MAX - 1);
        on_live_read!(self.store, self.store.count_by_status(filter, cap))
    }

    /// Open runs per workflow type, parked ones counted too.
    pub async fn open_runs_by_type(&self) -> Result<Vec<TypeUsage>> {
        on_live_read!(self.store, self.store.open_runs_by_type())
    }

    /// Each activity task queue's backlog (due, running, backing off; the oldest due) and
    /// how many workers serve it.
    pub async fn queue_backlogs(&self) -> Result<Vec<QueueBacklog>> {
        on_live_read!(self.store, self.store.queue_backlogs())
    }

    /// How many runs `filter` matches, exactly (it reads every one of them).
    pub async fn count_runs(&self, filter: &RunFilter) -> Result<u64> {
        on_live_read!(self.store, self.store.count_matching(filter))
    }

    /// One run by its id, as listed: one row (where a page watching it polls).
    pub async fn run(&self, run_id: RunId) -> Result<RunSummary> {
        on_live_read!(self.store, self.store.run_summary(run_id))?
            .ok_or(crate::error::Error::UnknownRun { run_id })
    }

    /// The latest run of a workflow id (the one the client's operations by workflow id act
    /// on): after a continue-as-new, a retry or a reset, not the first.
    pub async fn latest_run_id(&self, workflow_id: &str) -> Result<RunId> {
        let id = reprise_history::WorkflowId::new(workflow_id)?;
        Ok(self.latest_run(&id).await?.run_id)
    }

    /// The runs `run_id` started as children (up to `limit`), and the run that continues it.
    pub async fn relations(&self, run_id: RunId, limit: u32) -> Result<RunRelations> {
        let (children, next_run_id) = on_live_read!(
            self.store,
            self.store.run_relations(run_id, i64::from(limit))
        )?;
        Ok(RunRelations {
            children,
            next_run_id,
        })
    }

    /// Up to `limit` events of a run's history after `after` (`Seq::new(0)`: from the
    /// start), checked against each other and the event before them: a long history is read
    /// a page at a time. [`Client::verify`] checks a whole chain and its head.
    pub async fn history_page(&self, run_id: RunId, after: Seq, limit: u32) -> Result<Vec<Event>> {
        let key = self.store.chain_key();
        on_live_read!(
            self.store,
            self.store
                .history_page(run_id, after, i64::from(limit), key)
        )
    }

    /// How many runs a bulk action over `filter` would act on now: its open runs (parked
    /// ones for a retry); none when the filter asks for closed runs.
    pub async fn count_for_batch(&self, filter: &RunFilter, action: &BulkAction) -> Result<u64> {
        match action.covers(filter) {
            Some(covered) => self.count_runs(&covered).await,
            None => Ok(0),
        }
    }

    /// A broadcast of a signal given by name with a JSON payload (checked to be JSON, then
    /// encoded with this client's codecs), for [`Client::create_batch`].
    pub fn signal_action_json(&self, name: &str, payload_json: &str) -> Result<BulkAction> {
        Ok(BulkAction::Signal {
            name: reprise_history::SignalName::new(name)?,
            payload: self.json_payload(payload_json)?,
        })
    }

    /// Records a bulk operation over the open runs `filter` matches now, counting them;
    /// nothing is done to them until [`Client::run_batch`]. A signal's payload is encoded
    /// with this client's codecs.
    pub async fn create_batch(
        &self,
        filter: &RunFilter,
        action: &BulkAction,
    ) -> Result<BatchProgress> {
        on_live_connection!(self.store, self.store.create_batch(filter, action))
    }

    /// Runs a batch to its end, `chunk` runs per transaction, calling `progress` after each;
    /// resumes where it stopped when it was interrupted, and returns at once when it has
    /// finished. Several processes may run the same batch: they take turns, and no run is
    /// handled twice.
    pub async fn run_batch(
        &self,
        batch_id: uuid::Uuid,
        chunk: u32,
        mut progress: impl FnMut(&BatchProgress),
    ) -> Result<BatchProgress> {
        let chunk = i64::from(chunk.max(1));
        let mut backoff = Backoff::default();
        let mut tries = 0;
        loop {
            match self.store.batch_chunk(batch_id, chunk).await {
                Ok(now) => {
                    tries = 0;
                    backoff.reset();
                    progress(&now);
                    if now.finished_at.is_some() {
                        return Ok(now);
                    }
                }
                Err(e) if e.is_retryable() && tries < CHUNK_TRIES => {
                    tries += 1;
                    backoff.wait().await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A batch's progress.
    pub async fn batch(&self, batch_id: uuid::Uuid) -> Result<BatchProgress> {
        on_live_read!(self.store, self.store.batch(batch_id))
    }

    /// The latest batches, newest first.
    pub async fn batches(&self, limit: u32) -> Result<Vec<BatchProgress>> {
        on_live_read!(self.store, self.store.batches(i64::from(limit)))
    }
}

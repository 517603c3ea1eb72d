//! The client's lifecycle operations: start options, signal-with-start, cancel, terminate,
//! listing, parked runs, reset, retention.

use reprise_history::{
    ActivityType, EventKind, RunId, SignalName, SignalReceived, TaskQueue, WorkflowId,
};
use reprise_sdk::{SignalDef, WorkflowDef};
use serde::Serialize;

use crate::client::{Client, WorkflowHandle};
use crate::error::{Error, Result};
use crate::store::{
    IdReusePolicy, RunCursor, RunFilter, RunSummary, on_live_connection, on_live_read,
};
use reprise_history::Priority;

/// How to start a workflow.
#[derive(Clone, Debug)]
pub struct StartOptions {
    /// The orchestrator task queue.
    pub task_queue: TaskQueue,
    /// What to do if the workflow id ran before.
    pub id_reuse: IdReusePolicy,
    /// How urgent its activities are beside others on their queues (children and continued
    /// runs inherit it).
    pub priority: Priority,
    /// The tenant or customer its activities share capacity as (see `reprise.claim_tasks`:
    /// keys take turns at each claim); `None`: none. Children and continued runs inherit it.
    pub fairness_key: Option<String>,
    /// How long after the start (database time) its first step happens. The run exists at
    /// once: visible, cancellable, and signals wait in its inbox for that first step.
    pub start_delay: std::time::Duration,
    /// The earliest time its first step happens (with `start_delay`, the later of the two);
    /// a time already past starts it at once.
    pub start_at: Option<reprise_history::Timestamp>,
    /// Longest one run may take from its first step; then the engine closes it as timed
    /// out (`RunState::TimedOut`), and the retry policy, if any, may start another attempt.
    /// `None`: no limit. Zero is refused.
    pub run_timeout: Option<std::time::Duration>,
    /// Longest the workflow may take from its first run's first step, across
    /// continue-as-new and retries; then the engine closes its open run as timed out, for
    /// good. `None`: no limit. Zero is refused.
    pub execution_timeout: Option<std::time::Duration>,
    /// How a failed run (or one that reached its run timeout) is retried: as a new run of
    /// the same workflow id and input, after the policy's backoff, until its attempts run
    /// out, its error type is non-retryable or the execution timeout is near. `None`: a
    /// failed workflow stays failed.
    pub retry: Option<reprise_history::RetryPolicy>,
}

impl Default for StartOptions {
    fn default() -> Self {
        StartOptions {
            task_queue: TaskQueue::default(),
            id_reuse: IdReusePolicy::AllowDuplicate,
            priority: Priority::DEFAULT,
            fairness_key: None,
            start_delay: std::time::Duration::ZERO,
            start_at: None,
            run_timeout: None,
            execution_timeout: None,
            retry: None,
        }
    }
}

/// One page of a run listing.
#[derive(Clone, Debug)]
pub struct Page {
    /// The runs, newest first.
    pub runs: Vec<RunSummary>,
    /// Pass it back for the next page; `None` on the last page.
    pub next: Option<RunCursor>,
}

impl Client {
    /// Starts a workflow with options (task queue, id-reuse policy). Idempotent while a run of
    /// the id is open; refuses, per the policy, when its last run is closed.
    pub async fn start_with_options<I: Serialize, O>(
        &self,
        def: WorkflowDef<I, O>,
        workflow_id: &str,
        input: &I,
        options: StartOptions,
    ) -> Result<WorkflowHandle<O>> {
        self.start_with(def, workflow_id, input, options, None)
            .await
    }

    /// Sends a signal to the workflow, starting it first if no run of its id is open — in one
    /// transaction, so the signal can never be lost between the two.
    pub async fn signal_with_start<I: Serialize, O, T: Serialize>(
        &self,
        def: WorkflowDef<I, O>,
        workflow_id: &str,
        input: &I,
        signal: SignalDef<T>,
        value: &T,
    ) -> Result<WorkflowHandle<O>> {
        let signal = EventKind::SignalReceived(SignalReceived {
            name: SignalName::new(signal.name())?,
            payload: self.converter.to_payload(value)?,
        });
        self.start_with(
            def,
            workflow_id,
            input,
            StartOptions::default(),
            Some(signal),
        )
        .await
    }

    /// The open run of a workflow id; a typed error when it has none.
    pub(crate) async fn open_run_id(&self, workflow_id: &str) -> Result<RunId> {
        let id = WorkflowId::new(workflow_id)?;
        match on_live_connection!(self.store, self.store.open_run(&id))? {
            Some(run) => Ok(run.run_id),
            None => Err(
                match on_live_connection!(self.store, self.store.latest_run(&id))? {
                    Some(run) => Error::WorkflowClosed {
                        workflow_id: workflow_id.to_string(),
                        status: run.status,
                    },
                    None => Error::UnknownWorkflow {
                        workflow_id: workflow_id.to_string(),
                    },
                },
            ),
        }
    }

    /// Asks a workflow to cancel: pending operations end with `Cancelled` in its code, which
    /// may clean up; running activities learn of it at their next heartbeat.
    pub async fn cancel(&self, workflow_id: &str, reason: &str) -> Result<()> {
        let run_id = self.open_run_id(workflow_id).await?;
        on_live_connection!(self.store, self.store.cancel(run_id, reason))
    }

    /// Terminates a workflow at once: `WorkflowTerminated` is recorded with the reason, and
    /// nothing of the run runs afterwards (its pending work is dropped, a step in flight is
    /// fenced out).
    pub async fn terminate(&self, workflow_id: &str, reason: &str) -> Result<()> {
        let run_id = self.open_run_id(workflow_id).await?;
        if on_live_connection!(self.store, self.store.terminate(run_id, reason))? {
            return Ok(());
        }
        // It closed between the lookup and the termination: say how.
        Err(self
            .open_run_id(workflow_id)
            .await
            .err()
            .unwrap_or_else(|| {
                Error::Conflict(format!(
                    "workflow {workflow_id:?} moved to another run while it was being terminated"
                ))
            }))
    }

    /// Lists runs, newest first, `limit` at a time; pass `next` back for the following page.
    pub async fn list(
        &self,
        filter: &RunFilter,
        after: Option<RunCursor>,
        limit: i64,
    ) -> Result<Page> {
        let (runs, next) = on_live_read!(self.store, self.store.list(filter, after, limit))?;
        Ok(Page { runs, next })
    }

    /// Retries a parked run now, by any process that knows its type (also one of the build
    /// that parked it: use it once the cause is fixed outside the code).
    pub async fn retry_parked(&self, workflow_id: &str) -> Result<bool> {
        let run_id = self.open_run_id(workflow_id).await?;
        on_live_connection!(self.store, self.store.retry_parked(run_id))
    }

    /// Resets the workflow's latest (closed) run to `seq`: a new run keeps the history up to
    /// there, is recorded as a reset, and goes on live. Returns the new run (await it with
    /// [`Client::handle`]).
    pub async fn reset(&self, workflow_id: &str, seq: u64) -> Result<RunId> {
        let id = WorkflowId::new(workflow_id)?;
        let run = self.latest_run(&id).await?;
        let seq = reprise_history::Seq::new(seq);
        on_live_connection!(self.store, self.store.reset(run.run_id, seq))
    }

    /// Empties the result cache of an activity type (of every type when None): its attempts
    /// run their code again from now on. For a result cached wrongly, when bumping the
    /// activity's `CachePolicy::version` would mean a deploy. Returns how many results went.
    pub async fn clear_activity_cache(&self, activity_type: Option<&str>) -> Result<u64> {
        let activity_type = activity_type.map(ActivityType::new).transpose()?;
        on_live_connection!(
            self.store,
            self.store.clear_activity_cache(activity_type.as_ref())
        )
    }

    /// Deletes runs closed longer ago than `older_than`, with everything they stored, in
    /// batches; never an open run. Returns how many runs it deleted.
    pub async fn prune(&self, older_than: std::time::Duration) -> Result<u64> {
        let mut total = 0;
        loop {
            let deleted =
                on_live_connection!(self.store, self.store.prune_closed(older_than, 500))?;
            total += deleted;
            if deleted < 500 {
                return Ok(total);
            }
        }
    }
}

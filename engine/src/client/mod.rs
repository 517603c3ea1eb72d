//! The client: start workflows, await their results, signal them, describe them, and export
//! their histories.

use std::marker::PhantomData;
use std::time::Duration;

use reprise_history::{
    Event, EventKind, Payload, RecordedHistory, RunId, RunState, Seq, SignalName, SignalReceived,
    TaskQueue, WorkflowId, WorkflowType,
};
use reprise_sdk::{SignalDef, WorkflowDef};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::listen::{Listening, RunWaiters};
use crate::store::{
    CLOSED_CHANNEL, IdReusePolicy, NewRun, PatchUsage, PendingActivity, RunEnd, Store,
    on_live_connection,
};

mod lifecycle;
mod starts;

pub use lifecycle::{Page, StartOptions};

/// Talks to Reprise from application code.
#[derive(Clone)]
pub struct Client {
    store: Store,
    closed: std::sync::Arc<std::sync::OnceLock<Listening<RunWaiters>>>,
    starts: std::sync::Arc<std::sync::OnceLock<starts::StartQueue>>,
}

/// A run's state, for people and tools.
#[derive(Clone, Debug)]
pub struct Description {
    /// The run described (the latest of its workflow id).
    pub run_id: RunId,
    /// Its workflow type.
    pub workflow_type: WorkflowType,
    /// Where it is in its life.
    pub status: RunState,
    /// Why it is parked, if it is.
    pub parked_reason: Option<String>,
    /// The seq of its last event.
    pub head_seq: Seq,
    /// Activities scheduled and not yet finished.
    pub pending_activities: Vec<PendingActivity>,
}

/// A started workflow, to await its result.
pub struct WorkflowHandle<O> {
    client: Client,
    workflow_id: WorkflowId,
    run_id: RunId,
    output: PhantomData<fn() -> O>,
}

impl<O> WorkflowHandle<O> {
    /// The workflow id.
    pub fn workflow_id(&self) -> &WorkflowId {
        &self.workflow_id
    }

    /// The run it was started as (continue-as-new runs follow it).
    pub fn run_id(&self) -> RunId {
        self.run_id
    }
}

impl<O: DeserializeOwned> WorkflowHandle<O> {
    /// Waits for the workflow's result, following continue-as-new to the last run. Waits on
    /// `LISTEN/NOTIFY`, polling at most once a second as the fallback.
    pub async fn result(&self) -> Result<O> {
        let mut run_id = self.run_id;
        let waiters = self.client.closed_runs()?;
        loop {
            // Watching starts before the read, so that a close between the two still wakes it.
            let watch = waiters.watch(run_id);
            let notified = watch.notify().notified();
            let store = &self.client.store;
            let end = on_live_connection!(store, store.run_end(run_id))?.ok_or_else(|| {
                Error::UnknownWorkflow {
                    workflow_id: self.workflow_id.to_string(),
                }
            })?;
            match end {
                RunEnd::Running => {
                    let _ = tokio::time::timeout(Duration::from_secs(1), notified).await;
                    // The closing notification usually carries the closing event: then there
                    // is nothing to read.
                    let carried = watch.closing().and_then(|bytes| {
                        Event::decode(&bytes, store.limits())
                            .ok()
                            .filter(|e| e.kind.is_closing())
                    });
                    match carried.map(|e| e.kind) {
                        Some(EventKind::WorkflowContinuedAsNew(next)) => run_id = next.new_run_id,
                        Some(closing) => return outcome(&self.workflow_id, &closing),
                        None => {}
                    }
                }
                RunEnd::ContinuedAs(next) => run_id = next,
                RunEnd::Closed(event) => return outcome(&self.workflow_id, &event.kind),
            }
        }
    }
}

/// The client spawns tasks (its listener, the writer of shared starts) on the Tokio runtime
/// it is called from; called from anywhere else, it says so instead of panicking.
fn in_runtime() -> Result<()> {
    tokio::runtime::Handle::try_current()
        .map(drop)
        .map_err(|_| Error::NoRuntime)
}

/// The result of a closed run, from its closing event.
fn outcome<O: DeserializeOwned>(workflow_id: &WorkflowId, closing: &EventKind) -> Result<O> {
    let ended = |status: RunState, detail: String| Error::WorkflowEnded {
        workflow_id: workflow_id.to_string(),
        status,
        detail,
    };
    match closing {
        EventKind::WorkflowCompleted(c) => Ok(c.result.decode::<O>()?),
        EventKind::WorkflowFailed(f) => Err(ended(RunState::Failed, f.failure.to_string())),
        EventKind::WorkflowCancelled(_) => {
            Err(ended(RunState::Cancelled, "cancelled on request".into()))
        }
        EventKind::WorkflowTerminated(t) => Err(ended(RunState::Terminated, t.reason.clone())),
        other => Err(Error::Corrupt {
            what: format!("closing event of workflow {workflow_id}"),
            reason: format!("{} does not end a run with a result", other.name()),
        }),
    }
}

impl Client {
    /// The latest run of a workflow id; a typed error when there is none.
    pub(crate) async fn latest_run(&self, id: &WorkflowId) -> Result<crate::store::RunRow> {
        self.store
            .latest_run(id)
            .await?
            .ok_or_else(|| Error::UnknownWorkflow {
                workflow_id: id.to_string(),
            })
    }

    /// A client of the Reprise database behind `store`.
    pub fn new(store: Store) -> Client {
        Client {
            store,
            closed: Default::default(),
            starts: Default::default(),
        }
    }

    /// Who waits for which run to close; listening starts with the first waiter.
    fn closed_runs(&self) -> Result<std::sync::Arc<RunWaiters>> {
        in_runtime()?;
        Ok(self
            .closed
            .get_or_init(|| RunWaiters::spawn(&self.store, CLOSED_CHANNEL))
            .shared())
    }

    /// Starts a workflow on the `default` task queue. Idempotent on the workflow id: if a run
    /// of this id is open, its handle comes back and nothing new starts.
    pub async fn start<I: Serialize, O>(
        &self,
        def: WorkflowDef<I, O>,
        workflow_id: &str,
        input: &I,
    ) -> Result<WorkflowHandle<O>> {
        self.start_with(def, workflow_id, input, StartOptions::default(), None)
            .await
    }

    /// Starts a workflow on a given task queue (see [`Client::start`]).
    pub async fn start_on<I: Serialize, O>(
        &self,
        def: WorkflowDef<I, O>,
        workflow_id: &str,
        input: &I,
        task_queue: TaskQueue,
    ) -> Result<WorkflowHandle<O>> {
        let options = StartOptions {
            task_queue,
            id_reuse: IdReusePolicy::AllowDuplicate,
        };
        self.start_with(def, workflow_id, input, options, None)
            .await
    }

    /// Starts a workflow with options; with `signal`, also delivers it to the started (or
    /// already open) run in the same transaction.
    pub(crate) async fn start_with<I: Serialize, O>(
        &self,
        def: WorkflowDef<I, O>,
        workflow_id: &str,
        input: &I,
        options: StartOptions,
        signal: Option<EventKind>,
    ) -> Result<WorkflowHandle<O>> {
        let workflow_id = WorkflowId::new(workflow_id)?;
        let new = NewRun {
            workflow_type: WorkflowType::new(def.name())?,
            workflow_id: workflow_id.clone(),
            input: Payload::encode(input, self.store.limits())?,
            task_queue: options.task_queue,
        };
        let handle = |run_id| WorkflowHandle {
            client: self.clone(),
            workflow_id: workflow_id.clone(),
            run_id,
            output: PhantomData,
        };
        if options.id_reuse == IdReusePolicy::AllowDuplicate && signal.is_none() {
            in_runtime()?;
            let queue = self
                .starts
                .get_or_init(|| starts::StartQueue::spawn(&self.store));
            if let Some(run_id) = queue.start(new.clone()).await {
                return Ok(handle(run_id));
            }
        }
        let outcome = on_live_connection!(
            self.store,
            self.store
                .start_run(new.clone(), options.id_reuse, signal.clone())
        )?;
        Ok(handle(outcome.run_id))
    }

    /// A handle on the latest run of a workflow id.
    pub async fn handle<I, O>(
        &self,
        _def: WorkflowDef<I, O>,
        workflow_id: &str,
    ) -> Result<WorkflowHandle<O>> {
        let workflow_id = WorkflowId::new(workflow_id)?;
        let run = self.latest_run(&workflow_id).await?;
        Ok(WorkflowHandle {
            client: self.clone(),
            workflow_id,
            run_id: run.run_id,
            output: PhantomData,
        })
    }

    /// Sends a signal to a workflow's open run. A workflow id with no run, or whose run is
    /// closed, is a typed error.
    pub async fn signal<T: Serialize>(
        &self,
        workflow_id: &str,
        def: SignalDef<T>,
        value: &T,
    ) -> Result<()> {
        let run_id = self.open_run_id(workflow_id).await?;
        let input = EventKind::SignalReceived(SignalReceived {
            name: SignalName::new(def.name())?,
            payload: Payload::encode(value, self.store.limits())?,
        });
        on_live_connection!(self.store, self.store.deliver_now(run_id, &input))
    }

    /// The latest run of a workflow id: status, parked reason, pending activities.
    pub async fn describe(&self, workflow_id: &str) -> Result<Description> {
        let id = WorkflowId::new(workflow_id)?;
        let run = self.latest_run(&id).await?;
        let pending_activities =
            on_live_connection!(self.store, self.store.pending_activities(run.run_id))?;
        Ok(Description {
            run_id: run.run_id,
            workflow_type: run.workflow_type,
            status: run.status,
            parked_reason: run.parked_reason,
            head_seq: run.head_seq,
            pending_activities,
        })
    }

    /// For each patch recorded by runs of `workflow_type`: how many open runs recorded its
    /// marker, and how many did not. A run without the marker may still need the patch's old
    /// branch (it may also simply not have reached the patch yet): once none is left, the
    /// patch can become `deprecate_patch`.
    pub async fn patch_usage(&self, workflow_type: &str) -> Result<Vec<PatchUsage>> {
        on_live_connection!(self.store, self.store.patch_usage(workflow_type))
    }

    /// A run's history, verified, in the recorded-history format (write it with
    /// `RecordedHistory::to_bytes` or `to_json`).
    pub async fn export(&self, run_id: RunId) -> Result<RecordedHistory> {
        let events = on_live_connection!(self.store, self.store.history(run_id))?;
        Ok(RecordedHistory::new(events)?)
    }
}

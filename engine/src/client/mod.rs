//! The client: start workflows, await their results, signal them, describe them, and export
//! their histories.

use std::marker::PhantomData;
use std::time::Duration;

use reprise_history::{
    DataConverter, EventKind, Payload, RecordedHistory, RunId, RunState, SignalName,
    SignalReceived, TaskQueue, WorkflowId, WorkflowType,
};
use reprise_sdk::{SignalDef, WorkflowDef};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::backoff::Backoff;
use crate::error::{Error, Result};
use crate::listen::{Listening, RunWaiters};
use crate::store::{
    ANSWERS_CHANNEL, CLOSED_CHANNEL, ExecutionPolicy, IdReusePolicy, NewRun, PatchUsage, RunEnd,
    RunVerification, Store, on_live_connection, on_live_read, or_wait_again,
};
use crate::telemetry::trace;

mod browse;
mod describe;
mod lifecycle;
mod limits;
mod query;
mod schedules;
mod starts;
mod untyped;
mod update;

pub use browse::RunRelations;
pub use describe::{Description, RunOutcome};
pub use lifecycle::{Page, StartOptions};
pub use query::DEFAULT_QUERY_DEADLINE;
pub use schedules::{
    BackfillReport, MAX_BACKFILL, ScheduleDescription, TriggerOutcome, UPCOMING_FIRE_TIMES,
};

/// Talks to Reprise from application code.
#[derive(Clone)]
pub struct Client {
    store: Store,
    converter: DataConverter,
    /// Waiters for runs to close and for queries' answers, on one listening connection.
    waiters: std::sync::Arc<std::sync::OnceLock<Listening<RunWaiters>>>,
    starts: std::sync::Arc<std::sync::OnceLock<starts::StartQueue>>,
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
    /// [`WorkflowHandle::result`], giving up after `deadline` with [`Error::Timeout`] (the
    /// workflow goes on; ask again, or [`Client::describe`] it).
    pub async fn result_within(&self, deadline: std::time::Duration) -> Result<O> {
        match tokio::time::timeout(deadline, self.result()).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout {
                what: format!("the result of workflow {:?}", self.workflow_id.as_str()),
                after: deadline,
            }),
        }
    }

    /// Waits for the workflow's result, following continue-as-new to the last run. Waits on
    /// `LISTEN/NOTIFY`, polling at most once a second as the fallback.
    ///
    /// A workflow that failed is [`Error::WorkflowFailed`] with its recorded [`Failure`]
    /// (error type, cause chain, details); one that is parked is [`Error::WorkflowParked`]
    /// with the reason, at once, instead of a silent wait for code that may never come.
    ///
    /// [`Failure`]: reprise_history::Failure
    pub async fn result(&self) -> Result<O> {
        let span = tracing::info_span!("workflow_result", workflow_id = %self.workflow_id, run_id = %self.run_id);
        self.wait_result().instrument(span).await
    }

    async fn wait_result(&self) -> Result<O> {
        let mut run_id = self.run_id;
        let waiters = self.client.waiters()?;
        let mut backoff = Backoff::default();
        loop {
            // Watching starts before the read, so that a close between the two still wakes it.
            let watch = waiters.watch(run_id);
            let notified = watch.notify().notified();
            let store = &self.client.store;
            let end = or_wait_again!(store, backoff, store.run_end(run_id));
            let end = end.ok_or_else(|| Error::UnknownWorkflow {
                workflow_id: self.workflow_id.to_string(),
            })?;
            match end {
                RunEnd::Open {
                    parked_reason: Some(reason),
                } => {
                    return Err(Error::WorkflowParked {
                        workflow_id: self.workflow_id.to_string(),
                        run_id,
                        reason,
                    });
                }
                RunEnd::Open {
                    parked_reason: None,
                } => {
                    // A notification only says to look again: the closing event is read, and
                    // checked against the run's head hash, from the tables.
                    let _ = tokio::time::timeout(Duration::from_secs(1), notified).await;
                }
                RunEnd::ContinuedAs(next) => run_id = next,
                RunEnd::Closed(event) => return self.outcome(run_id, &event.kind),
            }
        }
    }

    /// The result of a closed run, from its closing event.
    fn outcome(&self, run_id: RunId, closing: &EventKind) -> Result<O> {
        let workflow_id = &self.workflow_id;
        let ended = |status: RunState, detail: String| Error::WorkflowEnded {
            workflow_id: workflow_id.to_string(),
            status,
            detail,
        };
        match closing {
            EventKind::WorkflowCompleted(c) => self
                .client
                .converter
                .from_payload::<O>(&c.result)
                .map_err(|source| Error::UndecodablePayload {
                    what: format!("result of workflow {:?}", workflow_id.as_str()),
                    rust_type: std::any::type_name::<O>(),
                    source: Box::new(source),
                }),
            EventKind::WorkflowFailed(f) => Err(Error::WorkflowFailed {
                workflow_id: workflow_id.to_string(),
                run_id,
                failure: Box::new(f.failure.clone()),
            }),
            EventKind::WorkflowCancelled(_) => {
                Err(ended(RunState::Cancelled, "cancelled on request".into()))
            }
            EventKind::WorkflowTerminated(t) => Err(ended(RunState::Terminated, t.reason.clone())),
            EventKind::WorkflowTimedOut(t) => Err(ended(RunState::TimedOut, t.timeout.reason())),
            other => Err(Error::Corrupt {
                what: format!("closing event of workflow {workflow_id}"),
                reason: format!("{} does not end a run with a result", other.name()),
            }),
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

impl Client {
    /// The latest run of a workflow id (riding through a restart, see `on_live_read!`); a
    /// typed error when there is none.
    pub(crate) async fn latest_run(&self, id: &WorkflowId) -> Result<crate::store::RunRow> {
        on_live_read!(self.store, self.store.latest_run(id))?.ok_or_else(|| {
            Error::UnknownWorkflow {
                workflow_id: id.to_string(),
            }
        })
    }

    /// A client of the Reprise database behind `store`, with JSON payloads and no codecs.
    pub fn new(store: Store) -> Client {
        Client {
            converter: DataConverter::new(*store.limits()),
            store,
            waiters: Default::default(),
            starts: Default::default(),
        }
    }

    /// The same client encoding and decoding payloads with `converter` (its codecs and keys):
    /// use the one the workflows' registry has (`Registry::converter`).
    pub fn with_converter(mut self, converter: DataConverter) -> Client {
        self.converter = converter;
        self
    }

    /// The store this client reads and writes (its pool, chain key and clock).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// How this client encodes and decodes payloads.
    pub fn converter(&self) -> &DataConverter {
        &self.converter
    }

    /// Who waits for which run to close or which query's answer (keyed by the query's id);
    /// listening starts with the first waiter.
    fn waiters(&self) -> Result<std::sync::Arc<RunWaiters>> {
        in_runtime()?;
        Ok(self
            .waiters
            .get_or_init(|| RunWaiters::spawn(&self.store, &[CLOSED_CHANNEL, ANSWERS_CHANNEL]))
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
            ..StartOptions::default()
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
        let input = self.converter.to_payload(input)?;
        self.start_payload(def.name(), workflow_id, input, options, signal)
            .await
    }

    /// Starts a workflow whose input is already encoded (codecs applied).
    pub(crate) async fn start_payload<O>(
        &self,
        workflow_type: &str,
        workflow_id: &str,
        input: Payload,
        options: StartOptions,
        signal: Option<EventKind>,
    ) -> Result<WorkflowHandle<O>> {
        let workflow_id = WorkflowId::new(workflow_id)?;
        if let Some(key) = &options.fairness_key {
            crate::flow_control::check_fairness_key(key)?;
        }
        let span = tracing::info_span!("start_workflow", workflow_type, workflow_id = %workflow_id, run_id = tracing::field::Empty);
        // The run joins this span's trace; when this span is not traced (filtered out), the
        // caller's own.
        let trace_context = trace::context_of(&span).or_else(trace::current);
        let new = NewRun {
            workflow_type: WorkflowType::new(workflow_type)?,
            workflow_id: workflow_id.clone(),
            input,
            task_queue: options.task_queue,
            trace_context,
            priority: options.priority,
            fairness_key: options.fairness_key,
            start_delay: options.start_delay,
            start_at: options.start_at,
            policy: ExecutionPolicy {
                run_timeout: options.run_timeout,
                execution_timeout: options.execution_timeout,
                retry: options.retry,
            },
        };
        new.policy.check()?;
        let run_id = self.start_new(new, options.id_reuse, signal, &span).await?;
        span.record("run_id", tracing::field::display(run_id));
        Ok(WorkflowHandle {
            client: self.clone(),
            workflow_id,
            run_id,
            output: PhantomData,
        })
    }

    /// Writes a start: in the statement concurrent plain starts share, or alone. Only the
    /// awaits are instrumented with `span`, not this whole future: a start's state is large,
    /// and wrapping it would copy it twice per start (measured under callgrind).
    async fn start_new(
        &self,
        new: NewRun,
        id_reuse: IdReusePolicy,
        signal: Option<EventKind>,
        span: &tracing::Span,
    ) -> Result<RunId> {
        if id_reuse == IdReusePolicy::AllowDuplicate && signal.is_none() && new.is_plain() {
            in_runtime()?;
            let queue = self
                .starts
                .get_or_init(|| starts::StartQueue::spawn(&self.store));
            if let Some(run_id) = queue.start(new.clone()).instrument(span.clone()).await {
                return Ok(run_id);
            }
        }
        let alone = async {
            on_live_connection!(
                self.store,
                self.store.start_run(new.clone(), id_reuse, signal.clone())
            )
        };
        Ok(Box::pin(alone).instrument(span.clone()).await?.run_id)
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
        let payload = self.converter.to_payload(value)?;
        self.signal_payload(workflow_id, def.name(), payload).await
    }

    /// Sends a signal whose payload is already encoded (codecs applied).
    pub(crate) async fn signal_payload(
        &self,
        workflow_id: &str,
        name: &str,
        payload: Payload,
    ) -> Result<()> {
        let name = SignalName::new(name)?;
        let span = tracing::info_span!("signal_workflow", workflow_id, signal = %name, run_id = tracing::field::Empty);
        async {
            let run_id = self.open_run_id(workflow_id).await?;
            tracing::Span::current().record("run_id", tracing::field::display(run_id));
            let input = EventKind::SignalReceived(SignalReceived { name, payload });
            on_live_connection!(self.store, self.store.deliver_now(run_id, &input))
        }
        .instrument(span)
        .await
    }

    /// For each patch recorded by runs of `workflow_type`: how many open runs recorded its
    /// marker, and how many did not. A run without the marker may still need the patch's old
    /// branch (it may also simply not have reached the patch yet): once none is left, the
    /// patch can become `deprecate_patch`.
    pub async fn patch_usage(&self, workflow_type: &str) -> Result<Vec<PatchUsage>> {
        on_live_read!(self.store, self.store.patch_usage(workflow_type))
    }

    /// Verifies every run of a workflow id, oldest first: each link of its chain (keyed links
    /// with this client's chain key) and its recorded head (`reprise verify`).
    pub async fn verify(&self, workflow_id: &str) -> Result<Vec<RunVerification>> {
        let id = WorkflowId::new(workflow_id)?;
        let runs = on_live_read!(self.store, self.store.runs_of(&id))?;
        if runs.is_empty() {
            return Err(Error::UnknownWorkflow {
                workflow_id: workflow_id.to_string(),
            });
        }
        let mut verified = Vec::with_capacity(runs.len());
        for run in runs {
            if let Some(v) = on_live_read!(self.store, self.store.verify_run(run))? {
                verified.push(v);
            }
        }
        Ok(verified)
    }

    /// Verifies up to `limit` runs after `after`, in run-id order: a page of `verify --all`
    /// (the last run id is the next page's `after`).
    pub async fn verify_page(
        &self,
        after: Option<RunId>,
        limit: i64,
    ) -> Result<Vec<RunVerification>> {
        let runs = on_live_read!(self.store, self.store.run_ids_after(after, limit))?;
        let mut verified = Vec::with_capacity(runs.len());
        for run in runs {
            if let Some(v) = on_live_read!(self.store, self.store.verify_run(run))? {
                verified.push(v);
            }
        }
        Ok(verified)
    }

    /// A run's history, verified, in the recorded-history format (write it with
    /// `RecordedHistory::to_bytes` or `to_json`).
    pub async fn export(&self, run_id: RunId) -> Result<RecordedHistory> {
        let events = on_live_read!(self.store, self.store.history(run_id))?;
        Ok(RecordedHistory::new(events)?)
    }
}

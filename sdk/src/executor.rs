//! The replay executor: runs an orchestrator future against history, sans I/O.
//!
//! It polls the future with its own waker, never on a runtime. Inputs are applied one at a
//! time in history order; after each, the future is polled until it can make no progress,
//! and the decisions it makes must be the ones recorded after that input (replaying) or
//! become the new ones (live). Live execution follows exactly the same path.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};

use futures::future::BoxFuture;
use rand_core::RngCore;
use reprise_history::{
    Event, EventClass, EventKind, Failure, FailureKind, Payload, RunId, Seq, Timestamp, UpdateId,
    UpdateOutcome, WorkflowCancelled, WorkflowCompleted, WorkflowContinuedAsNew, WorkflowFailed,
    WorkflowTimeout,
};

use crate::context::WorkflowContext;
use crate::error::{Error, OperationEnd, OperationFailed, WorkflowError};
use crate::fence;
use crate::inputs::InputChanges;
use crate::local::LocalActivityRequest;
use crate::nondeterminism::{Nondeterminism, NondeterminismKind};
use crate::query::QueryError;
use crate::registry::Registry;
use crate::state::{Mode, OpKind, Outcome, RunState, Shared, cancel_decision};
use crate::update::{self, UpdateRejection};

/// Where a run stands after the events applied so far.
#[derive(Clone, Debug, PartialEq)]
pub enum RunStatus {
    /// Waiting for inputs.
    Running,
    /// Returned a result.
    Completed(Payload),
    /// Returned an error.
    Failed(Failure),
    /// Acknowledged a cancel request.
    Cancelled,
    /// Continued as a new run.
    ContinuedAsNew(WorkflowContinuedAsNew),
    /// Terminated by an operator.
    Terminated,
    /// Closed by the engine at a deadline its starter set.
    TimedOut(WorkflowTimeout),
}

/// The events one live step appends: each input followed by the decisions it led to.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// Inputs and decisions, in history order, with their seqs.
    pub events: Vec<Event>,
    /// How many of the inputs given were applied: fewer than given when the run closed on the
    /// way (the rest were never seen by the workflow; a continue-as-new hands on its signals).
    pub applied_inputs: usize,
}

impl Step {
    /// Only the decisions.
    pub fn decisions(&self) -> impl Iterator<Item = &Event> {
        self.events
            .iter()
            .filter(|e| e.kind.class() == EventClass::Decision)
    }
}

/// The waker the orchestrator is polled with. A wake outside a step did not come from
/// Reprise (a thread, a channel fed from outside): replay could never reproduce it.
#[derive(Default)]
struct RootWaker {
    woken: AtomicBool,
    in_step: AtomicBool,
    foreign: AtomicBool,
    /// Told, once, of the first wake from outside: the host steps the run soon, so that the
    /// step reports it instead of a wait for an input that may never come.
    on_foreign: OnceLock<Box<dyn Fn() + Send + Sync>>,
}

impl Wake for RootWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        if !self.in_step.load(Ordering::SeqCst)
            && !self.foreign.swap(true, Ordering::SeqCst)
            && let Some(notify) = self.on_foreign.get()
        {
            notify();
        }
    }
}

/// One run's live orchestrator.
pub struct Execution {
    shared: Shared,
    root: Arc<RootWaker>,
    future: Option<BoxFuture<'static, Result<Payload, WorkflowError>>>,
    /// Accepted updates' handlers still running, in the order they were accepted.
    updates: Vec<update::RunningUpdate>,
    status: RunStatus,
    last_seq: Seq,
    discarded: bool,
}

impl Execution {
    fn create(
        registry: &Registry,
        started: &Event,
        input_changes: InputChanges,
    ) -> Result<Execution, Error> {
        let EventKind::WorkflowStarted(s) = &started.kind else {
            return Err(bad(format!(
                "seq {} is {}, not WorkflowStarted",
                started.seq,
                started.kind.name()
            )));
        };
        if started.seq != Seq::FIRST {
            return Err(bad(format!("WorkflowStarted at seq {}", started.seq)));
        }
        let unknown = s.replay_rules.unknown();
        if !unknown.is_empty() {
            return Err(Error::UnknownReplayRules { unknown });
        }
        let run = registry.workflow(&s.workflow_type)?;
        let shared = Shared::new(RunState::new(
            started,
            s,
            registry.converter().clone(),
            input_changes,
        ));
        let future = run(WorkflowContext::new(shared.clone()), s.input.clone());
        Ok(Execution {
            shared,
            root: Arc::new(RootWaker::default()),
            future: Some(future),
            updates: Vec::new(),
            status: RunStatus::Running,
            last_seq: Seq::new(0),
            discarded: false,
        })
    }

    /// Replays recorded history strictly: every decision the code makes must be the recorded
    /// one. The execution is left after the last event, ready to continue live. A decision
    /// given another input than the recorded one is reported, not failed (see
    /// [`Execution::replay_with`]).
    pub fn replay(registry: &Registry, events: &[Event]) -> Result<Execution, Error> {
        Execution::replay_with(registry, events, InputChanges::Report)
    }

    /// [`Execution::replay`], saying what a changed input does: reported through
    /// [`Execution::take_input_changes`], or failing the replay with ND08. Only runs recorded
    /// under the replay rule `COMPARE_INPUTS` compare inputs.
    pub fn replay_with(
        registry: &Registry,
        events: &[Event],
        input_changes: InputChanges,
    ) -> Result<Execution, Error> {
        let first = events
            .first()
            .ok_or_else(|| bad("history is empty".to_string()))?;
        let mut execution = Execution::create(registry, first, input_changes)?;
        let mut i = 0;
        while i < events.len() {
            let input = &events[i];
            if input.kind.class() != EventClass::Input {
                return Err(bad(format!(
                    "seq {}: {} where an input was expected",
                    input.seq,
                    input.kind.name()
                )));
            }
            let end = events[i + 1..]
                .iter()
                .position(|e| e.kind.class() == EventClass::Input)
                .map_or(events.len(), |p| i + 1 + p);
            let expected: VecDeque<Event> = events[i + 1..end].iter().cloned().collect();
            execution.apply(input, expected)?;
            i = end;
        }
        execution.shared.lock().mode = Mode::Live;
        Ok(execution)
    }

    /// Starts a new run live from its `WorkflowStarted` event (seq 1).
    pub fn start(registry: &Registry, started: Event) -> Result<(Execution, Step), Error> {
        let mut execution = Execution::create(registry, &started, InputChanges::Report)?;
        execution.shared.lock().mode = Mode::Live;
        let decisions = execution.apply(&started, VecDeque::new())?;
        let mut events = vec![started];
        events.extend(decisions);
        Ok((
            execution,
            Step {
                events,
                applied_inputs: 1,
            },
        ))
    }

    /// Applies new inputs live, each recorded at the given (database) time, and returns the
    /// events to append. Inputs after the run closes are not applied (see
    /// [`Step::applied_inputs`]); a step on a run already closed is an error. A step with no
    /// inputs only checks that nothing outside Reprise woke the workflow since the last one
    /// (ND05).
    pub fn step(
        &mut self,
        inputs: impl IntoIterator<Item = (Timestamp, EventKind)>,
    ) -> Result<Step, Error> {
        if self.status == RunStatus::Running && self.root.foreign.swap(false, Ordering::SeqCst) {
            let at = self.last_seq.next();
            return self.fail(nondeterminism(at, NondeterminismKind::ForeignWake).into());
        }
        let mut events = Vec::new();
        let mut applied_inputs = 0;
        for (recorded_at, kind) in inputs {
            if self.status != RunStatus::Running && applied_inputs > 0 {
                break;
            }
            if kind.class() != EventClass::Input || matches!(kind, EventKind::WorkflowStarted(_)) {
                return Err(bad(format!(
                    "{} is not an input a running workflow can take",
                    kind.name()
                )));
            }
            // An update is checked before it is recorded: a refused one never is (see
            // `update::admit`).
            if let EventKind::UpdateAccepted(update) = &kind
                && self.status == RunStatus::Running
                && !self.discarded
                && !update::admit(&self.shared, update)
            {
                applied_inputs += 1;
                continue;
            }
            let input = Event {
                seq: self.last_seq.next(),
                recorded_at,
                kind,
            };
            let decisions = self.apply(&input, VecDeque::new())?;
            events.push(input);
            events.extend(decisions);
            applied_inputs += 1;
        }
        Ok(Step {
            events,
            applied_inputs,
        })
    }

    /// Calls `notify` once, from whichever thread wakes it, when something outside Reprise
    /// wakes the workflow between steps. The host should then step the run (with no inputs, if
    /// none came): that step fails with ND05 at once, instead of when an input happens to come.
    pub fn on_foreign_wake(&self, notify: impl Fn() + Send + Sync + 'static) {
        let _ = self.root.on_foreign.set(Box::new(notify));
    }

    /// The decisions replay found given another input than history holds (ND08), since the
    /// last call; empty when the run was recorded before inputs were compared.
    pub fn take_input_changes(&mut self) -> Vec<Nondeterminism> {
        std::mem::take(&mut self.shared.lock().changed_inputs)
    }

    /// Where the run stands.
    pub fn status(&self) -> &RunStatus {
        &self.status
    }

    /// The seq of the last event applied or decided.
    pub fn last_seq(&self) -> Seq {
        self.last_seq
    }

    /// Signals that arrived and were never received (each name in arrival order): a
    /// continue-as-new hands them to the next run.
    pub fn unreceived_signals(&self) -> Vec<(reprise_history::SignalName, Payload)> {
        self.shared.lock().buffered_signals()
    }

    /// The local activities the workflow now waits on that the host has not been handed
    /// yet, in the order they were scheduled. The host runs each (see
    /// [`crate::LocalActivityRequest::run`]) while it holds the run, and delivers each
    /// outcome with [`Execution::resolve_local_activity`] before it writes the step.
    pub fn take_local_activities(&mut self) -> Vec<LocalActivityRequest> {
        if self.status != RunStatus::Running || self.discarded {
            return Vec::new();
        }
        self.shared.lock().take_local()
    }

    /// Whether a local activity waits for its outcome: a step that leaves one waiting must
    /// not be written as it is.
    pub fn awaits_local_activities(&self) -> bool {
        self.status == RunStatus::Running && self.shared.lock().has_local()
    }

    /// Applies a local activity's outcome (the input [`crate::LocalActivityRequest::run`]
    /// returned) live, recorded at `at`, and returns the events to append, as
    /// [`Execution::step`] does. `None` when the workflow no longer waits on it (it dropped
    /// the call meanwhile, or was asked to cancel): the outcome is not recorded.
    pub fn resolve_local_activity(
        &mut self,
        at: Timestamp,
        outcome: EventKind,
    ) -> Result<Option<Step>, Error> {
        let scheduled = match &outcome {
            EventKind::ActivityCompleted(e) => e.scheduled,
            EventKind::ActivityFailed(e) => e.scheduled,
            EventKind::ActivityTimedOut(e) => e.scheduled,
            EventKind::LocalActivityBackoff(e) => e.scheduled,
            other => {
                return Err(bad(format!(
                    "{} is not a local activity's outcome",
                    other.name()
                )));
            }
        };
        if self.status != RunStatus::Running || !self.shared.lock().awaits_local(scheduled) {
            return Ok(None);
        }
        self.step([(at, outcome)]).map(Some)
    }

    /// Answers a query from the workflow's state as of the last event applied, recording
    /// nothing. A panic in the handler is [`QueryError::Panicked`]; the run goes on as it was.
    pub fn query(&self, name: &str, input: &Payload) -> Result<Payload, QueryError> {
        let (handler, converter) = {
            let state = self.shared.lock();
            (state.queries.find(name)?, state.converter.clone())
        };
        crate::query::answer(&handler, name, &converter, input)
    }

    /// The custom status the workflow last set, encoded (`None`: never set).
    pub fn custom_status(&self) -> Option<Payload> {
        self.shared.lock().custom_status.clone()
    }

    /// The custom status if the workflow set it live since the host last wrote it (see
    /// [`Execution::written`]): what the step being written should store.
    pub fn unwritten_status(&self) -> Option<Payload> {
        let state = self.shared.lock();
        state
            .status_unwritten
            .then(|| state.custom_status.clone())
            .flatten()
    }

    /// The updates refused live since the host last wrote the refusals (see
    /// [`Execution::written`]): their callers are to be told; nothing was recorded.
    pub fn unwritten_rejections(&self) -> Vec<UpdateRejection> {
        self.shared.lock().rejections.clone()
    }

    /// Outcomes of updates sent again with an id the run had accepted and finished before,
    /// since the host last wrote them: their callers get them again; nothing was recorded.
    pub fn unwritten_answers(&self) -> Vec<(UpdateId, UpdateOutcome)> {
        self.shared.lock().answers.clone()
    }

    /// Tells the execution that the host stored what its steps carried beyond their events
    /// ([`Execution::unwritten_status`], [`Execution::unwritten_rejections`],
    /// [`Execution::unwritten_answers`]): the step that carried them is written.
    pub fn written(&mut self) {
        let mut state = self.shared.lock();
        state.status_unwritten = false;
        state.rejections.clear();
        state.answers.clear();
    }

    /// The run.
    pub fn run_id(&self) -> RunId {
        self.shared.lock().run_id
    }

    fn apply(&mut self, input: &Event, expected: VecDeque<Event>) -> Result<Vec<Event>, Error> {
        if self.discarded {
            return Err(Error::Discarded);
        }
        if self.status != RunStatus::Running {
            return Err(Error::RunClosed);
        }
        if self.root.foreign.swap(false, Ordering::SeqCst) {
            return self.fail(nondeterminism(input.seq, NondeterminismKind::ForeignWake).into());
        }
        // Everything that wakes the orchestrator from here on is Reprise's own doing.
        self.root.in_step.store(true, Ordering::SeqCst);
        {
            let mut state = self.shared.lock();
            state.begin_input(input, expected);
            deliver(&mut state, input);
        }
        if let EventKind::UpdateAccepted(update) = &input.kind {
            let started = update::start(&self.shared, input.seq, update);
            self.updates.extend(started);
        }
        let polled = match &input.kind {
            EventKind::WorkflowTerminated(_) => {
                self.status = RunStatus::Terminated;
                Ok(())
            }
            EventKind::WorkflowTimedOut(t) => {
                self.status = RunStatus::TimedOut(t.timeout);
                Ok(())
            }
            _ => self.poll_to_quiescence(input.seq),
        };
        self.root.in_step.store(false, Ordering::SeqCst);
        polled?;
        let (decisions, error, last) = {
            let mut state = self.shared.lock();
            let decisions = state.end_input();
            (decisions, state.error.take(), state.last_seq())
        };
        if let Some(error) = error {
            return self.fail(error);
        }
        self.last_seq = last;
        if self.status != RunStatus::Running {
            self.discard_future();
        }
        Ok(decisions)
    }

    fn poll_to_quiescence(&mut self, seq: Seq) -> Result<(), Error> {
        let Some(future) = self.future.as_mut() else {
            return Err(Error::Discarded);
        };
        let waker = Waker::from(self.root.clone());
        let mut cx = Context::from_waker(&waker);
        // What the code logs or traces while it replays was logged when it ran live: replay
        // polls it with no subscriber, so that a restart does not repeat a run's log lines
        // and spans (`ctx.is_replaying()` says the same to code that wants to know).
        let replaying = self.shared.lock().mode == Mode::Replaying;
        let silent = tracing::Dispatch::none();
        let mut poll = |cx: &mut Context<'_>| {
            let _fenced = fence::enter();
            if replaying {
                tracing::dispatcher::with_default(&silent, || future.as_mut().poll(cx))
            } else {
                future.as_mut().poll(cx)
            }
        };
        let updates = &mut self.updates;
        let shared = &self.shared;
        let outcome = loop {
            self.root.woken.store(false, Ordering::SeqCst);
            match catch_unwind(AssertUnwindSafe(|| poll(&mut cx))) {
                Err(panic) => break Err(panic_message(panic.as_ref())),
                Ok(Poll::Ready(result)) => break Ok(Some(result)),
                Ok(Poll::Pending) => {}
            }
            // Update handlers run after the main code, in the order they were accepted.
            let before = shared.lock().next_seq();
            crate::query::take_changed();
            let polled = catch_unwind(AssertUnwindSafe(|| {
                update::poll_running(updates, &mut cx, replaying, &silent)
            }));
            let changed = crate::query::take_changed();
            let finished = match polled {
                Err(panic) => break Err(panic_message(panic.as_ref())),
                Ok(finished) => finished,
            };
            let mut state = shared.lock();
            let progressed = changed || !finished.is_empty() || state.next_seq() != before;
            for completed in finished {
                let (id, outcome) = (completed.update_id.clone(), completed.outcome.clone());
                state.accepted_updates.insert(id, Some(outcome));
                state.decide(EventKind::UpdateCompleted(completed), None);
            }
            // A handler moved or changed the state: conditions are checked again.
            if progressed {
                state.wake_waiters();
            }
            if state.error.is_some() || !self.root.woken.load(Ordering::SeqCst) {
                break Ok(None);
            }
        };
        match outcome {
            Err(message) => match fence::driver_refused(&message) {
                Some(driver) => self
                    .fail(nondeterminism(seq, NondeterminismKind::TokioDriver { driver }).into()),
                None => self.fail(Error::WorkflowPanicked { seq, message }),
            },
            Ok(Some(result)) => {
                if !replaying && !self.updates.is_empty() {
                    tracing::warn!(
                        updates = self.updates.len(),
                        "the workflow returned while update handlers ran; they are dropped and their callers told the run closed"
                    );
                }
                self.close(result);
                Ok(())
            }
            Ok(None) => {
                let mut state = self.shared.lock();
                if state.error.is_none() && !state.has_live_waits() {
                    state.fail(nondeterminism(seq, NondeterminismKind::AwaitsForeignFuture));
                }
                Ok(())
            }
        }
    }

    /// The orchestrator returned: decide the closing event.
    fn close(&mut self, result: Result<Payload, WorkflowError>) {
        let mut state = self.shared.lock();
        let (kind, status) = match result {
            Ok(result) => (
                EventKind::WorkflowCompleted(WorkflowCompleted {
                    result: result.clone(),
                }),
                RunStatus::Completed(result),
            ),
            Err(WorkflowError::Failed(failure)) => (
                EventKind::WorkflowFailed(WorkflowFailed {
                    failure: failure.clone(),
                }),
                RunStatus::Failed(failure),
            ),
            Err(WorkflowError::Cancelled { details }) => (
                EventKind::WorkflowCancelled(WorkflowCancelled { details }),
                RunStatus::Cancelled,
            ),
            Err(WorkflowError::ContinueAsNew(next)) => {
                let mut bytes = [0u8; 16];
                state.rng().fill_bytes(&mut bytes);
                let continued = WorkflowContinuedAsNew {
                    new_run_id: RunId::from_uuid(
                        uuid::Builder::from_random_bytes(bytes).into_uuid(),
                    ),
                    workflow_type: state.workflow_type.clone(),
                    input: next.input,
                    task_queue: state.task_queue.clone(),
                };
                (
                    EventKind::WorkflowContinuedAsNew(continued.clone()),
                    RunStatus::ContinuedAsNew(continued),
                )
            }
        };
        state.decide(kind, None);
        state.closed = true;
        self.status = status;
    }

    fn fail<T>(&mut self, error: Error) -> Result<T, Error> {
        self.discarded = true;
        self.discard_future();
        Err(error)
    }

    /// Drops the orchestrator without deciding anything (no cancellations on drop). The
    /// workflow's state is user code: a `Drop` of it that panics must not take the process
    /// down with it, so the panic is caught (the panic hook has reported it) and the
    /// execution is discarded as it would be anyway.
    fn discard_future(&mut self) {
        // Update handlers may hold the workflow's context: dropped with the run, not kept.
        let handlers = {
            let mut state = self.shared.lock();
            state.tearing_down = true;
            std::mem::take(&mut state.updates)
        };
        drop(handlers);
        let future = self.future.take();
        let updates = std::mem::take(&mut self.updates);
        if catch_unwind(AssertUnwindSafe(move || drop((future, updates)))).is_err() {
            self.discarded = true;
        }
    }
}

impl Drop for Execution {
    fn drop(&mut self) {
        self.discard_future();
    }
}

fn bad(reason: String) -> Error {
    Error::BadHistory { reason }
}

fn nondeterminism(seq: Seq, kind: NondeterminismKind) -> Nondeterminism {
    Nondeterminism {
        seq,
        kind,
        location: None,
    }
}

pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_string()
    }
}

/// Hands an input to the operation or buffer waiting for it.
fn deliver(state: &mut RunState, input: &Event) {
    let failed = |what: &'static str, end: OperationEnd, failure: &Failure, attempts: u32| {
        let failure = Box::new(failure.clone());
        move |name: &str| {
            Outcome::Failed(OperationFailed {
                what,
                name: name.to_string(),
                end,
                failure,
                attempts,
            })
        }
    };
    match &input.kind {
        EventKind::ActivityCompleted(e) => {
            let result = e.result.clone();
            let kind = state.activity_kind(e.scheduled);
            state.resolve(input, e.scheduled, kind, |_| {
                Outcome::Value(result, input.seq)
            });
        }
        EventKind::ActivityFailed(e) => {
            let kind = state.activity_kind(e.scheduled);
            let what = activity_noun(&kind);
            state.resolve(
                input,
                e.scheduled,
                kind,
                failed(what, OperationEnd::Failed, &e.failure, e.attempt),
            );
        }
        EventKind::ActivityTimedOut(e) => {
            let failure = e.last_failure.clone().unwrap_or_else(|| {
                Failure::of_kind(FailureKind::TimedOut, format!("{:?} timeout", e.timeout))
            });
            let kind = state.activity_kind(e.scheduled);
            let what = activity_noun(&kind);
            state.resolve(
                input,
                e.scheduled,
                kind,
                failed(what, OperationEnd::TimedOut, &failure, e.attempt),
            );
        }
        EventKind::LocalActivityBackoff(e) => {
            let (attempt, backoff) = (e.attempt, e.backoff);
            state.resolve(input, e.scheduled, OpKind::LocalActivity, |_| {
                Outcome::Backoff { attempt, backoff }
            });
        }
        EventKind::ActivityCancelled(e) => {
            state.resolve(input, e.scheduled, OpKind::Activity, |_| Outcome::Cancelled);
        }
        EventKind::TimerFired(e) => {
            state.resolve(input, e.started, OpKind::Timer, |_| {
                Outcome::Value(Payload::unit(), input.seq)
            });
        }
        EventKind::ChildWorkflowCompleted(e) => {
            let result = e.result.clone();
            state.resolve(input, e.started, OpKind::Child, |_| {
                Outcome::Value(result, input.seq)
            });
        }
        EventKind::ChildWorkflowFailed(e) => {
            let end = match e.failure.kind {
                FailureKind::Cancelled => OperationEnd::Cancelled,
                FailureKind::TimedOut => OperationEnd::TimedOut,
                FailureKind::Application | FailureKind::Terminated | FailureKind::Panicked => {
                    OperationEnd::Failed
                }
            };
            state.resolve(
                input,
                e.started,
                OpKind::Child,
                failed("child workflow", end, &e.failure, 1),
            );
        }
        EventKind::SignalReceived(e) => {
            state.push_signal(e.name.clone(), e.payload.clone(), input.seq)
        }
        EventKind::CancelRequested(_) => {
            for (seq, kind) in state.request_cancel() {
                if let Some(decision) = cancel_decision(&kind, seq) {
                    state.decide(decision, None);
                }
            }
        }
        // Started creates the execution; terminated and timed out are handled by the caller.
        EventKind::WorkflowStarted(_)
        | EventKind::WorkflowTerminated(_)
        | EventKind::WorkflowTimedOut(_) => {}
        // Decisions are never inputs (the callers check the class).
        EventKind::ActivityScheduled(_)
        | EventKind::ActivityCancelRequested(_)
        | EventKind::TimerStarted(_)
        | EventKind::TimerCancelled(_)
        | EventKind::ChildWorkflowStarted(_)
        | EventKind::ChildWorkflowCancelRequested(_)
        | EventKind::MarkerRecorded(_)
        | EventKind::WorkflowCompleted(_)
        | EventKind::WorkflowFailed(_)
        | EventKind::WorkflowCancelled(_)
        | EventKind::WorkflowContinuedAsNew(_)
        | EventKind::LocalActivityScheduled(_)
        | EventKind::UpdateCompleted(_) => {}
        // The executor starts the update's handler (`Execution::start_update`).
        EventKind::UpdateAccepted(_) => {}
    }
}

/// What the code is told failed: an activity or a local activity.
fn activity_noun(kind: &OpKind) -> &'static str {
    match kind {
        OpKind::LocalActivity => "local activity",
        OpKind::Activity | OpKind::Timer | OpKind::Child => "activity",
    }
}

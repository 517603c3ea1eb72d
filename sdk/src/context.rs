//! `WorkflowContext`: everything an orchestrator may do, each usable live and on replay.
//!
//! Methods are `#[track_caller]`, so a decision and any nondeterminism it causes name the
//! line of workflow code that made it.

use std::panic::Location;
use std::time::Duration;

use rand_core::RngCore;
use reprise_history::{
    ActivityOptions, ActivityScheduled, ActivityType, ChildWorkflowStarted, EventKind, Marker,
    ParentClosePolicy, PatchId, Payload, RunId, Seq, SignalName, Timestamp, WorkflowId,
    WorkflowType,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::defs::{ActivityDef, QueryDef, SignalDef, UpdateDef, WorkflowDef};
use crate::error::{ContinueAsNew, Error, WorkflowError};
use crate::nondeterminism::SourceLocation;
use crate::ops::{
    ActivityCall, CancelWait, ChildCall, LocalActivityCall, SignalWait, Sleep, WaitUntil,
    input_failure,
};
use crate::query::WorkflowState;
use crate::state::{Mode, Shared};
use crate::status::{StatusError, encode_status};

/// The handle an orchestrator gets: durable operations, recorded time and randomness.
///
/// Orchestrator code must take time, randomness and ids only from here, and await only the
/// futures it returns (and combinations of them: `join!`, `select!`, `join_all`).
#[derive(Clone)]
pub struct WorkflowContext {
    shared: Shared,
}

impl WorkflowContext {
    pub(crate) fn new(shared: Shared) -> Self {
        WorkflowContext { shared }
    }

    /// The workflow id.
    pub fn workflow_id(&self) -> WorkflowId {
        self.shared.lock().workflow_id.clone()
    }

    /// This run.
    pub fn run_id(&self) -> RunId {
        self.shared.lock().run_id
    }

    /// How this run came to be, as its `WorkflowStarted` records it: a client's start, a
    /// schedule's firing (with the time it was for), a retry, a reset, a continue-as-new.
    /// It is this run's own: a reset or retried run of a scheduled workflow says `Reset` or
    /// `Retried`, so code that must decide the same on every run of the workflow (which
    /// period a scheduled report covers) reads what the workflow id says instead
    /// (`reprise_schedule::firing_time_of`).
    pub fn origin(&self) -> reprise_history::RunOrigin {
        self.shared.lock().origin.clone()
    }

    /// Whether the code is reproducing recorded history. Logs and spans made while it is are
    /// dropped (they were made when the code ran live), so code need not check it to log.
    pub fn is_replaying(&self) -> bool {
        self.shared.lock().mode == Mode::Replaying
    }

    /// The recorded time of the input being applied: the same on every replay.
    pub fn now(&self) -> Timestamp {
        self.shared.lock().now
    }

    /// A random number from a generator seeded by the run id: the same on every replay.
    pub fn random_u64(&self) -> u64 {
        self.shared.lock().rng().next_u64()
    }

    /// A random (version 4) uuid from the run's generator: the same on every replay.
    pub fn uuid(&self) -> uuid::Uuid {
        let mut bytes = [0u8; 16];
        self.shared.lock().rng().fill_bytes(&mut bytes);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    /// Runs an activity (on the workflow's task queue, with default options unless set on
    /// the returned call).
    #[track_caller]
    pub fn activity<I: Serialize, O: DeserializeOwned>(
        &self,
        def: ActivityDef<I, O>,
        input: &I,
    ) -> ActivityCall<O> {
        let location = SourceLocation::from(Location::caller());
        let decision = {
            let state = self.shared.lock();
            ActivityType::new(def.name())
                .and_then(|activity_type| {
                    Ok(EventKind::ActivityScheduled(ActivityScheduled {
                        activity_type,
                        task_queue: state.task_queue.clone(),
                        input: state.converter.to_payload(input)?,
                        options: ActivityOptions::default(),
                        priority: None,
                    }))
                })
                .map_err(|e| input_failure(&e))
        };
        ActivityCall::new(
            self.shared.clone(),
            def.name().to_string(),
            location,
            decision,
        )
    }

    /// Runs an activity's code inline, in the engine process that steps this run, inside the
    /// step: no task, no worker, no queue hop. Its outcome is recorded in history and replayed,
    /// never run again once recorded; a crash before it is recorded runs it again
    /// (at-least-once, with the same idempotency key). The engine's registry must register
    /// the activity. For short work (a quick call, a database write): the run is held while
    /// it runs. Long, heartbeating, routed or rate-limited work belongs in
    /// [`WorkflowContext::activity`] (see `docs/local-activities.md`).
    #[track_caller]
    pub fn local_activity<I: Serialize, O: DeserializeOwned>(
        &self,
        def: ActivityDef<I, O>,
        input: &I,
    ) -> LocalActivityCall<O> {
        let location = SourceLocation::from(Location::caller());
        let scheduling = {
            let state = self.shared.lock();
            ActivityType::new(def.name())
                .and_then(|activity_type| Ok((activity_type, state.converter.to_payload(input)?)))
                .map_err(|e| input_failure(&e))
        };
        LocalActivityCall::new(
            self.shared.clone(),
            def.name().to_string(),
            location,
            scheduling,
        )
    }

    /// A durable timer: sleeps for `duration` of recorded time, across restarts.
    #[track_caller]
    pub fn sleep(&self, duration: Duration) -> Sleep {
        Sleep::new(self.shared.clone(), duration, Location::caller().into())
    }

    /// Waits for the next signal of this name; signals that arrived earlier are buffered.
    pub fn signal<T: DeserializeOwned>(&self, def: SignalDef<T>) -> SignalWait<T> {
        SignalWait::new(self.shared.clone(), SignalName::new(def.name()))
    }

    /// Resolves when the workflow is asked to cancel. Operations pending at that moment end
    /// with `Cancelled`; operations started afterwards run normally, for clean-up.
    pub fn cancel_requested(&self) -> CancelWait {
        CancelWait::new(self.shared.clone())
    }

    /// Whether the workflow has been asked to cancel.
    pub fn is_cancel_requested(&self) -> bool {
        self.shared.lock().cancel_requested
    }

    /// Starts a child workflow with the given id; its result comes back to this run.
    #[track_caller]
    pub fn child<I: Serialize, O: DeserializeOwned>(
        &self,
        def: WorkflowDef<I, O>,
        workflow_id: &str,
        input: &I,
    ) -> ChildCall<O> {
        let location = SourceLocation::from(Location::caller());
        let decision = {
            let mut state = self.shared.lock();
            let mut bytes = [0u8; 16];
            state.rng().fill_bytes(&mut bytes);
            let run_id = RunId::from_uuid(uuid::Builder::from_random_bytes(bytes).into_uuid());
            let build = || -> reprise_history::Result<EventKind> {
                Ok(EventKind::ChildWorkflowStarted(ChildWorkflowStarted {
                    workflow_type: WorkflowType::new(def.name())?,
                    workflow_id: WorkflowId::new(workflow_id)?,
                    run_id,
                    input: state.converter.to_payload(input)?,
                    task_queue: state.task_queue.clone(),
                    parent_close_policy: ParentClosePolicy::default(),
                    run_timeout: None,
                    execution_timeout: None,
                    retry: None,
                }))
            };
            build().map_err(|e| input_failure(&e))
        };
        ChildCall::new(
            self.shared.clone(),
            def.name().to_string(),
            location,
            decision,
        )
    }

    /// A payload the code receives, decoded; `None` (and the step fails with the typed error
    /// naming `seq`) if it does not decode.
    pub(crate) fn decode_payload<T: DeserializeOwned>(
        &self,
        payload: &Payload,
        seq: Seq,
        holder: impl FnOnce() -> String,
    ) -> Option<T> {
        self.shared.decode_or_fail(payload, seq, holder)
    }

    /// The converter payloads are encoded with.
    pub(crate) fn converter(&self) -> reprise_history::DataConverter {
        self.shared.lock().converter.clone()
    }

    /// The workflow's input, decoded; `None` (and the step fails with the typed error) if it
    /// does not decode.
    pub(crate) fn decode_input<T: DeserializeOwned>(&self, input: &Payload) -> Option<T> {
        self.shared
            .decode_or_fail(input, Seq::FIRST, || "workflow input".to_string())
    }

    /// Ends this run and starts the next run of the workflow with `input` (return the error).
    pub fn continue_as_new<I: Serialize>(&self, input: &I) -> Result<WorkflowError, WorkflowError> {
        let converter = self.shared.lock().converter.clone();
        let input = converter
            .to_payload(input)
            .map_err(|e| WorkflowError::from_error(&e))?;
        Ok(WorkflowError::ContinueAsNew(ContinueAsNew { input }))
    }

    /// Guards a code change: true if this run takes the new code. Live, it records a patch
    /// marker and returns true; replaying, it returns true only if history has the marker here.
    /// Once answered for an id, the answer stays the same for the rest of the run.
    #[track_caller]
    pub fn patched(&self, id: &str) -> bool {
        let location = SourceLocation::from(Location::caller());
        let mut state = self.shared.lock();
        if let Some(answer) = state.patch(id) {
            return answer;
        }
        let patch_id = match PatchId::new(id) {
            Ok(patch_id) => patch_id,
            Err(error) => {
                // Answering false would take the old branch for good on a typo: the step
                // fails instead, and the run waits for fixed code.
                state.fail(Error::InvalidPatchId {
                    id: id.chars().take(64).collect(),
                    reason: error.to_string(),
                    location,
                });
                return false;
            }
        };
        let answer = match state.mode {
            Mode::Live => {
                state.decide(
                    EventKind::MarkerRecorded(Marker::Patch { patch_id }),
                    Some(location),
                );
                true
            }
            Mode::Replaying => {
                let recorded = matches!(state.next_recorded_marker(), Some(Marker::Patch { patch_id: p }) if *p == patch_id);
                if recorded {
                    state.take_recorded();
                }
                recorded
            }
        };
        state.remember_patch(id, answer);
        answer
    }

    /// Marks a patch whose old branch no runs need any more: accepts histories with or without
    /// its marker, and records nothing.
    pub fn deprecate_patch(&self, id: &str) {
        let mut state = self.shared.lock();
        if state.mode == Mode::Replaying
            && matches!(state.next_recorded_marker(), Some(Marker::Patch { patch_id }) if patch_id.as_str() == id)
        {
            state.take_recorded();
        }
        state.remember_patch(id, true);
    }

    /// Runs `f` once, live, and records its value; replaying returns the recorded value
    /// without running `f`. For reads of the outside world that need not be activities.
    /// Fails if the value does not encode (live) or the recorded one does not decode as `T`.
    #[track_caller]
    pub fn side_effect<T: Serialize + DeserializeOwned>(
        &self,
        f: impl FnOnce() -> T,
    ) -> Result<T, WorkflowError> {
        let location = SourceLocation::from(Location::caller());
        let mut state = self.shared.lock();
        if state.mode == Mode::Replaying
            && let Some((seq, Marker::SideEffect { value })) = state.next_recorded_marker_with_seq()
        {
            state.take_recorded();
            // A value that does not decode fails the step (the run waits for code that can
            // read it); the error returned here is never recorded.
            drop(state);
            return self
                .shared
                .decode_or_fail::<T>(&value, seq, || format!("side effect at {location}"))
                .ok_or_else(|| WorkflowError::failed("UndecodablePayload", "side effect value"));
        }
        drop(state);
        let value = f();
        let mut state = self.shared.lock();
        let payload = state
            .converter
            .to_payload(&value)
            .map_err(|e| WorkflowError::from_error(&e))?;
        state.decide(
            EventKind::MarkerRecorded(Marker::SideEffect { value: payload }),
            Some(location),
        );
        Ok(value)
    }

    /// Answers the query `def` from now on with `handler` over `state`, from the live run in
    /// an engine's cache or by replaying its history (closed runs too). The handler is a
    /// plain function (a closure that captures nothing): it sees the state only by shared
    /// reference, so a query can never change what the workflow decides. A later call with
    /// the same query replaces the handler. Register before the first await so that queries
    /// are answered from the start.
    ///
    /// ```
    /// use reprise_sdk::{QueryDef, WorkflowContext, WorkflowError, WorkflowState};
    ///
    /// const DONE: QueryDef<(), u32> = QueryDef::new("done");
    ///
    /// async fn count(ctx: WorkflowContext, n: u32) -> Result<u32, WorkflowError> {
    ///     let done = WorkflowState::new(0u32);
    ///     ctx.on_query(DONE, &done, |done, ()| *done);
    ///     for _ in 0..n {
    ///         ctx.sleep(std::time::Duration::from_secs(1)).await?;
    ///         done.update(|d| *d += 1);
    ///     }
    ///     Ok(done.get())
    /// }
    /// ```
    pub fn on_query<S, I, O>(
        &self,
        def: QueryDef<I, O>,
        state: &WorkflowState<S>,
        handler: fn(&S, I) -> O,
    ) where
        S: Send + 'static,
        I: DeserializeOwned + 'static,
        O: Serialize + 'static,
    {
        self.shared
            .lock()
            .queries
            .register(def.name(), state, handler);
    }

    /// Publishes a custom status: a small value (at most [`crate::MAX_STATUS_BYTES`] of JSON)
    /// that `describe`, the CLI and the UI show for this run, written with the step that sets
    /// it. It is not history: only the last value is kept. A value that does not encode or is
    /// too large is refused with the typed error, and the status stays as it was.
    pub fn set_status<T: Serialize + ?Sized>(&self, value: &T) -> Result<(), StatusError> {
        let converter = self.shared.lock().converter.clone();
        let payload = encode_status(&converter, value)?;
        let mut state = self.shared.lock();
        state.status_unwritten |= state.mode == Mode::Live;
        state.custom_status = Some(payload);
        Ok(())
    }

    /// Handles the update `def` from now on with `handler`: an async function of the context
    /// and the update's input that may do anything the workflow may (activities, timers,
    /// waits) and change the workflow's state (capture a [`WorkflowState`] clone). It runs
    /// beside the workflow's main code; its result (or error) is recorded and returned to the
    /// caller, durably: an engine that dies mid-way leaves it to the next. Register before the
    /// first await, so that no update arrives before its handler. An update that arrives with
    /// no handler of its name is refused, not recorded. If the workflow returns while a
    /// handler runs, the handler is dropped and its caller told the run closed.
    pub fn on_update<I, O, F, Fut>(&self, def: UpdateDef<I, O>, handler: F)
    where
        I: DeserializeOwned + Send + 'static,
        O: Serialize + 'static,
        F: Fn(WorkflowContext, I) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<O, WorkflowError>> + Send + 'static,
    {
        self.shared.lock().updates.register(def.name(), handler);
    }

    /// Checks each update `def` before it is accepted: `validator` reads `state` and the input
    /// and refuses with a reason (returned to the caller; nothing is recorded). A plain
    /// function, like a query handler: it cannot change the workflow.
    pub fn validate_update<S, I, O>(
        &self,
        def: UpdateDef<I, O>,
        state: &WorkflowState<S>,
        validator: fn(&S, &I) -> Result<(), String>,
    ) where
        S: Send + 'static,
        I: DeserializeOwned + 'static,
    {
        self.shared
            .lock()
            .updates
            .validate(def.name(), state, validator);
    }

    /// Resolves once `condition` holds: checked now, and again whenever the workflow makes
    /// progress (an input arrives; an update's handler decides something, returns, or changes
    /// a [`WorkflowState`]), so a condition on state an update changes is seen in the same
    /// step. A condition on anything else (a plain variable) is seen only at the next input. `Err(Cancelled)` if the run is
    /// asked to cancel while it waits.
    pub fn wait_until<F: FnMut() -> bool + Send + Unpin>(&self, condition: F) -> WaitUntil<F> {
        WaitUntil::new(self.shared.clone(), condition)
    }
}

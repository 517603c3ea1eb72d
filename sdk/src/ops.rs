//! The futures a workflow awaits: activities, timers, child workflows, signals, cancellation.
//!
//! An operation makes its decision when it is created (`ctx.activity(..)` schedules the
//! activity), not when first polled: combinators poll in orders of their own (`futures::select!`
//! even randomly), and history must not depend on that. Dropping a pending operation decides
//! its cancellation, so the losers of a `select!` are cancelled in history too.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use reprise_history::{
    ActivityOptions, ActivityType, EventKind, Failure, LocalActivityScheduled, Payload, Priority,
    Seq, SignalName, TaskQueue, Timestamp,
};
use serde::de::DeserializeOwned;

use crate::error::{Cancelled, OperationEnd, OperationFailed, SignalError};
use crate::local::{LocalActivityOptions, LocalActivityRequest};
use crate::nondeterminism::SourceLocation;
use crate::state::{OpKind, Outcome, Shared, cancel_decision};

/// The part every operation future shares: its decision (made when the operation is
/// created, so poll order cannot change history), waiting, and cancelling on drop.
struct Operation {
    shared: Shared,
    name: String,
    location: SourceLocation,
    seq: Option<Seq>,
    /// An outcome known without asking history (for example an input that did not encode).
    ready: Option<Outcome>,
}

impl Operation {
    /// Makes the decision now and opens a slot for its outcome.
    fn decide(
        shared: Shared,
        kind: OpKind,
        name: String,
        location: SourceLocation,
        decision: EventKind,
    ) -> Operation {
        let seq = {
            let mut state = shared.lock();
            let seq = state.decide(decision, Some(location));
            state.open_op(seq, kind, name.clone());
            seq
        };
        Operation {
            shared,
            name,
            location,
            seq: Some(seq),
            ready: None,
        }
    }

    /// An operation that failed before deciding anything.
    fn failed(
        shared: Shared,
        name: String,
        location: SourceLocation,
        outcome: Outcome,
    ) -> Operation {
        Operation {
            shared,
            name,
            location,
            seq: None,
            ready: Some(outcome),
        }
    }

    fn poll_outcome(&mut self, cx: &mut Context<'_>) -> Poll<Outcome> {
        if let Some(outcome) = self.ready.take() {
            return Poll::Ready(outcome);
        }
        let Some(seq) = self.seq else {
            // Polled again after it finished: nothing more will come.
            return Poll::Pending;
        };
        match self.shared.lock().poll_op(seq, cx.waker()) {
            Some(outcome) => {
                self.seq = None;
                Poll::Ready(outcome)
            }
            None => Poll::Pending,
        }
    }

    /// Changes the decision before it is recorded (live); replay does not compare options.
    fn amend(&self, change: impl FnOnce(&mut EventKind)) {
        if let Some(seq) = self.seq {
            self.shared.lock().amend_decision(seq, change);
        }
    }
}

impl Drop for Operation {
    fn drop(&mut self) {
        let Some(seq) = self.seq else { return };
        let mut state = self.shared.lock();
        if let Some(decision) = state
            .abandon_op(seq)
            .and_then(|kind| cancel_decision(&kind, seq))
        {
            state.decide(decision, Some(self.location));
        }
    }
}

/// An operation's outcome for the code. A result that does not decode is not the code's to
/// handle: the step fails with the typed error and the future stays pending (`None`).
fn decode_outcome<T: DeserializeOwned>(
    op: &Operation,
    outcome: Outcome,
    what: &'static str,
) -> Poll<Result<T, OperationFailed>> {
    let name = &op.name;
    match outcome {
        Outcome::Value(payload, seq) => match op
            .shared
            .decode_or_fail::<T>(&payload, seq, || format!("result of {what} {name:?}"))
        {
            Some(value) => Poll::Ready(Ok(value)),
            None => Poll::Pending,
        },
        Outcome::Failed(failed) => Poll::Ready(Err(failed)),
        Outcome::Cancelled => Poll::Ready(Err(OperationFailed::cancelled(what, name))),
        // Only a local activity backs off, and its call handles that before decoding.
        Outcome::Backoff { attempt, .. } => Poll::Ready(Err(OperationFailed {
            what,
            name: name.clone(),
            end: OperationEnd::Failed,
            failure: Box::new(Failure::application("Backoff", "an unexpected backoff")),
            attempts: attempt,
        })),
    }
}

/// A scheduled activity: resolves to its result, or to how it failed.
///
/// Set options with [`ActivityCall::options`] and [`ActivityCall::task_queue`] before awaiting.
#[must_use = "dropping the call cancels the activity"]
pub struct ActivityCall<O> {
    op: Operation,
    output: PhantomData<fn() -> O>,
}

/// The operation behind an activity or child call; a decision that could not be built (its
/// input did not encode) makes the call fail at once, deciding nothing.
fn call_operation(
    shared: Shared,
    kind: OpKind,
    what: &'static str,
    name: String,
    location: SourceLocation,
    decision: Result<EventKind, Failure>,
) -> Operation {
    match decision {
        Ok(decision) => Operation::decide(shared, kind, name, location, decision),
        Err(failure) => {
            let outcome = Outcome::Failed(OperationFailed {
                what,
                name: name.clone(),
                end: OperationEnd::Failed,
                failure: Box::new(failure),
                attempts: 0,
            });
            Operation::failed(shared, name, location, outcome)
        }
    }
}

impl<O> ActivityCall<O> {
    pub(crate) fn new(
        shared: Shared,
        name: String,
        location: SourceLocation,
        decision: Result<EventKind, Failure>,
    ) -> Self {
        ActivityCall {
            op: call_operation(
                shared,
                OpKind::Activity,
                "activity",
                name,
                location,
                decision,
            ),
            output: PhantomData,
        }
    }

    /// Retry policy and timeouts (defaults: `ActivityOptions::default()`). Set them where the
    /// call is made, before the workflow awaits anything else.
    pub fn options(self, options: ActivityOptions) -> Self {
        self.op.amend(|kind| {
            if let EventKind::ActivityScheduled(s) = kind {
                s.options = options;
            }
        });
        self
    }

    /// The task queue whose workers run it (default: the workflow's task queue).
    pub fn task_queue(self, queue: TaskQueue) -> Self {
        self.op.amend(|kind| {
            if let EventKind::ActivityScheduled(s) = kind {
                s.task_queue = queue;
            }
        });
        self
    }

    /// How urgent it is beside other work on its queue (default: its run's priority, given
    /// at the start). Scheduling only: replay does not compare it, so it may change between
    /// versions of the code.
    pub fn priority(self, priority: Priority) -> Self {
        self.op.amend(|kind| {
            if let EventKind::ActivityScheduled(s) = kind {
                s.priority = Some(priority);
            }
        });
        self
    }
}

impl<O: DeserializeOwned> Future for ActivityCall<O> {
    type Output = Result<O, OperationFailed>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.op.poll_outcome(cx) {
            Poll::Ready(outcome) => decode_outcome(&self.op, outcome, "activity"),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A local activity: run by the engine inline, inside the step that schedules it, and
/// recorded in history; resolves to its result, or to how it failed.
///
/// Set options with [`LocalActivityCall::options`] before awaiting. A retry that must wait
/// longer than the options' in-step window becomes a durable timer of this call's own
/// (`TimerStarted` after a `LocalActivityBackoff`), after which it is scheduled again.
#[must_use = "dropping the call abandons the local activity"]
pub struct LocalActivityCall<O> {
    shared: Shared,
    name: String,
    location: SourceLocation,
    /// What each scheduling decides (`None` if the call failed before deciding anything).
    scheduling: Option<(ActivityType, Payload)>,
    options: LocalActivityOptions,
    /// The seq and time of the first scheduling: the idempotency key and the deadline's start.
    first: Option<(Seq, Timestamp)>,
    phase: LocalPhase,
    output: PhantomData<fn() -> O>,
}

enum LocalPhase {
    /// Scheduled; the host runs it before the step is written.
    Running(Operation),
    /// Waiting on a durable timer before attempt `next_attempt`.
    BackingOff {
        timer: Operation,
        next_attempt: u32,
    },
    Finished,
}

impl<O> LocalActivityCall<O> {
    pub(crate) fn new(
        shared: Shared,
        name: String,
        location: SourceLocation,
        scheduled: Result<(ActivityType, Payload), Failure>,
    ) -> Self {
        let mut call = LocalActivityCall {
            shared: shared.clone(),
            name: name.clone(),
            location,
            scheduling: scheduled.as_ref().ok().cloned(),
            options: LocalActivityOptions::default(),
            first: None,
            phase: LocalPhase::Finished,
            output: PhantomData,
        };
        call.phase = LocalPhase::Running(match scheduled {
            Ok(scheduling) => call.schedule(scheduling, 1),
            Err(failure) => call_operation(
                shared,
                OpKind::LocalActivity,
                "local activity",
                name,
                location,
                Err(failure),
            ),
        });
        call
    }

    /// Decides `LocalActivityScheduled` and hands the host its request.
    fn schedule(
        &mut self,
        (activity_type, input): (ActivityType, Payload),
        attempt: u32,
    ) -> Operation {
        let decision = EventKind::LocalActivityScheduled(LocalActivityScheduled {
            activity_type: activity_type.clone(),
            input: input.clone(),
            attempt,
        });
        let op = Operation::decide(
            self.shared.clone(),
            OpKind::LocalActivity,
            self.name.clone(),
            self.location,
            decision,
        );
        if let Some(seq) = op.seq {
            let mut state = self.shared.lock();
            let (first_scheduled, first_scheduled_at) = *self.first.get_or_insert((seq, state.now));
            let request = LocalActivityRequest {
                scheduled: seq,
                activity_type,
                input,
                attempt,
                options: self.options.clone(),
                workflow_id: state.workflow_id.clone(),
                run_id: state.run_id,
                first_scheduled,
                first_scheduled_at,
            };
            state.request_local(request);
        }
        op
    }

    /// Retries and timeouts (defaults: [`LocalActivityOptions::default()`]). Set them where
    /// the call is made, before the workflow awaits anything else.
    pub fn options(mut self, options: LocalActivityOptions) -> Self {
        if let LocalPhase::Running(Operation { seq: Some(seq), .. }) = &self.phase {
            let amended = options.clone();
            self.shared
                .lock()
                .amend_local(*seq, move |request| request.options = amended);
        }
        self.options = options;
        self
    }
}

impl<O: DeserializeOwned> Future for LocalActivityCall<O> {
    type Output = Result<O, OperationFailed>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Nothing in the call is pinned: its fields move freely.
        let this = &mut *self;
        loop {
            match std::mem::replace(&mut this.phase, LocalPhase::Finished) {
                LocalPhase::Running(mut op) => match op.poll_outcome(cx) {
                    Poll::Pending => {
                        this.phase = LocalPhase::Running(op);
                        return Poll::Pending;
                    }
                    Poll::Ready(Outcome::Backoff { attempt, backoff }) => {
                        let decision = EventKind::TimerStarted(reprise_history::TimerStarted {
                            duration: backoff,
                        });
                        let timer = Operation::decide(
                            this.shared.clone(),
                            OpKind::Timer,
                            format!("{backoff:?}"),
                            this.location,
                            decision,
                        );
                        this.phase = LocalPhase::BackingOff {
                            timer,
                            next_attempt: attempt.saturating_add(1),
                        };
                    }
                    Poll::Ready(outcome) => return decode_outcome(&op, outcome, "local activity"),
                },
                LocalPhase::BackingOff {
                    mut timer,
                    next_attempt,
                } => match timer.poll_outcome(cx) {
                    Poll::Pending => {
                        this.phase = LocalPhase::BackingOff {
                            timer,
                            next_attempt,
                        };
                        return Poll::Pending;
                    }
                    Poll::Ready(Outcome::Cancelled) => {
                        return Poll::Ready(Err(OperationFailed::cancelled(
                            "local activity",
                            &this.name,
                        )));
                    }
                    // Only a call that was scheduled backs off, so `scheduling` is there.
                    Poll::Ready(_) => match this.scheduling.clone() {
                        Some(scheduling) => {
                            let op = this.schedule(scheduling, next_attempt);
                            this.phase = LocalPhase::Running(op);
                        }
                        None => return Poll::Pending,
                    },
                },
                LocalPhase::Finished => return Poll::Pending,
            }
        }
    }
}

/// A child workflow: resolves to its result, or to how it ended.
#[must_use = "dropping the call asks the child workflow to cancel"]
pub struct ChildCall<O> {
    op: Operation,
    output: PhantomData<fn() -> O>,
}

impl<O> ChildCall<O> {
    pub(crate) fn new(
        shared: Shared,
        name: String,
        location: SourceLocation,
        decision: Result<EventKind, Failure>,
    ) -> Self {
        ChildCall {
            op: call_operation(
                shared,
                OpKind::Child,
                "child workflow",
                name,
                location,
                decision,
            ),
            output: PhantomData,
        }
    }
}

impl<O> ChildCall<O> {
    /// What happens to the child if this workflow closes first (default: terminate it).
    pub fn parent_close_policy(self, policy: reprise_history::ParentClosePolicy) -> Self {
        self.amend(|c| c.parent_close_policy = policy)
    }

    /// Closes each run of the child still open this long after its first step, as timed out
    /// (`StartOptions::run_timeout`); its retry policy may start another. Zero fails the
    /// child at once.
    pub fn run_timeout(self, timeout: std::time::Duration) -> Self {
        self.amend(|c| c.run_timeout = Some(timeout))
    }

    /// Closes the child still open this long after its first step, across its runs, as
    /// timed out (`StartOptions::execution_timeout`). Zero fails the child at once.
    pub fn execution_timeout(self, timeout: std::time::Duration) -> Self {
        self.amend(|c| c.execution_timeout = Some(timeout))
    }

    /// Retries a failed run of the child as a new run (`StartOptions::retry`); this workflow
    /// hears only how the last attempt ended.
    pub fn retry(self, policy: reprise_history::RetryPolicy) -> Self {
        self.amend(|c| c.retry = Some(policy))
    }

    fn amend(self, change: impl FnOnce(&mut reprise_history::ChildWorkflowStarted)) -> Self {
        self.op.amend(|kind| {
            if let EventKind::ChildWorkflowStarted(c) = kind {
                change(c);
            }
        });
        self
    }
}

impl<O: DeserializeOwned> Future for ChildCall<O> {
    type Output = Result<O, OperationFailed>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.op.poll_outcome(cx) {
            Poll::Ready(outcome) => decode_outcome(&self.op, outcome, "child workflow"),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A durable timer: resolves when it fires, or with `Cancelled` if the workflow is asked to
/// cancel first. Dropping it before it fires cancels it.
#[must_use = "dropping the timer cancels it"]
pub struct Sleep {
    op: Operation,
}

impl Sleep {
    pub(crate) fn new(shared: Shared, duration: Duration, location: SourceLocation) -> Sleep {
        let decision = EventKind::TimerStarted(reprise_history::TimerStarted { duration });
        Sleep {
            op: Operation::decide(
                shared,
                OpKind::Timer,
                format!("{duration:?}"),
                location,
                decision,
            ),
        }
    }
}

impl Future for Sleep {
    type Output = Result<(), Cancelled>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.op.poll_outcome(cx).map(|outcome| match outcome {
            Outcome::Cancelled => Err(Cancelled),
            Outcome::Value(..) | Outcome::Failed(_) | Outcome::Backoff { .. } => Ok(()),
        })
    }
}

/// Waits for the next signal of one name; signals that arrived earlier are buffered.
#[must_use = "futures do nothing unless awaited"]
pub struct SignalWait<T> {
    shared: Shared,
    name: Result<SignalName, reprise_history::Error>,
    /// Whether a cancel request ends this wait: only if the wait began before it.
    cancellable: Option<bool>,
    waiting: bool,
    payload: PhantomData<fn() -> T>,
}

impl<T> SignalWait<T> {
    pub(crate) fn new(shared: Shared, name: Result<SignalName, reprise_history::Error>) -> Self {
        SignalWait {
            shared,
            name,
            cancellable: None,
            waiting: false,
            payload: PhantomData,
        }
    }
}

impl<T: DeserializeOwned> Future for SignalWait<T> {
    type Output = Result<T, SignalError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let name = match &self.name {
            Ok(name) => name.clone(),
            Err(e) => return Poll::Ready(Err(SignalError::InvalidName(e.to_string()))),
        };
        let shared = self.shared.clone();
        let mut state = shared.lock();
        let cancellable = *self.cancellable.get_or_insert(!state.cancel_requested);
        let result = if let Some((payload, seq)) = state.pop_signal(&name) {
            drop(state);
            let holder = || format!("signal {:?}", name.as_str());
            let Some(value) = shared.decode_or_fail::<T>(&payload, seq, holder) else {
                return Poll::Pending;
            };
            state = shared.lock();
            Ok(value)
        } else if cancellable && state.cancel_requested {
            Err(SignalError::Cancelled(Cancelled))
        } else {
            state.wait(cx.waker(), !self.waiting);
            self.waiting = true;
            return Poll::Pending;
        };
        if std::mem::take(&mut self.waiting) {
            state.end_wait();
        }
        Poll::Ready(result)
    }
}

impl<T> Drop for SignalWait<T> {
    fn drop(&mut self) {
        if self.waiting {
            self.shared.lock().end_wait();
        }
    }
}

/// Resolves when the workflow is asked to cancel.
#[must_use = "futures do nothing unless awaited"]
pub struct CancelWait {
    shared: Shared,
    waiting: bool,
}

impl CancelWait {
    pub(crate) fn new(shared: Shared) -> Self {
        CancelWait {
            shared,
            waiting: false,
        }
    }
}

impl Future for CancelWait {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let shared = self.shared.clone();
        let mut state = shared.lock();
        if state.cancel_requested {
            if std::mem::take(&mut self.waiting) {
                state.end_wait();
            }
            return Poll::Ready(());
        }
        state.wait(cx.waker(), !self.waiting);
        self.waiting = true;
        Poll::Pending
    }
}

impl Drop for CancelWait {
    fn drop(&mut self) {
        if self.waiting {
            self.shared.lock().end_wait();
        }
    }
}

/// A failure for an operation whose input did not encode.
pub(crate) fn input_failure(error: &reprise_history::Error) -> Failure {
    Failure::application("InputEncode", error.to_string())
        .retryable(false)
        .with_sources(error)
}

/// Waits until a condition holds (see [`crate::WorkflowContext::wait_until`]).
pub struct WaitUntil<F> {
    shared: Shared,
    condition: F,
    /// Whether a cancel request ends this wait: only if the wait began before it.
    cancellable: Option<bool>,
    waiting: bool,
}

impl<F> WaitUntil<F> {
    pub(crate) fn new(shared: Shared, condition: F) -> Self {
        WaitUntil {
            shared,
            condition,
            cancellable: None,
            waiting: false,
        }
    }
}

impl<F: FnMut() -> bool + Unpin> Future for WaitUntil<F> {
    type Output = Result<(), Cancelled>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let cancelled = self.shared.lock().cancel_requested;
        let cancellable = *self.cancellable.get_or_insert(!cancelled);
        // The condition is user code: checked outside the run's lock.
        let result = if (self.condition)() {
            Ok(())
        } else if cancellable && cancelled {
            Err(Cancelled)
        } else {
            let first = !self.waiting;
            self.shared.lock().wait(cx.waker(), first);
            self.waiting = true;
            return Poll::Pending;
        };
        if std::mem::take(&mut self.waiting) {
            self.shared.lock().end_wait();
        }
        Poll::Ready(result)
    }
}

impl<F> Drop for WaitUntil<F> {
    fn drop(&mut self) {
        if self.waiting {
            self.shared.lock().end_wait();
        }
    }
}

//! The events a run's history is made of, and their encoding.
//!
//! The enum and every struct in it are part of the stored format: variants are only ever
//! appended, never reordered or removed, and a field is never added to an existing struct
//! (bincode stores no field names). A changed shape is a new variant. `tests/fixtures`
//! holds bytes written by earlier versions, and a test decodes them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::codec;
use crate::error::{Error, Result};
use crate::failure::Failure;
use crate::ids::{
    ActivityType, PatchId, RunId, Seq, SignalName, TaskQueue, UpdateId, UpdateName, WorkflowId,
    WorkflowType,
};
use crate::limits::Limits;
use crate::options::{
    ActivityOptions, ParentClosePolicy, ParentRun, RunOrigin, TimeoutKind, WorkflowTimeout,
};
use crate::payload::Payload;
use crate::priority::Priority;
use crate::replay_rules::ReplayRules;
use crate::time::Timestamp;
use crate::trace::TraceContext;

/// One entry of a run's history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the history, from 1.
    pub seq: Seq,
    /// Database time of the transaction that recorded it.
    pub recorded_at: Timestamp,
    /// What happened.
    pub kind: EventKind,
}

/// Whether an event came from outside the orchestrator or from its code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventClass {
    /// From outside: applied to the orchestrator one at a time during replay.
    Input,
    /// Emitted by orchestrator code: replay must reproduce it exactly.
    Decision,
}

/// Everything that can happen in a run. Variant order is part of the stored format, which
/// has one variant more than this enum: a `WorkflowStarted` with a trace context is stored as
/// `WorkflowStartedInTrace`, appended after the others (see `stored_kind.rs`).
#[derive(Clone, Debug, PartialEq)]
pub enum EventKind {
    /// Input, always seq 1: the run began.
    WorkflowStarted(WorkflowStarted),
    /// Decision: run an activity.
    ActivityScheduled(ActivityScheduled),
    /// Input: an activity returned a result.
    ActivityCompleted(ActivityCompleted),
    /// Input: an activity failed for good (no retries left, or not retryable).
    ActivityFailed(ActivityFailed),
    /// Input: an activity ran out of time.
    ActivityTimedOut(ActivityTimedOut),
    /// Decision: the orchestrator no longer wants an activity's result.
    ActivityCancelRequested(ActivityCancelRequested),
    /// Input: a cancelled activity acknowledged its cancellation.
    ActivityCancelled(ActivityCancelled),
    /// Decision: start a durable timer.
    TimerStarted(TimerStarted),
    /// Input: a timer fired.
    TimerFired(TimerFired),
    /// Decision: the orchestrator dropped a timer before it fired.
    TimerCancelled(TimerCancelled),
    /// Input: a signal arrived.
    SignalReceived(SignalReceived),
    /// Decision: start a child workflow.
    ChildWorkflowStarted(ChildWorkflowStarted),
    /// Input: a child workflow completed.
    ChildWorkflowCompleted(ChildWorkflowCompleted),
    /// Input: a child workflow failed, was cancelled or was terminated.
    ChildWorkflowFailed(ChildWorkflowFailed),
    /// Decision: ask a child workflow to cancel.
    ChildWorkflowCancelRequested(ChildWorkflowCancelRequested),
    /// Input: someone asked this run to cancel.
    CancelRequested(CancelRequested),
    /// Decision: a marker (patch, side effect) for replay to find again.
    MarkerRecorded(Marker),
    /// Decision, closing: the workflow returned a result.
    WorkflowCompleted(WorkflowCompleted),
    /// Decision, closing: the workflow returned an error.
    WorkflowFailed(WorkflowFailed),
    /// Decision, closing: the workflow finished by acknowledging a cancel request.
    WorkflowCancelled(WorkflowCancelled),
    /// Input, closing: an operator terminated the run.
    WorkflowTerminated(WorkflowTerminated),
    /// Decision, closing: the workflow continues as a new run with a fresh history.
    WorkflowContinuedAsNew(WorkflowContinuedAsNew),
    /// Decision: run an activity inline, inside the step, with no task (a local activity).
    /// Its outcome is an `ActivityCompleted`, `ActivityFailed` or `ActivityTimedOut` written
    /// in the same step, or a [`LocalActivityBackoff`].
    LocalActivityScheduled(LocalActivityScheduled),
    /// Input: a local activity's attempts failed and the next waits longer than a step may
    /// hold its run: the workflow sleeps on a durable timer, then schedules it again.
    LocalActivityBackoff(LocalActivityBackoff),
    /// Input: an update passed its validator and was accepted; the workflow's handler runs
    /// it (an update that was refused is never recorded).
    UpdateAccepted(UpdateAccepted),
    /// Decision: an update's handler returned; its caller receives the outcome.
    UpdateCompleted(UpdateCompleted),
    /// Input, closing: the run reached its run or execution deadline (see
    /// [`WorkflowTimeout`]); the engine closed it.
    WorkflowTimedOut(WorkflowTimedOut),
}

/// An update accepted: the workflow's handler of `name` runs with `input`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UpdateAccepted {
    /// The update's id (its caller's, or drawn at random).
    pub update_id: UpdateId,
    /// Which handler runs it.
    pub name: UpdateName,
    /// Its input.
    pub input: Payload,
}

/// An update's handler returned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UpdateCompleted {
    /// The seq of its `UpdateAccepted`.
    pub accepted: Seq,
    /// The update's id, for whoever carries out the outcome without the accepting event.
    pub update_id: UpdateId,
    /// What the handler returned.
    pub outcome: UpdateOutcome,
}

/// What an update's handler returned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum UpdateOutcome {
    /// A result.
    Completed(Payload),
    /// An error.
    Failed(Failure),
}

/// The run began.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkflowStarted {
    /// Which orchestrator code runs it.
    pub workflow_type: WorkflowType,
    /// The user-chosen workflow id.
    pub workflow_id: WorkflowId,
    /// This run; also the seed of the run's deterministic randomness.
    pub run_id: RunId,
    /// The workflow's input.
    pub input: Payload,
    /// The queue of the orchestrator hosts that run it.
    pub task_queue: TaskQueue,
    /// Why this run exists.
    pub origin: RunOrigin,
    /// The parent run, for child workflows.
    pub parent: Option<ParentRun>,
    /// The trace the run belongs to: its starter's span (a client call, or the parent's step
    /// for a child or a next run). Stored only when there is one: a start without it keeps
    /// the original shape, byte for byte.
    pub trace_context: Option<TraceContext>,
    /// The replay rules the run was written under (see [`ReplayRules`]): a run started now
    /// records [`ReplayRules::CURRENT`]; one started before rules were recorded reads as
    /// [`ReplayRules::NONE`].
    pub replay_rules: ReplayRules,
}

/// Run an activity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActivityScheduled {
    /// Which activity code runs it.
    pub activity_type: ActivityType,
    /// The queue its workers take it from.
    pub task_queue: TaskQueue,
    /// Its input.
    pub input: Payload,
    /// Retries and timeouts.
    pub options: ActivityOptions,
    /// How urgent it is; `None`: its run's priority. Scheduling only: replay never compares
    /// it, so code may change it freely.
    pub priority: Option<Priority>,
}

/// Run an activity inline, inside the step that schedules it (a local activity).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LocalActivityScheduled {
    /// Which activity code runs it.
    pub activity_type: ActivityType,
    /// Its input.
    pub input: Payload,
    /// The attempt it begins with: 1, or the attempt after a [`LocalActivityBackoff`]. Not
    /// compared on replay.
    pub attempt: u32,
}

/// A local activity's attempts failed, and the next one waits `backoff` on a durable timer
/// (the run is released meanwhile), after which the workflow schedules it again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LocalActivityBackoff {
    /// The seq of its `LocalActivityScheduled`.
    pub scheduled: Seq,
    /// The last attempt's failure.
    pub failure: Failure,
    /// How many attempts ran, from the first.
    pub attempt: u32,
    /// How long until the next attempt.
    pub backoff: Duration,
}

/// An activity returned a result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActivityCompleted {
    /// The seq of its `ActivityScheduled`.
    pub scheduled: Seq,
    /// What it returned.
    pub result: Payload,
    /// Which attempt succeeded, from 1.
    pub attempt: u32,
}

/// An activity failed for good.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActivityFailed {
    /// The seq of its `ActivityScheduled`.
    pub scheduled: Seq,
    /// The last attempt's failure.
    pub failure: Failure,
    /// How many attempts ran.
    pub attempt: u32,
}

/// An activity ran out of time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActivityTimedOut {
    /// The seq of its `ActivityScheduled`.
    pub scheduled: Seq,
    /// Which timeout ran out.
    pub timeout: TimeoutKind,
    /// How many attempts ran.
    pub attempt: u32,
    /// The failure of the last attempt that failed, if any did.
    pub last_failure: Option<Failure>,
    /// The details of the last heartbeat, if any.
    pub last_heartbeat: Option<Payload>,
}

/// The orchestrator no longer wants an activity's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityCancelRequested {
    /// The seq of its `ActivityScheduled`.
    pub scheduled: Seq,
}

/// A cancelled activity acknowledged its cancellation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActivityCancelled {
    /// The seq of its `ActivityScheduled`.
    pub scheduled: Seq,
    /// How many attempts ran.
    pub attempt: u32,
    /// Details the activity gave when it stopped.
    pub details: Option<Payload>,
}

/// Start a durable timer; it fires `duration` after the event's `recorded_at`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerStarted {
    /// How long until it fires.
    pub duration: Duration,
}

/// A timer fired.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerFired {
    /// The seq of its `TimerStarted`.
    pub started: Seq,
}

/// The orchestrator dropped a timer before it fired.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerCancelled {
    /// The seq of its `TimerStarted`.
    pub started: Seq,
}

/// A signal arrived.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SignalReceived {
    /// The signal's name.
    pub name: SignalName,
    /// Its body.
    pub payload: Payload,
}

/// Start a child workflow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChildWorkflowStarted {
    /// The child's workflow type.
    pub workflow_type: WorkflowType,
    /// The child's workflow id.
    pub workflow_id: WorkflowId,
    /// The child's first run (assigned by the engine; replay does not compare it).
    pub run_id: RunId,
    /// The child's input.
    pub input: Payload,
    /// The queue of the orchestrator hosts that run it.
    pub task_queue: TaskQueue,
    /// What happens to the child when this run closes first.
    pub parent_close_policy: ParentClosePolicy,
    /// Longest one run of the child may take from its first step (as
    /// `StartOptions::run_timeout`); `None`: no limit. Not compared on replay.
    #[serde(default)]
    pub run_timeout: Option<Duration>,
    /// Longest the child may take across its runs (as `StartOptions::execution_timeout`).
    #[serde(default)]
    pub execution_timeout: Option<Duration>,
    /// How a failed run of the child is retried before this run hears of it (as
    /// `StartOptions::retry`); `None`: it is not.
    #[serde(default)]
    pub retry: Option<crate::options::RetryPolicy>,
}

impl ChildWorkflowStarted {
    /// Whether it sets nothing the first stored shape of a child start lacks (deadlines, a
    /// retry policy): such a start is stored in that shape, byte for byte as before.
    pub(crate) fn fits_first_shape(&self) -> bool {
        self.run_timeout.is_none() && self.execution_timeout.is_none() && self.retry.is_none()
    }

    /// The child's first event: what the engine (and the testkit) start the child run with.
    pub fn child_run_started(
        &self,
        parent: ParentRun,
        trace_context: Option<TraceContext>,
    ) -> WorkflowStarted {
        WorkflowStarted {
            workflow_type: self.workflow_type.clone(),
            workflow_id: self.workflow_id.clone(),
            run_id: self.run_id,
            input: self.input.clone(),
            task_queue: self.task_queue.clone(),
            origin: RunOrigin::Client,
            parent: Some(parent),
            trace_context,
            replay_rules: ReplayRules::CURRENT,
        }
    }
}

/// A child workflow completed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChildWorkflowCompleted {
    /// The seq of its `ChildWorkflowStarted`.
    pub started: Seq,
    /// What it returned.
    pub result: Payload,
}

/// A child workflow failed, was cancelled or was terminated (see `failure.kind`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChildWorkflowFailed {
    /// The seq of its `ChildWorkflowStarted`.
    pub started: Seq,
    /// Why.
    pub failure: Failure,
}

/// Ask a child workflow to cancel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildWorkflowCancelRequested {
    /// The seq of its `ChildWorkflowStarted`.
    pub started: Seq,
}

/// Someone asked this run to cancel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelRequested {
    /// Why, in the requester's words.
    pub reason: String,
}

/// A marker the orchestrator recorded so that replay finds the same answer again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Marker {
    /// `ctx.patched(id)` ran live: code after this point takes the new branch.
    Patch {
        /// The patch id.
        patch_id: PatchId,
    },
    /// The value a side effect produced.
    SideEffect {
        /// The value.
        value: Payload,
    },
}

/// The workflow returned a result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkflowCompleted {
    /// The result.
    pub result: Payload,
}

/// The workflow returned an error.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkflowFailed {
    /// The error.
    pub failure: Failure,
}

/// The workflow finished by acknowledging a cancel request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkflowCancelled {
    /// Details from the workflow.
    pub details: Option<Payload>,
}

/// An operator terminated the run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowTerminated {
    /// Why, in the operator's words.
    pub reason: String,
}

/// The run reached a deadline its starter set, and the engine closed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowTimedOut {
    /// Which deadline it reached.
    pub timeout: WorkflowTimeout,
}

/// The workflow continues as a new run with a fresh history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkflowContinuedAsNew {
    /// The next run (assigned by the engine; replay does not compare it).
    pub new_run_id: RunId,
    /// The next run's workflow type (usually the same).
    pub workflow_type: WorkflowType,
    /// The next run's input.
    pub input: Payload,
    /// The next run's orchestrator queue.
    pub task_queue: TaskQueue,
}

impl EventKind {
    /// The variant's name, as stored in the database's `kind` column and shown to people.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::WorkflowStarted(_) => "WorkflowStarted",
            EventKind::ActivityScheduled(_) => "ActivityScheduled",
            EventKind::ActivityCompleted(_) => "ActivityCompleted",
            EventKind::ActivityFailed(_) => "ActivityFailed",
            EventKind::ActivityTimedOut(_) => "ActivityTimedOut",
            EventKind::ActivityCancelRequested(_) => "ActivityCancelRequested",
            EventKind::ActivityCancelled(_) => "ActivityCancelled",
            EventKind::TimerStarted(_) => "TimerStarted",
            EventKind::TimerFired(_) => "TimerFired",
            EventKind::TimerCancelled(_) => "TimerCancelled",
            EventKind::SignalReceived(_) => "SignalReceived",
            EventKind::ChildWorkflowStarted(_) => "ChildWorkflowStarted",
            EventKind::ChildWorkflowCompleted(_) => "ChildWorkflowCompleted",
            EventKind::ChildWorkflowFailed(_) => "ChildWorkflowFailed",
            EventKind::ChildWorkflowCancelRequested(_) => "ChildWorkflowCancelRequested",
            EventKind::CancelRequested(_) => "CancelRequested",
            EventKind::MarkerRecorded(_) => "MarkerRecorded",
            EventKind::WorkflowCompleted(_) => "WorkflowCompleted",
            EventKind::WorkflowFailed(_) => "WorkflowFailed",
            EventKind::WorkflowCancelled(_) => "WorkflowCancelled",
            EventKind::WorkflowTerminated(_) => "WorkflowTerminated",
            EventKind::WorkflowContinuedAsNew(_) => "WorkflowContinuedAsNew",
            EventKind::LocalActivityScheduled(_) => "LocalActivityScheduled",
            EventKind::LocalActivityBackoff(_) => "LocalActivityBackoff",
            EventKind::UpdateAccepted(_) => "UpdateAccepted",
            EventKind::UpdateCompleted(_) => "UpdateCompleted",
            EventKind::WorkflowTimedOut(_) => "WorkflowTimedOut",
        }
    }

    /// Whether the event is an input or a decision (see the replay rule in DESIGN.md).
    pub fn class(&self) -> EventClass {
        match self {
            EventKind::WorkflowStarted(_)
            | EventKind::ActivityCompleted(_)
            | EventKind::ActivityFailed(_)
            | EventKind::ActivityTimedOut(_)
            | EventKind::ActivityCancelled(_)
            | EventKind::TimerFired(_)
            | EventKind::SignalReceived(_)
            | EventKind::ChildWorkflowCompleted(_)
            | EventKind::ChildWorkflowFailed(_)
            | EventKind::CancelRequested(_)
            | EventKind::WorkflowTerminated(_)
            | EventKind::WorkflowTimedOut(_)
            | EventKind::LocalActivityBackoff(_)
            | EventKind::UpdateAccepted(_) => EventClass::Input,
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
            | EventKind::UpdateCompleted(_) => EventClass::Decision,
        }
    }

    /// What a parent records when its child's run closes with this event (`started` is the
    /// seq of the parent's `ChildWorkflowStarted`). `None` for events that do not close a run,
    /// and for continue-as-new: the child goes on in its next run.
    pub fn child_outcome(&self, started: Seq) -> Option<EventKind> {
        use crate::failure::FailureKind;
        let failed = |failure: Failure| {
            Some(EventKind::ChildWorkflowFailed(ChildWorkflowFailed {
                started,
                failure,
            }))
        };
        match self {
            EventKind::WorkflowCompleted(c) => {
                Some(EventKind::ChildWorkflowCompleted(ChildWorkflowCompleted {
                    started,
                    result: c.result.clone(),
                }))
            }
            EventKind::WorkflowFailed(f) => failed(f.failure.clone()),
            EventKind::WorkflowCancelled(_) => failed(Failure::of_kind(
                FailureKind::Cancelled,
                "the child workflow was cancelled",
            )),
            EventKind::WorkflowTerminated(t) => {
                failed(Failure::of_kind(FailureKind::Terminated, t.reason.clone()))
            }
            EventKind::WorkflowTimedOut(t) => {
                failed(Failure::of_kind(FailureKind::TimedOut, t.timeout.reason()))
            }
            _ => None,
        }
    }

    /// Whether the event closes the run: nothing may follow it.
    pub fn is_closing(&self) -> bool {
        matches!(
            self,
            EventKind::WorkflowCompleted(_)
                | EventKind::WorkflowFailed(_)
                | EventKind::WorkflowCancelled(_)
                | EventKind::WorkflowTerminated(_)
                | EventKind::WorkflowTimedOut(_)
                | EventKind::WorkflowContinuedAsNew(_)
        )
    }
}

/// Refuses encoded bytes longer than an event may be.
fn within_limit(what: &'static str, bytes: Vec<u8>, limits: &Limits) -> Result<Vec<u8>> {
    if bytes.len() > limits.max_event_bytes {
        return Err(Error::TooLarge {
            what,
            size: bytes.len() as u64,
            limit: limits.max_event_bytes as u64,
        });
    }
    Ok(bytes)
}

impl EventKind {
    /// Every payload the event holds (inputs, results, signal bodies, details, heartbeat
    /// details, side-effect values, failure details), in field order.
    pub fn payloads(&self) -> Vec<&Payload> {
        fn details(f: &Failure) -> Option<&Payload> {
            f.details.as_ref()
        }
        let found: Vec<Option<&Payload>> = match self {
            EventKind::WorkflowStarted(e) => vec![Some(&e.input)],
            EventKind::ActivityScheduled(e) => vec![Some(&e.input)],
            EventKind::ActivityCompleted(e) => vec![Some(&e.result)],
            EventKind::ActivityFailed(e) => vec![details(&e.failure)],
            EventKind::ActivityTimedOut(e) => vec![
                e.last_failure.as_ref().and_then(details),
                e.last_heartbeat.as_ref(),
            ],
            EventKind::ActivityCancelled(e) => vec![e.details.as_ref()],
            EventKind::SignalReceived(e) => vec![Some(&e.payload)],
            EventKind::ChildWorkflowStarted(e) => vec![Some(&e.input)],
            EventKind::ChildWorkflowCompleted(e) => vec![Some(&e.result)],
            EventKind::ChildWorkflowFailed(e) => vec![details(&e.failure)],
            EventKind::MarkerRecorded(Marker::SideEffect { value }) => vec![Some(value)],
            EventKind::WorkflowCompleted(e) => vec![Some(&e.result)],
            EventKind::WorkflowFailed(e) => vec![details(&e.failure)],
            EventKind::WorkflowCancelled(e) => vec![e.details.as_ref()],
            EventKind::WorkflowContinuedAsNew(e) => vec![Some(&e.input)],
            EventKind::LocalActivityScheduled(e) => vec![Some(&e.input)],
            EventKind::LocalActivityBackoff(e) => vec![details(&e.failure)],
            EventKind::UpdateAccepted(e) => vec![Some(&e.input)],
            EventKind::UpdateCompleted(e) => match &e.outcome {
                UpdateOutcome::Completed(result) => vec![Some(result)],
                UpdateOutcome::Failed(failure) => vec![details(failure)],
            },
            EventKind::ActivityCancelRequested(_)
            | EventKind::TimerStarted(_)
            | EventKind::TimerFired(_)
            | EventKind::TimerCancelled(_)
            | EventKind::ChildWorkflowCancelRequested(_)
            | EventKind::CancelRequested(_)
            | EventKind::MarkerRecorded(Marker::Patch { .. })
            | EventKind::WorkflowTerminated(_)
            | EventKind::WorkflowTimedOut(_) => vec![],
        };
        found.into_iter().flatten().collect()
    }
}

impl EventKind {
    /// Encodes an event kind on its own (an input waiting in the inbox, before it has a seq).
    pub fn encode(&self, limits: &Limits) -> Result<Vec<u8>> {
        within_limit("event kind", codec::encode("event kind", self)?, limits)
    }

    /// Decodes an event kind written by [`EventKind::encode`].
    pub fn decode(bytes: &[u8], limits: &Limits) -> Result<EventKind> {
        codec::decode("event kind", bytes, limits.max_event_bytes)
    }
}

impl Event {
    /// Encodes the event as stored: a format byte, then the bincode body.
    pub fn encode(&self, limits: &Limits) -> Result<Vec<u8>> {
        within_limit("event", codec::encode("event", self)?, limits)
    }

    /// Decodes an event written by [`Event::encode`].
    pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Event> {
        codec::decode("event", bytes, limits.max_event_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_with_a_format_byte_and_decodes_back() {
        let event = Event {
            seq: Seq::new(3),
            recorded_at: Timestamp::from_unix_micros(1_000_000),
            kind: EventKind::TimerStarted(TimerStarted {
                duration: Duration::from_secs(30),
            }),
        };
        let bytes = event.encode(&Limits::DEFAULT).unwrap();
        assert_eq!(bytes[0], codec::FORMAT_BINCODE_V1);
        assert_eq!(Event::decode(&bytes, &Limits::DEFAULT).unwrap(), event);
    }

    #[test]
    fn oversized_event_is_refused_both_ways() {
        let event = Event {
            seq: Seq::new(2),
            recorded_at: Timestamp::UNIX_EPOCH,
            kind: EventKind::CancelRequested(CancelRequested {
                reason: "x".repeat(200),
            }),
        };
        let small = Limits::DEFAULT.with_max_event_bytes(64);
        assert!(matches!(
            event.encode(&small),
            Err(Error::TooLarge { what: "event", .. })
        ));
        let bytes = event.encode(&Limits::DEFAULT).unwrap();
        assert!(matches!(
            Event::decode(&bytes, &small),
            Err(Error::TooLarge { .. })
        ));
    }
}

//! What a step does beyond appending its events, as data: the one place that reads a step's
//! decisions and says which tasks, timers, cancellations, children, patches, closes and next
//! runs they mean.
//!
//! The engine's store executes [`Effects`] in SQL and the testkit's `TestEnv` in memory;
//! neither reads decisions itself, so the two cannot disagree about what a decision does.
//! (duroxide hands its provider one typed bundle per turn in the same way.) Every rule below
//! is part of the contract both executors keep:
//!
//! - an activity scheduled gets a task, due now, unless the run closes in the same step
//!   (nothing would take its outcome);
//! - a local activity gets nothing: the host ran it while stepping (`Execution::
//!   take_local_activities`, with the shared attempt rules of `LocalActivityRequest::run`)
//!   and its outcome is already among the step's events;
//! - a timer started delivers `TimerFired` to the run itself after its duration, unless the
//!   run closes in the same step; a timer cancelled removes that delivery;
//! - an activity whose cancellation is requested is cancelled at once if no attempt is
//!   running (`ActivityCancelled` with the attempts made so far); a running attempt learns of
//!   it at its next heartbeat;
//! - a child started is a new run with its parent-close policy; if its workflow id has an
//!   open run, the parent gets `ChildWorkflowFailed` (`WorkflowIdInUse`, not retryable);
//! - a child whose cancellation is requested gets `CancelRequested` if it still runs;
//! - a patch marker is recorded per run for patch-usage reports;
//! - an update accepted, completed (its handler returned) or refused (never recorded) is
//!   told to whoever waits for it;
//! - a close sets the run's status, tells its parent how it ended (not for continue-as-new:
//!   the child goes on), and applies each open child's parent-close policy;
//! - a continue-as-new starts the next run of the workflow id (same parent and parent-close
//!   policy) and hands it the signals the run never took: first those its code had buffered,
//!   then those still waiting to be applied.

use std::time::Duration;

use reprise_history::{
    ActivityScheduled, ChildWorkflowFailed, Event, EventKind, Failure, Marker, ParentClosePolicy,
    ParentRun, PatchId, Payload, ReplayRules, RunId, RunOrigin, RunState, Seq, SignalName,
    TraceContext, UpdateCompleted, UpdateId, UpdateOutcome, WorkflowId, WorkflowStarted,
};

use crate::executor::{Execution, RunStatus};
use crate::update::UpdateRejection;

/// The run a step belongs to: what its effects need to know about it beyond the step.
#[derive(Clone, Copy, Debug)]
pub struct RunIdentity<'a> {
    /// The workflow id.
    pub workflow_id: &'a WorkflowId,
    /// The run.
    pub run_id: RunId,
    /// The parent, for a child run.
    pub parent: Option<&'a ParentRun>,
    /// The trace the step belongs to (its span's context, or the run's recorded one): the
    /// trace children and the next run start in.
    pub trace: Option<&'a TraceContext>,
}

/// What one step's decisions do, in the order an executor should carry them out.
#[derive(Debug, Default)]
pub struct Effects<'a> {
    /// Activity tasks to create, due now.
    pub tasks: Vec<NewTask<'a>>,
    /// Timers to start: `TimerFired` delivered to the run after the duration.
    pub timers: Vec<NewTimer>,
    /// Timers cancelled, by the seq of their `TimerStarted`.
    pub cancelled_timers: Vec<Seq>,
    /// Activities whose cancellation was requested, by the seq of their `ActivityScheduled`.
    pub cancelled_activities: Vec<Seq>,
    /// Child runs to start.
    pub children: Vec<NewChild>,
    /// Children whose cancellation was requested, by the seq of their `ChildWorkflowStarted`.
    pub cancelled_children: Vec<Seq>,
    /// Patch markers recorded, with their seqs.
    pub patches: Vec<(Seq, &'a PatchId)>,
    /// How the step closes the run, if it does.
    pub close: Option<Close<'a>>,
    /// The custom status the step set (the last value, encoded), to store with the run.
    pub status: Option<Payload>,
    /// Updates the step accepted (recorded as `UpdateAccepted`), by that event's seq.
    pub accepted_updates: Vec<(Seq, &'a UpdateId)>,
    /// Updates whose handlers returned in the step: their callers get the outcome.
    pub completed_updates: Vec<&'a UpdateCompleted>,
    /// Updates the step refused (recorded nowhere): their callers are told why.
    pub rejected_updates: Vec<UpdateRejection>,
    /// Updates sent again with an id the run had finished: their callers get its outcome.
    pub repeated_updates: Vec<(UpdateId, UpdateOutcome)>,
}

/// An activity task to create.
#[derive(Clone, Copy, Debug)]
pub struct NewTask<'a> {
    /// The seq of its `ActivityScheduled`: with the run id, the activity's idempotency key.
    pub scheduled: Seq,
    /// What was scheduled: type, queue, input, options.
    pub activity: &'a ActivityScheduled,
}

/// A timer to start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewTimer {
    /// The seq of its `TimerStarted`.
    pub started: Seq,
    /// How long after the step's time it fires.
    pub fires_after: Duration,
}

/// A child run to start.
#[derive(Clone, Debug)]
pub struct NewChild {
    /// The seq of the parent's `ChildWorkflowStarted`.
    pub started_seq: Seq,
    /// The child's first event.
    pub started: WorkflowStarted,
    /// What happens to the child when the parent closes first.
    pub policy: ParentClosePolicy,
    /// Its deadlines and retry policy, as the parent's code set them.
    pub run_timeout: Option<Duration>,
    /// See [`NewChild::run_timeout`].
    pub execution_timeout: Option<Duration>,
    /// See [`NewChild::run_timeout`].
    pub retry: Option<reprise_history::RetryPolicy>,
}

impl NewChild {
    /// What the parent records when the child could not start: its options were refused
    /// (`reason` says why), so no run of it exists.
    pub fn refused(&self, reason: &str) -> EventKind {
        EventKind::ChildWorkflowFailed(ChildWorkflowFailed {
            started: self.started_seq,
            failure: Failure::application("InvalidChildOptions", reason).retryable(false),
        })
    }

    /// What the parent records when the child's workflow id already has an open run.
    pub fn id_in_use(&self) -> EventKind {
        EventKind::ChildWorkflowFailed(ChildWorkflowFailed {
            started: self.started_seq,
            failure: Failure::application(
                "WorkflowIdInUse",
                format!(
                    "a run of workflow id {} is already open",
                    self.started.workflow_id
                ),
            )
            .retryable(false),
        })
    }
}

/// How a step closes its run.
#[derive(Clone, Debug)]
pub struct Close<'a> {
    /// The run's status from now on (never `Running`).
    pub state: RunState,
    /// The closing event.
    pub event: &'a Event,
    /// What the parent must hear, and where: `None` for a run without a parent and for a
    /// continue-as-new (the child goes on in its next run).
    pub parent_outcome: Option<(ParentRun, EventKind)>,
    /// The next run, for a continue-as-new.
    pub next_run: Option<NextRun>,
}

/// The next run of a workflow that continued as new.
#[derive(Clone, Debug)]
pub struct NextRun {
    /// Its first event (same workflow id and parent; origin: the run that continued).
    pub started: WorkflowStarted,
    /// Signals the run's code had buffered but never took, in arrival order. Signals still
    /// waiting to be applied follow them.
    pub carried: Vec<(SignalName, Payload)>,
}

impl<'a> Close<'a> {
    /// The close a closing event makes (a step's last, or a termination's); `None` for an
    /// event that does not close. `carried` is used only by a continue-as-new.
    pub fn of(
        run: RunIdentity<'_>,
        event: &'a Event,
        carried: impl FnOnce() -> Vec<(SignalName, Payload)>,
    ) -> Option<Close<'a>> {
        let state = RunState::closed_by(&event.kind)?;
        let parent_outcome = run
            .parent
            .and_then(|p| Some((p.clone(), event.kind.child_outcome(p.started_seq)?)));
        let next_run = match &event.kind {
            EventKind::WorkflowContinuedAsNew(next) => Some(NextRun {
                started: WorkflowStarted {
                    workflow_type: next.workflow_type.clone(),
                    workflow_id: run.workflow_id.clone(),
                    run_id: next.new_run_id,
                    input: next.input.clone(),
                    task_queue: next.task_queue.clone(),
                    origin: RunOrigin::ContinuedAsNew {
                        previous_run_id: run.run_id,
                    },
                    parent: run.parent.cloned(),
                    trace_context: run.trace.cloned(),
                    replay_rules: ReplayRules::CURRENT,
                },
                carried: carried(),
            }),
            _ => None,
        };
        Some(Close {
            state,
            event,
            parent_outcome,
            next_run,
        })
    }
}

impl<'a> Effects<'a> {
    /// The effects of a live step that appended `events` (inputs and decisions, in order) to
    /// `run`; `execution` is the orchestrator after the step (for the signals a
    /// continue-as-new carries).
    pub fn of_step(run: RunIdentity<'_>, events: &'a [Event], execution: &Execution) -> Self {
        let mut effects = Effects::of_events(run, events, || match execution.status() {
            RunStatus::ContinuedAsNew(_) => execution.unreceived_signals(),
            RunStatus::Running
            | RunStatus::Completed(_)
            | RunStatus::Failed(_)
            | RunStatus::Cancelled
            | RunStatus::Terminated
            | RunStatus::TimedOut(_) => Vec::new(),
        });
        effects.status = execution.unwritten_status();
        effects.rejected_updates = execution.unwritten_rejections();
        effects.repeated_updates = execution.unwritten_answers();
        effects
    }

    /// The effects of recorded events alone, with no orchestrator (a reset re-opening what a
    /// history left open): a continue-as-new among them carries no buffered signals.
    pub fn of_recorded(run: RunIdentity<'_>, events: &'a [Event]) -> Self {
        Effects::of_events(run, events, Vec::new)
    }

    fn of_events(
        run: RunIdentity<'_>,
        events: &'a [Event],
        carried: impl FnOnce() -> Vec<(SignalName, Payload)>,
    ) -> Self {
        let close = events.last().and_then(|last| Close::of(run, last, carried));
        let mut effects = Effects {
            close,
            ..Effects::default()
        };
        for event in events {
            effects.add(run, event);
        }
        effects
    }

    fn add(&mut self, run: RunIdentity<'_>, event: &'a Event) {
        let open = self.close.is_none();
        match &event.kind {
            EventKind::ActivityScheduled(activity) if open => self.tasks.push(NewTask {
                scheduled: event.seq,
                activity,
            }),
            EventKind::TimerStarted(t) if open => self.timers.push(NewTimer {
                started: event.seq,
                fires_after: t.duration,
            }),
            EventKind::TimerCancelled(t) => self.cancelled_timers.push(t.started),
            EventKind::ActivityCancelRequested(c) => self.cancelled_activities.push(c.scheduled),
            EventKind::ChildWorkflowStarted(c) => self.children.push(NewChild {
                started_seq: event.seq,
                started: c.child_run_started(
                    ParentRun {
                        workflow_id: run.workflow_id.clone(),
                        run_id: run.run_id,
                        started_seq: event.seq,
                    },
                    run.trace.cloned(),
                ),
                policy: c.parent_close_policy,
                run_timeout: c.run_timeout,
                execution_timeout: c.execution_timeout,
                retry: c.retry.clone(),
            }),
            EventKind::ChildWorkflowCancelRequested(c) => self.cancelled_children.push(c.started),
            EventKind::MarkerRecorded(Marker::Patch { patch_id }) => {
                self.patches.push((event.seq, patch_id));
            }
            EventKind::UpdateAccepted(u) => self.accepted_updates.push((event.seq, &u.update_id)),
            EventKind::UpdateCompleted(c) => self.completed_updates.push(c),
            // Scheduled or started by a step that also closes the run: nothing would take
            // the outcome.
            EventKind::ActivityScheduled(_) | EventKind::TimerStarted(_) => {}
            // Inputs were delivered by whoever sent them; side effects are recorded in the
            // event itself; a close is `self.close`. A local activity was run by the host
            // inside the step, and its outcome is one of the step's own events (see
            // `local.rs`): it leaves nothing to carry out.
            EventKind::MarkerRecorded(Marker::SideEffect { .. })
            | EventKind::LocalActivityScheduled(_)
            | EventKind::LocalActivityBackoff(_)
            | EventKind::WorkflowStarted(_)
            | EventKind::ActivityCompleted(_)
            | EventKind::ActivityFailed(_)
            | EventKind::ActivityTimedOut(_)
            | EventKind::ActivityCancelled(_)
            | EventKind::TimerFired(_)
            | EventKind::SignalReceived(_)
            | EventKind::ChildWorkflowCompleted(_)
            | EventKind::ChildWorkflowFailed(_)
            | EventKind::CancelRequested(_)
            | EventKind::WorkflowCompleted(_)
            | EventKind::WorkflowFailed(_)
            | EventKind::WorkflowCancelled(_)
            | EventKind::WorkflowTerminated(_)
            | EventKind::WorkflowTimedOut(_)
            | EventKind::WorkflowContinuedAsNew(_) => {}
        }
    }

    /// Whether the step needs nothing but rows written alongside its events: tasks and a
    /// close with no one to tell and no next run. Timers, cancellations, children, patches,
    /// a child's close (its parent's inbox), continue-as-new, a failure (which the
    /// workflow's retry policy may retry as a new run), a task's schedule-to-start deadline
    /// and updates' outcomes take statements of their own.
    pub fn are_rows_only(&self) -> bool {
        self.are_rows_and_updates_only() && !self.touch_updates()
    }

    /// [`Effects::are_rows_only`], but for what the step does to updates (accepted,
    /// completed, refused): statements of their own that need nothing but the run.
    pub fn are_rows_and_updates_only(&self) -> bool {
        self.waiting_tasks().next().is_none()
            && self.timers.is_empty()
            && self.cancelled_timers.is_empty()
            && self.cancelled_activities.is_empty()
            && self.children.is_empty()
            && self.cancelled_children.is_empty()
            && self.patches.is_empty()
            && self.close.as_ref().is_none_or(|c| {
                c.parent_outcome.is_none() && c.next_run.is_none() && c.state != RunState::Failed
            })
    }

    /// Whether the step accepted, completed or refused an update.
    pub fn touch_updates(&self) -> bool {
        !self.accepted_updates.is_empty()
            || !self.completed_updates.is_empty()
            || !self.rejected_updates.is_empty()
            || !self.repeated_updates.is_empty()
    }

    /// Whether the effects need the step's events written before them: cancelling an
    /// activity needs its task to exist, so does giving a task its schedule-to-start
    /// deadline, and a continue-as-new hands the next run only the inputs its run did not
    /// apply.
    pub fn need_events_first(&self) -> bool {
        !self.cancelled_activities.is_empty()
            || self.waiting_tasks().next().is_some()
            || self.close.as_ref().is_some_and(|c| c.next_run.is_some())
    }

    /// The tasks whose attempts must be taken within a schedule-to-start timeout: a
    /// statement of their own gives them their deadline.
    pub fn waiting_tasks(&self) -> impl Iterator<Item = (Seq, std::time::Duration)> + '_ {
        self.tasks.iter().filter_map(|t| {
            t.activity
                .options
                .schedule_to_start
                .map(|timeout| (t.scheduled, timeout))
        })
    }
}

#[cfg(test)]
mod tests {
    use reprise_history::{
        ActivityCompleted, ActivityOptions, ActivityScheduled, ActivityType, ChildWorkflowStarted,
        Limits, TaskQueue, TimerFired, TimerStarted, Timestamp, WorkflowCompleted,
        WorkflowContinuedAsNew, WorkflowFailed, WorkflowType,
    };

    use super::*;

    fn event(seq: u64, kind: EventKind) -> Event {
        Event {
            seq: Seq::new(seq),
            recorded_at: Timestamp::from_unix_micros(0),
            kind,
        }
    }

    fn payload() -> Payload {
        Payload::encode(&1, &Limits::DEFAULT).unwrap()
    }

    fn scheduled() -> EventKind {
        EventKind::ActivityScheduled(ActivityScheduled {
            activity_type: ActivityType::new("a").unwrap(),
            task_queue: TaskQueue::new("default").unwrap(),
            input: payload(),
            options: ActivityOptions::default(),
            priority: None,
        })
    }

    fn run<'a>(workflow_id: &'a WorkflowId, parent: Option<&'a ParentRun>) -> RunIdentity<'a> {
        RunIdentity {
            workflow_id,
            run_id: RunId::random(),
            parent,
            trace: None,
        }
    }

    #[test]
    fn inputs_activities_side_effects_and_a_plain_close_are_rows_only() {
        let id = WorkflowId::new("wf").unwrap();
        let events = [
            event(
                3,
                EventKind::ActivityCompleted(ActivityCompleted {
                    scheduled: Seq::new(2),
                    result: payload(),
                    attempt: 1,
                }),
            ),
            event(4, scheduled()),
            event(
                5,
                EventKind::MarkerRecorded(Marker::SideEffect { value: payload() }),
            ),
            event(
                6,
                EventKind::TimerFired(TimerFired {
                    started: Seq::new(2),
                }),
            ),
        ];
        let effects = Effects::of_recorded(run(&id, None), &events);
        assert_eq!(effects.tasks.len(), 1);
        assert!(effects.are_rows_only());
        assert!(!effects.need_events_first());

        let timer = [event(
            2,
            EventKind::TimerStarted(TimerStarted {
                duration: Duration::from_secs(1),
            }),
        )];
        let effects = Effects::of_recorded(run(&id, None), &timer);
        assert_eq!(
            effects.timers,
            [NewTimer {
                started: Seq::new(2),
                fires_after: Duration::from_secs(1)
            }]
        );
        assert!(!effects.are_rows_only());

        let completed = [event(
            2,
            EventKind::WorkflowCompleted(WorkflowCompleted { result: payload() }),
        )];
        assert!(Effects::of_recorded(run(&id, None), &completed).are_rows_only());
        let failed = [event(
            2,
            EventKind::WorkflowFailed(WorkflowFailed {
                failure: Failure::application("Busy", "later"),
            }),
        )];
        assert!(
            !Effects::of_recorded(run(&id, None), &failed).are_rows_only(),
            "a failure may start a retry"
        );
    }

    #[test]
    fn a_step_that_closes_creates_no_tasks_and_tells_the_parent() {
        let id = WorkflowId::new("child").unwrap();
        let parent = ParentRun {
            workflow_id: WorkflowId::new("parent").unwrap(),
            run_id: RunId::random(),
            started_seq: Seq::new(7),
        };
        let events = [
            event(2, scheduled()),
            event(
                3,
                EventKind::WorkflowCompleted(WorkflowCompleted { result: payload() }),
            ),
        ];
        let effects = Effects::of_recorded(run(&id, Some(&parent)), &events);
        assert!(effects.tasks.is_empty());
        let close = effects.close.as_ref().unwrap();
        assert_eq!(close.state, RunState::Completed);
        let (to, outcome) = close.parent_outcome.as_ref().unwrap();
        assert_eq!(to.run_id, parent.run_id);
        assert!(matches!(
            outcome,
            EventKind::ChildWorkflowCompleted(c) if c.started == Seq::new(7)
        ));
        assert!(
            !effects.are_rows_only(),
            "the parent's inbox is a statement"
        );
    }

    #[test]
    fn a_continue_as_new_starts_the_next_run_under_the_same_parent() {
        let id = WorkflowId::new("wf").unwrap();
        let parent = ParentRun {
            workflow_id: WorkflowId::new("parent").unwrap(),
            run_id: RunId::random(),
            started_seq: Seq::new(2),
        };
        let next_run = RunId::random();
        let events = [event(
            2,
            EventKind::WorkflowContinuedAsNew(WorkflowContinuedAsNew {
                new_run_id: next_run,
                workflow_type: WorkflowType::new("wf").unwrap(),
                input: payload(),
                task_queue: TaskQueue::new("default").unwrap(),
            }),
        )];
        let this = run(&id, Some(&parent));
        let effects = Effects::of_recorded(this, &events);
        let close = effects.close.as_ref().unwrap();
        assert_eq!(close.state, RunState::ContinuedAsNew);
        assert!(close.parent_outcome.is_none(), "the child goes on");
        let next = close.next_run.as_ref().unwrap();
        assert_eq!(next.started.run_id, next_run);
        assert_eq!(next.started.parent.as_ref(), Some(&parent));
        assert_eq!(
            next.started.origin,
            RunOrigin::ContinuedAsNew {
                previous_run_id: this.run_id
            }
        );
        assert!(effects.need_events_first());
    }

    #[test]
    fn a_child_started_carries_its_parent_and_policy() {
        let id = WorkflowId::new("wf").unwrap();
        let events = [event(
            4,
            EventKind::ChildWorkflowStarted(ChildWorkflowStarted {
                workflow_type: WorkflowType::new("c").unwrap(),
                workflow_id: WorkflowId::new("c-1").unwrap(),
                run_id: RunId::random(),
                input: payload(),
                task_queue: TaskQueue::new("default").unwrap(),
                parent_close_policy: ParentClosePolicy::Abandon,
                run_timeout: None,
                execution_timeout: None,
                retry: None,
            }),
        )];
        let this = run(&id, None);
        let effects = Effects::of_recorded(this, &events);
        let child = &effects.children[0];
        assert_eq!(child.policy, ParentClosePolicy::Abandon);
        assert_eq!(child.started_seq, Seq::new(4));
        let parent = child.started.parent.as_ref().unwrap();
        assert_eq!(
            (parent.run_id, parent.started_seq),
            (this.run_id, Seq::new(4))
        );
        assert!(
            matches!(child.id_in_use(), EventKind::ChildWorkflowFailed(f) if !f.failure.retryable)
        );
    }
}

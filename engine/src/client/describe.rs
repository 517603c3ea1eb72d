//! `describe`: a run's state for people and tools — status, input, outcome, times, pending
//! work.

use reprise_history::{
    EventKind, Failure, Payload, RunId, RunState, Seq, TaskQueue, Timestamp, WorkflowId,
    WorkflowType,
};

use crate::client::Client;
use crate::error::{Error, Result};
use crate::store::{PendingActivity, RunEnd, on_live_read};

/// A run's state, for people and tools.
#[derive(Clone, Debug)]
pub struct Description {
    /// The workflow id.
    pub workflow_id: WorkflowId,
    /// The run described (the latest of its workflow id).
    pub run_id: RunId,
    /// Its workflow type.
    pub workflow_type: WorkflowType,
    /// The task queue its orchestrator runs on.
    pub task_queue: TaskQueue,
    /// Where it is in its life.
    pub status: RunState,
    /// Why it is parked, if it is.
    pub parked_reason: Option<String>,
    /// The build that parked it, if one did.
    pub parked_build: Option<String>,
    /// The run that started it as a child, if one did.
    pub parent_run_id: Option<RunId>,
    /// The run it continues (continue-as-new, a workflow retry, a reset), if any.
    pub previous_run_id: Option<RunId>,
    /// The seq of its last event.
    pub head_seq: Seq,
    /// Its input, as stored (decode it with the client's converter).
    pub input: Payload,
    /// When it started (database time).
    pub started_at: Timestamp,
    /// When it closed, if it has.
    pub closed_at: Option<Timestamp>,
    /// When its last event was recorded: its last step, or the last input it received.
    pub last_event_at: Timestamp,
    /// How it ended, if it has.
    pub outcome: Option<RunOutcome>,
    /// Activities scheduled and not yet finished.
    pub pending_activities: Vec<PendingActivity>,
    /// The custom status its code last set (`ctx.set_status`), as stored (decode it with
    /// the client's converter), and when it was set.
    pub custom_status: Option<(Payload, Timestamp)>,
    /// Which attempt of the workflow this run is, from 1 (a workflow retry's runs count up).
    pub attempt: u32,
    /// When the engine closes the run as timed out if it is still open: the earlier of its
    /// run and execution deadlines; `None` without either.
    pub deadline: Option<Timestamp>,
}

/// How a closed run ended, from its closing event.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum RunOutcome {
    /// It returned a result.
    Completed {
        /// The result, as stored.
        result: Payload,
    },
    /// It failed.
    Failed {
        /// The failure as recorded.
        failure: Failure,
    },
    /// It acknowledged a cancel request.
    Cancelled {
        /// Details its code gave.
        details: Option<Payload>,
    },
    /// An operator terminated it.
    Terminated {
        /// Why.
        reason: String,
    },
    /// It continued as a new run.
    ContinuedAsNew {
        /// The next run.
        next_run_id: RunId,
    },
    /// The engine closed it at a deadline.
    TimedOut {
        /// Which deadline.
        timeout: reprise_history::WorkflowTimeout,
    },
}

impl RunOutcome {
    /// The outcome a closing event records; `None` for an event that does not close a run.
    pub fn of(closing: &EventKind) -> Option<RunOutcome> {
        Some(match closing {
            EventKind::WorkflowCompleted(c) => RunOutcome::Completed {
                result: c.result.clone(),
            },
            EventKind::WorkflowFailed(f) => RunOutcome::Failed {
                failure: f.failure.clone(),
            },
            EventKind::WorkflowCancelled(c) => RunOutcome::Cancelled {
                details: c.details.clone(),
            },
            EventKind::WorkflowTerminated(t) => RunOutcome::Terminated {
                reason: t.reason.clone(),
            },
            EventKind::WorkflowContinuedAsNew(c) => RunOutcome::ContinuedAsNew {
                next_run_id: c.new_run_id,
            },
            EventKind::WorkflowTimedOut(t) => RunOutcome::TimedOut { timeout: t.timeout },
            EventKind::WorkflowStarted(_)
            | EventKind::ActivityScheduled(_)
            | EventKind::ActivityCompleted(_)
            | EventKind::ActivityFailed(_)
            | EventKind::ActivityTimedOut(_)
            | EventKind::ActivityCancelRequested(_)
            | EventKind::ActivityCancelled(_)
            | EventKind::TimerStarted(_)
            | EventKind::TimerFired(_)
            | EventKind::TimerCancelled(_)
            | EventKind::ChildWorkflowStarted(_)
            | EventKind::ChildWorkflowCompleted(_)
            | EventKind::ChildWorkflowFailed(_)
            | EventKind::ChildWorkflowCancelRequested(_)
            | EventKind::SignalReceived(_)
            | EventKind::CancelRequested(_)
            | EventKind::MarkerRecorded(_)
            | EventKind::LocalActivityScheduled(_)
            | EventKind::LocalActivityBackoff(_)
            | EventKind::UpdateAccepted(_)
            | EventKind::UpdateCompleted(_) => return None,
        })
    }
}

impl Client {
    /// The latest run of a workflow id: status, parked reason, input, outcome, start and close
    /// times, pending activities, custom status. Reads the first and last events only, each checked against
    /// its chain hash.
    pub async fn describe(&self, workflow_id: &str) -> Result<Description> {
        let id = WorkflowId::new(workflow_id)?;
        let latest = self.latest_run(&id).await?;
        self.describe_run(latest.run_id).await
    }

    /// One run by its id, as [`Client::describe`] describes a workflow's latest run: for an
    /// earlier run of a workflow (before a continue-as-new, a retry or a reset) or a child.
    pub async fn describe_run(&self, run_id: RunId) -> Result<Description> {
        let store = &self.store;
        let run =
            on_live_read!(store, store.run_summary(run_id))?.ok_or(Error::UnknownRun { run_id })?;
        let first = on_live_read!(store, store.first_event(run.run_id))?;
        let EventKind::WorkflowStarted(started) = first.kind else {
            return Err(Error::Corrupt {
                what: format!("history of run {}", run.run_id),
                reason: format!("event 1 is {}, not WorkflowStarted", first.kind.name()),
            });
        };
        let outcome = match on_live_read!(store, store.run_end(run.run_id))? {
            Some(RunEnd::Closed(event)) => RunOutcome::of(&event.kind),
            Some(RunEnd::ContinuedAs(next_run_id)) => {
                Some(RunOutcome::ContinuedAsNew { next_run_id })
            }
            Some(RunEnd::Open { .. }) | None => None,
        };
        let pending_activities = on_live_read!(store, store.pending_activities(run.run_id))?;
        let custom_status = on_live_read!(store, store.custom_status(run.run_id))?;
        let (attempt, deadline) = on_live_read!(store, store.attempt_and_deadline(run.run_id))?;
        Ok(Description {
            workflow_id: run.workflow_id,
            run_id: run.run_id,
            workflow_type: run.workflow_type,
            task_queue: started.task_queue,
            status: run.status,
            parked_reason: run.parked_reason,
            parked_build: run.parked_build,
            parent_run_id: run.parent_run_id,
            previous_run_id: run.previous_run_id,
            head_seq: run.head_seq,
            input: started.input,
            started_at: first.recorded_at,
            closed_at: run.closed_at,
            last_event_at: run.last_event_at,
            outcome,
            pending_activities,
            custom_status,
            attempt,
            deadline: deadline.filter(|_| run.status.is_open()),
        })
    }
}

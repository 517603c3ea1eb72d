//! What a schedule starts, and the schedule as a whole.

use std::time::Duration;

use reprise_history::{
    Payload, Priority, ReplayRules, RetryPolicy, RunId, RunOrigin, ScheduleId, TaskQueue,
    Timestamp, WorkflowId, WorkflowStarted, WorkflowType,
};

use crate::policy::{OverlapPolicy, SchedulePolicies};
use crate::spec::ScheduleSpec;

/// What each firing starts: a workflow of a type, with an input already encoded by the
/// client's data converter (so a configured codec seals it before it is stored).
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduleAction {
    /// The workflow type.
    pub workflow_type: WorkflowType,
    /// Its input.
    pub input: Payload,
    /// The orchestrator task queue.
    pub task_queue: TaskQueue,
    /// The started runs' priority.
    pub priority: Priority,
    /// The started runs' fairness key.
    pub fairness_key: Option<String>,
    /// Each started workflow's run timeout (as `StartOptions::run_timeout`).
    pub run_timeout: Option<Duration>,
    /// Each started workflow's execution timeout (as `StartOptions::execution_timeout`).
    pub execution_timeout: Option<Duration>,
    /// How each started workflow's failed runs are retried (as `StartOptions::retry`).
    pub retry: Option<RetryPolicy>,
}

impl ScheduleAction {
    /// Starts `workflow_type` with `input` on the default queue, at the default priority.
    pub fn new(workflow_type: WorkflowType, input: Payload) -> ScheduleAction {
        ScheduleAction {
            workflow_type,
            input,
            task_queue: TaskQueue::default(),
            priority: Priority::default(),
            fairness_key: None,
            run_timeout: None,
            execution_timeout: None,
            retry: None,
        }
    }

    /// The first event of the run a firing of schedule `schedule_id` for `scheduled_at`
    /// starts as `workflow_id`: what the engine and `TestEnv` both record.
    pub fn first_event(
        &self,
        schedule_id: &ScheduleId,
        scheduled_at: Timestamp,
        workflow_id: &WorkflowId,
        run_id: RunId,
    ) -> WorkflowStarted {
        WorkflowStarted {
            workflow_type: self.workflow_type.clone(),
            workflow_id: workflow_id.clone(),
            run_id,
            input: self.input.clone(),
            task_queue: self.task_queue.clone(),
            origin: RunOrigin::Scheduled {
                schedule_id: schedule_id.clone(),
                scheduled_at,
            },
            parent: None,
            trace_context: None,
            replay_rules: ReplayRules::CURRENT,
        }
    }

    /// The same action on another task queue.
    pub fn on_queue(mut self, task_queue: TaskQueue) -> ScheduleAction {
        self.task_queue = task_queue;
        self
    }
}

/// A schedule: when it fires, what it starts, and how it behaves.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    /// When it fires.
    pub spec: ScheduleSpec,
    /// What each firing starts.
    pub action: ScheduleAction,
    /// Overlap and catch-up.
    pub policies: SchedulePolicies,
}

impl Schedule {
    /// A schedule with the default policies (skip overlaps, a one-day catch-up window).
    pub fn new(spec: ScheduleSpec, action: ScheduleAction) -> Schedule {
        Schedule {
            spec,
            action,
            policies: SchedulePolicies::default(),
        }
    }

    /// The same schedule with another overlap policy.
    pub fn overlap(mut self, overlap: OverlapPolicy) -> Schedule {
        self.policies.overlap = overlap;
        self
    }

    /// The same schedule with another catch-up window.
    pub fn catchup_window(mut self, window: Duration) -> Schedule {
        self.policies.catchup_window = window;
        self
    }
}

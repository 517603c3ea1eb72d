//! Starts with options, workflow deadlines and workflow retries in `TestEnv`, by the engine's
//! rules (`store/deadlines.rs`): both timeouts count from the first step; the execution
//! deadline is kept across continue-as-new and retries, the run timeout starts again with
//! each run; a run past its deadline is closed with `WorkflowTimedOut`; a failed run (or one
//! that reached its run timeout) is retried as a new run after the policy's backoff, unless
//! that backoff would end past the execution deadline, and its parent hears only of the last.

use std::time::Duration;

use rand_core::RngCore;
use reprise_history::*;
use reprise_sdk::{Close, NewChild, RunIdentity, RunStatus, WorkflowDef};
use serde::Serialize;

use super::{TestEnv, TestRun};
use crate::error::Error;

/// How a workflow is started in a [`TestEnv`]: the engine's `StartOptions` that change what
/// a run does in virtual time.
#[derive(Clone, Debug, Default)]
pub struct TestStartOptions {
    /// How long after the start its first step happens (`StartOptions::start_delay`).
    pub start_delay: Duration,
    /// Longest one run may take from its first step (`StartOptions::run_timeout`).
    pub run_timeout: Option<Duration>,
    /// Longest the workflow may take from its first run's first step, across continue-as-new
    /// and retries (`StartOptions::execution_timeout`).
    pub execution_timeout: Option<Duration>,
    /// How a failed run is retried (`StartOptions::retry`).
    pub retry: Option<RetryPolicy>,
}

/// A workflow's deadlines and retry policy as its runs carry them.
#[derive(Clone, Debug)]
pub(super) struct RunPolicy {
    run_timeout: Option<Duration>,
    execution_deadline: Option<Timestamp>,
    retry: Option<RetryPolicy>,
    /// Which attempt the run is, from 1.
    pub(super) attempt: u32,
    /// When the run is closed if it is still open.
    pub(super) deadline: Option<Timestamp>,
}

impl RunPolicy {
    /// The policy of a workflow's first run, whose first step is at `first_step`; `None`
    /// when it sets nothing.
    fn new(
        run_timeout: Option<Duration>,
        execution_timeout: Option<Duration>,
        retry: Option<RetryPolicy>,
        first_step: Timestamp,
    ) -> Option<RunPolicy> {
        if run_timeout.is_none() && execution_timeout.is_none() && retry.is_none() {
            return None;
        }
        let policy = RunPolicy {
            run_timeout,
            execution_deadline: execution_timeout.map(|t| first_step.saturating_add(t)),
            retry,
            attempt: 1,
            deadline: None,
        };
        Some(policy.for_run(1, first_step))
    }

    /// The policy of a run whose first step is at `first_step`.
    fn for_run(&self, attempt: u32, first_step: Timestamp) -> RunPolicy {
        let run_deadline = self.run_timeout.map(|t| first_step.saturating_add(t));
        let deadline = match (run_deadline, self.execution_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        RunPolicy {
            attempt,
            deadline,
            ..self.clone()
        }
    }
}

impl TestEnv {
    /// Starts a workflow with options, then runs what is due now. A zero timeout is refused,
    /// as the engine refuses it.
    pub fn start_with_options<I: Serialize, O>(
        &mut self,
        def: WorkflowDef<I, O>,
        workflow_id: &str,
        input: &I,
        options: TestStartOptions,
    ) -> Result<TestRun<O>, Error> {
        if let Some(problem) = workflow_terms_problem(
            options.run_timeout,
            options.execution_timeout,
            options.retry.as_ref(),
        ) {
            return Err(Error::InvalidOption(problem));
        }
        let workflow_id = WorkflowId::new(workflow_id)?;
        let started = WorkflowStarted {
            workflow_type: WorkflowType::new(def.name())?,
            workflow_id: workflow_id.clone(),
            run_id: self.new_run_id(),
            input: self.registry.converter().to_payload(input)?,
            task_queue: TaskQueue::new("default")?,
            origin: RunOrigin::Client,
            parent: None,
            trace_context: None,
            replay_rules: ReplayRules::CURRENT,
        };
        if !self.start_run(started, None)? {
            return Err(Error::AlreadyRunning(workflow_id.to_string()));
        }
        let first_step = self.now.saturating_add(options.start_delay);
        let policy = RunPolicy::new(
            options.run_timeout,
            options.execution_timeout,
            options.retry,
            first_step,
        );
        if let Some(run) = self.runs.get_mut(&workflow_id) {
            // As in the engine, a delayed run's first event is recorded at its start time.
            if !options.start_delay.is_zero() {
                run.first_step_at = Some(first_step);
                run.history[0].recorded_at = first_step;
                if let Some(first) = &mut run.first_step {
                    first.recorded_at = first_step;
                }
            }
            run.policy = policy;
        }
        self.settle()?;
        Ok(TestRun {
            workflow_id,
            output: std::marker::PhantomData,
        })
    }

    /// Which attempt of its workflow the latest run of `workflow_id` is, from 1.
    pub fn attempt(&self, workflow_id: &str) -> Result<u32, Error> {
        let id = WorkflowId::new(workflow_id)?;
        let run = self
            .runs
            .get(&id)
            .ok_or_else(|| Error::UnknownWorkflow(workflow_id.to_string()))?;
        Ok(run.policy.as_ref().map_or(1, |p| p.attempt))
    }

    /// Closes the open runs whose deadline is due; true if it closed any.
    pub(super) fn time_out_runs(&mut self) -> Result<bool, Error> {
        let now = self.now;
        let due: Vec<(WorkflowId, RunId, WorkflowTimeout)> = self
            .runs
            .iter()
            .filter(|(_, r)| r.status == RunStatus::Running)
            .filter_map(|(id, r)| {
                let policy = r.policy.as_ref()?;
                let deadline = policy.deadline.filter(|d| *d <= now)?;
                let timeout = if policy.execution_deadline.is_some_and(|d| d <= deadline) {
                    WorkflowTimeout::Execution
                } else {
                    WorkflowTimeout::Run
                };
                Some((id.clone(), r.run_id, timeout))
            })
            .collect();
        for (id, run_id, timeout) in &due {
            let kind = EventKind::WorkflowTimedOut(WorkflowTimedOut { timeout: *timeout });
            self.close_by_env(id, *run_id, kind)?;
        }
        Ok(!due.is_empty())
    }

    /// The open runs' deadlines, for the clock to jump to.
    pub(super) fn deadlines(&self) -> impl Iterator<Item = Timestamp> + '_ {
        self.runs
            .values()
            .filter(|r| r.status == RunStatus::Running)
            .filter_map(|r| r.policy.as_ref()?.deadline)
    }

    /// Starts the next attempt of a run that closed with `close`, if its workflow's retry
    /// policy allows one before the execution deadline; true if it did (then its parent must
    /// not hear yet).
    pub(super) fn retry_closed(
        &mut self,
        run: RunIdentity<'_>,
        close: &Close<'_>,
    ) -> Result<bool, Error> {
        let failure = match &close.event.kind {
            // As in the engine: the policy's error types and attempts decide, whatever the
            // failure's own flag (`WorkflowError::failed` records false).
            EventKind::WorkflowFailed(f) => f.failure.clone().retryable(true),
            EventKind::WorkflowTimedOut(t) => t.timeout.failure(),
            _ => return Ok(false),
        };
        let Some(state) = self.runs.get(run.workflow_id) else {
            return Ok(false);
        };
        let Some(policy) = state.policy.clone() else {
            return Ok(false);
        };
        let Some(retry) = &policy.retry else {
            return Ok(false);
        };
        if !retry.retries(&failure, policy.attempt) {
            return Ok(false);
        }
        let unit = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let first_step = self.now.saturating_add(retry.backoff(policy.attempt, unit));
        if policy.execution_deadline.is_some_and(|d| d <= first_step) {
            return Ok(false);
        }
        let Some(EventKind::WorkflowStarted(first)) = state.history.first().map(|e| e.kind.clone())
        else {
            return Ok(false);
        };
        let parent_close_policy = state.parent_close_policy;
        let attempt = policy.attempt + 1;
        let next = WorkflowStarted {
            run_id: self.new_run_id(),
            origin: RunOrigin::Retried {
                previous_run_id: run.run_id,
                attempt,
            },
            ..first
        };
        if !self.start_run(next, parent_close_policy)? {
            return Ok(false);
        }
        if let Some(next) = self.runs.get_mut(run.workflow_id) {
            next.first_step_at = Some(first_step);
            next.history[0].recorded_at = first_step;
            if let Some(first) = &mut next.first_step {
                first.recorded_at = first_step;
            }
            next.policy = Some(policy.for_run(attempt, first_step));
        }
        Ok(true)
    }

    /// Gives a workflow a schedule just started the deadlines and retry policy of the
    /// schedule's action.
    pub(super) fn apply_scheduled_terms(
        &mut self,
        workflow_id: &WorkflowId,
        action: &reprise_schedule::ScheduleAction,
    ) {
        let now = self.now;
        let policy = RunPolicy::new(
            action.run_timeout,
            action.execution_timeout,
            action.retry.clone(),
            now,
        );
        if let Some(run) = self.runs.get_mut(workflow_id) {
            run.policy = policy;
        }
    }

    /// Refuses a schedule's action whose deadlines or retry policy a start would refuse.
    pub(super) fn check_scheduled_terms(
        action: &reprise_schedule::ScheduleAction,
    ) -> Result<(), Error> {
        match workflow_terms_problem(
            action.run_timeout,
            action.execution_timeout,
            action.retry.as_ref(),
        ) {
            Some(problem) => Err(Error::InvalidOption(problem)),
            None => Ok(()),
        }
    }

    /// Starts a child its parent's step decided, with the deadlines and retry policy the
    /// parent gave it; the parent hears at once if the options are refused or the child's
    /// workflow id has an open run.
    pub(super) fn start_child(
        &mut self,
        parent: RunIdentity<'_>,
        child: &NewChild,
    ) -> Result<(), Error> {
        let now = self.now;
        let refused = workflow_terms_problem(
            child.run_timeout,
            child.execution_timeout,
            child.retry.as_ref(),
        );
        if let Some(problem) = refused {
            let failed = child.refused(&format!("invalid argument: {problem}"));
            self.push_input(parent.workflow_id, parent.run_id, now, failed);
            return Ok(());
        }
        if !self.start_run(child.started.clone(), Some(child.policy))? {
            self.push_input(parent.workflow_id, parent.run_id, now, child.id_in_use());
            return Ok(());
        }
        let policy = RunPolicy::new(
            child.run_timeout,
            child.execution_timeout,
            child.retry.clone(),
            now,
        );
        if let Some(run) = self.runs.get_mut(&child.started.workflow_id) {
            run.policy = policy;
        }
        Ok(())
    }

    /// Hands a run's policy to the next run of its continue-as-new (attempt 1 again).
    pub(super) fn inherit_policy(&mut self, id: &WorkflowId, policy: Option<RunPolicy>) {
        let now = self.now;
        if let Some(run) = self.runs.get_mut(id) {
            run.policy = policy.map(|p| p.for_run(1, now));
        }
    }
}

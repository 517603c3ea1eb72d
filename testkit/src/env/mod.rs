//! `TestEnv`: runs workflows in this process, with no database, in virtual time.
//!
//! Activities are stand-ins (closures that see their inputs and attempt numbers) or the
//! registry's own code. Whenever nothing can happen until some time passes — every workflow
//! waits on a timer, a retry backoff or a deadline — the clock jumps there, so a workflow that
//! sleeps 30 days finishes in milliseconds. Retries, backoff and schedule-to-close deadlines
//! follow the engine's rules (`RetryPolicy::retries` and `::backoff`, shared, not copied).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use reprise_history::*;
use reprise_sdk::{
    ActivityDef, ActivityError, Close, Effects, Execution, Registry, RunIdentity, RunStatus,
    SignalDef, WorkflowDef,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;

mod activities;
mod deadlines;
mod local;
mod schedules;
mod talk;

use activities::Task;
pub use deadlines::TestStartOptions;

type StandInFn = Box<dyn FnMut(&Payload, u32) -> Result<Payload, ActivityError>>;

/// The calls a stand-in activity received: inputs and attempt numbers, in order.
pub struct StandIn<I> {
    calls: Rc<RefCell<Vec<(I, u32)>>>,
}

impl<I: Clone> StandIn<I> {
    /// Every call: the input and the attempt number.
    pub fn calls(&self) -> Vec<(I, u32)> {
        self.calls.borrow().clone()
    }

    /// How many times it ran (attempts included).
    pub fn count(&self) -> usize {
        self.calls.borrow().len()
    }
}

struct Run {
    run_id: RunId,
    /// The run's `WorkflowStarted`, until its first step applies it: as in the engine, a run
    /// created by another's step (a child, a next run) takes its first step afterwards.
    first_step: Option<Event>,
    /// A delayed start's time: its first step waits for it (inputs wait in the inbox).
    first_step_at: Option<Timestamp>,
    execution: Option<Execution>,
    history: Vec<Event>,
    /// Inputs waiting: visible from a time on, in arrival order.
    inbox: Vec<(Timestamp, EventKind)>,
    parent: Option<ParentRun>,
    /// For a child: what happens to it when its parent closes first.
    parent_close_policy: Option<ParentClosePolicy>,
    status: RunStatus,
    /// The custom status its steps set, as the engine stores it.
    custom_status: Option<Payload>,
    /// Its workflow's deadlines and retry policy, if it has any.
    policy: Option<deadlines::RunPolicy>,
}

/// A handle on a workflow started in a [`TestEnv`].
pub struct TestRun<O> {
    workflow_id: WorkflowId,
    output: std::marker::PhantomData<fn() -> O>,
}

impl<O> TestRun<O> {
    /// The workflow id.
    pub fn workflow_id(&self) -> &WorkflowId {
        &self.workflow_id
    }
}

/// An in-process Reprise: workflows, stand-in activities, virtual time.
pub struct TestEnv {
    registry: Registry,
    stand_ins: BTreeMap<ActivityType, StandInFn>,
    now: Timestamp,
    runs: BTreeMap<WorkflowId, Run>,
    /// The histories of the closed runs that a later run of the same workflow id replaced.
    earlier_runs: BTreeMap<WorkflowId, Vec<Vec<Event>>>,
    tasks: Vec<Task>,
    rng: ChaCha8Rng,
    /// With a seed, due activities finish one at a time in a random order.
    shuffle: bool,
    /// Updates sent, by run and update id: `None` until their step refuses them or their
    /// handler returns.
    updates: BTreeMap<(RunId, String), Option<talk::UpdateEnd>>,
    /// Schedules, fired as virtual time moves (`schedules.rs`).
    schedules: schedules::Schedules,
    /// Activity types no worker serves (`without_worker`): their attempts wait.
    unserved: std::collections::BTreeSet<ActivityType>,
}

impl TestEnv {
    /// An environment running `registry`'s workflows, starting at 2026-01-01T00:00:00Z.
    pub fn new(registry: Registry) -> TestEnv {
        TestEnv {
            registry,
            stand_ins: BTreeMap::new(),
            now: Timestamp::from_unix_micros(1_767_225_600_000_000),
            runs: BTreeMap::new(),
            earlier_runs: BTreeMap::new(),
            tasks: Vec::new(),
            rng: ChaCha8Rng::seed_from_u64(0),
            shuffle: false,
            updates: BTreeMap::new(),
            schedules: BTreeMap::new(),
            unserved: Default::default(),
        }
    }

    /// Finishes due activities one at a time in an order drawn from `seed` (and draws retry
    /// jitter from it): each seed is one possible interleaving.
    pub fn with_order_seed(mut self, seed: u64) -> TestEnv {
        self.rng = ChaCha8Rng::seed_from_u64(seed);
        self.shuffle = true;
        self
    }

    /// The registry the workflows run from.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Virtual time now.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// Replaces an activity with a closure of its input and attempt number (from 1).
    pub fn stand_in<I, O, F>(
        &mut self,
        def: ActivityDef<I, O>,
        mut f: F,
    ) -> Result<StandIn<I>, Error>
    where
        I: DeserializeOwned + Clone + 'static,
        O: Serialize + 'static,
        F: FnMut(I, u32) -> Result<O, ActivityError> + 'static,
    {
        let calls = Rc::new(RefCell::new(Vec::new()));
        let seen = calls.clone();
        let converter = self.registry.converter().clone();
        let run: StandInFn = Box::new(move |input: &Payload, attempt: u32| {
            let input: I = converter
                .from_payload(input)
                .map_err(|e| ActivityError::non_retryable("UndecodablePayload", e.to_string()))?;
            seen.borrow_mut().push((input.clone(), attempt));
            let output = f(input, attempt).map_err(|e| {
                ActivityError::from_failure(converter.sealed_failure(e.into_failure()))
            })?;
            converter
                .to_payload(&output)
                .map_err(|e| ActivityError::non_retryable("OutputEncode", e.to_string()))
        });
        self.stand_ins.insert(ActivityType::new(def.name())?, run);
        Ok(StandIn { calls })
    }

    /// Starts a workflow and runs what is due now (virtual time does not move).
    pub fn start<I: Serialize, O>(
        &mut self,
        def: WorkflowDef<I, O>,
        workflow_id: &str,
        input: &I,
    ) -> Result<TestRun<O>, Error> {
        self.start_delayed(def, workflow_id, input, Duration::ZERO)
    }

    /// Starts a workflow whose first step waits `delay` (as `StartOptions::start_delay`): the
    /// run exists at once, takes signals and cancel requests into its inbox, and applies them
    /// in that first step.
    pub fn start_delayed<I: Serialize, O>(
        &mut self,
        def: WorkflowDef<I, O>,
        workflow_id: &str,
        input: &I,
        delay: Duration,
    ) -> Result<TestRun<O>, Error> {
        let options = TestStartOptions {
            start_delay: delay,
            ..TestStartOptions::default()
        };
        self.start_with_options(def, workflow_id, input, options)
    }

    /// Sends a signal, then runs what is due now.
    pub fn signal<T: Serialize>(
        &mut self,
        workflow_id: &str,
        def: SignalDef<T>,
        value: &T,
    ) -> Result<(), Error> {
        let input = EventKind::SignalReceived(SignalReceived {
            name: SignalName::new(def.name())?,
            payload: self.registry.converter().to_payload(value)?,
        });
        self.deliver_to(workflow_id, input)
    }

    /// Asks a workflow to cancel, then runs what is due now.
    pub fn cancel(&mut self, workflow_id: &str) -> Result<(), Error> {
        let input = EventKind::CancelRequested(CancelRequested {
            reason: "cancelled by the test".into(),
        });
        self.deliver_to(workflow_id, input)
    }

    /// Terminates a workflow at once, as an operator would: its history ends with
    /// `WorkflowTerminated`, its parent hears of it, and its children's parent-close policies
    /// apply. Then runs what is due now.
    pub fn terminate(&mut self, workflow_id: &str, reason: &str) -> Result<(), Error> {
        let id = self.open_run(workflow_id)?.run_id;
        self.terminate_run(id, reason)?;
        self.settle()
    }

    fn deliver_to(&mut self, workflow_id: &str, input: EventKind) -> Result<(), Error> {
        let now = self.now;
        let run = self.open_run(workflow_id)?;
        run.inbox.push((now, input));
        self.settle()
    }

    fn open_run(&mut self, workflow_id: &str) -> Result<&mut Run, Error> {
        let id = WorkflowId::new(workflow_id)?;
        match self.runs.get_mut(&id) {
            Some(run) if run.status == RunStatus::Running => Ok(run),
            Some(_) => Err(Error::Closed(workflow_id.to_string())),
            None => Err(Error::UnknownWorkflow(workflow_id.to_string())),
        }
    }

    /// The workflow's result, after running everything that can run (jumping time as needed).
    pub fn result<O: DeserializeOwned>(&mut self, run: &TestRun<O>) -> Result<O, Error> {
        self.run_until_idle()?;
        let state = self
            .runs
            .get(&run.workflow_id)
            .ok_or_else(|| Error::UnknownWorkflow(run.workflow_id.to_string()))?;
        match &state.status {
            RunStatus::Completed(result) => {
                self.registry
                    .converter()
                    .from_payload(result)
                    .map_err(|source| Error::UndecodableResult {
                        workflow_id: run.workflow_id.to_string(),
                        rust_type: std::any::type_name::<O>(),
                        source: Box::new(source),
                    })
            }
            RunStatus::Failed(failure) => Err(Error::Failed {
                workflow_id: run.workflow_id.to_string(),
                failure: Box::new(failure.clone()),
            }),
            RunStatus::Running => Err(Error::Waiting {
                workflow_id: run.workflow_id.to_string(),
                last_event: state
                    .history
                    .last()
                    .map_or("nothing", |e| e.kind.name())
                    .to_string(),
            }),
            other => Err(Error::Ended {
                workflow_id: run.workflow_id.to_string(),
                status: format!("{other:?}"),
            }),
        }
    }

    /// The histories of every run of a workflow id, oldest first (continue-as-new and a
    /// reused id make several), as recorded histories.
    pub fn histories(&self, workflow_id: &str) -> Result<Vec<RecordedHistory>, Error> {
        let id = WorkflowId::new(workflow_id)?;
        let latest = self
            .runs
            .get(&id)
            .ok_or_else(|| Error::UnknownWorkflow(workflow_id.to_string()))?;
        let earlier = self.earlier_runs.get(&id).into_iter().flatten();
        earlier
            .chain(std::iter::once(&latest.history))
            .map(|events| Ok(RecordedHistory::new(events.clone())?))
            .collect()
    }

    /// The history of a workflow's latest run, as a recorded history (what production exports).
    pub fn history(&self, workflow_id: &str) -> Result<RecordedHistory, Error> {
        let id = WorkflowId::new(workflow_id)?;
        let run = self
            .runs
            .get(&id)
            .ok_or_else(|| Error::UnknownWorkflow(workflow_id.to_string()))?;
        Ok(RecordedHistory::new(run.history.clone())?)
    }

    fn new_run_id(&mut self) -> RunId {
        let mut bytes = [0u8; 16];
        self.rng.fill_bytes(&mut bytes);
        RunId::from_uuid(uuid_from(bytes))
    }

    /// Creates a run; false if a run of its workflow id is open.
    fn start_run(
        &mut self,
        started: WorkflowStarted,
        parent_close_policy: Option<ParentClosePolicy>,
    ) -> Result<bool, Error> {
        if self
            .runs
            .get(&started.workflow_id)
            .is_some_and(|r| r.status == RunStatus::Running)
        {
            return Ok(false);
        }
        let event = Event {
            seq: Seq::FIRST,
            recorded_at: self.now,
            kind: EventKind::WorkflowStarted(started.clone()),
        };
        let run = Run {
            run_id: started.run_id,
            first_step: Some(event.clone()),
            first_step_at: None,
            status: RunStatus::Running,
            execution: None,
            history: vec![event],
            inbox: Vec::new(),
            parent: started.parent.clone(),
            parent_close_policy,
            custom_status: None,
            policy: None,
        };
        if let Some(earlier) = self.runs.insert(started.workflow_id.clone(), run) {
            self.earlier_runs
                .entry(started.workflow_id.clone())
                .or_default()
                .push(earlier.history);
        }
        Ok(true)
    }

    /// Runs everything that can run, jumping virtual time whenever all that is left waits on it.
    pub fn run_until_idle(&mut self) -> Result<(), Error> {
        self.run_until(None)
    }

    /// Runs what is due at the current virtual time, without moving it.
    fn settle(&mut self) -> Result<(), Error> {
        let now = self.now;
        self.run_until(Some(now))
    }

    /// Runs everything due up to `limit` (or forever), jumping through the times in between.
    /// Schedules fire on the way to a limit; without one, time never jumps to a schedule's
    /// next time (a schedule is never idle).
    fn run_until(&mut self, limit: Option<Timestamp>) -> Result<(), Error> {
        loop {
            let mut progressed = self.step_runs()?;
            progressed |= self.run_due_tasks()?;
            progressed |= self.fire_schedules()?;
            progressed |= self.time_out_runs()?;
            if progressed {
                continue;
            }
            let next_schedule = limit.and_then(|_| self.next_schedule_time());
            let next = match (self.next_time(), next_schedule) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            match next {
                Some(at) if limit.is_none_or(|l| at <= l) => self.now = at,
                _ => {
                    if let Some(limit) = limit {
                        self.now = self.now.max(limit);
                    }
                    return Ok(());
                }
            }
        }
    }

    /// Steps every open run that has visible inputs.
    fn step_runs(&mut self) -> Result<bool, Error> {
        let mut progressed = false;
        let ids: Vec<WorkflowId> = self.runs.keys().cloned().collect();
        for id in ids {
            let now = self.now;
            let Some(run) = self.runs.get_mut(&id) else {
                continue;
            };
            let has_due = run.inbox.iter().any(|(at, _)| *at <= now);
            let waiting_to_start = run.first_step_at.is_some_and(|at| at > now);
            if run.status != RunStatus::Running
                || waiting_to_start
                || !(has_due || run.first_step.is_some())
            {
                continue;
            }
            let (due, later): (Vec<_>, Vec<_>) =
                run.inbox.drain(..).partition(|(at, _)| *at <= now);
            run.inbox = later;
            let mut events = Vec::new();
            if let Some(started) = run.first_step.take() {
                let (execution, step) = Execution::start(&self.registry, started)?;
                events.extend(step.events.into_iter().skip(1));
                run.execution = Some(execution);
            }
            let Some(mut execution) = run.execution.take() else {
                continue;
            };
            // A run its first step closed takes none of its inputs, as in the engine.
            let inputs: Vec<(Timestamp, EventKind)> = if execution.status() == &RunStatus::Running {
                due.iter().map(|(_, kind)| (now, kind.clone())).collect()
            } else {
                Vec::new()
            };
            let step = execution.step(inputs)?;
            events.extend(step.events);
            self.run_local_activities(&mut execution, &mut events)?;
            let Some(run) = self.runs.get_mut(&id) else {
                continue;
            };
            run.status = execution.status().clone();
            run.execution = Some(execution);
            // Inputs the step did not apply because the run closed on the way: a
            // continue-as-new hands their signals on, after those its code had buffered.
            let unapplied = due
                .into_iter()
                .skip(step.applied_inputs)
                .map(|(_, k)| k)
                .collect();
            self.record(&id, events, unapplied)?;
            progressed = true;
        }
        Ok(progressed)
    }

    /// Appends a step's events to a run's history and carries out their effects (see
    /// `reprise_sdk::Effects`: the engine carries out the same ones in SQL). `unapplied` are
    /// the inputs the step left because the run closed.
    fn record(
        &mut self,
        id: &WorkflowId,
        events: Vec<Event>,
        unapplied: Vec<EventKind>,
    ) -> Result<(), Error> {
        let Some(run) = self.runs.get_mut(id) else {
            return Ok(());
        };
        run.history.extend(events.iter().cloned());
        let (run_id, parent) = (run.run_id, run.parent.clone());
        let identity = RunIdentity {
            workflow_id: id,
            run_id,
            parent: parent.as_ref(),
            trace: None,
        };
        let effects = match run.execution.as_mut() {
            Some(execution) => {
                let effects = Effects::of_step(identity, &events, execution);
                execution.written();
                effects
            }
            None => return Ok(()),
        };
        self.carry_out(identity, effects, unapplied)
    }

    fn carry_out(
        &mut self,
        run: RunIdentity<'_>,
        effects: Effects<'_>,
        unapplied: Vec<EventKind>,
    ) -> Result<(), Error> {
        let now = self.now;
        let id = run.workflow_id;
        if let (Some(status), Some(state)) = (effects.status, self.runs.get_mut(id)) {
            state.custom_status = Some(status);
        }
        for completed in &effects.completed_updates {
            let end = talk::UpdateEnd::Finished(completed.outcome.clone());
            self.updates
                .insert((run.run_id, completed.update_id.to_string()), Some(end));
        }
        for (update_id, outcome) in effects.repeated_updates {
            let end = talk::UpdateEnd::Finished(outcome);
            self.updates
                .insert((run.run_id, update_id.to_string()), Some(end));
        }
        for rejected in effects.rejected_updates {
            let end = talk::UpdateEnd::Refused(rejected.refusal);
            self.updates
                .insert((run.run_id, rejected.update_id.to_string()), Some(end));
        }
        for task in effects.tasks {
            let options = &task.activity.options;
            self.tasks.push(Task {
                workflow_id: id.clone(),
                run_id: run.run_id,
                scheduled: task.scheduled,
                activity_type: task.activity.activity_type.clone(),
                input: task.activity.input.clone(),
                options: options.clone(),
                attempts: 0,
                visible_at: now,
                deadline: options.schedule_to_close.map(|d| now.saturating_add(d)),
                start_deadline: options.schedule_to_start.map(|d| now.saturating_add(d)),
                last_failure: None,
                last_details: None,
            });
        }
        for timer in effects.timers {
            let fired = EventKind::TimerFired(TimerFired {
                started: timer.started,
            });
            self.push_input(id, run.run_id, now.saturating_add(timer.fires_after), fired);
        }
        if let Some(state) = self.runs.get_mut(id) {
            state.inbox.retain(|(_, k)| {
                !matches!(k, EventKind::TimerFired(f) if effects.cancelled_timers.contains(&f.started))
            });
        }
        for scheduled in effects.cancelled_activities {
            self.cancel_activity(run, scheduled);
        }
        for child in &effects.children {
            self.start_child(run, child)?;
        }
        for started in effects.cancelled_children {
            if let Some(child) = self.child_of(run.run_id, started) {
                self.request_cancel(&child, "its parent asked");
            }
        }
        if let Some(close) = effects.close {
            self.close(run, close, unapplied)?;
        }
        Ok(())
    }

    /// A waiting activity is cancelled at once (its attempts run to the end in this
    /// environment, so no attempt is ever running when a step asks).
    fn cancel_activity(&mut self, run: RunIdentity<'_>, scheduled: Seq) {
        let Some(i) = self
            .tasks
            .iter()
            .position(|t| t.run_id == run.run_id && t.scheduled == scheduled)
        else {
            return;
        };
        let task = self.tasks.remove(i);
        let cancelled = ActivityCancelled {
            scheduled,
            attempt: task.attempts,
            details: None,
        };
        let now = self.now;
        self.push_input(
            run.workflow_id,
            run.run_id,
            now,
            EventKind::ActivityCancelled(cancelled),
        );
    }

    /// What a close does beyond the run's status: its parent hears, its children's policies
    /// apply, and a continue-as-new starts the next run with the signals never taken.
    fn close(
        &mut self,
        run: RunIdentity<'_>,
        close: Close<'_>,
        unapplied: Vec<EventKind>,
    ) -> Result<(), Error> {
        let now = self.now;
        self.tasks.retain(|t| t.run_id != run.run_id);
        if let Some(state) = self.runs.get_mut(run.workflow_id) {
            state.inbox.clear();
        }
        let previous_policy = self
            .runs
            .get(run.workflow_id)
            .and_then(|r| r.policy.clone());
        // A retried run's parent hears only when the last attempt ends.
        if !self.retry_closed(run, &close)?
            && let Some((parent, outcome)) = close.parent_outcome
        {
            self.push_input(&parent.workflow_id, parent.run_id, now, outcome);
        }
        let children: Vec<(WorkflowId, Option<ParentClosePolicy>)> = self
            .runs
            .iter()
            .filter(|(_, r)| {
                r.status == RunStatus::Running
                    && r.parent.as_ref().is_some_and(|p| p.run_id == run.run_id)
            })
            .map(|(id, r)| (id.clone(), r.parent_close_policy))
            .collect();
        for (child, policy) in children {
            // A run without a policy is no child: nothing applies (as in the engine).
            match policy {
                Some(ParentClosePolicy::Terminate) => {
                    let child_run = self.runs.get(&child).map(|r| r.run_id);
                    if let Some(child_run) = child_run {
                        self.terminate_run_of(&child, child_run, "its parent closed")?;
                    }
                }
                Some(ParentClosePolicy::RequestCancel) => {
                    self.request_cancel(&child, "its parent closed");
                }
                Some(ParentClosePolicy::Abandon) | None => {}
            }
        }
        if let Some(next) = close.next_run {
            let policy = self
                .runs
                .get(run.workflow_id)
                .and_then(|r| r.parent_close_policy);
            let next_id = next.started.run_id;
            self.start_run(next.started, policy)?;
            self.inherit_policy(run.workflow_id, previous_policy);
            let signals = next
                .carried
                .into_iter()
                .map(|(name, payload)| EventKind::SignalReceived(SignalReceived { name, payload }))
                .chain(
                    unapplied
                        .into_iter()
                        .filter(|k| matches!(k, EventKind::SignalReceived(_))),
                );
            for signal in signals {
                self.push_input(run.workflow_id, next_id, now, signal);
            }
        }
        Ok(())
    }

    /// The open child a run started at `started`, by workflow id.
    fn child_of(&self, parent: RunId, started: Seq) -> Option<WorkflowId> {
        self.runs.iter().find_map(|(id, r)| {
            (r.status == RunStatus::Running
                && r.parent
                    .as_ref()
                    .is_some_and(|p| p.run_id == parent && p.started_seq == started))
            .then(|| id.clone())
        })
    }

    fn request_cancel(&mut self, workflow_id: &WorkflowId, reason: &str) {
        let now = self.now;
        let Some(run_id) = self.runs.get(workflow_id).map(|r| r.run_id) else {
            return;
        };
        let reason = reason.to_string();
        let input = EventKind::CancelRequested(CancelRequested { reason });
        // Asking twice is asking once, as the engine's dedupe key makes it.
        let asked = self.runs.get(workflow_id).is_some_and(|r| {
            r.inbox
                .iter()
                .any(|(_, k)| matches!(k, EventKind::CancelRequested(_)))
        });
        if !asked {
            self.push_input(workflow_id, run_id, now, input);
        }
    }

    fn terminate_run(&mut self, run_id: RunId, reason: &str) -> Result<(), Error> {
        let id = self
            .runs
            .iter()
            .find_map(|(id, r)| (r.run_id == run_id).then(|| id.clone()));
        match id {
            Some(id) => self.terminate_run_of(&id, run_id, reason),
            None => Ok(()),
        }
    }

    /// Ends an open run with `WorkflowTerminated` and carries out that close.
    fn terminate_run_of(
        &mut self,
        id: &WorkflowId,
        run_id: RunId,
        reason: &str,
    ) -> Result<(), Error> {
        let kind = EventKind::WorkflowTerminated(WorkflowTerminated {
            reason: reason.to_string(),
        });
        self.close_by_env(id, run_id, kind)
    }

    /// Ends an open run with `closing`, an event its code did not decide (a termination, a
    /// deadline), and carries out that close.
    fn close_by_env(
        &mut self,
        id: &WorkflowId,
        run_id: RunId,
        closing: EventKind,
    ) -> Result<(), Error> {
        let now = self.now;
        let Some(run) = self.runs.get_mut(id) else {
            return Ok(());
        };
        if run.run_id != run_id || run.status != RunStatus::Running {
            return Ok(());
        }
        run.status = match &closing {
            EventKind::WorkflowTimedOut(t) => RunStatus::TimedOut(t.timeout),
            _ => RunStatus::Terminated,
        };
        let event = Event {
            seq: run.history.last().map_or(Seq::FIRST, |e| e.seq.next()),
            recorded_at: now,
            kind: closing,
        };
        run.history.push(event.clone());
        run.execution = None;
        run.first_step = None;
        let parent = run.parent.clone();
        let identity = RunIdentity {
            workflow_id: id,
            run_id,
            parent: parent.as_ref(),
            trace: None,
        };
        match Close::of(identity, &event, Vec::new) {
            Some(close) => self.close(identity, close, Vec::new()),
            None => Ok(()),
        }
    }

    /// Puts an input in a run's inbox, if that run is still the workflow's open run.
    fn push_input(&mut self, id: &WorkflowId, run_id: RunId, at: Timestamp, input: EventKind) {
        if let Some(run) = self.runs.get_mut(id)
            && run.run_id == run_id
            && run.status == RunStatus::Running
        {
            run.inbox.push((at, input));
        }
    }

    /// The next time something becomes due: an input, an attempt, a deadline.
    fn next_time(&self) -> Option<Timestamp> {
        let inputs = self
            .runs
            .values()
            .filter(|r| r.status == RunStatus::Running)
            .flat_map(|r| {
                let start = r.first_step.as_ref().and(r.first_step_at);
                r.inbox.iter().map(|(at, _)| *at).chain(start)
            });
        let tasks = self.tasks.iter().flat_map(|t| {
            std::iter::once(t.visible_at)
                .chain(t.deadline)
                .chain(t.start_deadline)
        });
        inputs
            .chain(tasks)
            .chain(self.deadlines())
            .filter(|t| *t > self.now)
            .min()
    }

    /// Moves virtual time forward by `by`, running everything that falls due on the way.
    pub fn advance(&mut self, by: Duration) -> Result<(), Error> {
        let until = self.now.saturating_add(by);
        self.run_until(Some(until))
    }
}

fn uuid_from(bytes: [u8; 16]) -> uuid::Uuid {
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

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
use std::sync::Arc;
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use reprise_history::*;
use reprise_sdk::{
    ActivityContext, ActivityDef, ActivityError, ActivityInfo, ActivityRunner, CancellationSignal,
    Execution, HeartbeatSink, Registry, RunStatus, SignalDef, WorkflowDef,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;

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
    execution: Option<Execution>,
    history: Vec<Event>,
    /// Inputs waiting: visible from a time on, in arrival order.
    inbox: Vec<(Timestamp, EventKind)>,
    parent: Option<ParentRun>,
    status: RunStatus,
}

struct Task {
    workflow_id: WorkflowId,
    run_id: RunId,
    scheduled: Seq,
    activity_type: ActivityType,
    input: Payload,
    options: ActivityOptions,
    attempts: u32,
    visible_at: Timestamp,
    deadline: Option<Timestamp>,
}

struct NoHeartbeats;

impl HeartbeatSink for NoHeartbeats {
    fn heartbeat(&self, _: &ActivityInfo, _: Payload) {}
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
    tasks: Vec<Task>,
    rng: ChaCha8Rng,
    /// With a seed, due activities finish one at a time in a random order.
    shuffle: bool,
}

impl TestEnv {
    /// An environment running `registry`'s workflows, starting at 2026-01-01T00:00:00Z.
    pub fn new(registry: Registry) -> TestEnv {
        TestEnv {
            registry,
            stand_ins: BTreeMap::new(),
            now: Timestamp::from_unix_micros(1_767_225_600_000_000),
            runs: BTreeMap::new(),
            tasks: Vec::new(),
            rng: ChaCha8Rng::seed_from_u64(0),
            shuffle: false,
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
        let limits = self.registry.limits();
        let run: StandInFn = Box::new(move |input: &Payload, attempt: u32| {
            let input: I = input
                .decode()
                .map_err(|e| ActivityError::non_retryable("InputDecode", e.to_string()))?;
            seen.borrow_mut().push((input.clone(), attempt));
            let output = f(input, attempt)?;
            Payload::encode(&output, &limits)
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
        let workflow_id = WorkflowId::new(workflow_id)?;
        let started = WorkflowStarted {
            workflow_type: WorkflowType::new(def.name())?,
            workflow_id: workflow_id.clone(),
            run_id: self.new_run_id(),
            input: Payload::encode(input, &self.registry.limits())?,
            task_queue: TaskQueue::new("default")?,
            origin: RunOrigin::Client,
            parent: None,
        };
        if !self.start_run(started)? {
            return Err(Error::AlreadyRunning(workflow_id.to_string()));
        }
        self.settle()?;
        Ok(TestRun {
            workflow_id,
            output: std::marker::PhantomData,
        })
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
            payload: Payload::encode(value, &self.registry.limits())?,
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
            RunStatus::Completed(result) => Ok(result.decode()?),
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
    fn start_run(&mut self, started: WorkflowStarted) -> Result<bool, Error> {
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
        let (execution, step) = Execution::start(&self.registry, event)?;
        let run = Run {
            status: execution.status().clone(),
            execution: Some(execution),
            history: Vec::new(),
            inbox: Vec::new(),
            parent: started.parent.clone(),
        };
        self.runs.insert(started.workflow_id.clone(), run);
        self.record(&started.workflow_id, step.events)?;
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
    fn run_until(&mut self, limit: Option<Timestamp>) -> Result<(), Error> {
        loop {
            let mut progressed = self.step_runs()?;
            progressed |= self.run_due_tasks()?;
            if progressed {
                continue;
            }
            match self.next_time() {
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
            if run.status != RunStatus::Running || !run.inbox.iter().any(|(at, _)| *at <= now) {
                continue;
            }
            let (due, later): (Vec<_>, Vec<_>) =
                run.inbox.drain(..).partition(|(at, _)| *at <= now);
            run.inbox = later;
            let Some(execution) = run.execution.as_mut() else {
                continue;
            };
            let step = execution.step(due.iter().map(|(_, kind)| (now, kind.clone())))?;
            run.status = execution.status().clone();
            // As the engine does: a continue-as-new hands the signals the code never took (and
            // those that arrived in the same step, after it closed) to the next run.
            let carried: Vec<EventKind> = match run.status {
                RunStatus::ContinuedAsNew(_) => execution
                    .unreceived_signals()
                    .into_iter()
                    .map(|(name, payload)| {
                        EventKind::SignalReceived(SignalReceived { name, payload })
                    })
                    .chain(due.into_iter().skip(step.applied_inputs).map(|(_, k)| k))
                    .filter(|k| matches!(k, EventKind::SignalReceived(_)))
                    .collect(),
                _ => Vec::new(),
            };
            self.record(&id, step.events)?;
            for signal in carried {
                self.push_input(&id, now, signal);
            }
            progressed = true;
        }
        Ok(progressed)
    }

    /// Appends events to a run's history and carries out its decisions.
    fn record(&mut self, id: &WorkflowId, events: Vec<Event>) -> Result<(), Error> {
        let Some(run) = self.runs.get_mut(id) else {
            return Ok(());
        };
        run.history.extend(events.iter().cloned());
        let run_id = match run.history.first().map(|e| &e.kind) {
            Some(EventKind::WorkflowStarted(s)) => s.run_id,
            _ => return Ok(()),
        };
        for event in events {
            self.carry_out(id, run_id, &event)?;
        }
        Ok(())
    }

    fn carry_out(&mut self, id: &WorkflowId, run_id: RunId, event: &Event) -> Result<(), Error> {
        let now = self.now;
        match &event.kind {
            EventKind::ActivityScheduled(s) => self.tasks.push(Task {
                workflow_id: id.clone(),
                run_id,
                scheduled: event.seq,
                activity_type: s.activity_type.clone(),
                input: s.input.clone(),
                options: s.options.clone(),
                attempts: 0,
                visible_at: now,
                deadline: s.options.schedule_to_close.map(|d| now.saturating_add(d)),
            }),
            EventKind::ActivityCancelRequested(c) => {
                if let Some(i) = self
                    .tasks
                    .iter()
                    .position(|t| t.run_id == run_id && t.scheduled == c.scheduled)
                {
                    let task = self.tasks.remove(i);
                    let cancelled = ActivityCancelled {
                        scheduled: c.scheduled,
                        attempt: task.attempts,
                        details: None,
                    };
                    self.push_input(id, now, EventKind::ActivityCancelled(cancelled));
                }
            }
            EventKind::TimerStarted(t) => {
                let fired = EventKind::TimerFired(TimerFired { started: event.seq });
                self.push_input(id, now.saturating_add(t.duration), fired);
            }
            EventKind::TimerCancelled(t) => {
                if let Some(run) = self.runs.get_mut(id) {
                    run.inbox.retain(
                        |(_, k)| !matches!(k, EventKind::TimerFired(f) if f.started == t.started),
                    );
                }
            }
            EventKind::ChildWorkflowStarted(c) => {
                let started = c.child_run_started(ParentRun {
                    workflow_id: id.clone(),
                    run_id,
                    started_seq: event.seq,
                });
                if !self.start_run(started)? {
                    let failure = Failure::application(
                        "WorkflowIdInUse",
                        format!("{} is already running", c.workflow_id),
                    );
                    let failed = ChildWorkflowFailed {
                        started: event.seq,
                        failure: failure.retryable(false),
                    };
                    self.push_input(id, now, EventKind::ChildWorkflowFailed(failed));
                }
            }
            EventKind::ChildWorkflowCancelRequested(c) => {
                let child = self.runs.iter().find_map(|(cid, r)| {
                    (r.parent
                        .as_ref()
                        .is_some_and(|p| p.run_id == run_id && p.started_seq == c.started))
                    .then(|| cid.clone())
                });
                if let Some(child) = child {
                    let reason = "the parent asked".to_string();
                    self.push_input(
                        &child,
                        now,
                        EventKind::CancelRequested(CancelRequested { reason }),
                    );
                }
            }
            EventKind::WorkflowContinuedAsNew(next) => {
                let parent = self.runs.get(id).and_then(|r| r.parent.clone());
                let started = WorkflowStarted {
                    workflow_type: next.workflow_type.clone(),
                    workflow_id: id.clone(),
                    run_id: next.new_run_id,
                    input: next.input.clone(),
                    task_queue: next.task_queue.clone(),
                    origin: RunOrigin::ContinuedAsNew {
                        previous_run_id: run_id,
                    },
                    parent,
                };
                self.start_run(started)?;
            }
            kind if kind.is_closing() => self.notify_parent(id, kind),
            _ => {}
        }
        Ok(())
    }

    fn notify_parent(&mut self, id: &WorkflowId, closing: &EventKind) {
        let Some(parent) = self.runs.get(id).and_then(|r| r.parent.clone()) else {
            return;
        };
        if let Some(input) = closing.child_outcome(parent.started_seq) {
            let now = self.now;
            self.push_input(&parent.workflow_id, now, input);
        }
    }

    fn push_input(&mut self, id: &WorkflowId, at: Timestamp, input: EventKind) {
        if let Some(run) = self.runs.get_mut(id)
            && run.status == RunStatus::Running
        {
            run.inbox.push((at, input));
        }
    }

    /// Runs due activity attempts (all in schedule order; one, at random, with a seed).
    fn run_due_tasks(&mut self) -> Result<bool, Error> {
        let now = self.now;
        let due: Vec<usize> = (0..self.tasks.len())
            .filter(|&i| {
                self.tasks[i].visible_at <= now || self.tasks[i].deadline.is_some_and(|d| d <= now)
            })
            .collect();
        if due.is_empty() {
            return Ok(false);
        }
        let chosen: Vec<usize> = if self.shuffle {
            vec![due[(self.rng.next_u64() % due.len() as u64) as usize]]
        } else {
            due
        };
        // Remove from the back so earlier indexes stay valid, then run in schedule order.
        let mut taken: Vec<Task> = chosen.iter().rev().map(|&i| self.tasks.remove(i)).collect();
        taken.reverse();
        for task in taken {
            self.run_attempt(task)?;
        }
        Ok(true)
    }

    fn run_attempt(&mut self, mut task: Task) -> Result<(), Error> {
        let now = self.now;
        if task.deadline.is_some_and(|d| d <= now) {
            let timed_out = ActivityTimedOut {
                scheduled: task.scheduled,
                timeout: TimeoutKind::ScheduleToClose,
                attempt: task.attempts,
                last_failure: None,
                last_heartbeat: None,
            };
            self.push_input(
                &task.workflow_id,
                now,
                EventKind::ActivityTimedOut(timed_out),
            );
            return Ok(());
        }
        task.attempts += 1;
        let outcome = self.invoke(&task)?;
        let input = match outcome {
            Ok(result) => EventKind::ActivityCompleted(ActivityCompleted {
                scheduled: task.scheduled,
                result,
                attempt: task.attempts,
            }),
            Err(error) => {
                let failure = error.into_failure();
                if task.options.retry.retries(&failure, task.attempts) {
                    let unit = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                    task.visible_at =
                        now.saturating_add(task.options.retry.backoff(task.attempts, unit));
                    self.tasks.push(task);
                    return Ok(());
                }
                EventKind::ActivityFailed(ActivityFailed {
                    scheduled: task.scheduled,
                    failure,
                    attempt: task.attempts,
                })
            }
        };
        self.push_input(&task.workflow_id, now, input);
        Ok(())
    }

    fn invoke(&mut self, task: &Task) -> Result<Result<Payload, ActivityError>, Error> {
        if let Some(stand_in) = self.stand_ins.get_mut(&task.activity_type) {
            return Ok(stand_in(&task.input, task.attempts));
        }
        let info = ActivityInfo {
            workflow_id: task.workflow_id.clone(),
            run_id: task.run_id,
            scheduled_seq: task.scheduled,
            activity_type: task.activity_type.clone(),
            attempt: task.attempts,
        };
        let ctx = ActivityContext::new(
            info,
            Arc::new(NoHeartbeats),
            CancellationSignal::new(),
            self.registry.limits(),
        );
        Ok(match self.registry.activity(&task.activity_type)? {
            ActivityRunner::Async(run) => futures::executor::block_on(run(ctx, task.input.clone())),
            ActivityRunner::Blocking(run) => run(ctx, task.input.clone()),
        })
    }

    /// The next time something becomes due: an input, an attempt, a deadline.
    fn next_time(&self) -> Option<Timestamp> {
        let inputs = self
            .runs
            .values()
            .filter(|r| r.status == RunStatus::Running)
            .flat_map(|r| r.inbox.iter().map(|(at, _)| *at));
        let tasks = self
            .tasks
            .iter()
            .flat_map(|t| std::iter::once(t.visible_at).chain(t.deadline));
        inputs.chain(tasks).filter(|t| *t > self.now).min()
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

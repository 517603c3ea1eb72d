//! Activity attempts in `TestEnv`: due tasks run in schedule order (one at random with an order
//! seed), retried with the engine's backoff rules, timed out by their schedule-to-close
//! deadline; a stand-in answers if there is one, else the registry's code. An activity type
//! can be left without a worker (`without_worker`): its attempts wait, and time out by their
//! schedule-to-start deadline as on the engine.

use std::sync::Arc;

use rand_core::RngCore;
use reprise_history::*;
use reprise_sdk::{
    ActivityContext, ActivityDef, ActivityError, ActivityInfo, ActivityRunner, CancellationSignal,
    HeartbeatSink,
};

use super::TestEnv;
use crate::error::Error;

/// What one attempt of activity code returns.
pub(super) type ActivityResult = Result<Payload, ActivityError>;

/// A scheduled activity, until its outcome is an input of its run.
pub(super) struct Task {
    pub(super) workflow_id: WorkflowId,
    pub(super) run_id: RunId,
    pub(super) scheduled: Seq,
    pub(super) activity_type: ActivityType,
    pub(super) input: Payload,
    pub(super) options: ActivityOptions,
    pub(super) attempts: u32,
    pub(super) visible_at: Timestamp,
    pub(super) deadline: Option<Timestamp>,
    /// When the waiting attempt must have been taken (a schedule-to-start timeout).
    pub(super) start_deadline: Option<Timestamp>,
    /// The failure of the last attempt, reported if the schedule-to-close deadline passes.
    pub(super) last_failure: Option<Failure>,
    /// The details of the last heartbeat an attempt recorded: the next attempt's checkpoint.
    pub(super) last_details: Option<Payload>,
}

/// Keeps an attempt's last heartbeat details, as the engine's worker writes them to the task.
#[derive(Default)]
struct LastHeartbeat(std::sync::Mutex<Option<Payload>>);

impl HeartbeatSink for LastHeartbeat {
    fn heartbeat(&self, _: &ActivityInfo, details: Payload) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(details);
    }
}

impl TestEnv {
    /// Leaves an activity type without a worker, as if none served it: its attempts wait
    /// (and time out by their schedule-to-start deadline) until [`TestEnv::with_worker`].
    pub fn without_worker<I, O>(&mut self, def: ActivityDef<I, O>) -> Result<(), Error> {
        self.unserved.insert(ActivityType::new(def.name())?);
        Ok(())
    }

    /// Gives an activity type its worker back: waiting attempts run when next due.
    pub fn with_worker<I, O>(&mut self, def: ActivityDef<I, O>) -> Result<(), Error> {
        self.unserved.remove(&ActivityType::new(def.name())?);
        Ok(())
    }

    /// Runs due activity attempts (all in schedule order; one, at random, with a seed).
    pub(super) fn run_due_tasks(&mut self) -> Result<bool, Error> {
        let now = self.now;
        let due: Vec<usize> = (0..self.tasks.len())
            .filter(|&i| {
                let task = &self.tasks[i];
                (task.visible_at <= now && !self.unserved.contains(&task.activity_type))
                    || task.deadline.is_some_and(|d| d <= now)
                    || task.start_deadline.is_some_and(|d| d <= now)
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
        let not_taken = task.start_deadline.is_some_and(|d| d <= now)
            && self.unserved.contains(&task.activity_type);
        if task.deadline.is_some_and(|d| d <= now) || not_taken {
            let timeout = if task.deadline.is_some_and(|d| d <= now) {
                TimeoutKind::ScheduleToClose
            } else {
                TimeoutKind::ScheduleToStart
            };
            let last_failure = task
                .last_failure
                .take()
                .unwrap_or_else(|| timeout.failure(task.attempts));
            let timed_out = ActivityTimedOut {
                scheduled: task.scheduled,
                timeout,
                attempt: task.attempts,
                last_failure: Some(last_failure),
                last_heartbeat: None,
            };
            self.push_input(
                &task.workflow_id,
                task.run_id,
                now,
                EventKind::ActivityTimedOut(timed_out),
            );
            return Ok(());
        }
        task.attempts += 1;
        let info = ActivityInfo {
            workflow_id: task.workflow_id.clone(),
            run_id: task.run_id,
            scheduled_seq: task.scheduled,
            activity_type: task.activity_type.clone(),
            attempt: task.attempts,
        };
        let (outcome, details) = self.invoke(info, &task.input, task.last_details.clone())?;
        if details.is_some() {
            task.last_details = details;
        }
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
                    task.start_deadline = task
                        .options
                        .schedule_to_start
                        .map(|t| task.visible_at.saturating_add(t));
                    task.last_failure = Some(failure);
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
        self.push_input(&task.workflow_id, task.run_id, now, input);
        Ok(())
    }

    /// Runs one attempt: the stand-in if there is one, else the registry's code, given the
    /// last checkpoint an earlier attempt heartbeat. Returns the attempt's outcome and the
    /// details of its own last heartbeat.
    pub(super) fn invoke(
        &mut self,
        info: ActivityInfo,
        input: &Payload,
        last_details: Option<Payload>,
    ) -> Result<(ActivityResult, Option<Payload>), Error> {
        if let Some(stand_in) = self.stand_ins.get_mut(&info.activity_type) {
            return Ok((stand_in(input, info.attempt), None));
        }
        let runner = self.registry.activity(&info.activity_type)?;
        let heartbeats = Arc::new(LastHeartbeat::default());
        let ctx = ActivityContext::new(
            info,
            heartbeats.clone(),
            CancellationSignal::new(),
            self.registry.converter().clone(),
        )
        .with_last_details(last_details);
        let outcome = match runner {
            ActivityRunner::Async(run) => futures::executor::block_on(run(ctx, input.clone())),
            ActivityRunner::Blocking(run) => run(ctx, input.clone()),
        };
        let details = heartbeats
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        Ok((outcome, details))
    }

    /// Whether an activity type can run here: a stand-in or the registry's code.
    pub(super) fn can_run(&self, activity_type: &ActivityType) -> Result<(), Error> {
        if self.stand_ins.contains_key(activity_type) {
            return Ok(());
        }
        self.registry.activity(activity_type)?;
        Ok(())
    }
}

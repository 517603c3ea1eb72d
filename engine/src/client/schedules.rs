//! The client's schedules: create, change, read, pause, trigger, backfill and delete them
//! (see `docs/schedules.md`).

use reprise_history::{RunId, ScheduleId, Timestamp, WorkflowId, WorkflowType};
use reprise_schedule::{
    Firing, FiringCounts, FiringOrigin, OverlapPolicy, RecentAction, Schedule, ScheduleAction,
    SchedulePolicies, ScheduleSpec, StartResult,
};
use reprise_sdk::WorkflowDef;
use serde::Serialize;

use crate::client::{Client, StartOptions};
use crate::error::{Error, Result};
use crate::store::{ScheduleRecord, on_live_connection, on_live_read};

/// How many fire times [`Client::describe_schedule`] lists.
pub const UPCOMING_FIRE_TIMES: usize = 10;

/// The most times one backfill fires.
pub const MAX_BACKFILL: usize = 10_000;

/// A schedule as it stands.
#[derive(Clone, Debug)]
pub struct ScheduleDescription {
    /// Its id.
    pub schedule_id: ScheduleId,
    /// When it fires.
    pub spec: ScheduleSpec,
    /// Overlap and catch-up.
    pub policies: SchedulePolicies,
    /// The workflow type each firing starts.
    pub workflow_type: WorkflowType,
    /// On which orchestrator task queue.
    pub task_queue: reprise_history::TaskQueue,
    /// The started workflows' run timeout.
    pub run_timeout: Option<std::time::Duration>,
    /// The started workflows' execution timeout.
    pub execution_timeout: Option<std::time::Duration>,
    /// How the started workflows' failed runs are retried.
    pub retry: Option<reprise_history::RetryPolicy>,
    /// Whether it is paused.
    pub paused: bool,
    /// Why it was last paused or resumed.
    pub note: Option<String>,
    /// Its next fire times (jitter included), at most [`UPCOMING_FIRE_TIMES`]; none while
    /// paused.
    pub upcoming: Vec<Timestamp>,
    /// The workflows it started last, newest first.
    pub recent: Vec<RecentAction>,
    /// What it has done.
    pub counts: FiringCounts,
    /// Firings waiting for the open workflow to close.
    pub buffered: usize,
    /// The workflow it started last, which the overlap policy looks at.
    pub watched: Option<WorkflowId>,
    /// When it was created and last changed (or fired).
    pub created_at: Timestamp,
    /// When it last changed or fired.
    pub updated_at: Timestamp,
}

/// What a trigger came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TriggerOutcome {
    /// A workflow was started.
    Started {
        /// Its id.
        workflow_id: WorkflowId,
        /// Its run.
        run_id: RunId,
    },
    /// The workflow the schedule started last is open: the firing waits for it (buffer and
    /// cancel policies).
    Buffered,
    /// The workflow the schedule started last is open and the policy skips.
    Skipped,
    /// A workflow of this firing's id was started before (a trigger in the same microsecond).
    AlreadyStarted {
        /// Its id.
        workflow_id: WorkflowId,
    },
}

/// What a backfill came to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackfillReport {
    /// The spec's times in the range.
    pub times: usize,
    /// Workflows started.
    pub started: usize,
    /// Times whose workflow had been started before (they fired already).
    pub already_started: usize,
    /// Times waiting for the open workflow to close.
    pub buffered: usize,
    /// Times the overlap policy skipped.
    pub skipped: usize,
}

/// The action starting `workflow_type` with `input` (encoded) under `options`: what of them
/// a schedule keeps, the rest refused.
fn action_of(
    workflow_type: WorkflowType,
    input: reprise_history::Payload,
    options: &StartOptions,
) -> Result<ScheduleAction> {
    refuse_unkept_options(options)?;
    Ok(ScheduleAction {
        workflow_type,
        input,
        task_queue: options.task_queue.clone(),
        priority: options.priority,
        fairness_key: options.fairness_key.clone(),
        run_timeout: options.run_timeout,
        execution_timeout: options.execution_timeout,
        retry: options.retry.clone(),
    })
}

/// Refuses start options a schedule's action does not keep (a firing starts at its time),
/// naming them, and deadlines or a retry policy a start would refuse.
fn refuse_unkept_options(options: &StartOptions) -> Result<()> {
    let unkept: Vec<&str> = [
        ("start_delay", !options.start_delay.is_zero()),
        ("start_at", options.start_at.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect();
    if !unkept.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "a schedule's action does not take {} (a firing starts at its time)",
            unkept.join(", ")
        )));
    }
    crate::store::ExecutionPolicy {
        run_timeout: options.run_timeout,
        execution_timeout: options.execution_timeout,
        retry: options.retry.clone(),
    }
    .check()
}

impl Client {
    /// The action "start `def` with `input`" for a schedule, the input encoded by this
    /// client's data converter (a configured codec seals it before it is stored). It takes
    /// the options' task queue, priority, fairness key, deadlines and retry policy; a start
    /// delay or time (a firing starts at its time) is refused with
    /// [`Error::InvalidArgument`] rather than dropped.
    pub fn schedule_action<I: Serialize, O>(
        &self,
        def: WorkflowDef<I, O>,
        input: &I,
        options: &StartOptions,
    ) -> Result<ScheduleAction> {
        let input = self.converter.to_payload(input)?;
        action_of(WorkflowType::new(def.name())?, input, options)
    }

    /// [`Client::schedule_action`] for tools: the workflow type by name, the input as JSON
    /// text (checked to be JSON, then encoded with this client's codecs).
    pub fn schedule_action_json(
        &self,
        workflow_type: &str,
        input_json: &str,
        options: &StartOptions,
    ) -> Result<ScheduleAction> {
        let input = self.json_payload(input_json)?;
        action_of(WorkflowType::new(workflow_type)?, input, options)
    }

    /// Creates a schedule: its times after now fire. An invalid spec is
    /// [`Error::InvalidSchedule`]; an id in use, [`Error::ScheduleExists`]. Nothing is stored
    /// for either.
    pub async fn create_schedule(&self, schedule_id: &str, schedule: &Schedule) -> Result<()> {
        let id = ScheduleId::new(schedule_id)?;
        on_live_connection!(self.store, self.store.create_schedule(&id, schedule))
    }

    /// Replaces a schedule's spec, action and policies. Its times from now on fire; what it
    /// buffered, watches and counted stays.
    pub async fn update_schedule(&self, schedule_id: &str, schedule: &Schedule) -> Result<()> {
        let id = ScheduleId::new(schedule_id)?;
        on_live_connection!(self.store, self.store.replace_schedule(&id, schedule))
    }

    /// A schedule with its next fire times and the workflows it started last.
    pub async fn describe_schedule(&self, schedule_id: &str) -> Result<ScheduleDescription> {
        let id = ScheduleId::new(schedule_id)?;
        let (record, _) = on_live_read!(self.store, self.store.read_schedule(&id))?;
        Ok(describe(record))
    }

    /// Up to `limit` schedules in id order, after `after` (pass the last id of a page for
    /// the next one).
    pub async fn list_schedules(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ScheduleDescription>> {
        let after = after.map(ScheduleId::new).transpose()?;
        let limit = i64::try_from(limit.clamp(1, 1_000)).unwrap_or(1_000);
        let records = on_live_read!(self.store, self.store.list_schedules(after.as_ref(), limit))?;
        Ok(records.into_iter().map(describe).collect())
    }

    /// Pauses a schedule: its times do not fire (nor what it buffered start) until it is
    /// resumed. Triggers and backfills still fire.
    pub async fn pause_schedule(&self, schedule_id: &str, note: &str) -> Result<()> {
        let id = ScheduleId::new(schedule_id)?;
        on_live_connection!(self.store, self.store.pause_schedule(&id, true, Some(note)))
    }

    /// Resumes a schedule: its times from now on fire; those that passed while it was paused
    /// are not caught up.
    pub async fn resume_schedule(&self, schedule_id: &str, note: &str) -> Result<()> {
        let id = ScheduleId::new(schedule_id)?;
        on_live_connection!(
            self.store,
            self.store.pause_schedule(&id, false, Some(note))
        )
    }

    /// Fires a schedule now, under its overlap policy (paused or not).
    pub async fn trigger_schedule(&self, schedule_id: &str) -> Result<TriggerOutcome> {
        let id = ScheduleId::new(schedule_id)?;
        let fired = on_live_connection!(
            self.store,
            self.store.fire_schedule(
                &id,
                |now| vec![Firing {
                    scheduled_at: now,
                    origin: FiringOrigin::Triggered,
                }],
                None
            )
        )?;
        let triggered = fired
            .starts
            .iter()
            .find(|(firing, _, _)| firing.origin == FiringOrigin::Triggered);
        Ok(match triggered {
            Some((_, workflow_id, StartResult::Started(run_id))) => TriggerOutcome::Started {
                workflow_id: workflow_id.clone(),
                run_id: *run_id,
            },
            Some((_, workflow_id, StartResult::AlreadyStarted)) => TriggerOutcome::AlreadyStarted {
                workflow_id: workflow_id.clone(),
            },
            None if fired
                .state
                .buffered
                .iter()
                .any(|f| f.origin == FiringOrigin::Triggered) =>
            {
                TriggerOutcome::Buffered
            }
            None => TriggerOutcome::Skipped,
        })
    }

    /// Fires the spec's times in `[from, to]` now, oldest first, under `overlap` (the
    /// schedule's policy if `None`). A time that fired before is not started again: its
    /// workflow id is taken. At most [`MAX_BACKFILL`] times.
    pub async fn backfill_schedule(
        &self,
        schedule_id: &str,
        from: Timestamp,
        to: Timestamp,
        overlap: Option<OverlapPolicy>,
    ) -> Result<BackfillReport> {
        let id = ScheduleId::new(schedule_id)?;
        if to < from {
            return Err(Error::InvalidArgument(format!(
                "a backfill from {from} to {to} ends before it starts"
            )));
        }
        let (record, _) = on_live_read!(self.store, self.store.read_schedule(&id))?;
        let mut times = Vec::new();
        let mut cursor = Timestamp::from_unix_micros(from.as_unix_micros().saturating_sub(1));
        while let Some(t) = record.schedule.spec.next_after(cursor).filter(|t| *t <= to) {
            if times.len() == MAX_BACKFILL {
                return Err(Error::InvalidArgument(format!(
                    "the range holds more than {MAX_BACKFILL} times: backfill it in parts"
                )));
            }
            times.push(Firing {
                scheduled_at: t,
                origin: FiringOrigin::Backfill,
            });
            cursor = t;
        }
        let count = times.len();
        let fired = on_live_connection!(
            self.store,
            self.store.fire_schedule(&id, |_| times.clone(), overlap)
        )?;
        let backfilled = |result: fn(&StartResult) -> bool| {
            fired
                .starts
                .iter()
                .filter(|(f, _, r)| f.origin == FiringOrigin::Backfill && result(r))
                .count()
        };
        let started = backfilled(|r| matches!(r, StartResult::Started(_)));
        let already_started = backfilled(|r| matches!(r, StartResult::AlreadyStarted));
        let buffered = fired
            .state
            .buffered
            .iter()
            .filter(|f| f.origin == FiringOrigin::Backfill)
            .count();
        Ok(BackfillReport {
            times: count,
            started,
            already_started,
            buffered,
            skipped: count.saturating_sub(started + already_started + buffered),
        })
    }

    /// Deletes a schedule; the workflows it started run on. [`Error::UnknownSchedule`] if
    /// there is none.
    pub async fn delete_schedule(&self, schedule_id: &str) -> Result<()> {
        let id = ScheduleId::new(schedule_id)?;
        if on_live_connection!(self.store, self.store.delete_schedule(&id))? {
            Ok(())
        } else {
            Err(Error::UnknownSchedule {
                schedule_id: id.to_string(),
            })
        }
    }
}

fn describe(record: ScheduleRecord) -> ScheduleDescription {
    let ScheduleRecord {
        schedule_id,
        schedule,
        paused,
        note,
        state,
        created_at,
        updated_at,
    } = record;
    let upcoming = if paused {
        Vec::new()
    } else {
        // From the cursor, not from now: times between the two are due and fire at the next
        // tick.
        schedule
            .spec
            .upcoming(state.cursor, UPCOMING_FIRE_TIMES)
            .into_iter()
            .map(|t| t.saturating_add(schedule.spec.jitter_for(&schedule_id, t)))
            .collect()
    };
    ScheduleDescription {
        schedule_id,
        workflow_type: schedule.action.workflow_type,
        task_queue: schedule.action.task_queue,
        run_timeout: schedule.action.run_timeout,
        execution_timeout: schedule.action.execution_timeout,
        retry: schedule.action.retry,
        spec: schedule.spec,
        policies: schedule.policies,
        paused,
        note,
        upcoming,
        recent: state.recent.into_iter().collect(),
        counts: state.counts,
        buffered: state.buffered.len(),
        watched: state.watched,
        created_at,
        updated_at,
    }
}

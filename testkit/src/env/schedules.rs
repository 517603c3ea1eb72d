//! Schedules in a `TestEnv`, in virtual time: the same ticks as the engine's
//! (`reprise-schedule`), fired as [`TestEnv::advance`] moves time past their times.
//! [`TestEnv::run_until_idle`] never jumps to a schedule's next time: a schedule is never
//! idle, so only `advance` says how far to go.

use std::collections::BTreeMap;

use reprise_history::{ScheduleId, Timestamp, WorkflowId};
use reprise_schedule::{
    Firing, FiringOrigin, Instruction, OverlapPolicy, Schedule, ScheduleAction, ScheduleState,
    StartResult, Tick,
};
use reprise_sdk::{RunStatus, WorkflowDef};
use serde::Serialize;

use super::TestEnv;
use crate::error::Error;

/// A schedule of the environment.
pub(super) struct TestSchedule {
    schedule: Schedule,
    paused: bool,
    state: ScheduleState,
}

/// The environment's schedules, by id.
pub(super) type Schedules = BTreeMap<ScheduleId, TestSchedule>;

impl TestEnv {
    /// The action "start `def` with `input`" (on the default queue) for a schedule.
    pub fn schedule_action<I: Serialize, O>(
        &self,
        def: WorkflowDef<I, O>,
        input: &I,
    ) -> Result<ScheduleAction, Error> {
        Ok(ScheduleAction::new(
            reprise_history::WorkflowType::new(def.name())?,
            self.registry.converter().to_payload(input)?,
        ))
    }

    /// Creates a schedule: its times after now fire as time moves on.
    pub fn create_schedule(&mut self, schedule_id: &str, schedule: Schedule) -> Result<(), Error> {
        let id = ScheduleId::new(schedule_id)?;
        schedule.spec.validate()?;
        TestEnv::check_scheduled_terms(&schedule.action)?;
        if self.schedules.contains_key(&id) {
            return Err(Error::ScheduleExists(schedule_id.to_string()));
        }
        let state = ScheduleState::new(self.now);
        self.schedules.insert(
            id,
            TestSchedule {
                schedule,
                paused: false,
                state,
            },
        );
        Ok(())
    }

    /// A schedule's state: its counts, the workflows it started last, what it buffered.
    pub fn schedule_state(&self, schedule_id: &str) -> Result<&ScheduleState, Error> {
        Ok(&self.test_schedule(schedule_id)?.state)
    }

    /// Pauses a schedule: nothing of it fires until it is resumed (a trigger still does).
    pub fn pause_schedule(&mut self, schedule_id: &str) -> Result<(), Error> {
        self.test_schedule_mut(schedule_id)?.paused = true;
        Ok(())
    }

    /// Resumes a schedule: its times from now on fire; those passed while paused do not.
    pub fn resume_schedule(&mut self, schedule_id: &str) -> Result<(), Error> {
        let now = self.now;
        let schedule = self.test_schedule_mut(schedule_id)?;
        if schedule.paused {
            schedule.paused = false;
            schedule.state.skip_to(now);
        }
        Ok(())
    }

    /// Fires a schedule now under its overlap policy, then runs what is due now.
    pub fn trigger_schedule(&mut self, schedule_id: &str) -> Result<(), Error> {
        let firing = Firing {
            scheduled_at: self.now,
            origin: FiringOrigin::Triggered,
        };
        self.tick_schedule(&ScheduleId::new(schedule_id)?, vec![firing], None)?;
        self.settle()
    }

    /// Fires the schedule's times in `[from, to]` now, under `overlap` (the schedule's if
    /// `None`), then runs what is due now.
    pub fn backfill_schedule(
        &mut self,
        schedule_id: &str,
        from: Timestamp,
        to: Timestamp,
        overlap: Option<OverlapPolicy>,
    ) -> Result<(), Error> {
        let spec = &self.test_schedule(schedule_id)?.schedule.spec;
        let mut firings = Vec::new();
        let mut cursor = Timestamp::from_unix_micros(from.as_unix_micros().saturating_sub(1));
        while let Some(t) = spec.next_after(cursor).filter(|t| *t <= to) {
            firings.push(Firing {
                scheduled_at: t,
                origin: FiringOrigin::Backfill,
            });
            cursor = t;
        }
        self.tick_schedule(&ScheduleId::new(schedule_id)?, firings, overlap)?;
        self.settle()
    }

    /// Deletes a schedule; the workflows it started run on.
    pub fn delete_schedule(&mut self, schedule_id: &str) -> Result<(), Error> {
        let id = ScheduleId::new(schedule_id)?;
        self.schedules
            .remove(&id)
            .map(drop)
            .ok_or_else(|| Error::UnknownSchedule(schedule_id.to_string()))
    }

    /// Ticks every schedule at the current time; true if one did something.
    pub(super) fn fire_schedules(&mut self) -> Result<bool, Error> {
        let ids: Vec<ScheduleId> = self.schedules.keys().cloned().collect();
        let mut progressed = false;
        for id in ids {
            progressed |= self.tick_schedule(&id, Vec::new(), None)?;
        }
        Ok(progressed)
    }

    /// When a schedule is due next (jitter included).
    pub(super) fn next_schedule_time(&self) -> Option<Timestamp> {
        self.schedules
            .iter()
            .filter(|(_, s)| !s.paused)
            .filter_map(|(id, s)| s.state.next_fire_at(id, &s.schedule.spec))
            .filter(|t| *t > self.now)
            .min()
    }

    /// Ticks one schedule and carries out what it decided; true if it decided anything.
    fn tick_schedule(
        &mut self,
        id: &ScheduleId,
        extra: Vec<Firing>,
        overlap: Option<OverlapPolicy>,
    ) -> Result<bool, Error> {
        let now = self.now;
        let watched_open = {
            let schedule = self.test_schedule(id.as_str())?;
            schedule.state.watched.as_ref().is_some_and(|w| {
                self.runs
                    .get(w)
                    .is_some_and(|r| r.status == RunStatus::Running)
            })
        };
        let Some(schedule) = self.schedules.get_mut(id) else {
            return Err(Error::UnknownSchedule(id.to_string()));
        };
        let tick = Tick {
            schedule_id: id,
            spec: &schedule.schedule.spec,
            policies: &schedule.schedule.policies,
            paused: schedule.paused,
            now,
            watched_open,
        };
        let plan = schedule.state.tick(&tick, extra, overlap);
        let action = schedule.schedule.action.clone();
        let decided = !plan.instructions.is_empty();
        for instruction in plan.instructions {
            match instruction {
                Instruction::Start {
                    firing,
                    workflow_id,
                } => {
                    let result = self.start_firing(id, &action, firing, &workflow_id)?;
                    if let Some(schedule) = self.schedules.get_mut(id) {
                        schedule
                            .state
                            .record_start(firing, workflow_id, result, now);
                    }
                }
                Instruction::Cancel { workflow_id } => {
                    if let Some(run) = self.runs.get(&workflow_id) {
                        let run_id = run.run_id;
                        let input = reprise_history::EventKind::CancelRequested(
                            reprise_history::CancelRequested {
                                reason: format!("cancelled by schedule {id}"),
                            },
                        );
                        self.push_input(&workflow_id, run_id, now, input);
                    }
                }
                Instruction::Terminate { workflow_id } => {
                    if let Some(run) = self.runs.get(&workflow_id)
                        && run.status == RunStatus::Running
                    {
                        let run_id = run.run_id;
                        self.terminate_run(run_id, &format!("terminated by schedule {id}"))?;
                    }
                }
            }
        }
        Ok(decided)
    }

    /// Starts a firing's run, unless its workflow id was ever used.
    fn start_firing(
        &mut self,
        id: &ScheduleId,
        action: &ScheduleAction,
        firing: Firing,
        workflow_id: &WorkflowId,
    ) -> Result<StartResult, Error> {
        if self.runs.contains_key(workflow_id) {
            return Ok(StartResult::AlreadyStarted);
        }
        let run_id = self.new_run_id();
        let started = action.first_event(id, firing.scheduled_at, workflow_id, run_id);
        Ok(if self.start_run(started, None)? {
            self.apply_scheduled_terms(workflow_id, action);
            StartResult::Started(run_id)
        } else {
            StartResult::AlreadyStarted
        })
    }

    fn test_schedule(&self, schedule_id: &str) -> Result<&TestSchedule, Error> {
        self.schedules
            .get(&ScheduleId::new(schedule_id)?)
            .ok_or_else(|| Error::UnknownSchedule(schedule_id.to_string()))
    }

    fn test_schedule_mut(&mut self, schedule_id: &str) -> Result<&mut TestSchedule, Error> {
        self.schedules
            .get_mut(&ScheduleId::new(schedule_id)?)
            .ok_or_else(|| Error::UnknownSchedule(schedule_id.to_string()))
    }
}

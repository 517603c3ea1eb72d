//! What a schedule does at a moment: which times are due, which fire, wait or are skipped,
//! and what happens to the workflow it started before. Pure: the engine runs it inside the
//! transaction that holds the schedule's row and carries out its instructions in SQL;
//! `TestEnv` runs it in virtual time.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use reprise_history::{RunId, ScheduleId, Timestamp, WorkflowId};
use serde::{Deserialize, Serialize};

use crate::policy::{MAX_BUFFERED, OverlapPolicy, SchedulePolicies};
use crate::spec::ScheduleSpec;

/// Why a firing exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FiringOrigin {
    /// One of the spec's times came.
    Scheduled,
    /// Someone triggered the schedule by hand.
    Triggered,
    /// A backfill of a past range.
    Backfill,
}

/// One firing: a time the schedule fires for, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Firing {
    /// The time it is for (before jitter); the started workflow's id is derived from it.
    pub scheduled_at: Timestamp,
    /// Why it exists.
    pub origin: FiringOrigin,
}

/// A workflow a schedule started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentAction {
    /// The firing.
    pub firing: Firing,
    /// When it started (database time).
    pub started_at: Timestamp,
    /// The started workflow.
    pub workflow_id: WorkflowId,
    /// Its first run.
    pub run_id: RunId,
}

/// How many started workflows a schedule remembers.
pub const RECENT_ACTIONS: usize = 10;

/// How many times one tick looks at, at most: a long outage of a frequent schedule is caught
/// up over several ticks rather than in one long transaction.
pub const MAX_TIMES_PER_TICK: usize = 1_000;

/// What a schedule has done, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FiringCounts {
    /// Workflows started.
    pub started: u64,
    /// Firings not started because of the overlap policy, or a workflow id already used.
    pub skipped: u64,
    /// Times older than the catch-up window when an engine reached them.
    pub missed: u64,
}

/// A schedule's progress, kept between ticks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleState {
    /// Every time of the spec up to and including it has been handled.
    pub cursor: Timestamp,
    /// Firings waiting for the open workflow to close (buffer and cancel policies).
    #[serde(default)]
    pub buffered: VecDeque<Firing>,
    /// The workflow the schedule started last: the one the overlap policy looks at.
    #[serde(default)]
    pub watched: Option<WorkflowId>,
    /// Whether that workflow has been asked to cancel (so that it is asked once).
    #[serde(default)]
    pub cancel_requested: bool,
    /// What it has done.
    #[serde(default)]
    pub counts: FiringCounts,
    /// The last workflows it started, newest first.
    #[serde(default)]
    pub recent: VecDeque<RecentAction>,
}

/// What a tick needs to know besides the state.
#[derive(Clone, Copy, Debug)]
pub struct Tick<'a> {
    /// The schedule.
    pub schedule_id: &'a ScheduleId,
    /// Its times.
    pub spec: &'a ScheduleSpec,
    /// Its policies.
    pub policies: &'a SchedulePolicies,
    /// Whether it is paused: its times do not fire and nothing buffered starts (triggers and
    /// backfills still do).
    pub paused: bool,
    /// The time now (database time).
    pub now: Timestamp,
    /// Whether the workflow [`ScheduleState::watched`] names has an open run.
    pub watched_open: bool,
}

/// What the caller must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Instruction {
    /// Start a workflow with this id, refusing if the id was ever used (then report
    /// [`StartResult::AlreadyStarted`]).
    Start {
        /// The firing it is for.
        firing: Firing,
        /// The workflow id, derived from the schedule id and the firing's time.
        workflow_id: WorkflowId,
    },
    /// Ask the workflow's open run to cancel.
    Cancel {
        /// The workflow.
        workflow_id: WorkflowId,
    },
    /// Terminate the workflow's open run.
    Terminate {
        /// The workflow.
        workflow_id: WorkflowId,
    },
}

/// What a tick decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// What to do, in order.
    pub instructions: Vec<Instruction>,
    /// When the schedule must be looked at next for its times (jitter included), or `None`
    /// if its spec never fires again.
    pub next_fire_at: Option<Timestamp>,
}

/// What came of an [`Instruction::Start`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartResult {
    /// A run was started.
    Started(RunId),
    /// The workflow id was used before: a retried firing, or a backfill over a time that
    /// fired already. Nothing was started.
    AlreadyStarted,
}

/// The workflow id a schedule's firing for `at` starts: `<schedule id>-<time in RFC 3339, UTC>`
/// (whole seconds unless the time has a fraction). The same firing always gets the same id,
/// so a firing retried after a crash can never start a second workflow. (A schedule id is at
/// most 255 bytes and the suffix fewer than 40, so the id is always valid.)
pub fn workflow_id_for(
    schedule_id: &ScheduleId,
    at: Timestamp,
) -> reprise_history::Result<WorkflowId> {
    let time = DateTime::<Utc>::from_timestamp_micros(at.as_unix_micros())
        .map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| at.as_unix_micros().to_string());
    WorkflowId::new(format!("{schedule_id}-{time}"))
}

/// The time a firing's workflow id names ([`workflow_id_for`]'s suffix), or None for an id no
/// firing made. Workflow code reads it for the period a scheduled run covers: it is the same
/// on every run of the id (a reset, a retry), where the run's origin says `Reset` or
/// `Retried` instead of `Scheduled`.
pub fn firing_time_of(workflow_id: &WorkflowId) -> Option<Timestamp> {
    let id = workflow_id.as_str();
    // From the right: the first suffix after a '-' that reads back as the id's own time.
    id.char_indices()
        .rev()
        .filter(|&(_, c)| c == '-')
        .find_map(|(at, _)| {
            let suffix = &id[at + 1..];
            let time = DateTime::parse_from_rfc3339(suffix)
                .ok()?
                .with_timezone(&Utc);
            let same = time.to_rfc3339_opts(SecondsFormat::AutoSi, true) == suffix;
            same.then(|| Timestamp::from_unix_micros(time.timestamp_micros()))
        })
}

impl ScheduleState {
    /// A schedule created at `now`: times after it fire.
    pub fn new(now: Timestamp) -> ScheduleState {
        ScheduleState {
            cursor: now,
            buffered: VecDeque::new(),
            watched: None,
            cancel_requested: false,
            counts: FiringCounts::default(),
            recent: VecDeque::new(),
        }
    }

    /// When the schedule's next time is due (its jitter included), after the cursor.
    pub fn next_fire_at(&self, schedule_id: &ScheduleId, spec: &ScheduleSpec) -> Option<Timestamp> {
        spec.next_after(self.cursor)
            .map(|t| t.saturating_add(spec.jitter_for(schedule_id, t)))
    }

    /// After a pause, or a change of spec: times until `now` are passed over, not caught up.
    pub fn skip_to(&mut self, now: Timestamp) {
        self.cursor = self.cursor.max(now);
    }

    /// Decides what to do at `tick.now`: first a buffered firing if the watched workflow has
    /// closed, then `extra` (triggers, a backfill's times) and the spec's due times, each
    /// under the overlap policy (`overlap` overrides the schedule's, for a backfill).
    pub fn tick(
        &mut self,
        tick: &Tick<'_>,
        extra: impl IntoIterator<Item = Firing>,
        overlap: Option<OverlapPolicy>,
    ) -> Plan {
        let policy = overlap.unwrap_or(tick.policies.overlap);
        let mut open = tick.watched_open && self.watched.is_some();
        if !open {
            self.cancel_requested = false;
        }
        let mut instructions = Vec::new();
        if !open
            && !tick.paused
            && let Some(firing) = self.buffered.pop_front()
        {
            self.start(tick.schedule_id, firing, &mut instructions);
            open = true;
        }
        let due = if tick.paused {
            Vec::new()
        } else {
            self.take_due(tick)
        };
        for firing in extra.into_iter().chain(due) {
            self.admit(
                tick.schedule_id,
                firing,
                policy,
                &mut open,
                &mut instructions,
            );
        }
        Plan {
            instructions,
            next_fire_at: self.next_fire_at(tick.schedule_id, tick.spec),
        }
    }

    /// Records what came of a start: the recent actions and the counts.
    pub fn record_start(
        &mut self,
        firing: Firing,
        workflow_id: WorkflowId,
        result: StartResult,
        at: Timestamp,
    ) {
        match result {
            StartResult::Started(run_id) => {
                self.counts.started += 1;
                self.recent.push_front(RecentAction {
                    firing,
                    started_at: at,
                    workflow_id,
                    run_id,
                });
                self.recent.truncate(RECENT_ACTIONS);
            }
            StartResult::AlreadyStarted => self.counts.skipped += 1,
        }
    }

    /// The spec's times due at `now` (jitter included), oldest first, moving the cursor past
    /// them; those older than the catch-up window are counted as missed instead.
    fn take_due(&mut self, tick: &Tick<'_>) -> Vec<Firing> {
        let window_start = Timestamp::from_unix_micros(
            tick.now
                .as_unix_micros()
                .saturating_sub(micros(tick.policies.catchup_window)),
        );
        let mut due = Vec::new();
        for _ in 0..MAX_TIMES_PER_TICK {
            let Some(at) = tick.spec.next_after(self.cursor) else {
                break;
            };
            if at.saturating_add(tick.spec.jitter_for(tick.schedule_id, at)) > tick.now {
                break;
            }
            self.cursor = at;
            if at < window_start {
                self.counts.missed += 1;
            } else {
                due.push(Firing {
                    scheduled_at: at,
                    origin: FiringOrigin::Scheduled,
                });
            }
        }
        // Still behind the window after a full tick (a long outage of a frequent schedule):
        // everything before the window is missed; jump over it rather than count each time.
        if due.is_empty()
            && tick
                .spec
                .next_after(self.cursor)
                .is_some_and(|next| next < window_start)
        {
            self.cursor = Timestamp::from_unix_micros(window_start.as_unix_micros() - 1);
        }
        due
    }

    fn admit(
        &mut self,
        schedule_id: &ScheduleId,
        firing: Firing,
        policy: OverlapPolicy,
        open: &mut bool,
        instructions: &mut Vec<Instruction>,
    ) {
        if !*open {
            self.start(schedule_id, firing, instructions);
            *open = true;
            return;
        }
        match policy {
            OverlapPolicy::AllowAll => self.start(schedule_id, firing, instructions),
            OverlapPolicy::Skip => self.counts.skipped += 1,
            OverlapPolicy::BufferOne if !self.buffered.is_empty() => self.counts.skipped += 1,
            OverlapPolicy::BufferAll if self.buffered.len() >= MAX_BUFFERED => {
                self.counts.skipped += 1;
            }
            OverlapPolicy::BufferOne | OverlapPolicy::BufferAll => self.buffered.push_back(firing),
            OverlapPolicy::CancelOther => {
                if let Some(workflow_id) = &self.watched
                    && !self.cancel_requested
                {
                    instructions.push(Instruction::Cancel {
                        workflow_id: workflow_id.clone(),
                    });
                    self.cancel_requested = true;
                }
                self.counts.skipped += self.buffered.len() as u64;
                self.buffered.clear();
                self.buffered.push_back(firing);
            }
            OverlapPolicy::TerminateOther => {
                if let Some(workflow_id) = &self.watched {
                    instructions.push(Instruction::Terminate {
                        workflow_id: workflow_id.clone(),
                    });
                }
                self.start(schedule_id, firing, instructions);
            }
        }
    }

    fn start(
        &mut self,
        schedule_id: &ScheduleId,
        firing: Firing,
        instructions: &mut Vec<Instruction>,
    ) {
        let Ok(workflow_id) = workflow_id_for(schedule_id, firing.scheduled_at) else {
            self.counts.skipped += 1;
            return;
        };
        self.watched = Some(workflow_id.clone());
        self.cancel_requested = false;
        instructions.push(Instruction::Start {
            firing,
            workflow_id,
        });
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;

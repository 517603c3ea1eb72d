//! Reprise's schedules as data: when a schedule fires ([`ScheduleSpec`]: cron expressions
//! with seconds in a time zone, fixed intervals with an offset, jitter, a start, an end and
//! excluded ranges) and what each firing does ([`ScheduleState::tick`]: the catch-up window,
//! the overlap policies, triggers and backfills).
//!
//! No I/O and no clock: the engine runs a tick inside the transaction that holds the
//! schedule's row, with database time, and carries out its [`Instruction`]s in SQL;
//! `reprise-testkit` runs the same ticks in virtual time.

mod action;
mod cron;
mod error;
mod plan;
mod policy;
mod spec;

pub use action::{Schedule, ScheduleAction};
pub use cron::{CronField, CronSpec};
pub use error::SpecError;
pub use plan::{
    Firing, FiringCounts, FiringOrigin, Instruction, MAX_TIMES_PER_TICK, Plan, RECENT_ACTIONS,
    RecentAction, ScheduleState, StartResult, Tick, firing_time_of, workflow_id_for,
};
pub use policy::{DEFAULT_CATCHUP_WINDOW, MAX_BUFFERED, OverlapPolicy, SchedulePolicies};
pub use spec::{IntervalSpec, ScheduleSpec, TimeRange, TimeZone};

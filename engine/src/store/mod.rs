//! The store: the only code in Reprise that speaks SQL.
//!
//! Every query binds the clock offset as `$1` and reads time as `now!()` (database time plus
//! that offset), so tests can move time and no process clock is ever used. A run is written
//! only under its row lock (a step batch holds it for its transaction); an activity attempt's
//! outcome is written only if its lease token still holds (fencing).

mod connection;
mod direct;
mod inbox;
mod lifecycle;
mod reset;
mod rows;
mod runs;
mod step;
mod tasks;

use reprise_history::{Limits, Timestamp};
use sqlx::PgPool;

use crate::clock::DbClock;
use crate::error::{Error, Result};

pub(crate) use connection::LoopConnection;
pub use connection::{LOOP_SESSION_SETTINGS, hot_statements};
pub(crate) use direct::{DirectStep, RunHint, input_hint, started_hint};
pub use lifecycle::{PatchUsage, RunCursor, RunFilter, RunSummary};
pub(crate) use lifecycle::{apply_parent_close_policy, request_cancel};
pub use runs::IdReusePolicy;
pub(crate) use runs::{NewRun, RunEnd, RunRow};
pub(crate) use step::{BatchRun, Claim, Park, StepBatch, StepOutput};
pub use tasks::PendingActivity;
pub(crate) use tasks::{ClaimedTask, Recorded, TaskOutcome};

/// Database time (plus the test offset bound as `$1`), as an SQL expression.
macro_rules! now {
    () => {
        "(now() + $1::bigint * interval '1 microsecond')"
    };
}
pub(crate) use now;

/// Channel notified when a run has work.
pub(crate) const RUNS_CHANNEL: &str = "reprise_runs";
/// Channel notified (with the queue name) when activity tasks are ready.
pub(crate) const TASKS_CHANNEL: &str = "reprise_tasks";
/// Channel notified (with the run id) when a run closes.
pub(crate) const CLOSED_CHANNEL: &str = "reprise_closed";

/// Runs a store operation (`$op`, an expression evaluated afresh each time) on pooled
/// connections of `$store`, again on another connection if the one it took had died while
/// idle (the server was restarted, failed over, or ended it). The pool does not ping a
/// connection before each use (see [`crate::pool_options`]), so a dead one shows up here
/// instead, as the answer to the operation's first statement: nothing ran. (A session ended
/// in the instant between a commit and its answer looks the same; every client that
/// reconnects shares that window, and a repeated start finds its run.) A macro, not a
/// function taking an async closure: the futures of such closures are not `Send` for every
/// lifetime, and a client's futures must be spawnable.
macro_rules! on_live_connection {
    ($store:expr, $op:expr) => {{
        let mut tries = $store.pool().options().get_max_connections();
        loop {
            match $op.await {
                Err(e) if e.is_dead_connection() && tries > 0 => tries -= 1,
                result => break result,
            }
        }
    }};
}
pub(crate) use on_live_connection;

/// Queues a notification on `channel`; PostgreSQL delivers it when the transaction commits.
pub(crate) async fn notify(
    conn: &mut sqlx::PgConnection,
    channel: &str,
    payload: &str,
) -> Result<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(channel)
        .bind(payload)
        .execute(&mut *conn)
        .await
        .map_err(Error::from_db)?;
    Ok(())
}

/// Reprise's tables in one PostgreSQL database.
#[derive(Clone)]
pub struct Store {
    pool: PgPool,
    clock: DbClock,
    limits: Limits,
}

impl Store {
    /// A store on `pool`, with database time as it is and default limits.
    pub fn new(pool: PgPool) -> Store {
        Store {
            pool,
            clock: DbClock::new(),
            limits: Limits::DEFAULT,
        }
    }

    /// The same store with a clock tests can move.
    pub fn with_clock(mut self, clock: DbClock) -> Store {
        self.clock = clock;
        self
    }

    /// The same store with other size limits.
    pub fn with_limits(mut self, limits: Limits) -> Store {
        self.limits = limits;
        self
    }

    /// The connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The clock.
    pub fn clock(&self) -> &DbClock {
        &self.clock
    }

    pub(crate) fn limits(&self) -> &Limits {
        &self.limits
    }

    pub(crate) fn offset(&self) -> i64 {
        self.clock.offset_micros()
    }

    /// Database time now.
    pub async fn now(&self) -> Result<Timestamp> {
        let t: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(concat!("SELECT ", now!()))
            .bind(self.offset())
            .fetch_one(&self.pool)
            .await
            .map_err(Error::from_db)?;
        Ok(to_timestamp(t))
    }
}

pub(crate) fn to_timestamp(t: chrono::DateTime<chrono::Utc>) -> Timestamp {
    Timestamp::from_unix_micros(t.timestamp_micros())
}

pub(crate) fn to_datetime(t: Timestamp) -> Result<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp_micros(t.as_unix_micros()).ok_or_else(|| Error::Corrupt {
        what: "timestamp".to_string(),
        reason: format!("{}us is out of range", t.as_unix_micros()),
    })
}

/// The chain hash of the last of `events`, from the start of a history.
pub(crate) fn chain_head(
    events: &[reprise_history::Event],
    limits: &Limits,
) -> Result<reprise_history::ChainHash> {
    let mut hash = reprise_history::ChainHash::GENESIS;
    for event in events {
        hash = hash.next(&event.encode(limits)?);
    }
    Ok(hash)
}

pub(crate) fn micros(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

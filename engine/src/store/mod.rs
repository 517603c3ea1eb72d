//! The store: the only code in Reprise that speaks SQL.
//!
//! Every query that reads time binds the clock offset as `$1` and reads `reprise.db_now($1)`
//! (database time plus that offset), so tests can move time and no process clock is ever used. A run is written
//! only under its row lock (a step batch holds it for its transaction); an activity attempt's
//! outcome is written only if its lease token still holds (fencing).

mod batches;
mod bind;
mod cache;
mod connection;
mod deadlines;
mod ends;
mod inbox;
mod lifecycle;
mod limits;
mod listing;
mod notify;
mod operator;
mod overview;
mod queries;
mod reset;
mod rows;
mod runs;
mod schedules;
mod step;
mod tasks;
mod updates;
mod verify;

use reprise_history::{ChainKey, Limits, Timestamp};
use sqlx::PgPool;

use crate::clock::DbClock;
use crate::error::{Error, Result};

pub use batches::{BatchProgress, BulkAction};
pub use bind::{BoundStatement, bound_statements};
pub(crate) use cache::CacheKey;
pub(crate) use connection::LoopConnection;
pub use connection::{LOOP_SESSION_SETTINGS, hot_statements};
pub(crate) use deadlines::ExecutionPolicy;
pub(crate) use ends::RunEnd;
pub(crate) use lifecycle::{apply_parent_close_policy, request_cancel};
pub use listing::{RunCursor, RunFilter, RunSummary, StatusCount};
pub(crate) use notify::{
    CLOSED_CHANNEL, RUNS_CHANNEL, RunHint, SCHEDULES_CHANNEL, TASKS_CHANNEL, notify,
};
pub use operator::PatchUsage;
pub use overview::{QueueBacklog, TypeUsage};
pub use queries::QueryRefusal;
pub(crate) use queries::{ANSWERS_CHANNEL, Asked, QUERIES_CHANNEL, TakenQuery};
pub use runs::IdReusePolicy;
pub(crate) use runs::{NewRun, RunRow};
pub(crate) use schedules::ScheduleRecord;
pub(crate) use step::{BatchRun, Claim, DirectStep, Park, StepBatch, StepOutput};
pub use tasks::PendingActivity;
pub(crate) use tasks::{ClaimedTask, Recorded, TaskOutcome};
pub(crate) use updates::{UpdateState, record_update_effects};
pub use verify::{ChainVerdict, RunVerification};

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

/// How long a client's read ([`on_live_read!`]) waits for a database that is away.
pub(crate) const READ_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

/// A read of the client's (describe, list, export, verify, schedules, limits): as
/// [`on_live_connection!`], and after a retryable error (the database restarting or failing
/// over) again with backoff for up to [`READ_PATIENCE`], so that a read rides through a
/// restart. Only for reads: a write whose answer was lost may have happened.
macro_rules! on_live_read {
    ($store:expr, $op:expr) => {{
        let until = tokio::time::Instant::now() + $crate::store::READ_PATIENCE;
        let mut backoff = $crate::backoff::Backoff::default();
        loop {
            match $crate::store::on_live_connection!($store, $op) {
                Err(e) if e.is_retryable() && tokio::time::Instant::now() < until => {
                    tracing::warn!(error = %e, "a read failed; trying again");
                    backoff.wait().await;
                }
                result => break result,
            }
        }
    }};
}
pub(crate) use on_live_read;

/// For the reads of a caller that waits (for a result, an update's outcome, a query's answer):
/// the value of `$op` run [`on_live_connection!`], or, after a retryable error (the database
/// restarting or failing over), a wait of `$backoff` and the next turn of the caller's loop
/// (`continue`): such a caller rides through an outage as it waits through a slow run. Any
/// other error returns from the caller.
macro_rules! or_wait_again {
    ($store:expr, $backoff:expr, $op:expr) => {
        match $crate::store::on_live_connection!($store, $op) {
            Ok(value) => {
                $backoff.reset();
                value
            }
            Err(e) if e.is_retryable() => {
                tracing::warn!(error = %e, "a read failed; waiting and trying again");
                $backoff.wait().await;
                continue;
            }
            Err(e) => return Err(e),
        }
    };
}
pub(crate) use or_wait_again;

/// What every write inside a transaction needs besides its connection: the clock offset that
/// `reprise.db_now($1)` adds (0 but in tests) and the limits events are encoded within.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WriteContext {
    pub(crate) offset: i64,
    pub(crate) limits: Limits,
    /// The chain key, if this process holds one: the events it appends are keyed.
    pub(crate) key: Option<ChainKey>,
}

/// Reprise's tables in one PostgreSQL database.
#[derive(Clone)]
pub struct Store {
    pool: PgPool,
    clock: DbClock,
    limits: Limits,
    metrics: crate::telemetry::Metrics,
    chain_key: Option<ChainKey>,
}

impl Store {
    /// A store on `pool`, with database time as it is and default limits.
    pub fn new(pool: PgPool) -> Store {
        Store {
            pool,
            clock: DbClock::new(),
            limits: Limits::DEFAULT,
            metrics: crate::telemetry::Metrics::new(),
            chain_key: None,
        }
    }

    /// The same store with a chain key (`reprise_history::chain`): the events it appends are
    /// keyed, a MAC chain a writer with database access alone cannot extend or rewrite, and
    /// the histories it reads are verified with it. Every process that writes or reads
    /// histories of the database (engines, clients, the CLI; not workers) needs it.
    pub fn with_chain_key(mut self, key: ChainKey) -> Store {
        self.chain_key = Some(key);
        self
    }

    /// The same store (clock, limits, metrics, chain key) over another pool: to read as
    /// another database role, as the web UI reads as `reprise_observer`.
    pub fn with_pool(&self, pool: PgPool) -> Store {
        Store {
            pool,
            ..self.clone()
        }
    }

    /// The chain key, if this store holds one.
    pub(crate) fn chain_key(&self) -> Option<&ChainKey> {
        self.chain_key.as_ref()
    }

    /// The same store counting into `metrics` (one registry for the whole process: every
    /// clone of a store shares its metrics).
    pub fn with_metrics(mut self, metrics: crate::telemetry::Metrics) -> Store {
        self.metrics = metrics;
        self
    }

    /// The metrics this store's engines, workers and listeners count into.
    pub fn metrics(&self) -> &crate::telemetry::Metrics {
        &self.metrics
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

    /// The offset and limits of this store's writes.
    pub(crate) fn write_context(&self) -> WriteContext {
        WriteContext {
            offset: self.offset(),
            limits: self.limits,
            key: self.chain_key,
        }
    }

    /// Database time now.
    pub async fn now(&self) -> Result<Timestamp> {
        let t: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT reprise.db_now($1)")
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

/// The chain hash of the last of `events`, from the start of a history, keyed with `key` as
/// the rows are when this process holds one.
pub(crate) fn chain_head(
    events: &[reprise_history::Event],
    limits: &Limits,
    key: Option<&ChainKey>,
) -> Result<reprise_history::ChainHash> {
    let mut hash = reprise_history::ChainHash::GENESIS;
    for event in events {
        hash = hash.next_with(key, &event.encode(limits)?);
    }
    Ok(hash)
}

pub(crate) fn micros(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

//! Reprise's runtime on PostgreSQL.
//!
//! - [`Store`]: the only code in Reprise that speaks SQL.
//! - [`Engine`]: the orchestrator host; claims ready runs and commits each step in one
//!   transaction, keeping live orchestrators in a bounded cache.
//! - [`Worker`]: runs activities from named task queues, with retries, heartbeats and timeouts.
//! - [`Client`]: start, await, signal, describe, export.
//! - [`schema::migrate`]; the `reprise` operator CLI is the `reprise-cli` crate, so that an
//!   application that only starts workflows does not compile it.
//!
//! Every time the engine uses is the database's (`now()` of the transaction), never a
//! worker's clock.

mod app;
mod backoff;
mod client;
mod clock;
mod deploy;
mod error;
mod flow_control;
mod host;
mod listen;
pub mod schema;
mod store;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
mod worker;

pub use app::{DEFAULT_MAX_CONNECTIONS, Reprise, RepriseBuilder};
pub use client::{
    BackfillReport, Client, DEFAULT_QUERY_DEADLINE, Description, MAX_BACKFILL, Page, RunOutcome,
    RunRelations, ScheduleDescription, StartOptions, TriggerOutcome, UPCOMING_FIRE_TIMES,
    WorkflowHandle,
};
pub use clock::DbClock;
pub use deploy::{DeployCheck, WouldBreak, check_deploy};
pub use error::{Error, Result};
pub use flow_control::{Limit, LimitScope, LimitUsage, MAX_FAIRNESS_KEY_BYTES, Rate};
pub use host::{Engine, EngineOptions, EngineStats, default_build, executable_build};
pub use reprise_history as history;
pub use reprise_history::Priority;
pub use reprise_schedule as schedule;
pub use reprise_schedule::{OverlapPolicy, Schedule, ScheduleSpec};
/// The SQL toolkit Reprise speaks to PostgreSQL with, at the version it uses: for reading
/// what the API does not offer without adding sqlx by hand.
pub use sqlx;
pub use store::{
    BatchProgress, BulkAction, ChainVerdict, IdReusePolicy, PatchUsage, PendingActivity,
    QueryRefusal, QueueBacklog, RunCursor, RunFilter, RunSummary, RunVerification, StatusCount,
    Store, TypeUsage,
};
pub use telemetry::Metrics;
/// `CancellationToken`, which [`Reprise`] stops on.
pub use tokio_util::sync::CancellationToken;
pub use worker::{Worker, WorkerOptions, WorkerStats};

/// Not part of the API: what the engine's own tests check of the statements on every step's
/// path (their plans) and of the connections that run them.
#[doc(hidden)]
pub mod hot_path {
    pub use crate::store::{
        BoundStatement, LOOP_SESSION_SETTINGS, bound_statements, hot_statements,
    };
}

/// A pool of connections to the Reprise database.
pub type Pool = sqlx::PgPool;

/// The server's version string (`SELECT version()`).
pub async fn server_version(pool: &Pool) -> Result<String> {
    sqlx::query_scalar("SELECT version()")
        .fetch_one(pool)
        .await
        .map_err(Error::from_db)
}

/// Connects a pool to `url` (a `postgres://` URL; `?host=/path` selects a unix socket), with
/// [`pool_options`].
pub async fn connect(url: &str) -> Result<Pool> {
    pool_options()
        .max_connections(16)
        .connect(url)
        .await
        .map_err(Error::from_db)
}

/// Connects a pool to `url` as [`connect`] does, each session under the database role `role`
/// (the startup setting `role`: the login role must be a member of it; see
/// `docs/operations.md`, "Database roles").
pub async fn connect_as(url: &str, role: &str) -> Result<Pool> {
    use std::str::FromStr;
    let options = sqlx::postgres::PgConnectOptions::from_str(url)
        .map_err(Error::from_db)?
        .options([("role", role)]);
    pool_options()
        .max_connections(16)
        .connect_with(options)
        .await
        .map_err(Error::from_db)
}

/// A connection idle longer than this is pinged before it is handed out.
const PING_AFTER_IDLE: std::time::Duration = std::time::Duration::from_secs(5);

/// The pool settings Reprise runs with. sqlx pings every connection it hands out by default:
/// a round trip before each statement or transaction, which on a step's path costs as much
/// as a statement. Every connection is pinged as it goes back to the pool anyway, so only
/// one that sat idle long enough for the server or the network to drop it is pinged again.
pub fn pool_options() -> sqlx::postgres::PgPoolOptions {
    sqlx::postgres::PgPoolOptions::new()
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > PING_AFTER_IDLE {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
}

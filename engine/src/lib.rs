//! Reprise's runtime on PostgreSQL.
//!
//! - [`Store`]: the only code in Reprise that speaks SQL.
//! - [`Engine`]: the orchestrator host; claims ready runs and commits each step in one
//!   transaction, keeping live orchestrators in a bounded cache.
//! - [`Worker`]: runs activities from named task queues, with retries, heartbeats and timeouts.
//! - [`Client`]: start, await, signal, describe, export.
//! - [`schema::migrate`] and the `reprise` operator CLI.
//!
//! Every time the engine uses is the database's (`now()` of the transaction), never a
//! worker's clock.

mod client;
mod clock;
mod deploy;
mod error;
mod host;
mod listen;
pub mod schema;
mod store;
mod worker;

pub use client::{Client, Description, Page, StartOptions, WorkflowHandle};
pub use clock::DbClock;
pub use deploy::{DeployCheck, WouldBreak, check_deploy};
pub use error::{Error, Result};
pub use host::{Engine, EngineOptions, executable_build};
pub use reprise_history as history;
pub use store::{
    IdReusePolicy, PatchUsage, PendingActivity, RunCursor, RunFilter, RunSummary, Store,
};
pub use worker::{Worker, WorkerOptions};

/// A pool of connections to the Reprise database.
pub type Pool = sqlx::PgPool;

/// The server's version string (`SELECT version()`).
pub async fn server_version(pool: &Pool) -> Result<String> {
    sqlx::query_scalar("SELECT version()")
        .fetch_one(pool)
        .await
        .map_err(Error::from_db)
}

/// Connects a pool to `url` (a `postgres://` URL; `?host=/path` selects a unix socket).
pub async fn connect(url: &str) -> Result<Pool> {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(16)
        .connect(url)
        .await
        .map_err(Error::from_db)
}

//! Reprise's runtime on PostgreSQL.
//!
//! Today this crate holds the schema ([`schema::migrate`]) and the `reprise` operator CLI.
//! It will hold (issue: "The engine on PostgreSQL"): the store — the only code in Reprise that
//! speaks SQL — the orchestrator host that claims ready runs and commits each step in one
//! transaction, the activity workers on named task queues, leases with fencing tokens,
//! timers, and the client.
//!
//! Every time the engine uses is the database's (`now()` of the transaction), never a
//! worker's clock.

mod error;
pub mod schema;

pub use error::{Error, Result};
pub use reprise_history as history;

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

//! A private PostgreSQL server for development and tests.
//!
//! [`DevPostgres`] runs the system's PostgreSQL binaries on a cluster kept in a git-ignored
//! folder of the project (`.reprise/postgres`). The server listens on a unix socket in that
//! folder only — never on a network address — so it cannot clash with another server on the
//! machine. Starting it when it already runs reuses it; [`DevPostgres::stop`] shuts it down
//! cleanly. As root (PostgreSQL refuses to run as root) the cluster is owned by, and the
//! server run as, the `postgres` user.
//!
//! Users with their own server set `DATABASE_URL` instead; see [`database_url_from_env`].

mod binaries;
mod error;
mod server;

pub use binaries::{PgBinaries, install_hint};
pub use error::{Error, Result};
pub use server::{DevPostgres, Started, StopMode};

/// The `DATABASE_URL` environment variable, if set and not empty.
pub fn database_url_from_env() -> Option<String> {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
}

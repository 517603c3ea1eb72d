//! The one error type of the dev-server crate.

use std::path::PathBuf;

/// What can go wrong while finding, starting or stopping the private PostgreSQL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No PostgreSQL server binaries were found.
    #[error("no PostgreSQL server binaries found (looked in: {searched}); {hint}")]
    NoBinaries {
        /// Where we looked.
        searched: String,
        /// How to install them.
        hint: String,
    },
    /// Running as root, but there is no `postgres` user to run the server as.
    #[error(
        "running as root, and PostgreSQL refuses to run as root, but there is no `postgres` user: install PostgreSQL from the system's packages (it creates one) or run as an ordinary user"
    )]
    NoPostgresUser,
    /// A PostgreSQL tool failed.
    #[error("`{command}` failed ({status}): {output}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed (and the server log's tail, for start failures).
        output: String,
    },
    /// A file-system operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What we were doing.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

//! The one error type of the engine.

/// SQLSTATE raised by the history guard trigger (migrations/0001_initial.sql).
pub(crate) const SQLSTATE_HISTORY_APPEND_ONLY: &str = "RH001";

/// What can go wrong in the engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A database operation failed. [`Error::is_retryable`] says whether to try again.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Applying the schema migrations failed.
    #[error("schema migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database refused to change or delete recorded history.
    #[error("history is append-only; the database refused the change: {message}")]
    HistoryIsAppendOnly {
        /// The database's message.
        message: String,
    },
    /// History data did not encode, decode or verify.
    #[error(transparent)]
    History(#[from] reprise_history::Error),
    /// The workflow code failed (unknown type, nondeterminism, panic, registry mistake).
    #[error(transparent)]
    Sdk(#[from] reprise_sdk::Error),
    /// A stored value is not what Reprise writes.
    #[error("{what} is corrupt: {reason}")]
    Corrupt {
        /// Which value.
        what: String,
        /// How it is wrong.
        reason: String,
    },
    /// The operation conflicts with the state of the database.
    #[error("conflict: {0}")]
    Conflict(String),
    /// No run of this workflow id exists.
    #[error("no workflow with id {workflow_id:?} exists")]
    UnknownWorkflow {
        /// The workflow id asked for.
        workflow_id: String,
    },
    /// No run has this id.
    #[error("no run with id {run_id} exists")]
    UnknownRun {
        /// The run id asked for.
        run_id: reprise_history::RunId,
    },
    /// No bulk operation has this id.
    #[error("no batch with id {batch_id} exists")]
    UnknownBatch {
        /// The batch id asked for.
        batch_id: uuid::Uuid,
    },
    /// The workflow's latest run is closed and takes no more input.
    #[error("workflow {workflow_id:?} is closed ({status}); it takes no more signals or updates")]
    WorkflowClosed {
        /// The workflow id.
        workflow_id: String,
        /// How it closed.
        status: reprise_history::RunState,
    },
    /// The id-reuse policy forbids starting this workflow id again.
    #[error(
        "workflow id {workflow_id:?} was used before (last run {last_status}) and the reuse policy forbids another run"
    )]
    WorkflowIdReused {
        /// The workflow id.
        workflow_id: String,
        /// How its last run ended.
        last_status: reprise_history::RunState,
    },
    /// The client was called outside a Tokio runtime (it spawns its listener there).
    #[error(
        "Reprise's client needs a Tokio runtime: call it from async code running on one (for example under #[tokio::main])"
    )]
    NoRuntime,
    /// A reset asked for a point that is not the end of a step, or a run that cannot be reset.
    #[error("cannot reset: {0}")]
    CannotReset(String),
    /// The workflow failed: its recorded failure, with the error type, the whole cause chain
    /// and the details.
    #[error("workflow {workflow_id:?} failed: {failure}")]
    WorkflowFailed {
        /// The workflow id.
        workflow_id: String,
        /// The run that failed.
        run_id: reprise_history::RunId,
        /// The failure as recorded.
        failure: Box<reprise_history::Failure>,
    },
    /// The workflow's run is parked: its code cannot go on (nondeterminism, a payload it
    /// cannot decode, an unknown type) and it waits for code that can.
    #[error(
        "workflow {workflow_id:?} (run {run_id}) is parked until code that can run it is deployed (or `reprise retry-parked`): {reason}"
    )]
    WorkflowParked {
        /// The workflow id.
        workflow_id: String,
        /// The parked run.
        run_id: reprise_history::RunId,
        /// Why it is parked.
        reason: String,
    },
    /// A payload read by the client does not decode as the type asked for (or its codec or
    /// key is not configured on the client).
    #[error("{what} does not decode as {rust_type}: {source}")]
    UndecodablePayload {
        /// Which payload: `result of workflow "order-1"`, ...
        what: String,
        /// The Rust type asked for.
        rust_type: &'static str,
        /// serde's or the codec's message.
        #[source]
        source: Box<reprise_history::Error>,
    },
    /// A wait given a deadline reached it; what was waited for goes on.
    #[error("gave up waiting for {what} after {after:?}")]
    Timeout {
        /// What was waited for.
        what: String,
        /// The deadline given.
        after: std::time::Duration,
    },
    /// A process was set up wrongly (a builder missing a database or a registry, an address
    /// it cannot listen on).
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// An argument the operation cannot take (a limit of zero, a rate with no burst, a name
    /// nobody serves, an empty fairness key).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A query got no answer from the workflow: it registers no such query, its input did
    /// not decode, its handler panicked, or the run could not be rebuilt to ask it.
    #[error("query {query:?} of workflow {workflow_id:?} was not answered: {reason}")]
    QueryFailed {
        /// The workflow id.
        workflow_id: String,
        /// The query's name.
        query: String,
        /// Why.
        reason: crate::store::QueryRefusal,
    },
    /// An update was refused before anything was recorded: no handler of its name, an
    /// input the handler's type does not decode, the validator's reason, or its panic.
    #[error("update {update:?} of workflow {workflow_id:?} was refused: {reason}")]
    UpdateRejected {
        /// The workflow id.
        workflow_id: String,
        /// The update's name.
        update: String,
        /// Why.
        reason: reprise_sdk::UpdateRefusal,
    },
    /// An update's handler returned an error (recorded in history).
    #[error("update {update:?} of workflow {workflow_id:?} failed: {failure}")]
    UpdateFailed {
        /// The workflow id.
        workflow_id: String,
        /// The update's name.
        update: String,
        /// The failure as recorded.
        failure: Box<reprise_history::Failure>,
    },
    /// The run closed before its handler finished the update (or before it took it).
    #[error(
        "update {update:?} of workflow {workflow_id:?} did not finish: the run closed ({status}) first"
    )]
    UpdateNotFinished {
        /// The workflow id.
        workflow_id: String,
        /// The update's name.
        update: String,
        /// How the run closed.
        status: reprise_history::RunState,
    },
    /// A schedule's spec or policies are invalid (a cron expression, a time zone, a range):
    /// nothing was stored.
    #[error(transparent)]
    InvalidSchedule(#[from] reprise_schedule::SpecError),
    /// A schedule with this id exists already.
    #[error("a schedule with id {schedule_id:?} exists already")]
    ScheduleExists {
        /// The id.
        schedule_id: String,
    },
    /// No schedule has this id.
    #[error("no schedule with id {schedule_id:?} exists")]
    UnknownSchedule {
        /// The id.
        schedule_id: String,
    },
    /// The workflow ended without a result of the expected kind.
    #[error("workflow {workflow_id:?} ended {status}: {detail}")]
    WorkflowEnded {
        /// The workflow id.
        workflow_id: String,
        /// How it ended.
        status: reprise_history::RunState,
        /// Its failure, or what else is known.
        detail: String,
    },
}

impl Error {
    /// Maps a database error, recognising Reprise's own SQLSTATEs.
    pub(crate) fn from_db(error: sqlx::Error) -> Error {
        if let Some(db) = error.as_database_error()
            && db.code().as_deref() == Some(SQLSTATE_HISTORY_APPEND_ONLY)
        {
            return Error::HistoryIsAppendOnly {
                message: db.message().to_string(),
            };
        }
        Error::Database(error)
    }

    /// Whether the database refused the operation for want of a privilege (SQLSTATE 42501),
    /// as it refuses a role what migration 0012 does not grant it, or a login a role it is not
    /// a member of.
    pub fn is_permission_denied(&self) -> bool {
        matches!(self, Error::Database(sqlx::Error::Database(db)) if db.code().as_deref() == Some("42501"))
    }

    /// Whether the operation may succeed if tried again: lost connections, serialization
    /// failures, deadlocks, a server shutting down or short of resources. Decided from the
    /// SQLSTATE class, never from message text.
    pub fn is_retryable(&self) -> bool {
        let Error::Database(error) = self else {
            return false;
        };
        match error {
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_) => true,
            sqlx::Error::Database(db) => db.code().is_some_and(|code| sqlstate_is_retryable(&code)),
            _ => false,
        }
    }

    /// Whether the connection was dead before the server ran anything on it: the server ended
    /// the session (it answers the next statement with `FATAL` admin or crash shutdown, having
    /// rolled back whatever was open), or the socket was gone when the statement was written.
    /// Such an operation can be run again on another connection (see
    /// `store::on_live_connection!` for the one window where that is not certain).
    pub(crate) fn is_dead_connection(&self) -> bool {
        use std::io::ErrorKind;
        match self {
            Error::Database(sqlx::Error::Database(db)) => {
                matches!(db.code().as_deref(), Some("57P01" | "57P02"))
            }
            Error::Database(sqlx::Error::Io(io)) => matches!(
                io.kind(),
                ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::NotConnected
            ),
            _ => false,
        }
    }
}

/// SQLSTATEs after which the same statement may succeed.
fn sqlstate_is_retryable(code: &str) -> bool {
    matches!(
        code,
        // serialization_failure, deadlock_detected
        "40001" | "40P01"
        // admin_shutdown, crash_shutdown, cannot_connect_now
        | "57P01" | "57P02" | "57P03"
        // lock_not_available
        | "55P03"
    ) || code.starts_with("08") // connection exceptions
        || code.starts_with("53") // insufficient resources
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_sqlstates() {
        for code in ["40001", "40P01", "57P01", "08006", "53300", "55P03"] {
            assert!(sqlstate_is_retryable(code), "{code}");
        }
        for code in ["23505", "42P01", "22P02", "RH001"] {
            assert!(!sqlstate_is_retryable(code), "{code}");
        }
    }
}

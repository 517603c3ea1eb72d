//! The sdk's errors: `Error` for the executor and registry, and the errors workflow and
//! activity code see and return.

use std::fmt;

use reprise_history::{Failure, FailureKind, Payload, Seq};

use crate::nondeterminism::Nondeterminism;

/// What can stop the executor or the registry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The workflow's code does not match its history.
    #[error(transparent)]
    Nondeterminism(Box<Nondeterminism>),
    /// A recorded payload does not decode as the type the code asks for (or its codec or key
    /// is not configured): the run waits for code that can read it. Not a nondeterminism.
    #[error(transparent)]
    UndecodablePayload(Box<UndecodablePayload>),
    /// Workflow code panicked; the step is void and the execution must be discarded.
    #[error("workflow code panicked while applying seq {seq}: {message}")]
    WorkflowPanicked {
        /// The input being applied.
        seq: Seq,
        /// The panic message.
        message: String,
    },
    /// Workflow code called `patched` with an id that is not a valid patch id.
    #[error(
        "workflow code asked for patch {id:?}, which is not a valid patch id ({reason}) at {location}"
    )]
    InvalidPatchId {
        /// The id given, shortened when long.
        id: String,
        /// Which rule it broke.
        reason: String,
        /// Where the workflow code called `patched`.
        location: crate::SourceLocation,
    },
    /// No workflow of this type is registered.
    #[error(
        "no workflow type {name:?} is registered (registered: {known}); register it with RegistryBuilder::workflow"
    )]
    UnknownWorkflowType {
        /// The type asked for.
        name: String,
        /// The types that are registered.
        known: String,
    },
    /// No activity of this type is registered.
    #[error(
        "no activity type {name:?} is registered (registered: {known}); register it with RegistryBuilder::activity"
    )]
    UnknownActivityType {
        /// The type asked for.
        name: String,
        /// The types that are registered.
        known: String,
    },
    /// The same name was registered twice.
    #[error("{kind} {name:?} is registered twice")]
    DuplicateRegistration {
        /// `workflow` or `activity`.
        kind: &'static str,
        /// The name.
        name: String,
    },
    /// An activity's cache policy is not one a worker can keep.
    #[error("the cache of activity {activity:?}: {reason}")]
    InvalidCachePolicy {
        /// The activity type.
        activity: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The run was started under replay rules this build does not know (a newer build wrote
    /// it): replaying it by older rules could accept what those rules refuse, so the run waits
    /// for a build that knows them.
    #[error(
        "the run was recorded under replay rules this build does not know ({unknown:?}); run it with the build that started it or a newer one"
    )]
    UnknownReplayRules {
        /// The rules not known here.
        unknown: reprise_history::ReplayRules,
    },
    /// The history handed to the executor is not one it can run.
    #[error("history cannot be executed: {reason}")]
    BadHistory {
        /// Why.
        reason: String,
    },
    /// This execution failed at an earlier step and was discarded: replay the run from history.
    #[error("this execution failed earlier and was discarded; replay the run from its history")]
    Discarded,
    /// The run has closed; it takes no more inputs.
    #[error("the run is closed and takes no more inputs")]
    RunClosed,
    /// A history value failed (invalid name, payload that does not encode, ...).
    #[error(transparent)]
    History(#[from] reprise_history::Error),
}

/// A recorded payload that the workflow's code cannot decode.
#[derive(Debug, thiserror::Error)]
#[error("payload at seq {seq} ({holder}) does not decode as {rust_type}: {source}")]
pub struct UndecodablePayload {
    /// The seq of the event that holds the payload.
    pub seq: Seq,
    /// Which payload of that event: `result of activity "quote"`, `signal "approve"`, ...
    pub holder: String,
    /// The Rust type the code asked for.
    pub rust_type: &'static str,
    /// serde's message, or the codec's (a codec or key that is not configured).
    #[source]
    pub source: reprise_history::Error,
}

impl From<UndecodablePayload> for Error {
    fn from(e: UndecodablePayload) -> Self {
        Error::UndecodablePayload(Box::new(e))
    }
}

impl From<Nondeterminism> for Error {
    fn from(n: Nondeterminism) -> Self {
        Error::Nondeterminism(Box::new(n))
    }
}

/// How a workflow ends other than by returning its output.
#[derive(Debug)]
#[non_exhaustive]
pub enum WorkflowError {
    /// The workflow failed.
    Failed(Failure),
    /// The workflow acknowledged a cancel request and stopped.
    Cancelled {
        /// Details for whoever asked.
        details: Option<Payload>,
    },
    /// The workflow continues as a new run (see `WorkflowContext::continue_as_new`).
    ContinueAsNew(ContinueAsNew),
}

/// The next run of a workflow that continues as new.
#[derive(Debug)]
pub struct ContinueAsNew {
    pub(crate) input: Payload,
}

impl WorkflowError {
    /// A failure with an error type and a message, not retryable.
    pub fn failed(error_type: impl Into<String>, message: impl Into<String>) -> WorkflowError {
        WorkflowError::Failed(Failure::application(error_type, message).retryable(false))
    }

    /// A failure from any Rust error, keeping its source chain.
    pub fn from_error<E: std::error::Error + 'static>(error: &E) -> WorkflowError {
        let failure = Failure::application(short_type_name::<E>(), error.to_string())
            .retryable(false)
            .with_sources(error);
        WorkflowError::Failed(failure)
    }
}

impl fmt::Display for WorkflowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkflowError::Failed(failure) => write!(f, "workflow failed: {failure}"),
            WorkflowError::Cancelled { .. } => f.write_str("workflow cancelled"),
            WorkflowError::ContinueAsNew(_) => f.write_str("workflow continues as new"),
        }
    }
}

impl std::error::Error for WorkflowError {}

/// The last segment of a type's path, for error types recorded in failures.
pub(crate) fn short_type_name<T: ?Sized>() -> &'static str {
    let full = std::any::type_name::<T>();
    let base = full.split('<').next().unwrap_or(full);
    base.rsplit("::").next().unwrap_or(base)
}

/// An operation was cancelled because the workflow was asked to cancel.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cancelled: the workflow was asked to cancel")]
pub struct Cancelled;

impl From<Cancelled> for WorkflowError {
    fn from(_: Cancelled) -> Self {
        WorkflowError::Cancelled { details: None }
    }
}

/// Why an activity or child workflow did not return a result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperationEnd {
    /// It failed (no retries left, or not retryable).
    Failed,
    /// It ran out of time.
    TimedOut,
    /// It was cancelled.
    Cancelled,
}

/// What a workflow sees when an activity or child workflow did not return a result.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{what} {name:?} {end:?} after {attempts} attempt(s): {failure}")]
pub struct OperationFailed {
    /// `activity` or `child workflow`.
    pub what: &'static str,
    /// The activity or workflow type.
    pub name: String,
    /// How it ended.
    pub end: OperationEnd,
    /// The recorded failure (boxed: errors stay small on the happy path).
    pub failure: Box<Failure>,
    /// How many attempts ran (1 for child workflows).
    pub attempts: u32,
}

impl OperationFailed {
    pub(crate) fn cancelled(what: &'static str, name: &str) -> OperationFailed {
        OperationFailed {
            what,
            name: name.to_string(),
            end: OperationEnd::Cancelled,
            failure: Box::new(Failure::of_kind(
                FailureKind::Cancelled,
                "the workflow was asked to cancel",
            )),
            attempts: 0,
        }
    }
}

impl From<OperationFailed> for WorkflowError {
    /// The workflow fails because the operation did: its failure becomes the first cause,
    /// followed by every cause it had, and its details are kept. The message says only what
    /// the workflow saw, so no cause is repeated in it.
    fn from(e: OperationFailed) -> Self {
        if e.end == OperationEnd::Cancelled {
            return WorkflowError::Cancelled { details: None };
        }
        let error_type = match e.what {
            "activity" => "ActivityFailed",
            _ => "ChildWorkflowFailed",
        };
        let end = match e.end {
            OperationEnd::Failed => "failed",
            OperationEnd::TimedOut => "timed out",
            OperationEnd::Cancelled => "was cancelled",
        };
        let inner = *e.failure;
        let mut failure = Failure::application(
            error_type,
            format!(
                "{} {:?} {end} after {} attempt(s)",
                e.what, e.name, e.attempts
            ),
        )
        .retryable(false)
        .caused_by(inner.error_type, inner.message);
        failure.causes.extend(inner.causes);
        failure.details = inner.details;
        WorkflowError::Failed(failure)
    }
}

/// A signal could not be received.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignalError {
    /// The workflow was asked to cancel while waiting.
    #[error(transparent)]
    Cancelled(#[from] Cancelled),
    /// The signal's name breaks the naming rules, so no signal can have it.
    #[error("invalid signal name: {0}")]
    InvalidName(String),
}

impl From<SignalError> for WorkflowError {
    fn from(e: SignalError) -> Self {
        match e {
            SignalError::Cancelled(c) => c.into(),
            other => WorkflowError::from_error(&other),
        }
    }
}

/// What an activity returns when it does not succeed.
#[derive(Debug)]
pub struct ActivityError {
    failure: Failure,
}

impl ActivityError {
    /// A failure that a retry may fix.
    pub fn retryable(error_type: impl Into<String>, message: impl Into<String>) -> ActivityError {
        ActivityError {
            failure: Failure::application(error_type, message),
        }
    }

    /// A failure no retry will fix: the activity fails at once.
    pub fn non_retryable(
        error_type: impl Into<String>,
        message: impl Into<String>,
    ) -> ActivityError {
        ActivityError {
            failure: Failure::application(error_type, message).retryable(false),
        }
    }

    /// A failure built by hand.
    pub fn from_failure(failure: Failure) -> ActivityError {
        ActivityError { failure }
    }

    /// The failure as it will be recorded.
    pub fn failure(&self) -> &Failure {
        &self.failure
    }

    /// Takes the failure out.
    pub fn into_failure(self) -> Failure {
        self.failure
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for ActivityError {
    /// Any Rust error is a retryable failure named by its type, with its source chain.
    fn from(error: E) -> Self {
        ActivityError {
            failure: Failure::application(short_type_name::<E>(), error.to_string())
                .with_sources(&error),
        }
    }
}

impl fmt::Display for ActivityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.failure.fmt(f)
    }
}

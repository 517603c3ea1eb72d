//! The testkit's error type.

/// What can go wrong in a [`crate::TestEnv`] or a determinism check.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The workflow code failed (nondeterminism, panic, unknown type or activity).
    #[error(transparent)]
    Sdk(#[from] reprise_sdk::Error),
    /// A value did not encode or decode.
    #[error(transparent)]
    History(#[from] reprise_history::Error),
    /// A query got no answer from the workflow (unknown name, undecodable input, a panic).
    #[error(transparent)]
    Query(#[from] reprise_sdk::QueryError),
    /// An update was refused before anything was recorded.
    #[error(transparent)]
    UpdateRejected(reprise_sdk::UpdateRefusal),
    /// An update's handler returned an error.
    #[error("update {update:?} failed: {failure}")]
    UpdateFailed {
        /// The update's name.
        update: String,
        /// The recorded failure.
        failure: Box<reprise_history::Failure>,
    },
    /// An update's handler has not returned: it waits for something the test does not
    /// provide, or the run closed first.
    #[error("update {update:?} of workflow {workflow_id:?} has not finished")]
    UpdateNotFinished {
        /// The workflow.
        workflow_id: String,
        /// The update's name.
        update: String,
    },
    /// A schedule's spec is invalid.
    #[error(transparent)]
    InvalidSchedule(#[from] reprise_schedule::SpecError),
    /// A schedule of this id exists already.
    #[error("a schedule with id {0:?} exists already")]
    ScheduleExists(String),
    /// No schedule has this id.
    #[error("no schedule with id {0:?} exists")]
    UnknownSchedule(String),
    /// An option the environment cannot take (a zero timeout).
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// No workflow with this id was started.
    #[error("no workflow with id {0:?} was started")]
    UnknownWorkflow(String),
    /// A run of this workflow id is open.
    #[error("workflow {0:?} is already running")]
    AlreadyRunning(String),
    /// The workflow is closed.
    #[error("workflow {0:?} is closed")]
    Closed(String),
    /// The workflow waits for something that nothing in the test will send (a signal?).
    #[error(
        "workflow {workflow_id:?} is still waiting (last event: {last_event}); it needs a signal, a cancel or an activity the test does not provide"
    )]
    Waiting {
        /// The workflow.
        workflow_id: String,
        /// Its last event.
        last_event: String,
    },
    /// The workflow failed: its failure as recorded, with its whole cause chain.
    #[error("workflow {workflow_id:?} failed: {failure}")]
    Failed {
        /// The workflow.
        workflow_id: String,
        /// The recorded failure.
        failure: Box<reprise_history::Failure>,
    },
    /// The workflow's result does not decode as the type asked for.
    #[error("the result of workflow {workflow_id:?} does not decode as {rust_type}: {source}")]
    UndecodableResult {
        /// The workflow.
        workflow_id: String,
        /// The type asked for.
        rust_type: &'static str,
        /// serde's or the codec's message.
        #[source]
        source: Box<reprise_history::Error>,
    },
    /// The workflow ended other than by completing or failing.
    #[error("workflow {workflow_id:?} ended: {status}")]
    Ended {
        /// The workflow.
        workflow_id: String,
        /// How.
        status: String,
    },
    /// A history recorded under one completion order does not replay.
    #[error("with completion order seed {seed}, the history does not replay: {source}")]
    NotDeterministic {
        /// The seed of the completion order that produced the history.
        seed: u64,
        /// Why it does not replay.
        #[source]
        source: reprise_sdk::Error,
    },
}

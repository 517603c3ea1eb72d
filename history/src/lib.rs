//! Reprise's event history: what a run records, how it is encoded, and how its integrity is
//! checked. Pure data — no I/O, no clock, no runtime — so every other crate, and every
//! test, speaks in these types.
//!
//! - [`Event`] / [`EventKind`]: every input and decision of a run (see DESIGN.md).
//! - [`Payload`] and [`Failure`]: user data and structured errors inside events;
//!   [`DataConverter`] and [`PayloadCodec`]: typed values to payloads (JSON) and the codec chain.
//! - [`chain`]: the blake3 hash chain over encoded events.
//! - [`RecordedHistory`]: the exported-history file, binary and JSON.
//! - [`validate`]: the structural rules of a history.
//! - [`timeline`]: a history as readable lines, payloads decoded.
//!
//! ```
//! use reprise_history::{EventKind, HistoryBuilder, Limits, Payload, RecordedHistory, WorkflowCompleted};
//!
//! let input = Payload::encode("world", &Limits::DEFAULT)?;
//! let mut history = HistoryBuilder::started("greet", "greet-1", input)?;
//! let result = Payload::encode("hello, world", &Limits::DEFAULT)?;
//! history.push(EventKind::WorkflowCompleted(WorkflowCompleted { result }));
//! let history = history.build()?;
//!
//! let bytes = history.to_bytes()?;
//! let back = RecordedHistory::from_bytes(&bytes, &Limits::DEFAULT)?;
//! assert_eq!(back, history);
//! # Ok::<(), reprise_history::Error>(())
//! ```

mod builder;
pub mod chain;
mod codec;
mod error;
mod event;
mod failure;
mod file;
mod ids;
mod limits;
mod options;
mod payload;
mod priority;
#[cfg(test)]
mod proptests;
mod replay_rules;
mod status;
mod stored_kind;
mod stored_options;
#[cfg(any(test, feature = "proptest"))]
pub mod strategies;
mod time;
pub mod timeline;
mod trace;
pub mod validate;

pub use builder::HistoryBuilder;
pub use chain::{ChainHash, ChainKey};
pub use codec::StoredValue;
pub use error::{Error, Result};
pub use event::{
    ActivityCancelRequested, ActivityCancelled, ActivityCompleted, ActivityFailed,
    ActivityScheduled, ActivityTimedOut, CancelRequested, ChildWorkflowCancelRequested,
    ChildWorkflowCompleted, ChildWorkflowFailed, ChildWorkflowStarted, Event, EventClass,
    EventKind, LocalActivityBackoff, LocalActivityScheduled, Marker, SignalReceived,
    TimerCancelled, TimerFired, TimerStarted, UpdateAccepted, UpdateCompleted, UpdateOutcome,
    WorkflowCancelled, WorkflowCompleted, WorkflowContinuedAsNew, WorkflowFailed, WorkflowStarted,
    WorkflowTerminated, WorkflowTimedOut,
};
pub use failure::{Failure, FailureCause, FailureKind};
pub use file::{FILE_VERSION, MAGIC, RecordedHistory};
pub use ids::{
    ActivityType, PatchId, RunId, ScheduleId, Seq, SignalName, TaskQueue, UpdateId, UpdateName,
    WorkflowId, WorkflowType,
};
pub use limits::Limits;
pub use options::{
    ActivityOptions, ParentClosePolicy, ParentRun, RetryPolicy, RunOrigin, TimeoutKind,
    WorkflowTimeout, workflow_terms_problem,
};
pub use payload::{CodecError, DataConverter, Encoded, Payload, PayloadCodec, PayloadFormat};
pub use priority::Priority;
pub use replay_rules::ReplayRules;
pub use status::RunState;
pub use time::Timestamp;
pub use trace::{MAX_TRACESTATE_LEN, TraceContext};

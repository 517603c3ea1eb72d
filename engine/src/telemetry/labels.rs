//! The labels of Reprise's metrics: the label values (paths, park reasons, attempt outcomes)
//! and the label sets each family is keyed by. Every label is bounded by the code (types,
//! queues, outcomes), never by the data.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use reprise_history::RunState;

/// How a step was taken.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum StepPath {
    /// In a claimed batch.
    batch,
    /// On a notification's word, in one statement.
    direct,
}

/// Why a run was parked, as a label.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum ParkKind {
    /// Its code does not match its history.
    nondeterminism,
    /// No process that claimed it registers its type.
    unknown_type,
    /// A payload it holds does not decode (type, codec or key).
    undecodable_payload,
    /// Its code panicked.
    panic,
    /// Anything else (a history that cannot be read, an effect that cannot be carried out).
    other,
}

impl ParkKind {
    /// The kind of a parked reason, from the messages the engine writes.
    pub fn of(reason: &str) -> ParkKind {
        if reason.starts_with("nondeterminism") {
            ParkKind::nondeterminism
        } else if reason.starts_with("unknown workflow type") {
            ParkKind::unknown_type
        } else if reason.starts_with("payload at seq") {
            ParkKind::undecodable_payload
        } else if reason.starts_with("workflow code panicked") {
            ParkKind::panic
        } else {
            ParkKind::other
        }
    }

    /// Every kind.
    pub const ALL: [ParkKind; 5] = [
        ParkKind::nondeterminism,
        ParkKind::unknown_type,
        ParkKind::undecodable_payload,
        ParkKind::panic,
        ParkKind::other,
    ];
}

/// How an activity attempt ended.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum AttemptOutcome {
    /// It returned a result.
    completed,
    /// It failed and will be retried.
    retried,
    /// It failed for good.
    failed,
    /// Its lease was lost, or it ran past its start-to-close timeout: the outcome was
    /// refused.
    fenced,
    /// It took the result the activity's cache held for its input: the code did not run.
    cached,
}

impl AttemptOutcome {
    /// Every outcome, in declaration order (`outcome as usize` indexes it).
    pub(super) const ALL: [AttemptOutcome; 5] = [
        AttemptOutcome::completed,
        AttemptOutcome::retried,
        AttemptOutcome::failed,
        AttemptOutcome::fenced,
        AttemptOutcome::cached,
    ];
}

/// How a local activity's attempt ended (whether a failed one is retried is its policy's).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum LocalAttemptOutcome {
    /// It returned a result.
    completed,
    /// It returned an error or panicked.
    failed,
    /// It ran past its time.
    timed_out,
}

/// The statuses a run closes with; a workflow type has a `workflows_closed` series for each.
pub(super) const CLOSED: [RunState; 6] = [
    RunState::Completed,
    RunState::Failed,
    RunState::Cancelled,
    RunState::Terminated,
    RunState::ContinuedAsNew,
    RunState::TimedOut,
];

/// Where `status` is in [`CLOSED`]; `None` for a run still open.
pub(super) fn closed_index(status: RunState) -> Option<usize> {
    match status {
        RunState::Running => None,
        RunState::Completed => Some(0),
        RunState::Failed => Some(1),
        RunState::Cancelled => Some(2),
        RunState::Terminated => Some(3),
        RunState::ContinuedAsNew => Some(4),
        RunState::TimedOut => Some(5),
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct WorkflowLabels {
    pub(super) workflow_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ClosedLabels {
    pub(super) workflow_type: String,
    pub(super) status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct PathLabels {
    pub(super) path: StepPath,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct CacheLabels {
    pub(super) result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct QueryLabels {
    pub(super) source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ParkLabels {
    pub(super) reason: ParkKind,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct AttemptLabels {
    pub(super) activity_type: String,
    pub(super) task_queue: String,
    pub(super) outcome: AttemptOutcome,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ActivityLabels {
    pub(super) activity_type: String,
    pub(super) task_queue: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct LocalAttemptLabels {
    pub(super) activity_type: String,
    pub(super) outcome: LocalAttemptOutcome,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct LocalActivityLabels {
    pub(super) activity_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct TimeoutLabels {
    pub(super) activity_type: String,
    pub(super) task_queue: String,
    pub(super) kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct NondeterminismLabels {
    pub(super) workflow_type: String,
    pub(super) code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct QueueLabels {
    pub(super) task_queue: String,
}

/// A limit's scope: `queue` or `activity_type`, and the queue's or type's name (bounded by
/// the limits operators set).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct LimitLabels {
    pub(super) scope: &'static str,
    pub(super) name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ChannelLabels {
    pub(super) channel: &'static str,
}

//! The stored names of a run's status and of a child's parent-close policy: one mapping each,
//! refusing what it does not know (a name read back that no variant has is corruption or a
//! typo, never a default).

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::event::EventKind;
use crate::options::ParentClosePolicy;

/// Where a run is in its life, as stored in `reprise.runs.status` and shown to people.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RunState {
    /// Open: it waits for inputs or is being stepped.
    Running,
    /// Its code returned a result.
    Completed,
    /// Its code returned an error.
    Failed,
    /// Its code acknowledged a cancel request.
    Cancelled,
    /// An operator (or its parent's close) ended it.
    Terminated,
    /// It continued as a new run of the same workflow id.
    ContinuedAsNew,
    /// It reached its run or execution deadline and the engine closed it.
    TimedOut,
}

impl RunState {
    /// Every status, in the order people read them.
    pub const ALL: [RunState; 7] = [
        RunState::Running,
        RunState::Completed,
        RunState::Failed,
        RunState::Cancelled,
        RunState::Terminated,
        RunState::ContinuedAsNew,
        RunState::TimedOut,
    ];

    /// The stored name (`running`, `continued_as_new`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Completed => "completed",
            RunState::Failed => "failed",
            RunState::Cancelled => "cancelled",
            RunState::Terminated => "terminated",
            RunState::ContinuedAsNew => "continued_as_new",
            RunState::TimedOut => "timed_out",
        }
    }

    /// Reads a stored name; anything else is an [`Error::UnknownValue`] listing the valid ones.
    pub fn parse(name: &str) -> Result<RunState> {
        RunState::ALL
            .into_iter()
            .find(|s| s.as_str() == name)
            .ok_or_else(|| unknown("run status", name, RunState::ALL.map(RunState::as_str)))
    }

    /// Whether the run is still open.
    pub fn is_open(self) -> bool {
        self == RunState::Running
    }

    /// The status a closing event leaves its run in; `None` for any other event.
    pub fn closed_by(kind: &EventKind) -> Option<RunState> {
        match kind {
            EventKind::WorkflowCompleted(_) => Some(RunState::Completed),
            EventKind::WorkflowFailed(_) => Some(RunState::Failed),
            EventKind::WorkflowCancelled(_) => Some(RunState::Cancelled),
            EventKind::WorkflowTerminated(_) => Some(RunState::Terminated),
            EventKind::WorkflowContinuedAsNew(_) => Some(RunState::ContinuedAsNew),
            EventKind::WorkflowTimedOut(_) => Some(RunState::TimedOut),
            EventKind::WorkflowStarted(_)
            | EventKind::ActivityScheduled(_)
            | EventKind::ActivityCompleted(_)
            | EventKind::ActivityFailed(_)
            | EventKind::ActivityTimedOut(_)
            | EventKind::ActivityCancelRequested(_)
            | EventKind::ActivityCancelled(_)
            | EventKind::TimerStarted(_)
            | EventKind::TimerFired(_)
            | EventKind::TimerCancelled(_)
            | EventKind::SignalReceived(_)
            | EventKind::ChildWorkflowStarted(_)
            | EventKind::ChildWorkflowCompleted(_)
            | EventKind::ChildWorkflowFailed(_)
            | EventKind::ChildWorkflowCancelRequested(_)
            | EventKind::CancelRequested(_)
            | EventKind::MarkerRecorded(_)
            | EventKind::LocalActivityScheduled(_)
            | EventKind::LocalActivityBackoff(_)
            | EventKind::UpdateAccepted(_)
            | EventKind::UpdateCompleted(_) => None,
        }
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunState {
    type Err = Error;

    fn from_str(s: &str) -> Result<RunState> {
        RunState::parse(s)
    }
}

impl ParentClosePolicy {
    /// Every policy.
    pub const ALL: [ParentClosePolicy; 3] = [
        ParentClosePolicy::Terminate,
        ParentClosePolicy::RequestCancel,
        ParentClosePolicy::Abandon,
    ];

    /// The stored name (`terminate`, `request_cancel`, `abandon`).
    pub fn as_str(self) -> &'static str {
        match self {
            ParentClosePolicy::Terminate => "terminate",
            ParentClosePolicy::RequestCancel => "request_cancel",
            ParentClosePolicy::Abandon => "abandon",
        }
    }

    /// Reads a stored name; anything else is an [`Error::UnknownValue`] listing the valid ones.
    pub fn parse(name: &str) -> Result<ParentClosePolicy> {
        ParentClosePolicy::ALL
            .into_iter()
            .find(|p| p.as_str() == name)
            .ok_or_else(|| {
                unknown(
                    "parent-close policy",
                    name,
                    ParentClosePolicy::ALL.map(ParentClosePolicy::as_str),
                )
            })
    }
}

impl fmt::Display for ParentClosePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ParentClosePolicy {
    type Err = Error;

    fn from_str(s: &str) -> Result<ParentClosePolicy> {
        ParentClosePolicy::parse(s)
    }
}

fn unknown<const N: usize>(what: &'static str, value: &str, valid: [&str; N]) -> Error {
    Error::UnknownValue {
        what,
        value: value.chars().take(64).collect(),
        expected: valid.join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_and_policy_reads_back_from_its_name() {
        for state in RunState::ALL {
            assert_eq!(RunState::parse(state.as_str()).unwrap(), state);
            assert_eq!(state.to_string().parse::<RunState>().unwrap(), state);
        }
        for policy in ParentClosePolicy::ALL {
            assert_eq!(ParentClosePolicy::parse(policy.as_str()).unwrap(), policy);
        }
    }

    #[test]
    fn an_unknown_name_is_an_error_that_lists_the_valid_ones() {
        let error = RunState::parse("runing").unwrap_err();
        let message = error.to_string();
        assert!(message.contains("\"runing\""), "{message}");
        assert!(message.contains("running, completed"), "{message}");
        assert!(ParentClosePolicy::parse("").is_err());
        assert!(ParentClosePolicy::parse("Terminate").is_err());
    }
}

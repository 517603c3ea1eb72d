//! `Nondeterminism`: the workflow's code and its recorded history disagree.
//!
//! Each kind has a stable code (`ND01`...) that tools and docs can refer to; codes are never
//! reused.

use std::fmt;
use std::panic::Location;

use reprise_history::{EventKind, Marker, Seq};

/// Where in workflow source code a decision was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceLocation {
    /// Source file.
    pub file: &'static str,
    /// Line, from 1.
    pub line: u32,
    /// Column, from 1.
    pub column: u32,
}

impl From<&'static Location<'static>> for SourceLocation {
    fn from(l: &'static Location<'static>) -> Self {
        SourceLocation {
            file: l.file(),
            line: l.line(),
            column: l.column(),
        }
    }
}

impl fmt::Display for SourceLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// Which way the code and the history disagree.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NondeterminismKind {
    /// ND01: the code made a different decision than the one recorded at this seq.
    DecisionMismatch {
        /// The recorded decision.
        recorded: String,
        /// What the code did.
        made: String,
    },
    /// ND02: history records a decision here that the code no longer makes.
    MissingDecision {
        /// The recorded decision.
        recorded: String,
    },
    /// ND03: the code made a decision where history records none.
    ExtraDecision {
        /// What the code did.
        made: String,
    },
    /// ND04: history holds an input for something the code never started.
    UnexpectedInput {
        /// The input.
        input: String,
    },
    /// ND05: something woke the workflow that was not a Reprise operation (a tokio timer, a
    /// channel, I/O) — replay cannot reproduce that.
    ForeignWake,
    /// ND06: the workflow waits on a future that Reprise does not drive, and on nothing else.
    AwaitsForeignFuture,
    /// ND07: the workflow used a tokio timer or I/O, which would wake it from outside Reprise
    /// later; found as it is created, in that step (see `fence.rs`).
    TokioDriver {
        /// What it used: `timer`, `I/O`, or `runtime` (anything else needing one).
        driver: &'static str,
    },
    /// ND08: the code gives a recorded decision another input than history holds (replay rule
    /// `COMPARE_INPUTS`). Replay keeps the recorded input, which is what ran.
    InputChanged {
        /// The recorded decision.
        recorded: String,
        /// Where the two inputs first differ (`$.items[2].sku`); `None` when a codec protects
        /// the payloads.
        path: Option<String>,
    },
}

impl NondeterminismKind {
    /// The stable code of this kind.
    pub fn code(&self) -> &'static str {
        match self {
            NondeterminismKind::DecisionMismatch { .. } => "ND01",
            NondeterminismKind::MissingDecision { .. } => "ND02",
            NondeterminismKind::ExtraDecision { .. } => "ND03",
            NondeterminismKind::UnexpectedInput { .. } => "ND04",
            NondeterminismKind::ForeignWake => "ND05",
            NondeterminismKind::AwaitsForeignFuture => "ND06",
            NondeterminismKind::TokioDriver { .. } => "ND07",
            NondeterminismKind::InputChanged { .. } => "ND08",
        }
    }
}

/// The workflow's code does not reproduce its history.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Nondeterminism {
    /// The history event where they disagree (for extra decisions: the seq the code's
    /// decision would have had).
    pub seq: Seq,
    /// How they disagree.
    pub kind: NondeterminismKind,
    /// The workflow source line that made the disagreeing decision, when there is one.
    pub location: Option<SourceLocation>,
}

const NOT_REPRISE_HINT: &str = "workflows may await only Reprise operations: use ctx.sleep() \
for time, ctx.signal() for messages from outside, and activities for I/O";

impl fmt::Display for Nondeterminism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "nondeterminism {} at seq {}: ",
            self.kind.code(),
            self.seq
        )?;
        match &self.kind {
            NondeterminismKind::DecisionMismatch { recorded, made } => {
                write!(f, "history has {recorded}, but the code made {made}")?
            }
            NondeterminismKind::MissingDecision { recorded } => write!(
                f,
                "history has {recorded}, but the code no longer makes this decision"
            )?,
            NondeterminismKind::ExtraDecision { made } => {
                write!(f, "the code made {made}, but history has no decision here")?
            }
            NondeterminismKind::UnexpectedInput { input } => write!(
                f,
                "history has {input} for something the code never started"
            )?,
            NondeterminismKind::ForeignWake => write!(
                f,
                "the workflow was woken by something other than Reprise; {NOT_REPRISE_HINT}"
            )?,
            NondeterminismKind::AwaitsForeignFuture => write!(
                f,
                "the workflow waits only on futures Reprise does not drive (a tokio timer, channel or I/O?); {NOT_REPRISE_HINT}"
            )?,
            NondeterminismKind::InputChanged { recorded, path } => {
                write!(
                    f,
                    "history has {recorded}, but the code gives it another input"
                )?;
                if let Some(path) = path {
                    write!(f, " (first different at {path})")?;
                }
                write!(
                    f,
                    "; an input drawn from HashMap or HashSet order, the clock, randomness or \
                     global state changes on replay — sort it, or take it from ctx (ctx.now(), \
                     ctx.random_u64(), ctx.side_effect()); the recorded input is kept"
                )?
            }
            NondeterminismKind::TokioDriver { driver } => write!(
                f,
                "the workflow used a tokio {driver}, which would wake it from outside Reprise where no replay can follow; {NOT_REPRISE_HINT}"
            )?,
        }
        if let Some(location) = &self.location {
            write!(f, " (workflow code at {location})")?;
        }
        Ok(())
    }
}

/// A one-line description of a decision, for messages: kind and what identifies it.
pub(crate) fn describe(kind: &EventKind) -> String {
    match kind {
        EventKind::ActivityScheduled(e) => {
            format!("ActivityScheduled({:?})", e.activity_type.as_str())
        }
        EventKind::ActivityCancelRequested(e) => {
            format!("ActivityCancelRequested(seq {})", e.scheduled)
        }
        EventKind::LocalActivityScheduled(e) => {
            format!("LocalActivityScheduled({:?})", e.activity_type.as_str())
        }
        EventKind::LocalActivityBackoff(e) => {
            format!("LocalActivityBackoff(seq {})", e.scheduled)
        }
        EventKind::TimerStarted(e) => format!("TimerStarted({:?})", e.duration),
        EventKind::TimerCancelled(e) => format!("TimerCancelled(seq {})", e.started),
        EventKind::ChildWorkflowStarted(e) => format!(
            "ChildWorkflowStarted({:?}, id {:?})",
            e.workflow_type.as_str(),
            e.workflow_id.as_str()
        ),
        EventKind::ChildWorkflowCancelRequested(e) => {
            format!("ChildWorkflowCancelRequested(seq {})", e.started)
        }
        EventKind::MarkerRecorded(Marker::Patch { patch_id }) => {
            format!("MarkerRecorded(patch {:?})", patch_id.as_str())
        }
        EventKind::MarkerRecorded(Marker::SideEffect { .. }) => {
            "MarkerRecorded(side effect)".to_string()
        }
        EventKind::ActivityCompleted(e) => format!("ActivityCompleted(seq {})", e.scheduled),
        EventKind::ActivityFailed(e) => format!("ActivityFailed(seq {})", e.scheduled),
        EventKind::ActivityTimedOut(e) => format!("ActivityTimedOut(seq {})", e.scheduled),
        EventKind::ActivityCancelled(e) => format!("ActivityCancelled(seq {})", e.scheduled),
        EventKind::TimerFired(e) => format!("TimerFired(seq {})", e.started),
        EventKind::ChildWorkflowCompleted(e) => {
            format!("ChildWorkflowCompleted(seq {})", e.started)
        }
        EventKind::ChildWorkflowFailed(e) => format!("ChildWorkflowFailed(seq {})", e.started),
        EventKind::SignalReceived(e) => format!("SignalReceived({:?})", e.name.as_str()),
        EventKind::UpdateAccepted(e) => format!("UpdateAccepted({:?})", e.name.as_str()),
        EventKind::UpdateCompleted(e) => format!("UpdateCompleted(seq {})", e.accepted),
        other => other.name().to_string(),
    }
}

/// Whether a decision the code made is the recorded one. Only what identifies a decision is
/// compared (kind, names, durations, references, patch ids); inputs, options and results may
/// change between versions without breaking running workflows.
pub(crate) fn same_decision(recorded: &EventKind, made: &EventKind) -> bool {
    match (recorded, made) {
        (EventKind::ActivityScheduled(r), EventKind::ActivityScheduled(m)) => {
            r.activity_type == m.activity_type
        }
        (EventKind::ActivityCancelRequested(r), EventKind::ActivityCancelRequested(m)) => {
            r.scheduled == m.scheduled
        }
        (EventKind::LocalActivityScheduled(r), EventKind::LocalActivityScheduled(m)) => {
            r.activity_type == m.activity_type
        }
        (EventKind::TimerStarted(r), EventKind::TimerStarted(m)) => r.duration == m.duration,
        (EventKind::UpdateCompleted(r), EventKind::UpdateCompleted(m)) => r.accepted == m.accepted,
        (EventKind::TimerCancelled(r), EventKind::TimerCancelled(m)) => r.started == m.started,
        (EventKind::ChildWorkflowStarted(r), EventKind::ChildWorkflowStarted(m)) => {
            r.workflow_type == m.workflow_type && r.workflow_id == m.workflow_id
        }
        (
            EventKind::ChildWorkflowCancelRequested(r),
            EventKind::ChildWorkflowCancelRequested(m),
        ) => r.started == m.started,
        (
            EventKind::MarkerRecorded(Marker::Patch { patch_id: r }),
            EventKind::MarkerRecorded(Marker::Patch { patch_id: m }),
        ) => r == m,
        (
            EventKind::MarkerRecorded(Marker::SideEffect { .. }),
            EventKind::MarkerRecorded(Marker::SideEffect { .. }),
        ) => true,
        (EventKind::WorkflowCompleted(_), EventKind::WorkflowCompleted(_))
        | (EventKind::WorkflowFailed(_), EventKind::WorkflowFailed(_))
        | (EventKind::WorkflowCancelled(_), EventKind::WorkflowCancelled(_))
        | (EventKind::WorkflowContinuedAsNew(_), EventKind::WorkflowContinuedAsNew(_)) => true,
        _ => false,
    }
}

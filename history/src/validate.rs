//! Structural validation of a history: the rules every well-formed history obeys.
//!
//! Validation reports every violation it finds, each with the seq it concerns, so a
//! corrupt or hand-edited history can be diagnosed in one pass.

use std::collections::BTreeMap;
use std::fmt;

use crate::error::{Error, Result};
use crate::event::{Event, EventKind};
use crate::ids::Seq;

/// One broken rule, at one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The event that breaks the rule (seq 1 for an empty history).
    pub seq: Seq,
    /// Which rule.
    pub kind: ViolationKind,
}

/// The rules a history can break.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ViolationKind {
    /// The history has no events at all.
    Empty,
    /// Seqs must run 1, 2, 3, ... without gaps.
    SeqOutOfOrder {
        /// The seq expected at this position.
        expected: Seq,
    },
    /// The first event must be `WorkflowStarted`.
    FirstEventNotStarted,
    /// `WorkflowStarted` may only be the first event.
    StartedNotFirst,
    /// Nothing may follow a closing event.
    EventAfterClose {
        /// The closing event.
        closed_at: Seq,
    },
    /// The event refers to a seq that is not an earlier event of the expected kind.
    UnknownReference {
        /// The seq referred to.
        reference: Seq,
        /// The kind of event it must refer to.
        expected: &'static str,
    },
    /// The event resolves something that was already resolved.
    AlreadyResolved {
        /// The seq referred to.
        reference: Seq,
        /// The event that resolved it first.
        resolved_at: Seq,
    },
    /// A cancellation was acknowledged, or requested twice, out of turn.
    CancelOutOfTurn {
        /// The seq referred to.
        reference: Seq,
    },
    /// An update id was accepted twice (an update runs once).
    UpdateAcceptedTwice {
        /// The first `UpdateAccepted` with this id.
        first: Seq,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "seq {}: ", self.seq)?;
        match &self.kind {
            ViolationKind::Empty => f.write_str("history has no events"),
            ViolationKind::SeqOutOfOrder { expected } => write!(f, "expected seq {expected}"),
            ViolationKind::FirstEventNotStarted => {
                f.write_str("first event is not WorkflowStarted")
            }
            ViolationKind::StartedNotFirst => f.write_str("WorkflowStarted after the first event"),
            ViolationKind::EventAfterClose { closed_at } => {
                write!(f, "event after the run closed at seq {closed_at}")
            }
            ViolationKind::UnknownReference {
                reference,
                expected,
            } => {
                write!(
                    f,
                    "refers to seq {reference}, which is not an earlier {expected}"
                )
            }
            ViolationKind::AlreadyResolved {
                reference,
                resolved_at,
            } => write!(
                f,
                "seq {reference} was already resolved at seq {resolved_at}"
            ),
            ViolationKind::UpdateAcceptedTwice { first } => {
                write!(f, "update id already accepted at seq {first}")
            }
            ViolationKind::CancelOutOfTurn { reference } => {
                write!(f, "cancellation of seq {reference} out of turn")
            }
        }
    }
}

impl Violation {
    /// All violations on one line, for error messages.
    pub fn summary(violations: &[Violation]) -> String {
        let parts: Vec<String> = violations.iter().map(ToString::to_string).collect();
        parts.join("; ")
    }
}

/// What a scheduling event refers to, as validation tracks it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pending {
    Activity {
        cancel_requested: bool,
    },
    /// A local activity: resolved by an activity outcome or a backoff, never cancelled.
    LocalActivity,
    Timer,
    Child {
        cancel_requested: bool,
    },
    /// An accepted update, until its handler completes.
    Update,
}

impl Pending {
    fn name(self) -> &'static str {
        match self {
            Pending::Activity { .. } => "ActivityScheduled",
            Pending::LocalActivity => "LocalActivityScheduled",
            Pending::Timer => "TimerStarted",
            Pending::Child { .. } => "ChildWorkflowStarted",
            Pending::Update => "UpdateAccepted",
        }
    }

    fn same_kind(self, other: Pending) -> bool {
        std::mem::discriminant(&self) == std::mem::discriminant(&other)
    }
}

/// What a referring event does to the thing it refers to.
enum Effect {
    Resolve,
    RequestCancel,
    ResolveAfterCancel,
}

#[derive(Default)]
struct Validator {
    violations: Vec<Violation>,
    open: BTreeMap<Seq, Pending>,
    resolved: BTreeMap<Seq, Seq>,
    closed_at: Option<Seq>,
    /// Update ids accepted, with the seq that accepted each.
    updates: BTreeMap<String, Seq>,
}

impl Validator {
    fn violation(&mut self, seq: Seq, kind: ViolationKind) {
        self.violations.push(Violation { seq, kind });
    }

    fn refer(&mut self, seq: Seq, reference: Seq, want: Pending, effect: Effect) {
        let Some(&pending) = self.open.get(&reference) else {
            let kind = match self.resolved.get(&reference) {
                Some(&resolved_at) => ViolationKind::AlreadyResolved {
                    reference,
                    resolved_at,
                },
                None => ViolationKind::UnknownReference {
                    reference,
                    expected: want.name(),
                },
            };
            return self.violation(seq, kind);
        };
        if !pending.same_kind(want) {
            return self.violation(
                seq,
                ViolationKind::UnknownReference {
                    reference,
                    expected: want.name(),
                },
            );
        }
        let cancel_requested = matches!(
            pending,
            Pending::Activity {
                cancel_requested: true
            } | Pending::Child {
                cancel_requested: true
            }
        );
        match effect {
            Effect::Resolve => {
                self.open.remove(&reference);
                self.resolved.insert(reference, seq);
            }
            Effect::RequestCancel if cancel_requested => {
                self.violation(seq, ViolationKind::CancelOutOfTurn { reference });
            }
            Effect::RequestCancel => {
                let marked = match pending {
                    Pending::Activity { .. } => Pending::Activity {
                        cancel_requested: true,
                    },
                    Pending::Child { .. } => Pending::Child {
                        cancel_requested: true,
                    },
                    Pending::Timer => Pending::Timer,
                    Pending::LocalActivity => Pending::LocalActivity,
                    Pending::Update => Pending::Update,
                };
                self.open.insert(reference, marked);
            }
            Effect::ResolveAfterCancel if !cancel_requested => {
                self.violation(seq, ViolationKind::CancelOutOfTurn { reference });
            }
            Effect::ResolveAfterCancel => {
                self.open.remove(&reference);
                self.resolved.insert(reference, seq);
            }
        }
    }

    /// An activity outcome resolves an activity or a local activity, whichever it refers to.
    fn activity_outcome(&mut self, seq: Seq, reference: Seq) {
        let want = match self.open.get(&reference) {
            Some(Pending::LocalActivity) => Pending::LocalActivity,
            _ => Pending::Activity {
                cancel_requested: false,
            },
        };
        self.refer(seq, reference, want, Effect::Resolve)
    }

    fn event(&mut self, index: usize, event: &Event) {
        let seq = event.seq;
        let expected = Seq::new(index as u64 + 1);
        if seq != expected {
            self.violation(seq, ViolationKind::SeqOutOfOrder { expected });
        }
        if let Some(closed_at) = self.closed_at {
            self.violation(seq, ViolationKind::EventAfterClose { closed_at });
        }
        if event.kind.is_closing() && self.closed_at.is_none() {
            self.closed_at = Some(seq);
        }
        let activity = Pending::Activity {
            cancel_requested: false,
        };
        let child = Pending::Child {
            cancel_requested: false,
        };
        match &event.kind {
            EventKind::WorkflowStarted(_) if index != 0 => {
                self.violation(seq, ViolationKind::StartedNotFirst)
            }
            _ if index == 0 && !matches!(event.kind, EventKind::WorkflowStarted(_)) => {
                self.violation(seq, ViolationKind::FirstEventNotStarted)
            }
            EventKind::ActivityScheduled(_) => {
                self.open.insert(seq, activity);
            }
            EventKind::TimerStarted(_) => {
                self.open.insert(seq, Pending::Timer);
            }
            EventKind::ChildWorkflowStarted(_) => {
                self.open.insert(seq, child);
            }
            EventKind::LocalActivityScheduled(_) => {
                self.open.insert(seq, Pending::LocalActivity);
            }
            EventKind::ActivityCompleted(e) => self.activity_outcome(seq, e.scheduled),
            EventKind::ActivityFailed(e) => self.activity_outcome(seq, e.scheduled),
            EventKind::ActivityTimedOut(e) => self.activity_outcome(seq, e.scheduled),
            EventKind::LocalActivityBackoff(e) => {
                self.refer(seq, e.scheduled, Pending::LocalActivity, Effect::Resolve)
            }
            EventKind::ActivityCancelRequested(e) => {
                self.refer(seq, e.scheduled, activity, Effect::RequestCancel)
            }
            EventKind::ActivityCancelled(e) => {
                self.refer(seq, e.scheduled, activity, Effect::ResolveAfterCancel)
            }
            EventKind::TimerFired(e) => self.refer(seq, e.started, Pending::Timer, Effect::Resolve),
            EventKind::TimerCancelled(e) => {
                self.refer(seq, e.started, Pending::Timer, Effect::Resolve)
            }
            EventKind::ChildWorkflowCompleted(e) => {
                self.refer(seq, e.started, child, Effect::Resolve)
            }
            EventKind::ChildWorkflowFailed(e) => self.refer(seq, e.started, child, Effect::Resolve),
            EventKind::ChildWorkflowCancelRequested(e) => {
                self.refer(seq, e.started, child, Effect::RequestCancel)
            }
            EventKind::UpdateAccepted(u) => {
                match self.updates.get(u.update_id.as_str()) {
                    Some(&first) => {
                        self.violation(seq, ViolationKind::UpdateAcceptedTwice { first })
                    }
                    None => {
                        self.updates.insert(u.update_id.to_string(), seq);
                    }
                }
                self.open.insert(seq, Pending::Update);
            }
            EventKind::UpdateCompleted(c) => {
                self.refer(seq, c.accepted, Pending::Update, Effect::Resolve)
            }
            EventKind::WorkflowStarted(_)
            | EventKind::SignalReceived(_)
            | EventKind::CancelRequested(_)
            | EventKind::MarkerRecorded(_)
            | EventKind::WorkflowCompleted(_)
            | EventKind::WorkflowFailed(_)
            | EventKind::WorkflowCancelled(_)
            | EventKind::WorkflowTerminated(_)
            | EventKind::WorkflowTimedOut(_)
            | EventKind::WorkflowContinuedAsNew(_) => {}
        }
    }
}

/// Checks every structural rule and returns every violation found, in seq order.
pub fn violations(events: &[Event]) -> Vec<Violation> {
    if events.is_empty() {
        return vec![Violation {
            seq: Seq::FIRST,
            kind: ViolationKind::Empty,
        }];
    }
    let mut validator = Validator::default();
    for (index, event) in events.iter().enumerate() {
        validator.event(index, event);
    }
    validator.violations
}

/// Checks every structural rule; `Error::Invalid` lists every violation.
pub fn validate(events: &[Event]) -> Result<()> {
    let found = violations(events);
    if found.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid(found))
    }
}

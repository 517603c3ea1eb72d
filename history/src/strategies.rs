//! Proptest strategies for every history type, and for whole valid histories.
//!
//! Enabled by the `proptest` feature; `reprise-testkit` builds its user-facing strategies on
//! these, and this crate's property tests use them.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::Index;

use crate::event::*;
use crate::failure::{Failure, FailureCause, FailureKind};
use crate::file::RecordedHistory;
use crate::ids::{
    ActivityType, PatchId, RunId, ScheduleId, Seq, SignalName, TaskQueue, UpdateId, UpdateName,
    WorkflowId, WorkflowType,
};
use crate::options::{
    ActivityOptions, ParentClosePolicy, ParentRun, RetryPolicy, RunOrigin, TimeoutKind,
    WorkflowTimeout,
};
use crate::payload::Payload;
use crate::priority::Priority;
use crate::replay_rules::ReplayRules;
use crate::time::Timestamp;
use crate::trace::TraceContext;

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_.-]{0,12}"
}

macro_rules! name_strategy {
    ($fn:ident, $ty:ty) => {
        /// Valid values of this name type.
        pub fn $fn() -> impl Strategy<Value = $ty> {
            name().prop_filter_map("valid name", |s| <$ty>::new(s).ok())
        }
    };
}

name_strategy!(workflow_type, WorkflowType);
name_strategy!(workflow_id, WorkflowId);
name_strategy!(activity_type, ActivityType);
name_strategy!(task_queue, TaskQueue);
name_strategy!(signal_name, SignalName);
name_strategy!(patch_id, PatchId);
name_strategy!(update_name, UpdateName);
name_strategy!(update_id, UpdateId);
name_strategy!(schedule_id, ScheduleId);

/// Any run id.
pub fn run_id() -> impl Strategy<Value = RunId> {
    any::<u128>().prop_map(|n| RunId::from_uuid(uuid::Uuid::from_u128(n)))
}

/// Seqs small enough to be plausible.
pub fn seq() -> impl Strategy<Value = Seq> {
    (1u64..10_000).prop_map(Seq::new)
}

/// Timestamps between 2001 and 2286.
pub fn timestamp() -> impl Strategy<Value = Timestamp> {
    (1_000_000_000_000_000i64..9_999_999_999_000_000).prop_map(Timestamp::from_unix_micros)
}

/// Durations up to about 11 days, with nanoseconds.
pub fn duration() -> impl Strategy<Value = Duration> {
    (0u64..1_000_000, 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n))
}

/// Payloads in every format a history may hold: JSON values, and old bincode bytes (up to 64
/// bytes after the format byte).
pub fn payload() -> impl Strategy<Value = Payload> {
    let bincode = prop::collection::vec(any::<u8>(), 0..64).prop_filter_map("payload", |body| {
        let mut bytes = vec![0x01];
        bytes.extend(body);
        Payload::from_bytes(bytes).ok()
    });
    let json = (any::<String>(), any::<i64>(), any::<bool>()).prop_filter_map(
        "payload",
        |(text, number, flag)| {
            let value = serde_json::json!({ "text": text, "number": number, "flag": flag });
            Payload::encode(&value, &crate::Limits::DEFAULT).ok()
        },
    );
    prop_oneof![bincode, json]
}

/// Any failure.
pub fn failure() -> impl Strategy<Value = Failure> {
    let kind = prop_oneof![
        Just(FailureKind::Application),
        Just(FailureKind::TimedOut),
        Just(FailureKind::Cancelled),
        Just(FailureKind::Terminated),
        Just(FailureKind::Panicked),
    ];
    let cause = (".{0,12}", ".{0,24}").prop_map(|(error_type, message)| FailureCause {
        error_type,
        message,
    });
    (
        kind,
        ".{0,12}",
        ".{0,40}",
        any::<bool>(),
        prop::collection::vec(cause, 0..3),
        prop::option::of(payload()),
    )
        .prop_map(
            |(kind, error_type, message, retryable, causes, details)| Failure {
                kind,
                error_type,
                message,
                retryable,
                causes,
                details,
            },
        )
}

/// Any activity options.
pub fn activity_options() -> impl Strategy<Value = ActivityOptions> {
    let retry = (
        prop::option::of(1u32..100),
        duration(),
        duration(),
        1.0f64..10.0,
        0.0f64..1.0,
        prop::collection::vec(name(), 0..3),
        // Mostly empty: most options fit the first stored shape, as most code's do.
        prop_oneof![3 => Just(Vec::new()), 1 => prop::collection::vec(name(), 1..3)],
    )
        .prop_map(
            |(
                max_attempts,
                initial_backoff,
                max_backoff,
                backoff_multiplier,
                jitter,
                non_retryable_error_types,
                retry_on,
            )| {
                RetryPolicy {
                    max_attempts,
                    initial_backoff,
                    max_backoff,
                    backoff_multiplier,
                    jitter,
                    non_retryable_error_types,
                    retry_on,
                }
            },
        );
    (
        retry,
        prop::option::of(duration()),
        prop::option::of(duration()),
        prop::option::of(duration()),
        prop_oneof![3 => Just(None), 1 => duration().prop_map(Some)],
    )
        .prop_map(
            |(retry, start_to_close, schedule_to_close, heartbeat_timeout, schedule_to_start)| {
                ActivityOptions {
                    retry,
                    start_to_close,
                    schedule_to_close,
                    heartbeat_timeout,
                    schedule_to_start,
                }
            },
        )
}

fn run_origin() -> impl Strategy<Value = RunOrigin> {
    prop_oneof![
        Just(RunOrigin::Client),
        run_id().prop_map(|previous_run_id| RunOrigin::ContinuedAsNew { previous_run_id }),
        (run_id(), seq()).prop_map(|(source_run_id, reset_to)| RunOrigin::Reset {
            source_run_id,
            reset_to
        }),
        (schedule_id(), timestamp()).prop_map(|(schedule_id, scheduled_at)| {
            RunOrigin::Scheduled {
                schedule_id,
                scheduled_at,
            }
        }),
        (run_id(), 2u32..100).prop_map(|(previous_run_id, attempt)| RunOrigin::Retried {
            previous_run_id,
            attempt
        }),
    ]
}

fn parent_close_policy() -> impl Strategy<Value = ParentClosePolicy> {
    prop_oneof![
        Just(ParentClosePolicy::Terminate),
        Just(ParentClosePolicy::RequestCancel),
        Just(ParentClosePolicy::Abandon),
    ]
}

/// Any `WorkflowStarted`.
pub fn workflow_started() -> impl Strategy<Value = WorkflowStarted> {
    let parent =
        (workflow_id(), run_id(), seq()).prop_map(|(workflow_id, run_id, started_seq)| ParentRun {
            workflow_id,
            run_id,
            started_seq,
        });
    (
        workflow_type(),
        workflow_id(),
        run_id(),
        payload(),
        task_queue(),
        run_origin(),
        prop::option::of(parent),
        prop::option::of(trace_context()),
        prop_oneof![Just(ReplayRules::NONE), Just(ReplayRules::CURRENT)],
    )
        .prop_map(
            |(
                workflow_type,
                workflow_id,
                run_id,
                input,
                task_queue,
                origin,
                parent,
                trace,
                rules,
            )| {
                WorkflowStarted {
                    workflow_type,
                    workflow_id,
                    run_id,
                    input,
                    task_queue,
                    origin,
                    parent,
                    trace_context: trace,
                    replay_rules: rules,
                }
            },
        )
}

/// A valid W3C trace context: random non-zero ids, either flag, a short `tracestate`.
pub fn trace_context() -> impl Strategy<Value = TraceContext> {
    (
        1..=u128::MAX,
        1..=u64::MAX,
        any::<bool>(),
        "[a-z0-9=,]{0,40}",
    )
        .prop_filter_map("a valid context", |(trace, span, sampled, state)| {
            let parent = format!("00-{trace:032x}-{span:016x}-{:02x}", u8::from(sampled));
            TraceContext::new(parent, state).ok()
        })
}

/// Any event kind, with arbitrary (possibly dangling) references.
pub fn event_kind() -> impl Strategy<Value = EventKind> {
    // Weighted by how many variants each side has, so every variant is about equally likely.
    prop_oneof![17 => open_event_kind(), 5 => closing_event_kind()]
}

/// The event kinds that close a run.
pub fn closing_event_kind() -> impl Strategy<Value = EventKind> {
    prop_oneof![
        payload().prop_map(|result| EventKind::WorkflowCompleted(WorkflowCompleted { result })),
        failure().prop_map(|failure| EventKind::WorkflowFailed(WorkflowFailed { failure })),
        prop::option::of(payload())
            .prop_map(|details| EventKind::WorkflowCancelled(WorkflowCancelled { details })),
        ".{0,30}".prop_map(|reason| EventKind::WorkflowTerminated(WorkflowTerminated { reason })),
        prop_oneof![Just(WorkflowTimeout::Run), Just(WorkflowTimeout::Execution)]
            .prop_map(|timeout| EventKind::WorkflowTimedOut(WorkflowTimedOut { timeout })),
        (run_id(), workflow_type(), payload(), task_queue()).prop_map(
            |(new_run_id, workflow_type, input, task_queue)| {
                EventKind::WorkflowContinuedAsNew(WorkflowContinuedAsNew {
                    new_run_id,
                    workflow_type,
                    input,
                    task_queue,
                })
            }
        ),
    ]
}

/// The event kinds that do not close a run, with arbitrary (possibly dangling) references.
pub fn open_event_kind() -> impl Strategy<Value = EventKind> {
    let timeout = prop_oneof![
        Just(TimeoutKind::StartToClose),
        Just(TimeoutKind::ScheduleToClose),
        Just(TimeoutKind::Heartbeat),
    ];
    let marker = prop_oneof![
        patch_id().prop_map(|patch_id| Marker::Patch { patch_id }),
        payload().prop_map(|value| Marker::SideEffect { value }),
    ];
    prop_oneof![
        workflow_started().prop_map(EventKind::WorkflowStarted),
        (
            activity_type(),
            task_queue(),
            payload(),
            activity_options(),
            proptest::option::of(1i64..=9)
        )
            .prop_map(|(activity_type, task_queue, input, options, priority)| {
                EventKind::ActivityScheduled(ActivityScheduled {
                    activity_type,
                    task_queue,
                    input,
                    options,
                    priority: priority.and_then(|p| Priority::new(p).ok()),
                })
            }),
        (seq(), payload(), any::<u32>()).prop_map(|(scheduled, result, attempt)| {
            EventKind::ActivityCompleted(ActivityCompleted {
                scheduled,
                result,
                attempt,
            })
        }),
        (seq(), failure(), any::<u32>()).prop_map(|(scheduled, failure, attempt)| {
            EventKind::ActivityFailed(ActivityFailed {
                scheduled,
                failure,
                attempt,
            })
        }),
        (
            seq(),
            timeout,
            any::<u32>(),
            prop::option::of(failure()),
            prop::option::of(payload())
        )
            .prop_map(
                |(scheduled, timeout, attempt, last_failure, last_heartbeat)| {
                    EventKind::ActivityTimedOut(ActivityTimedOut {
                        scheduled,
                        timeout,
                        attempt,
                        last_failure,
                        last_heartbeat,
                    })
                }
            ),
        seq().prop_map(
            |scheduled| EventKind::ActivityCancelRequested(ActivityCancelRequested { scheduled })
        ),
        (seq(), any::<u32>(), prop::option::of(payload())).prop_map(
            |(scheduled, attempt, details)| {
                EventKind::ActivityCancelled(ActivityCancelled {
                    scheduled,
                    attempt,
                    details,
                })
            }
        ),
        duration().prop_map(|duration| EventKind::TimerStarted(TimerStarted { duration })),
        seq().prop_map(|started| EventKind::TimerFired(TimerFired { started })),
        seq().prop_map(|started| EventKind::TimerCancelled(TimerCancelled { started })),
        (signal_name(), payload()).prop_map(|(name, payload)| EventKind::SignalReceived(
            SignalReceived { name, payload }
        )),
        (
            (
                workflow_type(),
                workflow_id(),
                run_id(),
                payload(),
                task_queue(),
                parent_close_policy()
            ),
            // Mostly none: most child starts fit the first stored shape.
            prop_oneof![
                3 => Just((None, None, None)),
                1 => (
                    prop::option::of(duration()),
                    prop::option::of(duration()),
                    prop::option::of(activity_options().prop_map(|o| o.retry)),
                ),
            ],
        )
            .prop_map(
                |(
                    (workflow_type, workflow_id, run_id, input, task_queue, parent_close_policy),
                    (run_timeout, execution_timeout, retry),
                )| {
                    EventKind::ChildWorkflowStarted(ChildWorkflowStarted {
                        workflow_type,
                        workflow_id,
                        run_id,
                        input,
                        task_queue,
                        parent_close_policy,
                        run_timeout,
                        execution_timeout,
                        retry,
                    })
                }
            ),
        (seq(), payload()).prop_map(|(started, result)| EventKind::ChildWorkflowCompleted(
            ChildWorkflowCompleted { started, result }
        )),
        (seq(), failure()).prop_map(|(started, failure)| EventKind::ChildWorkflowFailed(
            ChildWorkflowFailed { started, failure }
        )),
        seq().prop_map(|started| EventKind::ChildWorkflowCancelRequested(
            ChildWorkflowCancelRequested { started }
        )),
        ".{0,30}".prop_map(|reason| EventKind::CancelRequested(CancelRequested { reason })),
        (activity_type(), payload(), 1u32..100).prop_map(|(activity_type, input, attempt)| {
            EventKind::LocalActivityScheduled(LocalActivityScheduled {
                activity_type,
                input,
                attempt,
            })
        }),
        (seq(), failure(), any::<u32>(), duration()).prop_map(
            |(scheduled, failure, attempt, backoff)| {
                EventKind::LocalActivityBackoff(LocalActivityBackoff {
                    scheduled,
                    failure,
                    attempt,
                    backoff,
                })
            }
        ),
        (update_id(), update_name(), payload()).prop_map(|(update_id, name, input)| {
            EventKind::UpdateAccepted(UpdateAccepted {
                update_id,
                name,
                input,
            })
        }),
        (
            seq(),
            update_id(),
            prop_oneof![
                payload().prop_map(UpdateOutcome::Completed),
                failure().prop_map(UpdateOutcome::Failed),
            ]
        )
            .prop_map(|(accepted, update_id, outcome)| {
                EventKind::UpdateCompleted(UpdateCompleted {
                    accepted,
                    update_id,
                    outcome,
                })
            }),
        marker.prop_map(EventKind::MarkerRecorded),
        payload().prop_map(|result| EventKind::WorkflowCompleted(WorkflowCompleted { result })),
        failure().prop_map(|failure| EventKind::WorkflowFailed(WorkflowFailed { failure })),
        prop::option::of(payload())
            .prop_map(|details| EventKind::WorkflowCancelled(WorkflowCancelled { details })),
        ".{0,30}".prop_map(|reason| EventKind::WorkflowTerminated(WorkflowTerminated { reason })),
        prop_oneof![Just(WorkflowTimeout::Run), Just(WorkflowTimeout::Execution)]
            .prop_map(|timeout| EventKind::WorkflowTimedOut(WorkflowTimedOut { timeout })),
        (run_id(), workflow_type(), payload(), task_queue()).prop_map(
            |(new_run_id, workflow_type, input, task_queue)| {
                EventKind::WorkflowContinuedAsNew(WorkflowContinuedAsNew {
                    new_run_id,
                    workflow_type,
                    input,
                    task_queue,
                })
            }
        ),
    ]
}

/// Any event (seq and references arbitrary).
pub fn event() -> impl Strategy<Value = Event> {
    (seq(), timestamp(), event_kind()).prop_map(|(seq, recorded_at, kind)| Event {
        seq,
        recorded_at,
        kind,
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Open {
    Activity { cancel_requested: bool },
    LocalActivity,
    Timer,
    Child { cancel_requested: bool },
    Update,
}

/// Rewrites a candidate's reference to an open seq that it may legally refer to, or returns
/// `None` if nothing open fits.
fn fix_reference(kind: EventKind, open: &BTreeMap<Seq, Open>, pick: Index) -> Option<EventKind> {
    let choose = |ok: &dyn Fn(Open) -> bool| -> Option<Seq> {
        let fits: Vec<Seq> = open
            .iter()
            .filter(|(_, o)| ok(**o))
            .map(|(s, _)| *s)
            .collect();
        (!fits.is_empty()).then(|| fits[pick.index(fits.len())])
    };
    let activity = |o: Open| matches!(o, Open::Activity { .. } | Open::LocalActivity);
    let local = |o: Open| o == Open::LocalActivity;
    let activity_live = |o: Open| {
        matches!(
            o,
            Open::Activity {
                cancel_requested: false
            }
        )
    };
    let activity_cancelling = |o: Open| {
        matches!(
            o,
            Open::Activity {
                cancel_requested: true
            }
        )
    };
    let timer = |o: Open| o == Open::Timer;
    let update = |o: Open| o == Open::Update;
    let child = |o: Open| matches!(o, Open::Child { .. });
    let child_live = |o: Open| {
        matches!(
            o,
            Open::Child {
                cancel_requested: false
            }
        )
    };
    Some(match kind {
        EventKind::ActivityCompleted(e) => EventKind::ActivityCompleted(ActivityCompleted {
            scheduled: choose(&activity)?,
            ..e
        }),
        EventKind::ActivityFailed(e) => EventKind::ActivityFailed(ActivityFailed {
            scheduled: choose(&activity)?,
            ..e
        }),
        EventKind::ActivityTimedOut(e) => EventKind::ActivityTimedOut(ActivityTimedOut {
            scheduled: choose(&activity)?,
            ..e
        }),
        EventKind::ActivityCancelRequested(_) => {
            EventKind::ActivityCancelRequested(ActivityCancelRequested {
                scheduled: choose(&activity_live)?,
            })
        }
        EventKind::ActivityCancelled(e) => EventKind::ActivityCancelled(ActivityCancelled {
            scheduled: choose(&activity_cancelling)?,
            ..e
        }),
        EventKind::LocalActivityBackoff(e) => {
            EventKind::LocalActivityBackoff(LocalActivityBackoff {
                scheduled: choose(&local)?,
                ..e
            })
        }
        EventKind::TimerFired(_) => EventKind::TimerFired(TimerFired {
            started: choose(&timer)?,
        }),
        EventKind::TimerCancelled(_) => EventKind::TimerCancelled(TimerCancelled {
            started: choose(&timer)?,
        }),
        EventKind::ChildWorkflowCompleted(e) => {
            EventKind::ChildWorkflowCompleted(ChildWorkflowCompleted {
                started: choose(&child)?,
                ..e
            })
        }
        EventKind::ChildWorkflowFailed(e) => EventKind::ChildWorkflowFailed(ChildWorkflowFailed {
            started: choose(&child)?,
            ..e
        }),
        EventKind::ChildWorkflowCancelRequested(_) => {
            EventKind::ChildWorkflowCancelRequested(ChildWorkflowCancelRequested {
                started: choose(&child_live)?,
            })
        }
        EventKind::UpdateCompleted(e) => EventKind::UpdateCompleted(UpdateCompleted {
            accepted: choose(&update)?,
            ..e
        }),
        EventKind::WorkflowStarted(_) => return None,
        other => other,
    })
}

fn track(open: &mut BTreeMap<Seq, Open>, seq: Seq, kind: &EventKind) {
    match kind {
        EventKind::ActivityScheduled(_) => {
            open.insert(
                seq,
                Open::Activity {
                    cancel_requested: false,
                },
            );
        }
        EventKind::TimerStarted(_) => {
            open.insert(seq, Open::Timer);
        }
        EventKind::LocalActivityScheduled(_) => {
            open.insert(seq, Open::LocalActivity);
        }
        EventKind::UpdateAccepted(_) => {
            open.insert(seq, Open::Update);
        }
        EventKind::ChildWorkflowStarted(_) => {
            open.insert(
                seq,
                Open::Child {
                    cancel_requested: false,
                },
            );
        }
        EventKind::ActivityCancelRequested(e) => {
            open.insert(
                e.scheduled,
                Open::Activity {
                    cancel_requested: true,
                },
            );
        }
        EventKind::ChildWorkflowCancelRequested(e) => {
            open.insert(
                e.started,
                Open::Child {
                    cancel_requested: true,
                },
            );
        }
        EventKind::ActivityCompleted(ActivityCompleted { scheduled: s, .. })
        | EventKind::ActivityFailed(ActivityFailed { scheduled: s, .. })
        | EventKind::ActivityTimedOut(ActivityTimedOut { scheduled: s, .. })
        | EventKind::ActivityCancelled(ActivityCancelled { scheduled: s, .. })
        | EventKind::LocalActivityBackoff(LocalActivityBackoff { scheduled: s, .. })
        | EventKind::TimerFired(TimerFired { started: s })
        | EventKind::TimerCancelled(TimerCancelled { started: s })
        | EventKind::ChildWorkflowCompleted(ChildWorkflowCompleted { started: s, .. })
        | EventKind::ChildWorkflowFailed(ChildWorkflowFailed { started: s, .. })
        | EventKind::UpdateCompleted(UpdateCompleted { accepted: s, .. }) => {
            open.remove(s);
        }
        _ => {}
    }
}

/// Structurally valid histories of up to `max_events` events (plus an optional closing event),
/// using every event kind.
pub fn history(max_events: usize) -> impl Strategy<Value = RecordedHistory> {
    let closing = prop::option::of((closing_event_kind(), any::<Index>(), 0u64..5_000_000));
    (
        workflow_started(),
        timestamp(),
        prop::collection::vec(
            (event_kind(), any::<Index>(), 0u64..5_000_000),
            0..max_events,
        ),
        closing,
    )
        .prop_filter_map(
            "valid history",
            |(started, start_at, candidates, closing)| {
                let mut events = vec![Event {
                    seq: Seq::FIRST,
                    recorded_at: start_at,
                    kind: EventKind::WorkflowStarted(started),
                }];
                let mut open = BTreeMap::new();
                let mut now = start_at;
                for (candidate, pick, micros) in candidates.into_iter().chain(closing) {
                    let kind = if candidate.is_closing() {
                        candidate
                    } else {
                        match fix_reference(candidate, &open, pick) {
                            Some(kind) => kind,
                            None => continue,
                        }
                    };
                    now = Timestamp::from_unix_micros(now.as_unix_micros() + micros as i64);
                    let seq = Seq::new(events.len() as u64 + 1);
                    // An update id is accepted once a run: the seq makes each one unique.
                    let kind = match kind {
                        EventKind::UpdateAccepted(u) => EventKind::UpdateAccepted(UpdateAccepted {
                            update_id: UpdateId::new(format!("u{seq}")).ok()?,
                            ..u
                        }),
                        other => other,
                    };
                    track(&mut open, seq, &kind);
                    events.push(Event {
                        seq,
                        recorded_at: now,
                        kind,
                    });
                }
                RecordedHistory::new(events).ok()
            },
        )
}

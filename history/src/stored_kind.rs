//! How an [`EventKind`] is stored: serde over an enum with more variants than `EventKind`.
//!
//! bincode stores no field names, so a field can never be added to a stored struct: a new
//! shape is a new variant, appended. `WorkflowStarted` grew twice that way. In code a start is
//! one struct; in storage it takes the oldest shape that holds what it carries, so older
//! starts keep their bytes exactly and old bytes keep decoding:
//! - variant 0, `WorkflowStarted`: the original seven fields (no trace context, no rules);
//! - variant 22, `WorkflowStartedInTrace`: eight, with the trace context;
//! - variant 23, `WorkflowStartedUnderRules`: nine, with the replay rules (every run started
//!   since rules were recorded).
//!
//! `ActivityScheduled` grew twice the same way: variant 1 holds the original four fields, and
//! variant 24, `ActivityScheduledWithPriority`, all five (only calls given a priority); both
//! hold their options in the options' first shape (`stored_options.rs`). Variant 30,
//! `ActivityScheduledWithOptions`, holds options that shape cannot (`retry_on`, a
//! schedule-to-start timeout).
//!
//! Local activities came as two new kinds: variant 25, `LocalActivityScheduled`, and 26,
//! `LocalActivityBackoff`; updates as 27, `UpdateAccepted`, and 28, `UpdateCompleted`;
//! workflow deadlines as 29, `WorkflowTimedOut`.
//!
//! `ChildWorkflowStarted` grew once: variant 11 holds its six original fields, variant 31,
//! `ChildWorkflowStartedWithOptions`, a child start with deadlines or a retry policy.
//!
//! JSON goes through the same enums, so both formats agree. The next new event kind is stored
//! as variant 32: append it to `EventKind` and to the `then` list of `stored_kinds!` below.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::event::*;
use crate::ids::{ActivityType, RunId, TaskQueue, WorkflowId, WorkflowType};
use crate::options::{ParentRun, RunOrigin};
use crate::payload::Payload;
use crate::priority::Priority;
use crate::replay_rules::ReplayRules;
use crate::stored_options::{ActivityOptionsV1, ChildStartedV1, ChildStartedV1Ref};
use crate::trace::TraceContext;

/// `WorkflowStarted` as first stored: the fields before the trace context, in order.
#[derive(Deserialize)]
#[serde(rename = "WorkflowStarted")]
struct StartedV1 {
    workflow_type: WorkflowType,
    workflow_id: WorkflowId,
    run_id: RunId,
    input: Payload,
    task_queue: TaskQueue,
    origin: RunOrigin,
    parent: Option<ParentRun>,
}

/// [`StartedV1`], borrowed, for writing.
#[derive(Serialize)]
#[serde(rename = "WorkflowStarted")]
struct StartedV1Ref<'a> {
    workflow_type: &'a WorkflowType,
    workflow_id: &'a WorkflowId,
    run_id: &'a RunId,
    input: &'a Payload,
    task_queue: &'a TaskQueue,
    origin: &'a RunOrigin,
    parent: &'a Option<ParentRun>,
}

/// `WorkflowStarted` with its trace context: the fields before the replay rules, in order.
#[derive(Deserialize)]
#[serde(rename = "WorkflowStarted")]
struct StartedV2 {
    workflow_type: WorkflowType,
    workflow_id: WorkflowId,
    run_id: RunId,
    input: Payload,
    task_queue: TaskQueue,
    origin: RunOrigin,
    parent: Option<ParentRun>,
    trace_context: Option<TraceContext>,
}

/// [`StartedV2`], borrowed, for writing.
#[derive(Serialize)]
#[serde(rename = "WorkflowStarted")]
struct StartedV2Ref<'a> {
    workflow_type: &'a WorkflowType,
    workflow_id: &'a WorkflowId,
    run_id: &'a RunId,
    input: &'a Payload,
    task_queue: &'a TaskQueue,
    origin: &'a RunOrigin,
    parent: &'a Option<ParentRun>,
    trace_context: &'a Option<TraceContext>,
}

/// `ActivityScheduled` as first stored: the fields before the priority, in order, with the
/// options' first shape.
#[derive(Deserialize)]
#[serde(rename = "ActivityScheduled")]
struct ScheduledV1 {
    activity_type: ActivityType,
    task_queue: TaskQueue,
    input: Payload,
    options: ActivityOptionsV1,
}

/// [`ScheduledV1`], borrowed (but the options), for writing.
#[derive(Serialize)]
#[serde(rename = "ActivityScheduled")]
struct ScheduledV1Ref<'a> {
    activity_type: &'a ActivityType,
    task_queue: &'a TaskQueue,
    input: &'a Payload,
    options: ActivityOptionsV1,
}

/// `ActivityScheduled` with its priority, as stored before options grew: every field, the
/// options in their first shape.
#[derive(Deserialize)]
#[serde(rename = "ActivityScheduled")]
struct ScheduledV2 {
    activity_type: ActivityType,
    task_queue: TaskQueue,
    input: Payload,
    options: ActivityOptionsV1,
    priority: Option<Priority>,
}

/// [`ScheduledV2`], borrowed (but the options), for writing.
#[derive(Serialize)]
#[serde(rename = "ActivityScheduled")]
struct ScheduledV2Ref<'a> {
    activity_type: &'a ActivityType,
    task_queue: &'a TaskQueue,
    input: &'a Payload,
    options: ActivityOptionsV1,
    priority: &'a Option<Priority>,
}

/// The stored enums and both directions of serde, from the variants whose stored shape is
/// their struct's: those stored before the starts' later shapes, and those after.
macro_rules! stored_kinds {
    (
        first: $($kind:ident($shape:ty)),* $(,)?;
        middle: $($middle:ident($middle_shape:ty)),* $(,)?;
        later: $($later:ident($later_shape:ty)),* $(,)?;
        then: $($then:ident($then_shape:ty)),* $(,)?
    ) => {
        /// The stored enum, read.
        #[derive(Deserialize)]
        #[serde(rename = "EventKind")]
        enum StoredKind {
            WorkflowStarted(StartedV1),
            ActivityScheduled(ScheduledV1),
            $($kind($shape),)*
            ChildWorkflowStarted(ChildStartedV1),
            $($middle($middle_shape),)*
            WorkflowStartedInTrace(StartedV2),
            WorkflowStartedUnderRules(WorkflowStarted),
            ActivityScheduledWithPriority(ScheduledV2),
            $($later($later_shape),)*
            ActivityScheduledWithOptions(ActivityScheduled),
            ChildWorkflowStartedWithOptions(ChildWorkflowStarted),
            $($then($then_shape),)*
        }

        /// The stored enum, written from a borrowed `EventKind` (no copy of any payload).
        #[derive(Serialize)]
        #[serde(rename = "EventKind")]
        enum StoredKindRef<'a> {
            WorkflowStarted(StartedV1Ref<'a>),
            ActivityScheduled(ScheduledV1Ref<'a>),
            $($kind(&'a $shape),)*
            ChildWorkflowStarted(ChildStartedV1Ref<'a>),
            $($middle(&'a $middle_shape),)*
            WorkflowStartedInTrace(StartedV2Ref<'a>),
            WorkflowStartedUnderRules(&'a WorkflowStarted),
            ActivityScheduledWithPriority(ScheduledV2Ref<'a>),
            $($later(&'a $later_shape),)*
            ActivityScheduledWithOptions(&'a ActivityScheduled),
            ChildWorkflowStartedWithOptions(&'a ChildWorkflowStarted),
            $($then(&'a $then_shape),)*
        }

        impl Serialize for EventKind {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let stored = match self {
                    EventKind::WorkflowStarted(s) => stored_start(s),
                    EventKind::ActivityScheduled(s) => stored_scheduled(s),
                    EventKind::ChildWorkflowStarted(c) if c.fits_first_shape() => {
                        StoredKindRef::ChildWorkflowStarted(ChildStartedV1Ref::from(c))
                    }
                    EventKind::ChildWorkflowStarted(c) => {
                        StoredKindRef::ChildWorkflowStartedWithOptions(c)
                    }
                    $(EventKind::$kind(e) => StoredKindRef::$kind(e),)*
                    $(EventKind::$middle(e) => StoredKindRef::$middle(e),)*
                    $(EventKind::$later(e) => StoredKindRef::$later(e),)*
                    $(EventKind::$then(e) => StoredKindRef::$then(e),)*
                };
                stored.serialize(serializer)
            }
        }

        /// The oldest stored shape that holds everything `s` carries.
        fn stored_scheduled(s: &ActivityScheduled) -> StoredKindRef<'_> {
            if !s.options.fits_first_shape() {
                return StoredKindRef::ActivityScheduledWithOptions(s);
            }
            if s.priority.is_some() {
                return StoredKindRef::ActivityScheduledWithPriority(ScheduledV2Ref {
                    activity_type: &s.activity_type,
                    task_queue: &s.task_queue,
                    input: &s.input,
                    options: ActivityOptionsV1::from(&s.options),
                    priority: &s.priority,
                });
            }
            StoredKindRef::ActivityScheduled(ScheduledV1Ref {
                activity_type: &s.activity_type,
                task_queue: &s.task_queue,
                input: &s.input,
                options: ActivityOptionsV1::from(&s.options),
            })
        }

        /// The oldest stored shape that holds everything `s` carries.
        fn stored_start(s: &WorkflowStarted) -> StoredKindRef<'_> {
            if !s.replay_rules.is_empty() {
                return StoredKindRef::WorkflowStartedUnderRules(s);
            }
            if s.trace_context.is_some() {
                return StoredKindRef::WorkflowStartedInTrace(StartedV2Ref {
                    workflow_type: &s.workflow_type,
                    workflow_id: &s.workflow_id,
                    run_id: &s.run_id,
                    input: &s.input,
                    task_queue: &s.task_queue,
                    origin: &s.origin,
                    parent: &s.parent,
                    trace_context: &s.trace_context,
                });
            }
            StoredKindRef::WorkflowStarted(StartedV1Ref {
                workflow_type: &s.workflow_type,
                workflow_id: &s.workflow_id,
                run_id: &s.run_id,
                input: &s.input,
                task_queue: &s.task_queue,
                origin: &s.origin,
                parent: &s.parent,
            })
        }

        impl<'de> Deserialize<'de> for EventKind {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                Ok(match StoredKind::deserialize(deserializer)? {
                    StoredKind::WorkflowStarted(s) => EventKind::WorkflowStarted(WorkflowStarted {
                        workflow_type: s.workflow_type,
                        workflow_id: s.workflow_id,
                        run_id: s.run_id,
                        input: s.input,
                        task_queue: s.task_queue,
                        origin: s.origin,
                        parent: s.parent,
                        trace_context: None,
                        replay_rules: ReplayRules::NONE,
                    }),
                    StoredKind::WorkflowStartedInTrace(s) => {
                        EventKind::WorkflowStarted(WorkflowStarted {
                            workflow_type: s.workflow_type,
                            workflow_id: s.workflow_id,
                            run_id: s.run_id,
                            input: s.input,
                            task_queue: s.task_queue,
                            origin: s.origin,
                            parent: s.parent,
                            trace_context: s.trace_context,
                            replay_rules: ReplayRules::NONE,
                        })
                    }
                    // A start stored in a newer shape than it needs reads the same.
                    StoredKind::WorkflowStartedUnderRules(s) => EventKind::WorkflowStarted(s),
                    StoredKind::ActivityScheduled(s) => EventKind::ActivityScheduled(ActivityScheduled {
                        activity_type: s.activity_type,
                        task_queue: s.task_queue,
                        input: s.input,
                        options: s.options.into(),
                        priority: None,
                    }),
                    StoredKind::ActivityScheduledWithPriority(s) => {
                        EventKind::ActivityScheduled(ActivityScheduled {
                            activity_type: s.activity_type,
                            task_queue: s.task_queue,
                            input: s.input,
                            options: s.options.into(),
                            priority: s.priority,
                        })
                    }
                    // Options stored in a newer shape than they need read the same.
                    StoredKind::ActivityScheduledWithOptions(s) => EventKind::ActivityScheduled(s),
                    StoredKind::ChildWorkflowStarted(c) => EventKind::ChildWorkflowStarted(c.into()),
                    StoredKind::ChildWorkflowStartedWithOptions(c) => {
                        EventKind::ChildWorkflowStarted(c)
                    }
                    $(StoredKind::$kind(e) => EventKind::$kind(e),)*
                    $(StoredKind::$middle(e) => EventKind::$middle(e),)*
                    $(StoredKind::$later(e) => EventKind::$later(e),)*
                    $(StoredKind::$then(e) => EventKind::$then(e),)*
                })
            }
        }
    };
}

// In stored order: the position of each is its encoding (`WorkflowStarted` is variant 0 and
// `ActivityScheduled` variant 1, both written out in the macro, as are `ChildWorkflowStarted`,
// 11, between `first` and `middle`, and the later shapes: 22 to 24 between `middle` and
// `later`, 30 and 31 between `later` and `then`).
stored_kinds! {
    first:
    ActivityCompleted(ActivityCompleted),
    ActivityFailed(ActivityFailed),
    ActivityTimedOut(ActivityTimedOut),
    ActivityCancelRequested(ActivityCancelRequested),
    ActivityCancelled(ActivityCancelled),
    TimerStarted(TimerStarted),
    TimerFired(TimerFired),
    TimerCancelled(TimerCancelled),
    SignalReceived(SignalReceived);
    middle:
    ChildWorkflowCompleted(ChildWorkflowCompleted),
    ChildWorkflowFailed(ChildWorkflowFailed),
    ChildWorkflowCancelRequested(ChildWorkflowCancelRequested),
    CancelRequested(CancelRequested),
    MarkerRecorded(Marker),
    WorkflowCompleted(WorkflowCompleted),
    WorkflowFailed(WorkflowFailed),
    WorkflowCancelled(WorkflowCancelled),
    WorkflowTerminated(WorkflowTerminated),
    WorkflowContinuedAsNew(WorkflowContinuedAsNew);
    later:
    LocalActivityScheduled(LocalActivityScheduled),
    LocalActivityBackoff(LocalActivityBackoff),
    UpdateAccepted(UpdateAccepted),
    UpdateCompleted(UpdateCompleted),
    WorkflowTimedOut(WorkflowTimedOut);
    then:
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::Limits;

    fn started(trace_context: Option<TraceContext>) -> EventKind {
        started_under(trace_context, ReplayRules::NONE)
    }

    fn started_under(trace_context: Option<TraceContext>, replay_rules: ReplayRules) -> EventKind {
        EventKind::WorkflowStarted(WorkflowStarted {
            workflow_type: WorkflowType::new("order").unwrap(),
            workflow_id: WorkflowId::new("order-1").unwrap(),
            run_id: RunId::from_uuid(uuid::Uuid::from_u128(7)),
            input: Payload::encode(&1, &Limits::DEFAULT).unwrap(),
            task_queue: TaskQueue::new("default").unwrap(),
            origin: RunOrigin::Client,
            parent: None,
            trace_context,
            replay_rules,
        })
    }

    fn traced() -> EventKind {
        let context = TraceContext::new(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "vendor=1",
        )
        .unwrap();
        started(Some(context))
    }

    #[test]
    fn a_start_without_a_context_keeps_variant_zero_and_a_traced_one_is_appended() {
        let plain = started(None).encode(&Limits::DEFAULT).unwrap();
        let traced_bytes = traced().encode(&Limits::DEFAULT).unwrap();
        // Format byte, then bincode's varint variant index.
        assert_eq!(plain[1], 0);
        assert_eq!(traced_bytes[1], 22);
        assert_eq!(
            EventKind::decode(&traced_bytes, &Limits::DEFAULT).unwrap(),
            traced()
        );
        assert_eq!(
            EventKind::decode(&plain, &Limits::DEFAULT).unwrap(),
            started(None)
        );
    }

    #[test]
    fn a_start_under_rules_is_variant_23_with_or_without_a_context() {
        let context = match traced() {
            EventKind::WorkflowStarted(s) => s.trace_context,
            _ => None,
        };
        for trace_context in [None, context] {
            let start = started_under(trace_context, ReplayRules::CURRENT);
            let bytes = start.encode(&Limits::DEFAULT).unwrap();
            assert_eq!(bytes[1], 23);
            assert_eq!(EventKind::decode(&bytes, &Limits::DEFAULT).unwrap(), start);
            let json = serde_json::to_string(&start).unwrap();
            assert!(
                json.starts_with(r#"{"WorkflowStartedUnderRules":"#),
                "{json}"
            );
            assert_eq!(serde_json::from_str::<EventKind>(&json).unwrap(), start);
        }
        // Rules this build does not know still decode (the executor refuses them).
        let newer = started_under(None, ReplayRules::from_bits(1 << 40));
        let bytes = newer.encode(&Limits::DEFAULT).unwrap();
        assert_eq!(EventKind::decode(&bytes, &Limits::DEFAULT).unwrap(), newer);
    }

    #[test]
    fn local_activity_kinds_are_variants_25_and_26() {
        use std::time::Duration;
        let scheduled = EventKind::LocalActivityScheduled(LocalActivityScheduled {
            activity_type: ActivityType::new("price").unwrap(),
            input: Payload::unit(),
            attempt: 1,
        });
        let backoff = EventKind::LocalActivityBackoff(LocalActivityBackoff {
            scheduled: crate::ids::Seq::new(2),
            failure: crate::failure::Failure::application("Down", "later"),
            attempt: 3,
            backoff: Duration::from_secs(4),
        });
        for (kind, variant) in [(scheduled, 25), (backoff, 26)] {
            let bytes = kind.encode(&Limits::DEFAULT).unwrap();
            assert_eq!(bytes[1], variant);
            assert_eq!(EventKind::decode(&bytes, &Limits::DEFAULT).unwrap(), kind);
        }
    }

    #[test]
    fn update_kinds_are_variants_27_and_28() {
        use crate::ids::{Seq, UpdateId, UpdateName};
        let accepted = EventKind::UpdateAccepted(UpdateAccepted {
            update_id: UpdateId::new("u-1").unwrap(),
            name: UpdateName::new("approve").unwrap(),
            input: Payload::unit(),
        });
        let completed = EventKind::UpdateCompleted(UpdateCompleted {
            accepted: Seq::new(3),
            update_id: UpdateId::new("u-1").unwrap(),
            outcome: UpdateOutcome::Completed(Payload::unit()),
        });
        let failed = EventKind::UpdateCompleted(UpdateCompleted {
            accepted: Seq::new(3),
            update_id: UpdateId::new("u-1").unwrap(),
            outcome: UpdateOutcome::Failed(crate::failure::Failure::application("No", "no")),
        });
        for (kind, variant) in [(accepted, 27), (completed, 28), (failed, 28)] {
            let bytes = kind.encode(&Limits::DEFAULT).unwrap();
            assert_eq!(bytes[1], variant);
            assert_eq!(EventKind::decode(&bytes, &Limits::DEFAULT).unwrap(), kind);
        }
    }

    #[test]
    fn scheduled_activities_take_the_oldest_shape_that_holds_their_options() {
        use crate::options::{ActivityOptions, RetryPolicy};
        let scheduled = |options: ActivityOptions, priority: Option<Priority>| {
            EventKind::ActivityScheduled(ActivityScheduled {
                activity_type: ActivityType::new("charge").unwrap(),
                task_queue: TaskQueue::new("default").unwrap(),
                input: Payload::unit(),
                options,
                priority,
            })
        };
        let allow_list = ActivityOptions {
            retry: RetryPolicy {
                retry_on: vec!["Busy".into()],
                ..RetryPolicy::default()
            },
            ..ActivityOptions::default()
        };
        let waits = ActivityOptions {
            schedule_to_start: Some(std::time::Duration::from_secs(5)),
            ..ActivityOptions::default()
        };
        for (kind, variant) in [
            (scheduled(ActivityOptions::default(), None), 1),
            (
                scheduled(ActivityOptions::default(), Some(Priority::HIGHEST)),
                24,
            ),
            (scheduled(allow_list, None), 30),
            (scheduled(waits, Some(Priority::HIGHEST)), 30),
        ] {
            let bytes = kind.encode(&Limits::DEFAULT).unwrap();
            assert_eq!(bytes[1], variant, "{kind:?}");
            assert_eq!(EventKind::decode(&bytes, &Limits::DEFAULT).unwrap(), kind);
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(serde_json::from_str::<EventKind>(&json).unwrap(), kind);
        }
    }

    #[test]
    fn a_child_start_with_options_is_variant_31_and_one_without_keeps_11() {
        use crate::options::{ParentClosePolicy, RetryPolicy};
        let child = |retry: Option<RetryPolicy>| {
            EventKind::ChildWorkflowStarted(ChildWorkflowStarted {
                workflow_type: WorkflowType::new("ship").unwrap(),
                workflow_id: WorkflowId::new("ship-1").unwrap(),
                run_id: RunId::from_uuid(uuid::Uuid::from_u128(3)),
                input: Payload::unit(),
                task_queue: TaskQueue::new("default").unwrap(),
                parent_close_policy: ParentClosePolicy::Abandon,
                run_timeout: None,
                execution_timeout: None,
                retry,
            })
        };
        for (kind, variant) in [(child(None), 11), (child(Some(RetryPolicy::default())), 31)] {
            let bytes = kind.encode(&Limits::DEFAULT).unwrap();
            assert_eq!(bytes[1], variant, "{kind:?}");
            assert_eq!(EventKind::decode(&bytes, &Limits::DEFAULT).unwrap(), kind);
        }
    }

    #[test]
    fn a_workflow_timeout_is_variant_29() {
        use crate::options::WorkflowTimeout;
        for (timeout, index) in [(WorkflowTimeout::Run, 0), (WorkflowTimeout::Execution, 1)] {
            let kind = EventKind::WorkflowTimedOut(WorkflowTimedOut { timeout });
            let bytes = kind.encode(&Limits::DEFAULT).unwrap();
            assert_eq!(bytes[1..], [29, index]);
            assert_eq!(EventKind::decode(&bytes, &Limits::DEFAULT).unwrap(), kind);
        }
    }

    #[test]
    fn json_names_the_stored_variant() {
        let json = serde_json::to_string(&traced()).unwrap();
        assert!(json.starts_with(r#"{"WorkflowStartedInTrace":"#), "{json}");
        assert_eq!(serde_json::from_str::<EventKind>(&json).unwrap(), traced());
        let json = serde_json::to_string(&started(None)).unwrap();
        assert!(json.starts_with(r#"{"WorkflowStarted":"#), "{json}");
        assert!(!json.contains("trace_context"), "{json}");
        assert_eq!(
            serde_json::from_str::<EventKind>(&json).unwrap(),
            started(None)
        );
    }

    #[test]
    fn a_bad_stored_context_is_a_decode_error() {
        let json = serde_json::to_string(&traced())
            .unwrap()
            .replace("00f067aa0ba902b7", "0000000000000000");
        assert!(serde_json::from_str::<EventKind>(&json).is_err());
    }
}

//! How an [`EventKind`] is stored: serde over an enum with one variant more than `EventKind`.
//!
//! bincode stores no field names, so a field can never be added to a stored struct: a new
//! shape is a new variant, appended. `WorkflowStarted` gained its trace context that way. In
//! code a start is one struct with an optional context; in storage a start without a context
//! is variant 0 with the original seven fields (so it keeps its old bytes exactly, and old
//! bytes keep decoding), and one with a context is variant 22, `WorkflowStartedInTrace`, with
//! eight. JSON goes through the same two enums, so both formats agree.
//!
//! The next new event kind is stored as variant 23: append it to `EventKind` and to the list
//! at the end of `stored_kinds!` below (which puts it after `WorkflowStartedInTrace`).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::event::*;
use crate::ids::{RunId, TaskQueue, WorkflowId, WorkflowType};
use crate::options::{ParentRun, RunOrigin};
use crate::payload::Payload;

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

/// The stored enums and both directions of serde, from one list of the variants whose stored
/// shape is their struct's (all but `WorkflowStarted`, which is first and last).
macro_rules! stored_kinds {
    ($($kind:ident($shape:ty)),* $(,)?) => {
        /// The stored enum, read.
        #[derive(Deserialize)]
        #[serde(rename = "EventKind")]
        enum StoredKind {
            WorkflowStarted(StartedV1),
            $($kind($shape),)*
            WorkflowStartedInTrace(WorkflowStarted),
        }

        /// The stored enum, written from a borrowed `EventKind` (no copy of any payload).
        #[derive(Serialize)]
        #[serde(rename = "EventKind")]
        enum StoredKindRef<'a> {
            WorkflowStarted(StartedV1Ref<'a>),
            $($kind(&'a $shape),)*
            WorkflowStartedInTrace(&'a WorkflowStarted),
        }

        impl Serialize for EventKind {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let stored = match self {
                    EventKind::WorkflowStarted(s) if s.trace_context.is_some() => {
                        StoredKindRef::WorkflowStartedInTrace(s)
                    }
                    EventKind::WorkflowStarted(s) => StoredKindRef::WorkflowStarted(StartedV1Ref {
                        workflow_type: &s.workflow_type,
                        workflow_id: &s.workflow_id,
                        run_id: &s.run_id,
                        input: &s.input,
                        task_queue: &s.task_queue,
                        origin: &s.origin,
                        parent: &s.parent,
                    }),
                    $(EventKind::$kind(e) => StoredKindRef::$kind(e),)*
                };
                stored.serialize(serializer)
            }
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
                    }),
                    // A context-less start stored in the new shape reads as the old one does.
                    StoredKind::WorkflowStartedInTrace(s) => EventKind::WorkflowStarted(s),
                    $(StoredKind::$kind(e) => EventKind::$kind(e),)*
                })
            }
        }
    };
}

// In stored order: the position of each is its encoding.
stored_kinds! {
    ActivityScheduled(ActivityScheduled),
    ActivityCompleted(ActivityCompleted),
    ActivityFailed(ActivityFailed),
    ActivityTimedOut(ActivityTimedOut),
    ActivityCancelRequested(ActivityCancelRequested),
    ActivityCancelled(ActivityCancelled),
    TimerStarted(TimerStarted),
    TimerFired(TimerFired),
    TimerCancelled(TimerCancelled),
    SignalReceived(SignalReceived),
    ChildWorkflowStarted(ChildWorkflowStarted),
    ChildWorkflowCompleted(ChildWorkflowCompleted),
    ChildWorkflowFailed(ChildWorkflowFailed),
    ChildWorkflowCancelRequested(ChildWorkflowCancelRequested),
    CancelRequested(CancelRequested),
    MarkerRecorded(Marker),
    WorkflowCompleted(WorkflowCompleted),
    WorkflowFailed(WorkflowFailed),
    WorkflowCancelled(WorkflowCancelled),
    WorkflowTerminated(WorkflowTerminated),
    WorkflowContinuedAsNew(WorkflowContinuedAsNew),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::Limits;
    use crate::trace::TraceContext;

    fn started(trace_context: Option<TraceContext>) -> EventKind {
        EventKind::WorkflowStarted(WorkflowStarted {
            workflow_type: WorkflowType::new("order").unwrap(),
            workflow_id: WorkflowId::new("order-1").unwrap(),
            run_id: RunId::from_uuid(uuid::Uuid::from_u128(7)),
            input: Payload::encode(&1, &Limits::DEFAULT).unwrap(),
            task_queue: TaskQueue::new("default").unwrap(),
            origin: RunOrigin::Client,
            parent: None,
            trace_context,
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

//! Runs, histories and payloads as JSON, for tools: the UI's API and the CLI's `--json`
//! print the same shapes. Payloads are decoded wherever the converter's codecs and keys
//! allow; otherwise a payload reads `{"unreadable": "why"}`.

use reprise_engine::{BatchProgress, Description, RunOutcome, RunSummary};
use reprise_history::timeline::describe_event;
use reprise_history::{DataConverter, Event, Failure, Payload};
use serde_json::{Value, json};

/// A payload as JSON: its value, or a string saying what stands in the way.
pub fn payload_json(converter: &DataConverter, payload: &Payload) -> Value {
    match converter.to_json(payload) {
        Ok(Some(value)) => value,
        Ok(None) => json!({ "unreadable": format!("bincode, {} bytes", payload.len()) }),
        Err(e) => json!({ "unreadable": e.to_string() }),
    }
}

/// A failure as JSON: kind, type, message, every cause, details.
pub fn failure_json(converter: &DataConverter, failure: &Failure) -> Value {
    json!({
        "kind": format!("{:?}", failure.kind),
        "error_type": failure.error_type,
        "message": failure.message,
        "retryable": failure.retryable,
        "causes": failure.causes.iter().map(|c| json!({
            "error_type": c.error_type,
            "message": c.message,
        })).collect::<Vec<_>>(),
        "details": failure.details.as_ref().map(|d| payload_json(converter, d)),
    })
}

/// A run's outcome as JSON.
pub fn outcome_json(converter: &DataConverter, outcome: &RunOutcome) -> Value {
    match outcome {
        RunOutcome::Completed { result } => {
            json!({ "status": "completed", "result": payload_json(converter, result) })
        }
        RunOutcome::Failed { failure } => {
            json!({ "status": "failed", "failure": failure_json(converter, failure) })
        }
        RunOutcome::Cancelled { details } => json!({
            "status": "cancelled",
            "details": details.as_ref().map(|d| payload_json(converter, d)),
        }),
        RunOutcome::Terminated { reason } => json!({ "status": "terminated", "reason": reason }),
        RunOutcome::ContinuedAsNew { next_run_id } => json!({
            "status": "continued_as_new",
            "next_run_id": next_run_id.to_string(),
        }),
        other => json!({ "status": format!("{other:?}") }),
    }
}

/// A run's description as JSON.
pub fn description_json(converter: &DataConverter, d: &Description) -> Value {
    json!({
        "workflow_id": d.workflow_id.as_str(),
        "run_id": d.run_id.to_string(),
        "workflow_type": d.workflow_type.as_str(),
        "task_queue": d.task_queue.as_str(),
        "status": d.status.as_str(),
        "parked_reason": d.parked_reason,
        "parked_build": d.parked_build,
        "parent_run_id": d.parent_run_id.map(|r| r.to_string()),
        "previous_run_id": d.previous_run_id.map(|r| r.to_string()),
        "head_seq": d.head_seq.get(),
        "started_at": d.started_at.to_string(),
        "closed_at": d.closed_at.map(|t| t.to_string()),
        "last_event_at": d.last_event_at.to_string(),
        "input": payload_json(converter, &d.input),
        "outcome": d.outcome.as_ref().map(|o| outcome_json(converter, o)),
        "custom_status": d.custom_status.as_ref().map(|(s, _)| payload_json(converter, s)),
        "custom_status_set_at": d.custom_status.as_ref().map(|(_, at)| at.to_string()),
        "attempt": d.attempt,
        "deadline": d.deadline.map(|t| t.to_string()),
        "pending_activities": d.pending_activities.iter().map(|a| json!({
            "scheduled_seq": a.scheduled_seq.get(),
            "activity_type": a.activity_type.as_str(),
            "attempt": a.attempt,
            "running": a.running,
            "last_failure": a.last_failure,
            "progress": a.progress.as_ref().map(|p| payload_json(converter, p)),
            "last_heartbeat_at": a.last_heartbeat_at.map(|t| t.to_string()),
            "lease_owner": a.lease_owner,
            "lease_expires_at": a.lease_expires_at.map(|t| t.to_string()),
            "next_attempt_at": a.next_attempt_at.map(|t| t.to_string()),
        })).collect::<Vec<_>>(),
    })
}

/// Events as JSON: seq, time, kind, a one-line summary, and every payload decoded.
pub fn history_json(converter: &DataConverter, events: &[Event]) -> Value {
    Value::Array(
        events
            .iter()
            .map(|e| {
                json!({
                    "seq": e.seq.get(),
                    "recorded_at": e.recorded_at.to_string(),
                    "kind": e.kind.name(),
                    "summary": describe_event(converter, &e.kind, usize::MAX),
                    "payloads": e.kind.payloads().into_iter().map(|p| payload_json(converter, p)).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

/// A listed run as JSON.
pub fn summary_json(run: &RunSummary) -> Value {
    json!({
        "workflow_id": run.workflow_id.as_str(),
        "run_id": run.run_id.to_string(),
        "workflow_type": run.workflow_type.as_str(),
        "task_queue": run.task_queue.as_str(),
        "status": run.status.as_str(),
        "parked_reason": run.parked_reason,
        "parked_build": run.parked_build,
        "head_seq": run.head_seq.get(),
        "parent_run_id": run.parent_run_id.map(|r| r.to_string()),
        "previous_run_id": run.previous_run_id.map(|r| r.to_string()),
        "created_at": run.created_at.to_string(),
        "closed_at": run.closed_at.map(|t| t.to_string()),
        "last_event_at": run.last_event_at.to_string(),
    })
}

/// A batch as JSON.
pub fn batch_json(b: &BatchProgress) -> Value {
    json!({
        "batch_id": b.batch_id.to_string(),
        "action": b.action.name(),
        "matched": b.matched, "done": b.done, "skipped": b.skipped, "failed": b.failed,
        "last_error": b.last_error,
        "created_at": b.created_at.to_string(),
        "updated_at": b.updated_at.to_string(),
        "finished_at": b.finished_at.map(|t| t.to_string()),
    })
}

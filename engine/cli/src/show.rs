//! What the CLI prints: runs, histories and results, as text for people or JSON for tools.
//! Payloads are shown decoded (JSON) wherever the CLI's codecs and keys allow.

use reprise_engine::{Description, RunOutcome, RunSummary};
use reprise_history::timeline::{describe_event, show_payload};
use reprise_history::{DataConverter, Event, Failure, Payload};
use serde_json::{Value, json};

/// A payload as JSON: its value, or a string saying what stands in the way.
pub(crate) fn payload_json(converter: &DataConverter, payload: &Payload) -> Value {
    match converter.to_json(payload) {
        Ok(Some(value)) => value,
        Ok(None) => json!({ "unreadable": format!("bincode, {} bytes", payload.len()) }),
        Err(e) => json!({ "unreadable": e.to_string() }),
    }
}

/// A failure as JSON: kind, type, message, every cause, details.
pub(crate) fn failure_json(converter: &DataConverter, failure: &Failure) -> Value {
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
pub(crate) fn outcome_json(converter: &DataConverter, outcome: &RunOutcome) -> Value {
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

/// A run's outcome for people.
pub(crate) fn outcome_text(converter: &DataConverter, outcome: &RunOutcome) -> String {
    match outcome {
        RunOutcome::Completed { result } => {
            format!("completed: {}", show_payload(converter, result, 2_000))
        }
        RunOutcome::Failed { failure } => format!("failed: {failure}"),
        RunOutcome::Cancelled { .. } => "cancelled".to_string(),
        RunOutcome::Terminated { reason } => format!("terminated: {reason}"),
        RunOutcome::ContinuedAsNew { next_run_id } => {
            format!("continued as new run {next_run_id}")
        }
        other => format!("{other:?}"),
    }
}

pub(crate) fn description_json(converter: &DataConverter, d: &Description) -> Value {
    json!({
        "workflow_id": d.workflow_id.as_str(),
        "run_id": d.run_id.to_string(),
        "workflow_type": d.workflow_type.as_str(),
        "task_queue": d.task_queue.as_str(),
        "status": d.status.as_str(),
        "parked_reason": d.parked_reason,
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
        })).collect::<Vec<_>>(),
    })
}

pub(crate) fn description_text(converter: &DataConverter, d: &Description) -> String {
    let mut out = format!(
        "workflow {}  run {}\ntype {}  queue {}  status {}  head seq {}\nstarted {}",
        d.workflow_id, d.run_id, d.workflow_type, d.task_queue, d.status, d.head_seq, d.started_at
    );
    match d.closed_at {
        Some(closed) => out.push_str(&format!("  closed {closed}")),
        None => out.push_str(&format!("  last event {}", d.last_event_at)),
    }
    out.push_str(&format!(
        "\ninput {}",
        show_payload(converter, &d.input, 2_000)
    ));
    if d.attempt > 1 {
        out.push_str(&format!("\nattempt {} (a workflow retry)", d.attempt));
    }
    if let Some(deadline) = d.deadline {
        out.push_str(&format!("\ntimes out at {deadline}"));
    }
    if let Some((status, at)) = &d.custom_status {
        let status = show_payload(converter, status, 2_000);
        out.push_str(&format!("\nstatus {status}  (set {at})"));
    }
    if let Some(reason) = &d.parked_reason {
        out.push_str(&format!("\nparked: {reason}"));
    }
    if let Some(outcome) = &d.outcome {
        out.push_str(&format!("\n{}", outcome_text(converter, outcome)));
    }
    for a in &d.pending_activities {
        let state = if a.running { "running" } else { "waiting" };
        let failure = a
            .last_failure
            .as_ref()
            .map(|f| format!(", last failure: {f}"))
            .unwrap_or_default();
        let progress = a
            .progress
            .as_ref()
            .map(|p| format!(", progress {}", show_payload(converter, p, 200)))
            .unwrap_or_default();
        out.push_str(&format!(
            "\n  pending: seq {} {} attempt {} ({state}{progress}{failure})",
            a.scheduled_seq, a.activity_type, a.attempt
        ));
    }
    out
}

pub(crate) fn history_json(converter: &DataConverter, events: &[Event]) -> Value {
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

pub(crate) fn summary_json(run: &RunSummary) -> Value {
    json!({
        "workflow_id": run.workflow_id.as_str(),
        "run_id": run.run_id.to_string(),
        "workflow_type": run.workflow_type.as_str(),
        "status": run.status.as_str(),
        "parked_reason": run.parked_reason,
        "created_at": run.created_at.to_string(),
        "closed_at": run.closed_at.map(|t| t.to_string()),
        "last_event_at": run.last_event_at.to_string(),
    })
}

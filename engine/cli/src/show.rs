//! What the CLI prints for people: runs and results as text. The JSON it prints for tools
//! is `reprise_ui::json`'s, which the web UI's API prints too.

use reprise_engine::{Description, RunOutcome};
use reprise_history::DataConverter;
use reprise_history::timeline::show_payload;
pub(crate) use reprise_ui::json::{
    description_json, history_json, outcome_json, payload_json, summary_json,
};

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

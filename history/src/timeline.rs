//! A history as a readable timeline: one line per event, with its payloads decoded.

use crate::event::{Event, EventKind, Marker};
use crate::payload::{DataConverter, Payload};

/// How a payload reads to a person: its JSON (shortened past `max_chars`), or what stands in
/// the way (old bincode, a codec or key not configured here).
pub fn show_payload(converter: &DataConverter, payload: &Payload, max_chars: usize) -> String {
    match converter.to_json(payload) {
        Ok(Some(value)) => {
            let text = value.to_string();
            if text.chars().count() > max_chars {
                let short: String = text.chars().take(max_chars).collect();
                format!("{short}…")
            } else {
                text
            }
        }
        Ok(None) => format!("<bincode, {} bytes>", payload.len()),
        Err(e) => format!("<{}: {e}>", payload.format()),
    }
}

/// What identifies an event, with its payload shown (see [`show_payload`]).
pub fn describe_event(converter: &DataConverter, kind: &EventKind, max_chars: usize) -> String {
    let show = |p: &Payload| show_payload(converter, p, max_chars);
    match kind {
        EventKind::WorkflowStarted(s) => format!(
            "{} {} on {} input {}",
            s.workflow_type,
            s.workflow_id,
            s.task_queue,
            show(&s.input)
        ),
        EventKind::ActivityScheduled(s) => format!(
            "{} on {} input {}",
            s.activity_type,
            s.task_queue,
            show(&s.input)
        ),
        EventKind::ActivityCompleted(c) => format!(
            "seq {} after {} attempt(s): {}",
            c.scheduled,
            c.attempt,
            show(&c.result)
        ),
        EventKind::ActivityFailed(f) => format!(
            "seq {} after {} attempt(s): {}",
            f.scheduled, f.attempt, f.failure
        ),
        EventKind::ActivityTimedOut(t) => format!(
            "seq {}: {:?} after {} attempt(s)",
            t.scheduled, t.timeout, t.attempt
        ),
        EventKind::ActivityCancelRequested(c) => format!("seq {}", c.scheduled),
        EventKind::ActivityCancelled(c) => format!("seq {}", c.scheduled),
        EventKind::TimerStarted(t) => format!("{:?}", t.duration),
        EventKind::TimerFired(t) => format!("seq {}", t.started),
        EventKind::TimerCancelled(t) => format!("seq {}", t.started),
        EventKind::ChildWorkflowStarted(c) => format!(
            "{} {} input {}",
            c.workflow_type,
            c.workflow_id,
            show(&c.input)
        ),
        EventKind::ChildWorkflowCompleted(c) => {
            format!("seq {}: {}", c.started, show(&c.result))
        }
        EventKind::ChildWorkflowFailed(f) => format!("seq {}: {}", f.started, f.failure),
        EventKind::ChildWorkflowCancelRequested(c) => format!("seq {}", c.started),
        EventKind::SignalReceived(s) => format!("{} {}", s.name, show(&s.payload)),
        EventKind::CancelRequested(c) => c.reason.clone(),
        EventKind::MarkerRecorded(Marker::Patch { patch_id }) => format!("patch {patch_id}"),
        EventKind::MarkerRecorded(Marker::SideEffect { value }) => {
            format!("side effect {}", show(value))
        }
        EventKind::WorkflowCompleted(c) => show(&c.result),
        EventKind::WorkflowFailed(f) => f.failure.to_string(),
        EventKind::WorkflowCancelled(c) => c.details.as_ref().map(show).unwrap_or_default(),
        EventKind::WorkflowTerminated(t) => t.reason.clone(),
        EventKind::WorkflowTimedOut(t) => t.timeout.reason(),
        EventKind::WorkflowContinuedAsNew(c) => {
            format!("as run {} input {}", c.new_run_id, show(&c.input))
        }
        EventKind::LocalActivityScheduled(s) => format!(
            "{} (local) attempt {} input {}",
            s.activity_type,
            s.attempt,
            show(&s.input)
        ),
        EventKind::LocalActivityBackoff(b) => format!(
            "seq {} after {} attempt(s), next in {:?}: {}",
            b.scheduled, b.attempt, b.backoff, b.failure
        ),
        EventKind::UpdateAccepted(u) => {
            format!("{} id {} input {}", u.name, u.update_id, show(&u.input))
        }
        EventKind::UpdateCompleted(c) => match &c.outcome {
            crate::UpdateOutcome::Completed(result) => {
                format!(
                    "seq {} id {} result {}",
                    c.accepted,
                    c.update_id,
                    show(result)
                )
            }
            crate::UpdateOutcome::Failed(failure) => {
                format!("seq {} id {} failed: {failure}", c.accepted, c.update_id)
            }
        },
    }
}

/// One line per event: seq, time since the first event, kind, and what identifies it.
pub fn render(events: &[Event], converter: &DataConverter) -> String {
    let start = events.first().map_or(0, |e| e.recorded_at.as_unix_micros());
    let mut out = String::new();
    for event in events {
        let ms = (event.recorded_at.as_unix_micros() - start) as f64 / 1000.0;
        out.push_str(&format!(
            "{:>4}  +{:>9.1} ms  {:<28} {}\n",
            event.seq,
            ms,
            event.kind.name(),
            describe_event(converter, &event.kind, 120)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{HistoryBuilder, Limits, WorkflowCompleted};

    #[test]
    fn shows_json_payloads_and_what_hides_the_others() {
        let c = DataConverter::default();
        let mut h = HistoryBuilder::started(
            "greet",
            "greet-1",
            Payload::encode(&serde_json::json!({"name": "Ada"}), &Limits::DEFAULT).unwrap(),
        )
        .unwrap();
        h.push(EventKind::WorkflowCompleted(WorkflowCompleted {
            result: Payload::encode_bincode_v1("hello").unwrap(),
        }));
        let text = render(h.events(), &c);
        assert!(text.contains(r#"input {"name":"Ada"}"#), "{text}");
        assert!(text.contains("<bincode, 7 bytes>"), "{text}");
        let long = Payload::encode(&"x".repeat(500), &Limits::DEFAULT).unwrap();
        assert_eq!(show_payload(&c, &long, 10).chars().count(), 11);
    }
}

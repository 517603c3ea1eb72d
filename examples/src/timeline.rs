//! A recorded history as a readable timeline, one line per event.

use reprise_history::{EventKind, Marker, RecordedHistory};

/// One line per event: seq, time since the start, kind, and what identifies it.
pub fn render(history: &RecordedHistory) -> String {
    let start = history
        .events()
        .first()
        .map_or(0, |e| e.recorded_at.as_unix_micros());
    let mut out = String::new();
    for event in history.events() {
        let ms = (event.recorded_at.as_unix_micros() - start) as f64 / 1000.0;
        let detail = match &event.kind {
            EventKind::WorkflowStarted(s) => format!("{} {}", s.workflow_type, s.workflow_id),
            EventKind::ActivityScheduled(s) => format!("{} on {}", s.activity_type, s.task_queue),
            EventKind::ActivityCompleted(c) => {
                format!("seq {} after {} attempt(s)", c.scheduled, c.attempt)
            }
            EventKind::ActivityFailed(f) => format!("seq {}: {}", f.scheduled, f.failure),
            EventKind::ActivityTimedOut(t) => format!("seq {}: {:?}", t.scheduled, t.timeout),
            EventKind::TimerStarted(t) => format!("{:?}", t.duration),
            EventKind::TimerFired(t) => format!("seq {}", t.started),
            EventKind::SignalReceived(s) => s.name.to_string(),
            EventKind::MarkerRecorded(Marker::Patch { patch_id }) => format!("patch {patch_id}"),
            EventKind::WorkflowFailed(f) => f.failure.to_string(),
            _ => String::new(),
        };
        out.push_str(&format!(
            "{:>4}  +{:>9.1} ms  {:<24} {}\n",
            event.seq,
            ms,
            event.kind.name(),
            detail
        ));
    }
    out
}

//! A history as a timeline: activities, timers, children and local activities as bars from
//! their scheduling to their outcome (open ones to now), signals, updates and cancel requests
//! as marks, on one time axis, drawn as SVG on the server.

use maud::{Markup, PreEscaped, html};
use reprise_history::{Event, EventKind, Seq, Timestamp};

use crate::layout::span;

/// How an operation on the timeline ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Open,
    Completed,
    Failed,
    TimedOut,
    Cancelled,
}

impl Outcome {
    fn class(self) -> &'static str {
        match self {
            Outcome::Open => "open",
            Outcome::Completed => "completed",
            Outcome::Failed => "failed",
            Outcome::TimedOut => "timed_out",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// One operation with a duration.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Bar {
    /// `activity`, `timer`, `child`, `local activity`.
    pub(crate) kind: &'static str,
    pub(crate) label: String,
    /// The event that began it.
    pub(crate) seq: Seq,
    pub(crate) start: Timestamp,
    pub(crate) end: Option<Timestamp>,
    pub(crate) outcome: Outcome,
    /// Attempts its outcome records (activities).
    pub(crate) attempts: Option<u32>,
}

/// One instant: a signal, an update, a cancel request, the run's close.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Mark {
    pub(crate) label: String,
    pub(crate) seq: Seq,
    pub(crate) at: Timestamp,
}

/// The bars and marks of a run of events (a page of a history: operations begun before it
/// are not drawn, and outcomes after it leave bars open).
pub(crate) fn lay_out(events: &[Event]) -> (Vec<Bar>, Vec<Mark>) {
    let mut bars: Vec<Bar> = Vec::new();
    let mut marks = Vec::new();
    let close = |bars: &mut Vec<Bar>,
                 began: Seq,
                 at: Timestamp,
                 outcome: Outcome,
                 attempts: Option<u32>| {
        if let Some(bar) = bars.iter_mut().find(|b| b.seq == began && b.end.is_none()) {
            bar.end = Some(at);
            bar.outcome = outcome;
            bar.attempts = attempts;
        }
    };
    for event in events {
        let (seq, at) = (event.seq, event.recorded_at);
        let open = |kind, label: String| Bar {
            kind,
            label,
            seq,
            start: at,
            end: None,
            outcome: Outcome::Open,
            attempts: None,
        };
        match &event.kind {
            EventKind::ActivityScheduled(s) => {
                bars.push(open("activity", s.activity_type.to_string()))
            }
            EventKind::LocalActivityScheduled(s) => bars.push(Bar {
                end: Some(at),
                outcome: Outcome::Completed,
                attempts: Some(s.attempt),
                ..open("local activity", s.activity_type.to_string())
            }),
            EventKind::TimerStarted(t) => bars.push(open(
                "timer",
                format!(
                    "timer {}",
                    span(i64::try_from(t.duration.as_micros()).unwrap_or(i64::MAX))
                ),
            )),
            EventKind::ChildWorkflowStarted(c) => bars.push(open(
                "child",
                format!("{} {}", c.workflow_type, c.workflow_id),
            )),
            EventKind::ActivityCompleted(c) => close(
                &mut bars,
                c.scheduled,
                at,
                Outcome::Completed,
                Some(c.attempt),
            ),
            EventKind::ActivityFailed(f) => {
                close(&mut bars, f.scheduled, at, Outcome::Failed, Some(f.attempt))
            }
            EventKind::ActivityTimedOut(t) => close(
                &mut bars,
                t.scheduled,
                at,
                Outcome::TimedOut,
                Some(t.attempt),
            ),
            EventKind::ActivityCancelled(c) => close(
                &mut bars,
                c.scheduled,
                at,
                Outcome::Cancelled,
                Some(c.attempt),
            ),
            EventKind::TimerFired(t) => close(&mut bars, t.started, at, Outcome::Completed, None),
            EventKind::TimerCancelled(t) => {
                close(&mut bars, t.started, at, Outcome::Cancelled, None)
            }
            EventKind::ChildWorkflowCompleted(c) => {
                close(&mut bars, c.started, at, Outcome::Completed, None)
            }
            EventKind::ChildWorkflowFailed(c) => {
                close(&mut bars, c.started, at, Outcome::Failed, None)
            }
            EventKind::SignalReceived(s) => marks.push(Mark {
                label: format!("signal {}", s.name),
                seq,
                at,
            }),
            EventKind::UpdateAccepted(u) => marks.push(Mark {
                label: format!("update {}", u.name),
                seq,
                at,
            }),
            EventKind::UpdateCompleted(_) => marks.push(Mark {
                label: "update done".to_string(),
                seq,
                at,
            }),
            EventKind::CancelRequested(_) => marks.push(Mark {
                label: "cancel requested".to_string(),
                seq,
                at,
            }),
            EventKind::WorkflowCompleted(_)
            | EventKind::WorkflowFailed(_)
            | EventKind::WorkflowCancelled(_)
            | EventKind::WorkflowTerminated(_)
            | EventKind::WorkflowContinuedAsNew(_)
            | EventKind::WorkflowTimedOut(_) => marks.push(Mark {
                label: event.kind.name().to_string(),
                seq,
                at,
            }),
            EventKind::WorkflowStarted(_)
            | EventKind::ActivityCancelRequested(_)
            | EventKind::ChildWorkflowCancelRequested(_)
            | EventKind::MarkerRecorded(_)
            | EventKind::LocalActivityBackoff(_) => {}
        }
    }
    (bars, marks)
}

const WIDTH: f64 = 1000.0;
const LABELS: f64 = 240.0;
const ROW: f64 = 22.0;
const AXIS: f64 = 24.0;

/// The timeline as SVG; each bar and mark links to its event in the list (`#seq-N`).
pub(crate) fn svg(events: &[Event], now: Timestamp) -> Markup {
    let (bars, marks) = lay_out(events);
    let Some(first) = events.first() else {
        return html! { p.empty { "No events." } };
    };
    let t0 = first.recorded_at.as_unix_micros();
    let last = events.last().map_or(t0, |e| e.recorded_at.as_unix_micros());
    let open = bars.iter().any(|b| b.end.is_none());
    let t1 = if open {
        now.as_unix_micros().max(last)
    } else {
        last
    }
    .max(t0 + 1);
    let x = |t: Timestamp| {
        LABELS + (t.as_unix_micros() - t0) as f64 / (t1 - t0) as f64 * (WIDTH - LABELS - 10.0)
    };
    let rows = bars.len() + usize::from(!marks.is_empty());
    let height = AXIS + ROW * rows as f64 + 6.0;
    html! {
        svg.timeline #timeline viewBox=(format!("0 0 {WIDTH} {height}")) role="img" aria-label="Timeline of the run" {
            @for i in 0..=4 {
                @let frac = f64::from(i) / 4.0;
                @let tx = LABELS + frac * (WIDTH - LABELS - 10.0);
                line.tick x1=(tx) x2=(tx) y1=(AXIS - 6.0) y2=(height) {}
                text.axis x=(tx) y=(AXIS - 10.0) text-anchor=(if i == 4 { "end" } else if i == 0 { "start" } else { "middle" }) {
                    "+" (span(((t1 - t0) as f64 * frac) as i64))
                }
            }
            @for (row, bar) in bars.iter().enumerate() {
                @let y = AXIS + ROW * row as f64;
                @let x0 = x(bar.start);
                @let x1 = bar.end.map_or(x(Timestamp::from_unix_micros(t1)), x);
                a href=(format!("#seq-{}", bar.seq)) data-seq=(bar.seq.get()) class=(format!("bar {} {}", bar.kind.replace(' ', "-"), bar.outcome.class())) {
                    title { (bar_title(bar)) }
                    text.label x="4" y=(y + 15.0) { (truncate(&bar.label, 34)) }
                    rect x=(x0) y=(y + 4.0) width=((x1 - x0).max(3.0)) height=(ROW - 8.0) rx="3" {}
                }
            }
            @if !marks.is_empty() {
                @let y = AXIS + ROW * bars.len() as f64;
                text.label x="4" y=(y + 15.0) { "signals, updates, close" }
                @for mark in &marks {
                    a.mark href=(format!("#seq-{}", mark.seq)) data-seq=(mark.seq.get()) {
                        title { (format!("seq {}: {}", mark.seq, mark.label)) }
                        (PreEscaped(format!(r#"<path d="M{:.1} {:.1} l5 7 l-5 7 l-5 -7 z"></path>"#, x(mark.at), y + 4.0)))
                    }
                }
            }
        }
    }
}

fn bar_title(bar: &Bar) -> String {
    let took = bar
        .end
        .map(|end| span(end.as_unix_micros() - bar.start.as_unix_micros()))
        .unwrap_or_else(|| "still open".to_string());
    let attempts = bar
        .attempts
        .map(|a| format!(", {a} attempt(s)"))
        .unwrap_or_default();
    format!(
        "seq {}: {} {} — {} ({took}{attempts})",
        bar.seq,
        bar.kind,
        bar.label,
        bar.outcome.class()
    )
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let short: String = text.chars().take(max - 1).collect();
    format!("{short}…")
}

#[cfg(test)]
mod tests {
    use super::*;
    use reprise_history::{
        ActivityCompleted, ActivityScheduled, ActivityType, HistoryBuilder, Payload, SignalName,
        SignalReceived, TaskQueue, TimerFired, TimerStarted,
    };
    use std::time::Duration;

    fn scheduled(activity: &str) -> EventKind {
        EventKind::ActivityScheduled(ActivityScheduled {
            activity_type: ActivityType::new(activity).unwrap(),
            task_queue: TaskQueue::new("default").unwrap(),
            input: Payload::unit(),
            options: Default::default(),
            priority: None,
        })
    }

    #[test]
    fn operations_become_bars_closed_by_their_outcomes() {
        let mut b = HistoryBuilder::started("checkout", "order-1", Payload::unit()).unwrap();
        let charge = b.push(scheduled("charge"));
        b.advance(Duration::from_secs(1));
        b.push(EventKind::ActivityCompleted(ActivityCompleted {
            scheduled: charge,
            result: Payload::unit(),
            attempt: 2,
        }));
        let timer = b.push(EventKind::TimerStarted(TimerStarted {
            duration: Duration::from_secs(60),
        }));
        b.advance(Duration::from_secs(60));
        b.push(EventKind::TimerFired(TimerFired { started: timer }));
        b.push(EventKind::SignalReceived(SignalReceived {
            name: SignalName::new("approve").unwrap(),
            payload: Payload::unit(),
        }));
        b.push(scheduled("ship"));
        let (bars, marks) = lay_out(b.events());
        let kinds: Vec<_> = bars.iter().map(|b| (b.kind, b.outcome)).collect();
        assert_eq!(
            kinds,
            vec![
                ("activity", Outcome::Completed),
                ("timer", Outcome::Completed),
                ("activity", Outcome::Open),
            ]
        );
        assert_eq!(bars[0].label, "charge");
        assert_eq!(bars[0].attempts, Some(2));
        assert_eq!(
            bars[0]
                .end
                .map(|e| e.as_unix_micros() - bars[0].start.as_unix_micros()),
            Some(1_000_000)
        );
        assert_eq!(marks.len(), 1);
        assert_eq!(marks[0].label, "signal approve");
        let drawn = svg(b.events(), b.events()[0].recorded_at).into_string();
        assert_eq!(drawn.matches("<rect").count(), 3, "{drawn}");
    }
}

//! Structural validation: each rule, and several violations reported at once.

use std::time::Duration;

use reprise_history::validate::{Violation, ViolationKind, violations};
use reprise_history::*;

fn started() -> HistoryBuilder {
    HistoryBuilder::started("demo", "demo-1", Payload::unit()).unwrap()
}

fn timer(h: &mut HistoryBuilder) -> Seq {
    h.push(EventKind::TimerStarted(TimerStarted {
        duration: Duration::from_secs(1),
    }))
}

fn activity(h: &mut HistoryBuilder) -> Seq {
    h.push(EventKind::ActivityScheduled(ActivityScheduled {
        activity_type: ActivityType::new("work").unwrap(),
        task_queue: TaskQueue::new("default").unwrap(),
        input: Payload::unit(),
        options: ActivityOptions::default(),
        priority: None,
    }))
}

fn completed(scheduled: Seq) -> EventKind {
    EventKind::ActivityCompleted(ActivityCompleted {
        scheduled,
        result: Payload::unit(),
        attempt: 1,
    })
}

fn at(seq: u64, kind: ViolationKind) -> Violation {
    Violation {
        seq: Seq::new(seq),
        kind,
    }
}

#[test]
fn a_valid_history_has_no_violations() {
    let mut h = started();
    let a = activity(&mut h);
    let t = timer(&mut h);
    h.push(completed(a));
    h.push(EventKind::TimerFired(TimerFired { started: t }));
    h.push(EventKind::WorkflowCompleted(WorkflowCompleted {
        result: Payload::unit(),
    }));
    assert_eq!(violations(h.events()), vec![]);
    assert!(h.build().is_ok());
}

#[test]
fn an_empty_history_is_invalid() {
    assert_eq!(violations(&[]), vec![at(1, ViolationKind::Empty)]);
}

#[test]
fn the_first_event_must_be_started_and_only_the_first() {
    let h = started();
    let mut events = h.events().to_vec();
    events.push(Event {
        seq: Seq::new(2),
        ..events[0].clone()
    });
    assert_eq!(
        violations(&events),
        vec![at(2, ViolationKind::StartedNotFirst)]
    );

    let mut h = started();
    timer(&mut h);
    let events: Vec<Event> = h.events()[1..]
        .iter()
        .map(|e| Event {
            seq: Seq::new(1),
            ..e.clone()
        })
        .collect();
    assert_eq!(
        violations(&events),
        vec![at(1, ViolationKind::FirstEventNotStarted)]
    );
}

#[test]
fn seqs_must_be_contiguous() {
    let mut h = started();
    timer(&mut h);
    timer(&mut h);
    let mut events = h.events().to_vec();
    events.remove(1);
    assert_eq!(
        violations(&events),
        vec![at(
            3,
            ViolationKind::SeqOutOfOrder {
                expected: Seq::new(2)
            }
        )]
    );
}

#[test]
fn nothing_may_follow_a_closing_event() {
    let mut h = started();
    h.push(EventKind::WorkflowTerminated(WorkflowTerminated {
        reason: "stop".into(),
    }));
    timer(&mut h);
    h.push(EventKind::WorkflowCompleted(WorkflowCompleted {
        result: Payload::unit(),
    }));
    let closed = ViolationKind::EventAfterClose {
        closed_at: Seq::new(2),
    };
    assert_eq!(
        violations(h.events()),
        vec![at(3, closed.clone()), at(4, closed)]
    );
}

#[test]
fn completions_must_refer_to_something_scheduled_and_unresolved() {
    let mut h = started();
    let t = timer(&mut h);
    let a = activity(&mut h);
    h.push(completed(Seq::new(99)));
    h.push(completed(t));
    h.push(completed(a));
    h.push(completed(a));
    h.push(EventKind::TimerFired(TimerFired { started: a }));
    assert_eq!(
        violations(h.events()),
        vec![
            at(
                4,
                ViolationKind::UnknownReference {
                    reference: Seq::new(99),
                    expected: "ActivityScheduled"
                }
            ),
            at(
                5,
                ViolationKind::UnknownReference {
                    reference: t,
                    expected: "ActivityScheduled"
                }
            ),
            at(
                7,
                ViolationKind::AlreadyResolved {
                    reference: a,
                    resolved_at: Seq::new(6)
                }
            ),
            at(
                8,
                ViolationKind::AlreadyResolved {
                    reference: a,
                    resolved_at: Seq::new(6)
                }
            ),
        ]
    );
}

#[test]
fn a_completion_cannot_refer_forward() {
    let mut h = started();
    h.push(completed(Seq::new(3)));
    activity(&mut h);
    assert_eq!(
        violations(h.events()),
        vec![at(
            2,
            ViolationKind::UnknownReference {
                reference: Seq::new(3),
                expected: "ActivityScheduled"
            }
        )]
    );
}

#[test]
fn cancellation_happens_in_turn() {
    let mut h = started();
    let a = activity(&mut h);
    h.push(EventKind::ActivityCancelled(ActivityCancelled {
        scheduled: a,
        attempt: 1,
        details: None,
    }));
    h.push(EventKind::ActivityCancelRequested(
        ActivityCancelRequested { scheduled: a },
    ));
    h.push(EventKind::ActivityCancelRequested(
        ActivityCancelRequested { scheduled: a },
    ));
    h.push(EventKind::ActivityCancelled(ActivityCancelled {
        scheduled: a,
        attempt: 1,
        details: None,
    }));
    assert_eq!(
        violations(h.events()),
        vec![
            at(3, ViolationKind::CancelOutOfTurn { reference: a }),
            at(5, ViolationKind::CancelOutOfTurn { reference: a }),
        ]
    );
}

#[test]
fn invalid_histories_are_refused_with_every_violation_in_the_message() {
    let mut h = started();
    h.push(completed(Seq::new(40)));
    h.push(EventKind::TimerFired(TimerFired {
        started: Seq::new(41),
    }));
    let err = h.build().unwrap_err();
    assert_eq!(
        err.to_string(),
        "history is invalid: seq 2: refers to seq 40, which is not an earlier ActivityScheduled; \
         seq 3: refers to seq 41, which is not an earlier TimerStarted"
    );
}

fn local_activity(h: &mut HistoryBuilder) -> Seq {
    h.push(EventKind::LocalActivityScheduled(LocalActivityScheduled {
        activity_type: ActivityType::new("price").unwrap(),
        input: Payload::unit(),
        attempt: 1,
    }))
}

fn backoff(scheduled: Seq) -> EventKind {
    EventKind::LocalActivityBackoff(LocalActivityBackoff {
        scheduled,
        failure: Failure::application("Down", "try later"),
        attempt: 2,
        backoff: Duration::from_secs(5),
    })
}

#[test]
fn a_local_activity_is_resolved_by_an_activity_outcome_or_a_backoff_and_never_cancelled() {
    let mut h = started();
    let done = local_activity(&mut h);
    h.push(completed(done));
    let waiting = local_activity(&mut h);
    h.push(backoff(waiting));
    assert_eq!(violations(h.events()), vec![]);

    let mut h = started();
    let local = local_activity(&mut h);
    let task = activity(&mut h);
    h.push(EventKind::ActivityCancelRequested(
        ActivityCancelRequested { scheduled: local },
    ));
    h.push(backoff(task));
    h.push(backoff(local));
    h.push(completed(local));
    let found = violations(h.events());
    let expected_local = ViolationKind::UnknownReference {
        reference: local,
        expected: "ActivityScheduled",
    };
    let expected_task = ViolationKind::UnknownReference {
        reference: task,
        expected: "LocalActivityScheduled",
    };
    assert_eq!(
        found,
        vec![
            at(4, expected_local),
            at(5, expected_task),
            at(
                7,
                ViolationKind::AlreadyResolved {
                    reference: local,
                    resolved_at: Seq::new(6)
                }
            ),
        ]
    );
}

fn accepted(h: &mut HistoryBuilder, id: &str) -> Seq {
    h.push(EventKind::UpdateAccepted(UpdateAccepted {
        update_id: UpdateId::new(id).unwrap(),
        name: UpdateName::new("add").unwrap(),
        input: Payload::unit(),
    }))
}

fn update_completed(accepted: Seq, id: &str) -> EventKind {
    EventKind::UpdateCompleted(UpdateCompleted {
        accepted,
        update_id: UpdateId::new(id).unwrap(),
        outcome: UpdateOutcome::Completed(Payload::unit()),
    })
}

#[test]
fn an_update_completes_once_what_was_accepted_and_an_id_is_accepted_once() {
    let mut h = started();
    let u = accepted(&mut h, "u1");
    h.push(update_completed(u, "u1"));
    assert_eq!(violations(h.events()), vec![]);

    let t = timer(&mut h);
    h.push(update_completed(t, "u1")); // seq 5: a timer is no update
    h.push(update_completed(u, "u1")); // seq 6: completed twice
    accepted(&mut h, "u1"); // seq 7: the id again
    assert_eq!(
        violations(h.events()),
        vec![
            at(
                5,
                ViolationKind::UnknownReference {
                    reference: t,
                    expected: "UpdateAccepted"
                }
            ),
            at(
                6,
                ViolationKind::AlreadyResolved {
                    reference: u,
                    resolved_at: Seq::new(3)
                }
            ),
            at(7, ViolationKind::UpdateAcceptedTwice { first: u }),
        ]
    );
}

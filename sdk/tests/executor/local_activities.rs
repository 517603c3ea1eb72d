//! Local activities in the executor: requests handed to the host, outcomes delivered as
//! inputs, durable backoffs as the call's own timers, and what replay says when code changes.

use std::time::Duration;

use reprise_sdk::history::*;
use reprise_sdk::*;

use crate::harness::{Run, payload};

const PRICE: ActivityDef<u32, u32> = ActivityDef::new("price");
const COST: ActivityDef<u32, u32> = ActivityDef::new("cost");
const WF: WorkflowDef<u32, u32> = WorkflowDef::new("wf");
const PING: SignalDef<u32> = SignalDef::new("ping");

fn registry<F, Fut>(f: F) -> Registry
where
    F: Fn(WorkflowContext, u32) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<u32, WorkflowError>> + Send + 'static,
{
    Registry::builder().workflow(WF, f).build().unwrap()
}

async fn price(ctx: WorkflowContext, n: u32) -> Result<u32, WorkflowError> {
    Ok(ctx.local_activity(PRICE, &n).await? + 1)
}

/// Hands the host the one request waiting and delivers `outcome` for it.
fn complete(run: &mut Run, outcome: impl FnOnce(Seq) -> EventKind) -> LocalActivityRequest {
    let mut requests = run.execution.take_local_activities();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let request = requests.remove(0);
    assert!(
        run.execution.take_local_activities().is_empty(),
        "handed out once"
    );
    let step = run
        .execution
        .resolve_local_activity(Timestamp::from_unix_micros(5), outcome(request.scheduled))
        .unwrap()
        .expect("the workflow waits on it");
    run.history.extend(step.events);
    request
}

fn completed(scheduled: Seq, value: u32) -> EventKind {
    EventKind::ActivityCompleted(ActivityCompleted {
        scheduled,
        result: payload(value),
        attempt: 1,
    })
}

#[test]
fn a_request_is_handed_out_once_and_its_outcome_resolves_the_call() {
    let mut run = Run::start(registry(price), "wf", 41u32);
    assert!(run.execution.awaits_local_activities());
    let request = complete(&mut run, |s| completed(s, 41));
    assert_eq!(
        (request.activity_type.as_str(), request.attempt),
        ("price", 1)
    );
    assert_eq!(request.input, payload(41u32));
    assert_eq!(run.output::<u32>(), 42);
    assert_eq!(
        run.kinds(),
        [
            "WorkflowStarted",
            "LocalActivityScheduled",
            "ActivityCompleted",
            "WorkflowCompleted"
        ]
    );
    run.check_replay();

    // A run still open after a recorded local activity: replay asks the host for nothing.
    let then_wait = || {
        registry(|ctx, n| async move {
            let priced = ctx.local_activity(PRICE, &n).await?;
            Ok(priced + ctx.signal(PING).await?)
        })
    };
    let mut run = Run::start(then_wait(), "wf", 1u32);
    complete(&mut run, |s| completed(s, 5));
    assert_eq!(run.status(), &RunStatus::Running);
    let mut replayed = Execution::replay(&then_wait(), &run.history).unwrap();
    assert!(
        !replayed.awaits_local_activities(),
        "a recorded outcome is not asked for again"
    );
    assert!(replayed.take_local_activities().is_empty());
}

#[test]
fn a_backoff_becomes_the_calls_timer_and_then_the_next_attempt() {
    let mut run = Run::start(registry(price), "wf", 1u32);
    let first = complete(&mut run, |scheduled| {
        EventKind::LocalActivityBackoff(LocalActivityBackoff {
            scheduled,
            failure: Failure::application("Down", "later"),
            attempt: 3,
            backoff: Duration::from_secs(30),
        })
    });
    assert_eq!(run.open_timers().len(), 1);
    assert!(
        !run.execution.awaits_local_activities(),
        "released: it waits on a timer"
    );
    let timer = run.open_timers()[0];
    run.input(EventKind::TimerFired(TimerFired { started: timer }));
    let second = complete(&mut run, |s| completed(s, 9));
    assert_eq!(second.attempt, 4);
    assert_eq!(
        second.info(4).scheduled_seq,
        first.info(1).scheduled_seq,
        "one idempotency key for every attempt"
    );
    assert_eq!(run.output::<u32>(), 10);
    run.check_replay();
}

#[test]
fn a_call_dropped_or_cancelled_before_its_outcome_records_nothing_more() {
    // The signal is there first: the local activity loses the select before it runs.
    let code = registry(|ctx, n| async move {
        let local = futures::FutureExt::fuse(ctx.local_activity(PRICE, &n));
        let ping = futures::FutureExt::fuse(ctx.signal(PING));
        futures::pin_mut!(local, ping);
        Ok(reprise_sdk::select! {
            got = ping => got?,
            priced = local => priced?,
        })
    });
    let mut run = Run::start(code, "wf", 1u32);
    let request = run.execution.take_local_activities().remove(0);
    run.input(EventKind::SignalReceived(SignalReceived {
        name: SignalName::new("ping").unwrap(),
        payload: payload(7u32),
    }));
    assert_eq!(run.output::<u32>(), 7);
    let late = run.execution.resolve_local_activity(
        Timestamp::from_unix_micros(9),
        completed(request.scheduled, 1),
    );
    assert!(matches!(late, Ok(None)), "{late:?}");
    assert!(!run.kinds().contains(&"ActivityCancelRequested"));
    run.check_replay();

    let mut run = Run::start(registry(price), "wf", 1u32);
    run.input(EventKind::CancelRequested(CancelRequested {
        reason: "stop".into(),
    }));
    assert!(!run.execution.awaits_local_activities());
    assert_eq!(run.status(), &RunStatus::Cancelled);
    run.check_replay();
}

#[test]
fn another_type_or_an_activity_in_its_place_is_nd01_and_another_input_nd08() {
    let mut run = Run::start(registry(price), "wf", 1u32);
    complete(&mut run, |s| completed(s, 1));
    for changed in [
        registry(|ctx, n| async move { Ok(ctx.local_activity(COST, &n).await?) }),
        registry(|ctx, n| async move { Ok(ctx.activity(PRICE, &n).await?) }),
    ] {
        match Execution::replay(&changed, &run.history) {
            Err(reprise_sdk::Error::Nondeterminism(n)) => {
                assert_eq!((n.seq, n.kind.code()), (Seq::new(2), "ND01"), "{n}");
                assert!(
                    n.to_string().contains("LocalActivityScheduled(\"price\")"),
                    "{n}"
                );
            }
            other => panic!("{:?}", other.err()),
        }
    }
    let other_input =
        registry(|ctx, n| async move { Ok(ctx.local_activity(PRICE, &(n + 1)).await?) });
    let mut replayed = Execution::replay(&other_input, &run.history).unwrap();
    let changes = replayed.take_input_changes();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].kind.code(), "ND08");
}

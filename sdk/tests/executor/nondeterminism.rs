//! Every kind of nondeterminism, with its message. Each test's doc comment shows the
//! orchestrator that recorded the history and the changed one that replays it.

use std::time::Duration;

use reprise_sdk::history::*;
use reprise_sdk::*;

use crate::harness::{Run, payload};

const DOUBLE: ActivityDef<u32, u32> = ActivityDef::new("double");
const TRIPLE: ActivityDef<u32, u32> = ActivityDef::new("triple");
const WF: WorkflowDef<u32, u32> = WorkflowDef::new("wf");

fn registry<F, Fut>(f: F) -> Registry
where
    F: Fn(WorkflowContext, u32) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<u32, WorkflowError>> + Send + 'static,
{
    Registry::builder().workflow(WF, f).build().unwrap()
}

/// The nondeterminism a replay of `history` with `registry` reports.
fn replay_error(registry: &Registry, history: &[Event]) -> Nondeterminism {
    match Execution::replay(registry, history) {
        Err(reprise_sdk::Error::Nondeterminism(n)) => *n,
        Err(other) => panic!("expected nondeterminism, got {other}"),
        Ok(_) => panic!("expected nondeterminism, the history replayed"),
    }
}

fn assert_message(n: &Nondeterminism, expected_without_location: &str) {
    let text = n.to_string();
    match n.location {
        Some(location) => {
            assert!(location.file.ends_with("nondeterminism.rs"), "{location}");
            assert_eq!(
                text,
                format!("{expected_without_location} (workflow code at {location})")
            );
        }
        None => assert_eq!(text, expected_without_location),
    }
}

/// Recorded: `ctx.activity(DOUBLE, &n)`. Replayed: `ctx.activity(TRIPLE, &n)`.
#[test]
fn nd01_a_renamed_activity() {
    let run = Run::start(
        registry(|ctx, n| async move { Ok(ctx.activity(DOUBLE, &n).await?) }),
        "wf",
        1u32,
    );
    let changed_line = line!() + 1;
    let changed = registry(|ctx, n| async move { Ok(ctx.activity(TRIPLE, &n).await?) });
    let n = replay_error(&changed, &run.history);
    assert_eq!((n.seq, n.kind.code()), (Seq::new(2), "ND01"));
    assert_eq!(
        n.location.map(|l| l.line),
        Some(changed_line),
        "names the changed line"
    );
    assert_message(
        &n,
        "nondeterminism ND01 at seq 2: history has ActivityScheduled(\"double\"), but the code made ActivityScheduled(\"triple\")",
    );
}

/// Recorded: `ctx.sleep(60s)`. Replayed: `ctx.sleep(30s)`.
#[test]
fn nd01_a_changed_timer_duration() {
    let run = Run::start(
        registry(|ctx, _| async move {
            ctx.sleep(Duration::from_secs(60)).await?;
            Ok(0)
        }),
        "wf",
        0u32,
    );
    let changed = registry(|ctx, _| async move {
        ctx.sleep(Duration::from_secs(30)).await?;
        Ok(0)
    });
    let n = replay_error(&changed, &run.history);
    assert_message(
        &n,
        "nondeterminism ND01 at seq 2: history has TimerStarted(60s), but the code made TimerStarted(30s)",
    );
}

/// Recorded: an activity. Replayed: a timer in its place.
#[test]
fn nd01_a_different_kind_of_decision() {
    let run = Run::start(
        registry(|ctx, n| async move { Ok(ctx.activity(DOUBLE, &n).await?) }),
        "wf",
        1u32,
    );
    let changed = registry(|ctx, _| async move {
        ctx.sleep(Duration::from_secs(1)).await?;
        Ok(0)
    });
    let n = replay_error(&changed, &run.history);
    assert_message(
        &n,
        "nondeterminism ND01 at seq 2: history has ActivityScheduled(\"double\"), but the code made TimerStarted(1s)",
    );
}

/// Recorded: `patched("v2")` then an activity. Replayed: the patch id renamed to `"v3"`.
#[test]
fn nd01_a_renamed_patch_is_a_missing_marker() {
    let run = Run::start(
        registry(|ctx, n| async move {
            ctx.patched("v2");
            Ok(ctx.activity(DOUBLE, &n).await?)
        }),
        "wf",
        1u32,
    );
    let changed = registry(|ctx, n| async move {
        ctx.patched("v3");
        Ok(ctx.activity(DOUBLE, &n).await?)
    });
    let n = replay_error(&changed, &run.history);
    assert_message(
        &n,
        "nondeterminism ND01 at seq 2: history has MarkerRecorded(patch \"v2\"), but the code made ActivityScheduled(\"double\")",
    );
}

/// Recorded: `join!(double, triple)`. Replayed: only `double`.
#[test]
fn nd02_a_decision_the_code_no_longer_makes() {
    let run = Run::start(
        registry(|ctx, n| async move {
            let (a, b) = futures::join!(ctx.activity(DOUBLE, &n), ctx.activity(TRIPLE, &n));
            Ok(a? + b?)
        }),
        "wf",
        1u32,
    );
    let changed = registry(|ctx, n| async move { Ok(ctx.activity(DOUBLE, &n).await?) });
    let n = replay_error(&changed, &run.history);
    assert_eq!(n.location, None);
    assert_message(
        &n,
        "nondeterminism ND02 at seq 3: history has ActivityScheduled(\"triple\"), but the code no longer makes this decision",
    );
}

/// Recorded: only `double`. Replayed: `join!(double, triple)`.
#[test]
fn nd03_a_decision_beyond_history() {
    let run = Run::start(
        registry(|ctx, n| async move { Ok(ctx.activity(DOUBLE, &n).await?) }),
        "wf",
        1u32,
    );
    let changed = registry(|ctx, n| async move {
        let (a, b) = futures::join!(ctx.activity(DOUBLE, &n), ctx.activity(TRIPLE, &n));
        Ok(a? + b?)
    });
    let n = replay_error(&changed, &run.history);
    assert_message(
        &n,
        "nondeterminism ND03 at seq 3: the code made ActivityScheduled(\"triple\"), but history has no decision here",
    );
}

/// Recorded (by hand, as a corrupt or edited history would have it): a timer firing for the
/// seq of an activity. Replayed: the activity's code.
#[test]
fn nd04_an_input_for_something_never_started() {
    let mut history = HistoryBuilder::started("wf", "wf-1", payload(1u32)).unwrap();
    let scheduled = history.push(EventKind::ActivityScheduled(ActivityScheduled {
        activity_type: ActivityType::new("double").unwrap(),
        task_queue: TaskQueue::new("default").unwrap(),
        input: payload(1u32),
        options: ActivityOptions::default(),
        priority: None,
    }));
    history.push(EventKind::TimerFired(TimerFired { started: scheduled }));
    let code = registry(|ctx, n| async move { Ok(ctx.activity(DOUBLE, &n).await?) });
    let n = replay_error(&code, history.events());
    assert_message(
        &n,
        "nondeterminism ND04 at seq 3: history has TimerFired(seq 2) for something the code never started",
    );
}

/// The workflow awaits a channel that the outside world (here: the test) sends on. The send
/// wakes the workflow outside any step: replay could never reproduce that.
#[test]
fn nd05_a_wake_that_did_not_come_from_reprise() {
    let (tx, rx) = futures::channel::oneshot::channel::<u32>();
    let rx = std::sync::Mutex::new(Some(rx));
    let code = registry(move |ctx, n| {
        let rx = rx.lock().unwrap().take();
        async move {
            let (a, b) = futures::join!(ctx.activity(DOUBLE, &n), async {
                rx.unwrap().await.unwrap_or(0)
            });
            Ok(a? + b)
        }
    });
    let started = HistoryBuilder::started("wf", "wf-1", payload(1u32))
        .unwrap()
        .events()[0]
        .clone();
    let (mut execution, step) = Execution::start(&code, started).unwrap();
    let scheduled = step.events[1].seq;
    tx.send(5).unwrap();
    let completed = EventKind::ActivityCompleted(ActivityCompleted {
        scheduled,
        result: payload(2u32),
        attempt: 1,
    });
    let err = execution
        .step([(Timestamp::UNIX_EPOCH, completed)])
        .unwrap_err();
    let reprise_sdk::Error::Nondeterminism(n) = err else {
        panic!("{err}")
    };
    assert_message(
        &n,
        "nondeterminism ND05 at seq 3: the workflow was woken by something other than Reprise; workflows may await only Reprise operations: use ctx.sleep() for time, ctx.signal() for messages from outside, and activities for I/O",
    );
}

/// The workflow awaits a tokio timer: it is refused as it is created, in the step that creates
/// it, with or without a Tokio runtime around.
#[tokio::test]
async fn nd07_a_tokio_sleep_in_a_workflow() {
    assert_tokio_sleep_is_nd07();
}

#[test]
fn nd07_a_tokio_sleep_in_a_workflow_without_a_runtime() {
    assert_tokio_sleep_is_nd07();
}

/// A `tokio::time::timeout` around a signal: the timer is refused at once, although the code
/// also waits on something Reprise drives (it used to leave the run waiting forever).
#[tokio::test]
async fn nd07_a_tokio_timeout_around_a_signal() {
    const GO: SignalDef<()> = SignalDef::new("go");
    #[allow(clippy::disallowed_methods)] // The point of the test.
    let code = registry(|ctx, _| async move {
        let _ = tokio::time::timeout(Duration::from_millis(300), ctx.signal(GO)).await;
        Ok(0)
    });
    let n = first_step_nondeterminism(&code);
    assert_eq!(n.kind.code(), "ND07");
    assert_eq!(n.seq.get(), 1);
}

/// The nondeterminism a run's first step fails with.
fn first_step_nondeterminism(code: &Registry) -> Box<Nondeterminism> {
    let started = HistoryBuilder::started("wf", "wf-1", payload(0u32))
        .unwrap()
        .events()[0]
        .clone();
    match Execution::start(code, started).err().unwrap() {
        reprise_sdk::Error::Nondeterminism(n) => n,
        err => panic!("{err}"),
    }
}

fn assert_tokio_sleep_is_nd07() {
    #[allow(clippy::disallowed_methods)] // The point of the test.
    let code = registry(|_, _| async move {
        tokio::time::sleep(Duration::from_millis(1)).await;
        Ok(0)
    });
    let n = first_step_nondeterminism(&code);
    assert_message(
        &n,
        "nondeterminism ND07 at seq 1: the workflow used a tokio timer, which would wake it from outside Reprise where no replay can follow; workflows may await only Reprise operations: use ctx.sleep() for time, ctx.signal() for messages from outside, and activities for I/O",
    );
}

#[test]
fn codes_are_stable() {
    let kinds = [
        NondeterminismKind::DecisionMismatch {
            recorded: String::new(),
            made: String::new(),
        },
        NondeterminismKind::MissingDecision {
            recorded: String::new(),
        },
        NondeterminismKind::ExtraDecision {
            made: String::new(),
        },
        NondeterminismKind::UnexpectedInput {
            input: String::new(),
        },
        NondeterminismKind::ForeignWake,
        NondeterminismKind::AwaitsForeignFuture,
        NondeterminismKind::TokioDriver { driver: "timer" },
    ];
    let codes: Vec<&str> = kinds.iter().map(NondeterminismKind::code).collect();
    assert_eq!(
        codes,
        ["ND01", "ND02", "ND03", "ND04", "ND05", "ND06", "ND07"]
    );
}

//! Workflow deadlines and retries in `TestEnv`, in virtual time, by the engine's rules.

use std::time::Duration;

use reprise_history::{ActivityOptions, EventKind, RetryPolicy, RunOrigin, WorkflowTimeout};
use reprise_sdk::{
    ActivityDef, ActivityError, Registry, SignalDef, WorkflowContext, WorkflowDef, WorkflowError,
};
use reprise_testkit::{Error, TestEnv, TestStartOptions};

const HOLD: WorkflowDef<u32, u32> = WorkflowDef::new("hold");
const RELEASE: SignalDef<()> = SignalDef::new("release");
const PARENT: WorkflowDef<u32, u32> = WorkflowDef::new("parent");
const LOOP: WorkflowDef<u32, u32> = WorkflowDef::new("loop");
const FLAKY: WorkflowDef<(), u32> = WorkflowDef::new("flaky");
const STEP: ActivityDef<(), u32> = ActivityDef::new("step");
const FAIL: WorkflowDef<String, u32> = WorkflowDef::new("fail");
/// Starts `FLAKY` as a child with retries, or `HOLD` with a run timeout, and says how it ended.
const GUARDIAN: WorkflowDef<String, String> = WorkflowDef::new("guardian");

async fn hold(ctx: WorkflowContext, n: u32) -> Result<u32, WorkflowError> {
    ctx.signal(RELEASE).await?;
    Ok(n)
}

fn env() -> TestEnv {
    let registry = Registry::builder()
        .workflow(HOLD, hold)
        .workflow(PARENT, |ctx: WorkflowContext, n: u32| async move {
            let child = format!("{}-child", ctx.workflow_id());
            Ok::<_, WorkflowError>(ctx.child(HOLD, &child, &n).await?)
        })
        .workflow(LOOP, |ctx: WorkflowContext, n: u32| async move {
            ctx.sleep(Duration::from_secs(600)).await?;
            Err::<u32, _>(ctx.continue_as_new(&(n + 1))?)
        })
        .workflow(FLAKY, |ctx: WorkflowContext, ()| async move {
            let once = ActivityOptions {
                retry: RetryPolicy {
                    max_attempts: Some(1),
                    ..RetryPolicy::default()
                },
                ..ActivityOptions::default()
            };
            match ctx.activity(STEP, &()).options(once).await {
                Ok(calls) => Ok(calls),
                Err(e) => Err(WorkflowError::failed("Flaky", e.failure.message)),
            }
        })
        .workflow(GUARDIAN, |ctx: WorkflowContext, which: String| async move {
            let child = format!("{}-child", ctx.workflow_id());
            let ended = match which.as_str() {
                "flaky" => ctx.child(FLAKY, &child, &()).retry(retries(Some(5))).await,
                _ => {
                    ctx.child(HOLD, &child, &1)
                        .run_timeout(Duration::from_secs(3_600))
                        .await
                }
            };
            Ok::<_, WorkflowError>(match ended {
                Ok(n) => format!("returned {n}"),
                Err(e) => format!("{:?}: {}", e.end, e.failure.message),
            })
        })
        .workflow(FAIL, |_: WorkflowContext, error_type: String| async move {
            Err::<u32, _>(WorkflowError::failed(error_type, "it always fails"))
        })
        .activity(STEP, |_, ()| async { Ok(0) })
        .build()
        .unwrap();
    TestEnv::new(registry)
}

/// A stand-in for `STEP` that fails its first `fails` calls.
fn failing_first(env: &mut TestEnv, fails: u32) {
    let mut calls = 0;
    env.stand_in(STEP, move |(), _| {
        calls += 1;
        if calls <= fails {
            Err(ActivityError::retryable("Busy", format!("call {calls}")))
        } else {
            Ok(calls)
        }
    })
    .unwrap();
}

fn retries(max_attempts: Option<u32>) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        initial_backoff: Duration::from_secs(10),
        max_backoff: Duration::from_secs(60),
        jitter: 0.0,
        ..RetryPolicy::default()
    }
}

fn last_event(env: &TestEnv, workflow_id: &str) -> EventKind {
    let history = env.history(workflow_id).unwrap();
    history.events().last().unwrap().kind.clone()
}

fn ended_as(err: &Error, status: &str) -> bool {
    matches!(err, Error::Ended { status: s, .. } if s.contains(status))
}

#[test]
fn a_run_timeout_closes_the_run_and_its_child_by_its_policy() {
    let mut env = env();
    let options = TestStartOptions {
        run_timeout: Some(Duration::from_secs(3_600)),
        ..TestStartOptions::default()
    };
    let run = env.start_with_options(PARENT, "slow", &1, options).unwrap();
    env.advance(Duration::from_secs(3_599)).unwrap();
    assert!(matches!(
        last_event(&env, "slow"),
        EventKind::ChildWorkflowStarted(_)
    ));
    env.advance(Duration::from_secs(1)).unwrap();
    let err = env.result(&run).unwrap_err();
    assert!(ended_as(&err, "TimedOut(Run)"), "{err:?}");
    assert!(matches!(
        last_event(&env, "slow"),
        EventKind::WorkflowTimedOut(t) if t.timeout == WorkflowTimeout::Run
    ));
    assert!(matches!(
        last_event(&env, "slow-child"),
        EventKind::WorkflowTerminated(_)
    ));
}

#[test]
fn an_execution_timeout_holds_across_continue_as_new() {
    let mut env = env();
    let options = TestStartOptions {
        execution_timeout: Some(Duration::from_secs(25 * 60)),
        ..TestStartOptions::default()
    };
    let run = env
        .start_with_options(LOOP, "looping", &0, options)
        .unwrap();
    let err = env.result(&run).unwrap_err();
    assert!(ended_as(&err, "TimedOut(Execution)"), "{err:?}");
    assert_eq!(env.histories("looping").unwrap().len(), 3);
    let started = env.histories("looping").unwrap()[0].events()[0].recorded_at;
    let closed = env
        .history("looping")
        .unwrap()
        .events()
        .last()
        .unwrap()
        .recorded_at;
    assert_eq!(
        closed.as_unix_micros() - started.as_unix_micros(),
        25 * 60 * 1_000_000
    );
}

#[test]
fn a_failed_workflow_is_retried_with_backoff_until_it_succeeds() {
    let mut env = env();
    failing_first(&mut env, 2);
    let options = TestStartOptions {
        retry: Some(retries(Some(5))),
        ..TestStartOptions::default()
    };
    let start = env.now();
    let run = env
        .start_with_options(FLAKY, "flaky", &(), options)
        .unwrap();
    assert_eq!(env.result(&run).unwrap(), 3);
    assert_eq!(env.attempt("flaky").unwrap(), 3);
    let histories = env.histories("flaky").unwrap();
    assert_eq!(histories.len(), 3);
    let EventKind::WorkflowStarted(third) = &histories[2].events()[0].kind else {
        panic!("a run begins with WorkflowStarted");
    };
    assert!(matches!(
        third.origin,
        RunOrigin::Retried { attempt: 3, .. }
    ));
    // Backoff of 10 s, then 20 s, before the second and third attempts.
    let third_start = histories[2].events()[0].recorded_at;
    assert_eq!(
        third_start.as_unix_micros() - start.as_unix_micros(),
        30_000_000
    );
}

#[test]
fn retries_stop_at_max_attempts_and_at_non_retryable_errors() {
    let mut env = env();
    failing_first(&mut env, 10);
    let options = TestStartOptions {
        retry: Some(retries(Some(2))),
        ..TestStartOptions::default()
    };
    let run = env
        .start_with_options(FLAKY, "gives-up", &(), options)
        .unwrap();
    assert!(matches!(env.result(&run), Err(Error::Failed { .. })));
    assert_eq!(env.histories("gives-up").unwrap().len(), 2);

    let options = TestStartOptions {
        retry: Some(RetryPolicy {
            non_retryable_error_types: vec!["Fatal".into()],
            ..retries(None)
        }),
        ..TestStartOptions::default()
    };
    let run = env
        .start_with_options(FAIL, "fatal", &"Fatal".to_string(), options)
        .unwrap();
    assert!(matches!(env.result(&run), Err(Error::Failed { .. })));
    assert_eq!(env.histories("fatal").unwrap().len(), 1);
}

#[test]
fn a_run_timeout_is_retried_until_the_execution_timeout() {
    let mut env = env();
    let options = TestStartOptions {
        run_timeout: Some(Duration::from_secs(60)),
        execution_timeout: Some(Duration::from_secs(200)),
        retry: Some(retries(None)),
        ..TestStartOptions::default()
    };
    let run = env.start_with_options(HOLD, "stuck", &1, options).unwrap();
    let err = env.result(&run).unwrap_err();
    assert!(ended_as(&err, "TimedOut(Execution)"), "{err:?}");
    // 0–60 s, 70–130 s (after 10 s of backoff), then 150 s (after 20 s) until 200 s: the
    // third run's 60 s never come.
    let runs = env.histories("stuck").unwrap();
    assert_eq!(runs.len(), 3);
    let closings: Vec<EventKind> = runs
        .iter()
        .map(|h| h.events().last().unwrap().kind.clone())
        .collect();
    assert!(
        matches!(&closings[0], EventKind::WorkflowTimedOut(t) if t.timeout == WorkflowTimeout::Run)
    );
    assert!(
        matches!(&closings[2], EventKind::WorkflowTimedOut(t) if t.timeout == WorkflowTimeout::Execution)
    );
}

#[test]
fn zero_timeouts_are_refused() {
    let mut env = env();
    let options = TestStartOptions {
        run_timeout: Some(Duration::ZERO),
        ..TestStartOptions::default()
    };
    let err = env
        .start_with_options(HOLD, "never", &1, options)
        .err()
        .unwrap();
    assert!(matches!(err, Error::InvalidOption(_)), "{err:?}");
    assert!(matches!(
        env.history("never"),
        Err(Error::UnknownWorkflow(_))
    ));
}

#[test]
fn a_child_is_retried_before_its_parent_hears_and_times_out_by_its_deadline() {
    let mut env = env();
    failing_first(&mut env, 2);
    let run = env
        .start(GUARDIAN, "patient", &"flaky".to_string())
        .unwrap();
    assert_eq!(env.result(&run).unwrap(), "returned 3");
    assert_eq!(env.histories("patient-child").unwrap().len(), 3);
    assert_eq!(env.attempt("patient-child").unwrap(), 3);
    // The parent heard once: one outcome of its child.
    let heard = env
        .history("patient")
        .unwrap()
        .events()
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                EventKind::ChildWorkflowCompleted(_) | EventKind::ChildWorkflowFailed(_)
            )
        })
        .count();
    assert_eq!(heard, 1);

    let run = env.start(GUARDIAN, "strict", &"hold".to_string()).unwrap();
    assert_eq!(
        env.result(&run).unwrap(),
        "TimedOut: the workflow run reached its run timeout"
    );
}

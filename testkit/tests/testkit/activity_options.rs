//! Activity options in `TestEnv`, by the engine's rules: a schedule-to-start timeout ends an
//! activity no worker takes; `retry_on` retries only the error types it lists.

use std::time::Duration;

use reprise_history::{ActivityOptions, EventKind, RetryPolicy, TimeoutKind};
use reprise_sdk::{
    ActivityContext, ActivityDef, ActivityError, Registry, WorkflowContext, WorkflowDef,
    WorkflowError,
};
use reprise_testkit::TestEnv;

const STEP: ActivityDef<(), u32> = ActivityDef::new("step");
const RUN: WorkflowDef<ActivityOptions, String> = WorkflowDef::new("run");

fn env() -> TestEnv {
    let registry = Registry::builder()
        .workflow(
            RUN,
            |ctx: WorkflowContext, options: ActivityOptions| async move {
                let outcome = ctx.activity(STEP, &()).options(options).await;
                Ok::<_, WorkflowError>(match outcome {
                    Ok(attempt) => format!("done at attempt {attempt}"),
                    Err(e) => format!("{:?}: {}", e.end, e.failure.message),
                })
            },
        )
        .activity(
            STEP,
            |ctx: ActivityContext, ()| async move { Ok(ctx.attempt()) },
        )
        .build()
        .unwrap();
    TestEnv::new(registry)
}

fn options(retry_on: &[&str], schedule_to_start: Option<Duration>) -> ActivityOptions {
    ActivityOptions {
        retry: RetryPolicy {
            max_attempts: Some(5),
            initial_backoff: Duration::from_secs(1),
            jitter: 0.0,
            retry_on: retry_on.iter().map(|t| t.to_string()).collect(),
            ..RetryPolicy::default()
        },
        schedule_to_start,
        ..ActivityOptions::default()
    }
}

/// A stand-in failing with `error_type` until its third attempt.
fn fails_with(env: &mut TestEnv, error_type: &'static str) {
    env.stand_in(STEP, move |(), attempt| {
        if attempt < 3 {
            Err(ActivityError::retryable(error_type, "not yet"))
        } else {
            Ok(attempt)
        }
    })
    .unwrap();
}

#[test]
fn an_activity_without_a_worker_times_out_by_its_schedule_to_start_timeout() {
    let mut env = env();
    env.without_worker(STEP).unwrap();
    let run = env
        .start(RUN, "waits", &options(&[], Some(Duration::from_secs(60))))
        .unwrap();
    env.advance(Duration::from_secs(59)).unwrap();
    let last = env
        .history("waits")
        .unwrap()
        .events()
        .last()
        .unwrap()
        .kind
        .clone();
    assert!(matches!(last, EventKind::ActivityScheduled(_)), "{last:?}");
    assert_eq!(
        env.result(&run).unwrap(),
        "TimedOut: ScheduleToStart timeout of attempt 0"
    );
    let timed_out = env
        .history("waits")
        .unwrap()
        .events()
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::ActivityTimedOut(t) => Some((t.timeout, e.recorded_at)),
            _ => None,
        });
    let (kind, _) = timed_out.unwrap();
    assert_eq!(kind, TimeoutKind::ScheduleToStart);

    // With its worker back in time, it runs.
    let mut env = self::env();
    env.without_worker(STEP).unwrap();
    let run = env
        .start(RUN, "back", &options(&[], Some(Duration::from_secs(60))))
        .unwrap();
    env.advance(Duration::from_secs(30)).unwrap();
    env.with_worker(STEP).unwrap();
    assert_eq!(env.result(&run).unwrap(), "done at attempt 1");
}

#[test]
fn retries_of_a_served_activity_keep_their_own_schedule_to_start_deadline() {
    let mut env = env();
    fails_with(&mut env, "Busy");
    let run = env
        .start(
            RUN,
            "served",
            &options(&[], Some(Duration::from_millis(10))),
        )
        .unwrap();
    assert_eq!(env.result(&run).unwrap(), "done at attempt 3");
}

#[test]
fn retry_on_retries_only_the_error_types_it_lists() {
    let mut env = env();
    fails_with(&mut env, "Busy");
    let run = env.start(RUN, "listed", &options(&["Busy"], None)).unwrap();
    assert_eq!(env.result(&run).unwrap(), "done at attempt 3");

    let mut env = self::env();
    fails_with(&mut env, "Declined");
    let run = env
        .start(RUN, "unlisted", &options(&["Busy"], None))
        .unwrap();
    assert_eq!(env.result(&run).unwrap(), "Failed: not yet");
}

//! Local activities in `TestEnv`: recorded in the step that runs them, retried inside the
//! step or after a durable timer, never run again on replay.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use reprise_history::{EventKind, RetryPolicy};
use reprise_sdk::{
    ActivityDef, ActivityError, Execution, LocalActivityOptions, Registry, WorkflowContext,
    WorkflowDef, WorkflowError,
};
use reprise_testkit::{Error, Replayer, TestEnv, check_determinism};

const ADD: ActivityDef<(u64, u64), u64> = ActivityDef::new("add");
const PRICE: ActivityDef<String, u64> = ActivityDef::new("price");
const MISSING: ActivityDef<(), ()> = ActivityDef::new("missing");
const SUM: WorkflowDef<u64, u64> = WorkflowDef::new("sum");
const QUOTE: WorkflowDef<Duration, u64> = WorkflowDef::new("quote");
const BROKEN: WorkflowDef<(), ()> = WorkflowDef::new("broken");

/// Adds 1..=n with one local activity per step of the chain.
async fn sum(ctx: WorkflowContext, n: u64) -> Result<u64, WorkflowError> {
    let mut total = 0;
    for i in 1..=n {
        total = ctx.local_activity(ADD, &(total, i)).await?;
    }
    Ok(total)
}

/// Prices an item with a local activity retried after `initial_backoff`.
async fn quote(ctx: WorkflowContext, initial_backoff: Duration) -> Result<u64, WorkflowError> {
    let options = LocalActivityOptions {
        retry: RetryPolicy {
            max_attempts: Some(5),
            initial_backoff,
            max_backoff: Duration::from_secs(60),
            backoff_multiplier: 2.0,
            jitter: 0.0,
            non_retryable_error_types: vec![],
            retry_on: Vec::new(),
        },
        ..LocalActivityOptions::default()
    };
    let price = ctx
        .local_activity(PRICE, &"book".to_string())
        .options(options)
        .await?;
    Ok(price)
}

async fn broken(ctx: WorkflowContext, (): ()) -> Result<(), WorkflowError> {
    Ok(ctx.local_activity(MISSING, &()).await?)
}

fn registry() -> Registry {
    Registry::builder()
        .workflow(SUM, sum)
        .workflow(QUOTE, quote)
        .workflow(BROKEN, broken)
        .activity(ADD, |_, (a, b): (u64, u64)| async move {
            Ok::<_, ActivityError>(a + b)
        })
        .build()
        .unwrap()
}

fn kinds(env: &TestEnv, id: &str) -> Vec<&'static str> {
    env.history(id)
        .unwrap()
        .events()
        .iter()
        .map(|e| e.kind.name())
        .collect()
}

#[test]
fn a_chain_of_local_activities_completes_in_one_step_and_replays_without_running_them() {
    let mut env = TestEnv::new(registry());
    let calls = Arc::new(AtomicU32::new(0));
    let counted = calls.clone();
    let adds = env
        .stand_in(ADD, move |(a, b): (u64, u64), _| {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok(a + b)
        })
        .unwrap();
    let run = env.start(SUM, "sum-1", &4).unwrap();
    assert_eq!(env.result(&run).unwrap(), 10);
    assert_eq!(adds.count(), 4);
    let kinds = kinds(&env, "sum-1");
    assert_eq!(kinds.len(), 1 + 4 * 2 + 1, "{kinds:?}");
    assert_eq!(
        &kinds[1..3],
        ["LocalActivityScheduled", "ActivityCompleted"]
    );

    let history = env.history("sum-1").unwrap();
    Replayer::new(registry()).strict().replay(&history).unwrap();
    let mut replayed = Execution::replay(&registry(), history.events()).unwrap();
    assert!(replayed.take_local_activities().is_empty());
    assert_eq!(calls.load(Ordering::SeqCst), 4, "replay ran nothing");
}

#[test]
fn retries_inside_the_window_stay_in_the_step_and_longer_waits_are_durable_timers() {
    let mut env = TestEnv::new(registry());
    let prices = env
        .stand_in(PRICE, |_, attempt| {
            if attempt < 3 {
                Err(ActivityError::retryable("Unavailable", "pricing is down"))
            } else {
                Ok(1999)
            }
        })
        .unwrap();
    let run = env
        .start(QUOTE, "quick", &Duration::from_millis(100))
        .unwrap();
    let started = env.now();
    assert_eq!(env.result(&run).unwrap(), 1999);
    assert_eq!(env.now(), started, "in-step retries take no virtual time");
    let attempts: Vec<u32> = prices.calls().into_iter().map(|(_, a)| a).collect();
    assert_eq!(attempts, [1, 2, 3]);
    assert_eq!(
        kinds(&env, "quick"),
        [
            "WorkflowStarted",
            "LocalActivityScheduled",
            "ActivityCompleted",
            "WorkflowCompleted"
        ]
    );

    let run = env.start(QUOTE, "slow", &Duration::from_secs(30)).unwrap();
    let started = env.now();
    assert_eq!(env.result(&run).unwrap(), 1999);
    assert_eq!(
        kinds(&env, "slow"),
        [
            "WorkflowStarted",
            "LocalActivityScheduled",
            "LocalActivityBackoff",
            "TimerStarted",
            "TimerFired",
            "LocalActivityScheduled",
            "LocalActivityBackoff",
            "TimerStarted",
            "TimerFired",
            "LocalActivityScheduled",
            "ActivityCompleted",
            "WorkflowCompleted"
        ]
    );
    let waited = env.now().as_unix_micros() - started.as_unix_micros();
    assert_eq!(waited, 90_000_000, "30 s, then 60 s, on durable timers");
    let history = env.history("slow").unwrap();
    let rescheduled: Vec<u32> = history
        .events()
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::LocalActivityScheduled(s) => Some(s.attempt),
            _ => None,
        })
        .collect();
    assert_eq!(rescheduled, [1, 2, 3]);
    Replayer::new(registry()).strict().replay(&history).unwrap();
}

#[test]
fn a_panicking_local_activity_is_a_failed_attempt_and_an_unknown_type_an_error() {
    let mut env = TestEnv::new(registry());
    env.stand_in(PRICE, |_, attempt| {
        if attempt == 1 {
            panic!("the price list is empty");
        }
        Ok(5)
    })
    .unwrap();
    let run = env.start(QUOTE, "q", &Duration::from_millis(10)).unwrap();
    assert_eq!(env.result(&run).unwrap(), 5);

    let mut env = TestEnv::new(registry());
    let refused = env.start(BROKEN, "b", &());
    assert!(
        matches!(&refused, Err(Error::Sdk(e)) if e.to_string().contains("missing")),
        "{:?}",
        refused.err()
    );
}

#[test]
fn local_activity_histories_replay_under_every_completion_order() {
    let env = || {
        let mut env = TestEnv::new(registry());
        env.stand_in(PRICE, |_, attempt| {
            if attempt < 2 {
                Err(ActivityError::retryable("Unavailable", "down"))
            } else {
                Ok(7)
            }
        })?;
        Ok(env)
    };
    let checked = check_determinism(env, QUOTE, &Duration::from_secs(5), 0..8).unwrap();
    assert_eq!(checked, 8);
    let checked = check_determinism(|| Ok(TestEnv::new(registry())), SUM, &3, 0..8).unwrap();
    assert_eq!(checked, 8);
}

#[test]
fn a_result_over_the_payload_limit_fails_the_attempt_for_good() {
    const BIG: ActivityDef<(), String> = ActivityDef::new("big");
    const LARGE: WorkflowDef<(), String> = WorkflowDef::new("large");
    let mut limits = reprise_history::Limits::DEFAULT;
    limits.max_payload_bytes = 1_000;
    let registry = Registry::builder()
        .limits(limits)
        .workflow(LARGE, |ctx: WorkflowContext, ()| async move {
            match ctx.local_activity(BIG, &()).await {
                Ok(text) => Ok(text),
                Err(e) => Ok(format!("{} after {}", e.failure.error_type, e.attempts)),
            }
        })
        .activity(BIG, |_, ()| async move {
            Ok::<_, ActivityError>("x".repeat(5_000))
        })
        .build()
        .unwrap();
    let mut env = TestEnv::new(registry);
    let run = env.start(LARGE, "large", &()).unwrap();
    assert_eq!(env.result(&run).unwrap(), "OutputEncode after 1");
}

//! `TestEnv`: stand-ins, virtual time, signals, cancellation, children, determinism checks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reprise_history::{ActivityOptions, RetryPolicy};
use reprise_sdk::{
    ActivityDef, ActivityError, Registry, SignalDef, WorkflowContext, WorkflowDef, WorkflowError,
};
use reprise_testkit::{Error, TestEnv, check_determinism};

const CHARGE: ActivityDef<u64, String> = ActivityDef::new("charge");
const REFUND: ActivityDef<u64, ()> = ActivityDef::new("refund");
const APPROVE: SignalDef<bool> = SignalDef::new("approve");
const ORDER: WorkflowDef<u64, String> = WorkflowDef::new("order");
const TRIAL: WorkflowDef<(), String> = WorkflowDef::new("trial");
const PARENT: WorkflowDef<u32, u32> = WorkflowDef::new("parent");
const CHILD: WorkflowDef<u32, u32> = WorkflowDef::new("child");
const COUNTDOWN: WorkflowDef<u32, String> = WorkflowDef::new("countdown");

fn retries(max_attempts: u32) -> ActivityOptions {
    ActivityOptions {
        retry: RetryPolicy {
            max_attempts: Some(max_attempts),
            initial_backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(60),
            backoff_multiplier: 2.0,
            jitter: 0.0,
            non_retryable_error_types: vec!["Declined".into()],
            retry_on: Vec::new(),
        },
        ..ActivityOptions::default()
    }
}

async fn order(ctx: WorkflowContext, cents: u64) -> Result<String, WorkflowError> {
    let receipt = ctx.activity(CHARGE, &cents).options(retries(4)).await?;
    let approved = reprise_sdk::select! {
        answer = futures::FutureExt::fuse(ctx.signal(APPROVE)) => answer?,
        _ = futures::FutureExt::fuse(ctx.sleep(Duration::from_secs(7 * 86_400))) => false,
    };
    if !approved {
        ctx.activity(REFUND, &cents).await?;
        return Ok(format!("refunded {cents}"));
    }
    Ok(receipt)
}

async fn trial(ctx: WorkflowContext, (): ()) -> Result<String, WorkflowError> {
    ctx.sleep(Duration::from_secs(30 * 86_400)).await?;
    Ok("trial over".to_string())
}

async fn parent(ctx: WorkflowContext, n: u32) -> Result<u32, WorkflowError> {
    let (a, b) = futures::join!(
        ctx.child(CHILD, "child-a", &n),
        ctx.child(CHILD, "child-b", &(n + 1))
    );
    Ok(a? + b?)
}

async fn child(ctx: WorkflowContext, n: u32) -> Result<u32, WorkflowError> {
    ctx.sleep(Duration::from_secs(u64::from(n))).await?;
    Ok(n * 10)
}

async fn countdown(ctx: WorkflowContext, n: u32) -> Result<String, WorkflowError> {
    if n > 0 {
        ctx.sleep(Duration::from_secs(60)).await?;
        return Err(ctx.continue_as_new(&(n - 1))?);
    }
    Ok("liftoff".to_string())
}

fn registry() -> Registry {
    Registry::builder()
        .workflow(ORDER, order)
        .workflow(TRIAL, trial)
        .workflow(PARENT, parent)
        .workflow(CHILD, child)
        .workflow(COUNTDOWN, countdown)
        .build()
        .unwrap()
}

#[test]
fn a_thirty_day_sleep_finishes_at_once_in_virtual_time() {
    let started = Instant::now();
    let mut env = TestEnv::new(registry());
    let t0 = env.now();
    let run = env.start(TRIAL, "trial-1", &()).unwrap();
    assert_eq!(env.result(&run).unwrap(), "trial over");
    assert_eq!(
        env.now().as_unix_micros() - t0.as_unix_micros(),
        30 * 86_400 * 1_000_000
    );
    eprintln!("30 virtual days took {:?} of real time", started.elapsed());
}

#[test]
fn stand_ins_see_inputs_and_fail_on_chosen_attempts_with_backoff_in_virtual_time() {
    let mut env = TestEnv::new(registry());
    let charge = env
        .stand_in(CHARGE, |cents: u64, attempt| {
            if attempt < 3 {
                return Err(ActivityError::retryable(
                    "Busy",
                    format!("attempt {attempt}"),
                ));
            }
            Ok(format!("charged {cents}"))
        })
        .unwrap();
    let t0 = env.now();
    let run = env.start(ORDER, "order-1", &250).unwrap();
    assert_eq!(
        charge.calls(),
        [(250, 1)],
        "starting runs only what is due now"
    );
    // Backoff 10 s then 20 s (multiplier 2, no jitter): 30 s on, both retries have run.
    env.advance(Duration::from_secs(29)).unwrap();
    assert_eq!(charge.count(), 2);
    env.advance(Duration::from_secs(1)).unwrap();
    assert_eq!(charge.calls(), [(250, 1), (250, 2), (250, 3)]);
    assert_eq!(env.now().as_unix_micros() - t0.as_unix_micros(), 30_000_000);
    env.signal("order-1", APPROVE, &true).unwrap();
    assert_eq!(env.result(&run).unwrap(), "charged 250");
}

#[test]
fn a_non_retryable_failure_is_not_retried_and_fails_the_workflow() {
    let mut env = TestEnv::new(registry());
    let charge = env
        .stand_in(CHARGE, |_: u64, _| {
            Err::<String, _>(ActivityError::non_retryable("Declined", "card declined"))
        })
        .unwrap();
    let run = env.start(ORDER, "order-2", &99).unwrap();
    assert_eq!(charge.count(), 1);
    let err = env.result(&run).unwrap_err();
    let Error::Failed { failure, .. } = err else {
        panic!("expected the workflow's failure, got: {err}");
    };
    assert_eq!(failure.error_type, "ActivityFailed");
    assert_eq!(failure.causes[0].error_type, "Declined");
    assert_eq!(failure.causes[0].message, "card declined");
    let history = env.history("order-2").unwrap();
    let last = history.events().last().unwrap().kind.name();
    assert_eq!(last, "WorkflowFailed");
}

#[test]
fn the_week_long_approval_timeout_refunds_when_no_signal_comes() {
    let mut env = TestEnv::new(registry());
    env.stand_in(CHARGE, |cents: u64, _| Ok(format!("charged {cents}")))
        .unwrap();
    let refund = env.stand_in(REFUND, |_: u64, _| Ok(())).unwrap();
    let run = env.start(ORDER, "order-3", &10).unwrap();
    assert_eq!(env.result(&run).unwrap(), "refunded 10");
    assert_eq!(refund.calls(), [(10, 1)]);
}

#[test]
fn a_workflow_waiting_for_a_signal_says_so() {
    const WAITS: WorkflowDef<(), bool> = WorkflowDef::new("waits");
    let registry = Registry::builder()
        .workflow(WAITS, |ctx: WorkflowContext, ()| async move {
            Ok(ctx.signal(APPROVE).await?)
        })
        .build()
        .unwrap();
    let mut env = TestEnv::new(registry);
    let run = env.start(WAITS, "waits-1", &()).unwrap();
    let err = env.result(&run).unwrap_err();
    assert_eq!(
        err.to_string(),
        "workflow \"waits-1\" is still waiting (last event: WorkflowStarted); it needs a signal, a cancel or an activity the test does not provide"
    );
    env.signal("waits-1", APPROVE, &true).unwrap();
    assert!(env.result(&run).unwrap());
}

#[test]
fn cancellation_from_the_test_reaches_the_workflow() {
    const SAGA: WorkflowDef<u64, String> = WorkflowDef::new("saga");
    let registry = Registry::builder()
        .workflow(SAGA, |ctx: WorkflowContext, cents: u64| async move {
            ctx.activity(CHARGE, &cents).await?;
            match ctx.sleep(Duration::from_secs(86_400)).await {
                Ok(()) => Ok("kept".to_string()),
                Err(_) => {
                    ctx.activity(REFUND, &cents).await?;
                    Err(WorkflowError::Cancelled { details: None })
                }
            }
        })
        .build()
        .unwrap();
    let mut env = TestEnv::new(registry);
    env.stand_in(CHARGE, |c: u64, _| Ok(format!("charged {c}")))
        .unwrap();
    let refund = env.stand_in(REFUND, |_: u64, _| Ok(())).unwrap();
    let run = env.start(SAGA, "saga-1", &5).unwrap();
    env.cancel("saga-1").unwrap();
    assert_eq!(refund.count(), 1, "compensated after the cancel");
    assert!(matches!(env.result(&run), Err(Error::Ended { .. })));
    let kinds: Vec<_> = env
        .history("saga-1")
        .unwrap()
        .events()
        .iter()
        .map(|e| e.kind.name())
        .collect();
    assert_eq!(kinds.last(), Some(&"WorkflowCancelled"));
}

#[test]
fn children_and_continue_as_new_run_in_the_environment() {
    let mut env = TestEnv::new(registry());
    let run = env.start(PARENT, "parent-1", &2).unwrap();
    assert_eq!(env.result(&run).unwrap(), 50);
    let run = env.start(COUNTDOWN, "countdown", &3).unwrap();
    assert_eq!(env.result(&run).unwrap(), "liftoff");
}

#[test]
fn an_order_workflow_is_deterministic_under_many_completion_orders() {
    let make = || {
        let mut env = TestEnv::new(registry());
        env.stand_in(CHARGE, |c: u64, attempt| {
            if attempt == 1 {
                Err(ActivityError::retryable("Busy", ""))
            } else {
                Ok(format!("charged {c}"))
            }
        })?;
        env.stand_in(REFUND, |_: u64, _| Ok(()))?;
        Ok(env)
    };
    assert_eq!(check_determinism(make, ORDER, &7, 0..50).unwrap(), 50);
}

#[test]
fn a_workflow_that_reads_outside_state_is_caught() {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    const LEAKY: WorkflowDef<(), u64> = WorkflowDef::new("leaky");
    // Decides from a counter outside the workflow: replay sees another value.
    let make = || {
        let registry = Registry::builder()
            .workflow(LEAKY, |ctx: WorkflowContext, ()| async move {
                let n = RUNS.fetch_add(1, Ordering::SeqCst);
                if n.is_multiple_of(2) {
                    ctx.sleep(Duration::from_secs(1)).await?;
                }
                Ok(n)
            })
            .build()
            .map_err(Error::from)?;
        Ok(TestEnv::new(registry))
    };
    let err = check_determinism(make, LEAKY, &(), 0..4).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(
            "with completion order seed 0, the history does not replay: nondeterminism ND0"
        ),
        "{text}"
    );
}

/// Terminating a parent applies each child's parent-close policy, as the engine does: the
/// default (terminate) ends the child, `Abandon` leaves it running.
#[test]
fn terminating_a_parent_applies_its_childrens_policies() {
    const FAMILY: WorkflowDef<(), u32> = WorkflowDef::new("family");
    let registry = Registry::builder()
        .workflow(CHILD, child)
        .workflow(FAMILY, |ctx: WorkflowContext, ()| async move {
            let terminated = ctx.child(CHILD, "ended-with-parent", &3600);
            let abandoned = ctx
                .child(CHILD, "left-running", &3600)
                .parent_close_policy(reprise_history::ParentClosePolicy::Abandon);
            let (a, b) = futures::join!(terminated, abandoned);
            Ok(a? + b?)
        })
        .build()
        .unwrap();
    let mut env = TestEnv::new(registry);
    let run = env.start(FAMILY, "family", &()).unwrap();
    env.terminate("family", "not needed").unwrap();
    assert!(matches!(env.result(&run), Err(Error::Ended { .. })));
    let kinds = |id: &str| -> Vec<&'static str> {
        let history = env.history(id).unwrap();
        history.events().iter().map(|e| e.kind.name()).collect()
    };
    assert_eq!(
        kinds("ended-with-parent"),
        ["WorkflowStarted", "TimerStarted", "WorkflowTerminated"]
    );
    // The abandoned child sleeps its hour and completes; nobody waits for it.
    assert_eq!(
        kinds("left-running"),
        [
            "WorkflowStarted",
            "TimerStarted",
            "TimerFired",
            "WorkflowCompleted"
        ]
    );
}

const IMPATIENT: WorkflowDef<(), String> = WorkflowDef::new("impatient");

/// Waits for approval at most 300 ms of tokio's time: a timer Reprise cannot replay.
async fn impatient(ctx: WorkflowContext, (): ()) -> Result<String, WorkflowError> {
    match tokio::time::timeout(Duration::from_millis(300), ctx.signal(APPROVE)).await {
        Ok(answer) => Ok(format!("approved: {}", answer?)),
        Err(_) => Ok("gave up".to_string()),
    }
}

/// What `TestEnv` says of the impatient workflow: ND07 naming tokio's timer, with the hint.
fn impatient_is_nd07() {
    let registry = Registry::builder()
        .workflow(IMPATIENT, impatient)
        .build()
        .unwrap();
    let mut env = TestEnv::new(registry);
    let err = env
        .start(IMPATIENT, "impatient-1", &())
        .and_then(|run| env.result(&run))
        .unwrap_err();
    let Error::Sdk(reprise_sdk::Error::Nondeterminism(n)) = &err else {
        panic!("{err}")
    };
    assert_eq!(n.kind.code(), "ND07", "{err}");
    let message = err.to_string();
    assert!(message.contains("tokio timer"), "{message}");
    assert!(message.contains("use ctx.sleep() for time"), "{message}");
}

#[test]
fn a_tokio_timer_in_a_workflow_is_nd07_without_a_runtime() {
    impatient_is_nd07();
}

#[tokio::test]
async fn a_tokio_timer_in_a_workflow_is_nd07_in_a_runtime() {
    impatient_is_nd07();
}

#[test]
fn a_retried_attempt_resumes_from_the_last_heartbeats_details() {
    const ITEMS: ActivityDef<u32, Vec<u32>> = ActivityDef::new("items");
    const BATCH: WorkflowDef<u32, Vec<u32>> = WorkflowDef::new("batch");
    let registry = Registry::builder()
        .workflow(BATCH, |ctx: WorkflowContext, n: u32| async move {
            Ok(ctx.activity(ITEMS, &n).options(retries(3)).await?)
        })
        .activity(
            ITEMS,
            |ctx: reprise_sdk::ActivityContext, n: u32| async move {
                let done: Option<u32> = ctx.last_details()?;
                let mut processed = Vec::new();
                for item in done.map_or(0, |last| last + 1)..n {
                    if ctx.attempt() == 1 && item == 4 {
                        return Err(ActivityError::retryable("Crashed", "after item 3"));
                    }
                    processed.push(item);
                    ctx.heartbeat(&item)?;
                }
                Ok(processed)
            },
        )
        .build()
        .unwrap();
    let mut env = TestEnv::new(registry);
    let run = env.start(BATCH, "batch", &7).unwrap();
    assert_eq!(
        env.result(&run).unwrap(),
        [4, 5, 6],
        "items 0 to 3 were skipped"
    );
}

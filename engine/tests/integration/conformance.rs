//! The testkit's `TestEnv` and the engine on PostgreSQL carry out the same effects: the same
//! workflows, run in both, leave the same histories, event by event, up to times and ids.
//! Between them the scenarios make every kind of decision (activities scheduled and
//! cancelled, timers started, fired and cancelled, children started, awaited and cancelled,
//! side-effect and patch markers, continue-as-new, completion, failure, cancellation), time
//! an activity out by its schedule-to-close deadline, and apply all three parent-close
//! policies. Each scenario keeps to one input in flight at a time, so that its history does
//! not depend on which of two inputs arrives first.

use std::time::Duration;

use futures::FutureExt;
use reprise_engine::{Client, Store};
use reprise_history::{
    ActivityOptions, Event, ParentClosePolicy, RecordedHistory, RetryPolicy, RunId,
};
use reprise_sdk::{
    ActivityContext, ActivityDef, ActivityError, LocalActivityOptions, Registry, SignalDef,
    WorkflowContext, WorkflowDef, WorkflowError, select,
};
use reprise_testkit::TestEnv;
use serde_json::Value;

use crate::hosts::Running;
use crate::support::TestDb;

const WORK: ActivityDef<u32, u32> = ActivityDef::new("work");
const FLAKY: ActivityDef<u32, u32> = ActivityDef::new("flaky");
const BROKEN: ActivityDef<u32, u32> = ActivityDef::new("broken");
const EVERYTHING: WorkflowDef<u32, String> = WorkflowDef::new("everything");
const CHILD: WorkflowDef<u32, u32> = WorkflowDef::new("child");
const WAITER: WorkflowDef<(), String> = WorkflowDef::new("waiter");
const POLICIES: WorkflowDef<(), String> = WorkflowDef::new("policies");
const DEADLINE: WorkflowDef<(), String> = WorkflowDef::new("deadline");
const QUICK: WorkflowDef<(), u32> = WorkflowDef::new("quick");
const RELAY: WorkflowDef<u32, String> = WorkflowDef::new("relay");
const LOCALS: WorkflowDef<(), String> = WorkflowDef::new("locals");
const GO: SignalDef<()> = SignalDef::new("go");
const NOTE: SignalDef<String> = SignalDef::new("note");
const WAKE: SignalDef<String> = SignalDef::new("wake");

/// The workflow ids the scenarios leave histories under.
const WORKFLOW_IDS: [&str; 12] = [
    "everything",
    "everything-child",
    "everything-waiter",
    "policies",
    "child-terminate",
    "child-cancel",
    "child-abandon",
    "deadline",
    "quick",
    "quick-child",
    "relay",
    "locals",
];

async fn work(_: ActivityContext, n: u32) -> Result<u32, ActivityError> {
    Ok(n + 100)
}

async fn flaky(ctx: ActivityContext, _: u32) -> Result<u32, ActivityError> {
    Err(ActivityError::retryable(
        "Flaky",
        format!("attempt {} failed", ctx.attempt()),
    ))
}

async fn broken(_: ActivityContext, _: u32) -> Result<u32, ActivityError> {
    Err(ActivityError::non_retryable("Broken", "it never works"))
}

/// A retry an hour away: the attempt waits, not runs, when something cancels it.
fn retry_in_an_hour() -> ActivityOptions {
    ActivityOptions {
        retry: RetryPolicy {
            initial_backoff: Duration::from_secs(3600),
            jitter: 0.0,
            ..RetryPolicy::default()
        },
        ..ActivityOptions::default()
    }
}

/// Continues as new `rounds` times, then makes every other kind of decision.
async fn everything(ctx: WorkflowContext, rounds: u32) -> Result<String, WorkflowError> {
    if rounds > 0 {
        return Err(ctx.continue_as_new(&(rounds - 1))?);
    }
    let first = ctx.activity(WORK, &1).await?;
    let seven: u32 = ctx.side_effect(|| 7)?;
    let patched = ctx.patched("conformance-v2");
    ctx.sleep(Duration::from_secs(1)).await?;
    // A timer cancelled: the activity finishes long before the hour.
    let second = select! {
        done = ctx.activity(WORK, &2).fuse() => done?,
        _ = ctx.sleep(Duration::from_secs(3600)).fuse() => 0,
    };
    // An activity cancelled while it waits for its retry: the timer wins. (Three seconds, so
    // that the first attempt has run and failed by then even on a busy machine.)
    let flaky_won = select! {
        done = ctx.activity(FLAKY, &3).options(retry_in_an_hour()).fuse() => done.is_ok(),
        _ = ctx.sleep(Duration::from_secs(3)).fuse() => false,
    };
    let child = ctx.child(CHILD, "everything-child", &4).await?;
    // A child cancelled: the second wins over a child that waits for a signal.
    select! {
        _ = ctx.child(WAITER, "everything-waiter", &()).fuse() => {},
        _ = ctx.sleep(Duration::from_secs(1)).fuse() => {},
    }
    Ok(format!(
        "{first} {seven} {patched} {second} {flaky_won} {child}"
    ))
}

async fn child(ctx: WorkflowContext, n: u32) -> Result<u32, WorkflowError> {
    Ok(ctx.activity(WORK, &n).await? * 10)
}

async fn waiter(ctx: WorkflowContext, (): ()) -> Result<String, WorkflowError> {
    Ok(ctx.signal(WAKE).await?)
}

/// Starts a child under each parent-close policy and waits for them: the test terminates it.
async fn policies(ctx: WorkflowContext, (): ()) -> Result<String, WorkflowError> {
    let child = |id, policy| ctx.child(WAITER, id, &()).parent_close_policy(policy);
    let terminated = child("child-terminate", ParentClosePolicy::Terminate);
    let cancelled = child("child-cancel", ParentClosePolicy::RequestCancel);
    let abandoned = child("child-abandon", ParentClosePolicy::Abandon);
    let (a, b, c) = futures::join!(terminated, cancelled, abandoned);
    Ok(format!("{a:?} {b:?} {c:?}"))
}

/// An activity timed out by its schedule-to-close deadline, then one that fails the workflow.
async fn deadline(ctx: WorkflowContext, (): ()) -> Result<String, WorkflowError> {
    let options = ActivityOptions {
        // Long enough for the first attempt to run and fail first, even on a busy machine.
        schedule_to_close: Some(Duration::from_secs(4)),
        ..retry_in_an_hour()
    };
    let timed_out = ctx.activity(FLAKY, &5).options(options).await.is_err();
    let never = ctx.activity(BROKEN, &6).await?;
    Ok(format!("{timed_out} {never}"))
}

/// Starts a child and lets go of it in the same step, then closes: the child (whose first step
/// would schedule an activity) is asked to cancel and, its parent closing, terminated before
/// it ever steps.
async fn quick(ctx: WorkflowContext, (): ()) -> Result<u32, WorkflowError> {
    drop(ctx.child(CHILD, "quick-child", &7));
    ctx.side_effect(|| 1u32)
}

/// Continues as new on `go`; the next run reads two notes. The notes are sent around `go`:
/// the first reaches the first run, which never takes it (its code buffers it); the second
/// arrives in the step that closes the run, or after. The next run must get them in the
/// order they were sent.
async fn relay(ctx: WorkflowContext, round: u32) -> Result<String, WorkflowError> {
    if round == 0 {
        ctx.signal(GO).await?;
        return Err(ctx.continue_as_new(&1)?);
    }
    let first = ctx.signal(NOTE).await?;
    let second = ctx.signal(NOTE).await?;
    Ok(format!("{first} {second}"))
}

/// Local activities: one that answers, one that fails for good, one retried inside the step
/// until its attempts run out.
async fn locals(ctx: WorkflowContext, (): ()) -> Result<String, WorkflowError> {
    let answer = ctx.local_activity(WORK, &5).await?;
    let broken = ctx.local_activity(BROKEN, &6).await.is_err();
    let options = LocalActivityOptions {
        retry: RetryPolicy {
            max_attempts: Some(2),
            initial_backoff: Duration::from_millis(10),
            jitter: 0.0,
            ..RetryPolicy::default()
        },
        ..LocalActivityOptions::default()
    };
    let flaky = ctx.local_activity(FLAKY, &7).options(options).await;
    let attempts = flaky.err().map_or(0, |e| e.attempts);
    Ok(format!("{answer} {broken} {attempts}"))
}

fn registry() -> Registry {
    Registry::builder()
        .workflow(EVERYTHING, everything)
        .workflow(CHILD, child)
        .workflow(WAITER, waiter)
        .workflow(POLICIES, policies)
        .workflow(DEADLINE, deadline)
        .workflow(QUICK, quick)
        .workflow(RELAY, relay)
        .workflow(LOCALS, locals)
        .activity(WORK, work)
        .activity(FLAKY, flaky)
        .activity(BROKEN, broken)
        .build()
        .unwrap()
}

/// An event as compared: its kind as JSON, with every uuid (run ids) made the same.
fn comparable(event: &Event) -> Value {
    fn scrub(value: &mut Value) {
        match value {
            Value::String(s) if uuid::Uuid::parse_str(s).is_ok() => *s = "<uuid>".into(),
            Value::Array(items) => items.iter_mut().for_each(scrub),
            Value::Object(fields) => fields.values_mut().for_each(scrub),
            _ => {}
        }
    }
    let mut value = serde_json::to_value(&event.kind).unwrap();
    scrub(&mut value);
    value
}

fn comparable_history(history: &RecordedHistory) -> Vec<Value> {
    history.events().iter().map(comparable).collect()
}

/// Every run's history of each workflow id, oldest first.
type Histories = Vec<Vec<Vec<Value>>>;

/// Every scenario in the testkit, in virtual time.
fn in_test_env() -> Histories {
    let mut env = TestEnv::new(registry());
    let run = env.start(EVERYTHING, "everything", &1).unwrap();
    assert_eq!(env.result(&run).unwrap(), "101 7 true 102 false 1040");
    env.start(POLICIES, "policies", &()).unwrap();
    env.terminate("policies", "the test ended it").unwrap();
    let run = env.start(DEADLINE, "deadline", &()).unwrap();
    assert!(env.result(&run).is_err());
    let run = env.start(QUICK, "quick", &()).unwrap();
    assert_eq!(env.result(&run).unwrap(), 1);
    let run = env.start(RELAY, "relay", &0).unwrap();
    env.signal("relay", NOTE, &"sent first".to_string())
        .unwrap();
    env.signal("relay", GO, &()).unwrap();
    env.signal("relay", NOTE, &"sent last".to_string()).unwrap();
    assert_eq!(env.result(&run).unwrap(), "sent first sent last");
    let run = env.start(LOCALS, "locals", &()).unwrap();
    assert_eq!(env.result(&run).unwrap(), "105 true 2");
    env.run_until_idle().unwrap();
    WORKFLOW_IDS
        .iter()
        .map(|id| {
            let runs = env.histories(id).unwrap_or_default();
            runs.iter().map(comparable_history).collect()
        })
        .collect()
}

/// Every scenario on PostgreSQL, with an engine and a worker.
async fn on_postgres(db: &TestDb) -> Histories {
    let store = Store::new(db.pool.clone());
    let client = Client::new(store.clone());
    // The relay's signals all wait in its inbox before any engine runs: its first step takes
    // them together, and the last arrives after the run has closed.
    let relay = client.start(RELAY, "relay", &0).await.unwrap();
    let note = |text: &str| text.to_string();
    client
        .signal("relay", NOTE, &note("sent first"))
        .await
        .unwrap();
    client.signal("relay", GO, &()).await.unwrap();
    client
        .signal("relay", NOTE, &note("sent last"))
        .await
        .unwrap();
    let running = Running::both(&store, registry);
    let everything = client.start(EVERYTHING, "everything", &1).await.unwrap();
    let policies = client.start(POLICIES, "policies", &()).await.unwrap();
    let deadline = client.start(DEADLINE, "deadline", &()).await.unwrap();
    let children_started = async || {
        client
            .describe("policies")
            .await
            .is_ok_and(|d| d.head_seq.get() >= 4)
    };
    within(running.until(children_started)).await;
    client
        .terminate("policies", "the test ended it")
        .await
        .unwrap();
    assert_eq!(
        within(everything.result()).await.unwrap(),
        "101 7 true 102 false 1040"
    );
    assert!(within(deadline.result()).await.is_err());
    let quick = client.start(QUICK, "quick", &()).await.unwrap();
    assert_eq!(within(quick.result()).await.unwrap(), 1);
    assert_eq!(
        within(relay.result()).await.unwrap(),
        "sent first sent last"
    );
    assert!(within(policies.result()).await.is_err());
    let locals = client.start(LOCALS, "locals", &()).await.unwrap();
    assert_eq!(within(locals.result()).await.unwrap(), "105 true 2");
    let cancelled = client.handle(WAITER, "child-cancel").await.unwrap();
    assert!(within(cancelled.result()).await.is_err());
    let mut histories = Vec::new();
    for id in WORKFLOW_IDS {
        let runs: Vec<uuid::Uuid> = sqlx::query_scalar(
            "SELECT run_id FROM reprise.runs WHERE workflow_id = $1 ORDER BY created_at, run_id",
        )
        .bind(id)
        .fetch_all(&db.pool)
        .await
        .unwrap();
        let mut exported = Vec::new();
        for run in runs {
            let history = client.export(RunId::from_uuid(run)).await.unwrap();
            exported.push(comparable_history(&history));
        }
        histories.push(exported);
    }
    drop(running);
    histories
}

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("timed out")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_testkit_and_postgres_leave_the_same_histories() {
    let db = TestDb::migrated().await;
    let expected = in_test_env();
    let actual = on_postgres(&db).await;
    db.drop_database().await;
    let mut differences = Vec::new();
    for ((id, testkit), postgres) in WORKFLOW_IDS.iter().zip(&expected).zip(&actual) {
        if testkit == postgres {
            continue;
        }
        let pretty = |runs: &Vec<Vec<Value>>| {
            let mut lines = Vec::new();
            for (r, events) in runs.iter().enumerate() {
                lines.push(format!("  run {}:", r + 1));
                for (i, e) in events.iter().enumerate() {
                    lines.push(format!("    {}: {e}", i + 1));
                }
            }
            lines.join("\n")
        };
        differences.push(format!(
            "{id}:\n testkit:\n{}\n postgres:\n{}",
            pretty(testkit),
            pretty(postgres)
        ));
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
    // Every kind of decision was made somewhere.
    let kinds: std::collections::BTreeSet<String> = expected
        .iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.as_object()?.keys().next().cloned())
        .collect();
    for kind in [
        "ActivityScheduled",
        "ActivityCancelRequested",
        "ActivityCancelled",
        "ActivityTimedOut",
        "ActivityFailed",
        "TimerStarted",
        "TimerFired",
        "TimerCancelled",
        "ChildWorkflowStarted",
        "ChildWorkflowCompleted",
        "ChildWorkflowCancelRequested",
        "MarkerRecorded",
        "CancelRequested",
        "WorkflowCompleted",
        "WorkflowFailed",
        "WorkflowCancelled",
        "WorkflowTerminated",
        "WorkflowContinuedAsNew",
    ] {
        assert!(kinds.contains(kind), "no {kind} in {kinds:?}");
    }
}

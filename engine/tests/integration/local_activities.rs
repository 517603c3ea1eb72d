//! Local activities on PostgreSQL: run by the engine inside the step that schedules them, with
//! no task and no worker; retried past the in-step window on a durable timer; never run again
//! by replay; a type the engine lacks parks the run, and a panic is a failed attempt.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use reprise_engine::{Client, EngineOptions, Store};
use reprise_history::{EventKind, RecordedHistory, RetryPolicy, RunId};
use reprise_sdk::{
    ActivityContext, ActivityDef, ActivityError, LocalActivityOptions, Registry, SignalDef,
    WorkflowContext, WorkflowDef, WorkflowError,
};

use crate::engine::{parked_reason, within};
use crate::hosts::{Running, engine_options, run_engine};
use crate::support::TestDb;

const ADD: ActivityDef<(u64, u64), u64> = ActivityDef::new("add");
/// Fails its first attempt (retryably), then answers with its attempt number.
const FLAKY: ActivityDef<(), u32> = ActivityDef::new("flaky");
/// Panics on its first attempt.
const PANICS: ActivityDef<(), u32> = ActivityDef::new("panics");
/// Registered nowhere.
const MISSING: ActivityDef<(), ()> = ActivityDef::new("missing");
const PING: SignalDef<u32> = SignalDef::new("ping");

const SUM: WorkflowDef<u64, u64> = WorkflowDef::new("sum");
const PATIENT: WorkflowDef<(), (u32, u32)> = WorkflowDef::new("patient");
const TWICE: WorkflowDef<(), u64> = WorkflowDef::new("twice");
const PANICKY: WorkflowDef<(), u32> = WorkflowDef::new("panicky");
const BROKEN: WorkflowDef<(), ()> = WorkflowDef::new("broken");

async fn sum(ctx: WorkflowContext, n: u64) -> Result<u64, WorkflowError> {
    let mut total = 0;
    for i in 1..=n {
        total = ctx.local_activity(ADD, &(total, i)).await?;
    }
    Ok(total)
}

fn retry_after(initial_backoff: Duration) -> LocalActivityOptions {
    LocalActivityOptions {
        retry: RetryPolicy {
            max_attempts: Some(3),
            initial_backoff,
            max_backoff: initial_backoff,
            backoff_multiplier: 1.0,
            jitter: 0.0,
            non_retryable_error_types: vec![],
            retry_on: Vec::new(),
        },
        ..LocalActivityOptions::default()
    }
}

/// A flaky local activity with a minute's backoff, and a signal the run takes meanwhile.
async fn patient(ctx: WorkflowContext, (): ()) -> Result<(u32, u32), WorkflowError> {
    let attempt = ctx
        .local_activity(FLAKY, &())
        .options(retry_after(Duration::from_secs(60)));
    let (attempt, ping) = futures::join!(attempt, ctx.signal(PING));
    Ok((attempt?, ping?))
}

/// A local activity, a signal, and another: the second step is on whichever engine takes it.
async fn twice(ctx: WorkflowContext, (): ()) -> Result<u64, WorkflowError> {
    let first = ctx.local_activity(ADD, &(1, 2)).await?;
    let more = ctx.signal(PING).await?;
    Ok(ctx.local_activity(ADD, &(first, u64::from(more))).await?)
}

async fn panicky(ctx: WorkflowContext, (): ()) -> Result<u32, WorkflowError> {
    let options = retry_after(Duration::from_millis(10));
    Ok(ctx.local_activity(PANICS, &()).options(options).await?)
}

async fn broken(ctx: WorkflowContext, (): ()) -> Result<(), WorkflowError> {
    Ok(ctx.local_activity(MISSING, &()).await?)
}

/// The registry, counting `ADD`'s runs in `adds`.
fn registry(adds: Arc<AtomicU32>) -> Registry {
    Registry::builder()
        .workflow(SUM, sum)
        .workflow(PATIENT, patient)
        .workflow(TWICE, twice)
        .workflow(PANICKY, panicky)
        .workflow(BROKEN, broken)
        .activity(ADD, move |_: ActivityContext, (a, b): (u64, u64)| {
            adds.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, ActivityError>(a + b) }
        })
        .activity(FLAKY, |ctx: ActivityContext, ()| async move {
            if ctx.attempt() == 1 {
                return Err(ActivityError::retryable("Unavailable", "pricing is down"));
            }
            Ok(ctx.attempt())
        })
        .activity(PANICS, |ctx: ActivityContext, ()| async move {
            if ctx.attempt() == 1 {
                panic!("the price list is empty");
            }
            Ok::<_, ActivityError>(ctx.attempt())
        })
        .build()
        .unwrap()
}

fn kinds(history: &RecordedHistory) -> Vec<&'static str> {
    history.events().iter().map(|e| e.kind.name()).collect()
}

/// Waits until the run's history holds an event of `kind`.
async fn recorded(running: &Running, client: &Client, run: RunId, kind: &str) {
    let holds = async || {
        let history = client.export(run).await.unwrap();
        kinds(&history).contains(&kind)
    };
    within(running.until(holds)).await;
}

/// An engine alone (no worker anywhere): local activities need none.
fn engine_alone(store: &Store, adds: &Arc<AtomicU32>, options: EngineOptions) -> Running {
    let mut running = Running::new();
    run_engine(store, registry(adds.clone()), options, &mut running);
    running
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_chain_of_local_activities_completes_in_one_step_with_no_worker_and_no_task() {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let adds = Arc::new(AtomicU32::new(0));
    // Counts every task ever inserted (a row trigger in this test's database only).
    sqlx::raw_sql(
        "CREATE TABLE public.task_inserts (run_id uuid);
         CREATE FUNCTION public.count_task() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN INSERT INTO public.task_inserts VALUES (NEW.run_id); RETURN NULL; END $$;
         CREATE TRIGGER count_tasks AFTER INSERT ON reprise.activity_tasks
             FOR EACH ROW EXECUTE FUNCTION public.count_task();",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let mut running = Running::new();
    let engine = run_engine(
        &store,
        registry(adds.clone()),
        engine_options(),
        &mut running,
    );
    let client = Client::new(store.clone());
    let handle = client.start(SUM, "sum-10", &10).await.unwrap();
    assert_eq!(within(handle.result()).await.unwrap(), 55);
    assert_eq!(adds.load(Ordering::SeqCst), 10);
    let history = client.export(handle.run_id()).await.unwrap();
    let kinds = kinds(&history);
    assert_eq!(kinds.len(), 1 + 10 * 2 + 1, "{kinds:?}");
    assert!(
        kinds[1..21]
            .chunks(2)
            .all(|pair| pair == ["LocalActivityScheduled", "ActivityCompleted"])
    );
    // One step, in one batch, wrote everything after the start. (The result came with the
    // commit's notification; the engine counts the step just after.)
    let counted = async || engine.stats().batched_steps + engine.stats().direct_steps >= 1;
    within(running.until(counted)).await;
    let stats = engine.stats();
    assert_eq!(
        (stats.batched_steps, stats.direct_steps),
        (1, 0),
        "{stats:?}"
    );
    let tasks_ever: i64 = sqlx::query_scalar("SELECT count(*) FROM public.task_inserts")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(tasks_ever, 0);
    drop(running);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_past_the_window_waits_on_a_durable_timer_while_the_run_goes_on() {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let adds = Arc::new(AtomicU32::new(0));
    let running = engine_alone(&store, &adds, engine_options());
    let client = Client::new(store.clone());
    let handle = client.start(PATIENT, "patient", &()).await.unwrap();
    recorded(&running, &client, handle.run_id(), "TimerStarted").await;
    // The run is not held while it waits: a signal is taken in a step of its own.
    client.signal("patient", PING, &7).await.unwrap();
    recorded(&running, &client, handle.run_id(), "SignalReceived").await;
    store.clock().advance(Duration::from_secs(61));
    assert_eq!(within(handle.result()).await.unwrap(), (2, 7));
    let history = client.export(handle.run_id()).await.unwrap();
    assert_eq!(
        kinds(&history),
        [
            "WorkflowStarted",
            "LocalActivityScheduled",
            "LocalActivityBackoff",
            "TimerStarted",
            "SignalReceived",
            "TimerFired",
            "LocalActivityScheduled",
            "ActivityCompleted",
            "WorkflowCompleted"
        ]
    );
    let backoff = history.events().iter().find_map(|e| match &e.kind {
        EventKind::LocalActivityBackoff(b) => {
            Some((b.attempt, b.backoff, b.failure.error_type.clone()))
        }
        _ => None,
    });
    assert_eq!(
        backoff,
        Some((1, Duration::from_secs(60), "Unavailable".to_string()))
    );
    drop(running);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replay_on_another_engine_never_runs_a_recorded_local_activity_again() {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let adds = Arc::new(AtomicU32::new(0));
    let client = Client::new(store.clone());
    let first = engine_alone(&store, &adds, engine_options());
    let handle = client.start(TWICE, "twice", &()).await.unwrap();
    recorded(&first, &client, handle.run_id(), "ActivityCompleted").await;
    drop(first);
    assert_eq!(adds.load(Ordering::SeqCst), 1);
    // A new engine has nothing cached: it replays the history, recorded outcome included.
    let second = engine_alone(&store, &adds, engine_options());
    client.signal("twice", PING, &10).await.unwrap();
    assert_eq!(within(handle.result()).await.unwrap(), 13);
    assert_eq!(adds.load(Ordering::SeqCst), 2, "replay ran nothing again");
    drop(second);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_panic_is_a_retried_attempt_and_an_unknown_type_parks_the_run() {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let adds = Arc::new(AtomicU32::new(0));
    let running = engine_alone(&store, &adds, engine_options());
    let client = Client::new(store.clone());
    let handle = client.start(PANICKY, "panicky", &()).await.unwrap();
    assert_eq!(within(handle.result()).await.unwrap(), 2);
    let scrape = store.metrics().render();
    for outcome in ["failed", "completed"] {
        let series = format!(
            "reprise_local_activity_attempts_total{{activity_type=\"panics\",outcome=\"{outcome}\"}} 1"
        );
        assert!(scrape.contains(&series), "{series} in {scrape}");
    }
    client.start(BROKEN, "broken", &()).await.unwrap();
    let reason = within(parked_reason(&running, &client, "broken")).await;
    assert!(reason.contains("missing"), "{reason}");
    // The engine is unharmed: the next run completes.
    let handle = client.start(SUM, "after", &3).await.unwrap();
    assert_eq!(within(handle.result()).await.unwrap(), 6);
    let history = client.export(handle.run_id()).await.unwrap();
    assert!(kinds(&history).contains(&"LocalActivityScheduled"));
    drop(running);
    db.drop_database().await;
}

/// Not a test of timing: the engine's loops, all waiting on one run's local activity, still
/// step other runs in other batches.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_waiting_on_a_local_activity_is_held_by_its_batch_alone() {
    const GATE: ActivityDef<(), ()> = ActivityDef::new("gate");
    const GATED: WorkflowDef<(), ()> = WorkflowDef::new("gated");
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let open = Arc::new(tokio::sync::Notify::new());
    let entered = Arc::new(tokio::sync::Notify::new());
    let (gate, inside) = (open.clone(), entered.clone());
    let registry = Registry::builder()
        .workflow(GATED, |ctx: WorkflowContext, ()| async move {
            Ok(ctx.local_activity(GATE, &()).await?)
        })
        .workflow(SUM, sum)
        .activity(GATE, move |_: ActivityContext, ()| {
            let (gate, inside) = (gate.clone(), inside.clone());
            async move {
                inside.notify_one();
                gate.notified().await;
                Ok::<_, ActivityError>(())
            }
        })
        .activity(ADD, |_: ActivityContext, (a, b): (u64, u64)| async move {
            Ok::<_, ActivityError>(a + b)
        })
        .build()
        .unwrap();
    let mut running = Running::new();
    run_engine(&store, registry, engine_options(), &mut running);
    let client = Client::new(store.clone());
    let gated = client.start(GATED, "gated", &()).await.unwrap();
    within(entered.notified()).await;
    let other = client.start(SUM, "other", &4).await.unwrap();
    assert_eq!(within(other.result()).await.unwrap(), 10);
    open.notify_one();
    within(gated.result()).await.unwrap();
    drop(running);
    db.drop_database().await;
}

//! Activity behaviour on the engine: heartbeats, timeouts, what `describe` shows, and
//! carrying on when database connections are lost.

use std::time::Duration;

use reprise_engine::{Client, Store};
use reprise_history::{ActivityOptions, EventKind, RetryPolicy, TimeoutKind};
use reprise_sdk::{
    ActivityContext, ActivityDef, ActivityError, Registry, WorkflowContext, WorkflowDef,
    WorkflowError,
};

use crate::hosts::{Running, engine_options, run_engine, run_worker, worker_options};
use crate::support::TestDb;

/// Runs for `millis`, heartbeating progress every 50 ms.
const BEATING: ActivityDef<u64, u32> = ActivityDef::new("beating");
/// Never finishes.
const SILENT: ActivityDef<(), ()> = ActivityDef::new("silent");
/// Heartbeats once, then never finishes.
const BEAT_ONCE: ActivityDef<(), ()> = ActivityDef::new("beat-once");
/// Always fails, retryably.
const FAILING: ActivityDef<(), ()> = ActivityDef::new("failing");
/// Runs one activity with the given options and reports how it ended.
const RUN: WorkflowDef<(String, ActivityOptions), String> = WorkflowDef::new("run");

async fn run(
    ctx: WorkflowContext,
    (which, options): (String, ActivityOptions),
) -> Result<String, WorkflowError> {
    let outcome = match which.as_str() {
        "beating" => ctx
            .activity(BEATING, &1_000)
            .options(options)
            .await
            .map(|attempt| format!("attempt {attempt}")),
        "silent" => ctx
            .activity(SILENT, &())
            .options(options)
            .await
            .map(|()| "done".to_string()),
        "beat-once" => ctx
            .activity(BEAT_ONCE, &())
            .options(options)
            .await
            .map(|()| "done".to_string()),
        _ => ctx
            .activity(FAILING, &())
            .options(options)
            .await
            .map(|()| "done".to_string()),
    };
    Ok(outcome.unwrap_or_else(|e| format!("{:?}: {}", e.end, e.failure.message)))
}

fn registry() -> Registry {
    Registry::builder()
        .workflow(RUN, run)
        .activity(BEATING, |ctx: ActivityContext, millis: u64| async move {
            for step in 0..millis / 50 {
                ctx.heartbeat(&step)?;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(ctx.attempt())
        })
        .activity(SILENT, |_: ActivityContext, ()| async move {
            std::future::pending::<()>().await;
            Ok(())
        })
        .activity(BEAT_ONCE, |ctx: ActivityContext, ()| async move {
            ctx.heartbeat(&"started")?;
            std::future::pending::<()>().await;
            Ok(())
        })
        .activity(FAILING, |_: ActivityContext, ()| async move {
            Err::<(), _>(ActivityError::retryable(
                "Unavailable",
                "the service is down",
            ))
        })
        .build()
        .unwrap()
}

/// Dropping it drops the senders, which stops the engine and the worker.
fn start(store: &Store) -> Running {
    Running::both(store, registry)
}

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("finished within 30 s")
}

fn one_attempt(options: ActivityOptions) -> ActivityOptions {
    ActivityOptions {
        retry: RetryPolicy {
            max_attempts: Some(1),
            ..RetryPolicy::default()
        },
        ..options
    }
}

/// An attempt that heartbeats outlives its heartbeat timeout many times over, in database
/// time: between heartbeats the test moves the clock on by more than half the timeout, and
/// waits for a pass of the reaper, which would time out an attempt whose lease its heartbeats
/// did not extend.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn heartbeats_keep_an_attempt_alive_past_its_heartbeat_timeout() {
    const HEARTS: ActivityDef<(), u32> = ActivityDef::new("hearts");
    const BEATS: WorkflowDef<(), String> = WorkflowDef::new("beats");
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let go = std::sync::Arc::new(tokio::sync::Notify::new());
    let registry = || {
        let go = go.clone();
        Registry::builder()
            .workflow(BEATS, |ctx: WorkflowContext, ()| async move {
                let options = one_attempt(ActivityOptions {
                    heartbeat_timeout: Some(Duration::from_secs(5)),
                    ..ActivityOptions::default()
                });
                let attempt = ctx.activity(HEARTS, &()).options(options).await;
                Ok(format!("{attempt:?}"))
            })
            .activity(HEARTS, move |ctx: ActivityContext, ()| {
                let go = go.clone();
                async move {
                    for beat in 0..4u32 {
                        ctx.heartbeat(&beat)?;
                        go.notified().await;
                    }
                    Ok(ctx.attempt())
                }
            })
            .build()
            .unwrap()
    };
    let running = Running::both(&store, registry);
    let worker = running.worker();
    let client = Client::new(store.clone());
    let handle = client.start(BEATS, "beats", &()).await.unwrap();
    let mut progress = worker.progress();
    for beat in 1..=4u64 {
        within(progress.wait_for(|s| s.heartbeats_written >= beat))
            .await
            .unwrap();
        store.clock().advance(Duration::from_secs(3));
        let passes = progress.borrow().reaper_passes;
        within(progress.wait_for(|s| s.reaper_passes >= passes + 2))
            .await
            .unwrap();
        go.notify_one();
    }
    assert_eq!(within(handle.result()).await.unwrap(), "Ok(1)");
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_silent_attempt_times_out_by_heartbeat() {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let running = start(&store);
    let client = Client::new(store.clone());
    let options = one_attempt(ActivityOptions {
        heartbeat_timeout: Some(Duration::from_secs(5)),
        ..ActivityOptions::default()
    });
    let handle = client
        .start(RUN, "silent", &("silent".to_string(), options))
        .await
        .unwrap();
    let attempt_runs = async || {
        let described = client.describe("silent").await.unwrap();
        described.pending_activities.iter().any(|a| a.running)
    };
    within(running.until(attempt_runs)).await;
    store.clock().advance(Duration::from_secs(6));
    let outcome = within(handle.result()).await.unwrap();
    assert_eq!(outcome, "TimedOut: Heartbeat timeout of attempt 1");
    let history = client.export(handle.run_id()).await.unwrap();
    let timed_out = history.events().iter().find_map(|e| match &e.kind {
        EventKind::ActivityTimedOut(t) => Some((t.timeout, t.attempt)),
        _ => None,
    });
    assert_eq!(timed_out, Some((TimeoutKind::Heartbeat, 1)));
    let scrape = store.metrics().render();
    let series = scrape
        .lines()
        .find(|l| l.starts_with("reprise_activity_timeouts_total{"))
        .unwrap_or_default();
    assert!(
        series.contains("kind=\"heartbeat\"") && series.ends_with(" 1"),
        "{scrape}"
    );
    db.drop_database().await;
}

/// The timeout the first activity of a run to time out ended with, and its attempt.
async fn timed_out(client: &Client, run_id: reprise_history::RunId) -> Option<(TimeoutKind, u32)> {
    let history = client.export(run_id).await.unwrap();
    history.events().iter().find_map(|e| match &e.kind {
        EventKind::ActivityTimedOut(t) => Some((t.timeout, t.attempt)),
        _ => None,
    })
}

/// Heartbeats extend an attempt's lease, but never past its start-to-close timeout: an
/// attempt that heartbeats forever is cancelled at the timeout and times out by it. Real
/// time, as the worker keeps the deadline on its own clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_heartbeating_attempt_still_ends_at_its_start_to_close_timeout() {
    const ENDLESS: ActivityDef<(), ()> = ActivityDef::new("endless");
    const RUN_ENDLESS: WorkflowDef<(), String> = WorkflowDef::new("run-endless");
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let cancelled = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let registry = || {
        let cancelled = cancelled.clone();
        Registry::builder()
            .workflow(RUN_ENDLESS, |ctx: WorkflowContext, ()| async move {
                let options = one_attempt(ActivityOptions {
                    start_to_close: Some(Duration::from_secs(4)),
                    heartbeat_timeout: Some(Duration::from_secs(2)),
                    ..ActivityOptions::default()
                });
                let outcome = ctx.activity(ENDLESS, &()).options(options).await;
                Ok(match outcome {
                    Ok(()) => "done".to_string(),
                    Err(e) => format!("{:?}: {}", e.end, e.failure.message),
                })
            })
            .activity(ENDLESS, move |ctx: ActivityContext, ()| {
                let cancelled = cancelled.clone();
                async move {
                    // Heartbeats until cancelled, then finishes as if it had done its work:
                    // a result after the timeout must not be taken.
                    let mut beat = 0u64;
                    while !ctx.is_cancelled() {
                        ctx.heartbeat(&beat)?;
                        beat += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    cancelled.store(true, std::sync::atomic::Ordering::SeqCst);
                    Ok(())
                }
            })
            .build()
            .unwrap()
    };
    let running = Running::both(&store, registry);
    let worker = running.worker();
    let client = Client::new(store.clone());
    let handle = client.start(RUN_ENDLESS, "endless", &()).await.unwrap();
    let outcome = within(handle.result()).await.unwrap();
    assert_eq!(outcome, "TimedOut: StartToClose timeout of attempt 1");
    assert_eq!(
        timed_out(&client, handle.run_id()).await,
        Some((TimeoutKind::StartToClose, 1))
    );
    // The worker refuses what the cancelled attempt returns (a result, here).
    let mut progress = worker.progress();
    within(progress.wait_for(|s| s.outcomes_fenced >= 1))
        .await
        .unwrap();
    assert!(cancelled.load(std::sync::atomic::Ordering::SeqCst));
    let stats = *progress.borrow();
    assert!(stats.heartbeats_written > 10, "{stats:?}");
    assert_eq!(stats.outcomes_recorded, 0, "{stats:?}");
    db.drop_database().await;
}

/// With a start-to-close timeout longer than the heartbeat timeout, an attempt that stops
/// heartbeating times out by heartbeat, both before its first heartbeat and after one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_attempt_that_stops_heartbeating_times_out_by_heartbeat_under_a_start_to_close_timeout()
{
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let running = start(&store);
    let client = Client::new(store.clone());
    let options = one_attempt(ActivityOptions {
        start_to_close: Some(Duration::from_secs(600)),
        heartbeat_timeout: Some(Duration::from_secs(5)),
        ..ActivityOptions::default()
    });
    // SILENT never heartbeats; BEAT_ONCE heartbeats once, and then the clock jumps past its
    // heartbeat timeout.
    for which in ["silent", "beat-once"] {
        let handle = client
            .start(RUN, which, &(which.to_string(), options.clone()))
            .await
            .unwrap();
        let beat_or_runs = async || {
            let described = client.describe(which).await.unwrap();
            described
                .pending_activities
                .iter()
                .any(|a| a.running && (which == "silent" || a.last_heartbeat_at.is_some()))
        };
        within(running.until(beat_or_runs)).await;
        store.clock().advance(Duration::from_secs(6));
        let outcome = within(handle.result()).await.unwrap();
        assert_eq!(
            outcome, "TimedOut: Heartbeat timeout of attempt 1",
            "{which}"
        );
        assert_eq!(
            timed_out(&client, handle.run_id()).await,
            Some((TimeoutKind::Heartbeat, 1)),
            "{which}"
        );
    }
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retries_stop_at_the_schedule_to_close_deadline_and_describe_shows_them() {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let running = start(&store);
    let client = Client::new(store.clone());
    let options = ActivityOptions {
        schedule_to_close: Some(Duration::from_secs(600)),
        retry: RetryPolicy {
            initial_backoff: Duration::from_secs(3_600),
            max_backoff: Duration::from_secs(3_600),
            jitter: 0.0,
            ..RetryPolicy::default()
        },
        ..ActivityOptions::default()
    };
    let handle = client
        .start(RUN, "deadline", &("failing".to_string(), options))
        .await
        .unwrap();
    // After the first failure the next attempt waits an hour; describe says so.
    let failed_once = async || {
        let described = client.describe("deadline").await.unwrap();
        described
            .pending_activities
            .first()
            .is_some_and(|a| a.last_failure.is_some())
    };
    within(running.until(failed_once)).await;
    let described = client.describe("deadline").await.unwrap();
    let pending = described.pending_activities[0].clone();
    assert_eq!(pending.activity_type.as_str(), "failing");
    assert_eq!(pending.attempt, 1);
    assert!(!pending.running);
    assert_eq!(
        pending.last_failure.as_deref(),
        Some("Unavailable: the service is down")
    );
    // Ten minutes on, the deadline has passed long before the next attempt.
    store.clock().advance(Duration::from_secs(601));
    let outcome = within(handle.result()).await.unwrap();
    assert_eq!(outcome, "TimedOut: the service is down");
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn engine_and_worker_carry_on_after_losing_every_connection() {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let _running = start(&store);
    let client = Client::new(store.clone());
    let options = one_attempt(ActivityOptions::default());
    let first = client
        .start(RUN, "before", &("beating".to_string(), options.clone()))
        .await
        .unwrap();
    assert_eq!(within(first.result()).await.unwrap(), "attempt 1");

    let admin = db.second_pool().await;
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE datname = current_database() AND pid <> pg_backend_pid()) AS t",
    )
    .fetch_one(&admin)
    .await
    .unwrap();
    assert!(killed > 0, "there were connections to kill");

    let second = within(client.start(RUN, "after", &("beating".to_string(), options)))
        .await
        .unwrap();
    assert_eq!(within(second.result()).await.unwrap(), "attempt 1");
    admin.close().await;
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readiness_is_on_while_running_and_off_once_draining() {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let worker = reprise_engine::Worker::new(
        store.clone(),
        registry(),
        reprise_engine::WorkerOptions::default(),
    );
    let engine = reprise_engine::Engine::new(
        store.clone(),
        registry(),
        reprise_engine::EngineOptions::default(),
    );
    assert!(
        !worker.is_ready() && !engine.is_ready(),
        "not ready before running"
    );
    let (stop_worker, worker_stopped) = tokio::sync::oneshot::channel::<()>();
    let (stop_engine, engine_stopped) = tokio::sync::oneshot::channel::<()>();
    let running_worker = tokio::spawn({
        let worker = worker.clone();
        async move {
            worker
                .run(async { worker_stopped.await.unwrap_or(()) })
                .await
        }
    });
    let running_engine = tokio::spawn({
        let engine = engine.clone();
        async move {
            engine
                .run(async { engine_stopped.await.unwrap_or(()) })
                .await
        }
    });
    within(worker.readiness().wait_for(|ready| *ready))
        .await
        .unwrap();
    within(engine.readiness().wait_for(|ready| *ready))
        .await
        .unwrap();
    stop_worker.send(()).unwrap();
    stop_engine.send(()).unwrap();
    within(running_worker).await.unwrap().unwrap();
    within(running_engine).await.unwrap().unwrap();
    assert!(
        !worker.is_ready() && !engine.is_ready(),
        "not ready once drained"
    );
    db.drop_database().await;
}

/// A rolling deploy: an old worker without activity type `shiny` runs beside the new one on
/// the same queue. It never claims a `shiny` task, so none of their attempts is spent on it
/// (each may run once only, so one spent attempt would fail the workflow).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_old_worker_never_spends_the_attempts_of_a_type_it_lacks() {
    const SHINY: ActivityDef<u32, u32> = ActivityDef::new("shiny");
    const ROLLOUT: WorkflowDef<u32, u32> = WorkflowDef::new("rollout");
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let client = Client::new(store.clone());
    let once = ActivityOptions {
        retry: RetryPolicy {
            max_attempts: Some(1),
            ..RetryPolicy::default()
        },
        ..ActivityOptions::default()
    };
    let engine = Registry::builder()
        .workflow(ROLLOUT, move |ctx: WorkflowContext, n: u32| {
            let once = once.clone();
            async move {
                let calls = (0..n).map(|i| ctx.activity(SHINY, &i).options(once.clone()));
                let mut total = 0;
                for result in futures::future::join_all(calls).await {
                    total += result?;
                }
                Ok(total)
            }
        })
        .build()
        .unwrap();
    let old = Registry::builder()
        .activity(FAILING, |_: ActivityContext, ()| async move { Ok(()) })
        .build()
        .unwrap();
    let new = Registry::builder()
        .activity(SHINY, |_: ActivityContext, i: u32| async move { Ok(i) })
        .build()
        .unwrap();

    let mut running = Running::new();
    run_engine(&store, engine, engine_options(), &mut running);
    let old_worker = run_worker(&store, old, worker_options(), &mut running);
    let handle = client.start(ROLLOUT, "rollout-1", &20).await.unwrap();
    let scheduled = async || {
        client
            .describe("rollout-1")
            .await
            .unwrap()
            .pending_activities
            .len()
            == 20
    };
    tokio::time::timeout(Duration::from_secs(20), running.until(scheduled))
        .await
        .unwrap();
    // The old worker, asked to claim, takes nothing; the tasks wait with attempts untouched.
    assert_eq!(old_worker.poll_once().await.unwrap(), 0);
    let pending = client
        .describe("rollout-1")
        .await
        .unwrap()
        .pending_activities;
    assert!(
        pending.iter().all(|a| a.attempt == 0 && !a.running),
        "{pending:?}"
    );

    run_worker(&store, new, worker_options(), &mut running);
    let total = tokio::time::timeout(Duration::from_secs(20), handle.result())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(total, (0..20).sum::<u32>());
    let history = client.export(handle.run_id()).await.unwrap();
    let attempts: Vec<u32> = history
        .events()
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ActivityCompleted(c) => Some(c.attempt),
            _ => None,
        })
        .collect();
    assert_eq!(attempts, vec![1; 20]);
    drop(running);
    db.drop_database().await;
}

/// A blocking (thread-pool) activity checkpoints synchronously: its attempt fails right after
/// a heartbeat, and the next attempt reads that heartbeat's details and resumes from them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_blocking_activity_resumes_from_the_checkpoint_its_failed_attempt_left() {
    const ITEMS: ActivityDef<u32, Vec<u32>> = ActivityDef::new("blocking-items");
    const BATCH: WorkflowDef<u32, Vec<u32>> = WorkflowDef::new("blocking-batch");
    let registry = || {
        Registry::builder()
            .workflow(BATCH, |ctx: WorkflowContext, n: u32| async move {
                let options = ActivityOptions {
                    retry: RetryPolicy {
                        initial_backoff: Duration::from_millis(10),
                        ..RetryPolicy::default()
                    },
                    ..ActivityOptions::default()
                };
                Ok(ctx.activity(ITEMS, &n).options(options).await?)
            })
            .blocking_activity(ITEMS, |ctx: ActivityContext, n: u32| {
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
            })
            .build()
            .unwrap()
    };
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let running = Running::both(&store, registry);
    let client = Client::new(store.clone());
    let handle = client.start(BATCH, "blocking-batch", &7).await.unwrap();
    assert_eq!(
        within(handle.result()).await.unwrap(),
        [4, 5, 6],
        "items 0 to 3 were skipped"
    );
    running.stop().await;
    db.drop_database().await;
}

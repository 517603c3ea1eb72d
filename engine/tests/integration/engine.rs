//! Workflows end to end on a real PostgreSQL: engine, workers and client in this process.

use std::sync::Arc;
use std::time::Duration;

use reprise_engine::{Client, Engine, EngineOptions, StartOptions, Store, Worker, WorkerOptions};
use reprise_history::{
    ActivityOptions, EventKind, Limits, RecordedHistory, RetryPolicy, TaskQueue,
};
use reprise_sdk::{
    ActivityDef, ActivityError, Execution, Registry, RegistryBuilder, SignalDef, WorkflowContext,
    WorkflowDef, WorkflowError,
};
use tokio::sync::Notify;

use crate::hosts::{Running, engine_options, run_engine, run_worker, worker_options};
use crate::support::TestDb;

pub(crate) const GREET: ActivityDef<String, String> = ActivityDef::new("greet");
pub(crate) const HELLO: WorkflowDef<String, String> = WorkflowDef::new("hello");
/// Fails its first two attempts; with `true`, fails every attempt.
const FLAKY: ActivityDef<bool, u32> = ActivityDef::new("flaky");
/// Runs FLAKY (always failing or not) with a number of attempts.
const RETRYING: WorkflowDef<(bool, u32), String> = WorkflowDef::new("retrying");
const NAP: WorkflowDef<u64, String> = WorkflowDef::new("nap");
const APPROVE: SignalDef<String> = SignalDef::new("approve");
const AWAIT_APPROVAL: WorkflowDef<(), String> = WorkflowDef::new("await-approval");

async fn hello(ctx: WorkflowContext, name: String) -> Result<String, WorkflowError> {
    Ok(ctx.activity(GREET, &name).await?)
}

async fn greet(_: reprise_sdk::ActivityContext, name: String) -> Result<String, ActivityError> {
    Ok(format!("hello, {name}"))
}

fn fast_retry(max_attempts: u32) -> ActivityOptions {
    ActivityOptions {
        retry: RetryPolicy {
            max_attempts: Some(max_attempts),
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
            ..RetryPolicy::default()
        },
        ..ActivityOptions::default()
    }
}

async fn retrying(
    ctx: WorkflowContext,
    (always_fail, max_attempts): (bool, u32),
) -> Result<String, WorkflowError> {
    match ctx
        .activity(FLAKY, &always_fail)
        .options(fast_retry(max_attempts))
        .await
    {
        Ok(v) => Ok(format!("ok {v}")),
        Err(e) => Ok(format!(
            "gave up after {} attempts: {}",
            e.attempts, e.failure.message
        )),
    }
}

async fn nap(ctx: WorkflowContext, secs: u64) -> Result<String, WorkflowError> {
    let before = ctx.now();
    ctx.sleep(Duration::from_secs(secs)).await?;
    Ok(format!(
        "slept {}s",
        (ctx.now().as_unix_micros() - before.as_unix_micros()) / 1_000_000
    ))
}

async fn await_approval(ctx: WorkflowContext, (): ()) -> Result<String, WorkflowError> {
    Ok(format!("approved by {}", ctx.signal(APPROVE).await?))
}

/// Everything the tests register, plus the flaky activity that fails until attempt `n`.
pub(crate) fn registry() -> RegistryBuilder {
    Registry::builder()
        .workflow(HELLO, hello)
        .workflow(RETRYING, retrying)
        .workflow(NAP, nap)
        .workflow(AWAIT_APPROVAL, await_approval)
        .activity(GREET, greet)
        .activity(
            FLAKY,
            |ctx: reprise_sdk::ActivityContext, always_fail: bool| async move {
                if always_fail {
                    return Err(ActivityError::retryable("Flaky", "always fails"));
                }
                if ctx.attempt() < 3 {
                    return Err(ActivityError::retryable(
                        "Flaky",
                        format!("attempt {} failed", ctx.attempt()),
                    ));
                }
                Ok(ctx.attempt())
            },
        )
}

fn both(store: &Store) -> Running {
    let mut running = Running::new();
    run_engine(
        store,
        registry().build().unwrap(),
        engine_options(),
        &mut running,
    );
    run_worker(
        store,
        registry().build().unwrap(),
        worker_options(),
        &mut running,
    );
    running
}

/// Awaits a future, failing the test after a generous bound instead of hanging CI.
pub(crate) async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("finished within 20 s")
}

/// Why a workflow's latest run is parked, once an engine of the test has parked it.
pub(crate) async fn parked_reason(running: &Running, client: &Client, workflow_id: &str) -> String {
    let parked = async || {
        client
            .describe(workflow_id)
            .await
            .unwrap()
            .parked_reason
            .is_some()
    };
    running.until(parked).await;
    let described = client.describe(workflow_id).await.unwrap();
    described.parked_reason.unwrap_or_default()
}

/// Waits until a process of the test has taken back a parked run (`result()` on a parked run
/// says it is parked instead of waiting).
pub(crate) async fn resumed(running: &Running, client: &Client, workflow_id: &str) {
    let resumed = async || {
        client
            .describe(workflow_id)
            .await
            .unwrap()
            .parked_reason
            .is_none()
    };
    running.until(resumed).await;
}

/// A completed hello run's history, exported (so verified), with the events it must have.
async fn hello_history(client: &Client, run_id: reprise_history::RunId) -> RecordedHistory {
    let history = client.export(run_id).await.unwrap();
    let kinds: Vec<_> = history.events().iter().map(|e| e.kind.name()).collect();
    assert_eq!(
        kinds,
        [
            "WorkflowStarted",
            "ActivityScheduled",
            "ActivityCompleted",
            "WorkflowCompleted"
        ]
    );
    history
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_workflow_calls_an_activity_end_to_end() {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let _running = both(&store);
    let client = Client::new(store.clone());
    let handle = client
        .start(HELLO, "hello-1", &"Ada".to_string())
        .await
        .unwrap();
    assert_eq!(within(handle.result()).await.unwrap(), "hello, Ada");

    let history = hello_history(&client, handle.run_id()).await;
    // The exported file reads back, chain and all, and replays against the code.
    let back = RecordedHistory::from_bytes(&history.to_bytes().unwrap(), &Limits::DEFAULT).unwrap();
    let replayed = Execution::replay(&registry().build().unwrap(), back.events()).unwrap();
    assert!(matches!(
        replayed.status(),
        reprise_sdk::RunStatus::Completed(_)
    ));
    db.drop_database().await;
}

/// A start and an activity's outcome each come with a notification that names the run (and
/// the outcome's inbox row); an idle engine reads what it names and steps the run in one
/// statement, and the history is the same as the batch path writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lone_starts_and_outcomes_are_stepped_directly_with_the_same_history() {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let mut running = Running::new();
    let engine = run_engine(
        &store,
        registry().build().unwrap(),
        engine_options(),
        &mut running,
    );
    run_worker(
        &store,
        registry().build().unwrap(),
        worker_options(),
        &mut running,
    );
    let client = Client::new(store.clone());
    // A run has one outcome to step, so more direct steps than runs means a start was stepped
    // directly too. Whether a given step goes direct is a race with the batch loop's poll (a
    // busy machine loses some), so runs go on until a start has been, 40 at most.
    let mut progress = engine.progress();
    let mut runs = 0;
    let mut stats = engine.stats();
    while runs < 40 && stats.direct_steps <= runs {
        let name = format!("Ada {runs}");
        let handle = client
            .start(HELLO, &format!("direct-{runs}"), &name)
            .await
            .unwrap();
        assert_eq!(
            within(handle.result()).await.unwrap(),
            format!("hello, {name}")
        );
        let history = hello_history(&client, handle.run_id()).await;
        let replayed = Execution::replay(&registry().build().unwrap(), history.events()).unwrap();
        assert!(matches!(
            replayed.status(),
            reprise_sdk::RunStatus::Completed(_)
        ));
        runs += 1;
        // Two steps a run; the engine counts the last one just after the client hears of it.
        let steps = 2 * runs;
        stats = *within(progress.wait_for(|s| s.direct_steps + s.batched_steps >= steps))
            .await
            .unwrap();
    }
    assert!(stats.direct_steps > runs, "after {runs} runs: {stats:?}");
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM reprise.ready_runs")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(queued, 0, "closed runs leave the ready queue");
    drop(running);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_starts_share_statements_and_one_id_opens_one_run() {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let client = Client::new(store.clone());
    let distinct = (0..100).map(|i| {
        let client = client.clone();
        async move {
            client
                .start(HELLO, &format!("many-{i}"), &format!("n{i}"))
                .await
        }
    });
    let same = (0..20).map(|i| {
        let client = client.clone();
        async move { client.start(HELLO, "one-id", &format!("s{i}")).await }
    });
    let (distinct, same) = futures::future::join(
        futures::future::join_all(distinct),
        futures::future::join_all(same),
    )
    .await;
    let distinct: Vec<_> = distinct.into_iter().map(Result::unwrap).collect();
    let same: Vec<_> = same.into_iter().map(Result::unwrap).collect();
    let runs: std::collections::HashSet<_> = distinct.iter().map(|h| h.run_id()).collect();
    assert_eq!(runs.len(), 100);
    assert!(same.iter().all(|h| h.run_id() == same[0].run_id()));
    let (open, statements): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT created_at) FILTER (WHERE workflow_id LIKE 'many-%')
           FROM reprise.runs WHERE status = 'running'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(open, 101, "one run per workflow id");
    // Runs written by one statement share its time.
    assert!(statements <= 10, "100 starts took {statements} statements");
    let _running = both(&store);
    let result = within(distinct[42].result()).await.unwrap();
    assert_eq!(result, "hello, n42");
    let one = within(same[7].result()).await.unwrap();
    assert!(one.starts_with("hello, s"), "{one}");
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_result_whose_closing_event_was_altered_is_refused() {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let _running = both(&store);
    let client = Client::new(store.clone());
    let handle = client
        .start(HELLO, "hello-altered", &"Ada".to_string())
        .await
        .unwrap();
    assert_eq!(within(handle.result()).await.unwrap(), "hello, Ada");
    // Past the append-only trigger, as only someone with the server's keys could.
    let mut conn = db.pool.acquire().await.unwrap();
    sqlx::raw_sql("SET session_replication_role = replica")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE reprise.history SET event = event || '\\x00'::bytea
          WHERE run_id = $1 AND seq = (SELECT head_seq FROM reprise.runs WHERE run_id = $1)",
    )
    .bind(handle.run_id().as_uuid())
    .execute(&mut *conn)
    .await
    .unwrap();
    sqlx::raw_sql("RESET session_replication_role")
        .execute(&mut *conn)
        .await
        .unwrap();
    drop(conn);
    // A handle made now reads the result (one that heard the close has the committed event).
    let reader = client.handle(HELLO, "hello-altered").await.unwrap();
    let error = within(reader.result()).await.unwrap_err();
    assert!(
        matches!(
            error,
            reprise_engine::Error::History(reprise_engine::history::Error::ChainMismatch { seq })
                if seq.get() == 4
        ),
        "not the chain's mismatch at the closing event: {error}"
    );
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_exported_history_replays_in_the_testkit() {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let _running = both(&store);
    let client = Client::new(store.clone());
    let handle = client.start(NAP, "nap-export", &1u64).await.unwrap();
    store.clock().advance(Duration::from_secs(1));
    within(handle.result()).await.unwrap();
    let history = client.export(handle.run_id()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("nap.rhist"), history.to_bytes().unwrap()).unwrap();
    std::fs::write(dir.path().join("nap.json"), history.to_json().unwrap()).unwrap();
    let report = reprise_testkit::Replayer::new(registry().build().unwrap())
        .replay_dir(dir.path())
        .unwrap();
    assert_eq!(report.replayed.len(), 2);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn starting_a_running_workflow_id_returns_the_existing_run() {
    let db = TestDb::migrated().await;
    let client = Client::new(Store::new(db.pool.clone()));
    let first = client.start(AWAIT_APPROVAL, "once", &()).await.unwrap();
    let second = client.start(AWAIT_APPROVAL, "once", &()).await.unwrap();
    assert_eq!(first.run_id(), second.run_id());
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_activity_is_retried_with_backoff_until_it_succeeds() {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let _running = both(&store);
    let client = Client::new(store.clone());
    let handle = client
        .start(RETRYING, "retry-1", &(false, 5))
        .await
        .unwrap();
    assert_eq!(within(handle.result()).await.unwrap(), "ok 3");
    let history = client.export(handle.run_id()).await.unwrap();
    let completed = history.events().iter().find_map(|e| match &e.kind {
        EventKind::ActivityCompleted(c) => Some(c.attempt),
        _ => None,
    });
    assert_eq!(
        completed,
        Some(3),
        "history records the attempt that succeeded"
    );
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_activity_out_of_attempts_fails_into_the_workflow() {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let _running = both(&store);
    let client = Client::new(store.clone());
    let handle = client.start(RETRYING, "retry-2", &(true, 4)).await.unwrap();
    assert_eq!(
        within(handle.result()).await.unwrap(),
        "gave up after 4 attempts: always fails"
    );
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_durable_timer_fires_by_database_time() {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let running = both(&store);
    let client = Client::new(store.clone());
    let handle = client.start(NAP, "nap-1", &3_600u64).await.unwrap();
    // Wait until the timer is set, then move database time an hour on: no real sleeping.
    let timer_set = async || client.describe("nap-1").await.unwrap().head_seq.get() >= 2;
    within(running.until(timer_set)).await;
    store.clock().advance(Duration::from_secs(3_600));
    assert_eq!(within(handle.result()).await.unwrap(), "slept 3600s");
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn signals_reach_an_open_run_and_other_targets_are_typed_errors() {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let _running = both(&store);
    let client = Client::new(store.clone());
    let handle = client
        .start(AWAIT_APPROVAL, "approval-1", &())
        .await
        .unwrap();
    client
        .signal("approval-1", APPROVE, &"grace".to_string())
        .await
        .unwrap();
    assert_eq!(within(handle.result()).await.unwrap(), "approved by grace");

    let err = client
        .signal("approval-1", APPROVE, &"late".to_string())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "workflow \"approval-1\" is closed (completed); it takes no more signals or updates"
    );
    let err = client
        .signal("nobody", APPROVE, &"x".to_string())
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "no workflow with id \"nobody\" exists");
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_of_an_unknown_type_waits_unparked_until_a_process_that_knows_it_runs() {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let client = Client::new(store.clone());
    const LATER: WorkflowDef<(), String> = WorkflowDef::new("later");
    let handle = client.start(LATER, "later-1", &()).await.unwrap();

    // An engine that does not know the type does not claim the run: it stays queued, open,
    // not parked.
    let unaware = Engine::new(store.clone(), registry().build().unwrap(), engine_options());
    assert_eq!(unaware.run_once().await.unwrap(), 0);
    let described = client.describe("later-1").await.unwrap();
    assert_eq!(
        (
            described.status,
            described.parked_reason,
            described.head_seq.get()
        ),
        (reprise_history::RunState::Running, None, 1)
    );

    // A process that knows it picks it up.
    let knows = registry().workflow(LATER, |_, ()| async move { Ok("finally".to_string()) });
    let mut running = Running::new();
    run_engine(
        &store,
        knows.build().unwrap(),
        engine_options(),
        &mut running,
    );
    assert_eq!(within(handle.result()).await.unwrap(), "finally");
    db.drop_database().await;
}

/// Two services on one database: each engine serves its own workflow task queue and runs
/// only the runs started on it, even for a type both know.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn engines_run_only_the_workflow_queues_they_serve() {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let client = Client::new(store.clone());
    const WHO: WorkflowDef<(), String> = WorkflowDef::new("who");
    let mut running = Running::new();
    for queue in ["billing", "shipping"] {
        let answers = registry().workflow(WHO, move |_, ()| async move { Ok(queue.to_string()) });
        let options = EngineOptions {
            queues: vec![queue.to_string()],
            ..engine_options()
        };
        run_engine(&store, answers.build().unwrap(), options, &mut running);
    }
    let on = |queue: &str| StartOptions {
        task_queue: TaskQueue::new(queue).unwrap(),
        ..StartOptions::default()
    };
    let mut handles = Vec::new();
    for i in 0..10 {
        let queue = if i % 2 == 0 { "billing" } else { "shipping" };
        let id = format!("who-{i}");
        let handle = client
            .start_with_options(WHO, &id, &(), on(queue))
            .await
            .unwrap();
        handles.push((queue, handle));
    }
    for (queue, handle) in handles {
        assert_eq!(within(handle.result()).await.unwrap(), queue);
    }
    // A run on a queue nobody serves waits, unparked.
    let nobody = client
        .start_with_options(WHO, "who-nobody", &(), on("nobody"))
        .await
        .unwrap();
    let unserved = Engine::new(
        store.clone(),
        registry()
            .workflow(WHO, |_, ()| async move { Ok(String::new()) })
            .build()
            .unwrap(),
        engine_options(),
    );
    assert_eq!(unserved.run_once().await.unwrap(), 0);
    let described = client.describe("who-nobody").await.unwrap();
    assert_eq!(
        (described.parked_reason, described.head_seq.get()),
        (None, 1)
    );
    drop((nobody, running));
    db.drop_database().await;
}

/// An attempt paused past its lease (a stale worker) finishes while the attempt that replaced
/// it still runs: the task is still there, leased under the same owner name (a process that
/// came back with its name), so only the lease token tells the two apart. The stale outcome
/// must be refused, and the run completes with the fresh attempt's result. Its worker is
/// stopped before the fresh attempt is released: a stopped worker has written every outcome
/// it had, so the stale outcome is decided before the fresh one exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stale_workers_late_result_is_refused_by_fencing() {
    const SLOW: ActivityDef<(), String> = ActivityDef::new("slow");
    const USES_SLOW: WorkflowDef<(), String> = WorkflowDef::new("uses-slow");
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let client = Client::new(store.clone());
    let started = [Arc::new(Notify::new()), Arc::new(Notify::new())];
    let release = [Arc::new(Notify::new()), Arc::new(Notify::new())];
    let slow_registry = || {
        let (started, release) = (started.clone(), release.clone());
        registry()
            .workflow(USES_SLOW, |ctx: WorkflowContext, ()| async move {
                let options = ActivityOptions {
                    start_to_close: Some(Duration::from_secs(30)),
                    ..fast_retry(5)
                };
                Ok(ctx.activity(SLOW, &()).options(options).await?)
            })
            .activity(SLOW, move |ctx: reprise_sdk::ActivityContext, ()| {
                let (started, release) = (started.clone(), release.clone());
                async move {
                    let attempt = ctx.attempt();
                    let i = usize::try_from(attempt - 1).unwrap().min(1);
                    started[i].notify_one();
                    release[i].notified().await;
                    Ok(match attempt {
                        1 => "stale result".to_string(),
                        n => format!("fresh result from attempt {n}"),
                    })
                }
            })
            .build()
            .unwrap()
    };
    let mut running = Running::new();
    run_engine(&store, slow_registry(), engine_options(), &mut running);
    let one_slot = || WorkerOptions {
        owner: "worker".to_string(),
        max_concurrent: 1,
        ..worker_options()
    };
    let stale = Worker::new(store.clone(), slow_registry(), one_slot());
    let (stop_stale, stale_stopped) = tokio::sync::oneshot::channel::<()>();
    let stale_worker =
        tokio::spawn(async move { stale.run(async { stale_stopped.await.unwrap_or(()) }).await });
    let handle = client.start(USES_SLOW, "slow-1", &()).await.unwrap();
    within(started[0].notified()).await;

    // The first attempt's 30 s lease runs out (database time moves); its worker's one slot is
    // taken, so another worker under the same name runs the second attempt.
    store.clock().advance(Duration::from_secs(31));
    run_worker(&store, slow_registry(), one_slot(), &mut running);
    within(started[1].notified()).await;

    // The stale attempt finishes, and its worker stops after writing what it had.
    stop_stale.send(()).unwrap();
    release[0].notify_one();
    within(stale_worker).await.unwrap().unwrap();

    release[1].notify_one();
    assert_eq!(
        within(handle.result()).await.unwrap(),
        "fresh result from attempt 2"
    );
    let history = client.export(handle.run_id()).await.unwrap();
    let outcomes: Vec<(String, u32)> = history
        .events()
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ActivityCompleted(c) => {
                Some((c.result.decode::<String>().unwrap(), c.attempt))
            }
            _ => None,
        })
        .collect();
    assert_eq!(outcomes, [("fresh result from attempt 2".to_string(), 2)]);
    db.drop_database().await;
}

/// Starts `good` hello runs and one `bad` one, spoils the bad one with `spoil` before any
/// engine runs (so that all of them are due in the same batch), then runs engine and worker:
/// the good runs complete and the bad one is parked with a reason, which comes back.
async fn one_bad_run_in_a_batch(spoil: &'static str, good: usize) -> String {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let client = Client::new(store.clone());
    let bad = client
        .start(HELLO, "bad", &"Bad".to_string())
        .await
        .unwrap();
    let mut handles = Vec::new();
    for i in 0..good {
        let name = format!("good-{i}");
        handles.push(client.start(HELLO, &name, &name).await.unwrap());
    }
    sqlx::query(spoil)
        .bind(bad.run_id().as_uuid())
        .execute(&db.pool)
        .await
        .unwrap();
    let running = both(&store);
    for (i, handle) in handles.iter().enumerate() {
        assert_eq!(
            within(handle.result()).await.unwrap(),
            format!("hello, good-{i}")
        );
    }
    let reason = within(parked_reason(&running, &client, "bad")).await;
    db.drop_database().await;
    reason
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_whose_input_does_not_decode_is_parked_and_its_batch_goes_on() {
    let reason = one_bad_run_in_a_batch(
        "INSERT INTO reprise.inbox (run_id, kind, event) VALUES ($1, 'SignalReceived', '\\x01ff')",
        5,
    )
    .await;
    assert!(reason.contains("does not decode"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_whose_step_cannot_be_written_is_parked_and_its_batch_goes_on() {
    // A task row already where the run's first step schedules its activity: writing the step
    // fails (unique violation), which fails the whole batch; its runs are then stepped one by
    // one, and only the bad one is parked.
    let reason = one_bad_run_in_a_batch(
        "INSERT INTO reprise.activity_tasks (run_id, scheduled_seq, task_queue, activity_type, input, options)
         VALUES ($1, 2, 'nowhere', 'greet', '\\x01', '\\x01')",
        5,
    )
    .await;
    assert!(reason.contains("activity_tasks_pkey"), "{reason}");
}

/// Work a step leaves due wakes an engine at once, with no poll: a step takes at most 1,000
/// inputs, and this engine's idle poll is an hour.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn inputs_a_step_leaves_due_wake_an_engine_without_polling() {
    const TICK: SignalDef<u32> = SignalDef::new("tick");
    const COUNT: WorkflowDef<u32, u32> = WorkflowDef::new("count-ticks");
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let client = Client::new(store.clone());
    let handle = client.start(COUNT, "ticks-1", &1_001).await.unwrap();
    for i in 0..1_001u32 {
        client.signal("ticks-1", TICK, &i).await.unwrap();
    }
    let counting = registry().workflow(COUNT, |ctx: WorkflowContext, n: u32| async move {
        let mut sum = 0;
        for _ in 0..n {
            sum += ctx.signal(TICK).await?;
        }
        Ok(sum)
    });
    let mut running = Running::new();
    let options = EngineOptions {
        idle_poll: Duration::from_secs(3_600),
        ..engine_options()
    };
    run_engine(&store, counting.build().unwrap(), options, &mut running);
    assert_eq!(within(handle.result()).await.unwrap(), 500_500);
    let history = client.export(handle.run_id()).await.unwrap();
    // Two steps (each records its inputs at its own transaction's time): the first took
    // 1,000 signals, the second the last one.
    let first_step = history.events()[1].recorded_at;
    let applied_first = history.events()[1..]
        .iter()
        .take_while(|e| e.recorded_at == first_step)
        .count();
    assert_eq!(applied_first, 1_000);
    db.drop_database().await;
}

/// Applications spawn client calls and await them in `Send` handlers; this only has to
/// compile.
#[allow(dead_code)]
fn client_futures_are_send(client: Client) {
    fn send<T: Send>(_: T) {}
    let c = client.clone();
    send(async move { c.start(HELLO, "x", &"y".to_string()).await?.result().await });
    let c = client.clone();
    send(async move { c.signal("x", APPROVE, &"y".to_string()).await });
    let c = client.clone();
    send(async move { c.describe("x").await });
    send(async move { client.cancel("x", "why").await });
}

/// Called outside a Tokio runtime (here under `futures`' executor), starting a workflow and
/// awaiting a result are typed errors, not panics: the client spawns its listener and its
/// shared starts on the runtime it is called from.
#[test]
fn the_client_outside_a_tokio_runtime_says_so() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let db = runtime.block_on(TestDb::migrated());
    let client = Client::new(Store::new(db.pool.clone()));
    let handle = runtime
        .block_on(client.start(HELLO, "inside", &"Ada".to_string()))
        .unwrap();
    let started = futures::executor::block_on(client.start(HELLO, "outside", &"Lin".to_string()));
    assert!(
        matches!(started, Err(reprise_engine::Error::NoRuntime)),
        "{:?}",
        started.err()
    );
    let result = futures::executor::block_on(handle.result());
    assert!(
        matches!(result, Err(reprise_engine::Error::NoRuntime)),
        "{result:?}"
    );
    runtime.block_on(db.drop_database());
}

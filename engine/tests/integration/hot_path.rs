//! The rules of the step path that the code keeps by construction, checked: locks are taken
//! in one order (no deadlock between outcomes, steps and terminations on the same runs), a
//! step's update of an open run is heap-only, and the direct path writes the same histories as
//! the batch path.

use std::time::Duration;

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use reprise_engine::hot_path::bound_statements;
use reprise_engine::{Client, EngineOptions, Error, Store};
use reprise_history::{EventKind, RecordedHistory};
use reprise_sdk::{
    ActivityContext, ActivityDef, ActivityError, Registry, WorkflowContext, WorkflowDef,
    WorkflowError,
};
use sqlx::Row;

use crate::hosts::{Running, engine_options, run_engine, run_worker, worker_options};
use crate::support::TestDb;

const STEP: ActivityDef<u32, u32> = ActivityDef::new("step");
const PROGRAM: WorkflowDef<Vec<u8>, String> = WorkflowDef::new("program");

async fn step(_: ActivityContext, n: u32) -> Result<u32, ActivityError> {
    Ok(n + 1)
}

/// Runs a program of operations: 0 an activity, 1 a side effect, 2 a one-millisecond timer,
/// anything else a patch check. One input at a time, so that no history depends on which of
/// two inputs arrives first.
async fn program(ctx: WorkflowContext, ops: Vec<u8>) -> Result<String, WorkflowError> {
    let mut out = Vec::new();
    for (i, op) in ops.into_iter().enumerate() {
        let n = u32::try_from(i).unwrap_or(u32::MAX);
        let value = match op {
            0 => ctx.activity(STEP, &n).await?,
            1 => ctx.side_effect(|| n * 3)?,
            2 => {
                ctx.sleep(Duration::from_millis(1)).await?;
                n
            }
            _ => u32::from(ctx.patched("hot-path-v2")),
        };
        out.push(value.to_string());
    }
    Ok(out.join(","))
}

fn registry() -> Registry {
    Registry::builder()
        .workflow(PROGRAM, program)
        .activity(STEP, step)
        .build()
        .unwrap()
}

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("timed out")
}

/// A history's events without their times and run ids.
fn events(history: &RecordedHistory) -> Vec<String> {
    history
        .events()
        .iter()
        .map(|e| match &e.kind {
            EventKind::WorkflowStarted(s) => format!("WorkflowStarted({:?})", s.input),
            kind => format!("{kind:?}"),
        })
        .collect()
}

/// Random programs run twice on PostgreSQL, by an engine that steps lone notifications
/// directly and by one that only steps in batches: the histories must be the same. The
/// generator's seed is fixed, and a failure prints the program.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_direct_path_and_the_batch_path_write_the_same_histories() {
    let db = TestDb::migrated().await;
    let rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
    let mut runner = TestRunner::new_with_rng(Config::with_cases(6), rng);
    let programs = proptest::collection::vec(0u8..4, 1..8);
    let mut direct_steps = 0;
    for case in 0..6 {
        // Each program starts with an activity, so that an outcome's notification can be
        // stepped directly by the one engine loop.
        let mut ops = vec![0u8];
        ops.extend(programs.new_tree(&mut runner).unwrap().current());
        let mut histories = Vec::new();
        for direct in [true, false] {
            // A pool of its own for each engine and worker: their listeners hold a pooled
            // connection until the pool closes.
            let pool = db.second_pool().await;
            let store = Store::new(pool.clone());
            let client = Client::new(store.clone());
            let mut running = Running::new();
            let options = EngineOptions {
                direct_steps: direct,
                concurrent_batches: 1,
                ..engine_options()
            };
            let engine = run_engine(&store, registry(), options, &mut running);
            run_worker(&store, registry(), worker_options(), &mut running);
            let id = format!("case-{case}-{direct}");
            let handle = client.start(PROGRAM, &id, &ops).await.unwrap();
            within(handle.result()).await.unwrap();
            let stats = engine.stats();
            if direct {
                direct_steps += stats.direct_steps;
            } else {
                assert_eq!(stats.direct_steps, 0, "{stats:?}");
            }
            histories.push(events(&client.export(handle.run_id()).await.unwrap()));
            drop(running);
            pool.close().await;
        }
        assert_eq!(histories[0], histories[1], "program {ops:?}");
    }
    assert!(direct_steps > 0, "the direct path was never taken");
    db.drop_database().await;
}

/// Outcomes recorded by a worker, steps by an engine and terminations by a client, all at
/// once on the same runs: none of them may fail with a deadlock (or any database error).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outcomes_steps_and_terminations_on_the_same_runs_never_deadlock() {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let client = Client::new(store.clone());
    let mut running = Running::new();
    let engine = run_engine(&store, registry(), engine_options(), &mut running);
    let worker = run_worker(&store, registry(), worker_options(), &mut running);
    let program = vec![0u8; 6];
    let mut handles = Vec::new();
    for i in 0..40 {
        let id = format!("contended-{i}");
        handles.push(client.start(PROGRAM, &id, &program).await.unwrap());
    }
    // Terminate every other run while its activities and steps are in flight.
    let terminations = (0..40).step_by(2).map(|i| {
        let client = client.clone();
        async move {
            client
                .terminate(&format!("contended-{i}"), "contention")
                .await
        }
    });
    for outcome in futures::future::join_all(terminations).await {
        match outcome {
            Ok(()) | Err(Error::WorkflowClosed { .. }) => {}
            Err(e) => panic!("a termination failed: {e}"),
        }
    }
    for handle in handles {
        let _ = within(handle.result()).await;
    }
    let engine_stats = engine.stats();
    let worker_stats = worker.stats();
    drop(running);
    db.drop_database().await;
    assert_eq!(engine_stats.failed_batches, 0, "{engine_stats:?}");
    assert_eq!(worker_stats.failed_writes, 0, "{worker_stats:?}");
}

/// The statements that release a run which stays open change no indexed column, so
/// PostgreSQL keeps the update heap-only (HOT): checked on the store's own statements, run
/// in a transaction whose counts of updates PostgreSQL reports.
#[tokio::test]
async fn a_step_that_leaves_its_run_open_updates_it_heap_only() {
    let db = TestDb::migrated().await;
    let client = Client::new(Store::new(db.pool.clone()));
    let handle = client.start(PROGRAM, "hot-1", &vec![0u8]).await.unwrap();
    let run = *handle.run_id().as_uuid();
    let statement = |name: &str| {
        bound_statements()
            .into_iter()
            .find(|s| s.name == name)
            .unwrap()
            .sql
    };
    let head: Vec<u8> = sqlx::query_scalar("SELECT head_hash FROM reprise.runs WHERE run_id = $1")
        .bind(run)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let empty_events = |q: sqlx::query::Query<'static, _, _>| {
        q.bind(Vec::<uuid::Uuid>::new())
            .bind(Vec::<i64>::new())
            .bind(Vec::<chrono::DateTime<chrono::Utc>>::new())
            .bind(Vec::<String>::new())
            .bind(Vec::<Vec<u8>>::new())
            .bind(Vec::<Vec<u8>>::new())
            .bind(Vec::<uuid::Uuid>::new())
            .bind(Vec::<i64>::new())
            .bind(Vec::<String>::new())
            .bind(Vec::<String>::new())
            .bind(Vec::<Vec<u8>>::new())
            .bind(Vec::<Vec<u8>>::new())
            .bind(Vec::<Option<i64>>::new())
            .bind(Vec::<Option<i64>>::new())
            .bind(Vec::<Option<i64>>::new())
            .bind(Vec::<Option<String>>::new())
            .bind(Vec::<Option<String>>::new())
            .bind(Vec::<i64>::new())
    };
    let mut tx = db.pool.begin().await.unwrap();
    empty_events(sqlx::query(statement("write steps and release runs")).bind(0i64))
        .bind(vec![run])
        .bind(vec![1i64])
        .bind(vec![1i64])
        .bind(vec![head.clone()])
        .bind(vec![None::<String>])
        .bind(Vec::<String>::new())
        .bind(Vec::<String>::new())
        .bind("hot_test")
        .bind(Vec::<Option<i16>>::new())
        // A step that sets a custom status: it has a table of its own, the run stays HOT.
        .bind(vec![Some(b"\x02\"busy\"".to_vec())])
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    empty_events(sqlx::query(statement("step one run directly")).bind(0i64))
        .bind(run)
        .bind(1i64)
        .bind(head.clone())
        .bind(1i64)
        .bind(head.clone())
        .bind(None::<String>)
        .bind(Vec::<String>::new())
        .bind(Vec::<String>::new())
        .bind(Vec::<Option<i16>>::new())
        .bind(Some(b"\x02\"idle\"".to_vec()))
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    let row = sqlx::query(
        "SELECT pg_stat_get_xact_tuples_updated('reprise.runs'::regclass) AS updated,
                pg_stat_get_xact_tuples_hot_updated('reprise.runs'::regclass) AS hot",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    let (updated, hot): (i64, i64) = (row.get("updated"), row.get("hot"));
    tx.rollback().await.unwrap();
    db.drop_database().await;
    assert_eq!(updated, 2, "each statement updates the run once");
    assert_eq!(hot, updated, "every update of an open run is heap-only");
}

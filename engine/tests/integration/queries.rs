//! Queries and custom status on PostgreSQL: a query answered from a cached run, from an
//! evicted run (replayed), from a closed run; refused queries are typed errors that leave the
//! run alone; a type no engine runs times out; the custom status is stored by batched and
//! direct steps alike and shown by `describe`.

use std::time::Duration;

use reprise_engine::{Client, EngineOptions, Error, QueryRefusal, Store};
use reprise_sdk::{
    ActivityContext, ActivityDef, ActivityError, QueryDef, QueryError, Registry, SignalDef,
    WorkflowContext, WorkflowDef, WorkflowError, WorkflowState,
};
use serde::{Deserialize, Serialize};

use crate::engine::within;
use crate::hosts::{Running, engine_options, run_engine, run_worker, worker_options};
use crate::support::TestDb;

const TICK: SignalDef<u32> = SignalDef::new("tick");
const TOTAL: QueryDef<(), u32> = QueryDef::new("total");
const PLUS: QueryDef<u32, u32> = QueryDef::new("plus");
const BOOM: QueryDef<(), u32> = QueryDef::new("boom");
const UNKNOWN: QueryDef<(), u32> = QueryDef::new("unknown");
const STEP: ActivityDef<u32, u32> = ActivityDef::new("step");

/// Adds up `n` ticks; answers `total` and `plus` all along, and publishes its progress.
const TICKS: WorkflowDef<u32, u32> = WorkflowDef::new("ticks");
/// Runs `n` activities, publishing its progress after each.
const STEPS: WorkflowDef<u32, u32> = WorkflowDef::new("steps");

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Progress {
    done: u32,
    of: u32,
}

async fn ticks(ctx: WorkflowContext, n: u32) -> Result<u32, WorkflowError> {
    let total = WorkflowState::new(0u32);
    ctx.on_query(TOTAL, &total, |total, ()| *total);
    ctx.on_query(PLUS, &total, |total, more| *total + more);
    ctx.on_query(BOOM, &total, |_, ()| panic!("this query always panics"));
    for i in 0..n {
        let tick = ctx.signal(TICK).await?;
        total.update(|t| *t += tick);
        publish(&ctx, i + 1, n)?;
    }
    Ok(total.get())
}

async fn steps(ctx: WorkflowContext, n: u32) -> Result<u32, WorkflowError> {
    for i in 0..n {
        ctx.activity(STEP, &i).await?;
        publish(&ctx, i + 1, n)?;
    }
    Ok(n)
}

fn publish(ctx: &WorkflowContext, done: u32, of: u32) -> Result<(), WorkflowError> {
    ctx.set_status(&Progress { done, of })
        .map_err(|e| WorkflowError::failed("Status", e.to_string()))
}

fn registry() -> Registry {
    Registry::builder()
        .workflow(TICKS, ticks)
        .workflow(STEPS, steps)
        .activity(STEP, |_: ActivityContext, i: u32| async move {
            Ok::<_, ActivityError>(i)
        })
        .build()
        .unwrap()
}

/// The value of a counter of the process's metrics (`name{labels}`), 0 before it counts.
fn counter(store: &Store, series: &str) -> u64 {
    let prefix = format!("{series} ");
    store
        .metrics()
        .render()
        .lines()
        .find_map(|line| line.strip_prefix(&prefix)?.parse().ok())
        .unwrap_or(0)
}

/// How many queries the process answered from `source` (cache or replay).
fn answered(store: &Store, source: &str) -> u64 {
    counter(
        store,
        &format!("reprise_queries_answered_total{{source=\"{source}\"}}"),
    )
}

/// Waits until the workflow's latest run has taken `n` ticks.
async fn ticked(running: &Running, client: &Client, workflow_id: &str, n: u32) {
    let progressed = async || {
        let d = client.describe(workflow_id).await.unwrap();
        d.custom_status.is_some_and(|(status, _)| {
            client
                .converter()
                .from_payload::<Progress>(&status)
                .unwrap()
                .done
                == n
        })
    };
    within(running.until(progressed)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_query_is_answered_from_the_cache_from_a_replay_and_from_a_closed_run() {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let mut running = Running::new();
    // Room for one orchestrator: starting a second run evicts the first.
    let options = EngineOptions {
        cache_capacity: 1,
        ..engine_options()
    };
    run_engine(&store, registry(), options, &mut running);
    let client = Client::new(store.clone());
    let first = client.start(TICKS, "first", &3).await.unwrap();
    client.signal("first", TICK, &10).await.unwrap();
    client.signal("first", TICK, &20).await.unwrap();
    ticked(&running, &client, "first", 2).await;

    // Cached: the run is at its head in the engine's cache.
    assert_eq!(client.query("first", TOTAL, &()).await.unwrap(), 30);
    assert_eq!(client.query("first", PLUS, &12).await.unwrap(), 42);
    assert_eq!(
        (answered(&store, "cache"), answered(&store, "replay")),
        (2, 0)
    );

    // Evicted: another run takes the only place in the cache; the answer comes from history.
    client.start(TICKS, "second", &2).await.unwrap();
    client.signal("second", TICK, &1).await.unwrap();
    ticked(&running, &client, "second", 1).await;
    // The step is visible once committed; the orchestrator goes back to the cache after.
    let evicted = async || counter(&store, "reprise_cache_evictions_total") >= 1;
    within(running.until(evicted)).await;
    let head = client.describe("first").await.unwrap().head_seq;
    assert_eq!(client.query("first", TOTAL, &()).await.unwrap(), 30);
    assert_eq!(
        (answered(&store, "cache"), answered(&store, "replay")),
        (2, 1)
    );
    assert_eq!(
        client.describe("first").await.unwrap().head_seq,
        head,
        "a query records nothing"
    );

    // Closed: answered from its whole history.
    client.signal("first", TICK, &3).await.unwrap();
    assert_eq!(within(first.result()).await.unwrap(), 33);
    assert_eq!(client.query("first", TOTAL, &()).await.unwrap(), 33);
    assert_eq!(answered(&store, "replay"), 2);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM reprise.queries")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(rows, 0, "an asker deletes its query once answered");
    running.stop().await;
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refused_queries_are_typed_errors_and_the_run_goes_on() {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let mut running = Running::new();
    let engine = run_engine(&store, registry(), engine_options(), &mut running);
    let client = Client::new(store.clone());
    let handle = client.start(TICKS, "refusals", &1).await.unwrap();
    // Its first step registers the handlers.
    let stepped = async || {
        let stats = engine.stats();
        stats.batched_steps + stats.direct_steps >= 1
    };
    within(running.until(stepped)).await;

    match client.query("refusals", UNKNOWN, &()).await {
        Err(Error::QueryFailed {
            reason: QueryRefusal::Workflow(QueryError::UnknownQuery { name, registered }),
            ..
        }) => {
            assert_eq!(name, "unknown");
            assert_eq!(registered, ["boom", "plus", "total"]);
        }
        other => panic!("{other:?}"),
    }
    match client.query("refusals", BOOM, &()).await {
        Err(Error::QueryFailed {
            reason: QueryRefusal::Workflow(QueryError::Panicked { message, .. }),
            ..
        }) => assert!(message.contains("always panics"), "{message}"),
        other => panic!("{other:?}"),
    }
    // Input of the wrong shape: refused by the handler's decoder, typed.
    const PLUS_TEXT: QueryDef<&str, u32> = QueryDef::new("plus");
    assert!(matches!(
        client.query("refusals", PLUS_TEXT, &"three").await,
        Err(Error::QueryFailed {
            reason: QueryRefusal::Workflow(QueryError::UndecodableInput { .. }),
            ..
        })
    ));
    // None of it disturbed the run.
    client.signal("refusals", TICK, &5).await.unwrap();
    assert_eq!(within(handle.result()).await.unwrap(), 5);
    running.stop().await;
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_query_no_engine_can_answer_times_out_and_leaves_nothing() {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let client = Client::new(store.clone());
    // No engine runs this type: the run waits in its queue, and nobody answers.
    const ELSEWHERE: WorkflowDef<u32, u32> = WorkflowDef::new("elsewhere");
    client.start(ELSEWHERE, "elsewhere", &1).await.unwrap();
    let deadline = Duration::from_millis(300);
    match client.query_within("elsewhere", TOTAL, &(), deadline).await {
        Err(Error::Timeout { what, after }) => {
            assert_eq!(after, deadline);
            assert!(what.contains("elsewhere"), "{what}");
        }
        other => panic!("{other:?}"),
    }
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM reprise.queries")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(rows, 0, "the asker deletes the query it gave up on");
    let status = client.describe("elsewhere").await.unwrap().custom_status;
    assert_eq!(status, None, "no status before the code sets one");
    assert!(matches!(
        client.query("nobody", TOTAL, &()).await,
        Err(Error::UnknownWorkflow { .. })
    ));
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_custom_status_is_stored_by_batched_and_direct_steps() {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let mut running = Running::new();
    let engine = run_engine(&store, registry(), engine_options(), &mut running);
    run_worker(&store, registry(), worker_options(), &mut running);
    let client = Client::new(store.clone());
    let handle = client.start(STEPS, "steps", &3).await.unwrap();
    assert_eq!(within(handle.result()).await.unwrap(), 3);
    let (status, _) = client
        .describe("steps")
        .await
        .unwrap()
        .custom_status
        .unwrap();
    let status: Progress = client.converter().from_payload(&status).unwrap();
    assert_eq!(status, Progress { done: 3, of: 3 });
    // Activity outcomes at idle are stepped directly: the direct statement wrote it.
    // (Counted just after the commit whose notification brought the result.)
    let direct = async || engine.stats().direct_steps > 0;
    within(running.until(direct)).await;
    running.stop().await;
    db.drop_database().await;
}

//! Riding through a database that goes away and comes back: outcomes, results, reads and idle
//! loops.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reprise_engine::{Client, EngineOptions, Store, WorkerOptions};
use reprise_sdk::{
    ActivityContext, ActivityDef, Registry, WorkflowContext, WorkflowDef, WorkflowError,
};
use tokio::sync::Semaphore;

use crate::hosts::{Running, run_engine, run_worker};
use crate::support::{CuttableLink, TestDb};

/// Waits for a permit the test hands out, then answers.
const GATED: ActivityDef<(), String> = ActivityDef::new("gated");
/// Runs [`GATED`] with default options: no start-to-close, so its lease is 10 minutes.
const WAITS: WorkflowDef<(), String> = WorkflowDef::new("waits");

async fn waits(ctx: WorkflowContext, (): ()) -> Result<String, WorkflowError> {
    Ok(ctx.activity(GATED, &()).await?)
}

fn registry(gate: Arc<Semaphore>) -> Registry {
    Registry::builder()
        .workflow(WAITS, waits)
        .activity(GATED, move |_: ActivityContext, ()| {
            let gate = gate.clone();
            async move {
                let permit = gate.acquire().await;
                drop(permit);
                Ok("through".to_string())
            }
        })
        .build()
        .unwrap()
}

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("within 60 s")
}

/// The last statement of each session of `store`'s database that has sat idle inside a
/// transaction for 100 ms or more: a loop's session between two statements of one
/// transaction is idle for a moment, one left in a transaction until its next use is idle
/// for a whole poll interval (a second by default).
async fn idle_in_transaction(store: &Store) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT query FROM pg_stat_activity
          WHERE datname = current_database() AND state LIKE 'idle in transaction%'
            AND state_change < clock_timestamp() - interval '100 milliseconds'",
    )
    .fetch_all(store.pool())
    .await
    .unwrap()
}

#[tokio::test]
async fn an_idle_engine_and_worker_leave_no_session_idle_in_a_transaction() {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let gate = Arc::new(Semaphore::new(100));
    // Default options: the loops poll once a second, as in production.
    let mut running = Running::new();
    run_engine(
        &store,
        registry(gate.clone()),
        EngineOptions::default(),
        &mut running,
    );
    run_worker(
        &store,
        registry(gate.clone()),
        WorkerOptions::default(),
        &mut running,
    );
    let client = Client::new(store.clone());
    let handle = client.start(WAITS, "w-idle", &()).await.unwrap();
    assert_eq!(within(handle.result()).await.unwrap(), "through");
    // Idle now: every loop polls once a second; sample its sessions for three seconds.
    let until = Instant::now() + Duration::from_secs(3);
    let mut samples = 0;
    while Instant::now() < until {
        let stuck = idle_in_transaction(&store).await;
        assert!(stuck.is_empty(), "sample {samples}: {stuck:#?}");
        samples += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    running.stop().await;
    db.drop_database().await;
}

#[tokio::test]
async fn an_outcome_and_a_result_ride_through_a_database_outage() {
    let db = TestDb::migrated().await;
    // Everything this test runs reaches the database through a link it cuts.
    let link = CuttableLink::to(&db).await;
    let pool = reprise_engine::pool_options()
        .max_connections(8)
        .connect_with(link.options.clone())
        .await
        .unwrap();
    let store = Store::new(pool);
    let gate = Arc::new(Semaphore::new(0));
    let running = Running::both(&store, || registry(gate.clone()));
    let client = Client::new(store.clone());
    let handle = client.start(WAITS, "w-outage", &()).await.unwrap();
    within(running.until(async || {
        let described = client.describe("w-outage").await.unwrap();
        described
            .pending_activities
            .first()
            .is_some_and(|a| a.running)
    }))
    .await;
    // A caller waiting for the result when the database goes away.
    let waiting = tokio::spawn(async move { handle.result().await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    link.cut();
    // The attempt finishes while the database is away: its outcome cannot be written yet.
    gate.add_permits(1);
    // A read asked meanwhile waits for the database too, instead of failing.
    let describing = {
        let client = client.clone();
        tokio::spawn(async move { client.describe("w-outage").await })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    link.mend();
    within(describing).await.unwrap().unwrap();
    // The activity has no start-to-close timeout, so its lease is 10 minutes: only an outcome
    // written again while the lease holds lands within the minute `within` allows.
    let result = within(waiting).await.unwrap();
    assert_eq!(result.unwrap(), "through");
    running.stop().await;
    db.drop_database().await;
}

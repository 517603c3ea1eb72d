//! Workflow code Reprise cannot replay is parked at once, naming what it did: a tokio timer
//! in the step that creates it (ND07), a wake from another thread as soon as it comes (ND05),
//! not when an input happens to arrive — for a run waiting on a signal, maybe never. Inputs
//! drawn from `HashMap` order are found when the run is replayed (ND08): counted by default,
//! parked when the engine is told to.

use std::collections::HashMap;
use std::time::Duration;

use futures::FutureExt;
use reprise_engine::{Client, EngineOptions, Store};
use reprise_sdk::{
    ActivityDef, InputChanges, SignalDef, WorkflowContext, WorkflowDef, WorkflowError,
};

use crate::engine::{parked_reason, registry, within};
use crate::hosts::{Running, engine_options, run_engine};
use crate::support::TestDb;

const GO: SignalDef<()> = SignalDef::new("go");
const IMPATIENT: WorkflowDef<(), String> = WorkflowDef::new("impatient");
const THREADED: WorkflowDef<(), String> = WorkflowDef::new("threaded");
const RESERVE: ActivityDef<String, u32> = ActivityDef::new("reserve");
const ALLOCATE: WorkflowDef<u32, u32> = WorkflowDef::new("allocate");

/// The line of `allocate`'s `ctx.activity` call, found in this file (the needle is split so
/// that it matches only the call).
fn reserve_line() -> u32 {
    let needle = concat!("ctx.activity(RESERVE", ", warehouse)");
    let index = include_str!("nondeterminism.rs")
        .lines()
        .position(|line| line.contains(needle))
        .expect("the call is in this file");
    u32::try_from(index + 1).unwrap()
}

/// Reserves at twelve warehouses, then waits for `go`. The bug: `HashMap` order decides which
/// warehouse each reservation goes to, and every process (every map) has its own order.
async fn allocate(ctx: WorkflowContext, units: u32) -> Result<u32, WorkflowError> {
    let warehouses: HashMap<String, u32> = (0..12).map(|i| (format!("warehouse-{i}"), i)).collect();
    let reservations: Vec<_> = warehouses
        .keys()
        .map(|warehouse| ctx.activity(RESERVE, warehouse))
        .collect();
    ctx.signal(GO).await?;
    drop(reservations);
    Ok(units)
}

/// Waits for `go` at most 300 ms of tokio's time.
async fn impatient(ctx: WorkflowContext, (): ()) -> Result<String, WorkflowError> {
    match tokio::time::timeout(Duration::from_millis(300), ctx.signal(GO)).await {
        Ok(go) => go.map(|()| "went".to_string()).map_err(Into::into),
        Err(_) => Ok("gave up".to_string()),
    }
}

/// Waits for `go`, or for a thread of its own to say so after 100 ms.
async fn threaded(ctx: WorkflowContext, (): ()) -> Result<String, WorkflowError> {
    let (tell, told) = futures::channel::oneshot::channel::<()>();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        let _ = tell.send(());
    });
    Ok(reprise_sdk::select! {
        _ = ctx.signal(GO).fuse() => "went",
        _ = told.fuse() => "told",
    }
    .to_string())
}

async fn parked_with(workflow: WorkflowDef<(), String>, id: &str) -> (String, String) {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let client = Client::new(store.clone());
    let mut running = Running::new();
    let registry = registry()
        .workflow(IMPATIENT, impatient)
        .workflow(THREADED, threaded)
        .build()
        .unwrap();
    run_engine(&store, registry, engine_options(), &mut running);
    client.start(workflow, id, &()).await.unwrap();
    let reason = within(parked_reason(&running, &client, id)).await;
    let scrape = store.metrics().render();
    drop(running);
    db.drop_database().await;
    (reason, scrape)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tokio_timeout_around_a_signal_parks_the_run_in_its_first_step() {
    let (reason, scrape) = parked_with(IMPATIENT, "impatient-1").await;
    assert!(
        reason.starts_with("nondeterminism ND07 at seq 1: the workflow used a tokio timer"),
        "{reason}"
    );
    assert!(
        scrape
            .contains("reprise_nondeterminism_total{workflow_type=\"impatient\",code=\"ND07\"} 1"),
        "{scrape}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wake_from_another_thread_parks_the_run_without_an_input() {
    let (reason, _) = parked_with(THREADED, "threaded-1").await;
    assert!(
        reason.starts_with(
            "nondeterminism ND05 at seq 2: the workflow was woken by something other than Reprise"
        ),
        "{reason}"
    );
}

/// Runs `allocate` until its reservations are scheduled, pushes it out of the engine's cache
/// (capacity one) with a second run, and signals it: the engine replays its history with a
/// new `HashMap`. Returns the client, the engine's running guard, the scrape and the database.
async fn allocate_then_replay(
    input_changes: InputChanges,
) -> (Client, crate::hosts::Running, Store, crate::support::TestDb) {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let client = Client::new(store.clone());
    let mut running = Running::new();
    let registry = registry().workflow(ALLOCATE, allocate).build().unwrap();
    let options = EngineOptions {
        cache_capacity: 1,
        input_changes,
        ..engine_options()
    };
    run_engine(&store, registry, options, &mut running);
    for id in ["allocate-1", "allocate-2"] {
        client.start(ALLOCATE, id, &5).await.unwrap();
        let scheduled = async || client.describe(id).await.unwrap().head_seq.get() >= 13;
        within(running.until(scheduled)).await;
    }
    client.signal("allocate-1", GO, &()).await.unwrap();
    (client, running, store, db)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inputs_from_hashmap_order_are_counted_on_replay_and_the_run_goes_on() {
    let (client, running, store, db) = allocate_then_replay(InputChanges::Report).await;
    let handle = client.handle(ALLOCATE, "allocate-1").await.unwrap();
    assert_eq!(within(handle.result()).await.unwrap(), 5);
    let scrape = store.metrics().render();
    let counted: u64 = scrape
        .lines()
        .find_map(|l| l.strip_prefix("reprise_input_changes_total{workflow_type=\"allocate\"} "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    // Twelve keys in one map's order against another's: some reservation moved.
    assert!(counted >= 1, "{scrape}");
    drop(running);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inputs_from_hashmap_order_park_the_run_when_the_engine_is_told_to() {
    let (client, running, _store, db) = allocate_then_replay(InputChanges::Fail).await;
    let reason = within(parked_reason(&running, &client, "allocate-1")).await;
    assert!(
        reason.starts_with("nondeterminism ND08 at seq "),
        "{reason}"
    );
    assert!(
        reason.contains(
            "history has ActivityScheduled(\"reserve\"), but the code gives it another input (first different at $)"
        ),
        "{reason}"
    );
    assert!(
        reason.contains(&format!(
            "tests/integration/nondeterminism.rs:{}:",
            reserve_line()
        )),
        "{reason}"
    );
    drop(running);
    db.drop_database().await;
}

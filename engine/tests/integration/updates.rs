//! Updates on PostgreSQL: validated and refused (nothing recorded), accepted and completed by
//! a handler that runs an activity, sent twice with one id and run once, refused by a closed
//! run, finished by another engine after the first one stopped mid-way, and told to their
//! caller when the run closes first.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use reprise_engine::{Client, Error, Store};
use reprise_history::RunState;
use reprise_sdk::{
    ActivityContext, ActivityDef, ActivityError, Registry, UpdateDef, UpdateRefusal,
    WorkflowContext, WorkflowDef, WorkflowError, WorkflowState,
};

use crate::engine::within;
use crate::hosts::{Running, engine_options, run_engine, run_worker, worker_options};
use crate::support::TestDb;

const RESERVE: ActivityDef<u32, u32> = ActivityDef::new("reserve");
const ADD: UpdateDef<u32, u32> = UpdateDef::new("add");
const CLOSE: UpdateDef<(), u32> = UpdateDef::new("close");
/// Collects items through `add` (each reserved by an activity) until `close`.
const BASKET: WorkflowDef<(), u32> = WorkflowDef::new("basket");

#[derive(Default)]
struct Basket {
    total: u32,
    closed: bool,
}

async fn basket(ctx: WorkflowContext, (): ()) -> Result<u32, WorkflowError> {
    let basket = WorkflowState::new(Basket::default());
    let state = basket.clone();
    ctx.on_update(ADD, move |ctx, n: u32| {
        let state = state.clone();
        async move {
            let reserved = ctx.activity(RESERVE, &n).await?;
            Ok(state.update(|b| {
                b.total += reserved;
                b.total
            }))
        }
    });
    ctx.validate_update(ADD, &basket, |b, n| match (*n, b.closed) {
        (0, _) => Err("nothing to add".to_string()),
        (_, true) => Err("the basket is closed".to_string()),
        _ => Ok(()),
    });
    let state = basket.clone();
    ctx.on_update(CLOSE, move |_, ()| {
        let state = state.clone();
        async move {
            Ok(state.update(|b| {
                b.closed = true;
                b.total
            }))
        }
    });
    let closed = basket.clone();
    ctx.wait_until(move || closed.read(|b| b.closed)).await?;
    Ok(basket.read(|b| b.total))
}

/// The registry, counting `RESERVE`'s attempts in `reserved`.
fn registry(reserved: Arc<AtomicU32>) -> Registry {
    Registry::builder()
        .workflow(BASKET, basket)
        .activity(RESERVE, move |_: ActivityContext, n: u32| {
            reserved.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, ActivityError>(n) }
        })
        .build()
        .unwrap()
}

fn kinds(history: &reprise_history::RecordedHistory) -> Vec<&'static str> {
    history.events().iter().map(|e| e.kind.name()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_update_is_validated_accepted_handled_and_its_result_returned() {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let reserved = Arc::new(AtomicU32::new(0));
    let running = Running::both(&store, || registry(reserved.clone()));
    let client = Client::new(store.clone());
    let handle = client.start(BASKET, "basket-1", &()).await.unwrap();

    // Refused by the validator: the caller hears why, history is untouched.
    let head = client.describe("basket-1").await.unwrap().head_seq;
    match within(client.update("basket-1", ADD, &0)).await {
        Err(Error::UpdateRejected {
            reason: UpdateRefusal::Rejected { reason, .. },
            ..
        }) => assert_eq!(reason, "nothing to add"),
        other => panic!("{other:?}"),
    }
    const ADD_TEXT: UpdateDef<&str, u32> = UpdateDef::new("add");
    assert!(matches!(
        within(client.update("basket-1", ADD_TEXT, &"two")).await,
        Err(Error::UpdateRejected {
            reason: UpdateRefusal::UndecodableInput { .. },
            ..
        })
    ));
    const REMOVE: UpdateDef<u32, u32> = UpdateDef::new("remove");
    match within(client.update("basket-1", REMOVE, &1)).await {
        Err(Error::UpdateRejected {
            reason: UpdateRefusal::UnknownUpdate { registered, .. },
            ..
        }) => assert_eq!(registered, ["add", "close"]),
        other => panic!("{other:?}"),
    }
    assert_eq!(client.describe("basket-1").await.unwrap().head_seq, head);

    // Accepted: the handler runs an activity, and the caller gets what it returned.
    assert_eq!(within(client.update("basket-1", ADD, &3)).await.unwrap(), 3);
    assert_eq!(within(client.update("basket-1", ADD, &4)).await.unwrap(), 7);
    assert_eq!(
        within(client.update("basket-1", CLOSE, &())).await.unwrap(),
        7
    );
    assert_eq!(within(handle.result()).await.unwrap(), 7);
    let history = client.export(handle.run_id()).await.unwrap();
    let kinds = kinds(&history);
    assert_eq!(
        kinds.iter().filter(|k| **k == "UpdateAccepted").count(),
        3,
        "{kinds:?}"
    );
    assert_eq!(kinds.iter().filter(|k| **k == "UpdateCompleted").count(), 3);
    assert_eq!(reserved.load(Ordering::SeqCst), 2);

    // Closed: no more updates.
    assert!(matches!(
        client.update("basket-1", ADD, &1).await,
        Err(Error::WorkflowClosed { .. })
    ));
    running.stop().await;
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_update_sent_twice_with_one_id_runs_once() {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let reserved = Arc::new(AtomicU32::new(0));
    let running = Running::both(&store, || registry(reserved.clone()));
    let client = Client::new(store.clone());
    client.start(BASKET, "basket-2", &()).await.unwrap();
    let (first, second) = tokio::join!(
        client.update_with_id("basket-2", "add-tea", ADD, &5),
        client.update_with_id("basket-2", "add-tea", ADD, &5),
    );
    assert_eq!((first.unwrap(), second.unwrap()), (5, 5));
    // Later, the same id again: the first outcome, not a second run.
    let again = client.update_with_id("basket-2", "add-tea", ADD, &5).await;
    assert_eq!(again.unwrap(), 5);
    assert_eq!(reserved.load(Ordering::SeqCst), 1);
    let run = client.describe("basket-2").await.unwrap().run_id;
    let history = client.export(run).await.unwrap();
    assert_eq!(
        kinds(&history)
            .iter()
            .filter(|k| **k == "UpdateAccepted")
            .count(),
        1
    );
    running.stop().await;
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_update_whose_engine_stops_mid_way_is_finished_by_another() {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let reserved = Arc::new(AtomicU32::new(0));
    // The first engine alone: it accepts the update and schedules the handler's activity,
    // which no worker runs.
    let mut first = Running::new();
    let engine = run_engine(
        &store,
        registry(reserved.clone()),
        engine_options(),
        &mut first,
    );
    let client = Client::new(store.clone());
    client.start(BASKET, "basket-3", &()).await.unwrap();
    let caller = {
        let client = client.clone();
        tokio::spawn(async move { client.update_with_id("basket-3", "add-1", ADD, &9).await })
    };
    // The engine counts a step after its commit: the activity shows before the count. One
    // step or two: on a busy machine the update arrives before the start's first step, and
    // both are taken in one (waiting for a second step then waited for ever).
    let scheduled = async || {
        let run = client.describe("basket-3").await.unwrap();
        let stats = engine.stats();
        !run.pending_activities.is_empty() && stats.batched_steps + stats.direct_steps >= 1
    };
    within(first.until(scheduled)).await;
    first.stop().await;
    assert!(!caller.is_finished(), "the update waits for its handler");

    // Another engine (its cache empty) and a worker finish it; the caller gets the result.
    let mut second = Running::new();
    run_engine(
        &store,
        registry(reserved.clone()),
        engine_options(),
        &mut second,
    );
    run_worker(
        &store,
        registry(reserved.clone()),
        worker_options(),
        &mut second,
    );
    assert_eq!(within(caller).await.unwrap().unwrap(), 9);
    assert_eq!(
        within(client.update("basket-3", CLOSE, &())).await.unwrap(),
        9
    );
    assert_eq!(reserved.load(Ordering::SeqCst), 1);
    second.stop().await;
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_update_its_run_closes_before_finishing_is_told_so() {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let reserved = Arc::new(AtomicU32::new(0));
    // No worker: the add's activity never runs, and the close ends the run meanwhile.
    let mut running = Running::new();
    run_engine(
        &store,
        registry(reserved.clone()),
        engine_options(),
        &mut running,
    );
    let client = Client::new(store.clone());
    let handle = client.start(BASKET, "basket-4", &()).await.unwrap();
    let adding = {
        let client = client.clone();
        tokio::spawn(async move { client.update("basket-4", ADD, &2).await })
    };
    let scheduled = async || {
        let run = client.describe("basket-4").await.unwrap();
        !run.pending_activities.is_empty()
    };
    within(running.until(scheduled)).await;
    assert_eq!(
        within(client.update("basket-4", CLOSE, &())).await.unwrap(),
        0
    );
    assert_eq!(within(handle.result()).await.unwrap(), 0);
    match within(adding).await.unwrap() {
        Err(Error::UpdateNotFinished { status, update, .. }) => {
            assert_eq!((status, update.as_str()), (RunState::Completed, "add"));
        }
        other => panic!("{other:?}"),
    }
    running.stop().await;
    db.drop_database().await;
}

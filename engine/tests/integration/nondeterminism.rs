//! Workflow code Reprise cannot replay is parked at once, naming what it did: a tokio timer
//! in the step that creates it (ND07), a wake from another thread as soon as it comes (ND05),
//! not when an input happens to arrive — for a run waiting on a signal, maybe never.

use std::time::Duration;

use futures::FutureExt;
use reprise_engine::{Client, Store};
use reprise_sdk::{SignalDef, WorkflowContext, WorkflowDef, WorkflowError};

use crate::engine::{parked_reason, registry, within};
use crate::hosts::{Running, engine_options, run_engine};
use crate::support::TestDb;

const GO: SignalDef<()> = SignalDef::new("go");
const IMPATIENT: WorkflowDef<(), String> = WorkflowDef::new("impatient");
const THREADED: WorkflowDef<(), String> = WorkflowDef::new("threaded");

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

use reprise_engine::history::{EventKind, RunOrigin};
use reprise_engine::{RunFilter, history::RunState};
use reprise_examples::patterns::{Build, dead_letters};

use crate::support::TestDb;

async fn demo_runs_and_the_reset_books_the_invoice(processes: bool) {
    let db = TestDb::migrated().await;
    let mut demo = super::demo_on(&db, processes).await;
    let outcome = super::within(dead_letters::demo(&mut demo)).await.unwrap();
    assert_eq!(demo.build(), Build::V2, "the fix was deployed");
    assert_eq!(
        outcome.imported_by_v1.len(),
        2,
        "build v1 imported the others"
    );
    assert!(
        outcome.failure.contains("UnparseableAmount"),
        "{}",
        outcome.failure
    );
    assert!(
        outcome.booked.contains("Globex owes 1234.50 EUR"),
        "{}",
        outcome.booked
    );

    let client = demo.client();
    // Nothing lost: the failed run is still there, failed, with its three attempts recorded.
    let failed = client.describe_run(outcome.failed_run).await.unwrap();
    assert_eq!(failed.status, RunState::Failed);
    let history = client.export(outcome.failed_run).await.unwrap();
    let attempts = history.events().iter().find_map(|e| match &e.kind {
        EventKind::ActivityFailed(f) => Some(f.attempt),
        _ => None,
    });
    assert_eq!(attempts, Some(3));
    // The new run is a reset of it, and completed.
    let reset = client.export(outcome.reset_run).await.unwrap();
    let EventKind::WorkflowStarted(started) = &reset.events()[0].kind else {
        panic!("a history starts with WorkflowStarted");
    };
    assert!(matches!(
        started.origin,
        RunOrigin::Reset { source_run_id, .. } if source_run_id == outcome.failed_run
    ));
    let filter = RunFilter {
        status: Some(RunState::Failed),
        ..RunFilter::default()
    };
    let still_failed = client.list(&filter, None, 10).await.unwrap().runs;
    assert_eq!(
        still_failed.len(),
        1,
        "only the first run of the invoice failed"
    );
    demo.stop().await.unwrap();
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_import_is_found_explained_fixed_and_reset() {
    demo_runs_and_the_reset_books_the_invoice(false).await;
}

/// The same with engine and worker as processes: the deploy stops v1's and starts v2's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fix_is_deployed_to_engine_and_worker_processes() {
    demo_runs_and_the_reset_books_the_invoice(true).await;
}

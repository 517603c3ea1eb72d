use reprise_engine::history::EventKind;
use reprise_examples::patterns::caching::{self, COMPUTE_STATISTICS};

use crate::support::TestDb;

/// With engine and worker as processes, the worker runs as `reprise_worker`: its grants on
/// the cache are what a deployment has (a missing one would show as a miss, not an error).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_under_its_database_role_reads_and_keeps_cached_results() {
    let db = TestDb::migrated().await;
    let demo = super::demo_on(&db, true).await;
    let runs = super::within(caching::demo(&demo)).await.unwrap();
    let (first, one) = &runs[0];
    let (_, two) = &runs[1];
    assert_eq!(&one.statistics.computed_by, first);
    assert_eq!(
        two.statistics, one.statistics,
        "the second run took the first's result"
    );
    demo.stop().await.unwrap();
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_on_the_same_data_takes_the_first_runs_statistics() {
    let db = TestDb::migrated().await;
    let demo = super::demo_on(&db, false).await;
    let runs = super::within(caching::demo(&demo)).await.unwrap();
    let [(first, one), (second, two), (third, three)] = <[_; 3]>::try_from(runs).unwrap();
    assert_eq!(one.statistics.computed_by, first, "the first run computed");
    assert_eq!(
        two.statistics, one.statistics,
        "the second took the first's result"
    );
    assert_ne!(second, first);
    assert_eq!(
        three.statistics.computed_by, third,
        "other data is computed anew"
    );
    assert_ne!(three.statistics.count, one.statistics.count);

    // Each history records the result it used: replay needs no cache.
    let client = demo.client();
    let history = client
        .export(client.describe(&second).await.unwrap().run_id)
        .await
        .unwrap();
    let recorded = history.events().iter().any(|e| {
        matches!(&e.kind, EventKind::ActivityCompleted(c)
            if client.converter().from_payload::<caching::Statistics>(&c.result).ok()
                == Some(one.statistics.clone()))
    });
    assert!(
        recorded,
        "the cached statistics are in the second run's history"
    );

    // Cleared, the same data is computed again.
    let removed = client
        .clear_activity_cache(Some(COMPUTE_STATISTICS.name()))
        .await
        .unwrap();
    assert_eq!(removed, 2);
    let dataset = one.dataset.clone();
    let again = client
        .start(caching::DATA_PIPELINE, "pipeline-again", &dataset)
        .await
        .unwrap()
        .result()
        .await
        .unwrap();
    assert_eq!(again.statistics.computed_by, "pipeline-again");
    demo.stop().await.unwrap();
    db.drop_database().await;
}

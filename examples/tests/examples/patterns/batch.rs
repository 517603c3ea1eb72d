use reprise_examples::patterns::batch;
use reprise_testkit::Replayer;

use crate::support::TestDb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_items_are_processed_in_a_window_with_failures_collected() {
    let db = TestDb::migrated().await;
    let demo = super::demo_on(&db, false).await;
    let (run_id, report) = super::within(batch::demo(&demo, 1_000, 50)).await.unwrap();
    let corrupt: Vec<u32> = (1..1_000).filter(|i| i % 97 == 0).collect();
    let failed: Vec<u32> = report.failures.iter().map(|(item, _)| *item).collect();
    let mut sorted = failed.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, corrupt, "exactly the corrupt records failed");
    assert_eq!(report.processed, 1_000 - corrupt.len() as u32);
    let expected: u64 = (0..1_000u64)
        .filter(|i| !corrupt.contains(&(*i as u32)))
        .map(|i| i * 2)
        .sum();
    assert_eq!(report.total, expected);

    let client = demo.client();
    let described = client.describe_run(run_id).await.unwrap();
    let (status, _) = described
        .custom_status
        .expect("the batch publishes progress");
    let progress: batch::Progress = client.converter().from_payload(&status).unwrap();
    assert_eq!(
        (progress.done, progress.total, progress.in_flight),
        (1_000, 1_000, 0)
    );

    // Never more than the window in flight: count scheduled minus finished along the history.
    let history = client.export(run_id).await.unwrap();
    let mut open = 0i64;
    let mut most = 0i64;
    for event in history.events() {
        use reprise_engine::history::EventKind;
        match &event.kind {
            EventKind::ActivityScheduled(_) => open += 1,
            EventKind::ActivityCompleted(_) | EventKind::ActivityFailed(_) => open -= 1,
            _ => {}
        }
        most = most.max(open);
    }
    assert_eq!(most, 50, "the window is full but never over");
    // The sliding window is deterministic: the recorded run replays against the code.
    let registry = reprise_examples::patterns::registry(Default::default()).unwrap();
    Replayer::new(registry).strict().replay(&history).unwrap();
    demo.stop().await.unwrap();
    db.drop_database().await;
}

//! An application's integration test as a user writes it: a `TestCluster` (a fresh database,
//! an engine and a worker) and the client — the README shows the first test.

use std::time::Duration;

use reprise_engine::testing::TestCluster;
use reprise_engine::{Error, history::RunState};
use reprise_sdk::*;

const EXPENSE: WorkflowDef<u32, String> = WorkflowDef::new("expense");
const DECISION: SignalDef<bool> = SignalDef::new("decision");
const PAY: ActivityDef<u32, String> = ActivityDef::new("pay");

/// The application's code: an expense waits for a decision, then is paid or not.
fn registry() -> Registry {
    Registry::builder()
        .workflow(EXPENSE, |ctx: WorkflowContext, cents: u32| async move {
            match ctx.signal(DECISION).await? {
                true => Ok(ctx.activity(PAY, &cents).await?),
                false => Ok("rejected".to_string()),
            }
        })
        .activity(PAY, |_ctx, cents: u32| async move {
            Ok(format!("paid {cents}"))
        })
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expense_is_approved_and_paid() {
    let cluster = TestCluster::start(registry()).await.unwrap();
    let client = cluster.client();
    let handle = client.start(EXPENSE, "expense-1", &120).await.unwrap();
    client.signal("expense-1", DECISION, &true).await.unwrap();
    let paid = handle.result_within(Duration::from_secs(10)).await.unwrap();
    assert_eq!(paid, "paid 120");
    let described = client.describe("expense-1").await.unwrap();
    assert_eq!(described.status, RunState::Completed);
    let closed = described.closed_at.unwrap();
    assert!(described.started_at <= described.last_event_at && described.last_event_at <= closed);
    cluster.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_not_ready_by_its_deadline_is_a_typed_timeout_and_the_run_goes_on() {
    let cluster = TestCluster::start(registry()).await.unwrap();
    let client = cluster.client();
    let handle = client.start(EXPENSE, "expense-2", &80).await.unwrap();
    match handle.result_within(Duration::from_millis(300)).await {
        Err(Error::Timeout { after, .. }) => assert_eq!(after, Duration::from_millis(300)),
        other => panic!("expected a timeout, got {other:?}"),
    }
    let summaries = client
        .list(&Default::default(), None, 10)
        .await
        .unwrap()
        .runs;
    assert_eq!(summaries.len(), 1);
    assert_eq!(summaries[0].closed_at, None);
    assert!(summaries[0].last_event_at >= summaries[0].created_at);
    client.signal("expense-2", DECISION, &false).await.unwrap();
    assert_eq!(
        handle.result_within(Duration::from_secs(10)).await.unwrap(),
        "rejected"
    );
    cluster.stop().await.unwrap();
}

/// A cluster dropped without `stop` still drops its database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_cluster_drops_its_database() {
    let cluster = TestCluster::start(registry()).await.unwrap();
    let name: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(cluster.store().pool())
        .await
        .unwrap();
    let other = TestCluster::start(registry()).await.unwrap();
    drop(cluster);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_one(other.store().pool())
        .await
        .unwrap();
    assert_eq!(left, 0, "{name} is still there");
    other.stop().await.unwrap();
}

/// The README shows the first test above as it is here, so it cannot drift.
#[test]
fn the_readme_shows_the_first_test_as_written() {
    let readme = std::fs::read_to_string("../README.md").unwrap();
    let marker = "From `examples/tests/examples/cluster.rs`:\n\n```rust,ignore\n";
    let start = readme.find(marker).expect("the README has the block") + marker.len();
    let end = start + readme[start..].find("```").unwrap();
    let this_file = include_str!("cluster.rs");
    assert!(
        this_file.contains(&readme[start..end]),
        "the README's test differs from this file's"
    );
}

//! Finding runs and acting on many: listings merged across statuses, bounded counts, pages of
//! a history, and bulk operations that resume where they stopped and never act twice.

use std::collections::HashMap;

use reprise_engine::{BulkAction, Client, RunFilter, StartOptions, Store};
use reprise_history::{RunState, Seq, SignalName, TaskQueue, WorkflowType};
use reprise_sdk::WorkflowDef;

use crate::support::TestDb;

/// Never stepped here (no engine runs): its runs stay open and their inboxes keep what
/// arrives, so the tests can count it.
const IDLE: WorkflowDef<u32, u32> = WorkflowDef::new("idle");

async fn start_idle(client: &Client, ids: impl IntoIterator<Item = String>) {
    for id in ids {
        client.start(IDLE, &id, &0).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_listing_merges_every_status_newest_first_and_counts_are_bounded() {
    let db = TestDb::migrated().await;
    let client = Client::new(Store::new(db.pool.clone()));
    start_idle(&client, (0..9).map(|i| format!("mix-{i}"))).await;
    let elsewhere = StartOptions {
        task_queue: TaskQueue::new("elsewhere").unwrap(),
        ..StartOptions::default()
    };
    client
        .start_with_options(IDLE, "mix_9", &0, elsewhere)
        .await
        .unwrap();
    for id in ["mix-1", "mix-4", "mix-7"] {
        client.terminate(id, "closing some").await.unwrap();
    }

    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = client.list(&RunFilter::default(), cursor, 4).await.unwrap();
        seen.extend(
            page.runs
                .iter()
                .map(|r| (r.workflow_id.to_string(), r.status)),
        );
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let ids: Vec<&str> = seen.iter().map(|(id, _)| id.as_str()).collect();
    let mut expected: Vec<String> = (0..9).rev().map(|i| format!("mix-{i}")).collect();
    expected.insert(0, "mix_9".to_string());
    assert_eq!(ids, expected, "newest first across statuses, each once");
    assert_eq!(
        seen.iter()
            .filter(|(_, s)| *s == RunState::Terminated)
            .count(),
        3
    );

    let capped = client
        .count_by_status(&RunFilter::default(), 2)
        .await
        .unwrap();
    let by_status: HashMap<_, _> = capped
        .iter()
        .map(|c| (c.status, (c.count, c.more)))
        .collect();
    assert_eq!(by_status[&RunState::Running], (2, true));
    assert_eq!(by_status[&RunState::Terminated], (2, true));
    assert_eq!(by_status[&RunState::Failed], (0, false));
    let exact = client
        .count_by_status(&RunFilter::default(), 100)
        .await
        .unwrap();
    let by_status: HashMap<_, _> = exact
        .iter()
        .map(|c| (c.status, (c.count, c.more)))
        .collect();
    assert_eq!(by_status[&RunState::Running], (7, false));
    assert_eq!(by_status[&RunState::Terminated], (3, false));

    let prefix = |p: &str| RunFilter {
        workflow_id_prefix: Some(p.to_string()),
        ..RunFilter::default()
    };
    let listed = |f: RunFilter| {
        let client = client.clone();
        async move {
            client
                .list(&f, None, 50)
                .await
                .unwrap()
                .runs
                .into_iter()
                .map(|r| r.workflow_id.to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(listed(prefix("mix-1")).await, vec!["mix-1"]);
    assert_eq!(
        listed(prefix("mix_")).await,
        vec!["mix_9"],
        "`_` is taken literally"
    );
    assert_eq!(
        listed(prefix("mix%")).await,
        Vec::<String>::new(),
        "`%` is taken literally"
    );
    let queue = RunFilter {
        task_queue: Some(TaskQueue::new("elsewhere").unwrap()),
        ..RunFilter::default()
    };
    assert_eq!(listed(queue).await, vec!["mix_9"]);
    let typed = RunFilter {
        workflow_type: Some(WorkflowType::new("idle").unwrap()),
        status: Some(RunState::Terminated),
        ..RunFilter::default()
    };
    assert_eq!(listed(typed.clone()).await, vec!["mix-7", "mix-4", "mix-1"]);
    assert_eq!(client.count_runs(&typed).await.unwrap(), 3);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_history_is_read_a_page_at_a_time_and_checked() {
    let db = TestDb::migrated().await;
    let client = Client::new(Store::new(db.pool.clone()));
    let handle = client.start(IDLE, "paged", &0).await.unwrap();
    client
        .terminate("paged", "to have two events")
        .await
        .unwrap();
    let run = handle.run_id();
    let seqs = |events: Vec<reprise_history::Event>| {
        events.iter().map(|e| e.seq.get()).collect::<Vec<_>>()
    };
    assert_eq!(
        seqs(client.history_page(run, Seq::new(0), 1).await.unwrap()),
        vec![1]
    );
    assert_eq!(
        seqs(client.history_page(run, Seq::new(1), 5).await.unwrap()),
        vec![2]
    );
    assert!(
        client
            .history_page(run, Seq::new(2), 5)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        client
            .history_page(run, Seq::new(9), 5)
            .await
            .unwrap()
            .is_empty()
    );

    // An event altered in place no longer links to the one before it.
    let admin = sqlx::query("ALTER TABLE reprise.history DISABLE TRIGGER USER");
    admin.execute(&db.pool).await.unwrap();
    sqlx::query(
        "UPDATE reprise.history SET event = event || '\\x00'::bytea WHERE run_id = $1 AND seq = 2",
    )
    .bind(run.as_uuid())
    .execute(&db.pool)
    .await
    .unwrap();
    let error = client.history_page(run, Seq::new(1), 5).await.unwrap_err();
    assert!(
        error.to_string().contains("chain") || error.to_string().contains("hash"),
        "{error}"
    );
    db.drop_database().await;
}

/// Signals a batch delivered, per run.
async fn delivered(db: &TestDb, batch_id: uuid::Uuid) -> HashMap<uuid::Uuid, i64> {
    sqlx::query_as::<_, (uuid::Uuid, i64)>(
        "SELECT run_id, count(*) FROM reprise.inbox WHERE dedupe_key = $1 GROUP BY run_id",
    )
    .bind(format!("batch:{batch_id}"))
    .fetch_all(&db.pool)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broadcast_interrupted_and_resumed_signals_each_run_once() {
    let db = TestDb::migrated().await;
    let client = Client::new(Store::new(db.pool.clone()));
    start_idle(&client, (0..25).map(|i| format!("fan-{i}"))).await;
    start_idle(&client, ["other-1".to_string()]).await;
    let filter = RunFilter {
        workflow_id_prefix: Some("fan-".to_string()),
        ..RunFilter::default()
    };
    let action = client
        .signal_action_json("wake", "{\"now\": true}")
        .unwrap();
    assert!(
        matches!(&action, BulkAction::Signal { name, .. } if *name == SignalName::new("wake").unwrap())
    );
    let batch = client.create_batch(&filter, &action).await.unwrap();
    assert_eq!(batch.matched, 25);
    // A run started after the batch is not the batch's.
    start_idle(&client, ["fan-late".to_string()]).await;

    // Interrupted after its first chunk (dropped mid-way through whatever came next).
    let (tell, mut told) = tokio::sync::mpsc::unbounded_channel();
    let runner = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .run_batch(batch.batch_id, 4, move |p| {
                    let _ = tell.send(p.handled());
                })
                .await
        })
    };
    assert_eq!(told.recv().await, Some(4));
    runner.abort();
    let _ = runner.await;
    let stopped = client.batch(batch.batch_id).await.unwrap();
    assert!(stopped.handled() >= 4);

    let finished = client.run_batch(batch.batch_id, 4, |_| {}).await.unwrap();
    assert!(finished.finished_at.is_some());
    assert_eq!(
        (finished.done, finished.skipped, finished.failed),
        (25, 0, 0)
    );
    let counts = delivered(&db, batch.batch_id).await;
    assert_eq!(counts.len(), 25, "every matching run, and no other");
    assert!(counts.values().all(|&n| n == 1), "each once: {counts:?}");

    // Running a finished batch again changes nothing.
    let again = client.run_batch(batch.batch_id, 4, |_| {}).await.unwrap();
    assert_eq!(again, finished);
    assert_eq!(delivered(&db, batch.batch_id).await, counts);
    let late = client.describe("fan-late").await.unwrap();
    assert_eq!(late.status, RunState::Running);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_repeated_bulk_cancel_is_harmless_and_closed_runs_are_skipped() {
    let db = TestDb::migrated().await;
    let client = Client::new(Store::new(db.pool.clone()));
    start_idle(&client, (0..10).map(|i| format!("cx-{i}"))).await;
    client.terminate("cx-3", "already gone").await.unwrap();
    let filter = RunFilter {
        workflow_id_prefix: Some("cx-".to_string()),
        ..RunFilter::default()
    };
    let cancel = BulkAction::Cancel {
        reason: "closing the line".to_string(),
    };
    let first = client.create_batch(&filter, &cancel).await.unwrap();
    assert_eq!(first.matched, 9, "open runs only");
    let first = client.run_batch(first.batch_id, 3, |_| {}).await.unwrap();
    assert_eq!((first.done, first.skipped, first.failed), (9, 0, 0));
    let second = client.create_batch(&filter, &cancel).await.unwrap();
    let second = client.run_batch(second.batch_id, 3, |_| {}).await.unwrap();
    assert_eq!((second.done, second.skipped), (0, 9), "asked once already");
    let asked: i64 =
        sqlx::query_scalar("SELECT count(*) FROM reprise.inbox WHERE dedupe_key = 'cancel'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(asked, 9);

    // A filter for closed runs matches nothing to act on.
    let closed = RunFilter {
        status: Some(RunState::Terminated),
        ..filter.clone()
    };
    let none = client.create_batch(&closed, &cancel).await.unwrap();
    assert_eq!(none.matched, 0);

    // Terminating is done once; the listing says so.
    let terminate = BulkAction::Terminate {
        reason: "for good".to_string(),
    };
    let t = client.create_batch(&filter, &terminate).await.unwrap();
    let t = client.run_batch(t.batch_id, 4, |_| {}).await.unwrap();
    assert_eq!(t.done, 9);
    let terminated = RunFilter {
        status: Some(RunState::Terminated),
        ..filter
    };
    assert_eq!(client.count_runs(&terminated).await.unwrap(), 10);
    let listed = client.batches(10).await.unwrap();
    assert_eq!(listed.len(), 4);
    assert!(
        listed
            .iter()
            .all(|b| b.finished_at.is_some() || b.matched == 0)
    );
    db.drop_database().await;
}

//! `reprise batch`: the count first, progress to the end, and a repeat that is harmless.

use reprise_engine::{Client, Store};
use reprise_sdk::WorkflowDef;

use crate::{TestDb, text};

/// Never stepped (no engine runs here): its runs stay open.
const IDLE: WorkflowDef<u32, u32> = WorkflowDef::new("idle");

#[tokio::test(flavor = "multi_thread")]
async fn a_bulk_cancel_shows_progress_and_repeating_it_is_harmless() {
    let db = TestDb::empty().await;
    assert!(db.reprise(&["migrate"]).status.success());
    let pool = reprise_engine::connect(&db.url).await.unwrap();
    let client = Client::new(Store::new(pool.clone()));
    let starts = (0..400).map(|i| {
        let client = client.clone();
        async move {
            client
                .start(IDLE, &format!("bulk-{i}"), &0)
                .await
                .map(|_| ())
        }
    });
    for started in futures::future::join_all(starts).await {
        started.unwrap();
    }
    client.start(IDLE, "other-1", &0).await.unwrap();

    // Without --yes and without a terminal to ask on: refused, nothing recorded.
    let unasked = db.reprise(&["batch", "cancel", "--id-prefix", "bulk-"]);
    assert!(!unasked.status.success());
    assert!(
        text(&unasked.stderr).contains("400 run(s) would be affected; pass --yes"),
        "{}",
        text(&unasked.stderr)
    );
    assert!(client.batches(10).await.unwrap().is_empty());

    let first = db.reprise(&[
        "batch",
        "cancel",
        "--id-prefix",
        "bulk-",
        "--yes",
        "--chunk",
        "50",
    ]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let progress = text(&first.stderr);
    assert!(
        progress.contains("cancel would act on 400 open run(s)"),
        "{progress}"
    );
    assert!(
        progress.contains("] 400/400  done 400  skipped 0  failed 0"),
        "{progress}"
    );
    assert!(
        text(&first.stdout).contains("finished: 400 done, 0 skipped, 0 failed"),
        "{}",
        text(&first.stdout)
    );

    let again = db.reprise(&["batch", "cancel", "--id-prefix", "bulk-", "--yes"]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(
        text(&again.stdout).contains("finished: 0 done, 400 skipped, 0 failed"),
        "{}",
        text(&again.stdout)
    );
    let asked: i64 =
        sqlx::query_scalar("SELECT count(*) FROM reprise.inbox WHERE dedupe_key = 'cancel'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(asked, 400, "each run asked once");

    // Resuming a finished batch is harmless too; an unknown one is an error that says so.
    let batch = client
        .batches(1)
        .await
        .unwrap()
        .remove(0)
        .batch_id
        .to_string();
    let resumed = db.reprise(&["batch", "resume", &batch]);
    assert!(
        text(&resumed.stdout).contains("finished: 0 done, 400 skipped"),
        "{}",
        text(&resumed.stdout)
    );
    let unknown = db.reprise(&["batch", "resume", "6f281f26-fce1-42a6-a9f9-037e3b7ed901"]);
    assert!(!unknown.status.success());
    assert!(
        text(&unknown.stderr).contains("no batch with id"),
        "{}",
        text(&unknown.stderr)
    );
    let none = db.reprise(&["batch", "terminate", "--id-prefix", "nobody-", "--yes"]);
    assert!(
        text(&none.stdout).contains("nothing matches"),
        "{}",
        text(&none.stdout)
    );
    pool.close().await;
    db.drop_database().await;
}

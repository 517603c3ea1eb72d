//! Engines and workers as real `reprise-example` processes, killed and replaced while
//! workflows run.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::TestDb;
use reprise_engine::{Client, Store, WorkflowHandle};
use reprise_examples::workflows::{
    ADD_ITEM, CART, CART_TOTAL, CHECKOUT, CHECKPOINTED, FAN_OUT, GREETING, LEDGER, PATIENT, SLEEPY,
};
use reprise_history::{EventKind, RecordedHistory};
use sqlx::postgres::PgListener;

/// A `reprise-example` process, killed when dropped.
struct Process {
    child: Child,
}

impl Process {
    fn spawn(db: &TestDb, args: &[&str]) -> Process {
        let child = Command::new(env!("CARGO_BIN_EXE_reprise-example"))
            .args(args)
            .env("DATABASE_URL", &db.url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn reprise-example");
        Process { child }
    }

    /// SIGKILL: the process dies at once, leases and all.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM: the process finishes what it holds and exits.
    fn terminate(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        assert!(exit.success(), "exited with {exit}");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn within<T>(limit: u64, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(limit), f)
        .await
        .expect("finished in time")
}

/// Changes made by the other processes, heard: the test installs statement triggers on
/// `reprise.runs` and `reprise.activity_tasks` (in its own database only) that notify
/// `test_changes`, so that it can wait for another process's writes without polling.
struct Changes {
    listener: PgListener,
}

impl Changes {
    /// Starts hearing changes; call it before anything the test waits for can happen.
    async fn watch(db: &TestDb) -> Changes {
        sqlx::raw_sql(
            "CREATE FUNCTION public.test_changed() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN PERFORM pg_notify('test_changes', ''); RETURN NULL; END $$;
             CREATE TRIGGER test_runs_changed AFTER INSERT OR UPDATE OR DELETE ON reprise.runs
                 FOR EACH STATEMENT EXECUTE FUNCTION public.test_changed();
             CREATE TRIGGER test_tasks_changed AFTER INSERT OR UPDATE OR DELETE
                 ON reprise.activity_tasks
                 FOR EACH STATEMENT EXECUTE FUNCTION public.test_changed();",
        )
        .execute(&db.pool)
        .await
        .unwrap();
        // A connection of its own, not the pool's: the pool closes while this still listens.
        let mut listener = PgListener::connect(&db.url).await.unwrap();
        listener.listen("test_changes").await.unwrap();
        Changes { listener }
    }

    /// Waits until `ok` holds of the workflow's description, checking again after each change.
    async fn until(
        &mut self,
        client: &Client,
        workflow_id: &str,
        ok: impl Fn(&reprise_engine::Description) -> bool,
    ) {
        within(30, async {
            loop {
                if let Ok(d) = client.describe(workflow_id).await
                    && ok(&d)
                {
                    return;
                }
                self.listener.recv().await.unwrap();
            }
        })
        .await
    }
}

fn kinds(history: &RecordedHistory) -> Vec<&'static str> {
    history.events().iter().map(|e| e.kind.name()).collect()
}

/// The attempt each of the run's completed activities took, in history order.
async fn completed_attempts<O>(client: &Client, handle: &WorkflowHandle<O>) -> Vec<u32> {
    let history = client.export(handle.run_id()).await.unwrap();
    history
        .events()
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ActivityCompleted(c) => Some(c.attempt),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_activity_is_replaced_after_its_lease_runs_out() {
    let db = TestDb::migrated().await;
    let client = Client::new(Store::new(db.pool.clone()));
    let _engine = Process::spawn(&db, &["engine"]);
    let first_worker = Process::spawn(&db, &["worker", "--queue", "default"]);
    let mut changes = Changes::watch(&db).await;
    let handle = client.start(PATIENT, "patient-1", &()).await.unwrap();
    changes
        .until(&client, "patient-1", |d| {
            d.pending_activities
                .iter()
                .any(|a| a.running && a.attempt == 1)
        })
        .await;

    first_worker.kill(); // SIGKILL, mid-activity: its attempt's lease (2 s) must run out.
    let _second_worker = Process::spawn(&db, &["worker", "--queue", "default"]);
    assert_eq!(
        within(60, handle.result()).await.unwrap(),
        "answered on attempt 2"
    );
    let history = client.export(handle.run_id()).await.unwrap();
    assert_eq!(
        kinds(&history),
        [
            "WorkflowStarted",
            "ActivityScheduled",
            "ActivityCompleted",
            "WorkflowCompleted"
        ]
    );
    drop((_engine, _second_worker));
    db.drop_database().await;
}

/// The local activity's effect is outside the database (a line in a file), so the test reads
/// the file until the first attempt has written it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_killed_mid_local_activity_leaves_it_to_another_that_records_it_once() {
    let db = TestDb::migrated().await;
    let client = Client::new(Store::new(db.pool.clone()));
    let path = std::env::temp_dir().join(format!(
        "reprise-ledger-{}",
        reprise_history::RunId::random()
    ));
    let lines = || std::fs::read_to_string(&path).unwrap_or_default();
    let first_engine = Process::spawn(&db, &["engine"]);
    let handle = client
        .start(LEDGER, "ledger-1", &path.display().to_string())
        .await
        .unwrap();
    within(30, async {
        while lines().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    first_engine.kill(); // SIGKILL, mid-call: its step's transaction ends unwritten.

    let _second_engine = Process::spawn(&db, &["engine"]);
    assert_eq!(
        within(60, handle.result()).await.unwrap(),
        "written 2 times"
    );
    let written: Vec<String> = lines().lines().map(str::to_string).collect();
    assert_eq!(written.len(), 2, "{written:?}");
    assert_eq!(
        written[0], written[1],
        "both attempts had one idempotency key"
    );
    let history = client.export(handle.run_id()).await.unwrap();
    assert_eq!(
        kinds(&history),
        [
            "WorkflowStarted",
            "LocalActivityScheduled",
            "ActivityCompleted",
            "WorkflowCompleted"
        ],
        "the outcome is recorded once"
    );
    let _ = std::fs::remove_file(&path);
    drop(_second_engine);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_after_a_checkpoint_is_resumed_from_it_by_the_next_attempt() {
    let db = TestDb::migrated().await;
    let client = Client::new(Store::new(db.pool.clone()));
    let _engine = Process::spawn(&db, &["engine"]);
    let first_worker = Process::spawn(&db, &["worker", "--queue", "default"]);
    let mut changes = Changes::watch(&db).await;
    let handle = client
        .start(CHECKPOINTED, "checkpointed-1", &10u32)
        .await
        .unwrap();
    let converter = reprise_history::DataConverter::default();
    // `describe` shows the running attempt's progress: item 5 done, where attempt 1 hangs.
    changes
        .until(&client, "checkpointed-1", |d| {
            d.pending_activities.iter().any(|a| {
                a.running
                    && a.progress
                        .as_ref()
                        .and_then(|p| converter.from_payload::<u32>(p).ok())
                        == Some(5)
            })
        })
        .await;

    first_worker.kill(); // SIGKILL after the checkpoint: attempt 2 starts from item 6.
    let _second_worker = Process::spawn(&db, &["worker", "--queue", "default"]);
    assert_eq!(
        within(60, handle.result()).await.unwrap(),
        [6, 7, 8, 9],
        "items 0 to 5 were skipped"
    );
    assert_eq!(completed_attempts(&client, &handle).await, [2]);
    drop((_engine, _second_worker));
    db.drop_database().await;
}

/// An update accepted by an engine that is then SIGKILLed mid-handler (its handler waits on
/// an activity no worker runs yet) is finished by another engine, and the caller who sent it
/// receives the result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_whose_engine_is_killed_mid_way_is_answered_by_another() {
    let db = TestDb::migrated().await;
    let client = Client::new(Store::new(db.pool.clone()));
    let first_engine = Process::spawn(&db, &["engine"]);
    let mut changes = Changes::watch(&db).await;
    client.start(CART, "cart-1", &()).await.unwrap();
    let caller = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .update("cart-1", ADD_ITEM, &"teapot".to_string())
                .await
        })
    };
    // Accepted, and its handler's activity scheduled: the engine is mid-update.
    changes
        .until(&client, "cart-1", |d| !d.pending_activities.is_empty())
        .await;
    first_engine.kill();

    let _second_engine = Process::spawn(&db, &["engine"]);
    let _worker = Process::spawn(&db, &["worker", "--queue", "default"]);
    assert_eq!(within(60, caller).await.unwrap().unwrap(), 600);
    assert_eq!(
        within(30, client.query("cart-1", CART_TOTAL, &()))
            .await
            .unwrap(),
        600
    );
    assert_eq!(
        within(30, client.update("cart-1", CHECKOUT, &()))
            .await
            .unwrap(),
        600
    );
    let run = client.describe("cart-1").await.unwrap().run_id;
    let history = client.export(run).await.unwrap();
    let kinds = kinds(&history);
    assert_eq!(
        kinds.iter().filter(|k| **k == "UpdateCompleted").count(),
        2,
        "each update completed once: {kinds:?}"
    );
    drop((_second_engine, _worker));
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sleeping_workflow_is_resumed_by_another_engine_process() {
    let db = TestDb::migrated().await;
    let client = Client::new(Store::new(db.pool.clone()));
    let first_engine = Process::spawn(&db, &["engine"]);
    let mut changes = Changes::watch(&db).await;
    let handle = client.start(SLEEPY, "sleepy-1", &2u64).await.unwrap();
    // The timer is set.
    changes
        .until(&client, "sleepy-1", |d| d.head_seq.get() >= 2)
        .await;
    first_engine.terminate();

    let _second_engine = Process::spawn(&db, &["engine"]);
    assert_eq!(within(60, handle.result()).await.unwrap(), "woke after 2s");
    let history = client.export(handle.run_id()).await.unwrap();
    assert_eq!(
        kinds(&history),
        [
            "WorkflowStarted",
            "TimerStarted",
            "TimerFired",
            "WorkflowCompleted"
        ]
    );
    let started = history.events()[1].recorded_at.as_unix_micros();
    let fired = history.events()[2].recorded_at.as_unix_micros();
    assert!(
        fired - started >= 2_000_000,
        "the timer fired after its 2 s"
    );
    drop(_second_engine);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_engines_and_two_workers_complete_500_workflows() {
    let db = TestDb::migrated().await;
    let client = Client::new(Store::new(db.pool.clone()));
    let _processes = [
        Process::spawn(&db, &["engine"]),
        Process::spawn(&db, &["engine"]),
        Process::spawn(&db, &["worker", "--queue", "default"]),
        Process::spawn(&db, &["worker", "--queue", "default"]),
    ];
    let mut handles = Vec::new();
    for i in 0..500 {
        handles.push(
            client
                .start(GREETING, &format!("greeting-{i}"), &format!("n{i}"))
                .await
                .unwrap(),
        );
    }
    let results = within(
        120,
        futures::future::join_all(handles.iter().map(|h| h.result())),
    )
    .await;
    for (i, result) in results.into_iter().enumerate() {
        assert_eq!(result.unwrap(), format!("HELLO, N{i}"));
    }
    let expected = [
        "WorkflowStarted",
        "ActivityScheduled",
        "ActivityCompleted",
        "TimerStarted",
        "TimerFired",
        "ActivityScheduled",
        "ActivityCompleted",
        "WorkflowCompleted",
    ];
    for handle in &handles {
        // `export` verifies the hash chain and every structural rule.
        let history = client.export(handle.run_id()).await.unwrap();
        assert_eq!(
            kinds(&history),
            expected,
            "{}: no decision missing or recorded twice",
            handle.workflow_id()
        );
        let scheduled = history
            .events()
            .iter()
            .filter(|e| matches!(e.kind, EventKind::ActivityScheduled(_)))
            .count();
        assert_eq!(scheduled, 2);
    }
    drop(_processes);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_worker_finishes_what_it_can_and_hands_back_the_rest() {
    let db = TestDb::migrated().await;
    let client = Client::new(Store::new(db.pool.clone()));
    let engine = Process::spawn(&db, &["engine"]);
    let first = Process::spawn(
        &db,
        &[
            "worker",
            "--queue",
            "default",
            "--shutdown-grace-ms",
            "1000",
        ],
    );
    let mut changes = Changes::watch(&db).await;
    let handle = client.start(FAN_OUT, "fan-out-1", &50).await.unwrap();
    changes
        .until(&client, "fan-out-1", |d| {
            d.pending_activities.len() == 50 && d.pending_activities.iter().all(|a| a.running)
        })
        .await;

    // SIGTERM: the 100 ms activities finish within the 1 s grace; the 3 s ones are handed back.
    let second = Process::spawn(&db, &["worker", "--queue", "default"]);
    let terminated = std::time::Instant::now();
    first.terminate();
    // Their 60 s leases would make this wait a minute if they were not handed back.
    assert_eq!(
        within(30, handle.result()).await.unwrap(),
        (0..50).sum::<u32>()
    );
    eprintln!("all 50 done {:?} after SIGTERM", terminated.elapsed());
    let attempts = completed_attempts(&client, &handle).await;
    assert_eq!(attempts.len(), 50);
    assert!(
        attempts.iter().all(|&a| a == 1),
        "a hand-back is not a failed attempt: {attempts:?}"
    );
    drop((engine, second));
    db.drop_database().await;
}

/// `dev` runs engine and worker through one `Reprise`: one SIGTERM stops both, after the
/// activities that fit in the grace finished and the rest were handed back; nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_combined_process_drains_on_one_signal() {
    let db = TestDb::migrated().await;
    let client = Client::new(Store::new(db.pool.clone()));
    let combined = Process::spawn(&db, &["dev", "--shutdown-grace-ms", "1000"]);
    let mut changes = Changes::watch(&db).await;
    let handle = client.start(FAN_OUT, "fan-out-dev", &10).await.unwrap();
    changes
        .until(&client, "fan-out-dev", |d| {
            d.pending_activities.len() == 10 && d.pending_activities.iter().all(|a| a.running)
        })
        .await;
    combined.terminate(); // exits successfully, or the test fails here
    // The 100 ms activities finished before the process exited; the 3 s ones were handed
    // back, not failed, so none is running and none has a failed attempt.
    let described = client.describe("fan-out-dev").await.unwrap();
    assert_eq!(described.pending_activities.len(), 5, "{described:?}");
    assert!(
        described.pending_activities.iter().all(|a| !a.running),
        "{described:?}"
    );
    let next = Process::spawn(&db, &["dev"]);
    assert_eq!(
        within(30, handle.result()).await.unwrap(),
        (0..10).sum::<u32>()
    );
    let attempts = completed_attempts(&client, &handle).await;
    assert_eq!(attempts, vec![1; 10]);
    drop(next);
    db.drop_database().await;
}

//! The CLI driving real workflows end to end: start with JSON input, signal, result, history
//! and describe `--json`, with an engine and a worker of the test running the code — and the
//! same with encrypted payloads, keys given to the CLI as to the application.

use std::time::Duration;

use reprise_codecs::{Aes256Gcm, Keyring};
use reprise_engine::{Engine, EngineOptions, Store, Worker, WorkerOptions};
use reprise_sdk::{
    ActivityDef, ActivityError, QueryDef, Registry, SignalDef, UpdateDef, WorkflowDef,
    WorkflowState,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::oneshot;

use crate::{TestDb, text};

#[derive(Serialize, Deserialize)]
struct Order {
    item: String,
    quantity: u32,
}

#[derive(Serialize, Deserialize)]
struct Receipt {
    total: u64,
    approved_by: String,
}

const ORDER: WorkflowDef<Order, Receipt> = WorkflowDef::new("order");
const PRICE: ActivityDef<Order, u64> = ActivityDef::new("price");
const APPROVE: SignalDef<String> = SignalDef::new("approve");
/// The order's total times a quantity.
const QUOTE: QueryDef<u32, u64> = QueryDef::new("quote");
/// Takes cents off the order's total (at most the total); answers the new total.
const DISCOUNT: UpdateDef<u64, u64> = UpdateDef::new("discount");
const CHARGE: WorkflowDef<u64, ()> = WorkflowDef::new("charge");
const DEBIT: ActivityDef<u64, ()> = ActivityDef::new("debit");
const PACKING: WorkflowDef<u32, u32> = WorkflowDef::new("packing");
/// Reports `{"packed": n}` as its progress, then waits for [`GATE`].
const PACK: ActivityDef<u32, u32> = ActivityDef::new("pack");
static GATE: tokio::sync::Notify = tokio::sync::Notify::const_new();

fn registry(keys: Option<&str>) -> Registry {
    let mut builder = Registry::builder();
    if let Some(keys) = keys {
        builder = builder.codec(Aes256Gcm::new(Keyring::parse(keys).unwrap()));
    }
    builder
        .workflow(ORDER, |ctx, order: Order| async move {
            let total = ctx.activity(PRICE, &order).await?;
            let priced = WorkflowState::new(total);
            ctx.on_query(QUOTE, &priced, |total, times| total * u64::from(times));
            ctx.validate_update(DISCOUNT, &priced, |total, off| {
                if off > total {
                    Err(format!(
                        "a discount of {off} is more than the total {total}"
                    ))
                } else {
                    Ok(())
                }
            });
            let discounted = priced.clone();
            ctx.on_update(DISCOUNT, move |_, off: u64| {
                let total = discounted.clone();
                async move {
                    Ok(total.update(|t| {
                        *t -= off;
                        *t
                    }))
                }
            });
            let status = serde_json::json!({ "stage": "awaiting approval", "total": total });
            ctx.set_status(&status)
                .map_err(|e| reprise_sdk::WorkflowError::failed("Status", e.to_string()))?;
            let approved_by = ctx.signal(APPROVE).await?;
            Ok(Receipt { total, approved_by })
        })
        .workflow(CHARGE, |ctx, cents| async move {
            Ok(ctx.activity(DEBIT, &cents).await?)
        })
        .workflow(PACKING, |ctx, n: u32| async move {
            Ok(ctx.activity(PACK, &n).await?)
        })
        .activity(
            PACK,
            |ctx: reprise_sdk::ActivityContext, n: u32| async move {
                ctx.heartbeat(&serde_json::json!({ "packed": n }))?;
                GATE.notified().await;
                Ok::<_, ActivityError>(n)
            },
        )
        .activity(PRICE, |_, order: Order| async move {
            Ok::<_, ActivityError>(u64::from(order.quantity) * 250)
        })
        .activity(DEBIT, |_, _cents| async move {
            Err::<(), _>(ActivityError::non_retryable(
                "CardDeclined",
                "card ending 4242 declined",
            ))
        })
        .build()
        .unwrap()
}

/// An engine and a worker in the background until dropped (dropping a sender stops one).
struct Hosts {
    _stops: Vec<oneshot::Sender<()>>,
}

fn run_hosts(pool: &sqlx::PgPool, keys: Option<&str>) -> Hosts {
    let store = Store::new(pool.clone());
    let engine = Engine::new(
        store.clone(),
        registry(keys),
        EngineOptions {
            idle_poll: Duration::from_millis(50),
            ..EngineOptions::default()
        },
    );
    let worker = Worker::new(
        store,
        registry(keys),
        WorkerOptions {
            idle_poll: Duration::from_millis(50),
            ..WorkerOptions::default()
        },
    );
    let (stop_engine, engine_stopped) = oneshot::channel::<()>();
    let (stop_worker, worker_stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        engine
            .run(async { engine_stopped.await.unwrap_or(()) })
            .await
    });
    tokio::spawn(async move {
        worker
            .run(async { worker_stopped.await.unwrap_or(()) })
            .await
    });
    Hosts {
        _stops: vec![stop_engine, stop_worker],
    }
}

fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "reprise failed: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn json(out: std::process::Output) -> Value {
    let stdout = ok(out);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn start_signal_result_history_and_describe_with_json() {
    let db = TestDb::empty().await;
    ok(db.reprise(&["migrate"]));
    let pool = reprise_engine::connect(&db.url).await.unwrap();
    let hosts = run_hosts(&pool, None);

    let started = json(db.reprise(&[
        "start",
        "order",
        "order-7",
        "--input",
        r#"{"item": "tea", "quantity": 3}"#,
        "--json",
    ]));
    assert_eq!(started["workflow_id"], "order-7");

    // Deadlines and a retry policy go on the run's row.
    ok(db.reprise(&[
        "start",
        "order",
        "order-deadlines",
        "--run-timeout",
        "30m",
        "--execution-timeout",
        "1day",
        "--retry-attempts",
        "4",
        "--retry-backoff",
        "5s",
    ]));
    let (run_timeout, attempts, execution): (Option<i64>, Option<String>, bool) = sqlx::query_as(
        "SELECT run_timeout_micros, retry_policy->>'max_attempts',
                execution_deadline - created_at = interval '1 day'
           FROM reprise.runs WHERE workflow_id = 'order-deadlines'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(run_timeout, Some(30 * 60 * 1_000_000));
    assert_eq!(attempts.as_deref(), Some("4"));
    assert!(
        execution,
        "the execution deadline is a day after the first step"
    );
    let described = json(db.reprise(&["describe", "order-deadlines", "--json"]));
    assert!(described["deadline"].is_string(), "{described}");
    assert_eq!(described["attempt"], 1);

    // Not JSON: the parser's message, and nothing stored.
    let out = db.reprise(&["start", "order", "order-8", "--input", "{item: tea}"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("JSON text does not decode: key must be a string"),
        "{}",
        text(&out.stderr)
    );
    let out = db.reprise(&["describe", "order-8"]);
    assert!(text(&out.stderr).contains("no workflow with id \"order-8\""));

    let out = db.reprise(&["result", "order-7"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("has no result yet (still running)"),
        "{}",
        text(&out.stderr)
    );

    ok(db.reprise(&["signal", "order-7", "approve", "--payload", r#""Ada""#]));
    let result = json(db.reprise(&["result", "order-7", "--wait", "--json"]));
    assert_eq!(
        result,
        serde_json::json!({"status": "completed", "result": {"total": 750, "approved_by": "Ada"}})
    );

    let history = ok(db.reprise(&["history", "order-7"]));
    assert!(
        history.contains(r#"order order-7 on default input {"item":"tea","quantity":3}"#),
        "{history}"
    );
    assert!(history.contains(r#"approve "Ada""#), "{history}");
    let events = json(db.reprise(&["history", "order-7", "--json"]));
    let kinds: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "WorkflowStarted",
            "ActivityScheduled",
            "ActivityCompleted",
            "SignalReceived",
            "WorkflowCompleted"
        ]
    );
    assert_eq!(events[2]["payloads"][0], 750);

    let described = json(db.reprise(&["describe", "order-7", "--json"]));
    assert_eq!(described["status"], "completed");
    assert_eq!(described["workflow_type"], "order");
    assert_eq!(described["input"]["item"], "tea");
    assert_eq!(described["outcome"]["result"]["approved_by"], "Ada");
    assert!(described["started_at"].as_str().unwrap() <= described["closed_at"].as_str().unwrap());

    // A failed workflow: the failure with its cause chain, and a failing exit status.
    ok(db.reprise(&["start", "charge", "charge-1", "--input", "1200"]));
    let out = db.reprise(&["result", "charge-1", "--wait", "--json"]);
    assert!(!out.status.success());
    let failed: Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["failure"]["error_type"], "ActivityFailed");
    assert_eq!(failed["failure"]["causes"][0]["error_type"], "CardDeclined");
    assert_eq!(
        failed["failure"]["causes"][0]["message"],
        "card ending 4242 declined"
    );
    drop(hosts);
    pool.close().await;
    db.drop_database().await;
}

const KEYS: &str = "k1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_the_applications_keys_the_cli_writes_and_reads_encrypted_payloads() {
    let db = TestDb::empty().await;
    ok(db.reprise(&["migrate"]));
    let pool = reprise_engine::connect(&db.url).await.unwrap();
    let hosts = run_hosts(&pool, Some(KEYS));
    let keyed = |args: &[&str]| db.reprise_with_env(args, &[("REPRISE_PAYLOAD_KEYS", KEYS)]);

    ok(keyed(&[
        "start",
        "order",
        "order-9",
        "--input",
        r#"{"item": "secret-tea", "quantity": 2}"#,
    ]));
    ok(keyed(&[
        "signal",
        "order-9",
        "approve",
        "--payload",
        r#""Lin""#,
    ]));
    let result = json(keyed(&["result", "order-9", "--wait", "--json"]));
    assert_eq!(result["result"]["total"], 500);
    let described = json(keyed(&["describe", "order-9", "--json"]));
    assert_eq!(described["input"]["item"], "secret-tea");

    // Without the keys the CLI says what it lacks, naming the key id.
    let described = json(db.reprise(&["describe", "order-9", "--json"]));
    let unreadable = described["input"]["unreadable"].as_str().unwrap();
    assert!(
        unreadable.contains("aes256gcm") && unreadable.contains("k1"),
        "{unreadable}"
    );
    drop(hosts);
    pool.close().await;
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn limits_are_set_shown_and_cleared_and_bad_ones_refused() {
    let db = TestDb::empty().await;
    ok(db.reprise(&["migrate"]));
    let pool = reprise_engine::connect(&db.url).await.unwrap();
    let _hosts = run_hosts(&pool, None);
    // The worker announces what it serves as it starts.
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let announced: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM reprise.workers WHERE 'debit' = ANY (activity_types))",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            if announced {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();

    let set = ok(db.reprise(&[
        "limits",
        "set",
        "--activity-type",
        "debit",
        "--max-concurrent",
        "5",
        "--rate",
        "50",
        "--burst",
        "50",
    ]));
    assert!(
        set.contains("at most 5 at once, at most 50/s (burst 50)"),
        "{set}"
    );
    let shown = json(db.reprise(&["limits", "show", "--json"]));
    assert_eq!(shown[0]["scope"], "activity_type");
    assert_eq!(shown[0]["name"], "debit");
    assert_eq!(shown[0]["max_concurrent"], 5);
    assert_eq!(shown[0]["burst"], 50);
    assert_eq!(shown[0]["running"], 0);
    let shown = ok(db.reprise(&["limits", "show"]));
    assert!(
        shown.contains("activity type debit: at most 5 at once"),
        "{shown}"
    );

    for (args, expected) in [
        (
            &[
                "limits",
                "set",
                "--queue",
                "defualt",
                "--max-concurrent",
                "1",
            ][..],
            "no worker serves queue defualt",
        ),
        (
            &[
                "limits",
                "set",
                "--queue",
                "default",
                "--max-concurrent",
                "0",
            ][..],
            "at least 1",
        ),
        (
            &["limits", "set", "--queue", "default", "--rate", "5"][..],
            "--burst",
        ),
        (
            &[
                "limits", "set", "--queue", "default", "--rate", "5", "--burst", "0",
            ][..],
            "burst",
        ),
        (&["limits", "set", "--max-concurrent", "2"][..], "--queue"),
        (
            &["start", "charge", "charge-9", "--priority", "12"][..],
            "from 1 (lowest) to 9 (highest), not 12",
        ),
        (
            &["start", "charge", "charge-9", "--run-timeout", "0s"][..],
            "the run timeout must be longer than zero",
        ),
        (
            &["start", "charge", "charge-9", "--retry-attempts", "0"][..],
            "at least one attempt",
        ),
    ] {
        let out = db.reprise(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    let shown = json(db.reprise(&["limits", "show", "--json"]));
    assert_eq!(shown.as_array().unwrap().len(), 1, "{shown}");

    let cleared = ok(db.reprise(&["limits", "clear", "--activity-type", "debit"]));
    assert!(
        cleared.contains("activity type debit: no limit"),
        "{cleared}"
    );
    assert_eq!(ok(db.reprise(&["limits", "show"])).trim(), "no limits");
    drop(_hosts);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn describe_shows_the_running_attempts_progress() {
    let db = TestDb::empty().await;
    ok(db.reprise(&["migrate"]));
    let pool = reprise_engine::connect(&db.url).await.unwrap();
    let hosts = run_hosts(&pool, None);
    ok(db.reprise(&["start", "packing", "packing-1", "--input", "3"]));
    // The worker writes heartbeats every half second: read until this one is there.
    let described = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let described = json(db.reprise(&["describe", "packing-1", "--json"]));
            if !described["pending_activities"][0]["progress"].is_null() {
                return described;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("progress shown within 30 s");
    let pending = &described["pending_activities"][0];
    assert_eq!(pending["progress"], serde_json::json!({"packed": 3}));
    assert_eq!(pending["running"], true);
    assert!(pending["last_heartbeat_at"].is_string(), "{pending}");
    let text = ok(db.reprise(&["describe", "packing-1"]));
    assert!(
        text.contains(r#"pending: seq 2 pack attempt 1 (running, progress {"packed":3})"#),
        "{text}"
    );
    GATE.notify_one();
    let result = json(db.reprise(&["result", "packing-1", "--wait", "--json"]));
    assert_eq!(result["result"], 3);
    drop(hosts);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn query_answers_and_describe_shows_the_custom_status() {
    let db = TestDb::empty().await;
    ok(db.reprise(&["migrate"]));
    let pool = reprise_engine::connect(&db.url).await.unwrap();
    let hosts = run_hosts(&pool, None);
    let input = r#"{"item":"tea","quantity":4}"#;
    ok(db.reprise(&["start", "order", "order-q", "--input", input]));
    // The status is set once the price is in: read until it is.
    let described = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let described = json(db.reprise(&["describe", "order-q", "--json"]));
            if !described["custom_status"].is_null() {
                return described;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("status shown within 30 s");
    assert_eq!(
        described["custom_status"],
        serde_json::json!({"stage": "awaiting approval", "total": 1000})
    );
    assert!(described["custom_status_set_at"].is_string(), "{described}");
    let shown = ok(db.reprise(&["describe", "order-q"]));
    assert!(
        shown.contains(r#"status {"stage":"awaiting approval","total":1000}"#),
        "{shown}"
    );

    let answer = ok(db.reprise(&["query", "order-q", "quote", "--input", "3"]));
    assert_eq!(answer.trim(), "3000");
    let unknown = db.reprise(&["query", "order-q", "qoute", "--timeout", "5"]);
    assert!(!unknown.status.success());
    let stderr = text(&unknown.stderr);
    assert!(
        stderr.contains("qoute") && stderr.contains("it answers: quote"),
        "{stderr}"
    );
    let bad = db.reprise(&["query", "order-q", "quote", "--input", "three"]);
    assert!(!bad.status.success());
    assert!(text(&bad.stderr).contains("JSON"), "{}", text(&bad.stderr));

    let discounted = ok(db.reprise(&[
        "update", "order-q", "discount", "--input", "100", "--id", "d1",
    ]));
    assert_eq!(discounted.trim(), "900");
    let again = ok(db.reprise(&[
        "update", "order-q", "discount", "--input", "100", "--id", "d1",
    ]));
    assert_eq!(again.trim(), "900", "one id runs once");
    let refused = db.reprise(&["update", "order-q", "discount", "--input", "5000"]);
    assert!(!refused.status.success());
    let stderr = text(&refused.stderr);
    assert!(stderr.contains("more than the total 900"), "{stderr}");
    assert_eq!(
        ok(db.reprise(&["query", "order-q", "quote", "--input", "1"])).trim(),
        "900"
    );

    ok(db.reprise(&["signal", "order-q", "approve", "--payload", r#""Ada""#]));
    let result = json(db.reprise(&["result", "order-q", "--wait", "--json"]));
    assert_eq!(result["result"]["total"], 1000);
    // A closed run is still answered, from its history.
    let answer = ok(db.reprise(&["query", "order-q", "quote", "--input", "1"]));
    assert_eq!(answer.trim(), "900");
    drop(hosts);
    pool.close().await;
    db.drop_database().await;
}

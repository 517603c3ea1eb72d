//! Payloads on PostgreSQL: a deploy that adds a defaulted field to a result type keeps runs in
//! flight going; a payload that does not decode parks its run with the typed reason until a
//! fixed deploy; encrypted payloads leave only ciphertext in the database, survive a key
//! rotation, and a tampered one is refused.

use reprise_codecs::{Aes256Gcm, Keyring};
use reprise_engine::{Client, EngineOptions, Error, Store};
use reprise_history::DataConverter;
use reprise_sdk::{ActivityDef, ActivityError, Registry, SignalDef, WorkflowDef};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::engine::{parked_reason, resumed, within};
use crate::hosts::{Running, engine_options, run_engine, run_worker, worker_options};
use crate::support::TestDb;

const QUOTED: WorkflowDef<String, String> = WorkflowDef::new("quoted");
const GO: SignalDef<String> = SignalDef::new("go");

/// Asks for a quote of type `Q`, waits for a signal, and shows both.
fn quoting<Q>(converter: DataConverter) -> Registry
where
    Q: Serialize + DeserializeOwned + std::fmt::Debug + Send + Default + 'static,
{
    const QUOTE: &str = "quote";
    Registry::builder()
        .converter(converter)
        .workflow(QUOTED, |ctx, item: String| async move {
            let quote: Q = ctx
                .activity(ActivityDef::<String, Q>::new(QUOTE), &item)
                .await?;
            let go = ctx.signal(GO).await?;
            Ok(format!("{item}: {quote:?} {go}"))
        })
        .activity(
            ActivityDef::<String, Q>::new(QUOTE),
            |_, _item: String| async move { Ok::<_, ActivityError>(Q::default()) },
        )
        .build()
        .unwrap()
}

mod v1 {
    #[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
    pub(super) struct Quote {
        pub(super) price: u64,
    }
}

mod v2 {
    #[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
    pub(super) struct Quote {
        pub(super) price: u64,
        #[serde(default)]
        pub(super) currency: Option<String>,
    }
}

/// Incompatible with what v1 recorded: `price` became text.
mod broken {
    #[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
    pub(super) struct Quote {
        pub(super) price: String,
    }
}

fn build(name: &str) -> EngineOptions {
    EngineOptions {
        build: name.to_string(),
        ..engine_options()
    }
}

/// Starts `quoted` under v1 and waits until its quote is recorded and it waits for `go`, then
/// until the v1 engine has stopped (so that only the deploy's code can take `go`).
async fn quoted_in_flight(store: &Store, client: &Client, id: &str) {
    let mut running = Running::new();
    let v1 = || quoting::<v1::Quote>(DataConverter::default());
    run_engine(store, v1(), build("v1"), &mut running);
    run_worker(store, v1(), worker_options(), &mut running);
    client.start(QUOTED, id, &"tea".to_string()).await.unwrap();
    // WorkflowStarted, ActivityScheduled, ActivityCompleted: the v1 quote is in history.
    let quoted = async || client.describe(id).await.unwrap().head_seq.get() >= 3;
    within(running.until(quoted)).await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_in_flight_survives_a_deploy_that_adds_a_defaulted_field() {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let client = Client::new(store.clone());
    quoted_in_flight(&store, &client, "quote-1").await;

    // The deploy: new code reads the quote v1 recorded (a fresh engine replays it).
    let mut running = Running::new();
    let v2 = || quoting::<v2::Quote>(DataConverter::default());
    run_engine(&store, v2(), build("v2"), &mut running);
    run_worker(&store, v2(), worker_options(), &mut running);
    client
        .signal("quote-1", GO, &"now".to_string())
        .await
        .unwrap();
    let handle = client.handle(QUOTED, "quote-1").await.unwrap();
    assert_eq!(
        within(handle.result()).await.unwrap(),
        "tea: Quote { price: 0, currency: None } now"
    );
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_payload_that_does_not_decode_parks_the_run_until_a_fixed_deploy() {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let client = Client::new(store.clone());
    quoted_in_flight(&store, &client, "quote-2").await;

    let mut running = Running::new();
    let broken = || quoting::<broken::Quote>(DataConverter::default());
    run_engine(&store, broken(), build("broken"), &mut running);
    client
        .signal("quote-2", GO, &"now".to_string())
        .await
        .unwrap();
    let reason = within(parked_reason(&running, &client, "quote-2")).await;
    assert!(
        reason.starts_with(r#"payload at seq 3 (result of activity "quote") does not decode as "#),
        "{reason}"
    );
    assert!(reason.contains("expected a string"), "{reason}");
    assert!(!reason.contains("nondeterminism"), "{reason}");
    let handle = client.handle(QUOTED, "quote-2").await.unwrap();
    match handle.result().await {
        Err(Error::WorkflowParked { reason: r, .. }) => assert_eq!(r, reason),
        other => panic!("expected the parked run to say so, got {other:?}"),
    }
    drop(running);

    // The fixed deploy takes the run back and finishes it; nothing was lost.
    let mut running = Running::new();
    let fixed = || quoting::<v2::Quote>(DataConverter::default());
    run_engine(&store, fixed(), build("fixed"), &mut running);
    within(resumed(&running, &client, "quote-2")).await;
    assert_eq!(
        within(handle.result()).await.unwrap(),
        "tea: Quote { price: 0, currency: None } now"
    );
    db.drop_database().await;
}

const SECRET: &str = "plaintext-marker-4242";
const K1: &str = "k1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const K2_THEN_K1: &str = "k2:AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=,k1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

fn encrypting(keys: &str) -> DataConverter {
    DataConverter::default()
        .with_codec(Aes256Gcm::new(Keyring::parse(keys).unwrap()))
        .unwrap()
}

const ECHO: WorkflowDef<String, String> = WorkflowDef::new("echo");
const REPEAT: ActivityDef<String, String> = ActivityDef::new("repeat");

/// Repeats its input through an activity, waits for a signal, and returns all three.
fn echoing(converter: DataConverter) -> Registry {
    Registry::builder()
        .converter(converter)
        .workflow(ECHO, |ctx, input: String| async move {
            let repeated = ctx.activity(REPEAT, &input).await?;
            let go = ctx.signal(GO).await?;
            Ok(format!("{repeated} {go}"))
        })
        .activity(REPEAT, |ctx, input: String| async move {
            ctx.heartbeat(&format!("working on {input}"))?;
            Ok::<_, ActivityError>(format!("{input} {input}"))
        })
        .build()
        .unwrap()
}

/// Every row of every table in the `reprise` schema, as text (bytea as hex).
async fn whole_schema(db: &TestDb) -> String {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'reprise' AND table_type = 'BASE TABLE'",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(tables.len() >= 4, "{tables:?}");
    let mut all = String::new();
    for table in tables {
        let rows: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT string_agg(t::text, ' ') FROM reprise.{table} t"
        )))
        .fetch_one(&db.pool)
        .await
        .unwrap();
        all.push_str(&rows.unwrap_or_default());
    }
    all
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn encrypted_payloads_leave_only_ciphertext_survive_rotation_and_refuse_tampering() {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let old_keys = encrypting(K1);
    let client = Client::new(store.clone()).with_converter(old_keys.clone());
    let mut running = Running::new();
    run_engine(&store, echoing(old_keys.clone()), build("k1"), &mut running);
    run_worker(
        &store,
        echoing(old_keys.clone()),
        worker_options(),
        &mut running,
    );

    // One run finishes under k1; another waits for its signal.
    let done = client
        .start(ECHO, "echo-1", &SECRET.to_string())
        .await
        .unwrap();
    client
        .signal("echo-1", GO, &SECRET.to_string())
        .await
        .unwrap();
    assert_eq!(
        within(done.result()).await.unwrap(),
        format!("{SECRET} {SECRET} {SECRET}")
    );
    client
        .start(ECHO, "echo-2", &SECRET.to_string())
        .await
        .unwrap();
    let repeated = async || client.describe("echo-2").await.unwrap().head_seq.get() >= 3;
    within(running.until(repeated)).await;

    // Nothing in the database holds the secret, as text or as bytes.
    let stored = whole_schema(&db).await;
    assert!(stored.contains("echo-1"), "the dump reads the runs");
    for needle in [
        SECRET.to_string(),
        hex(SECRET.as_bytes()),
        hex(&SECRET.as_bytes()[..8]),
    ] {
        assert!(
            !stored.contains(&needle),
            "plaintext {needle:?} is in the database"
        );
    }
    drop(running);

    // Rotation: k2 encrypts from now on; k1 still decrypts the runs it wrote.
    let new_keys = encrypting(K2_THEN_K1);
    let client = Client::new(store.clone()).with_converter(new_keys.clone());
    let mut running = Running::new();
    run_engine(&store, echoing(new_keys.clone()), build("k2"), &mut running);
    run_worker(
        &store,
        echoing(new_keys.clone()),
        worker_options(),
        &mut running,
    );
    client
        .signal("echo-2", GO, &"rotated".to_string())
        .await
        .unwrap();
    let waiting = client.handle(ECHO, "echo-2").await.unwrap();
    assert_eq!(
        within(waiting.result()).await.unwrap(),
        format!("{SECRET} {SECRET} rotated")
    );
    let history = client.export(waiting.run_id()).await.unwrap();
    let notes: Vec<String> = history
        .events()
        .iter()
        .flat_map(|e| e.kind.payloads())
        .map(|p| p.format().to_string())
        .collect();
    assert!(
        notes.contains(&"codec aes256gcm (k1)".to_string()),
        "{notes:?}"
    );
    assert!(
        notes.contains(&"codec aes256gcm (k2)".to_string()),
        "{notes:?}"
    );
    drop(running);

    // Tampering: a signal altered in the inbox, before any engine reads it, parks the run.
    let mut running = Running::new();
    run_worker(
        &store,
        echoing(new_keys.clone()),
        worker_options(),
        &mut running,
    );
    let engine_later = echoing(new_keys.clone());
    client
        .start(ECHO, "echo-3", &"x".to_string())
        .await
        .unwrap();
    let mut engine_running = Running::new();
    run_engine(
        &store,
        echoing(new_keys.clone()),
        build("k2"),
        &mut engine_running,
    );
    let repeated = async || client.describe("echo-3").await.unwrap().head_seq.get() >= 3;
    within(engine_running.until(repeated)).await;
    drop(engine_running);
    client
        .signal("echo-3", GO, &"go".to_string())
        .await
        .unwrap();
    let flipped = sqlx::query(
        "UPDATE reprise.inbox SET event = overlay(event PLACING set_byte(substring(event FROM length(event)), 0, get_byte(event, length(event) - 1) # 1) FROM length(event))
          WHERE kind = 'SignalReceived'",
    )
    .execute(&db.pool)
    .await
    .unwrap()
    .rows_affected();
    assert_eq!(flipped, 1);
    run_engine(&store, engine_later, build("k2-again"), &mut running);
    let reason = within(parked_reason(&running, &client, "echo-3")).await;
    assert!(reason.contains(r#"signal "go""#), "{reason}");
    assert!(
        reason.contains(r#"payload codec "aes256gcm" (k2) refused it: authentication failed"#),
        "{reason}"
    );
    db.drop_database().await;
}

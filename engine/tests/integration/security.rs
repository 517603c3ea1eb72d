//! What a stranger can and cannot do: notifications carry no user data, and a forged one
//! changes no caller's result and no run's history.

use std::sync::Arc;
use std::time::Duration;

use reprise_engine::{Client, Store};
use reprise_history::EventKind;
use reprise_sdk::{
    ActivityContext, ActivityDef, Registry, SignalDef, WorkflowContext, WorkflowDef, WorkflowError,
};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::sync::Semaphore;

use crate::hosts::Running;
use crate::support::TestDb;

/// Every channel Reprise notifies on.
const CHANNELS: [&str; 6] = [
    "reprise_runs",
    "reprise_tasks",
    "reprise_closed",
    "reprise_queries",
    "reprise_answers",
    "reprise_schedules",
];

const SECRET_INPUT: &str = "input-e2a61c0ffee";
const SECRET_SIGNAL: &str = "signal-7b5d0ddba11";
const SECRET_RESULT: &str = "result-91aceb00c5e";

const ECHO: ActivityDef<String, String> = ActivityDef::new("echo");
const GO: SignalDef<String> = SignalDef::new("go");
/// Waits for a signal, then runs an activity that waits for the test's permit.
const TOLD: WorkflowDef<String, String> = WorkflowDef::new("told");

async fn told(ctx: WorkflowContext, input: String) -> Result<String, WorkflowError> {
    let said = ctx.signal(GO).await?;
    let echoed = ctx.activity(ECHO, &format!("{input}/{said}")).await?;
    Ok(echoed)
}

fn registry(gate: Arc<Semaphore>) -> Registry {
    Registry::builder()
        .workflow(TOLD, told)
        .activity(ECHO, move |_: ActivityContext, said: String| {
            let gate = gate.clone();
            async move {
                drop(gate.acquire().await);
                Ok(format!("{said}/{SECRET_RESULT}"))
            }
        })
        .build()
        .unwrap()
}

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("within 30 s")
}

/// A role with no rights but to connect (every role has that on a database by default), as a
/// stranger on the same server has; dropped with [`Stranger::drop_role`].
struct Stranger {
    name: String,
    options: PgConnectOptions,
}

impl Stranger {
    async fn create(db: &TestDb) -> Stranger {
        let name = format!("stranger_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE ROLE {name} LOGIN PASSWORD 'stranger'"
        )))
        .execute(&db.pool)
        .await
        .unwrap();
        let options = db.options().username(&name).password("stranger");
        Stranger { name, options }
    }

    async fn drop_role(self, db: &TestDb) {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP ROLE {}", self.name)))
            .execute(&db.pool)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_stranger_listening_hears_no_user_data_and_cannot_forge_a_result() {
    let db = TestDb::migrated().await;
    let stranger = Stranger::create(&db).await;
    let stranger_pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(stranger.options.clone())
        .await
        .unwrap();
    let mut listener = PgListener::connect_with(&stranger_pool).await.unwrap();
    listener.listen_all(CHANNELS).await.unwrap();

    let store = Store::new(db.pool.clone());
    let gate = Arc::new(Semaphore::new(0));
    let running = Running::both(&store, || registry(gate.clone()));
    let client = Client::new(store.clone());
    let handle = client
        .start(TOLD, "told-1", &SECRET_INPUT.to_string())
        .await
        .unwrap();
    let run = handle.run_id();
    client
        .signal("told-1", GO, &SECRET_SIGNAL.to_string())
        .await
        .unwrap();
    within(running.until(async || {
        let described = client.describe("told-1").await.unwrap();
        described
            .pending_activities
            .first()
            .is_some_and(|a| a.running)
    }))
    .await;

    // The stranger forges what a run's waiters, engines and workers hear: a closing event for
    // the run (in the form notifications once had), a start, and an input.
    let forged_completion = hex_of_forged_completion();
    let forged = [
        ("reprise_closed", format!("{run} {forged_completion}")),
        ("reprise_closed", run.to_string()),
        ("reprise_runs", format!("started {run}")),
        ("reprise_runs", format!("input {run} 1")),
        (
            "reprise_runs",
            format!("input {run} 1 1700000000000000 {forged_completion}"),
        ),
        ("reprise_tasks", "default".to_string()),
    ];
    for (channel, payload) in &forged {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel)
            .bind(payload)
            .execute(&stranger_pool)
            .await
            .unwrap();
    }
    let waiting = tokio::spawn(async move { handle.result().await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "a forged notification ended the wait"
    );
    gate.add_permits(1);
    let result = within(waiting).await.unwrap().unwrap();
    assert_eq!(
        result,
        format!("{SECRET_INPUT}/{SECRET_SIGNAL}/{SECRET_RESULT}")
    );
    // The history still verifies, and ends with the one real completion.
    let history = client.export(run).await.unwrap();
    let completions: Vec<_> = history
        .events()
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::WorkflowCompleted(c) => Some(c.result.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(completions.len(), 1);
    assert!(!String::from_utf8_lossy(completions[0].as_bytes()).contains("forged"));

    // Everything the stranger heard: ids and wake-ups, none of the secrets in any form.
    let mut heard = Vec::new();
    while let Ok(Ok(Some(n))) =
        tokio::time::timeout(Duration::from_millis(500), listener.try_recv()).await
    {
        heard.push((n.channel().to_string(), n.payload().to_string()));
    }
    // Less what the stranger sent itself (once each: some read as the real ones do).
    for (channel, payload) in &forged {
        let own = heard.iter().position(|(c, p)| c == channel && p == payload);
        heard.remove(own.expect("the stranger hears its own notifications"));
    }
    assert!(
        heard.iter().any(|(c, _)| c == "reprise_closed"),
        "the stranger heard the run close: {heard:?}"
    );
    for secret in [SECRET_INPUT, SECRET_SIGNAL, SECRET_RESULT] {
        let hex = hex_of(secret.as_bytes());
        for (channel, payload) in &heard {
            assert!(
                !payload.contains(secret) && !payload.contains(&hex),
                "{channel} carried {secret}: {payload}"
            );
        }
    }
    for (channel, payload) in &heard {
        assert!(
            payload.split(' ').all(|word| word.len() <= 40),
            "{channel} carried more than ids: {payload}"
        );
    }
    running.stop().await;
    drop(listener);
    stranger_pool.close().await;
    stranger.drop_role(&db).await;
    db.drop_database().await;
}

/// Lowercase hex.
fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A `WorkflowCompleted` event for `run` whose result says "forged", encoded as stored.
fn hex_of_forged_completion() -> String {
    let limits = reprise_history::Limits::default();
    let event = reprise_history::Event {
        seq: reprise_history::Seq::new(7),
        recorded_at: reprise_history::Timestamp::from_unix_micros(1_700_000_000_000_000),
        kind: EventKind::WorkflowCompleted(reprise_history::WorkflowCompleted {
            result: reprise_history::Payload::encode(&"forged", &limits).unwrap(),
        }),
    };
    hex_of(&event.encode(&limits).unwrap())
}

/// A chain key for the tests.
fn chain_key() -> reprise_history::ChainKey {
    reprise_history::ChainKey::from_bytes([7; 32])
}

/// As a superuser past the history's guard (`session_replication_role = replica` skips
/// triggers): replaces event `at`'s bytes with `forged` and, when `rehash` (a forger who does
/// not hold the key), recomputes every hash from it on, plain, and the run's head.
async fn forge(db: &TestDb, run: reprise_history::RunId, at: i64, forged: Vec<u8>, rehash: bool) {
    let mut tx = db.pool.begin().await.unwrap();
    sqlx::query("SET LOCAL session_replication_role = replica")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("UPDATE reprise.history SET event = $3 WHERE run_id = $1 AND seq = $2")
        .bind(run.as_uuid())
        .bind(at)
        .bind(&forged)
        .execute(&mut *tx)
        .await
        .unwrap();
    if rehash {
        let rows: Vec<(i64, Vec<u8>, Vec<u8>)> = sqlx::query_as(
            "SELECT seq, event, hash FROM reprise.history WHERE run_id = $1 ORDER BY seq",
        )
        .bind(run.as_uuid())
        .fetch_all(&mut *tx)
        .await
        .unwrap();
        let mut hash = reprise_history::ChainHash::GENESIS;
        for (seq, event, stored) in rows {
            hash = if seq < at {
                reprise_history::ChainHash::from_slice(&stored).unwrap()
            } else {
                hash.next(&event)
            };
            sqlx::query("UPDATE reprise.history SET hash = $3 WHERE run_id = $1 AND seq = $2")
                .bind(run.as_uuid())
                .bind(seq)
                .bind(hash.as_bytes().to_vec())
                .execute(&mut *tx)
                .await
                .unwrap();
            sqlx::query("UPDATE reprise.runs SET head_hash = $2 WHERE run_id = $1")
                .bind(run.as_uuid())
                .bind(hash.as_bytes().to_vec())
                .execute(&mut *tx)
                .await
                .unwrap();
        }
    }
    tx.commit().await.unwrap();
}

/// Event `at` of `run` as stored, with its recorded time a microsecond later: the same kind
/// of event, other bytes.
async fn altered(db: &TestDb, run: reprise_history::RunId, at: i64) -> Vec<u8> {
    let bytes: Vec<u8> =
        sqlx::query_scalar("SELECT event FROM reprise.history WHERE run_id = $1 AND seq = $2")
            .bind(run.as_uuid())
            .bind(at)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    let limits = reprise_history::Limits::default();
    let mut event = reprise_history::Event::decode(&bytes, &limits).unwrap();
    event.recorded_at =
        reprise_history::Timestamp::from_unix_micros(event.recorded_at.as_unix_micros() + 1);
    event.encode(&limits).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_keyed_history_rewritten_without_the_key_is_refused_by_the_engine_and_named_by_verify() {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone()).with_chain_key(chain_key());
    let gate = Arc::new(Semaphore::new(0));
    let running = Running::both(&store, || registry(gate.clone()));
    let client = Client::new(store.clone());
    // Three runs signalled and waiting for their activity (which waits for the test's permit),
    // their orchestrators in the engine's cache: started (1), signal received (2), activity
    // scheduled (3).
    let forged = client
        .start(TOLD, "forged", &"a".to_string())
        .await
        .unwrap();
    let edited = client
        .start(TOLD, "edited", &"b".to_string())
        .await
        .unwrap();
    client
        .start(TOLD, "appended", &"c".to_string())
        .await
        .unwrap();
    for id in ["forged", "edited", "appended"] {
        client.signal(id, GO, &"go".to_string()).await.unwrap();
    }
    within(running.until(async || {
        let heads: Vec<i64> = sqlx::query_scalar("SELECT head_seq FROM reprise.runs")
            .fetch_all(&db.pool)
            .await
            .unwrap();
        heads.len() == 3 && heads.iter().all(|h| *h == 3)
    }))
    .await;
    // A client without the key may not append to a keyed run: its plain link would read as
    // a forgery.
    let keyless = Client::new(Store::new(db.pool.clone()));
    let refused = keyless.terminate("edited", "no key").await;
    assert!(
        matches!(&refused, Err(reprise_engine::Error::InvalidConfig(m)) if m.contains("REPRISE_CHAIN_KEY")),
        "{refused:?}"
    );
    // Keyed from the first event: `verify` says so.
    let clean = client.verify("forged").await.unwrap();
    assert_eq!(
        clean[0].verdict,
        reprise_engine::ChainVerdict::Keyed {
            from: reprise_history::Seq::new(1)
        }
    );

    // A forger without the key rewrites event 2 of one run and its chain, plainly, and the
    // run's head; a superuser edits event 2 of the other and nothing else.
    let head_before: i64 =
        sqlx::query_scalar("SELECT head_seq FROM reprise.runs WHERE run_id = $1")
            .bind(forged.run_id().as_uuid())
            .fetch_one(&db.pool)
            .await
            .unwrap();
    forge(
        &db,
        forged.run_id(),
        2,
        altered(&db, forged.run_id(), 2).await,
        true,
    )
    .await;
    forge(
        &db,
        edited.run_id(),
        2,
        altered(&db, edited.run_id(), 2).await,
        false,
    )
    .await;

    // `verify` names the first bad seq of each.
    for (id, expected) in [("forged", "without the chain key"), ("edited", "neither")] {
        let verdict = &client.verify(id).await.unwrap()[0].verdict;
        match verdict {
            reprise_engine::ChainVerdict::Broken { seq, reason } => {
                assert_eq!(*seq, reprise_history::Seq::new(2), "{id}: {reason}");
                assert!(reason.contains(expected), "{id}: {reason}");
            }
            other => panic!("{id}: {other:?}"),
        }
    }

    // A reset of a keyed run is keyed from its first event, and its head is its chain's.
    client.terminate("appended", "to be reset").await.unwrap();
    let reset = client.reset("appended", 3).await.unwrap();
    let verified = client.verify("appended").await.unwrap();
    assert_eq!(verified.len(), 2);
    assert!(
        verified.iter().all(|v| v.verdict
            == reprise_engine::ChainVerdict::Keyed {
                from: reprise_history::Seq::new(1)
            }),
        "{verified:?}"
    );
    assert_eq!(verified[1].run_id, reset);
    let appended = client.handle(TOLD, "appended").await.unwrap();

    // A role that may insert history rows (no trigger bypassed) closes a run with a result
    // of its own, plainly chained: the caller awaiting it is told, not given the result.
    let (head_seq, head): (i64, Vec<u8>) =
        sqlx::query_as("SELECT head_seq, head_hash FROM reprise.runs WHERE run_id = $1")
            .bind(appended.run_id().as_uuid())
            .fetch_one(&db.pool)
            .await
            .unwrap();
    let limits = reprise_history::Limits::default();
    let closing = reprise_history::Event {
        seq: reprise_history::Seq::new(head_seq as u64 + 1),
        recorded_at: reprise_history::Timestamp::from_unix_micros(1_700_000_000_000_000),
        kind: EventKind::WorkflowCompleted(reprise_history::WorkflowCompleted {
            result: reprise_history::Payload::encode(&"forged", &limits).unwrap(),
        }),
    }
    .encode(&limits)
    .unwrap();
    let plain = reprise_history::ChainHash::from_slice(&head)
        .unwrap()
        .next(&closing);
    sqlx::query(
        "INSERT INTO reprise.history (run_id, seq, recorded_at, kind, event, hash)
         VALUES ($1, $2, now(), 'WorkflowCompleted', $3, $4)",
    )
    .bind(appended.run_id().as_uuid())
    .bind(head_seq + 1)
    .bind(&closing)
    .bind(plain.as_bytes().to_vec())
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE reprise.runs SET head_seq = $2, head_hash = $3, status = 'completed',
                closed_at = now() WHERE run_id = $1",
    )
    .bind(appended.run_id().as_uuid())
    .bind(head_seq + 1)
    .bind(plain.as_bytes().to_vec())
    .execute(&db.pool)
    .await
    .unwrap();
    let told = within(appended.result()).await;
    assert!(
        matches!(
            told,
            Err(reprise_engine::Error::History(
                reprise_history::Error::ChainNotKeyed { .. }
            ))
        ),
        "{told:?}"
    );

    // The engine, given an input for the forged run (a signal: a batch takes it, with the
    // orchestrator in its cache), finds the stored head is not the one it left, reads the
    // history again, and parks the run instead of appending to it.
    client
        .signal("forged", GO, &"again".to_string())
        .await
        .unwrap();
    let reason = within(async {
        loop {
            if let Some(reason) = client.describe("forged").await.unwrap().parked_reason {
                break reason;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(reason.contains("seq 2"), "{reason}");
    let head_after: i64 = sqlx::query_scalar("SELECT head_seq FROM reprise.runs WHERE run_id = $1")
        .bind(forged.run_id().as_uuid())
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        head_after, head_before,
        "nothing was appended to the forged run"
    );
    running.stop().await;
    db.drop_database().await;
}

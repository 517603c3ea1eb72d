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

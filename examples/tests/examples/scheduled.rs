//! A schedule fired by two engine processes while one of them is SIGKILLed again and again:
//! a minutely schedule over a simulated day starts exactly 1,440 workflows, none missed, none
//! twice.
//!
//! Time is the test's: it replaces `reprise.db_now` in its own database with one that adds
//! an offset kept in a table, so that moving the clock moves it for every process at once.

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reprise_engine::history::{ScheduleId, Timestamp};
use reprise_engine::schedule::workflow_id_for;
use reprise_engine::{Client, OverlapPolicy, Schedule, ScheduleSpec, StartOptions, Store};
use reprise_examples::workflows::REPORT;
use sqlx::postgres::PgListener;

use crate::support::TestDb;

/// An engine process, killed when dropped.
struct Engine(Child);

impl Engine {
    fn spawn(db: &TestDb) -> Engine {
        let child = Command::new(env!("CARGO_BIN_EXE_reprise-example"))
            .arg("engine")
            .env("DATABASE_URL", &db.url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn reprise-example engine");
        Engine(child)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Database time plus the test's offset, for every process on this database.
async fn install_test_clock(db: &TestDb) {
    sqlx::raw_sql(
        "CREATE TABLE public.test_clock (shift_micros bigint NOT NULL);
         INSERT INTO public.test_clock VALUES (0);
         -- The engines run under `reprise_engine`, which reads database time through it.
         GRANT SELECT ON public.test_clock TO PUBLIC;
         CREATE OR REPLACE FUNCTION reprise.db_now(offset_micros bigint) RETURNS timestamptz
             LANGUAGE sql STABLE PARALLEL SAFE
             AS $$ SELECT now() + (offset_micros + (SELECT shift_micros FROM public.test_clock))
                                  * interval '1 microsecond' $$;
         CREATE FUNCTION public.test_started() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN PERFORM pg_notify('test_started', ''); RETURN NULL; END $$;
         CREATE TRIGGER test_runs_started AFTER INSERT ON reprise.runs
             FOR EACH STATEMENT EXECUTE FUNCTION public.test_started();",
    )
    .execute(&db.pool)
    .await
    .unwrap();
}

async fn advance(db: &TestDb, by: Duration) {
    sqlx::query("UPDATE public.test_clock SET shift_micros = shift_micros + $1")
        .bind(i64::try_from(by.as_micros()).unwrap())
        .execute(&db.pool)
        .await
        .unwrap();
    // The engines' scheduler loops wake on it and look at the time again.
    sqlx::query("SELECT pg_notify('reprise_schedules', '')")
        .execute(&db.pool)
        .await
        .unwrap();
}

async fn scheduled_ids(db: &TestDb) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT workflow_id FROM reprise.runs WHERE workflow_id LIKE 'minutely-%' ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minutely_schedule_fires_1440_times_in_a_day_while_an_engine_is_killed() {
    let db = TestDb::migrated().await;
    install_test_clock(&db).await;
    let mut started = PgListener::connect(&db.url).await.unwrap();
    started.listen("test_started").await.unwrap();
    let client = Client::new(Store::new(db.pool.clone()));

    // The day: the 1,440 minutes from the next whole minute on.
    let now: sqlx::types::chrono::DateTime<sqlx::types::chrono::Utc> =
        sqlx::query_scalar("SELECT reprise.db_now(0)")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    let first_minute = (now.timestamp() / 60 + 1) * 60;
    let first = Timestamp::from_unix_micros(first_minute * 1_000_000);
    let last = Timestamp::from_unix_micros((first_minute + 1_439 * 60) * 1_000_000);
    let mut spec = ScheduleSpec::cron("* * * * *").unwrap();
    spec.start_at = Some(first);
    spec.end_at = Some(last);
    let action = client
        .schedule_action(REPORT, &"minutely".to_string(), &StartOptions::default())
        .unwrap();
    let schedule = Schedule::new(spec.clone(), action).overlap(OverlapPolicy::AllowAll);
    client.create_schedule("minutely", &schedule).await.unwrap();

    let steady = Engine::spawn(&db);
    let mut victim = Some(Engine::spawn(&db));
    for hour in 1..=24usize {
        advance(&db, Duration::from_secs(3_600)).await;
        // Kill the second engine as it fires (the firing's transaction rolls back, the other
        // engine fires it), then bring it back for the next hour.
        if hour % 2 == 1 {
            tokio::time::sleep(Duration::from_millis((hour as u64 * 7) % 40)).await;
            drop(victim.take());
            victim = Some(Engine::spawn(&db));
        }
        let waited = tokio::time::timeout(Duration::from_secs(60), async {
            while scheduled_ids(&db).await.len() < hour * 60 {
                started.recv().await.unwrap();
            }
        })
        .await;
        if waited.is_err() {
            panic!("hour {hour}: {} started", scheduled_ids(&db).await.len());
        }
    }
    let ids = scheduled_ids(&db).await;
    let schedule_id = ScheduleId::new("minutely").unwrap();
    let expected: BTreeSet<String> = spec
        .upcoming(
            Timestamp::from_unix_micros(first.as_unix_micros() - 1),
            2_000,
        )
        .into_iter()
        .map(|t| workflow_id_for(&schedule_id, t).unwrap().to_string())
        .collect();
    assert_eq!(expected.len(), 1_440);
    assert_eq!(ids.len(), 1_440, "a firing started twice or one is missing");
    assert_eq!(ids.into_iter().collect::<BTreeSet<_>>(), expected);
    let d = client.describe_schedule("minutely").await.unwrap();
    assert_eq!((d.counts.started, d.counts.missed), (1_440, 0));
    assert!(d.upcoming.is_empty(), "the day is over: {:?}", d.upcoming);
    drop((steady, victim));
    db.drop_database().await;
}

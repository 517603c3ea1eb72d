//! Schedules on PostgreSQL, time moved by the test clock: a day of minutely firings fires
//! exactly once each with two engines; each overlap policy; pause and resume, trigger and
//! backfill; a daylight-saving transition in a named zone; bad input refused with nothing
//! stored.

use std::time::Duration;

use reprise_engine::history::{EventKind, RunOrigin, RunState, Timestamp};
use reprise_engine::schedule::{CronField, FiringOrigin, SpecError};
use reprise_engine::{
    Client, Error, OverlapPolicy, Schedule, ScheduleSpec, StartOptions, Store, TriggerOutcome,
};
use reprise_sdk::{Registry, SignalDef, WorkflowContext, WorkflowDef, WorkflowError};

use crate::engine::within;
use crate::hosts::{Running, engine_options, run_engine};
use crate::support::TestDb;

/// Returns its input at once.
const QUICK: WorkflowDef<u32, u32> = WorkflowDef::new("quick");
/// Stays open until released (or cancelled).
const HOLD: WorkflowDef<u32, u32> = WorkflowDef::new("hold");
const RELEASE: SignalDef<()> = SignalDef::new("release");

async fn hold(ctx: WorkflowContext, n: u32) -> Result<u32, WorkflowError> {
    ctx.signal(RELEASE).await?;
    Ok(n)
}

fn registry() -> Registry {
    Registry::builder()
        .workflow(QUICK, |_: WorkflowContext, n: u32| async move {
            Ok::<_, WorkflowError>(n)
        })
        .workflow(HOLD, hold)
        .build()
        .unwrap()
}

struct Setup {
    _db: TestDb,
    store: Store,
    client: Client,
    running: Running,
}

async fn setup(engines: usize) -> Setup {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let mut running = Running::new();
    for _ in 0..engines {
        run_engine(&store, registry(), engine_options(), &mut running);
    }
    let client = Client::new(store.clone());
    Setup {
        _db: db,
        store,
        client,
        running,
    }
}

fn every_minute(client: &Client, def: WorkflowDef<u32, u32>) -> Schedule {
    let action = client
        .schedule_action(def, &7, &StartOptions::default())
        .unwrap();
    Schedule::new(ScheduleSpec::cron("* * * * *").unwrap(), action)
}

impl Setup {
    /// Moves time on by `minutes` whole minutes.
    fn advance_minutes(&self, minutes: u64) {
        self.store
            .clock()
            .advance(Duration::from_secs(60 * minutes));
    }

    /// Waits until the schedule has started `n` workflows.
    async fn started(&self, schedule_id: &str, n: u64) {
        let client = &self.client;
        within(self.running.until(async || {
            client
                .describe_schedule(schedule_id)
                .await
                .unwrap()
                .counts
                .started
                >= n
        }))
        .await;
    }

    /// Waits until the schedule's counts are (started, skipped) and `buffered` wait.
    async fn counts(&self, schedule_id: &str, started: u64, skipped: u64, buffered: usize) {
        let client = &self.client;
        within(self.running.until(async || {
            let d = client.describe_schedule(schedule_id).await.unwrap();
            (d.counts.started, d.counts.skipped, d.buffered) == (started, skipped, buffered)
        }))
        .await;
    }

    /// The workflow ids the schedule started, oldest first, and each one's latest status.
    async fn runs(&self, schedule_id: &str) -> Vec<(String, RunState)> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT workflow_id, status FROM reprise.runs
              WHERE workflow_id LIKE $1 || '-%' ORDER BY workflow_id, created_at",
        )
        .bind(schedule_id)
        .fetch_all(self.store.pool())
        .await
        .unwrap();
        rows.into_iter()
            .map(|(id, status)| (id, status.parse().unwrap()))
            .collect()
    }

    async fn release(&self, workflow_id: &str) {
        self.client.signal(workflow_id, RELEASE, &()).await.unwrap();
        let client = &self.client;
        within(self.running.until(async || {
            client.describe(workflow_id).await.unwrap().status != RunState::Running
        }))
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_day_of_minutely_firings_starts_exactly_1440_workflows_with_two_engines() {
    let s = setup(2).await;
    let mut schedule = every_minute(&s.client, QUICK).overlap(OverlapPolicy::AllowAll);
    // Exactly one day of minutes, from mid-minute to mid-minute: real time passes too while
    // the test runs, and an open-ended schedule would fire once more if it crossed a minute.
    let now: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(s.store.pool())
        .await
        .unwrap();
    let minute = now.timestamp_micros().div_euclid(60_000_000) * 60_000_000;
    let start = Timestamp::from_unix_micros(minute + 90_000_000);
    schedule.spec.start_at = Some(start);
    schedule.spec.end_at = Some(start.saturating_add(Duration::from_secs(86_400)));
    s.client.create_schedule("daily", &schedule).await.unwrap();
    // An hour at a time: the catch-up window (a day) covers each jump, and both engines race
    // for every tick. The first minute starts 1.5 to 2.5 minutes from now.
    for hour in 1..=24 {
        s.advance_minutes(60);
        s.started("daily", hour * 60 - 3).await;
    }
    s.advance_minutes(3);
    s.started("daily", 1_440).await;
    let runs = s.runs("daily").await;
    assert_eq!(runs.len(), 1_440);
    let mut ids: Vec<&str> = runs.iter().map(|(id, _)| id.as_str()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 1_440, "a firing started twice");
    let d = s.client.describe_schedule("daily").await.unwrap();
    assert_eq!(
        (d.counts.started, d.counts.skipped, d.counts.missed),
        (1_440, 0, 0)
    );
    assert_eq!(d.recent.len(), 10);
    // The run knows which schedule and time started it.
    let newest = &d.recent[0];
    let history = s.client.export(newest.run_id).await.unwrap();
    let EventKind::WorkflowStarted(started) = &history.events()[0].kind else {
        panic!("not a start");
    };
    assert_eq!(
        started.origin,
        RunOrigin::Scheduled {
            schedule_id: "daily".try_into().unwrap(),
            scheduled_at: newest.firing.scheduled_at,
        }
    );
    s.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn skip_starts_nothing_while_the_last_run_is_open() {
    let s = setup(1).await;
    let schedule = every_minute(&s.client, HOLD).overlap(OverlapPolicy::Skip);
    s.client.create_schedule("skip", &schedule).await.unwrap();
    s.advance_minutes(1);
    s.started("skip", 1).await;
    s.advance_minutes(1);
    s.counts("skip", 1, 1, 0).await;
    let first = s.runs("skip").await[0].0.clone();
    s.release(&first).await;
    s.advance_minutes(1);
    s.counts("skip", 2, 1, 0).await;
    assert_eq!(s.runs("skip").await.len(), 2);
    s.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn buffer_one_keeps_one_firing_and_starts_it_when_the_run_closes() {
    let s = setup(1).await;
    let schedule = every_minute(&s.client, HOLD).overlap(OverlapPolicy::BufferOne);
    s.client.create_schedule("one", &schedule).await.unwrap();
    s.advance_minutes(1);
    s.started("one", 1).await;
    s.advance_minutes(1);
    s.counts("one", 1, 0, 1).await;
    s.advance_minutes(1);
    s.counts("one", 1, 1, 1).await;
    let runs = s.runs("one").await;
    s.release(&runs[0].0).await;
    // The buffered firing (the second minute's) starts once the first run closed.
    s.counts("one", 2, 1, 0).await;
    let runs = s.runs("one").await;
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[1].1, RunState::Running);
    let d = s.client.describe_schedule("one").await.unwrap();
    assert_eq!(d.recent[0].workflow_id.as_str(), runs[1].0);
    assert!(runs[0].0 < runs[1].0);
    s.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn buffer_all_starts_every_firing_one_after_another() {
    let s = setup(1).await;
    let schedule = every_minute(&s.client, HOLD).overlap(OverlapPolicy::BufferAll);
    s.client.create_schedule("all", &schedule).await.unwrap();
    s.advance_minutes(1);
    s.started("all", 1).await;
    s.advance_minutes(2);
    s.counts("all", 1, 0, 2).await;
    for started in 2..=3 {
        let runs = s.runs("all").await;
        let open = &runs.last().unwrap().0;
        s.release(open).await;
        s.counts("all", started, 0, 3 - started as usize).await;
    }
    assert_eq!(s.runs("all").await.len(), 3);
    s.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancel_other_cancels_the_open_run_then_starts() {
    let s = setup(1).await;
    let schedule = every_minute(&s.client, HOLD).overlap(OverlapPolicy::CancelOther);
    s.client.create_schedule("cancel", &schedule).await.unwrap();
    s.advance_minutes(1);
    s.started("cancel", 1).await;
    s.advance_minutes(1);
    // The open run takes the cancel request and closes cancelled; the waiting firing starts.
    s.started("cancel", 2).await;
    let runs = s.runs("cancel").await;
    assert_eq!(runs[0].1, RunState::Cancelled);
    assert_eq!(runs[1].1, RunState::Running);
    s.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn terminate_other_terminates_the_open_run_and_starts_at_once() {
    let s = setup(1).await;
    let schedule = every_minute(&s.client, HOLD).overlap(OverlapPolicy::TerminateOther);
    s.client.create_schedule("term", &schedule).await.unwrap();
    s.advance_minutes(1);
    s.started("term", 1).await;
    s.advance_minutes(1);
    s.started("term", 2).await;
    let runs = s.runs("term").await;
    assert_eq!(runs[0].1, RunState::Terminated);
    assert_eq!(runs[1].1, RunState::Running);
    s.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn allow_all_lets_runs_overlap() {
    let s = setup(1).await;
    let schedule = every_minute(&s.client, HOLD).overlap(OverlapPolicy::AllowAll);
    s.client
        .create_schedule("overlap", &schedule)
        .await
        .unwrap();
    s.advance_minutes(1);
    s.started("overlap", 1).await;
    s.advance_minutes(1);
    s.started("overlap", 2).await;
    let runs = s.runs("overlap").await;
    assert!(runs.iter().all(|(_, status)| *status == RunState::Running));
    s.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_schedule_fires_nothing_and_resumes_from_now() {
    let s = setup(1).await;
    let schedule = every_minute(&s.client, QUICK);
    s.client.create_schedule("nap", &schedule).await.unwrap();
    s.client
        .pause_schedule("nap", "maintenance window")
        .await
        .unwrap();
    let d = s.client.describe_schedule("nap").await.unwrap();
    assert!(d.paused);
    assert_eq!(d.note.as_deref(), Some("maintenance window"));
    assert!(d.upcoming.is_empty());
    s.advance_minutes(5);
    // A trigger fires while paused (and proves the engine looked at the schedule).
    let TriggerOutcome::Started { workflow_id, .. } =
        s.client.trigger_schedule("nap").await.unwrap()
    else {
        panic!("the trigger did not start a workflow");
    };
    assert!(workflow_id.as_str().starts_with("nap-"));
    s.client.resume_schedule("nap", "done").await.unwrap();
    let d = s.client.describe_schedule("nap").await.unwrap();
    assert_eq!(d.upcoming.len(), 10);
    // The five minutes paused are not caught up: only the trigger has started.
    assert_eq!(d.counts.started, 1);
    // The triggered run closes first: the overlap policy (skip) would pass over the next
    // firing while it is open.
    within(s.running.until(async || {
        s.runs("nap")
            .await
            .iter()
            .all(|(_, status)| *status == RunState::Completed)
    }))
    .await;
    s.advance_minutes(1);
    s.started("nap", 2).await;
    let d = s.client.describe_schedule("nap").await.unwrap();
    assert_eq!(d.counts.started, 2);
    assert_eq!(d.counts.missed, 0);
    s.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_trigger_follows_the_overlap_policy() {
    let s = setup(1).await;
    // A schedule that does not fire by itself while the test runs (every minute did, now and
    // then, as a minute turned between the two triggers, and filled the buffer first).
    let action = s
        .client
        .schedule_action(HOLD, &7, &StartOptions::default())
        .unwrap();
    let schedule = Schedule::new(ScheduleSpec::cron("0 0 1 1 *").unwrap(), action)
        .overlap(OverlapPolicy::BufferOne);
    s.client.create_schedule("poke", &schedule).await.unwrap();
    let first = s.client.trigger_schedule("poke").await.unwrap();
    let TriggerOutcome::Started {
        workflow_id,
        run_id,
    } = first
    else {
        panic!("{first:?}");
    };
    assert_eq!(
        s.client
            .describe(workflow_id.as_str())
            .await
            .unwrap()
            .run_id,
        run_id
    );
    assert_eq!(
        s.client.trigger_schedule("poke").await.unwrap(),
        TriggerOutcome::Buffered
    );
    s.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backfill_fires_past_times_once() {
    let s = setup(1).await;
    let schedule = every_minute(&s.client, QUICK);
    s.client.create_schedule("past", &schedule).await.unwrap();
    let created = s.client.describe_schedule("past").await.unwrap().created_at;
    // Half past a minute an hour ago: the next 4:59 hold exactly five minute marks, wherever
    // in its minute the schedule was created (from a minute's first second they held four).
    let minute = 60_000_000;
    let an_hour_before = created.as_unix_micros() - 3_600_000_000;
    let hour_ago = Timestamp::from_unix_micros(
        an_hour_before - an_hour_before.rem_euclid(minute) + minute / 2,
    );
    let five_later = hour_ago.saturating_add(Duration::from_secs(5 * 60 - 1));
    let report = s
        .client
        .backfill_schedule("past", hour_ago, five_later, Some(OverlapPolicy::AllowAll))
        .await
        .unwrap();
    assert_eq!((report.times, report.started), (5, 5));
    let again = s
        .client
        .backfill_schedule("past", hour_ago, five_later, Some(OverlapPolicy::AllowAll))
        .await
        .unwrap();
    assert_eq!((again.started, again.already_started), (0, 5));
    assert_eq!(s.runs("past").await.len(), 5);
    let d = s.client.describe_schedule("past").await.unwrap();
    assert!(
        d.recent
            .iter()
            .all(|a| a.firing.origin == FiringOrigin::Backfill)
    );
    assert!(matches!(
        s.client
            .backfill_schedule("past", five_later, hour_ago, None)
            .await,
        Err(Error::InvalidArgument(_))
    ));
    s.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn spring_forward_in_new_york_fires_a_fixed_time_after_the_gap() {
    let s = setup(1).await;
    // Move the clock to 2027-03-13 12:00 UTC, the day before New York skips 02:00-03:00.
    let now: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(s.store.pool())
        .await
        .unwrap();
    let target = Timestamp::parse_rfc3339("2027-03-13T12:00:00Z").unwrap();
    let ahead = target.as_unix_micros() - now.timestamp_micros();
    s.store
        .clock()
        .advance(Duration::from_micros(u64::try_from(ahead).unwrap()));
    let action = s
        .client
        .schedule_action(QUICK, &1, &StartOptions::default())
        .unwrap();
    let spec = ScheduleSpec::cron("30 2 * * *")
        .unwrap()
        .in_time_zone("America/New_York")
        .unwrap();
    s.client
        .create_schedule("dst", &Schedule::new(spec, action))
        .await
        .unwrap();
    let upcoming = s.client.describe_schedule("dst").await.unwrap().upcoming;
    assert_eq!(
        upcoming[..2]
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["2027-03-14T07:00:00.000000Z", "2027-03-15T06:30:00.000000Z"]
    );
    s.advance_minutes(24 * 60);
    s.started("dst", 1).await;
    let runs = s.runs("dst").await;
    assert_eq!(runs[0].0, "dst-2027-03-14T07:00:00Z");
    s.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_schedules_are_refused_with_nothing_stored() {
    let s = setup(1).await;
    let err = ScheduleSpec::cron("0 25 * * *").unwrap_err();
    let SpecError::Cron { field, column, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!((*field, *column), (Some(CronField::Hour), 2));
    assert!(err.to_string().contains("column 2 (hour field)"), "{err}");
    assert!(matches!(
        ScheduleSpec::cron("* * * * *")
            .unwrap()
            .in_time_zone("Europe/Atlantis"),
        Err(SpecError::TimeZone { .. })
    ));
    let mut backwards = every_minute(&s.client, QUICK);
    backwards.spec.start_at = Some(Timestamp::parse_rfc3339("2027-01-02T00:00:00Z").unwrap());
    backwards.spec.end_at = Some(Timestamp::parse_rfc3339("2027-01-01T00:00:00Z").unwrap());
    assert!(matches!(
        s.client.create_schedule("backwards", &backwards).await,
        Err(Error::InvalidSchedule(SpecError::Range(_)))
    ));
    assert!(matches!(
        s.client.describe_schedule("backwards").await,
        Err(Error::UnknownSchedule { .. })
    ));
    let schedule = every_minute(&s.client, QUICK);
    s.client.create_schedule("taken", &schedule).await.unwrap();
    assert!(matches!(
        s.client.create_schedule("taken", &schedule).await,
        Err(Error::ScheduleExists { .. })
    ));
    assert!(matches!(
        s.client.trigger_schedule("nobody").await,
        Err(Error::UnknownSchedule { .. })
    ));
    s.client.delete_schedule("taken").await.unwrap();
    assert!(matches!(
        s.client.delete_schedule("taken").await,
        Err(Error::UnknownSchedule { .. })
    ));
    assert!(s.client.list_schedules(None, 10).await.unwrap().is_empty());
    // Start options an action cannot keep are refused by name, not dropped; so are
    // deadlines a start would refuse.
    let delayed = StartOptions {
        start_delay: Duration::from_secs(5),
        ..StartOptions::default()
    };
    let err = s.client.schedule_action(QUICK, &1, &delayed).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(m) if m.contains("start_delay")),
        "{err:?}"
    );
    let zero = StartOptions {
        run_timeout: Some(Duration::ZERO),
        ..StartOptions::default()
    };
    assert!(matches!(
        s.client.schedule_action(QUICK, &1, &zero),
        Err(Error::InvalidArgument(_))
    ));
    s.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_scheduled_workflow_gets_the_actions_deadlines() {
    let s = setup(1).await;
    let options = StartOptions {
        run_timeout: Some(Duration::from_secs(30)),
        ..StartOptions::default()
    };
    let action = s.client.schedule_action(HOLD, &3, &options).unwrap();
    let schedule = Schedule::new(ScheduleSpec::cron("* * * * *").unwrap(), action);
    s.client
        .create_schedule("bounded", &schedule)
        .await
        .unwrap();
    let stored = s.client.describe_schedule("bounded").await.unwrap();
    assert_eq!(stored.run_timeout, Some(Duration::from_secs(30)));
    s.advance_minutes(1);
    s.started("bounded", 1).await;
    let (workflow_id, _) = s.runs("bounded").await.remove(0);
    let described = s.client.describe(&workflow_id).await.unwrap();
    let deadline = described.deadline.expect("the action's run timeout");
    assert_eq!(
        deadline.as_unix_micros() - described.started_at.as_unix_micros(),
        30_000_000
    );
    s.store.clock().advance(Duration::from_secs(31));
    within(s.running.until(async || {
        s.client.describe(&workflow_id).await.unwrap().status == RunState::TimedOut
    }))
    .await;
    s.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delayed_start_exists_at_once_takes_signals_and_steps_at_its_time() {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let mut running = Running::new();
    let engine = run_engine(&store, registry(), engine_options(), &mut running);
    let client = Client::new(store.clone());
    let before: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(store.pool())
        .await
        .unwrap();
    let options = StartOptions {
        start_delay: Duration::from_secs(3_600),
        ..StartOptions::default()
    };
    let handle = client
        .start_with_options(HOLD, "later", &5, options)
        .await
        .unwrap();
    client.signal("later", RELEASE, &()).await.unwrap();
    let d = client.describe("later").await.unwrap();
    assert_eq!((d.status, d.head_seq.get()), (RunState::Running, 1));
    // Not due: a batch claims nothing, however the signal woke the engines.
    store.clock().advance(Duration::from_secs(3_540));
    assert_eq!(engine.run_once().await.unwrap(), 0);
    assert_eq!(client.describe("later").await.unwrap().head_seq.get(), 1);
    store.clock().advance(Duration::from_secs(120));
    assert_eq!(within(handle.result()).await.unwrap(), 5);
    // The first step took the signal that waited for it.
    let history = client.export(handle.run_id()).await.unwrap();
    let kinds: Vec<&str> = history.events().iter().map(|e| e.kind.name()).collect();
    assert_eq!(
        kinds,
        ["WorkflowStarted", "SignalReceived", "WorkflowCompleted"]
    );
    // Its code saw its start at the delayed time: the start is recorded then, and the first
    // step after it.
    let started = history.events()[0].recorded_at.as_unix_micros();
    let delay = started - before.timestamp_micros();
    assert!(
        (3_600_000_000..3_601_000_000).contains(&delay),
        "{delay} µs"
    );
    assert!(history.events()[1].recorded_at.as_unix_micros() >= started);

    // A start time already past starts at once; a cancel before the start is taken by the
    // first step.
    let past = StartOptions {
        start_at: Some(Timestamp::from_unix_micros(0)),
        ..StartOptions::default()
    };
    let now = client
        .start_with_options(QUICK, "at-once", &1, past)
        .await
        .unwrap();
    assert_eq!(within(now.result()).await.unwrap(), 1);
    let options = StartOptions {
        start_delay: Duration::from_secs(600),
        ..StartOptions::default()
    };
    let doomed = client
        .start_with_options(HOLD, "doomed", &1, options)
        .await
        .unwrap();
    client.cancel("doomed", "not needed").await.unwrap();
    store.clock().advance(Duration::from_secs(601));
    assert!(within(doomed.result()).await.is_err());
    assert_eq!(
        client.describe("doomed").await.unwrap().status,
        RunState::Cancelled
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_schedule_that_cannot_fire_is_paused_with_the_reason_and_the_others_fire() {
    let s = setup(1).await;
    // Every firing starts a run: with the default overlap policy (skip), a real minute turning
    // just after a firing could skip the next while its run was still open, and leave the
    // count short.
    let schedule = every_minute(&s.client, QUICK).overlap(OverlapPolicy::AllowAll);
    s.client.create_schedule("broken", &schedule).await.unwrap();
    s.client.create_schedule("fine", &schedule).await.unwrap();
    // A spec no build can read (written by hand, or by a newer build's format).
    sqlx::query(
        "UPDATE reprise.schedules SET spec = '{\"crons\": [\"61 * * * *\"]}' WHERE schedule_id = 'broken'",
    )
    .execute(s.store.pool())
    .await
    .unwrap();
    s.advance_minutes(1);
    s.started("fine", 1).await;
    let client = &s.client;
    within(s.running.until(async || {
        sqlx::query_scalar::<_, bool>(
            "SELECT paused FROM reprise.schedules WHERE schedule_id = 'broken'",
        )
        .fetch_one(s.store.pool())
        .await
        .unwrap()
    }))
    .await;
    let note: String =
        sqlx::query_scalar("SELECT note FROM reprise.schedules WHERE schedule_id = 'broken'")
            .fetch_one(s.store.pool())
            .await
            .unwrap();
    assert!(note.starts_with("paused by the engine"), "{note}");
    assert!(note.contains("spec"), "{note}");
    assert!(matches!(
        client.describe_schedule("broken").await,
        Err(Error::Corrupt { .. })
    ));
    s.advance_minutes(1);
    s.started("fine", 2).await;
    s.running.stop().await;
}

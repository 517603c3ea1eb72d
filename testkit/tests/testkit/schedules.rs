//! Schedules in `TestEnv`, in virtual time: a day of minutely firings, an overlap policy with
//! runs that outlast the interval, pause and resume, trigger and backfill, a daylight-saving
//! transition; `run_until_idle` is not sent into a schedule's endless future.

use std::time::Duration;

use reprise_sdk::{Registry, WorkflowContext, WorkflowDef, WorkflowError};
use reprise_testkit::history::{EventKind, RunOrigin, Timestamp};
use reprise_testkit::schedule::{OverlapPolicy, Schedule, ScheduleSpec};
use reprise_testkit::{Error, TestEnv};

/// Takes `secs` seconds of virtual time.
const NAP: WorkflowDef<u64, u64> = WorkflowDef::new("nap");

async fn nap(ctx: WorkflowContext, secs: u64) -> Result<u64, WorkflowError> {
    ctx.sleep(Duration::from_secs(secs)).await?;
    Ok(secs)
}

fn env() -> TestEnv {
    TestEnv::new(Registry::builder().workflow(NAP, nap).build().unwrap())
}

fn minutely(env: &TestEnv, secs: u64, overlap: OverlapPolicy) -> Schedule {
    let action = env.schedule_action(NAP, &secs).unwrap();
    Schedule::new(ScheduleSpec::cron("* * * * *").unwrap(), action).overlap(overlap)
}

#[test]
fn a_day_of_minutely_firings_starts_1440_workflows() {
    let mut env = env();
    env.create_schedule("daily", minutely(&env, 1, OverlapPolicy::Skip))
        .unwrap();
    env.advance(Duration::from_secs(24 * 3600)).unwrap();
    // The last firing's run finishes its nap.
    env.advance(Duration::from_secs(2)).unwrap();
    let state = env.schedule_state("daily").unwrap();
    assert_eq!((state.counts.started, state.counts.skipped), (1_440, 0));
    let newest = &state.recent[0];
    let history = env.history(newest.workflow_id.as_str()).unwrap();
    let EventKind::WorkflowStarted(started) = &history.events()[0].kind else {
        panic!("not a start");
    };
    assert!(matches!(started.origin, RunOrigin::Scheduled { .. }));
    assert_eq!(history.events()[0].recorded_at, newest.firing.scheduled_at);
    assert_eq!(
        history.events().last().unwrap().kind.name(),
        "WorkflowCompleted"
    );
}

#[test]
fn skip_passes_over_firings_while_a_run_outlasts_the_interval() {
    let mut env = env();
    // Each run takes 90 s: the firing a minute after a start finds it open.
    env.create_schedule("slow", minutely(&env, 90, OverlapPolicy::Skip))
        .unwrap();
    env.advance(Duration::from_secs(10 * 60)).unwrap();
    let state = env.schedule_state("slow").unwrap();
    assert_eq!((state.counts.started, state.counts.skipped), (5, 5));
}

#[test]
fn buffer_all_runs_every_firing_back_to_back() {
    let mut env = env();
    env.create_schedule("queue", minutely(&env, 90, OverlapPolicy::BufferAll))
        .unwrap();
    env.advance(Duration::from_secs(10 * 60)).unwrap();
    let state = env.schedule_state("queue").unwrap();
    // Ten firings; runs of 90 s back to back: by 00:10 seven have started and three wait.
    assert_eq!((state.counts.started, state.buffered.len()), (7, 3));
}

#[test]
fn pause_trigger_resume_and_backfill() {
    let mut env = env();
    env.create_schedule("ops", minutely(&env, 1, OverlapPolicy::AllowAll))
        .unwrap();
    let created = env.now();
    env.pause_schedule("ops").unwrap();
    env.advance(Duration::from_secs(5 * 60)).unwrap();
    assert_eq!(env.schedule_state("ops").unwrap().counts.started, 0);
    env.trigger_schedule("ops").unwrap();
    assert_eq!(env.schedule_state("ops").unwrap().counts.started, 1);
    env.resume_schedule("ops").unwrap();
    env.advance(Duration::from_secs(60)).unwrap();
    assert_eq!(env.schedule_state("ops").unwrap().counts.started, 2);
    // The minutes paused, backfilled (00:00 to 00:05, six times): each starts once, however
    // often it is asked. 00:05 started already: the trigger fired at 00:05:00 exactly, and a
    // firing's workflow id is its time's.
    let until = created.saturating_add(Duration::from_secs(5 * 60));
    env.backfill_schedule("ops", created, until, None).unwrap();
    env.backfill_schedule("ops", created, until, None).unwrap();
    let state = env.schedule_state("ops").unwrap();
    assert_eq!((state.counts.started, state.counts.skipped), (7, 1 + 6));
    assert!(matches!(
        env.create_schedule("ops", minutely(&env, 1, OverlapPolicy::Skip)),
        Err(Error::ScheduleExists(_))
    ));
    env.delete_schedule("ops").unwrap();
    assert!(matches!(
        env.schedule_state("ops"),
        Err(Error::UnknownSchedule(_))
    ));
}

#[test]
fn run_until_idle_does_not_chase_a_schedule() {
    let mut env = env();
    env.create_schedule("forever", minutely(&env, 1, OverlapPolicy::Skip))
        .unwrap();
    let before = env.now();
    env.run_until_idle().unwrap();
    assert_eq!(env.now(), before);
}

#[test]
fn fall_back_in_berlin_fires_a_fixed_time_once() {
    let mut env = env();
    // 2026-10-25: Berlin repeats 02:00-03:00. From the day before, two days of 02:30.
    let target = Timestamp::parse_rfc3339("2026-10-24T12:00:00Z").unwrap();
    let ahead = target.as_unix_micros() - env.now().as_unix_micros();
    env.advance(Duration::from_micros(ahead as u64)).unwrap();
    let action = env.schedule_action(NAP, &1).unwrap();
    let spec = ScheduleSpec::cron("30 2 * * *")
        .unwrap()
        .in_time_zone("Europe/Berlin")
        .unwrap();
    env.create_schedule("berlin", Schedule::new(spec, action))
        .unwrap();
    env.advance(Duration::from_secs(2 * 86_400)).unwrap();
    let state = env.schedule_state("berlin").unwrap();
    let fired: Vec<String> = state
        .recent
        .iter()
        .rev()
        .map(|a| a.workflow_id.to_string())
        .collect();
    // 02:30 CEST (00:30 UTC) once on the 25th, then 02:30 CET (01:30 UTC) on the 26th.
    assert_eq!(
        fired,
        ["berlin-2026-10-25T00:30:00Z", "berlin-2026-10-26T01:30:00Z"]
    );
}

#[test]
fn a_delayed_start_takes_its_first_step_at_its_time() {
    let mut env = env();
    let run = env
        .start_delayed(NAP, "later", &1, Duration::from_secs(600))
        .unwrap();
    let started = env.now();
    assert_eq!(env.history("later").unwrap().events().len(), 1);
    env.advance(Duration::from_secs(599)).unwrap();
    assert_eq!(env.history("later").unwrap().events().len(), 1);
    assert_eq!(env.result(&run).unwrap(), 1);
    // Its code saw its start at the delayed time: the start and the first decision are
    // recorded then.
    let history = env.history("later").unwrap();
    for event in &history.events()[..2] {
        assert_eq!(
            event.recorded_at.as_unix_micros() - started.as_unix_micros(),
            600_000_000
        );
    }
}

#[test]
fn a_scheduled_workflow_gets_the_actions_deadlines() {
    let mut env = env();
    let mut schedule = minutely(&env, 600, OverlapPolicy::AllowAll);
    schedule.action.run_timeout = Some(Duration::from_secs(30));
    env.create_schedule("bounded", schedule).unwrap();
    env.advance(Duration::from_secs(60)).unwrap();
    let state = env.schedule_state("bounded").unwrap();
    let workflow_id = state.recent[0].workflow_id.to_string();
    env.advance(Duration::from_secs(31)).unwrap();
    let last = env
        .history(&workflow_id)
        .unwrap()
        .events()
        .last()
        .unwrap()
        .kind
        .clone();
    assert!(matches!(last, EventKind::WorkflowTimedOut(_)), "{last:?}");

    let mut zero = minutely(&env, 1, OverlapPolicy::AllowAll);
    zero.action.run_timeout = Some(Duration::ZERO);
    assert!(matches!(
        env.create_schedule("never", zero),
        Err(Error::InvalidOption(_))
    ));
}

use std::time::Duration;

use proptest::prelude::*;

use super::*;

fn at(rfc3339: &str) -> Timestamp {
    Timestamp::parse_rfc3339(rfc3339).unwrap()
}

fn minutes(n: i64) -> Timestamp {
    Timestamp::from_unix_micros(at("2026-12-01T00:00:00Z").as_unix_micros() + n * 60_000_000)
}

struct Fixture {
    id: ScheduleId,
    spec: ScheduleSpec,
    policies: SchedulePolicies,
    state: ScheduleState,
    paused: bool,
}

impl Fixture {
    fn every_minute(overlap: OverlapPolicy) -> Fixture {
        Fixture {
            id: ScheduleId::new("s").unwrap(),
            spec: ScheduleSpec::cron("* * * * *").unwrap(),
            policies: SchedulePolicies {
                overlap,
                ..SchedulePolicies::default()
            },
            state: ScheduleState::new(minutes(0)),
            paused: false,
        }
    }

    fn tick_with(
        &mut self,
        now: Timestamp,
        watched_open: bool,
        extra: Vec<Firing>,
        overlap: Option<OverlapPolicy>,
    ) -> Vec<Instruction> {
        let tick = Tick {
            schedule_id: &self.id,
            spec: &self.spec,
            policies: &self.policies,
            paused: self.paused,
            now,
            watched_open,
        };
        let plan = self.state.tick(&tick, extra, overlap);
        for instruction in &plan.instructions {
            if let Instruction::Start {
                firing,
                workflow_id,
            } = instruction
            {
                let run = run_for(firing.scheduled_at);
                self.state.record_start(
                    *firing,
                    workflow_id.clone(),
                    StartResult::Started(run),
                    now,
                );
            }
        }
        plan.instructions
    }

    fn tick(&mut self, now: Timestamp, watched_open: bool) -> Vec<Instruction> {
        self.tick_with(now, watched_open, Vec::new(), None)
    }
}

fn run_for(t: Timestamp) -> RunId {
    RunId::from_uuid(uuid::Uuid::from_u128(t.as_unix_micros() as u128))
}

/// The spec's times after `minutes(0)`, up to `now`.
fn times_until(spec: &ScheduleSpec, now: Timestamp) -> Vec<Timestamp> {
    let mut times = Vec::new();
    let mut cursor = minutes(0);
    while let Some(t) = spec.next_after(cursor).filter(|t| *t <= now) {
        times.push(t);
        cursor = t;
    }
    times
}

fn started(instructions: &[Instruction]) -> Vec<String> {
    instructions
        .iter()
        .filter_map(|i| match i {
            Instruction::Start { workflow_id, .. } => Some(workflow_id.to_string()),
            _ => None,
        })
        .collect()
}

#[test]
fn due_times_fire_once_each_and_name_their_workflow() {
    let mut f = Fixture::every_minute(OverlapPolicy::AllowAll);
    assert!(f.tick(minutes(0), false).is_empty());
    assert_eq!(
        started(&f.tick(minutes(2), false)),
        ["s-2026-12-01T00:01:00Z", "s-2026-12-01T00:02:00Z"]
    );
    assert!(f.tick(minutes(2), true).is_empty(), "a time fired twice");
    assert_eq!(f.state.counts.started, 2);
    assert_eq!(f.state.recent.len(), 2);
    assert_eq!(
        f.state.recent[0].workflow_id.as_str(),
        "s-2026-12-01T00:02:00Z"
    );
}

#[test]
fn skip_drops_firings_while_the_last_one_runs() {
    let mut f = Fixture::every_minute(OverlapPolicy::Skip);
    assert_eq!(started(&f.tick(minutes(1), false)).len(), 1);
    assert!(f.tick(minutes(3), true).is_empty());
    assert_eq!(f.state.counts.skipped, 2);
    assert_eq!(started(&f.tick(minutes(4), false)).len(), 1);
}

#[test]
fn buffer_one_keeps_one_and_starts_it_when_the_other_closes() {
    let mut f = Fixture::every_minute(OverlapPolicy::BufferOne);
    f.tick(minutes(1), false);
    assert!(f.tick(minutes(3), true).is_empty());
    assert_eq!(f.state.buffered.len(), 1);
    assert_eq!(f.state.counts.skipped, 1);
    // The other closed: the buffered firing (00:02) starts before the due one (00:04), which
    // is then buffered behind it.
    assert_eq!(
        started(&f.tick(minutes(4), false)),
        ["s-2026-12-01T00:02:00Z"]
    );
    assert_eq!(f.state.buffered.len(), 1);
}

#[test]
fn buffer_all_starts_every_firing_one_after_another() {
    let mut f = Fixture::every_minute(OverlapPolicy::BufferAll);
    f.tick(minutes(1), false);
    assert!(f.tick(minutes(4), true).is_empty());
    assert_eq!(f.state.buffered.len(), 3);
    let mut order = Vec::new();
    for _ in 0..3 {
        order.extend(started(&f.tick(minutes(4), false)));
        assert!(f.tick(minutes(4), true).is_empty());
    }
    assert_eq!(
        order,
        [
            "s-2026-12-01T00:02:00Z",
            "s-2026-12-01T00:03:00Z",
            "s-2026-12-01T00:04:00Z"
        ]
    );
    assert_eq!(f.state.counts.skipped, 0);
}

#[test]
fn cancel_other_asks_once_and_starts_the_latest_when_it_closed() {
    let mut f = Fixture::every_minute(OverlapPolicy::CancelOther);
    f.tick(minutes(1), false);
    let first = f.tick(minutes(2), true);
    assert_eq!(
        first,
        [Instruction::Cancel {
            workflow_id: WorkflowId::new("s-2026-12-01T00:01:00Z").unwrap()
        }]
    );
    assert!(f.tick(minutes(3), true).is_empty(), "asked to cancel twice");
    assert_eq!(
        f.state.counts.skipped, 1,
        "the 00:02 firing gave way to 00:03"
    );
    assert_eq!(
        started(&f.tick(minutes(3), false)),
        ["s-2026-12-01T00:03:00Z"]
    );
}

#[test]
fn terminate_other_terminates_and_starts_at_once() {
    let mut f = Fixture::every_minute(OverlapPolicy::TerminateOther);
    f.tick(minutes(1), false);
    let next = f.tick(minutes(2), true);
    assert_eq!(
        next[0],
        Instruction::Terminate {
            workflow_id: WorkflowId::new("s-2026-12-01T00:01:00Z").unwrap()
        }
    );
    assert_eq!(started(&next), ["s-2026-12-01T00:02:00Z"]);
}

#[test]
fn allow_all_overlaps() {
    let mut f = Fixture::every_minute(OverlapPolicy::AllowAll);
    f.tick(minutes(1), false);
    assert_eq!(started(&f.tick(minutes(3), true)).len(), 2);
}

#[test]
fn times_older_than_the_catchup_window_are_missed() {
    let mut f = Fixture::every_minute(OverlapPolicy::AllowAll);
    f.policies.catchup_window = Duration::from_secs(150);
    let fired = started(&f.tick(minutes(10), false));
    assert_eq!(
        fired,
        [
            "s-2026-12-01T00:08:00Z",
            "s-2026-12-01T00:09:00Z",
            "s-2026-12-01T00:10:00Z"
        ]
    );
    assert_eq!(f.state.counts.missed, 7);
}

#[test]
fn a_long_outage_is_passed_over_without_visiting_every_time() {
    let mut f = Fixture::every_minute(OverlapPolicy::Skip);
    f.policies.catchup_window = Duration::from_secs(60);
    // A year later: more times than one tick looks at.
    let later = minutes(365 * 24 * 60);
    let mut ticks = 0;
    let mut fired = Vec::new();
    while fired.is_empty() {
        fired = started(&f.tick(later, false));
        ticks += 1;
        assert!(ticks < 5, "caught up one tick at a time");
    }
    assert_eq!(fired.len(), 1);
}

#[test]
fn a_paused_schedule_fires_nothing_and_resumes_from_now() {
    let mut f = Fixture::every_minute(OverlapPolicy::AllowAll);
    f.paused = true;
    assert!(f.tick(minutes(5), false).is_empty());
    f.paused = false;
    f.state.skip_to(minutes(5));
    assert!(f.tick(minutes(5), false).is_empty());
    assert_eq!(started(&f.tick(minutes(6), false)).len(), 1);
}

#[test]
fn a_trigger_fires_even_when_paused_and_follows_the_policy() {
    let mut f = Fixture::every_minute(OverlapPolicy::Skip);
    f.paused = true;
    let now = minutes(0).saturating_add(Duration::from_millis(30_500));
    let trigger = Firing {
        scheduled_at: now,
        origin: FiringOrigin::Triggered,
    };
    assert_eq!(
        started(&f.tick_with(now, false, vec![trigger], None)),
        ["s-2026-12-01T00:00:30.500Z"]
    );
    assert!(f.tick_with(now, true, vec![trigger], None).is_empty());
}

#[test]
fn a_backfill_may_override_the_policy() {
    let mut f = Fixture::every_minute(OverlapPolicy::Skip);
    let times = f.spec.upcoming(minutes(-10), 5);
    let backfill: Vec<Firing> = times
        .into_iter()
        .map(|scheduled_at| Firing {
            scheduled_at,
            origin: FiringOrigin::Backfill,
        })
        .collect();
    let fired = started(&f.tick_with(minutes(0), false, backfill, Some(OverlapPolicy::AllowAll)));
    assert_eq!(fired.len(), 5);
    assert_eq!(fired[0], "s-2026-11-30T23:51:00Z");
}

#[test]
fn jitter_delays_firing_past_its_time() {
    let mut f = Fixture::every_minute(OverlapPolicy::AllowAll);
    f.spec.jitter = Duration::from_secs(30);
    let jitter = f.spec.jitter_for(&f.id, minutes(1));
    let next = f.state.next_fire_at(&f.id, &f.spec).unwrap();
    assert_eq!(next, minutes(1).saturating_add(jitter));
    if jitter > Duration::ZERO {
        assert!(f.tick(minutes(1), false).is_empty());
    }
    assert_eq!(started(&f.tick(next, false)), ["s-2026-12-01T00:01:00Z"]);
}

proptest! {
    /// However the ticks fall (any steps of time, the last workflow open or not), with
    /// overlap allowed and a wide window every time of the spec starts exactly once.
    #[test]
    fn every_time_starts_exactly_once(
        steps in proptest::collection::vec((0u64..400, any::<bool>()), 1..60),
    ) {
        let mut f = Fixture::every_minute(OverlapPolicy::AllowAll);
        let mut now = minutes(0);
        let mut fired = Vec::new();
        for (seconds, open) in steps {
            now = now.saturating_add(Duration::from_secs(seconds));
            fired.extend(started(&f.tick(now, open)));
        }
        let expected: Vec<String> = times_until(&f.spec, now)
            .into_iter()
            .map(|t| workflow_id_for(&f.id, t).unwrap().to_string())
            .collect();
        prop_assert_eq!(fired, expected);
    }

    /// Under any policy a firing is started, buffered or counted: none is lost.
    #[test]
    fn no_firing_is_lost(
        policy in proptest::sample::select(OverlapPolicy::ALL.to_vec()),
        steps in proptest::collection::vec((0u64..200, any::<bool>()), 1..40),
    ) {
        let mut f = Fixture::every_minute(policy);
        let mut now = minutes(0);
        let mut starts = 0u64;
        for (seconds, open) in steps {
            now = now.saturating_add(Duration::from_secs(seconds));
            starts += started(&f.tick(now, open)).len() as u64;
        }
        let times = times_until(&f.spec, now).len() as u64;
        prop_assert_eq!(starts, f.state.counts.started);
        prop_assert_eq!(
            f.state.counts.started + f.state.counts.skipped + f.state.buffered.len() as u64,
            times
        );
    }
}

#[test]
fn a_firings_time_reads_back_from_its_workflow_id() {
    let schedule = ScheduleId::new("nightly-sales-2").unwrap();
    for micros in [1_795_356_000_000_000, 1_795_356_000_123_456, 0] {
        let at = Timestamp::from_unix_micros(micros);
        let id = workflow_id_for(&schedule, at).unwrap();
        assert_eq!(firing_time_of(&id), Some(at), "{id}");
    }
    for other in [
        "order-17",
        "report-2026-12-01",
        "x-2026-12-01T01:00:00+01:00",
    ] {
        assert_eq!(
            firing_time_of(&WorkflowId::new(other).unwrap()),
            None,
            "{other}"
        );
    }
}

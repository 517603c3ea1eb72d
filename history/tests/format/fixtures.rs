//! Bytes written by earlier versions of Reprise must decode forever, to the same values.
//!
//! The files in `tests/fixtures/` were written by the version in their name and are never
//! rewritten: a test fails if today's code decodes them differently or would encode the same
//! values to other bytes. To add fixtures for a new version, add new files (run with
//! `REPRISE_BLESS_FIXTURES=1` to create files that do not exist yet); never edit old ones.

use std::path::PathBuf;
use std::time::Duration;

use reprise_history::*;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Reads a fixture, creating it first if it is missing and blessing was asked for.
fn read_or_bless(name: &str, current: &[u8]) -> Vec<u8> {
    let path = fixture(name);
    if !path.exists() && std::env::var_os("REPRISE_BLESS_FIXTURES").is_some() {
        std::fs::write(&path, current).unwrap();
    }
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "fixture {} is missing ({e}); create it with REPRISE_BLESS_FIXTURES=1",
            path.display()
        )
    })
}

/// How the fixture's payloads are written: v1 histories hold bincode payloads, v2 JSON ones;
/// v3 is v2 with a run started in a trace (its first event is stored as
/// `WorkflowStartedInTrace`); v4 is v3 with the replay rules recorded (stored as
/// `WorkflowStartedUnderRules`); v5 is v4 with one activity given a priority (stored as
/// `ActivityScheduledWithPriority`); v6 is v5 with local activities (`LocalActivityScheduled`,
/// `LocalActivityBackoff`); v7 is v6 with updates (`UpdateAccepted`, `UpdateCompleted`); v8 is
/// v7 started by a schedule (`RunOrigin::Scheduled`); v9 is v8 as a workflow retry's run
/// (`RunOrigin::Retried`), and its closing events include `WorkflowTimedOut`; v10 is v9 with
/// one activity's options beyond their first stored shape (`retry_on`, a schedule-to-start
/// timeout: `ActivityScheduledWithOptions`); v11 is v10 with one child started with deadlines
/// and a retry policy (`ChildWorkflowStartedWithOptions`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V2,
    V3,
    V4,
    V5,
    V6,
    V7,
    V8,
    V9,
    V10,
    V11,
}

impl Version {
    fn payload<T: serde::Serialize>(self, value: T) -> Payload {
        match self {
            Version::V1 => Payload::encode_bincode_v1(&value).unwrap(),
            Version::V2
            | Version::V3
            | Version::V4
            | Version::V5
            | Version::V6
            | Version::V7
            | Version::V8
            | Version::V9
            | Version::V10
            | Version::V11 => Payload::encode(&value, &Limits::DEFAULT).unwrap(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Version::V1 => "v1",
            Version::V2 => "v2",
            Version::V3 => "v3",
            Version::V4 => "v4",
            Version::V5 => "v5",
            Version::V6 => "v6",
            Version::V7 => "v7",
            Version::V8 => "v8",
            Version::V9 => "v9",
            Version::V10 => "v10",
            Version::V11 => "v11",
        }
    }

    fn trace_context(self) -> Option<TraceContext> {
        match self {
            Version::V1 | Version::V2 => None,
            Version::V3
            | Version::V4
            | Version::V5
            | Version::V6
            | Version::V7
            | Version::V8
            | Version::V9
            | Version::V10
            | Version::V11 => Some(
                TraceContext::new(
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                    "rojo=00f067aa0ba902b7",
                )
                .unwrap(),
            ),
        }
    }

    fn replay_rules(self) -> ReplayRules {
        match self {
            Version::V1 | Version::V2 | Version::V3 => ReplayRules::NONE,
            Version::V4
            | Version::V5
            | Version::V6
            | Version::V7
            | Version::V8
            | Version::V9
            | Version::V10
            | Version::V11 => ReplayRules::COMPARE_INPUTS,
        }
    }

    /// The priority the fixture's `name` activity is given.
    fn priority(self, name: &str) -> Option<Priority> {
        match self {
            Version::V5
            | Version::V6
            | Version::V7
            | Version::V8
            | Version::V9
            | Version::V10
            | Version::V11
                if name == "charge" =>
            {
                Some(Priority::HIGHEST)
            }
            Version::V1
            | Version::V2
            | Version::V3
            | Version::V4
            | Version::V5
            | Version::V6
            | Version::V7
            | Version::V8
            | Version::V9
            | Version::V10
            | Version::V11 => None,
        }
    }
}

fn run_id(n: u128) -> RunId {
    RunId::from_uuid(uuid::Uuid::from_u128(n))
}

/// A run that uses every event kind that does not close a run, then completes.
fn every_kind(version: Version) -> RecordedHistory {
    macro_rules! payload {
        ($value:expr) => {
            version.payload($value)
        };
    }
    let started = WorkflowStarted {
        workflow_type: WorkflowType::new("order").unwrap(),
        workflow_id: WorkflowId::new("order-1042").unwrap(),
        run_id: run_id(0x0123_4567_89ab_4def_8123_4567_89ab_cdef),
        input: payload!(("order-1042", 3u32)),
        task_queue: TaskQueue::new("orders").unwrap(),
        origin: match version {
            Version::V8 => RunOrigin::Scheduled {
                schedule_id: ScheduleId::new("nightly-orders").unwrap(),
                scheduled_at: Timestamp::from_unix_micros(1_795_356_200_000_000),
            },
            Version::V9 | Version::V10 | Version::V11 => RunOrigin::Retried {
                previous_run_id: run_id(7),
                attempt: 3,
            },
            _ => RunOrigin::ContinuedAsNew {
                previous_run_id: run_id(7),
            },
        },
        parent: Some(ParentRun {
            workflow_id: WorkflowId::new("batch-9").unwrap(),
            run_id: run_id(9),
            started_seq: Seq::new(12),
        }),
        trace_context: version.trace_context(),
        replay_rules: version.replay_rules(),
    };
    let mut h = HistoryBuilder::new(started, Timestamp::from_unix_micros(1_795_356_205_123_456));
    let options = ActivityOptions {
        retry: RetryPolicy {
            max_attempts: Some(5),
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
            backoff_multiplier: 1.5,
            jitter: 0.1,
            non_retryable_error_types: vec!["CardDeclined".into()],
            retry_on: Vec::new(),
        },
        start_to_close: Some(Duration::from_secs(10)),
        schedule_to_close: Some(Duration::from_secs(600)),
        heartbeat_timeout: Some(Duration::from_secs(3)),
        schedule_to_start: None,
    };
    let options_of = |name: &str| match version {
        Version::V10 | Version::V11 if name == "ship" => ActivityOptions {
            retry: RetryPolicy {
                retry_on: vec!["CarrierBusy".into(), "Timeout".into()],
                ..options.retry.clone()
            },
            schedule_to_start: Some(Duration::from_secs(45)),
            ..options.clone()
        },
        _ => options.clone(),
    };
    let schedule = |h: &mut HistoryBuilder, name: &str| {
        h.push(EventKind::ActivityScheduled(ActivityScheduled {
            activity_type: ActivityType::new(name).unwrap(),
            task_queue: TaskQueue::new("payments").unwrap(),
            input: payload!(name),
            options: options_of(name),
            priority: version.priority(name),
        }))
    };
    let failure = Failure::application("CardDeclined", "card declined")
        .retryable(false)
        .caused_by("BankError", "insufficient funds")
        .with_details(payload!(4200u64));
    let a1 = schedule(&mut h, "reserve");
    let a2 = schedule(&mut h, "charge");
    let a3 = schedule(&mut h, "ship");
    let a4 = schedule(&mut h, "notify");
    let t1 = h.push(EventKind::TimerStarted(TimerStarted {
        duration: Duration::from_secs(86_400),
    }));
    let t2 = h.push(EventKind::TimerStarted(TimerStarted {
        duration: Duration::new(1, 500),
    }));
    h.advance(Duration::from_millis(1500));
    h.push(EventKind::ActivityCompleted(ActivityCompleted {
        scheduled: a1,
        result: payload!(true),
        attempt: 1,
    }));
    h.push(EventKind::ActivityFailed(ActivityFailed {
        scheduled: a2,
        failure: failure.clone(),
        attempt: 5,
    }));
    h.push(EventKind::ActivityTimedOut(ActivityTimedOut {
        scheduled: a3,
        timeout: TimeoutKind::Heartbeat,
        attempt: 2,
        last_failure: Some(Failure::of_kind(
            FailureKind::TimedOut,
            "no heartbeat for 3s",
        )),
        last_heartbeat: Some(payload!(0.5f64)),
    }));
    h.push(EventKind::ActivityCancelRequested(
        ActivityCancelRequested { scheduled: a4 },
    ));
    h.push(EventKind::ActivityCancelled(ActivityCancelled {
        scheduled: a4,
        attempt: 1,
        details: None,
    }));
    h.push(EventKind::TimerFired(TimerFired { started: t2 }));
    h.push(EventKind::TimerCancelled(TimerCancelled { started: t1 }));
    h.push(EventKind::SignalReceived(SignalReceived {
        name: SignalName::new("approve").unwrap(),
        payload: payload!("ok"),
    }));
    let child = |h: &mut HistoryBuilder, id: &str, policy| {
        h.push(EventKind::ChildWorkflowStarted(ChildWorkflowStarted {
            workflow_type: WorkflowType::new("ship").unwrap(),
            workflow_id: WorkflowId::new(id).unwrap(),
            run_id: run_id(0xc0ffee),
            input: payload!(id),
            task_queue: TaskQueue::new("orders").unwrap(),
            parent_close_policy: policy,
            run_timeout: (version == Version::V11 && id == "ship-2")
                .then(|| Duration::from_secs(3_600)),
            execution_timeout: (version == Version::V11 && id == "ship-2")
                .then(|| Duration::from_secs(86_400)),
            retry: (version == Version::V11 && id == "ship-2").then(|| RetryPolicy {
                max_attempts: Some(3),
                retry_on: vec!["CarrierBusy".into()],
                ..RetryPolicy::default()
            }),
        }))
    };
    let c1 = child(&mut h, "ship-1", ParentClosePolicy::Terminate);
    let c2 = child(&mut h, "ship-2", ParentClosePolicy::RequestCancel);
    let c3 = child(&mut h, "ship-3", ParentClosePolicy::Abandon);
    h.push(EventKind::ChildWorkflowCompleted(ChildWorkflowCompleted {
        started: c1,
        result: payload!("shipped"),
    }));
    h.push(EventKind::ChildWorkflowCancelRequested(
        ChildWorkflowCancelRequested { started: c2 },
    ));
    h.push(EventKind::ChildWorkflowFailed(ChildWorkflowFailed {
        started: c2,
        failure: Failure::of_kind(FailureKind::Cancelled, "cancelled by parent"),
    }));
    h.push(EventKind::ChildWorkflowFailed(ChildWorkflowFailed {
        started: c3,
        failure: Failure::of_kind(FailureKind::Terminated, "operator"),
    }));
    h.push(EventKind::CancelRequested(CancelRequested {
        reason: "customer asked".into(),
    }));
    h.push(EventKind::MarkerRecorded(Marker::Patch {
        patch_id: PatchId::new("v2-shipping").unwrap(),
    }));
    h.push(EventKind::MarkerRecorded(Marker::SideEffect {
        value: payload!(0xdead_beefu32),
    }));
    if matches!(
        version,
        Version::V6 | Version::V7 | Version::V8 | Version::V9 | Version::V10 | Version::V11
    ) {
        let local = |h: &mut HistoryBuilder, attempt| {
            h.push(EventKind::LocalActivityScheduled(LocalActivityScheduled {
                activity_type: ActivityType::new("price").unwrap(),
                input: payload!("order-1042"),
                attempt,
            }))
        };
        let l1 = local(&mut h, 1);
        h.push(EventKind::ActivityCompleted(ActivityCompleted {
            scheduled: l1,
            result: payload!(1999u32),
            attempt: 2,
        }));
        let l2 = local(&mut h, 1);
        h.push(EventKind::LocalActivityBackoff(LocalActivityBackoff {
            scheduled: l2,
            failure: Failure::application("Unavailable", "pricing is down"),
            attempt: 3,
            backoff: Duration::from_millis(2_500),
        }));
        let wait = h.push(EventKind::TimerStarted(TimerStarted {
            duration: Duration::from_millis(2_500),
        }));
        h.advance(Duration::from_millis(2_500));
        h.push(EventKind::TimerFired(TimerFired { started: wait }));
        let l3 = local(&mut h, 4);
        h.push(EventKind::ActivityFailed(ActivityFailed {
            scheduled: l3,
            failure: Failure::application("Unavailable", "pricing is down").retryable(false),
            attempt: 4,
        }));
    }
    if matches!(
        version,
        Version::V7 | Version::V8 | Version::V9 | Version::V10 | Version::V11
    ) {
        let update = |h: &mut HistoryBuilder, id: &str, input| {
            h.push(EventKind::UpdateAccepted(UpdateAccepted {
                update_id: UpdateId::new(id).unwrap(),
                name: UpdateName::new("add-item").unwrap(),
                input,
            }))
        };
        let u1 = update(&mut h, "u-1", payload!("tea"));
        h.push(EventKind::UpdateCompleted(UpdateCompleted {
            accepted: u1,
            update_id: UpdateId::new("u-1").unwrap(),
            outcome: UpdateOutcome::Completed(payload!(4u32)),
        }));
        let u2 = update(&mut h, "u-2", payload!("caviar"));
        h.push(EventKind::UpdateCompleted(UpdateCompleted {
            accepted: u2,
            update_id: UpdateId::new("u-2").unwrap(),
            outcome: UpdateOutcome::Failed(Failure::application("OutOfStock", "no caviar")),
        }));
    }
    h.push(EventKind::WorkflowCompleted(WorkflowCompleted {
        result: payload!("done"),
    }));
    h.build().unwrap()
}

/// One event of each closing kind but `WorkflowCompleted` (a history holds only one).
fn closing_events(version: Version) -> Vec<Event> {
    macro_rules! payload {
        ($value:expr) => {
            version.payload($value)
        };
    }
    let at = Timestamp::from_unix_micros(1_795_356_299_000_001);
    let mut kinds = vec![
        EventKind::WorkflowFailed(WorkflowFailed {
            failure: Failure::of_kind(FailureKind::Panicked, "index out of bounds"),
        }),
        EventKind::WorkflowCancelled(WorkflowCancelled {
            details: Some(payload!("cleaned up")),
        }),
        EventKind::WorkflowTerminated(WorkflowTerminated {
            reason: "stuck".into(),
        }),
        EventKind::WorkflowContinuedAsNew(WorkflowContinuedAsNew {
            new_run_id: run_id(42),
            workflow_type: WorkflowType::new("order").unwrap(),
            input: payload!(("order-1042", 4u32)),
            task_queue: TaskQueue::new("orders").unwrap(),
        }),
    ];
    if version == Version::V9 {
        kinds.extend([
            EventKind::WorkflowTimedOut(WorkflowTimedOut {
                timeout: WorkflowTimeout::Run,
            }),
            EventKind::WorkflowTimedOut(WorkflowTimedOut {
                timeout: WorkflowTimeout::Execution,
            }),
        ]);
    }
    kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| Event {
            seq: Seq::new(30 + i as u64),
            recorded_at: at,
            kind,
        })
        .collect()
}

fn to_hex_lines(events: &[Event]) -> String {
    events
        .iter()
        .map(|e| {
            let bytes = e.encode(&Limits::DEFAULT).unwrap();
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>() + "\n"
        })
        .collect()
}

fn from_hex(line: &str) -> Vec<u8> {
    (0..line.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&line[i..i + 2], 16).unwrap())
        .collect()
}

fn binary_history_decodes_to_the_same_values(version: Version) {
    let expected = every_kind(version);
    let current = expected.to_bytes().unwrap();
    let stored = read_or_bless(&format!("every-kind-{}.rhist", version.name()), &current);
    let decoded = RecordedHistory::from_bytes(&stored, &Limits::DEFAULT).unwrap();
    assert_eq!(decoded, expected);
    assert_eq!(
        current, stored,
        "today's encoder writes other bytes for the same history"
    );
}

fn json_history_decodes_to_the_same_values(version: Version) {
    let expected = every_kind(version);
    let current = expected.to_json().unwrap();
    let stored = read_or_bless(
        &format!("every-kind-{}.json", version.name()),
        current.as_bytes(),
    );
    let stored = String::from_utf8(stored).unwrap();
    let decoded = RecordedHistory::from_json(&stored, &Limits::DEFAULT).unwrap();
    assert_eq!(decoded, expected);
    assert_eq!(decoded.head_hash().unwrap(), expected.head_hash().unwrap());
}

fn closing_events_decode_to_the_same_values(version: Version) {
    let expected = closing_events(version);
    let current = to_hex_lines(&expected);
    let stored = read_or_bless(
        &format!("closing-events-{}.hex", version.name()),
        current.as_bytes(),
    );
    let stored = String::from_utf8(stored).unwrap();
    let decoded: Vec<Event> = stored
        .lines()
        .map(|line| Event::decode(&from_hex(line), &Limits::DEFAULT).unwrap())
        .collect();
    assert_eq!(decoded, expected);
    assert_eq!(
        current, stored,
        "today's encoder writes other bytes for the same events"
    );
}

#[test]
fn v1_binary_history_with_bincode_payloads_decodes_to_the_same_values() {
    binary_history_decodes_to_the_same_values(Version::V1);
}

#[test]
fn v1_json_history_with_bincode_payloads_decodes_to_the_same_values() {
    json_history_decodes_to_the_same_values(Version::V1);
}

#[test]
fn v1_closing_events_with_bincode_payloads_decode_to_the_same_values() {
    closing_events_decode_to_the_same_values(Version::V1);
}

#[test]
fn v2_binary_history_with_json_payloads_decodes_to_the_same_values() {
    binary_history_decodes_to_the_same_values(Version::V2);
}

#[test]
fn v2_json_history_with_json_payloads_decodes_to_the_same_values() {
    json_history_decodes_to_the_same_values(Version::V2);
}

#[test]
fn v2_closing_events_with_json_payloads_decode_to_the_same_values() {
    closing_events_decode_to_the_same_values(Version::V2);
}

#[test]
fn v3_binary_history_with_a_traced_start_decodes_to_the_same_values() {
    binary_history_decodes_to_the_same_values(Version::V3);
}

#[test]
fn v3_json_history_with_a_traced_start_decodes_to_the_same_values() {
    json_history_decodes_to_the_same_values(Version::V3);
}

#[test]
fn v4_binary_history_with_replay_rules_decodes_to_the_same_values() {
    binary_history_decodes_to_the_same_values(Version::V4);
}

#[test]
fn v4_json_history_with_replay_rules_decodes_to_the_same_values() {
    json_history_decodes_to_the_same_values(Version::V4);
}

#[test]
fn v5_binary_history_with_a_prioritised_activity_decodes_to_the_same_values() {
    binary_history_decodes_to_the_same_values(Version::V5);
}

#[test]
fn v5_json_history_with_a_prioritised_activity_decodes_to_the_same_values() {
    json_history_decodes_to_the_same_values(Version::V5);
}

#[test]
fn v6_binary_history_with_local_activities_decodes_to_the_same_values() {
    binary_history_decodes_to_the_same_values(Version::V6);
}

#[test]
fn v6_json_history_with_local_activities_decodes_to_the_same_values() {
    json_history_decodes_to_the_same_values(Version::V6);
}

#[test]
fn v7_binary_history_with_updates_decodes_to_the_same_values() {
    binary_history_decodes_to_the_same_values(Version::V7);
}

#[test]
fn v7_json_history_with_updates_decodes_to_the_same_values() {
    json_history_decodes_to_the_same_values(Version::V7);
}

#[test]
fn v8_binary_history_started_by_a_schedule_decodes_to_the_same_values() {
    binary_history_decodes_to_the_same_values(Version::V8);
}

#[test]
fn v8_json_history_started_by_a_schedule_decodes_to_the_same_values() {
    json_history_decodes_to_the_same_values(Version::V8);
}

#[test]
fn v9_binary_history_of_a_retry_decodes_to_the_same_values() {
    binary_history_decodes_to_the_same_values(Version::V9);
}

#[test]
fn v9_json_history_of_a_retry_decodes_to_the_same_values() {
    json_history_decodes_to_the_same_values(Version::V9);
}

#[test]
fn v9_closing_events_with_timeouts_decode_to_the_same_values() {
    closing_events_decode_to_the_same_values(Version::V9);
}

#[test]
fn v10_binary_history_with_grown_activity_options_decodes_to_the_same_values() {
    binary_history_decodes_to_the_same_values(Version::V10);
}

#[test]
fn v10_json_history_with_grown_activity_options_decodes_to_the_same_values() {
    json_history_decodes_to_the_same_values(Version::V10);
}

#[test]
fn v11_binary_history_with_a_child_given_deadlines_and_retries_decodes_to_the_same_values() {
    binary_history_decodes_to_the_same_values(Version::V11);
}

#[test]
fn v11_json_history_with_a_child_given_deadlines_and_retries_decodes_to_the_same_values() {
    json_history_decodes_to_the_same_values(Version::V11);
}

#[test]
fn payloads_of_each_version_decode_to_their_values() {
    for version in [
        Version::V1,
        Version::V2,
        Version::V3,
        Version::V4,
        Version::V5,
        Version::V6,
        Version::V7,
        Version::V8,
        Version::V9,
        Version::V10,
        Version::V11,
    ] {
        let history = every_kind(version);
        let EventKind::WorkflowStarted(started) = &history.events()[0].kind else {
            panic!("first event is not WorkflowStarted");
        };
        let input: (String, u32) = started.input.decode().unwrap();
        assert_eq!(input, ("order-1042".to_string(), 3));
    }
}

#[test]
fn the_fixture_covers_every_event_kind() {
    let mut names: Vec<&str> = every_kind(Version::V9)
        .events()
        .iter()
        .map(|e| e.kind.name())
        .collect();
    names.extend(closing_events(Version::V9).iter().map(|e| e.kind.name()));
    names.sort_unstable();
    names.dedup();
    assert_eq!(
        names.len(),
        27,
        "a new event kind needs a fixture: {names:?}"
    );
}

//! The versioning example: histories recorded from v1 and v2 runs on PostgreSQL, replayed
//! against each version of the code (see docs/versioning.md).

use reprise_examples::versioning::{v1, v2, v2_unpatched, v3};
use reprise_testkit::Replayer;

const V1: &str = "histories/versioning/v1";
const V2: &str = "histories/versioning/v2";

#[test]
fn v1_histories_replay_on_v1() {
    let report = Replayer::new(v1::registry().unwrap())
        .replay_dir(V1)
        .unwrap();
    assert_eq!(report.replayed.len(), 6);
}

#[test]
fn an_unpatched_change_fails_every_v1_history_at_the_changed_line() {
    let err = Replayer::new(v2_unpatched::registry().unwrap())
        .replay_dir(V1)
        .unwrap_err();
    assert_eq!(err.failures.len(), 6);
    for failure in &err.failures {
        let message = failure.problem.to_string();
        assert!(
            message.starts_with(
                "nondeterminism ND01 at seq 4: history has ActivityScheduled(\"send\"), but the code made ActivityScheduled(\"notify\") (workflow code at examples/src/versioning.rs:"
            ),
            "{message}"
        );
    }
}

#[test]
fn the_patched_change_replays_v1_and_v2_histories() {
    let replayer = Replayer::new(v2::registry().unwrap());
    assert_eq!(replayer.replay_dir(V1).unwrap().replayed.len(), 6);
    assert_eq!(replayer.replay_dir(V2).unwrap().replayed.len(), 6);
}

#[test]
fn once_v1_is_retired_deprecate_patch_replays_v2_histories_and_not_v1() {
    let replayer = Replayer::new(v3::registry().unwrap());
    assert_eq!(replayer.replay_dir(V2).unwrap().replayed.len(), 6);
    assert_eq!(
        replayer.replay_dir(V1).unwrap_err().failures.len(),
        6,
        "v1 runs must be gone first"
    );
}

/// The guide shows the report of the broken change exactly as the replayer prints it.
#[test]
fn the_guide_shows_the_report_as_printed() {
    let guide = std::fs::read_to_string("../docs/versioning.md").unwrap();
    let marker = "<!-- the replayer's report, checked by examples/tests/examples/versioning.rs -->\n```text\n";
    let start = guide.find(marker).expect("the guide has the report block") + marker.len();
    let end = start + guide[start..].find("```").unwrap();
    let shown = &guide[start..end];
    let printed = Replayer::new(v2_unpatched::registry().unwrap())
        .replay_dir(V1)
        .unwrap_err()
        .to_string();
    assert_eq!(shown, printed);
}

/// These histories were recorded before replay rules existed: they replay strictly, as before,
/// even with an input changed — and the same history under the rule `COMPARE_INPUTS` does not.
#[test]
fn histories_recorded_before_replay_rules_replay_strictly_as_before() {
    use reprise_testkit::history::{EventKind, Limits, Payload, RecordedHistory, ReplayRules};
    let strict = Replayer::new(v2::registry().unwrap()).strict();
    assert_eq!(strict.replay_dir(V1).unwrap().replayed.len(), 6);
    assert_eq!(strict.replay_dir(V2).unwrap().replayed.len(), 6);

    let text = std::fs::read_to_string(format!("{V1}/ship-1.json")).unwrap();
    let recorded = RecordedHistory::from_json(&text, &Limits::DEFAULT).unwrap();
    let mut events = recorded.events().to_vec();
    let EventKind::WorkflowStarted(started) = &events[0].kind else {
        panic!("a history starts with WorkflowStarted");
    };
    assert_eq!(started.replay_rules, ReplayRules::NONE);
    let scheduled = events
        .iter_mut()
        .find_map(|e| match &mut e.kind {
            EventKind::ActivityScheduled(s) => Some(s),
            _ => None,
        })
        .unwrap();
    scheduled.input = Payload::encode(&"another input", &Limits::DEFAULT).unwrap();
    let changed = RecordedHistory::new(events.clone()).unwrap();
    strict.replay(&changed).unwrap();

    if let EventKind::WorkflowStarted(started) = &mut events[0].kind {
        started.replay_rules = ReplayRules::CURRENT;
    }
    let under_rules = RecordedHistory::new(events).unwrap();
    let err = strict.replay(&under_rules).unwrap_err().to_string();
    assert!(err.starts_with("nondeterminism ND08 at seq "), "{err}");
    Replayer::new(v2::registry().unwrap())
        .replay(&under_rules)
        .unwrap();
}

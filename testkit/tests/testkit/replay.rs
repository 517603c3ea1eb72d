//! The replayer: folders of recorded histories, reports that list every bad one.

use std::time::Duration;

use reprise_history::{Limits, RecordedHistory};
use reprise_sdk::{Registry, WorkflowContext, WorkflowDef, WorkflowError};
use reprise_testkit::{Replayer, TestEnv};

const NAP: WorkflowDef<u64, u64> = WorkflowDef::new("nap");

fn sleeps_then_answers() -> Registry {
    Registry::builder()
        .workflow(NAP, |ctx: WorkflowContext, secs: u64| async move {
            ctx.sleep(Duration::from_secs(secs)).await?;
            Ok::<_, WorkflowError>(secs)
        })
        .build()
        .unwrap()
}

/// v2 of the code: sleeps twice as long — a change that breaks recorded histories.
fn sleeps_twice_as_long() -> Registry {
    Registry::builder()
        .workflow(NAP, |ctx: WorkflowContext, secs: u64| async move {
            ctx.sleep(Duration::from_secs(secs * 2)).await?;
            Ok::<_, WorkflowError>(secs)
        })
        .build()
        .unwrap()
}

fn recorded(secs: u64) -> RecordedHistory {
    let mut env = TestEnv::new(sleeps_then_answers());
    let id = format!("nap-{secs}");
    let run = env.start(NAP, &id, &secs).unwrap();
    env.result(&run).unwrap();
    env.history(&id).unwrap()
}

#[test]
fn a_folder_of_good_histories_replays() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.rhist"), recorded(1).to_bytes().unwrap()).unwrap();
    std::fs::write(dir.path().join("b.json"), recorded(2).to_json().unwrap()).unwrap();
    std::fs::write(dir.path().join("README.md"), "not a history").unwrap();
    let report = Replayer::new(sleeps_then_answers())
        .replay_dir(dir.path())
        .unwrap();
    assert_eq!(report.replayed.len(), 2);
}

#[test]
fn a_breaking_change_fails_with_every_bad_history_listed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.rhist"), recorded(1).to_bytes().unwrap()).unwrap();
    std::fs::write(dir.path().join("b.rhist"), recorded(2).to_bytes().unwrap()).unwrap();
    let mut corrupt = recorded(3).to_bytes().unwrap();
    let last = corrupt.len() - 40;
    corrupt[last] ^= 0xff;
    std::fs::write(dir.path().join("c.rhist"), corrupt).unwrap();
    let err = Replayer::new(sleeps_twice_as_long())
        .replay_dir(dir.path())
        .unwrap_err();
    assert_eq!(err.tried, 3);
    assert_eq!(err.failures.len(), 3);
    let text = err.to_string();
    assert!(
        text.starts_with("3 of 3 histories do not replay:\n"),
        "{text}"
    );
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[1].contains("a.rhist: nondeterminism ND01 at seq 2: history has TimerStarted(1s), but the code made TimerStarted(2s) (workflow code at testkit/tests/testkit/replay.rs:"),
        "{}",
        lines[1]
    );
    assert!(lines[2].contains("b.rhist: nondeterminism ND01 at seq 2: history has TimerStarted(2s), but the code made TimerStarted(4s)"), "{}", lines[2]);
    assert!(lines[3].contains("c.rhist: "), "{}", lines[3]);
}

#[test]
fn an_empty_folder_is_an_error_not_a_pass() {
    let dir = tempfile::tempdir().unwrap();
    let err = Replayer::new(sleeps_then_answers())
        .replay_dir(dir.path())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "no histories found to replay: a check that replays nothing proves nothing"
    );
}

#[test]
fn in_memory_histories_replay_and_file_round_trips_keep_them_whole() {
    let history = recorded(5);
    let back = RecordedHistory::from_bytes(&history.to_bytes().unwrap(), &Limits::DEFAULT).unwrap();
    let replayer = Replayer::new(sleeps_then_answers());
    let report = replayer.replay_histories([("nap-5", &back)]).unwrap();
    assert_eq!(report.replayed, ["nap-5"]);
}

//! `reprise schedule` against PostgreSQL: bad specs are refused with where and why, a
//! schedule is created, described with its next times, triggered, paused, resumed, listed
//! and deleted.

use serde_json::Value;

use crate::{TestDb, text};

#[tokio::test]
async fn a_schedule_is_created_described_triggered_paused_and_deleted() {
    let db = TestDb::empty().await;
    assert!(db.reprise(&["migrate"]).status.success());

    let bad = db.reprise(&[
        "schedule",
        "create",
        "nightly",
        "--type",
        "report",
        "--cron",
        "0 25 * * *",
    ]);
    assert!(!bad.status.success());
    let stderr = text(&bad.stderr);
    assert!(stderr.contains("column 2 (hour field)"), "{stderr}");
    let bad_zone = db.reprise(&[
        "schedule",
        "create",
        "nightly",
        "--type",
        "report",
        "--cron",
        "0 2 * * *",
        "--time-zone",
        "Europe/Atlantis",
    ]);
    assert!(text(&bad_zone.stderr).contains("unknown time zone"));

    let out = db.reprise(&[
        "schedule",
        "create",
        "nightly",
        "--type",
        "report",
        "--input",
        r#"{"day":1}"#,
        "--cron",
        "0 2 * * *",
        "--time-zone",
        "Europe/Berlin",
        "--overlap",
        "buffer-one",
        "--catchup-window",
        "2h",
        "--run-timeout",
        "45m",
        "--retry-attempts",
        "3",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let again = db.reprise(&[
        "schedule",
        "create",
        "nightly",
        "--type",
        "report",
        "--cron",
        "* * * * *",
    ]);
    assert!(
        text(&again.stderr).contains("exists already"),
        "{}",
        text(&again.stderr)
    );

    let out = db.reprise(&["schedule", "describe", "nightly", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(d["upcoming"].as_array().unwrap().len(), 10);
    assert_eq!(d["policies"]["overlap"], "buffer_one");
    assert_eq!(d["policies"]["catchup_window_ms"], 7_200_000);
    assert_eq!(d["spec"]["time_zone"], "Europe/Berlin");
    assert_eq!(d["run_timeout_ms"], 45 * 60 * 1000);
    assert_eq!(d["retry"]["max_attempts"], 3);
    // 02:00 in Berlin is 01:00 or 00:00 UTC.
    let first = d["upcoming"][0].as_str().unwrap();
    assert!(
        first.contains("T01:00:00") || first.contains("T00:00:00"),
        "{first}"
    );

    let out = db.reprise(&["schedule", "trigger", "nightly"]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("started nightly-"),
        "{stdout}{}",
        text(&out.stderr)
    );
    let out = db.reprise(&["schedule", "trigger", "nightly"]);
    assert!(
        text(&out.stdout).starts_with("buffered"),
        "{}",
        text(&out.stdout)
    );

    assert!(
        db.reprise(&["schedule", "pause", "nightly", "--note", "holiday"])
            .status
            .success()
    );
    let text_view = text(&db.reprise(&["schedule", "describe", "nightly"]).stdout);
    assert!(text_view.contains("PAUSED: holiday"), "{text_view}");
    assert!(text_view.contains("started 1, skipped 0"), "{text_view}");
    assert!(
        db.reprise(&["schedule", "resume", "nightly"])
            .status
            .success()
    );

    let list = text(&db.reprise(&["schedule", "list"]).stdout);
    assert!(list.starts_with("nightly  report  active"), "{list}");
    assert!(
        db.reprise(&["schedule", "delete", "nightly"])
            .status
            .success()
    );
    let gone = db.reprise(&["schedule", "describe", "nightly"]);
    assert!(
        text(&gone.stderr).contains("no schedule with id"),
        "{}",
        text(&gone.stderr)
    );
    db.drop_database().await;
}

use std::time::Duration;

use reprise_engine::history::Timestamp;
use reprise_examples::patterns::nightly_report::{self, NIGHTLY_REPORT};
use reprise_testkit::TestEnv;

use crate::support::TestDb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_and_a_backfill_each_report_on_their_own_night() {
    let db = TestDb::migrated().await;
    let demo = super::demo_on(&db, false).await;
    let sent = super::within(nightly_report::demo(&demo)).await.unwrap();
    // One triggered, then one a night backfilled: three, or two or four when a
    // daylight-saving change skipped or repeated 02:00 in Berlin in the last three days.
    let backfilled = &sent[1..];
    assert!((2..=4).contains(&backfilled.len()), "{sent:?}");
    let mut days: Vec<&str> = backfilled
        .iter()
        .filter_map(|line| line.split("report for ").nth(1)?.split(':').next())
        .collect();
    assert_eq!(days.len(), backfilled.len(), "{sent:?}");
    days.dedup();
    assert!(
        days.len() >= 2,
        "each report covers its own night: {sent:?}"
    );
    assert!(
        demo.client()
            .list_schedules(None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    demo.stop().await.unwrap();
    db.drop_database().await;
}

/// Three nights of virtual time: three reports at 02:00 Berlin (01:00 UTC in winter), each on
/// the day before its firing.
#[test]
fn the_schedule_fires_at_two_in_berlin_and_reports_on_the_day_before() {
    let registry = reprise_examples::patterns::registry(Default::default()).unwrap();
    let mut env = TestEnv::new(registry);
    let spec = reprise_engine::ScheduleSpec::cron(nightly_report::CRON)
        .unwrap()
        .in_time_zone(nightly_report::TIME_ZONE)
        .unwrap();
    let action = env
        .schedule_action(NIGHTLY_REPORT, &"sales".to_string())
        .unwrap();
    let schedule = reprise_engine::Schedule::new(spec, action)
        .overlap(reprise_engine::OverlapPolicy::Skip)
        .catchup_window(nightly_report::CATCHUP_WINDOW);
    env.create_schedule("nightly", schedule).unwrap();
    env.advance(Duration::from_secs(3 * 86_400)).unwrap();
    let state = env.schedule_state("nightly").unwrap();
    let fired: Vec<String> = state
        .recent
        .iter()
        .map(|r| r.workflow_id.to_string())
        .collect();
    assert_eq!(fired.len(), 3, "{fired:?}");
    for workflow_id in fired {
        assert!(workflow_id.ends_with("T01:00:00Z"), "{workflow_id}");
        let day_fired = &workflow_id["nightly-".len().."nightly-".len() + 10];
        let fired_at = Timestamp::parse_rfc3339(&format!("{day_fired}T00:00:00Z")).unwrap();
        let day_before = Timestamp::from_unix_micros(fired_at.as_unix_micros() - 86_400_000_000)
            .to_rfc3339()
            .unwrap()[..10]
            .to_string();
        let history = env.history(&workflow_id).unwrap();
        let result = history.events().iter().rev().find_map(|e| match &e.kind {
            reprise_engine::history::EventKind::WorkflowCompleted(c) => Some(
                env.registry()
                    .converter()
                    .from_payload::<String>(&c.result)
                    .unwrap(),
            ),
            _ => None,
        });
        let sent = result.expect("the report completed");
        assert!(sent.contains(&format!("report for {day_before}")), "{sent}");
    }
}

use std::time::Duration;

use reprise_examples::patterns::approval::{
    APPROVE, Approval, Decision, ESCALATE_AFTER, EXPENSE, Expense, NOTIFY, PAY,
};
use reprise_testkit::TestEnv;

use crate::support::TestDb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_approves_rejects_and_escalates() {
    let db = TestDb::migrated().await;
    let demo = super::demo_on(&db, false).await;
    let decisions = super::within(reprise_examples::patterns::approval::demo(&demo))
        .await
        .unwrap();
    assert!(matches!(&decisions[0], Decision::Paid { approved_by, .. } if approved_by == "alice"));
    assert!(matches!(&decisions[1], Decision::Rejected { by, .. } if by == "alice"));
    assert!(matches!(&decisions[2], Decision::Paid { approved_by, .. } if approved_by == "bob"));
    demo.stop().await.unwrap();
    db.drop_database().await;
}

fn expense() -> Expense {
    Expense {
        employee: "Ada".into(),
        amount_cents: 38_000,
        description: "hotel".into(),
        approver: "alice".into(),
        manager: "bob".into(),
        answer_within_secs: ESCALATE_AFTER.as_secs(),
    }
}

/// The real three days, in virtual time: nothing before them, the manager after.
#[test]
fn an_unanswered_expense_escalates_after_three_days_and_expires_after_six() {
    let registry = reprise_examples::patterns::registry(Default::default()).unwrap();
    let mut env = TestEnv::new(registry);
    let notified = env.stand_in(NOTIFY, |_, _| Ok(())).unwrap();
    env.stand_in(PAY, |_, _| Ok("paid".to_string())).unwrap();
    let run = env.start(EXPENSE, "expense-1", &expense()).unwrap();
    // Not `run_until_idle`: it would skip ahead through both waits.
    env.advance(Duration::from_secs(1)).unwrap();
    assert_eq!(notified.calls().len(), 1);
    assert_eq!(notified.calls()[0].0.to, "alice");

    env.advance(ESCALATE_AFTER - Duration::from_secs(61))
        .unwrap();
    assert_eq!(notified.count(), 1, "alice still has a minute");
    env.advance(Duration::from_secs(60)).unwrap();
    assert_eq!(notified.count(), 2);
    assert_eq!(notified.calls()[1].0.to, "bob");
    let status: String = env.custom_status("expense-1").unwrap().unwrap();
    assert_eq!(status, "waiting for bob");

    env.advance(ESCALATE_AFTER).unwrap();
    match env.result(&run).unwrap() {
        Decision::Rejected { by, .. } => assert_eq!(by, "nobody"),
        other => panic!("expected an expired expense, got {other:?}"),
    }
}

#[test]
fn the_manager_approves_an_escalated_expense() {
    let registry = reprise_examples::patterns::registry(Default::default()).unwrap();
    let mut env = TestEnv::new(registry);
    env.stand_in(NOTIFY, |_, _| Ok(())).unwrap();
    env.stand_in(PAY, |_, _| Ok("paid".to_string())).unwrap();
    let run = env.start(EXPENSE, "expense-2", &expense()).unwrap();
    env.advance(ESCALATE_AFTER + Duration::from_secs(3_600))
        .unwrap();
    let status: String = env.custom_status("expense-2").unwrap().unwrap();
    assert_eq!(status, "waiting for bob");
    let approval = Approval { by: "bob".into() };
    env.signal("expense-2", APPROVE, &approval).unwrap();
    assert_eq!(
        env.result(&run).unwrap(),
        Decision::Paid {
            approved_by: "bob".into(),
            payment: "paid".into()
        }
    );
}

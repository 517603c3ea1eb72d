//! Unit tests of `metrics.rs`: names, bounded labels, park kinds.

use super::*;

#[test]
fn renders_prometheus_names_and_bounded_labels() {
    let m = Metrics::new();
    m.run_started("order");
    m.run_closed("order", RunState::Completed);
    m.stepped(StepPath::batch, 3, Duration::from_millis(2));
    m.attempt(
        "charge",
        "payments",
        AttemptOutcome::retried,
        Duration::from_millis(5),
    );
    m.parked("nondeterminism ND01 at seq 4: ...");
    // The kept series must land in the right label set, whatever the order of first use.
    m.run_closed("order", RunState::ContinuedAsNew);
    m.run_closed("order", RunState::ContinuedAsNew);
    m.run_closed("refund", RunState::Failed);
    m.run_closed("order", RunState::Running);
    m.attempt(
        "charge",
        "payments",
        AttemptOutcome::fenced,
        Duration::from_millis(5),
    );
    m.attempt(
        "ship",
        "payments",
        AttemptOutcome::completed,
        Duration::ZERO,
    );
    m.schedule_to_start("payments", 0.5);
    let text = m.render();
    for line in [
        "reprise_workflows_started_total{workflow_type=\"order\"} 1",
        "reprise_workflows_closed_total{workflow_type=\"order\",status=\"completed\"} 1",
        "reprise_steps_total{path=\"batch\"} 3",
        "reprise_activity_attempts_total{activity_type=\"charge\",task_queue=\"payments\",outcome=\"retried\"} 1",
        "reprise_runs_parked_total{reason=\"nondeterminism\"} 1",
        "reprise_workflows_closed_total{workflow_type=\"order\",status=\"continued_as_new\"} 2",
        "reprise_workflows_closed_total{workflow_type=\"order\",status=\"failed\"} 0",
        "reprise_workflows_closed_total{workflow_type=\"refund\",status=\"failed\"} 1",
        "reprise_workflows_started_total{workflow_type=\"refund\"} 0",
        "reprise_activity_attempts_total{activity_type=\"charge\",task_queue=\"payments\",outcome=\"fenced\"} 1",
        "reprise_activity_attempts_total{activity_type=\"ship\",task_queue=\"payments\",outcome=\"completed\"} 1",
        "reprise_activity_attempts_total{activity_type=\"ship\",task_queue=\"payments\",outcome=\"retried\"} 0",
        "reprise_activity_attempt_duration_seconds_count{activity_type=\"charge\",task_queue=\"payments\"} 2",
        "reprise_activity_schedule_to_start_seconds_count{task_queue=\"payments\"} 1",
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
    assert!(
        text.contains("reprise_step_duration_seconds_bucket{le="),
        "{text}"
    );
}

#[test]
fn park_kinds_follow_the_engines_messages() {
    use reprise_history::Seq;
    let undecodable = reprise_sdk::Error::from(reprise_sdk::UndecodablePayload {
        seq: Seq::new(3),
        holder: "result of activity \"quote\"".into(),
        rust_type: "u64",
        source: reprise_history::Error::Empty { what: "payload" },
    });
    assert_eq!(
        ParkKind::of(&crate::Error::from(undecodable).to_string()),
        ParkKind::undecodable_payload
    );
    let panicked = reprise_sdk::Error::WorkflowPanicked {
        seq: Seq::new(3),
        message: "boom".into(),
    };
    assert_eq!(
        ParkKind::of(&crate::Error::from(panicked).to_string()),
        ParkKind::panic
    );
    assert_eq!(
        ParkKind::of("unknown workflow type \"later\": no process"),
        ParkKind::unknown_type
    );
    assert_eq!(ParkKind::of("history cannot be executed"), ParkKind::other);
}

#[test]
fn limit_gauges_carry_scope_and_name_and_follow_the_sample() {
    let m = Metrics::new();
    let usage = |name: &str, tokens| crate::flow_control::LimitUsage {
        scope: crate::LimitScope::ActivityType(name.into()),
        limit: crate::Limit {
            max_concurrent: Some(5),
            rate: None,
        },
        running: 3,
        waiting: 40,
        tokens,
    };
    let sample = |limits| gauges::Sample {
        runs: Vec::new(),
        activities: Vec::new(),
        parked: Vec::new(),
        limits,
    };
    m.sampled(&sample(vec![usage("charge-card", Some(1.5))]));
    let text = m.render();
    for line in [
        "reprise_limit_running_attempts{scope=\"activity_type\",name=\"charge-card\"} 3",
        "reprise_limit_waiting_attempts{scope=\"activity_type\",name=\"charge-card\"} 40",
        "reprise_limit_tokens{scope=\"activity_type\",name=\"charge-card\"} 1.5",
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
    // A limit cleared since leaves no series behind.
    m.sampled(&sample(vec![usage("refund", None)]));
    let text = m.render();
    assert!(!text.contains("charge-card"), "{text}");
    assert!(!text.contains("reprise_limit_tokens{"), "{text}");
}

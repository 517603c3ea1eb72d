//! Payloads the code cannot decode are their own typed error, never a nondeterminism nor a
//! failure the workflow could record; codecs configured on the registry are applied both ways;
//! a failure that ends the workflow keeps its whole cause chain.

use reprise_codecs::{Aes256Gcm, Keyring};
use reprise_sdk::history::*;
use reprise_sdk::*;

use crate::harness::{Run, payload};

const QUOTE: ActivityDef<u32, u64> = ActivityDef::new("quote");
const APPROVE: SignalDef<String> = SignalDef::new("approve");
const WF: WorkflowDef<u32, u64> = WorkflowDef::new("wf");

fn quoting() -> Registry {
    Registry::builder()
        .workflow(
            WF,
            |ctx, n| async move { Ok(ctx.activity(QUOTE, &n).await?) },
        )
        .build()
        .unwrap()
}

fn undecodable(error: reprise_sdk::Error) -> UndecodablePayload {
    match error {
        reprise_sdk::Error::UndecodablePayload(e) => *e,
        other => panic!("expected an undecodable payload, got: {other}"),
    }
}

#[test]
fn an_activity_result_that_does_not_decode_names_its_seq_and_type() {
    let mut run = Run::start(quoting(), "wf", 3u32);
    let scheduled = run.open_activity("quote");
    let err = run
        .try_input(EventKind::ActivityCompleted(ActivityCompleted {
            scheduled,
            result: payload("not a number"),
            attempt: 1,
        }))
        .unwrap_err();
    let e = undecodable(err);
    assert_eq!(e.seq, Seq::new(3), "the ActivityCompleted event");
    assert_eq!(e.holder, r#"result of activity "quote""#);
    assert_eq!(e.rust_type, "u64");
    let message = e.to_string();
    assert!(
        message.starts_with(
            r#"payload at seq 3 (result of activity "quote") does not decode as u64: payload does not decode: invalid type: string"#
        ),
        "{message}"
    );
    assert!(!message.contains("nondeterminism"), "{message}");
}

#[test]
fn replaying_a_history_with_an_undecodable_payload_reports_the_same_error() {
    let mut history = HistoryBuilder::started("wf", "wf-1", payload(3u32)).unwrap();
    let scheduled = history.push(EventKind::ActivityScheduled(ActivityScheduled {
        activity_type: ActivityType::new("quote").unwrap(),
        task_queue: TaskQueue::new("default").unwrap(),
        input: payload(3u32),
        options: ActivityOptions::default(),
        priority: None,
    }));
    history.push(EventKind::ActivityCompleted(ActivityCompleted {
        scheduled,
        result: payload(std::collections::BTreeMap::from([("price", 5)])),
        attempt: 1,
    }));
    let events = history.events().to_vec();
    let err = Execution::replay(&quoting(), &events).err().unwrap();
    assert_eq!(undecodable(err).seq, Seq::new(3));
}

#[test]
fn a_signal_that_does_not_decode_names_the_signal() {
    let registry = Registry::builder()
        .workflow(WorkflowDef::<u32, String>::new("wf"), |ctx, _| async move {
            Ok(ctx.signal(APPROVE).await?)
        })
        .build()
        .unwrap();
    let mut run = Run::start(registry, "wf", 0u32);
    let err = run
        .try_input(EventKind::SignalReceived(SignalReceived {
            name: SignalName::new("approve").unwrap(),
            payload: payload(12345u64),
        }))
        .unwrap_err();
    let e = undecodable(err);
    assert_eq!(e.holder, r#"signal "approve""#);
    assert_eq!(e.seq, Seq::new(2));
}

#[test]
fn a_workflow_input_that_does_not_decode_fails_the_first_step() {
    let started = HistoryBuilder::started("wf", "wf-1", payload("three"))
        .unwrap()
        .events()[0]
        .clone();
    let err = Execution::start(&quoting(), started).err().unwrap();
    let e = undecodable(err);
    assert_eq!((e.seq, e.holder.as_str()), (Seq::FIRST, "workflow input"));
}

fn encrypting(keys: &str) -> Registry {
    Registry::builder()
        .codec(Aes256Gcm::new(Keyring::parse(keys).unwrap()))
        .workflow(
            WF,
            |ctx, n| async move { Ok(ctx.activity(QUOTE, &n).await?) },
        )
        .build()
        .unwrap()
}

const K1: &str = "k1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

#[test]
fn registry_codecs_encode_decisions_and_decode_results() {
    let registry = encrypting(K1);
    let converter = registry.converter().clone();
    let started = HistoryBuilder::started("wf", "wf-1", converter.to_payload(&7u32).unwrap())
        .unwrap()
        .events()[0]
        .clone();
    let (mut execution, step) = Execution::start(&registry, started).unwrap();
    let EventKind::ActivityScheduled(s) = &step.events[1].kind else {
        panic!("expected the activity to be scheduled");
    };
    assert_eq!(
        s.input.format(),
        PayloadFormat::Codec {
            codec: "aes256gcm",
            note: "k1"
        }
    );
    assert_eq!(converter.from_payload::<u32>(&s.input).unwrap(), 7);
    let at = step.events[0].recorded_at;
    let step = execution
        .step([(
            at,
            EventKind::ActivityCompleted(ActivityCompleted {
                scheduled: Seq::new(2),
                result: converter.to_payload(&99u64).unwrap(),
                attempt: 1,
            }),
        )])
        .unwrap();
    let RunStatus::Completed(result) = execution.status() else {
        panic!("expected completion, got {:?}", execution.status());
    };
    assert_eq!(converter.from_payload::<u64>(result).unwrap(), 99);
    assert!(matches!(result.format(), PayloadFormat::Codec { .. }));
    assert_eq!(step.events.len(), 2);

    // A process without the key: the run waits, with the key id named.
    let other = encrypting("k2:AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=");
    let mut history = vec![];
    history.extend(
        HistoryBuilder::started("wf", "wf-1", converter.to_payload(&7u32).unwrap())
            .unwrap()
            .events()
            .iter()
            .cloned(),
    );
    let err = Execution::replay(&other, &history).err().unwrap();
    let message = undecodable(err).to_string();
    assert!(message.contains(r#"no key with id "k1""#), "{message}");
}

#[test]
fn a_failed_activity_keeps_every_cause_and_no_message_repeats() {
    let mut run = Run::start(quoting(), "wf", 3u32);
    let scheduled = run.open_activity("quote");
    let failure = Failure::application("PricingDown", "pricing service unavailable")
        .retryable(false)
        .caused_by("Timeout", "connect timed out after 5s")
        .with_details(payload("eu-west"));
    run.input(EventKind::ActivityFailed(ActivityFailed {
        scheduled,
        failure,
        attempt: 4,
    }));
    let RunStatus::Failed(failure) = run.status() else {
        panic!("expected the workflow to fail, got {:?}", run.status());
    };
    assert_eq!(failure.error_type, "ActivityFailed");
    assert_eq!(
        failure.message,
        r#"activity "quote" failed after 4 attempt(s)"#
    );
    let causes: Vec<(&str, &str)> = failure
        .causes
        .iter()
        .map(|c| (c.error_type.as_str(), c.message.as_str()))
        .collect();
    assert_eq!(
        causes,
        [
            ("PricingDown", "pricing service unavailable"),
            ("Timeout", "connect timed out after 5s"),
        ]
    );
    assert_eq!(
        failure
            .details
            .as_ref()
            .unwrap()
            .decode::<String>()
            .unwrap(),
        "eu-west"
    );
    let shown = failure.to_string();
    assert_eq!(
        shown.matches("pricing service unavailable").count(),
        1,
        "{shown}"
    );
}

#[test]
fn failure_details_go_through_the_codecs_too() {
    const DECLINE: ActivityDef<u32, u32> = ActivityDef::new("decline");
    let registry = Registry::builder()
        .codec(Aes256Gcm::new(Keyring::parse(K1).unwrap()))
        .activity(DECLINE, |_, _: u32| async move {
            let details = Payload::encode(&"card 4242", &Limits::DEFAULT).unwrap();
            Err::<u32, _>(ActivityError::from_failure(
                Failure::application("Declined", "declined").with_details(details),
            ))
        })
        .build()
        .unwrap();
    let ActivityRunner::Async(run) = registry
        .activity(&ActivityType::new("decline").unwrap())
        .unwrap()
    else {
        panic!("decline is async");
    };
    let info = ActivityInfo {
        workflow_id: WorkflowId::new("wf-1").unwrap(),
        run_id: RunId::from_uuid(uuid::Uuid::nil()),
        scheduled_seq: Seq::new(2),
        activity_type: ActivityType::new("decline").unwrap(),
        attempt: 1,
    };
    struct NoBeats;
    impl HeartbeatSink for NoBeats {
        fn heartbeat(&self, _: &ActivityInfo, _: Payload) {}
    }
    let ctx = ActivityContext::new(
        info,
        std::sync::Arc::new(NoBeats),
        CancellationSignal::new(),
        registry.converter().clone(),
    );
    let input = registry.converter().to_payload(&1u32).unwrap();
    let err = futures::executor::block_on(run(ctx, input)).unwrap_err();
    let details = err.failure().details.clone().unwrap();
    assert!(
        matches!(
            details.format(),
            PayloadFormat::Codec {
                codec: "aes256gcm",
                ..
            }
        ),
        "details stored as {}",
        details.format()
    );
    assert_eq!(
        registry
            .converter()
            .from_payload::<String>(&details)
            .unwrap(),
        "card 4242"
    );
}

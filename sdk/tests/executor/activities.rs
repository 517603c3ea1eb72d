//! Activities as a worker runs them: the registry's runners and the `ActivityContext`.

use std::sync::{Arc, Mutex};

use reprise_sdk::history::*;
use reprise_sdk::*;

const CHARGE: ActivityDef<u64, String> = ActivityDef::new("charge");
const HASH: ActivityDef<String, u64> = ActivityDef::new("hash");

#[derive(Default)]
struct Recorder(Mutex<Vec<(u32, u64)>>);

impl HeartbeatSink for Recorder {
    fn heartbeat(&self, info: &ActivityInfo, details: Payload) {
        self.0
            .lock()
            .unwrap()
            .push((info.attempt, details.decode().unwrap()));
    }
}

fn context(attempt: u32, sink: Arc<Recorder>, cancellation: CancellationSignal) -> ActivityContext {
    let info = ActivityInfo {
        workflow_id: WorkflowId::new("order-1").unwrap(),
        run_id: RunId::from_uuid(uuid::Uuid::from_u128(42)),
        scheduled_seq: Seq::new(5),
        activity_type: ActivityType::new("charge").unwrap(),
        attempt,
    };
    ActivityContext::new(info, sink, cancellation, DataConverter::default())
}

async fn charge(ctx: ActivityContext, cents: u64) -> Result<String, ActivityError> {
    for step in 1..=3u64 {
        ctx.heartbeat(&step)?;
    }
    if ctx.attempt() < 2 {
        return Err(ActivityError::retryable("BankBusy", "try again"));
    }
    Ok(format!(
        "charged {cents} with key {}",
        ctx.idempotency_key()
    ))
}

fn hash(_: ActivityContext, text: String) -> Result<u64, ActivityError> {
    Ok(text.bytes().map(u64::from).sum())
}

fn registry() -> Registry {
    Registry::builder()
        .activity(CHARGE, charge)
        .blocking_activity(HASH, hash)
        .build()
        .unwrap()
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

#[test]
fn an_async_activity_runs_with_attempt_key_and_heartbeats() {
    let sink = Arc::new(Recorder::default());
    let ActivityRunner::Async(run) = registry()
        .activity(&ActivityType::new("charge").unwrap())
        .unwrap()
    else {
        panic!("charge is async");
    };
    let input = Payload::encode(&250u64, &Limits::DEFAULT).unwrap();

    let first = block_on(run(
        context(1, sink.clone(), CancellationSignal::new()),
        input.clone(),
    ))
    .unwrap_err();
    assert_eq!(first.failure().to_string(), "BankBusy: try again");
    assert!(first.failure().retryable);

    let second = block_on(run(
        context(2, sink.clone(), CancellationSignal::new()),
        input,
    ))
    .unwrap();
    let text: String = second.decode().unwrap();
    assert_eq!(
        text,
        "charged 250 with key 00000000-0000-0000-0000-00000000002a/5"
    );
    assert_eq!(
        *sink.0.lock().unwrap(),
        [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3)]
    );
}

#[test]
fn a_blocking_activity_runs_as_a_plain_function() {
    let ActivityRunner::Blocking(run) = registry()
        .activity(&ActivityType::new("hash").unwrap())
        .unwrap()
    else {
        panic!("hash is blocking");
    };
    let input = Payload::encode(&"ab".to_string(), &Limits::DEFAULT).unwrap();
    let out = run(context(1, Arc::default(), CancellationSignal::new()), input).unwrap();
    assert_eq!(out.decode::<u64>().unwrap(), 97 + 98);
}

#[test]
fn an_input_of_the_wrong_type_fails_the_attempt_naming_the_type() {
    let ActivityRunner::Async(run) = registry()
        .activity(&ActivityType::new("charge").unwrap())
        .unwrap()
    else {
        panic!("charge is async");
    };
    let input = Payload::encode(&"not a number", &Limits::DEFAULT).unwrap();
    let err = block_on(run(
        context(1, Arc::default(), CancellationSignal::new()),
        input,
    ))
    .unwrap_err();
    assert_eq!(err.failure().error_type, "UndecodablePayload");
    assert!(
        err.failure().message.contains("as u64"),
        "{}",
        err.failure().message
    );
    // A worker with the fixed type (or the codec's key) can still run it.
    assert!(err.failure().retryable);
}

#[test]
#[allow(clippy::disallowed_methods)] // Activities may use threads; sdk/clippy.toml is for workflows.
fn cancellation_reaches_a_running_activity() {
    let cancellation = CancellationSignal::new();
    let ctx = context(1, Arc::default(), cancellation.clone());
    assert!(!ctx.is_cancelled());
    let waiting = std::thread::spawn({
        let ctx = ctx.clone();
        move || block_on(ctx.cancelled())
    });
    cancellation.cancel();
    waiting.join().unwrap();
    assert!(ctx.is_cancelled());
}

#[test]
fn rust_errors_become_retryable_failures_named_by_type() {
    let err: ActivityError = std::io::Error::other("disk on fire").into();
    assert_eq!(err.failure().error_type, "Error");
    assert_eq!(err.failure().message, "disk on fire");
    assert!(err.failure().retryable);
    let err = ActivityError::non_retryable("CardDeclined", "no");
    assert!(!err.failure().retryable);
}

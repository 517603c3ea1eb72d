//! Local activities: run by the engine while its batch holds their run, inside the step that
//! scheduled them, with no task row, claim or outcome statement. The attempt rules are the
//! sdk's (`LocalActivityRequest::run`, the same `TestEnv` follows); this is their tokio side.
//!
//! The batch's transaction holds the run's row lock for as long as its local activities run,
//! so no other engine can step the run meanwhile: each outcome is written once, with the step,
//! or (if the engine dies or the batch fails) not at all, and the next step runs it again.
//! Outcomes are recorded at the batch's database time, like every event of the step.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use reprise_history::{DataConverter, Event, EventKind, Payload, Timestamp};
use reprise_sdk::{
    ActivityContext, ActivityInfo, ActivityRunner, AttemptEnd, CancellationSignal, Execution,
    HeartbeatSink, LocalActivityRequest, Registry,
};

use crate::store::TaskOutcome;
use crate::telemetry::{LocalAttemptOutcome, Metrics};
use crate::worker::run_attempt;

/// Local activities have no lease to extend: their heartbeats go nowhere.
struct NoHeartbeats;

impl HeartbeatSink for NoHeartbeats {
    fn heartbeat(&self, _: &ActivityInfo, _: Payload) {}
}

/// Runs the local activities `execution` waits on, concurrently, delivering each outcome as it
/// comes (its step's events are appended to `events`) and starting those the code schedules
/// next, until none waits. `at` is the batch's database time, at which the outcomes are
/// recorded and from which deadlines count. Fails, for the run to be parked, when a local
/// activity's type is not registered here, or when delivering an outcome fails the step.
pub(super) async fn run_local_activities(
    registry: &Registry,
    metrics: &Metrics,
    execution: &mut Execution,
    events: &mut Vec<Event>,
    at: Timestamp,
) -> Result<(), reprise_sdk::Error> {
    let began = Instant::now();
    let mut running = FuturesUnordered::new();
    loop {
        for request in execution.take_local_activities() {
            let runner = registry.activity(&request.activity_type)?;
            let converter = registry.converter().clone();
            running.push(run_local(converter, metrics, runner, request, at, began));
        }
        // Those still running when the run closes are dropped: their outcomes had no taker.
        let Some(outcome) = running.next().await else {
            return Ok(());
        };
        if let Some(step) = execution.resolve_local_activity(at, outcome)? {
            events.extend(step.events);
        }
    }
}

/// One local activity's attempts, each within its timeout (raising its cancellation when the
/// time is up), to the outcome its step records.
async fn run_local(
    converter: DataConverter,
    metrics: &Metrics,
    runner: ActivityRunner,
    request: LocalActivityRequest,
    at: Timestamp,
    began: Instant,
) -> EventKind {
    let attempt = |number: u32, timeout: Duration| {
        let cancellation = CancellationSignal::new();
        let ctx = ActivityContext::new(
            request.info(number),
            Arc::new(NoHeartbeats),
            cancellation.clone(),
            converter.clone(),
        );
        let attempt = run_attempt(runner.clone(), ctx, request.input.clone());
        let activity_type = request.activity_type.as_str();
        async move {
            let started = Instant::now();
            let (end, outcome) = match tokio::time::timeout(timeout, attempt).await {
                Ok(TaskOutcome::Completed(result)) => (
                    AttemptEnd::Completed(result),
                    LocalAttemptOutcome::completed,
                ),
                Ok(TaskOutcome::Failed(failure)) => {
                    (AttemptEnd::Failed(failure), LocalAttemptOutcome::failed)
                }
                Err(_) => {
                    cancellation.cancel();
                    (AttemptEnd::TimedOut, LocalAttemptOutcome::timed_out)
                }
            };
            metrics.local_attempt(activity_type, outcome, started.elapsed());
            end
        }
    };
    request
        .run(
            attempt,
            || at.saturating_add(began.elapsed()),
            tokio::time::sleep,
            rand::random::<f64>,
        )
        .await
}

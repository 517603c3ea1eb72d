//! Each context operation, live and (through the harness) replayed from scratch.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::FutureExt;
use reprise_sdk::history::*;
use reprise_sdk::*;

use crate::harness::{Run, payload};

const DOUBLE: ActivityDef<u32, u32> = ActivityDef::new("double");
const UNDO: ActivityDef<u32, ()> = ActivityDef::new("undo");
const APPROVE: SignalDef<String> = SignalDef::new("approve");

fn registry<F, Fut, O>(f: F) -> Registry
where
    F: Fn(WorkflowContext, u32) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<O, WorkflowError>> + Send + 'static,
    O: serde::Serialize + 'static,
{
    Registry::builder()
        .workflow(WorkflowDef::<u32, O>::new("wf"), f)
        .build()
        .unwrap()
}

#[test]
fn an_activity_is_scheduled_and_its_result_returned() {
    let mut run = Run::start(
        registry(|ctx, n| async move { Ok(ctx.activity(DOUBLE, &n).await? + 1) }),
        "wf",
        20u32,
    );
    assert_eq!(run.kinds(), ["WorkflowStarted", "ActivityScheduled"]);
    let EventKind::ActivityScheduled(s) = &run.history[1].kind else {
        panic!()
    };
    assert_eq!(s.input.decode::<u32>().unwrap(), 20);
    assert_eq!(
        s.task_queue.as_str(),
        "default",
        "the workflow's own queue by default"
    );
    run.complete("double", 40u32);
    assert_eq!(run.output::<u32>(), 41);
    assert_eq!(run.kinds().last(), Some(&"WorkflowCompleted"));
}

#[test]
fn activity_options_and_queue_are_recorded() {
    let options = ActivityOptions {
        start_to_close: Some(Duration::from_secs(5)),
        ..ActivityOptions::default()
    };
    let expected = options.clone();
    let run = Run::start(
        registry(move |ctx, n| {
            let options = options.clone();
            async move {
                let queue = TaskQueue::new("gpu").unwrap();
                Ok(ctx
                    .activity(DOUBLE, &n)
                    .options(options)
                    .task_queue(queue)
                    .await?)
            }
        }),
        "wf",
        1u32,
    );
    let EventKind::ActivityScheduled(s) = &run.history[1].kind else {
        panic!()
    };
    assert_eq!(s.options, expected);
    assert_eq!(s.task_queue.as_str(), "gpu");
}

#[test]
fn a_failed_activity_is_an_error_the_workflow_can_handle() {
    let mut run = Run::start(
        registry(|ctx, n| async move {
            match ctx.activity(DOUBLE, &n).await {
                Ok(v) => Ok(format!("ok {v}")),
                Err(e) => Ok(format!(
                    "{:?} after {}: {}",
                    e.end, e.attempts, e.failure.message
                )),
            }
        }),
        "wf",
        1u32,
    );
    let scheduled = run.open_activity("double");
    run.input(EventKind::ActivityFailed(ActivityFailed {
        scheduled,
        failure: Failure::application("Boom", "exploded").retryable(false),
        attempt: 3,
    }));
    assert_eq!(run.output::<String>(), "Failed after 3: exploded");
}

#[test]
fn a_timed_out_activity_says_so() {
    let mut run = Run::start(
        registry(|ctx, n| async move {
            Ok(format!(
                "{:?}",
                ctx.activity(DOUBLE, &n).await.unwrap_err().end
            ))
        }),
        "wf",
        1u32,
    );
    let scheduled = run.open_activity("double");
    run.input(EventKind::ActivityTimedOut(ActivityTimedOut {
        scheduled,
        timeout: TimeoutKind::StartToClose,
        attempt: 1,
        last_failure: None,
        last_heartbeat: None,
    }));
    assert_eq!(run.output::<String>(), "TimedOut");
}

#[test]
fn a_durable_sleep_starts_a_timer_and_resumes_when_it_fires() {
    let mut run = Run::start(
        registry(|ctx, _| async move {
            let before = ctx.now();
            ctx.sleep(Duration::from_secs(30 * 86_400)).await?;
            Ok(ctx.now().as_unix_micros() - before.as_unix_micros())
        }),
        "wf",
        0u32,
    );
    let EventKind::TimerStarted(t) = &run.history[1].kind else {
        panic!("{:?}", run.kinds())
    };
    assert_eq!(t.duration, Duration::from_secs(30 * 86_400));
    let timer = run.open_timers()[0];
    run.fire(timer);
    assert_eq!(
        run.output::<i64>(),
        10_000,
        "now() is the recorded time of the input"
    );
}

#[test]
fn a_timer_that_loses_a_select_is_cancelled() {
    let mut run = Run::start(
        registry(|ctx, n| async move {
            let work = ctx.activity(DOUBLE, &n).fuse();
            let timeout = ctx.sleep(Duration::from_secs(60)).fuse();
            futures::pin_mut!(work, timeout);
            reprise_sdk::select! {
                v = work => Ok(v?),
                _ = timeout => Ok(0),
            }
        }),
        "wf",
        4u32,
    );
    assert_eq!(
        run.kinds(),
        ["WorkflowStarted", "ActivityScheduled", "TimerStarted"]
    );
    run.complete("double", 8u32);
    assert_eq!(
        run.kinds(),
        [
            "WorkflowStarted",
            "ActivityScheduled",
            "TimerStarted",
            "ActivityCompleted",
            "TimerCancelled",
            "WorkflowCompleted"
        ]
    );
    assert_eq!(run.output::<u32>(), 8);
}

#[test]
fn an_activity_that_loses_a_select_gets_a_cancel_request() {
    let mut run = Run::start(
        registry(|ctx, n| async move {
            let work = ctx.activity(DOUBLE, &n).fuse();
            let timeout = ctx.sleep(Duration::from_secs(60)).fuse();
            futures::pin_mut!(work, timeout);
            reprise_sdk::select! {
                v = work => Ok(v?),
                _ = timeout => Ok(0),
            }
        }),
        "wf",
        4u32,
    );
    let timer = run.open_timers()[0];
    run.fire(timer);
    assert_eq!(run.output::<u32>(), 0);
    assert_eq!(
        run.kinds(),
        [
            "WorkflowStarted",
            "ActivityScheduled",
            "TimerStarted",
            "TimerFired",
            "ActivityCancelRequested",
            "WorkflowCompleted"
        ]
    );
}

#[test]
fn signals_are_buffered_until_awaited_and_typed() {
    let mut run = Run::start(
        registry(|ctx, _| async move {
            ctx.sleep(Duration::from_secs(1)).await?;
            let first = ctx.signal(APPROVE).await?;
            let second = ctx.signal(APPROVE).await?;
            Ok(format!("{first}+{second}"))
        }),
        "wf",
        0u32,
    );
    run.signal("approve", "alice");
    let timer = run.open_timers()[0];
    run.fire(timer);
    assert_eq!(
        run.status(),
        &RunStatus::Running,
        "one signal buffered, waiting for the second"
    );
    run.signal("approve", "bob");
    assert_eq!(run.output::<String>(), "alice+bob");
}

#[test]
fn join_and_join_all_run_operations_concurrently() {
    let mut run = Run::start(
        registry(|ctx, n| async move {
            let (a, b) = futures::join!(ctx.activity(DOUBLE, &n), ctx.activity(DOUBLE, &(n + 1)));
            let many = futures::future::join_all((0..40).map(|i| ctx.activity(DOUBLE, &i))).await;
            let sum: u32 = many.into_iter().map(|r| r.unwrap()).sum();
            Ok(a? + b? + sum)
        }),
        "wf",
        1u32,
    );
    assert_eq!(run.open_activities().len(), 2);
    // Complete the second first: order of completion is history's, not the code's.
    let open = run.open_activities();
    for (seq, _) in open.into_iter().rev() {
        run.input(EventKind::ActivityCompleted(ActivityCompleted {
            scheduled: seq,
            result: payload(10u32),
            attempt: 1,
        }));
    }
    assert_eq!(
        run.open_activities().len(),
        40,
        "join_all schedules all 40 at once"
    );
    let mut open = run.open_activities();
    open.reverse();
    for (seq, _) in open {
        run.input(EventKind::ActivityCompleted(ActivityCompleted {
            scheduled: seq,
            result: payload(1u32),
            attempt: 1,
        }));
    }
    assert_eq!(run.output::<u32>(), 60);
}

const CHILD: WorkflowDef<u32, u32> = WorkflowDef::new("child");

#[test]
fn a_child_workflow_is_started_and_its_result_returned() {
    let mut run = Run::start(
        registry(|ctx, n| async move {
            let ok = ctx.child(CHILD, "child-1", &n).await?;
            let failed = ctx.child(CHILD, "child-2", &n).await.unwrap_err();
            Ok(format!("{ok} {:?} {}", failed.end, failed.failure.message))
        }),
        "wf",
        7u32,
    );
    let EventKind::ChildWorkflowStarted(c) = &run.history[1].kind else {
        panic!("{:?}", run.kinds())
    };
    assert_eq!(
        (c.workflow_type.as_str(), c.workflow_id.as_str()),
        ("child", "child-1")
    );
    let started = run.open_children()[0];
    run.input(EventKind::ChildWorkflowCompleted(ChildWorkflowCompleted {
        started,
        result: payload(14u32),
    }));
    let started = run.open_children()[0];
    run.input(EventKind::ChildWorkflowFailed(ChildWorkflowFailed {
        started,
        failure: Failure::of_kind(FailureKind::Terminated, "by operator"),
    }));
    assert_eq!(run.output::<String>(), "14 Failed by operator");
}

#[test]
fn continue_as_new_closes_the_run_with_the_next_input() {
    let run = Run::start(
        registry(|ctx, n| async move {
            if n < 3 {
                return Err(ctx.continue_as_new(&(n + 1))?);
            }
            Ok(n)
        }),
        "wf",
        1u32,
    );
    let RunStatus::ContinuedAsNew(next) = run.status() else {
        panic!("{:?}", run.status())
    };
    assert_eq!(next.input.decode::<u32>().unwrap(), 2);
    assert_eq!(next.workflow_type.as_str(), "wf");
    assert_eq!(run.kinds(), ["WorkflowStarted", "WorkflowContinuedAsNew"]);
}

#[test]
fn patched_records_a_marker_live_and_stays_true() {
    let run = Run::start(
        registry(|ctx, _| async move { Ok((ctx.patched("fix-1"), ctx.patched("fix-1"))) }),
        "wf",
        0u32,
    );
    assert_eq!(run.output::<(bool, bool)>(), (true, true));
    assert_eq!(
        run.kinds(),
        ["WorkflowStarted", "MarkerRecorded", "WorkflowCompleted"]
    );
}

#[test]
fn patched_is_false_when_replaying_history_without_the_marker() {
    // v1 had no patch: it scheduled `double` and returned its result.
    let v1 = registry(|ctx, n| async move { Ok(ctx.activity(DOUBLE, &n).await?) });
    let mut run = Run::start(v1, "wf", 2u32);
    run.complete("double", 4u32);
    // v2 guards a new activity with a patch: old histories take the old branch.
    let v2 = registry(|ctx, n| async move {
        if ctx.patched("add-undo") {
            ctx.activity(UNDO, &n).await?;
        }
        Ok(ctx.activity(DOUBLE, &n).await?)
    });
    let replayed = Execution::replay(&v2, &run.history).unwrap();
    assert_eq!(replayed.status(), run.status());
    // And a new run of v2 takes the new branch, and replays.
    let mut new_run = Run::start(v2, "wf", 2u32);
    assert_eq!(
        new_run.kinds(),
        ["WorkflowStarted", "MarkerRecorded", "ActivityScheduled"]
    );
    new_run.complete("undo", ());
    new_run.complete("double", 4u32);
    assert_eq!(new_run.output::<u32>(), 4);
}

#[test]
fn deprecate_patch_accepts_histories_with_or_without_the_marker() {
    let v2 = registry(|ctx, n| async move {
        if ctx.patched("p") {
            return Ok(n * 10);
        }
        Ok(n)
    });
    let with_marker = Run::start(v2, "wf", 3u32);
    let v3 = registry(|ctx, n| async move {
        ctx.deprecate_patch("p");
        Ok(n * 10)
    });
    assert!(Execution::replay(&v3, &with_marker.history).is_ok());
    let without_marker = Run::start(v3.clone(), "wf", 3u32);
    assert_eq!(
        without_marker.kinds(),
        ["WorkflowStarted", "WorkflowCompleted"]
    );
    assert!(Execution::replay(&v3, &without_marker.history).is_ok());
}

#[test]
fn a_side_effect_runs_once_and_replays_its_recorded_value() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let run = Run::start(
        registry(move |ctx, _| {
            let counter = counter.clone();
            async move {
                let value =
                    ctx.side_effect(|| counter.fetch_add(1, Ordering::SeqCst) as u64 + 100)?;
                Ok(value)
            }
        }),
        "wf",
        0u32,
    );
    // Run::start replayed the history once more: the closure still ran only live.
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(run.output::<u64>(), 100);
}

#[test]
fn randomness_and_uuids_replay_identically_and_differ_between_runs() {
    let wf = || {
        registry(|ctx, _| async move {
            ctx.sleep(Duration::from_secs(1)).await?;
            Ok((
                ctx.random_u64(),
                ctx.uuid().to_string(),
                ctx.run_id().to_string(),
            ))
        })
    };
    let mut a = Run::start(wf(), "wf", 0u32);
    let t = a.open_timers()[0];
    a.fire(t); // the harness replays and compares the output, which holds the random values
    let mut b = Run::start(wf(), "wf", 0u32);
    let t = b.open_timers()[0];
    b.fire(t);
    let (ra, ua, _) = a.output::<(u64, String, String)>();
    let (rb, ub, _) = b.output::<(u64, String, String)>();
    assert_ne!((ra, ua), (rb, ub), "each run has its own seed");
}

#[test]
fn cancellation_is_an_error_the_workflow_catches_to_compensate() {
    let mut run = Run::start(
        registry(|ctx, n| async move {
            let reserved = ctx.activity(DOUBLE, &n).await?;
            match ctx.activity(DOUBLE, &reserved).await {
                Ok(v) => Ok(v),
                Err(e) if e.end == OperationEnd::Cancelled => {
                    // The saga's compensation still runs after the cancel request.
                    ctx.activity(UNDO, &reserved).await?;
                    Err(WorkflowError::Cancelled { details: None })
                }
                Err(e) => Err(e.into()),
            }
        }),
        "wf",
        5u32,
    );
    run.complete("double", 10u32);
    run.cancel();
    assert_eq!(
        run.kinds()[2..],
        [
            "ActivityCompleted",
            "ActivityScheduled",
            "CancelRequested",
            "ActivityCancelRequested",
            "ActivityScheduled"
        ]
    );
    // The cancelled activity's late outcome is accepted and ignored.
    let cancelled = run.history[3].seq;
    run.input(EventKind::ActivityCancelled(ActivityCancelled {
        scheduled: cancelled,
        attempt: 1,
        details: None,
    }));
    run.complete("undo", ());
    assert_eq!(run.status(), &RunStatus::Cancelled);
}

#[test]
fn cancel_requested_resolves_a_waiting_workflow() {
    let mut run = Run::start(
        registry(|ctx, _| async move {
            ctx.cancel_requested().await;
            Ok(ctx.is_cancel_requested())
        }),
        "wf",
        0u32,
    );
    run.cancel();
    assert!(run.output::<bool>());
}

#[test]
fn a_terminated_run_takes_no_more_inputs() {
    let mut run = Run::start(
        registry(|ctx, n| async move { Ok(ctx.activity(DOUBLE, &n).await?) }),
        "wf",
        1u32,
    );
    run.input(EventKind::WorkflowTerminated(WorkflowTerminated {
        reason: "stuck".into(),
    }));
    assert_eq!(run.status(), &RunStatus::Terminated);
    let err = run.try_input(EventKind::SignalReceived(SignalReceived {
        name: SignalName::new("x").unwrap(),
        payload: Payload::unit(),
    }));
    assert!(matches!(err, Err(reprise_sdk::Error::RunClosed)), "{err:?}");
}

#[test]
fn a_workflow_error_fails_the_run() {
    let run = Run::start(
        registry(|_, _| async move { Err::<u32, _>(WorkflowError::failed("Invalid", "no")) }),
        "wf",
        1u32,
    );
    let RunStatus::Failed(failure) = run.status() else {
        panic!()
    };
    assert_eq!(failure.to_string(), "Invalid: no");
}

#[test]
fn a_panic_in_workflow_code_fails_the_step_not_the_process() {
    let registry = registry(|ctx, n| async move {
        ctx.activity(DOUBLE, &n).await?;
        if n > 0 {
            panic!("invariant broken: n = {n}");
        }
        Ok(n)
    });
    let started = HistoryBuilder::started("wf", "wf-1", payload(3u32))
        .unwrap()
        .events()[0]
        .clone();
    let (mut execution, step) = Execution::start(&registry, started).unwrap();
    let scheduled = step.events[1].seq;
    let err = execution
        .step([(
            Timestamp::UNIX_EPOCH,
            EventKind::ActivityCompleted(ActivityCompleted {
                scheduled,
                result: payload(6u32),
                attempt: 1,
            }),
        )])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "workflow code panicked while applying seq 3: invariant broken: n = 3"
    );
    let again = execution.step([]).map(|_| ());
    assert!(again.is_ok(), "no inputs, no work");
    let err = execution
        .step([(
            Timestamp::UNIX_EPOCH,
            EventKind::CancelRequested(CancelRequested {
                reason: String::new(),
            }),
        )])
        .unwrap_err();
    assert!(matches!(err, reprise_sdk::Error::Discarded), "{err}");
}

#[test]
fn registry_mistakes_are_clear_errors() {
    let err = Registry::builder()
        .workflow(
            WorkflowDef::<u32, u32>::new("wf"),
            |_, n| async move { Ok(n) },
        )
        .workflow(
            WorkflowDef::<u32, u32>::new("wf"),
            |_, n| async move { Ok(n) },
        )
        .build()
        .err()
        .unwrap();
    assert_eq!(err.to_string(), "workflow \"wf\" is registered twice");
    let err = Registry::builder()
        .activity(
            ActivityDef::<u32, u32>::new(""),
            |_, n| async move { Ok(n) },
        )
        .build()
        .err()
        .unwrap();
    assert!(err.to_string().contains("must not be empty"), "{err}");

    let registry = registry(|_, n| async move { Ok(n) });
    let started = HistoryBuilder::started("payments", "p-1", Payload::unit())
        .unwrap()
        .events()[0]
        .clone();
    let err = Execution::start(&registry, started).err().unwrap();
    assert_eq!(
        err.to_string(),
        "no workflow type \"payments\" is registered (registered: wf); register it with RegistryBuilder::workflow"
    );
    let err = registry
        .activity(&ActivityType::new("charge").unwrap())
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "no activity type \"charge\" is registered (registered: none); register it with RegistryBuilder::activity"
    );
}

#[test]
fn inputs_after_the_run_closes_are_not_applied() {
    let registry = registry(|ctx, _| async move { Ok(ctx.signal(APPROVE).await?) });
    let started = HistoryBuilder::started("wf", "wf-1", payload(0u32))
        .unwrap()
        .events()[0]
        .clone();
    let (mut execution, _) = Execution::start(&registry, started).unwrap();
    let signal = |who: &str| {
        EventKind::SignalReceived(SignalReceived {
            name: SignalName::new("approve").unwrap(),
            payload: payload(who),
        })
    };
    let step = execution
        .step([
            (Timestamp::UNIX_EPOCH, signal("first")),
            (Timestamp::UNIX_EPOCH, signal("second")),
        ])
        .unwrap();
    assert_eq!(
        step.applied_inputs, 1,
        "the run completed on the first signal"
    );
    assert_eq!(step.events.last().unwrap().kind.name(), "WorkflowCompleted");
    assert!(matches!(execution.status(), RunStatus::Completed(_)));
}

#[test]
fn an_invalid_patch_id_fails_the_step_instead_of_taking_the_old_branch() {
    let registry = registry(|ctx, _| async move { Ok(ctx.patched("bad\nid")) });
    let started = HistoryBuilder::started("wf", "wf-1", payload(0u32))
        .unwrap()
        .events()[0]
        .clone();
    let error = Execution::start(&registry, started).err().unwrap();
    let message = error.to_string();
    assert!(
        matches!(error, reprise_sdk::Error::InvalidPatchId { .. }),
        "{message}"
    );
    assert!(message.contains("\"bad\\nid\""), "{message}");
    assert!(message.contains("operations.rs"), "{message}");
}

/// Workflow state whose `Drop` panics: discarding the execution must not unwind into the
/// caller (an engine would go down with it).
struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("a workflow's state panicked while dropped");
    }
}

#[test]
fn a_panic_in_the_drop_of_workflow_state_stays_inside_the_execution() {
    let registry = registry(|ctx, n| async move {
        let _state = PanicsOnDrop;
        Ok(ctx.activity(DOUBLE, &n).await?)
    });
    let run = Run::start(registry, "wf", 1u32);
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(run)));
    assert!(dropped.is_ok(), "the panic escaped the execution");
}

/// Log lines written by the code under test.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn count(&self, needle: &str) -> usize {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .matches(needle)
            .count()
    }
}

#[test]
fn code_logs_when_it_runs_live_and_not_when_it_replays() {
    let lines = Captured::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::TRACE)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        // The harness replays the whole history after every live step.
        let mut run = Run::start(
            registry(|ctx, n| async move {
                tracing::info!(n, "before the activity");
                let doubled = ctx.activity(DOUBLE, &n).await?;
                let span = tracing::info_span!("after_span", doubled);
                span.in_scope(|| tracing::info!("after the activity"));
                Ok(doubled)
            }),
            "wf",
            2u32,
        );
        run.complete("double", 4u32);
        assert_eq!(run.output::<u32>(), 4);
    });
    assert_eq!(lines.count("before the activity"), 1, "once, live");
    assert_eq!(lines.count("after the activity"), 1, "once, live");
    assert_eq!(lines.count("after_span"), 1, "the span, once");
}

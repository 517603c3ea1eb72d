//! Workflow deadlines and retries on PostgreSQL, time moved by the test clock: a run timeout
//! closes a run as timed out and terminates its child; an execution timeout holds across
//! continue-as-new; a failed workflow is retried as new runs until it succeeds, and not past
//! its attempts, a non-retryable error or its execution deadline; bad options are refused
//! with nothing stored.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use reprise_engine::history::{
    ActivityOptions, EventKind, RetryPolicy, RunOrigin, RunState, WorkflowTimeout,
};
use reprise_engine::{Client, Error, StartOptions, Store};
use reprise_sdk::{
    ActivityContext, ActivityDef, ActivityError, Registry, SignalDef, WorkflowContext, WorkflowDef,
    WorkflowError,
};

use crate::engine::within;
use crate::hosts::{Running, engine_options, run_engine, run_worker, worker_options};
use crate::support::TestDb;

/// Stays open until released.
const HOLD: WorkflowDef<u32, u32> = WorkflowDef::new("hold");
const RELEASE: SignalDef<()> = SignalDef::new("release");
/// Starts a `HOLD` child and returns what it returns.
const PARENT: WorkflowDef<u32, u32> = WorkflowDef::new("parent");
/// Sleeps ten minutes, then continues as new with its input plus one.
const LOOP: WorkflowDef<u32, u32> = WorkflowDef::new("loop");
/// Calls `FLAKY_STEP` once (no activity retry) and fails the run if it fails.
const FLAKY: WorkflowDef<(String, u32), u32> = WorkflowDef::new("flaky");
/// Fails its first `n` calls for a key, then returns how many calls there were.
const FLAKY_STEP: ActivityDef<(String, u32), u32> = ActivityDef::new("flaky_step");
/// Fails at once with the error type it is given.
const FAIL: WorkflowDef<String, u32> = WorkflowDef::new("fail");
/// Starts `FLAKY` as a child with retries ("flaky"), or `HOLD` with a run timeout, and says
/// how the child ended.
const GUARDIAN: WorkflowDef<String, String> = WorkflowDef::new("guardian");

async fn guardian(ctx: WorkflowContext, which: String) -> Result<String, WorkflowError> {
    let child = format!("{}-child", ctx.workflow_id());
    let ended = match which.as_str() {
        "flaky" => {
            ctx.child(FLAKY, &child, &(child.clone(), 2))
                .retry(quick_retries(Some(5)))
                .await
        }
        _ => {
            ctx.child(HOLD, &child, &1)
                .run_timeout(Duration::from_secs(3_600))
                .await
        }
    };
    Ok(match ended {
        Ok(n) => format!("returned {n}"),
        Err(e) => format!("{:?}: {}", e.end, e.failure.message),
    })
}

/// Calls of `FLAKY_STEP` by key: tests run at once in this process.
static CALLS: Mutex<Option<HashMap<String, u32>>> = Mutex::new(None);

async fn hold(ctx: WorkflowContext, n: u32) -> Result<u32, WorkflowError> {
    ctx.signal(RELEASE).await?;
    Ok(n)
}

async fn parent(ctx: WorkflowContext, n: u32) -> Result<u32, WorkflowError> {
    let child = format!("{}-child", ctx.workflow_id());
    Ok(ctx.child(HOLD, &child, &n).await?)
}

async fn looping(ctx: WorkflowContext, n: u32) -> Result<u32, WorkflowError> {
    ctx.sleep(Duration::from_secs(600)).await?;
    Err(ctx.continue_as_new(&(n + 1))?)
}

async fn flaky(ctx: WorkflowContext, input: (String, u32)) -> Result<u32, WorkflowError> {
    let once = ActivityOptions {
        retry: RetryPolicy {
            max_attempts: Some(1),
            ..RetryPolicy::default()
        },
        ..ActivityOptions::default()
    };
    match ctx.activity(FLAKY_STEP, &input).options(once).await {
        Ok(calls) => Ok(calls),
        Err(e) => Err(WorkflowError::failed("Flaky", e.failure.message)),
    }
}

fn registry() -> Registry {
    Registry::builder()
        .workflow(HOLD, hold)
        .workflow(PARENT, parent)
        .workflow(LOOP, looping)
        .workflow(FLAKY, flaky)
        .workflow(GUARDIAN, guardian)
        .workflow(FAIL, |_: WorkflowContext, error_type: String| async move {
            Err::<u32, _>(WorkflowError::failed(error_type, "it always fails"))
        })
        .activity(
            FLAKY_STEP,
            |_: ActivityContext, (key, fails): (String, u32)| async move {
                let calls = {
                    let mut calls = CALLS.lock().unwrap();
                    let count = calls.get_or_insert_default().entry(key).or_default();
                    *count += 1;
                    *count
                };
                if calls <= fails {
                    Err(ActivityError::retryable("Busy", format!("call {calls}")))
                } else {
                    Ok(calls)
                }
            },
        )
        .build()
        .unwrap()
}

struct Setup {
    _db: TestDb,
    store: Store,
    client: Client,
    running: Running,
}

async fn setup() -> Setup {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let mut running = Running::new();
    run_engine(&store, registry(), engine_options(), &mut running);
    run_worker(&store, registry(), worker_options(), &mut running);
    let client = Client::new(store.clone());
    Setup {
        _db: db,
        store,
        client,
        running,
    }
}

/// A retry policy that waits 100 ms before the second attempt.
fn quick_retries(max_attempts: Option<u32>) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(200),
        ..RetryPolicy::default()
    }
}

impl Setup {
    /// Every run of a workflow id, oldest first: status and origin.
    async fn runs(&self, workflow_id: &str) -> Vec<(RunState, RunOrigin)> {
        let mut runs = Vec::new();
        let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
            "SELECT run_id FROM reprise.runs WHERE workflow_id = $1 ORDER BY created_at, run_id",
        )
        .bind(workflow_id)
        .fetch_all(self.store.pool())
        .await
        .unwrap();
        for id in ids {
            let run_id = reprise_engine::history::RunId::from_uuid(id);
            let history = self.client.export(run_id).await.unwrap();
            let EventKind::WorkflowStarted(started) = &history.events()[0].kind else {
                panic!("run {run_id} does not begin with WorkflowStarted");
            };
            let status: String =
                sqlx::query_scalar("SELECT status FROM reprise.runs WHERE run_id = $1")
                    .bind(id)
                    .fetch_one(self.store.pool())
                    .await
                    .unwrap();
            runs.push((status.parse().unwrap(), started.origin.clone()));
        }
        runs
    }

    /// Waits until the workflow's latest run has `status`.
    async fn until_status(&self, workflow_id: &str, status: RunState) {
        within(async {
            while self
                .client
                .describe(workflow_id)
                .await
                .ok()
                .map(|d| d.status)
                != Some(status)
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_timeout_closes_the_run_as_timed_out_and_its_child_by_its_policy() {
    let s = setup().await;
    let options = StartOptions {
        run_timeout: Some(Duration::from_secs(3_600)),
        ..StartOptions::default()
    };
    let handle = s
        .client
        .start_with_options(PARENT, "slow", &1, options)
        .await
        .unwrap();
    s.until_status("slow-child", RunState::Running).await;
    let described = s.client.describe("slow").await.unwrap();
    let deadline = described.deadline.expect("describe shows the deadline");
    let started = described.started_at.as_unix_micros();
    assert_eq!(deadline.as_unix_micros() - started, 3_600_000_000);
    s.store.clock().advance(Duration::from_secs(3_590));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        s.client.describe("slow").await.unwrap().status,
        RunState::Running,
        "not yet due"
    );
    s.store.clock().advance(Duration::from_secs(11));
    let err = within(handle.result()).await.unwrap_err();
    match &err {
        Error::WorkflowEnded { status, detail, .. } => {
            assert_eq!(*status, RunState::TimedOut);
            assert!(detail.contains("run timeout"), "{detail}");
        }
        other => panic!("expected a timed-out workflow, got {other:?}"),
    }
    let history = s.client.export(handle.run_id()).await.unwrap();
    let last = &history.events().last().unwrap().kind;
    assert!(
        matches!(last, EventKind::WorkflowTimedOut(t) if t.timeout == WorkflowTimeout::Run),
        "{last:?}"
    );
    // The child's parent-close policy (terminate, the default) applied.
    s.until_status("slow-child", RunState::Terminated).await;
    s.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_execution_timeout_holds_across_continue_as_new() {
    let s = setup().await;
    let options = StartOptions {
        execution_timeout: Some(Duration::from_secs(25 * 60)),
        // Each run lasts ten minutes: the run timeout never closes one.
        run_timeout: Some(Duration::from_secs(15 * 60)),
        ..StartOptions::default()
    };
    let handle = s
        .client
        .start_with_options(LOOP, "looping", &0, options)
        .await
        .unwrap();
    for runs in 1..=3 {
        // Its timer is started before the clock moves past it.
        within(async {
            loop {
                let head = s.client.describe("looping").await.unwrap().head_seq.get();
                if s.runs("looping").await.len() == runs && head >= 2 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        if runs < 3 {
            s.store.clock().advance(Duration::from_secs(10 * 60 + 1));
        }
    }
    s.store.clock().advance(Duration::from_secs(5 * 60));
    let err = within(handle.result()).await.unwrap_err();
    assert!(
        matches!(&err, Error::WorkflowEnded { status: RunState::TimedOut, detail, .. } if detail.contains("execution timeout")),
        "{err:?}"
    );
    let statuses: Vec<RunState> = s.runs("looping").await.into_iter().map(|r| r.0).collect();
    assert_eq!(
        statuses,
        [
            RunState::ContinuedAsNew,
            RunState::ContinuedAsNew,
            RunState::TimedOut
        ]
    );
    s.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_workflow_is_retried_as_new_runs_until_it_succeeds() {
    let s = setup().await;
    let options = StartOptions {
        retry: Some(quick_retries(Some(5))),
        ..StartOptions::default()
    };
    let handle = s
        .client
        .start_with_options(FLAKY, "flaky", &("retried".to_string(), 2), options)
        .await
        .unwrap();
    // The handle follows the attempts to the one that succeeds.
    assert_eq!(within(handle.result()).await.unwrap(), 3);
    let runs = s.runs("flaky").await;
    assert_eq!(runs.len(), 3, "{runs:?}");
    assert_eq!(runs[0], (RunState::Failed, RunOrigin::Client));
    for (attempt, run) in [(2, &runs[1]), (3, &runs[2])] {
        assert!(
            matches!(run.1, RunOrigin::Retried { attempt: a, .. } if a == attempt),
            "{run:?}"
        );
    }
    assert_eq!(runs[1].0, RunState::Failed);
    assert_eq!(runs[2].0, RunState::Completed);
    let described = s.client.describe("flaky").await.unwrap();
    assert_eq!((described.attempt, described.deadline), (3, None));
    let attempt: i32 = sqlx::query_scalar(
        "SELECT attempt FROM reprise.runs WHERE workflow_id = 'flaky' AND status = 'completed'",
    )
    .fetch_one(s.store.pool())
    .await
    .unwrap();
    assert_eq!(attempt, 3);
    s.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retries_stop_at_max_attempts_and_at_non_retryable_errors() {
    let s = setup().await;
    let options = StartOptions {
        retry: Some(quick_retries(Some(2))),
        ..StartOptions::default()
    };
    let handle = s
        .client
        .start_with_options(FLAKY, "gives-up", &("gives-up".to_string(), 10), options)
        .await
        .unwrap();
    let err = within(handle.result()).await.unwrap_err();
    assert!(
        matches!(&err, Error::WorkflowFailed { failure, .. } if failure.error_type == "Flaky"),
        "{err:?}"
    );
    assert_eq!(s.runs("gives-up").await.len(), 2, "two attempts, no more");

    let options = StartOptions {
        retry: Some(RetryPolicy {
            non_retryable_error_types: vec!["Fatal".into()],
            ..quick_retries(None)
        }),
        ..StartOptions::default()
    };
    let handle = s
        .client
        .start_with_options(FAIL, "fatal", &"Fatal".to_string(), options)
        .await
        .unwrap();
    assert!(within(handle.result()).await.is_err());
    assert_eq!(s.runs("fatal").await.len(), 1, "a non-retryable error");
    s.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_timeout_is_retried_and_the_execution_timeout_ends_the_retries() {
    let s = setup().await;
    let options = StartOptions {
        run_timeout: Some(Duration::from_secs(60)),
        execution_timeout: Some(Duration::from_secs(150)),
        retry: Some(quick_retries(None)),
        ..StartOptions::default()
    };
    let handle = s
        .client
        .start_with_options(HOLD, "stuck", &1, options)
        .await
        .unwrap();
    for runs in 2..=3 {
        s.store.clock().advance(Duration::from_secs(61));
        within(async {
            while s.runs("stuck").await.len() < runs {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    }
    // The third run would time out at 183 s; the execution deadline, at 150 s, comes first.
    s.store.clock().advance(Duration::from_secs(30));
    let err = within(handle.result()).await.unwrap_err();
    assert!(
        matches!(&err, Error::WorkflowEnded { status: RunState::TimedOut, detail, .. } if detail.contains("execution timeout")),
        "{err:?}"
    );
    let statuses: Vec<RunState> = s.runs("stuck").await.into_iter().map(|r| r.0).collect();
    assert_eq!(statuses, [RunState::TimedOut; 3]);
    s.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn zero_timeouts_are_refused_with_nothing_stored() {
    let s = setup().await;
    for options in [
        StartOptions {
            run_timeout: Some(Duration::ZERO),
            ..StartOptions::default()
        },
        StartOptions {
            execution_timeout: Some(Duration::ZERO),
            ..StartOptions::default()
        },
        StartOptions {
            retry: Some(RetryPolicy {
                max_attempts: Some(0),
                ..RetryPolicy::default()
            }),
            ..StartOptions::default()
        },
    ] {
        let err = s
            .client
            .start_with_options(HOLD, "never", &1, options)
            .await
            .err()
            .unwrap();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    }
    let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM reprise.runs")
        .fetch_one(s.store.pool())
        .await
        .unwrap();
    assert_eq!(runs, 0);
    s.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_child_is_retried_before_its_parent_hears_and_times_out_by_its_deadline() {
    let s = setup().await;
    let handle = s
        .client
        .start(GUARDIAN, "patient", &"flaky".to_string())
        .await
        .unwrap();
    assert_eq!(within(handle.result()).await.unwrap(), "returned 3");
    let child_runs = s.runs("patient-child").await;
    assert_eq!(child_runs.len(), 3, "{child_runs:?}");
    let history = s.client.export(handle.run_id()).await.unwrap();
    let heard = history
        .events()
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                EventKind::ChildWorkflowCompleted(_) | EventKind::ChildWorkflowFailed(_)
            )
        })
        .count();
    assert_eq!(heard, 1, "the parent hears of the last attempt only");

    let handle = s
        .client
        .start(GUARDIAN, "strict", &"hold".to_string())
        .await
        .unwrap();
    s.until_status("strict-child", RunState::Running).await;
    s.store.clock().advance(Duration::from_secs(3_601));
    assert_eq!(
        within(handle.result()).await.unwrap(),
        "TimedOut: the workflow run reached its run timeout"
    );
    s.running.stop().await;
}

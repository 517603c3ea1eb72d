//! The workflow lifecycle on PostgreSQL: cancellation, children, continue-as-new, termination,
//! id reuse, listing, parked and failed runs, reset, retention.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use reprise_engine::{Client, IdReusePolicy, RunFilter, StartOptions, Store};
use reprise_history::{
    ActivityOptions, EventKind, ParentClosePolicy, RetryPolicy, RunOrigin, RunState, WorkflowType,
};
use reprise_sdk::{
    ActivityContext, ActivityDef, ActivityError, OperationEnd, Registry, RegistryBuilder,
    SignalDef, WorkflowContext, WorkflowDef, WorkflowError,
};

use crate::hosts::Running;
use crate::support::TestDb;

const RESERVE: ActivityDef<u32, u32> = ActivityDef::new("reserve");
const CHARGE: ActivityDef<u32, u32> = ActivityDef::new("charge");
const RELEASE: ActivityDef<u32, ()> = ActivityDef::new("release");
/// The reset test's second step: broken until the test fixes it.
const FINISH: ActivityDef<u32, u32> = ActivityDef::new("finish");
const SAGA: WorkflowDef<u32, u32> = WorkflowDef::new("saga");
const WAITER: WorkflowDef<u32, String> = WorkflowDef::new("waiter");
const PARENT: WorkflowDef<(), String> = WorkflowDef::new("parent");
const CHAIN: WorkflowDef<u32, String> = WorkflowDef::new("chain");
const STEPS: WorkflowDef<(), String> = WorkflowDef::new("steps");
const WAKE: SignalDef<String> = SignalDef::new("wake");

/// A workflow that waits for `wake` (cancel ends the wait).
async fn waiter(ctx: WorkflowContext, _: u32) -> Result<String, WorkflowError> {
    Ok(ctx.signal(WAKE).await?)
}

async fn saga(ctx: WorkflowContext, n: u32) -> Result<u32, WorkflowError> {
    let reserved = ctx.activity(RESERVE, &n).await?;
    let options = ActivityOptions {
        heartbeat_timeout: Some(Duration::from_secs(30)),
        ..ActivityOptions::default()
    };
    match ctx.activity(CHARGE, &reserved).options(options).await {
        Ok(charged) => Ok(charged),
        Err(e) if e.end == OperationEnd::Cancelled => {
            ctx.activity(RELEASE, &reserved).await?; // compensation, after the cancel request
            Err(WorkflowError::Cancelled { details: None })
        }
        Err(e) => Err(e.into()),
    }
}

async fn parent(ctx: WorkflowContext, (): ()) -> Result<String, WorkflowError> {
    let child = ctx
        .child(WAITER, "the-child", &0)
        .parent_close_policy(ParentClosePolicy::RequestCancel);
    Ok(child.await?)
}

/// Continues as new until its input reaches 3, then waits for one `wake` signal.
async fn chain(ctx: WorkflowContext, n: u32) -> Result<String, WorkflowError> {
    if n < 3 {
        return Err(ctx.continue_as_new(&(n + 1))?);
    }
    Ok(format!("run {n} got {}", ctx.signal(WAKE).await?))
}

struct Flags {
    charge_saw_cancel: AtomicBool,
    released: AtomicU32,
    steps_fail: AtomicBool,
}

/// Panics in its first step: its runs are parked.
const GHOST: WorkflowDef<(), ()> = WorkflowDef::new("ghost");

fn registry(flags: &Arc<Flags>) -> RegistryBuilder {
    let (a, b, c) = (flags.clone(), flags.clone(), flags.clone());
    Registry::builder()
        .workflow(SAGA, saga)
        .workflow(GHOST, |_ctx: WorkflowContext, ()| async move {
            if true {
                panic!("a ghost cannot run");
            }
            Ok(())
        })
        .workflow(WAITER, waiter)
        .workflow(PARENT, |ctx: WorkflowContext, ()| parent(ctx, ()))
        .workflow(CHAIN, chain)
        .workflow(STEPS, |ctx: WorkflowContext, ()| async move {
            let first = ctx.activity(RESERVE, &1).await?;
            let second = ctx.activity(FINISH, &first).options(ActivityOptions {
                retry: RetryPolicy {
                    max_attempts: Some(1),
                    ..RetryPolicy::default()
                },
                ..ActivityOptions::default()
            });
            Ok(format!("done {}", second.await?))
        })
        .activity(RESERVE, |_: ActivityContext, n: u32| async move {
            Ok::<_, ActivityError>(n + 1)
        })
        .activity(FINISH, move |_: ActivityContext, n: u32| {
            let flags = c.clone();
            async move {
                if flags.steps_fail.load(Ordering::SeqCst) {
                    return Err(ActivityError::non_retryable("Bug", "finish is broken"));
                }
                Ok(n * 10)
            }
        })
        .activity(CHARGE, move |ctx: ActivityContext, n: u32| {
            let flags = a.clone();
            async move {
                // The saga's charge runs until cancelled, heartbeating.
                loop {
                    ctx.heartbeat(&n)?;
                    if ctx.is_cancelled() {
                        flags.charge_saw_cancel.store(true, Ordering::SeqCst);
                        return Err(ActivityError::non_retryable(
                            "Cancelled",
                            "stopped on request",
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        })
        .activity(RELEASE, move |_: ActivityContext, _: u32| {
            let flags = b.clone();
            async move {
                flags.released.fetch_add(1, Ordering::SeqCst);
                Ok::<_, ActivityError>(())
            }
        })
}

fn start(store: &Store, flags: &Arc<Flags>) -> Running {
    Running::both(store, || registry(flags).build().unwrap())
}

fn flags() -> Arc<Flags> {
    Arc::new(Flags {
        charge_saw_cancel: AtomicBool::new(false),
        released: AtomicU32::new(0),
        steps_fail: AtomicBool::new(false),
    })
}

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("finished within 30 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_saga_compensates_after_cancellation() {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let flags = flags();
    let running = start(&store, &flags);
    let client = Client::new(store.clone());
    let handle = client.start(SAGA, "saga-1", &1).await.unwrap();
    within(running.until(async || {
        client
            .describe("saga-1")
            .await
            .unwrap()
            .pending_activities
            .iter()
            .any(|a| a.running && a.activity_type.as_str() == "charge")
    }))
    .await;
    client
        .cancel("saga-1", "customer changed their mind")
        .await
        .unwrap();
    let err = within(handle.result()).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "workflow \"saga-1\" ended cancelled: cancelled on request"
    );
    assert_eq!(flags.released.load(Ordering::SeqCst), 1, "compensated once");
    within(running.until(async || flags.charge_saw_cancel.load(Ordering::SeqCst))).await; // reached through its heartbeat
    // The cancelled charge may report its end before the run closes: such a late outcome is
    // recorded (history keeps everything that happened) and ignored by the workflow.
    let kinds: Vec<_> = client
        .export(handle.run_id())
        .await
        .unwrap()
        .events()
        .iter()
        .filter(|e| !matches!(&e.kind, EventKind::ActivityFailed(f) if f.scheduled == reprise_history::Seq::new(4)))
        .map(|e| e.kind.name())
        .collect();
    assert_eq!(
        kinds[4..],
        [
            "CancelRequested",
            "ActivityCancelRequested",
            "ActivityScheduled",
            "ActivityCompleted",
            "WorkflowCancelled"
        ]
    );
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_child_is_cancelled_with_its_parent() {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let running = start(&store, &flags());
    let client = Client::new(store.clone());
    let parent = client.start(PARENT, "parent-1", &()).await.unwrap();
    within(running.until(async || {
        client
            .describe("the-child")
            .await
            .is_ok_and(|d| d.head_seq.get() >= 1 && d.status == RunState::Running)
    }))
    .await;
    client.cancel("parent-1", "not needed").await.unwrap();
    let err = within(parent.result()).await.unwrap_err();
    assert!(err.to_string().contains("ended cancelled"), "{err}");
    within(
        running.until(async || {
            client.describe("the-child").await.unwrap().status == RunState::Cancelled
        }),
    )
    .await;
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_three_run_continue_as_new_chain_yields_the_last_result_and_keeps_signals() {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let client = Client::new(store.clone());
    // The signal arrives before any run steps: it must follow the chain to run 3.
    let handle = client
        .signal_with_start(CHAIN, "chain-1", &1, WAKE, &"hello".to_string())
        .await
        .unwrap();
    let _running = start(&store, &flags());
    assert_eq!(within(handle.result()).await.unwrap(), "run 3 got hello");
    let runs = client
        .list(
            &RunFilter {
                workflow_type: Some(WorkflowType::new("chain").unwrap()),
                ..RunFilter::default()
            },
            None,
            10,
        )
        .await
        .unwrap();
    let statuses: Vec<_> = runs.runs.iter().map(|r| r.status.as_str()).collect();
    assert_eq!(
        statuses,
        ["completed", "continued_as_new", "continued_as_new"]
    );
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn termination_is_immediate_recorded_and_final() {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let flags = flags();
    let running = start(&store, &flags);
    let client = Client::new(store.clone());
    let handle = client.start(SAGA, "term-1", &1).await.unwrap();
    within(running.until(async || {
        client
            .describe("term-1")
            .await
            .unwrap()
            .pending_activities
            .iter()
            .any(|a| a.running)
    }))
    .await;
    client.terminate("term-1", "runaway").await.unwrap();
    let d = client.describe("term-1").await.unwrap();
    assert_eq!(d.status, RunState::Terminated);
    assert!(d.pending_activities.is_empty(), "its pending work is gone");
    let err = within(handle.result()).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "workflow \"term-1\" ended terminated: runaway"
    );
    let history = client.export(handle.run_id()).await.unwrap();
    assert_eq!(
        history.events().last().unwrap().kind.name(),
        "WorkflowTerminated"
    );
    assert_eq!(
        flags.released.load(Ordering::SeqCst),
        0,
        "nothing ran afterwards"
    );
    assert!(client.terminate("term-1", "again").await.is_err());
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn id_reuse_policies_decide_whether_a_closed_id_starts_again() {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let _running = start(&store, &flags());
    let client = Client::new(store.clone());
    let first = client.start(WAITER, "once", &0).await.unwrap();
    client.signal("once", WAKE, &"x".to_string()).await.unwrap();
    within(first.result()).await.unwrap();
    let reject = StartOptions {
        id_reuse: IdReusePolicy::RejectDuplicate,
        ..StartOptions::default()
    };
    let err = client
        .start_with_options(WAITER, "once", &0, reject)
        .await
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "workflow id \"once\" was used before (last run completed) and the reuse policy forbids another run"
    );
    let failed_only = StartOptions {
        id_reuse: IdReusePolicy::AllowDuplicateFailedOnly,
        ..StartOptions::default()
    };
    assert!(
        client
            .start_with_options(WAITER, "once", &0, failed_only)
            .await
            .is_err()
    );
    let again = client.start(WAITER, "once", &0).await.unwrap();
    assert_ne!(again.run_id(), first.run_id());
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn listing_pages_by_keyset_and_filters() {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let client = Client::new(store.clone());
    for i in 0..7 {
        client
            .start(WAITER, &format!("listed-{i}"), &0)
            .await
            .unwrap();
    }
    let filter = RunFilter {
        status: Some(RunState::Running),
        workflow_type: Some(WorkflowType::new("waiter").unwrap()),
        ..RunFilter::default()
    };
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = client.list(&filter, cursor, 3).await.unwrap();
        seen.extend(page.runs.iter().map(|r| r.workflow_id.to_string()));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let expected: Vec<String> = (0..7).rev().map(|i| format!("listed-{i}")).collect();
    assert_eq!(seen, expected, "newest first, each once");
    let none = RunFilter {
        status: Some(RunState::Failed),
        ..RunFilter::default()
    };
    assert!(client.list(&none, None, 10).await.unwrap().runs.is_empty());
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_run_is_reset_to_a_step_and_completes() {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let flags = flags();
    flags.steps_fail.store(true, Ordering::SeqCst);
    let _running = start(&store, &flags);
    let client = Client::new(store.clone());
    let failed = client.start(STEPS, "steps-1", &()).await.unwrap();
    assert!(within(failed.result()).await.is_err());
    let failed_runs = client
        .list(
            &RunFilter {
                status: Some(RunState::Failed),
                ..RunFilter::default()
            },
            None,
            10,
        )
        .await
        .unwrap();
    assert_eq!(failed_runs.runs.len(), 1);

    // The bug is fixed; reset to the end of the step that scheduled the second activity.
    flags.steps_fail.store(false, Ordering::SeqCst);
    let err = client.reset("steps-1", 3).await.err().unwrap();
    assert!(
        err.to_string()
            .starts_with("cannot reset: seq 3 does not end a step"),
        "{err}"
    );
    let new_run = client.reset("steps-1", 4).await.unwrap();
    let reset = client.handle(STEPS, "steps-1").await.unwrap();
    assert_eq!(reset.run_id(), new_run);
    assert_eq!(within(reset.result()).await.unwrap(), "done 20");
    let history = client.export(reset.run_id()).await.unwrap();
    let EventKind::WorkflowStarted(started) = &history.events()[0].kind else {
        panic!()
    };
    assert_eq!(
        started.origin,
        RunOrigin::Reset {
            source_run_id: failed.run_id(),
            reset_to: reprise_history::Seq::new(4)
        }
    );
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parked_runs_are_listed_with_their_reason_and_retried_on_request() {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let client = Client::new(store.clone());
    client.start(GHOST, "ghost-1", &()).await.unwrap();
    let running = start(&store, &flags());
    within(running.until(async || {
        client
            .describe("ghost-1")
            .await
            .unwrap()
            .parked_reason
            .is_some()
    }))
    .await;
    let parked = client
        .list(
            &RunFilter {
                parked: true,
                ..RunFilter::default()
            },
            None,
            10,
        )
        .await
        .unwrap();
    assert_eq!(parked.runs.len(), 1);
    assert!(
        parked.runs[0]
            .parked_reason
            .as_deref()
            .unwrap()
            .starts_with("workflow code panicked while applying seq 1: a ghost cannot run")
    );
    assert!(client.retry_parked("ghost-1").await.unwrap());
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retention_deletes_exactly_the_closed_runs_past_the_horizon() {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let _running = start(&store, &flags());
    let client = Client::new(store.clone());
    for i in 0..3 {
        let h = client.start(WAITER, &format!("old-{i}"), &0).await.unwrap();
        client
            .signal(&format!("old-{i}"), WAKE, &"x".to_string())
            .await
            .unwrap();
        within(h.result()).await.unwrap();
    }
    store.clock().advance(Duration::from_secs(40 * 86_400));
    let recent = client.start(WAITER, "recent", &0).await.unwrap();
    client
        .signal("recent", WAKE, &"x".to_string())
        .await
        .unwrap();
    within(recent.result()).await.unwrap();
    client.start(WAITER, "still-open", &0).await.unwrap();

    // Prune skips a run another transaction holds at that moment (SKIP LOCKED: the next
    // pass takes it), as a retention job that runs again would; under CI load one pass once
    // left one run for the next.
    let mut deleted = 0;
    for _ in 0..10 {
        let pass = client
            .prune(Duration::from_secs(30 * 86_400))
            .await
            .unwrap();
        deleted += pass;
        if pass == 0 {
            break;
        }
    }
    assert_eq!(deleted, 3);
    let left: Vec<String> =
        sqlx::query_scalar("SELECT workflow_id FROM reprise.runs ORDER BY workflow_id")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(left, ["recent", "still-open"]);
    let orphans: i64 = sqlx::query_scalar("SELECT count(*) FROM reprise.history h WHERE NOT EXISTS (SELECT 1 FROM reprise.runs r WHERE r.run_id = h.run_id)")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(orphans, 0);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_parent_closing_terminates_its_child_stepped_in_the_same_batch() {
    const LEAVING: WorkflowDef<(), String> = WorkflowDef::new("leaving");
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let client = Client::new(store.clone());
    let registry = registry(&flags())
        .workflow(LEAVING, |ctx: WorkflowContext, ()| async move {
            let _child = ctx
                .child(WAITER, "leaving-child", &0)
                .parent_close_policy(ParentClosePolicy::Terminate);
            Ok(ctx.signal(WAKE).await?)
        })
        .build()
        .unwrap();
    let engine = reprise_engine::Engine::new(
        store.clone(),
        registry,
        reprise_engine::EngineOptions::default(),
    );
    let handle = client.start(LEAVING, "leaving", &()).await.unwrap();
    assert_eq!(
        engine.run_once().await.unwrap(),
        1,
        "the parent's first step"
    );
    client
        .signal("leaving", WAKE, &"go".to_string())
        .await
        .unwrap();
    // One batch: the child's first step (it waits, appending nothing) and the parent's last,
    // whose close terminates the child.
    assert_eq!(engine.run_once().await.unwrap(), 2);
    assert_eq!(handle.result().await.unwrap(), "go");
    let (child, status, head_seq): (uuid::Uuid, String, i64) = sqlx::query_as(
        "SELECT run_id, status, head_seq FROM reprise.runs WHERE workflow_id = 'leaving-child'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(status, "terminated");
    let history = client
        .export(reprise_history::RunId::from_uuid(child))
        .await
        .unwrap();
    let last = history.events().last().unwrap();
    assert_eq!(last.kind.name(), "WorkflowTerminated");
    assert_eq!(
        last.seq.get(),
        u64::try_from(head_seq).unwrap(),
        "the run's head is its last event"
    );
    db.drop_database().await;
}

//! Activity options beyond the first ones, on PostgreSQL: a schedule-to-start timeout ends an
//! activity no worker takes (and not one a worker takes in time, nor the retries of one that
//! failed), and `retry_on` retries only the error types it lists.

use std::time::Duration;

use reprise_engine::{Client, Store};
use reprise_history::{ActivityOptions, EventKind, RetryPolicy, TimeoutKind};
use reprise_sdk::{
    ActivityContext, ActivityDef, ActivityError, Registry, WorkflowContext, WorkflowDef,
    WorkflowError,
};

use crate::hosts::Running;
use crate::support::TestDb;

/// No worker in these tests serves it.
const UNSERVED: ActivityDef<(), ()> = ActivityDef::new("unserved");
/// Fails with the error type it is given, retryably; succeeds for "none".
const FAILS_WITH: ActivityDef<String, u32> = ActivityDef::new("fails_with");
/// Runs one activity with the given options and reports how it ended.
const RUN: WorkflowDef<(String, String, ActivityOptions), String> = WorkflowDef::new("run");

async fn run(
    ctx: WorkflowContext,
    (which, error_type, options): (String, String, ActivityOptions),
) -> Result<String, WorkflowError> {
    let outcome = match which.as_str() {
        "unserved" => ctx
            .activity(UNSERVED, &())
            .options(options)
            .await
            .map(|()| "done".to_string()),
        _ => ctx
            .activity(FAILS_WITH, &error_type)
            .options(options)
            .await
            .map(|attempt| format!("done at attempt {attempt}")),
    };
    Ok(outcome.unwrap_or_else(|e| format!("{:?}: {}", e.end, e.failure.message)))
}

fn registry() -> Registry {
    Registry::builder()
        .workflow(RUN, run)
        .activity(
            FAILS_WITH,
            |ctx: ActivityContext, error_type: String| async move {
                if error_type == "none" || ctx.attempt() >= 3 {
                    return Ok(ctx.attempt());
                }
                Err(ActivityError::retryable(error_type, "not yet"))
            },
        )
        .build()
        .unwrap()
}

fn quick_retries(retry_on: &[&str]) -> ActivityOptions {
    ActivityOptions {
        retry: RetryPolicy {
            max_attempts: Some(5),
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(20),
            retry_on: retry_on.iter().map(|t| t.to_string()).collect(),
            ..RetryPolicy::default()
        },
        ..ActivityOptions::default()
    }
}

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("finished within 30 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_activity_no_worker_takes_times_out_by_its_schedule_to_start_timeout() {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let running = Running::both(&store, registry);
    let client = Client::new(store.clone());
    let options = ActivityOptions {
        schedule_to_start: Some(Duration::from_secs(60)),
        ..quick_retries(&[])
    };
    let handle = client
        .start(
            RUN,
            "waits",
            &("unserved".to_string(), String::new(), options.clone()),
        )
        .await
        .unwrap();
    let scheduled = async || {
        let described = client.describe("waits").await.unwrap();
        !described.pending_activities.is_empty()
    };
    within(running.until(scheduled)).await;
    // Served activities with the same timeout run and retry as usual.
    let served = client
        .start(
            RUN,
            "served",
            &("fails".to_string(), "Busy".to_string(), options),
        )
        .await
        .unwrap();
    assert_eq!(
        within(served.result()).await.unwrap(),
        "done at attempt 3",
        "retries of a served activity keep their own deadline"
    );
    store.clock().advance(Duration::from_secs(61));
    let outcome = within(handle.result()).await.unwrap();
    assert_eq!(outcome, "TimedOut: ScheduleToStart timeout of attempt 0");
    let history = client.export(handle.run_id()).await.unwrap();
    let timed_out = history.events().iter().find_map(|e| match &e.kind {
        EventKind::ActivityTimedOut(t) => Some((t.timeout, t.attempt)),
        _ => None,
    });
    assert_eq!(timed_out, Some((TimeoutKind::ScheduleToStart, 0)));
    // The options were recorded in their newer shape and read back whole.
    let scheduled = history.events().iter().find_map(|e| match &e.kind {
        EventKind::ActivityScheduled(s) => Some(s.options.schedule_to_start),
        _ => None,
    });
    assert_eq!(scheduled, Some(Some(Duration::from_secs(60))));
    drop(running);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retry_on_retries_only_the_error_types_it_lists() {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let running = Running::both(&store, registry);
    let client = Client::new(store.clone());
    let listed = client
        .start(
            RUN,
            "listed",
            &(
                "fails".to_string(),
                "Busy".to_string(),
                quick_retries(&["Busy"]),
            ),
        )
        .await
        .unwrap();
    assert_eq!(within(listed.result()).await.unwrap(), "done at attempt 3");
    let unlisted = client
        .start(
            RUN,
            "unlisted",
            &(
                "fails".to_string(),
                "Declined".to_string(),
                quick_retries(&["Busy"]),
            ),
        )
        .await
        .unwrap();
    assert_eq!(within(unlisted.result()).await.unwrap(), "Failed: not yet");
    let history = client.export(unlisted.run_id()).await.unwrap();
    let failed_at = history.events().iter().find_map(|e| match &e.kind {
        EventKind::ActivityFailed(f) => Some(f.attempt),
        _ => None,
    });
    assert_eq!(failed_at, Some(1), "not retried");
    drop(running);
    db.drop_database().await;
}

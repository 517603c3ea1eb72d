//! **Batch processing.** A thousand items, each processed by an activity, at most a window of
//! them in flight at once: as one finishes the next starts. Results are added up, failures
//! collected (a bad item does not fail the batch), and the progress is published as the run's
//! custom status, which `reprise describe`, the web UI and `Client::describe` show.
//!
//! Run it: `cargo run -p reprise-examples -- batch`. The guide: `docs/patterns/batching.md`.

use std::future::Future;
use std::time::Duration;

use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use reprise_history::{ActivityOptions, RetryPolicy};
use reprise_sdk::{ActivityContext, ActivityDef, ActivityError, RegistryBuilder};
use reprise_sdk::{OperationEnd, OperationFailed};
use reprise_sdk::{WorkflowContext, WorkflowDef, WorkflowError};
use serde::{Deserialize, Serialize};

/// Processes items `0..items`, at most `window` at a time.
pub const PROCESS_BATCH: WorkflowDef<BatchJob, BatchReport> = WorkflowDef::new("process-batch");
/// Processes one item; returns its value. Items 97, 194, ... (multiples of 97 but 0) are
/// corrupt records (a permanent failure); every tenth item fails its first attempt (a
/// transient one).
pub const PROCESS_ITEM: ActivityDef<u32, u64> = ActivityDef::new("process-item");

/// What to process.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BatchJob {
    /// How many items.
    pub items: u32,
    /// How many may be in flight at once: what the downstream system can take.
    pub window: u32,
}

/// What the batch came to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchReport {
    /// Items processed.
    pub processed: u32,
    /// The sum of their values.
    pub total: u64,
    /// The items that failed, with why.
    pub failures: Vec<(u32, String)>,
}

/// The custom status while the batch runs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Progress {
    /// Items finished (processed or failed).
    pub done: u32,
    /// Of these, failed.
    pub failed: u32,
    /// How many there are.
    pub total: u32,
    /// Running now.
    pub in_flight: u32,
}

async fn process_batch(ctx: WorkflowContext, job: BatchJob) -> Result<BatchReport, WorkflowError> {
    let window = job.window.max(1) as usize;
    let mut report = BatchReport {
        processed: 0,
        total: 0,
        failures: Vec::new(),
    };
    let mut in_flight = FuturesUnordered::new();
    let mut next = 0;
    // Results arrive in the order history records them, so the same items start at the same
    // points when the run is replayed.
    while next < job.items || !in_flight.is_empty() {
        while next < job.items && in_flight.len() < window {
            in_flight.push(process(&ctx, next));
            next += 1;
        }
        let Some((item, result)) = in_flight.next().await else {
            break;
        };
        match result {
            Ok(value) => {
                report.processed += 1;
                report.total += value;
            }
            // Asked to cancel: stop here rather than start the rest.
            Err(failed) if failed.end == OperationEnd::Cancelled => return Err(failed.into()),
            Err(failed) => report.failures.push((item, failed.failure.message.clone())),
        }
        let failed = report.failures.len() as u32;
        ctx.set_status(&Progress {
            done: report.processed + failed,
            failed,
            total: job.items,
            in_flight: in_flight.len() as u32,
        })?;
    }
    Ok(report)
}

/// One item's activity, tagged with the item.
fn process(
    ctx: &WorkflowContext,
    item: u32,
) -> impl Future<Output = (u32, Result<u64, OperationFailed>)> + use<> {
    let options = ActivityOptions {
        retry: RetryPolicy {
            max_attempts: Some(3),
            initial_backoff: Duration::from_millis(100),
            ..RetryPolicy::default()
        },
        ..ActivityOptions::default()
    };
    let call = ctx.activity(PROCESS_ITEM, &item).options(options);
    async move { (item, call.await) }
}

async fn process_item(ctx: ActivityContext, item: u32) -> Result<u64, ActivityError> {
    if item.is_multiple_of(97) && item > 0 {
        return Err(ActivityError::non_retryable(
            "CorruptRecord",
            "checksum mismatch",
        ));
    }
    if item % 10 == 3 && ctx.attempt() == 1 {
        return Err(ActivityError::retryable(
            "Unavailable",
            "the downstream service said 503",
        ));
    }
    // Some real work: a few milliseconds.
    tokio::time::sleep(Duration::from_millis(5)).await;
    Ok(u64::from(item) * 2)
}

/// Registers the batch workflow and its activity.
pub fn register(builder: RegistryBuilder) -> RegistryBuilder {
    builder
        .workflow(PROCESS_BATCH, process_batch)
        .activity(PROCESS_ITEM, process_item)
}

// ---- The demo: what `cargo run -p reprise-examples -- batch` does. ----

/// Processes 1,000 items, 50 at a time, printing the progress the run publishes.
pub async fn demo(
    demo: &super::demo::Demo,
    items: u32,
    window: u32,
) -> anyhow::Result<(reprise_history::RunId, BatchReport)> {
    let client = demo.client();
    let id = format!("batch-{}", super::demo::unique_suffix());
    println!("{id}: {items} items, at most {window} in flight");
    println!("  watch it: reprise describe {id}   (custom status: the progress)");
    let handle = client
        .start(PROCESS_BATCH, &id, &BatchJob { items, window })
        .await?;
    let mut last = String::new();
    let report = loop {
        if let Some(report) =
            super::demo::result_within(&handle, Duration::from_millis(500)).await?
        {
            break report;
        }
        let described = client.describe(&id).await?;
        if let Some((payload, _)) = &described.custom_status {
            let progress: Progress = client.converter().from_payload(payload)?;
            let line = format!(
                "  {}/{} done, {} failed, {} in flight",
                progress.done, progress.total, progress.failed, progress.in_flight
            );
            if line != last {
                println!("{line}");
                last = line;
            }
        }
    };
    println!(
        "  finished: {} processed, total {}, {} failed:",
        report.processed,
        report.total,
        report.failures.len()
    );
    for (item, why) in &report.failures {
        println!("    item {item}: {why}");
    }
    Ok((handle.run_id(), report))
}

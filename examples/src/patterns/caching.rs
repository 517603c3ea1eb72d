//! **A data pipeline with caching.** Each run loads a dataset, computes its statistics (the
//! expensive step) and publishes them. The statistics activity is cached: its result is kept
//! in the database under the activity type, a version and the input, and any worker running
//! it for any later run with the same input within an hour takes that result instead of
//! computing it again. Each run's
//! history still records the result it used, so replay never needs the cache.
//!
//! Run it: `cargo run -p reprise-examples -- caching`. The guide: `docs/patterns/caching.md`.

use std::time::Duration;

use reprise_history::Timestamp;
use reprise_sdk::{ActivityContext, ActivityDef, ActivityError, CachePolicy, RegistryBuilder};
use reprise_sdk::{WorkflowContext, WorkflowDef, WorkflowError};
use serde::{Deserialize, Serialize};

/// Load → compute statistics (cached) → publish.
pub const DATA_PIPELINE: WorkflowDef<String, Published> = WorkflowDef::new("data-pipeline");
/// Loads a dataset; returns its rows (here: numbers).
pub const LOAD_DATASET: ActivityDef<String, Vec<u64>> = ActivityDef::new("load-dataset");
/// Computes statistics over a dataset: slow, and the same for the same rows.
pub const COMPUTE_STATISTICS: ActivityDef<Vec<u64>, Statistics> =
    ActivityDef::new("compute-statistics");
/// Publishes statistics to the dashboard.
pub const PUBLISH: ActivityDef<(String, Statistics), Published> = ActivityDef::new("publish-stats");

/// How statistics are cached: results of this code version, reused for an hour. Bump the
/// version when the computation changes, so no run takes a result of the old code.
pub fn statistics_cache() -> CachePolicy {
    CachePolicy::new("stats-v1", Duration::from_secs(3_600))
}

/// A dataset's statistics, with where they came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statistics {
    /// Rows.
    pub count: u64,
    /// Their mean, rounded down.
    pub mean: u64,
    /// Their largest.
    pub max: u64,
    /// The workflow whose attempt computed them: another run's when they came from the cache.
    pub computed_by: String,
    /// When.
    pub computed_at: Timestamp,
}

/// What a run published.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    /// The dataset.
    pub dataset: String,
    /// Its statistics.
    pub statistics: Statistics,
}

async fn data_pipeline(ctx: WorkflowContext, dataset: String) -> Result<Published, WorkflowError> {
    let rows = ctx.activity(LOAD_DATASET, &dataset).await?;
    // Cached by the registry (see `register`): nothing here changes for it.
    let statistics = ctx.activity(COMPUTE_STATISTICS, &rows).await?;
    Ok(ctx.activity(PUBLISH, &(dataset, statistics)).await?)
}

async fn load_dataset(_: ActivityContext, dataset: String) -> Result<Vec<u64>, ActivityError> {
    // A warehouse query; here, rows derived from the dataset's name.
    let seed = dataset
        .bytes()
        .fold(7_u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    let rows = 500 + seed % 500;
    let spread = 1_000 + seed % 997;
    Ok((0..rows)
        .map(|i| seed.wrapping_add(i.wrapping_mul(761)) % spread)
        .collect())
}

async fn compute_statistics(
    ctx: ActivityContext,
    rows: Vec<u64>,
) -> Result<Statistics, ActivityError> {
    // The expensive part: a minute of a data warehouse's time, say; a second and a half here.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let count = rows.len() as u64;
    let sum = rows.iter().fold(0_u64, |sum, row| sum.saturating_add(*row));
    Ok(Statistics {
        count,
        mean: sum.checked_div(count).unwrap_or(0),
        max: rows.iter().copied().max().unwrap_or(0),
        computed_by: ctx.info().workflow_id.to_string(),
        computed_at: Timestamp::from_system_time(std::time::SystemTime::now()),
    })
}

async fn publish(
    _: ActivityContext,
    (dataset, statistics): (String, Statistics),
) -> Result<Published, ActivityError> {
    Ok(Published {
        dataset,
        statistics,
    })
}

/// Registers the pipeline, with the statistics cached by [`statistics_cache`].
pub fn register(builder: RegistryBuilder) -> RegistryBuilder {
    builder
        .workflow(DATA_PIPELINE, data_pipeline)
        .activity(LOAD_DATASET, load_dataset)
        .activity(COMPUTE_STATISTICS, compute_statistics)
        .cache(COMPUTE_STATISTICS, statistics_cache())
        .activity(PUBLISH, publish)
}

// ---- The demo: what `cargo run -p reprise-examples -- caching` does. ----

/// Runs the pipeline three times: a dataset, the same dataset again (cached), another one.
/// Returns each run's workflow id and what it published.
pub async fn demo(demo: &super::demo::Demo) -> anyhow::Result<Vec<(String, Published)>> {
    let client = demo.client();
    let suffix = super::demo::unique_suffix();
    // The suffix keeps this demo's datasets apart from an earlier demo's cached results.
    let november = format!("sales-2026-11-{suffix}");
    let october = format!("sales-2026-10-{suffix}");
    let mut runs = Vec::new();
    for (n, dataset) in [&november, &november, &october].into_iter().enumerate() {
        let id = format!("pipeline-{}-{suffix}", n + 1);
        let started = std::time::Instant::now();
        let published = client
            .start(DATA_PIPELINE, &id, dataset)
            .await?
            .result()
            .await?;
        let took = started.elapsed();
        let statistics = &published.statistics;
        let source = if statistics.computed_by == id {
            "computed".to_string()
        } else {
            format!("from the cache: computed by {}", statistics.computed_by)
        };
        println!(
            "{id} on {dataset}: mean {} max {} over {} rows; {source} ({} ms)",
            statistics.mean,
            statistics.max,
            statistics.count,
            took.as_millis()
        );
        runs.push((id, published));
    }
    println!(
        "the cache is a table in the database, shared by every worker: keyed by activity \
         type, version ({}) and input, kept {} s; empty it with: reprise clear-cache --type {}",
        statistics_cache().version,
        statistics_cache().ttl.as_secs(),
        COMPUTE_STATISTICS.name()
    );
    Ok(runs)
}

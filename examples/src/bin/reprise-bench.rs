//! `reprise-bench`: Reprise's benchmarks, printing figures (never asserting timings).
//!
//! `long [--activities N]`: one workflow running N sequential activities, engine stepped
//! in-process and timed per step (claim + step + commit, database round trips included),
//! reported near event 100 and near the last events, plus one cold full replay of the final
//! history. With no `DATABASE_URL` it uses the project's private PostgreSQL.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use reprise_engine::{Client, Engine, EngineOptions, Store, Worker, WorkerOptions};
use reprise_sdk::{
    ActivityContext, ActivityDef, ActivityError, Execution, Registry, WorkflowContext, WorkflowDef,
    WorkflowError,
};

/// Reprise's benchmarks.
#[derive(Parser)]
#[command(name = "reprise-bench", about)]
struct Cli {
    #[command(subcommand)]
    workload: Workload,
}

#[derive(Subcommand)]
enum Workload {
    /// One workflow of N sequential activities: step cost against history length.
    Long {
        /// How many activities.
        #[arg(long, default_value_t = 2_000)]
        activities: u32,
    },
}

const LONG: WorkflowDef<u32, u64> = WorkflowDef::new("bench-long");
const STEP: ActivityDef<u64, u64> = ActivityDef::new("bench-step");

async fn long(ctx: WorkflowContext, activities: u32) -> Result<u64, WorkflowError> {
    let mut total = 0u64;
    for _ in 0..activities {
        total = ctx.activity(STEP, &total).await?;
    }
    Ok(total)
}

async fn step(_: ActivityContext, n: u64) -> Result<u64, ActivityError> {
    Ok(n + 1)
}

fn registry() -> Result<Registry, reprise_sdk::Error> {
    Registry::builder()
        .workflow(LONG, long)
        .activity(STEP, step)
        .build()
}

async fn store() -> anyhow::Result<Store> {
    let url = match reprise_devdb::database_url_from_env() {
        Some(url) => url,
        None => {
            let project = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
            reprise_devdb::DevPostgres::for_project(project)?
                .ensure_running()?
                .url
        }
    };
    let pool = reprise_engine::connect(&url)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    reprise_engine::schema::migrate(&pool).await?;
    Ok(Store::new(pool))
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

async fn long_workload(activities: u32) -> anyhow::Result<()> {
    let store = store().await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = Worker::new(store.clone(), registry()?, WorkerOptions::default());
    let worker_task =
        tokio::spawn(async move { worker.run(async { stopped.await.unwrap_or(()) }).await });
    let engine = Engine::new(store.clone(), registry()?, EngineOptions::default());
    let client = Client::new(store.clone());
    let workflow_id = format!("bench-long-{}", uuid_suffix());
    let handle = client.start(LONG, &workflow_id, &activities).await?;

    // Step the engine by hand: each claimed step is timed, with the history length after it.
    let mut steps: Vec<(u64, Duration)> = Vec::new();
    let started = Instant::now();
    loop {
        let t = Instant::now();
        let claimed = engine.run_once().await?;
        let elapsed = t.elapsed();
        if claimed > 0 {
            let head = client.describe(&workflow_id).await?;
            steps.push((head.head_seq, elapsed));
            if head.status != "running" {
                break;
            }
        } else {
            tokio::task::yield_now().await;
        }
    }
    let total = started.elapsed();
    let result = handle.result().await?;
    let _ = stop.send(());
    worker_task.await??;

    let near = |lo: u64, hi: u64| {
        median(
            steps
                .iter()
                .filter(|(h, _)| (lo..=hi).contains(h))
                .map(|(_, d)| *d)
                .collect(),
        )
    };
    let last = steps.last().map_or(0, |(h, _)| *h);
    let early = near(80, 120);
    let late = near(last.saturating_sub(40), last);
    let history = client.export(handle.run_id()).await?;
    let replay_started = Instant::now();
    let replayed = Execution::replay(&registry()?, history.events())?;
    let replay = replay_started.elapsed();

    println!(
        "workload long: {activities} sequential activities, result {result}, {} events",
        history.events().len()
    );
    println!("  steps timed:                  {}", steps.len());
    println!(
        "  median step near event 100:   {:.3} ms",
        early.as_secs_f64() * 1e3
    );
    println!(
        "  median step near event {last}: {:.3} ms",
        late.as_secs_f64() * 1e3
    );
    println!(
        "  ratio late / early:           {:.2}",
        late.as_secs_f64() / early.as_secs_f64().max(1e-9)
    );
    println!(
        "  wall time, all steps:         {:.2} s",
        total.as_secs_f64()
    );
    println!(
        "  cold replay of {} events:    {:.2} ms ({:.0} events/s), replayed to {}",
        history.events().len(),
        replay.as_secs_f64() * 1e3,
        history.events().len() as f64 / replay.as_secs_f64(),
        match replayed.status() {
            reprise_sdk::RunStatus::Completed(_) => "completed",
            _ => "another status (a bug)",
        }
    );
    Ok(())
}

fn uuid_suffix() -> String {
    let nanos = std::time::SystemTime::UNIX_EPOCH
        .elapsed()
        .map_or(0, |d| d.as_nanos());
    format!("{}-{nanos}", std::process::id())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().workload {
        Workload::Long { activities } => long_workload(activities).await,
    }
}

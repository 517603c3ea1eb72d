//! The workloads. Each returns its figures for one repetition.

use std::time::{Duration, Instant};

use futures::StreamExt;
use reprise_engine::{Engine, EngineOptions, Worker, WorkerOptions};
use reprise_examples::bench::{CHAIN, FANOUT, HELLO, TIMER};
use reprise_history::EventKind;
use reprise_sdk::Execution;
use reprise_testkit::TestEnv;

use crate::measure::{DbCounters, PerWorkflow, checkpoints, pgbench};
use crate::setup::{Bench, uuid};

/// One figure of one repetition.
pub(crate) struct Figure {
    pub(crate) name: &'static str,
    pub(crate) unit: &'static str,
    pub(crate) value: f64,
}

pub(crate) fn figure(name: &'static str, unit: &'static str, value: f64) -> Figure {
    Figure { name, unit, value }
}

pub(crate) fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let i = ((values.len() as f64 - 1.0) * p).round() as usize;
    values.get(i).copied().unwrap_or(0.0)
}

/// The per-workflow cost figures of a throughput workload.
pub(crate) fn cost_figures(cost: &PerWorkflow) -> [Figure; 4] {
    [
        figure(
            "write transactions per workflow",
            "",
            cost.write_transactions,
        ),
        figure("WAL flushes per workflow", "", cost.wal_flushes),
        figure("database CPU per workflow", "ms", cost.database_cpu_ms),
        figure("hosts CPU per workflow", "ms", cost.hosts_cpu_ms),
    ]
}

/// Starts `count` workflows 32 at a time; returns their id prefix.
pub(crate) async fn start_many<I: serde::Serialize + Sync, O>(
    bench: &Bench,
    def: reprise_sdk::WorkflowDef<I, O>,
    count: usize,
    input: &I,
) -> anyhow::Result<String> {
    let prefix = format!("{}-{}-", def.name(), uuid());
    let results: Vec<_> = futures::stream::iter(0..count)
        .map(|i| {
            let id = format!("{prefix}{i}");
            async move { bench.client.start(def, &id, input).await.map(|_| ()) }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    for r in results {
        r?;
    }
    Ok(prefix)
}

/// Waits until every run with the prefix completed; returns the database-time span from the
/// first start to the last completion, in seconds.
pub(crate) async fn wait_completed(
    bench: &Bench,
    prefix: &str,
    count: usize,
) -> anyhow::Result<f64> {
    let pattern = format!("{prefix}%");
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let done: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM reprise.runs WHERE workflow_id LIKE $1 AND status = 'completed'",
        )
        .bind(&pattern)
        .fetch_one(bench.store.pool())
        .await?;
        if done as usize >= count {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{prefix}: only {done} of {count} completed in 10 minutes"
        );
        // The span comes from database timestamps, so a coarse poll does not blur it; a fine one
        // would load the two cores it measures (each poll scans the bench's runs).
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let span: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM max(closed_at) - min(created_at))::float8 FROM reprise.runs WHERE workflow_id LIKE $1",
    )
    .bind(&pattern)
    .fetch_one(bench.store.pool())
    .await?;
    Ok(span)
}

/// W1: 2,000 one-activity workflows back to back; then 200 one at a time.
pub(crate) async fn hello(bench: &Bench) -> anyhow::Result<Vec<Figure>> {
    let before = DbCounters::before(bench.store.pool(), &bench.host_pids()).await?;
    let prefix = start_many(bench, HELLO, 2_000, &1).await?;
    let span = wait_completed(bench, &prefix, 2_000).await?;
    let after = DbCounters::after(bench.store.pool(), &bench.host_pids()).await?;
    let cost = before.per_workflow(after, 2_000);
    let mut latencies = Vec::with_capacity(200);
    for i in 0..200 {
        let t = Instant::now();
        let handle = bench
            .client
            .start(HELLO, &format!("{prefix}latency-{i}"), &1)
            .await?;
        handle.result().await?;
        latencies.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let mut figures = vec![
        figure("throughput", "workflows/s", 2_000.0 / span),
        figure("latency p50", "ms", percentile(&mut latencies, 0.5)),
        figure("latency p99", "ms", percentile(&mut latencies, 0.99)),
    ];
    figures.extend(cost_figures(&cost));
    Ok(figures)
}

/// W2: 300 workflows of 10 sequential activities.
pub(crate) async fn chain10(bench: &Bench) -> anyhow::Result<Vec<Figure>> {
    let before = DbCounters::before(bench.store.pool(), &bench.host_pids()).await?;
    let prefix = start_many(bench, CHAIN, 300, &10).await?;
    let span = wait_completed(bench, &prefix, 300).await?;
    let after = DbCounters::after(bench.store.pool(), &bench.host_pids()).await?;
    let cost = before.per_workflow(after, 300);
    let mut figures = vec![
        figure("throughput", "workflows/s", 300.0 / span),
        figure("activities", "activities/s", 3_000.0 / span),
    ];
    figures.extend(cost_figures(&cost));
    Ok(figures)
}

/// W3: one workflow of 100 concurrent activities, 20 times, one at a time.
pub(crate) async fn fanout100(bench: &Bench) -> anyhow::Result<Vec<Figure>> {
    let mut times = Vec::with_capacity(20);
    for i in 0..20 {
        let t = Instant::now();
        let handle = bench
            .client
            .start(FANOUT, &format!("fanout-{}-{i}", uuid()), &100)
            .await?;
        handle.result().await?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(vec![figure(
        "start to result, median",
        "ms",
        percentile(&mut times, 0.5),
    )])
}

/// W4: 500 workflows each sleeping 1 s; lateness of each wake-up in database time.
pub(crate) async fn timer(bench: &Bench) -> anyhow::Result<Vec<Figure>> {
    let prefix = start_many(bench, TIMER, 500, &()).await?;
    wait_completed(bench, &prefix, 500).await?;
    let ids: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT run_id FROM reprise.runs WHERE workflow_id LIKE $1")
            .bind(format!("{prefix}%"))
            .fetch_all(bench.store.pool())
            .await?;
    let mut lateness = Vec::with_capacity(ids.len());
    for id in ids {
        let history = bench
            .client
            .export(reprise_history::RunId::from_uuid(id))
            .await?;
        let at = |name: &str| {
            history
                .events()
                .iter()
                .find(|e| e.kind.name() == name)
                .map(|e| e.recorded_at.as_unix_micros())
        };
        if let (Some(started), Some(fired)) = (at("TimerStarted"), at("TimerFired")) {
            lateness.push((fired - started - 1_000_000) as f64 / 1e3);
        }
    }
    Ok(vec![
        figure("wake-up lateness p50", "ms", percentile(&mut lateness, 0.5)),
        figure(
            "wake-up lateness p99",
            "ms",
            percentile(&mut lateness, 0.99),
        ),
    ])
}

/// W5: one workflow of 5,000 sequential activities, its engine stepped and timed by hand
/// (in this process; no other host runs).
pub(crate) async fn long(bench: &Bench) -> anyhow::Result<Vec<Figure>> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = Worker::new(
        bench.store.clone(),
        reprise_examples::workflows::registry()?,
        WorkerOptions::default(),
    );
    let worker_task =
        tokio::spawn(async move { worker.run(async { stopped.await.unwrap_or(()) }).await });
    let engine = Engine::new(
        bench.store.clone(),
        reprise_examples::workflows::registry()?,
        EngineOptions::default(),
    );
    let id = format!("long-{}", uuid());
    let handle = bench.client.start(CHAIN, &id, &5_000).await?;
    let mut steps: Vec<(u64, f64)> = Vec::new();
    let checkpoints_before = checkpoints(bench.store.pool()).await?;
    loop {
        let t = Instant::now();
        let claimed = engine.run_once().await?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        if claimed > 0 {
            let d = bench.client.describe(&id).await?;
            steps.push((d.head_seq.get(), ms));
            if !d.status.is_open() {
                break;
            }
        } else {
            tokio::task::yield_now().await;
        }
    }
    let checkpoints_during = checkpoints(bench.store.pool()).await? - checkpoints_before;
    let _ = stop.send(());
    worker_task.await??;
    handle.result().await?;
    let near = |lo: u64, hi: u64| {
        let mut v: Vec<f64> = steps
            .iter()
            .filter(|(h, _)| (lo..=hi).contains(h))
            .map(|(_, d)| *d)
            .collect();
        percentile(&mut v, 0.5)
    };
    let history = bench.client.export(handle.run_id()).await?;
    let t = Instant::now();
    Execution::replay(&reprise_examples::workflows::registry()?, history.events())?;
    let replay = t.elapsed().as_secs_f64() * 1e3;
    // About a hundred steps each: medians of twenty varied by half between repeats on a
    // shared two-core machine, more than any trend they were to show.
    let (early, late) = (near(2, 200), near(9_800, 10_002));
    Ok(vec![
        figure("step near event 100", "ms", early),
        figure("step near event 10,000", "ms", late),
        figure("ratio late / early", "", late / early.max(1e-9)),
        figure("cold replay of 10,002 events", "ms", replay),
        // A checkpoint in one window and not the other moves the ratio by about a quarter.
        figure(
            "checkpoints during the steps",
            "",
            checkpoints_during as f64,
        ),
    ])
}

/// W6: in-process replay of a 10,000-event history (recorded in a test environment).
pub(crate) async fn replay(_: &Bench) -> anyhow::Result<Vec<Figure>> {
    let registry = reprise_examples::workflows::registry()?;
    let mut env = TestEnv::new(registry.clone());
    let run = env.start(CHAIN, "replay", &5_000)?;
    env.result(&run)?;
    let history = env.history("replay")?;
    let events = history.events();
    anyhow::ensure!(
        events.len() >= 10_000,
        "history has {} events",
        events.len()
    );
    let mut rates = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        let execution = Execution::replay(&registry, events)?;
        rates.push(events.len() as f64 / t.elapsed().as_secs_f64());
        drop(execution);
    }
    let _ = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::ActivityScheduled(_)))
        .count();
    Ok(vec![figure(
        "replay speed",
        "events/s",
        percentile(&mut rates, 0.5),
    )])
}

/// The ceiling: pgbench, one single-row INSERT per transaction, 1 and 16 clients, 10 s each.
pub(crate) async fn ceiling(bench: &Bench) -> anyhow::Result<Vec<Figure>> {
    let (one_tps, one_latency) =
        pgbench(bench.store.pool(), &bench.libpq_url, &bench.pg_bin, 1, 10).await?;
    let (sixteen_tps, _) =
        pgbench(bench.store.pool(), &bench.libpq_url, &bench.pg_bin, 16, 10).await?;
    Ok(vec![
        figure("INSERT, 1 client", "tx/s", one_tps),
        figure("INSERT, 1 client latency", "ms", one_latency),
        figure("INSERT, 16 clients", "tx/s", sixteen_tps),
    ])
}

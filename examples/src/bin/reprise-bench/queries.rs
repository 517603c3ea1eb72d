//! Queries: latency of a query answered from a cached run and from an evicted one, each of
//! 1,000 events, with an engine in this process (room for one orchestrator in its cache, and
//! no wait before a replay: it is the only engine).

use std::time::{Duration, Instant};

use reprise_engine::{Engine, EngineOptions};
use reprise_sdk::{
    QueryDef, Registry, SignalDef, WorkflowContext, WorkflowDef, WorkflowError, WorkflowState,
};

use crate::setup::{Bench, uuid};
use crate::workloads::{Figure, figure, percentile};

const TALLY: WorkflowDef<u32, u32> = WorkflowDef::new("bench-tally");
const ADD: SignalDef<u32> = SignalDef::new("add");
const SUM: QueryDef<(), u32> = QueryDef::new("sum");

/// Adds up `n` signals; answers their sum all along.
async fn tally(ctx: WorkflowContext, n: u32) -> Result<u32, WorkflowError> {
    let sum = WorkflowState::new(0u32);
    ctx.on_query(SUM, &sum, |sum, ()| *sum);
    for _ in 0..n {
        let add = ctx.signal(ADD).await?;
        sum.update(|s| *s += add);
    }
    Ok(sum.get())
}

/// Signals in a run's history: with its start, 1,000 events.
const SIGNALS: u32 = 999;

pub(crate) async fn queries(bench: &Bench) -> anyhow::Result<Vec<Figure>> {
    let registry = Registry::builder().workflow(TALLY, tally).build()?;
    let engine = Engine::new(
        bench.store.clone(),
        registry,
        EngineOptions {
            cache_capacity: 1,
            query_replay_delay: Duration::ZERO,
            ..EngineOptions::default()
        },
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runs = engine.clone();
    let engine_task =
        tokio::spawn(async move { runs.run(async { stopped.await.unwrap_or(()) }).await });
    // Two runs of 1,000 events; the second takes the cache's only place from the first.
    let evicted = format!("tally-{}", uuid());
    let cached = format!("tally-{}", uuid());
    for id in [&evicted, &cached] {
        bench.client.start(TALLY, id, &(SIGNALS + 1)).await?;
        for _ in 0..SIGNALS {
            bench.client.signal(id, ADD, &1).await?;
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        while bench.client.describe(id).await?.head_seq.get() < u64::from(SIGNALS) + 1 {
            anyhow::ensure!(Instant::now() < deadline, "{id} did not take its signals");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // The last step's orchestrator goes back to the cache just after its commit.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let timed = async |id: &str, n: usize| -> anyhow::Result<Vec<f64>> {
        let mut ms = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            let sum = bench.client.query(id, SUM, &()).await?;
            ms.push(t.elapsed().as_secs_f64() * 1e3);
            anyhow::ensure!(sum == SIGNALS, "{id} answered {sum}");
        }
        Ok(ms)
    };
    let mut from_cache = timed(&cached, 200).await?;
    let mut replayed = timed(&evicted, 50).await?;
    let _ = stop.send(());
    engine_task.await??;
    Ok(vec![
        figure(
            "cached run: query p50",
            "ms",
            percentile(&mut from_cache, 0.5),
        ),
        figure(
            "cached run: query p99",
            "ms",
            percentile(&mut from_cache, 0.99),
        ),
        figure(
            "evicted run: query p50",
            "ms",
            percentile(&mut replayed, 0.5),
        ),
        figure(
            "evicted run: query p99",
            "ms",
            percentile(&mut replayed, 0.99),
        ),
    ])
}

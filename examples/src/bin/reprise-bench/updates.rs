//! Updates: the round trip of an update whose handler answers at once, and of one whose
//! handler runs an activity first, sent one at a time to one run, with an engine and a worker
//! in this process.

use std::time::{Duration, Instant};

use reprise_engine::{Engine, EngineOptions, Worker, WorkerOptions};
use reprise_sdk::{
    ActivityContext, ActivityDef, ActivityError, Registry, UpdateDef, WorkflowContext, WorkflowDef,
    WorkflowError, WorkflowState,
};

use crate::setup::{Bench, uuid};
use crate::workloads::{Figure, figure, percentile};

const COUNTER: WorkflowDef<(), u32> = WorkflowDef::new("bench-counter");
/// Adds to the counter at once.
const BUMP: UpdateDef<u32, u32> = UpdateDef::new("bump");
/// Adds what an activity returns.
const BUMP_BY_ACTIVITY: UpdateDef<u32, u32> = UpdateDef::new("bump-by-activity");
const ECHO: ActivityDef<u32, u32> = ActivityDef::new("bench-echo");

async fn counter(ctx: WorkflowContext, (): ()) -> Result<u32, WorkflowError> {
    let count = WorkflowState::new(0u32);
    let bumped = count.clone();
    ctx.on_update(BUMP, move |_, n: u32| {
        let count = bumped.clone();
        async move {
            Ok(count.update(|c| {
                *c += n;
                *c
            }))
        }
    });
    let bumped = count.clone();
    ctx.on_update(BUMP_BY_ACTIVITY, move |ctx, n: u32| {
        let count = bumped.clone();
        async move {
            let n = ctx.activity(ECHO, &n).await?;
            Ok(count.update(|c| {
                *c += n;
                *c
            }))
        }
    });
    ctx.cancel_requested().await;
    Ok(count.get())
}

pub(crate) async fn updates(bench: &Bench) -> anyhow::Result<Vec<Figure>> {
    let registry = || -> anyhow::Result<Registry> {
        Ok(Registry::builder()
            .workflow(COUNTER, counter)
            .activity(ECHO, |_: ActivityContext, n: u32| async move {
                Ok::<_, ActivityError>(n)
            })
            .build()?)
    };
    let engine = Engine::new(bench.store.clone(), registry()?, EngineOptions::default());
    let worker = Worker::new(bench.store.clone(), registry()?, WorkerOptions::default());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|s| *s).await;
    };
    let engine_task = {
        let stopped = stopped.clone();
        tokio::spawn(async move { engine.run(until_stopped(stopped)).await })
    };
    let worker_task = tokio::spawn(async move { worker.run(until_stopped(stopped)).await });
    let id = format!("counter-{}", uuid());
    bench.client.start(COUNTER, &id, &()).await?;
    let mut expected = 0;
    let mut timed = async |n: usize, by_activity: bool| -> anyhow::Result<Vec<f64>> {
        let mut ms = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            let count = if by_activity {
                bench.client.update(&id, BUMP_BY_ACTIVITY, &1).await?
            } else {
                bench.client.update(&id, BUMP, &1).await?
            };
            ms.push(t.elapsed().as_secs_f64() * 1e3);
            expected += 1;
            anyhow::ensure!(count == expected, "{id} answered {count}, not {expected}");
        }
        Ok(ms)
    };
    // The first few warm the connections and the cache.
    timed(10, false).await?;
    let mut at_once = timed(200, false).await?;
    let mut with_activity = timed(100, true).await?;
    bench.client.cancel(&id, "benchmark over").await?;
    let _ = stop.send(true);
    tokio::time::timeout(Duration::from_secs(30), async {
        engine_task.await??;
        worker_task.await??;
        anyhow::Ok(())
    })
    .await??;
    Ok(vec![
        figure(
            "update, handler answers at once: p50",
            "ms",
            percentile(&mut at_once, 0.5),
        ),
        figure(
            "update, handler answers at once: p99",
            "ms",
            percentile(&mut at_once, 0.99),
        ),
        figure(
            "update, handler runs an activity: p50",
            "ms",
            percentile(&mut with_activity, 0.5),
        ),
        figure(
            "update, handler runs an activity: p99",
            "ms",
            percentile(&mut with_activity, 0.99),
        ),
    ])
}

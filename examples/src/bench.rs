//! The benchmark workflows (run by `reprise-bench`, hosted by `reprise-example` processes).

use std::time::Duration;

use reprise_sdk::{
    ActivityContext, ActivityDef, ActivityError, RegistryBuilder, WorkflowContext, WorkflowDef,
    WorkflowError,
};

/// Adds one: the cheapest possible activity.
pub const INCREMENT: ActivityDef<u64, u64> = ActivityDef::new("bench-increment");
/// W1: one activity.
pub const HELLO: WorkflowDef<u64, u64> = WorkflowDef::new("bench-hello");
/// W2 and W5: `n` sequential activities.
pub const CHAIN: WorkflowDef<u32, u64> = WorkflowDef::new("bench-chain");
/// W2 with local activities: `n` sequential local activities, run by the engine in its steps.
pub const LOCAL_CHAIN: WorkflowDef<u32, u64> = WorkflowDef::new("bench-local-chain");
/// W3: `n` activities at once.
pub const FANOUT: WorkflowDef<u32, u64> = WorkflowDef::new("bench-fanout");
/// The rate-limit workload's activity: adds one, under a limit of its own.
pub const RATED: ActivityDef<u64, u64> = ActivityDef::new("bench-rated");
/// The rate-limit workload: `n` rate-limited activities at once.
pub const RATED_FANOUT: WorkflowDef<u32, u64> = WorkflowDef::new("bench-rated-fanout");
/// W4: one durable one-second timer.
pub const TIMER: WorkflowDef<(), ()> = WorkflowDef::new("bench-timer");

async fn hello(ctx: WorkflowContext, n: u64) -> Result<u64, WorkflowError> {
    Ok(ctx.activity(INCREMENT, &n).await?)
}

async fn chain(ctx: WorkflowContext, n: u32) -> Result<u64, WorkflowError> {
    let mut total = 0;
    for _ in 0..n {
        total = ctx.activity(INCREMENT, &total).await?;
    }
    Ok(total)
}

async fn local_chain(ctx: WorkflowContext, n: u32) -> Result<u64, WorkflowError> {
    let mut total = 0;
    for _ in 0..n {
        total = ctx.local_activity(INCREMENT, &total).await?;
    }
    Ok(total)
}

async fn fanout(ctx: WorkflowContext, n: u32) -> Result<u64, WorkflowError> {
    fan_out(&ctx, INCREMENT, n).await
}

async fn rated_fanout(ctx: WorkflowContext, n: u32) -> Result<u64, WorkflowError> {
    fan_out(&ctx, RATED, n).await
}

/// Calls `activity` `n` times at once, with inputs 0 to n - 1; the sum of their results.
async fn fan_out(
    ctx: &WorkflowContext,
    activity: ActivityDef<u64, u64>,
    n: u32,
) -> Result<u64, WorkflowError> {
    let results =
        futures::future::join_all((0..u64::from(n)).map(|i| ctx.activity(activity, &i))).await;
    let mut total = 0;
    for result in results {
        total += result?;
    }
    Ok(total)
}

async fn timer(ctx: WorkflowContext, (): ()) -> Result<(), WorkflowError> {
    ctx.sleep(Duration::from_secs(1)).await?;
    Ok(())
}

async fn increment(_: ActivityContext, n: u64) -> Result<u64, ActivityError> {
    Ok(n + 1)
}

/// Adds the benchmark workflows and their activity to a registry.
pub fn register(builder: RegistryBuilder) -> RegistryBuilder {
    builder
        .workflow(HELLO, hello)
        .workflow(CHAIN, chain)
        .workflow(LOCAL_CHAIN, local_chain)
        .workflow(FANOUT, fanout)
        .workflow(TIMER, timer)
        .workflow(RATED_FANOUT, rated_fanout)
        .activity(INCREMENT, increment)
        .activity(RATED, increment)
}

//! The rate-limit workload: a fleet-wide limit of 50 attempts a second on one activity type,
//! held by four workers over a 60-second window with a backlog that never runs dry, and what
//! holding it costs the database per attempt (a worker held back sleeps until the next
//! token instead of polling: the database CPU per attempt shows whether it does).

use std::time::Duration;

use reprise_engine::{Limit, LimitScope, Rate};
use reprise_examples::bench::{RATED, RATED_FANOUT};

use crate::measure::DbCounters;
use crate::setup::{Bench, uuid};
use crate::workloads::{Figure, figure, wait_completed};

/// The limit held.
const PER_SECOND: f64 = 50.0;
/// The window the rate is measured over.
const WINDOW: Duration = Duration::from_secs(60);
/// Workflows of 100 limited activities each: 5,000 attempts, more than the ~80 s of warm-up,
/// statistics settling and window take at 50 a second.
const WORKFLOWS: usize = 50;
const PER_WORKFLOW: u32 = 100;

/// Attempts of the limited type not yet claimed, and the database's clock, in seconds.
async fn unclaimed(bench: &Bench) -> anyhow::Result<(i64, f64)> {
    let row: (i64, f64) = sqlx::query_as(
        "SELECT count(*), extract(epoch FROM clock_timestamp())::float8
           FROM reprise.activity_tasks WHERE activity_type = $1 AND lease_owner IS NULL",
    )
    .bind(RATED.name())
    .fetch_one(bench.store.pool())
    .await?;
    Ok(row)
}

/// Rate limits: 50/s over 4 workers, measured over 60 s.
pub(crate) async fn rated(bench: &Bench) -> anyhow::Result<Vec<Figure>> {
    let extra = bench.extra_workers(3)?;
    let scope = LimitScope::ActivityType(RATED.name().to_string());
    let limit = Limit {
        max_concurrent: None,
        rate: Some(Rate {
            per_second: PER_SECOND,
            burst: 50,
        }),
    };
    bench.client.set_limit(scope.clone(), limit).await?;
    let prefix = format!("rated-{}-", uuid());
    for i in 0..WORKFLOWS {
        bench
            .client
            .start(RATED_FANOUT, &format!("{prefix}{i}"), &PER_WORKFLOW)
            .await?;
    }
    let total = (WORKFLOWS as i64) * i64::from(PER_WORKFLOW);
    // Every attempt is queued (claimed or not) before the window opens.
    loop {
        let queued: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM reprise.activity_tasks WHERE activity_type = $1",
        )
        .bind(RATED.name())
        .fetch_one(bench.store.pool())
        .await?;
        if queued >= total - 100 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut pids = bench.host_pids();
    pids.extend(extra.pids());
    let before = DbCounters::before(bench.store.pool(), &pids).await?;
    let (left_before, at_before) = unclaimed(bench).await?;
    tokio::time::sleep(WINDOW).await;
    let (left_after, at_after) = unclaimed(bench).await?;
    let after = DbCounters::after(bench.store.pool(), &pids).await?;
    anyhow::ensure!(left_after > 0, "the backlog ran dry inside the window");
    let claimed = left_before - left_after;
    let rate = claimed as f64 / (at_after - at_before);
    let cost = before.per_workflow(after, u64::try_from(claimed).unwrap_or(1));

    // Lifted, the rest runs at once; the workload's runs all complete.
    bench.client.clear_limit(&scope).await?;
    wait_completed(bench, &prefix, WORKFLOWS).await?;
    drop(extra);
    Ok(vec![
        figure("rate held (limit 50/s)", "attempts/s", rate),
        figure(
            "off the limit",
            "%",
            (rate - PER_SECOND) / PER_SECOND * 100.0,
        ),
        figure(
            "write transactions per attempt",
            "",
            cost.write_transactions,
        ),
        figure("database CPU per attempt", "ms", cost.database_cpu_ms),
        figure("hosts CPU per attempt", "ms", cost.hosts_cpu_ms),
    ])
}

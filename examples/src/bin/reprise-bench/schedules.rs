//! Schedules: what 10,000 idle schedules cost the database (CPU per minute, against the same
//! minute with none), and how late firings start (p50/p99) with 50 schedules firing every
//! second beside them. The engine and worker processes run as in W1; the firings start
//! `bench-hello` workflows, which run to completion.

use std::time::Duration;

use reprise_engine::history::Timestamp;
use reprise_engine::{OverlapPolicy, Schedule, ScheduleSpec, StartOptions};
use reprise_examples::bench::HELLO;
use sqlx::types::chrono as chrono_time;

type Dt = chrono_time::DateTime<chrono_time::Utc>;

use crate::measure::DbCounters;
use crate::setup::Bench;
use crate::workloads::{Figure, figure, percentile};

/// The idle schedules.
const IDLE: usize = 10_000;
/// The schedules firing every second, and for how long.
const BUSY: usize = 50;
const BUSY_FOR: Duration = Duration::from_secs(20);
/// The window CPU is measured over.
const MINUTE: Duration = Duration::from_secs(60);

/// Database CPU (ms) over one minute of the hosts running and nothing else.
async fn cpu_per_minute(bench: &Bench) -> anyhow::Result<f64> {
    let pids = bench.host_pids();
    let before = DbCounters::before(bench.store.pool(), &pids).await?;
    tokio::time::sleep(MINUTE).await;
    let after = DbCounters::after(bench.store.pool(), &pids).await?;
    Ok(before.per_workflow(after, 1).database_cpu_ms)
}

async fn delete_all(bench: &Bench) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM reprise.schedules")
        .execute(bench.store.pool())
        .await?;
    Ok(())
}

pub(crate) async fn schedules(bench: &Bench) -> anyhow::Result<Vec<Figure>> {
    delete_all(bench).await?;
    let none = cpu_per_minute(bench).await?;

    // Yearly: none fires during the bench.
    let yearly = Schedule::new(
        ScheduleSpec::cron("0 0 1 1 *")?,
        bench
            .client
            .schedule_action(HELLO, &1, &StartOptions::default())?,
    );
    for i in 0..IDLE {
        bench
            .client
            .create_schedule(&format!("idle-{i:05}"), &yearly)
            .await?;
    }
    let idle = cpu_per_minute(bench).await?;

    let every_second = Schedule::new(
        ScheduleSpec::cron("* * * * * *")?,
        bench
            .client
            .schedule_action(HELLO, &1, &StartOptions::default())?,
    )
    .overlap(OverlapPolicy::AllowAll);
    // Earlier repetitions' runs stay: only this one's count.
    let since: Dt = sqlx::query_scalar("SELECT now()")
        .fetch_one(bench.store.pool())
        .await?;
    for i in 0..BUSY {
        bench
            .client
            .create_schedule(&format!("busy-{i:02}"), &every_second)
            .await?;
    }
    tokio::time::sleep(BUSY_FOR).await;
    for i in 0..BUSY {
        bench
            .client
            .pause_schedule(&format!("busy-{i:02}"), "bench over")
            .await?;
    }
    // Lateness: when each firing's run was written against the time it was for, which its
    // workflow id carries (`busy-NN-<time>`). (Its first step's decisions are stamped with
    // the time of its start, so history holds no later time to measure.)
    let rows: Vec<(String, Dt)> = sqlx::query_as(
        "SELECT workflow_id, created_at FROM reprise.runs
          WHERE workflow_id LIKE 'busy-%' AND created_at >= $1",
    )
    .bind(since)
    .fetch_all(bench.store.pool())
    .await?;
    let mut started_ms = Vec::new();
    for (id, created) in &rows {
        let Some(scheduled) = id
            .get("busy-00-".len()..)
            .and_then(Timestamp::parse_rfc3339)
        else {
            continue;
        };
        let late = |t: &Dt| (t.timestamp_micros() - scheduled.as_unix_micros()) as f64 / 1e3;
        started_ms.push(late(created));
    }
    anyhow::ensure!(!started_ms.is_empty(), "no firing to measure");
    let fired = started_ms.len() as f64;
    delete_all(bench).await?;
    Ok(vec![
        figure("database CPU, no schedules", "ms/min", none),
        figure("database CPU, 10,000 idle", "ms/min", idle),
        figure("firings per second", "/s", fired / BUSY_FOR.as_secs_f64()),
        figure(
            "run written, late p50",
            "ms",
            percentile(&mut started_ms, 0.5),
        ),
        figure(
            "run written, late p99",
            "ms",
            percentile(&mut started_ms, 0.99),
        ),
    ])
}

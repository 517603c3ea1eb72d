//! The gauges that describe the whole system (ready queues, their oldest waiting work, parked
//! runs), sampled by one process at a time for everyone: whoever holds a session advisory lock
//! on a connection of its own. Others try again each interval, so a successor takes over
//! within one interval when the sampler dies. A scrape never queries the database for them.

use std::time::Duration;

use sqlx::{Connection, PgConnection, Row};
use tokio::sync::watch;

use super::labels::ParkKind;
use super::metrics::Metrics;
use crate::error::{Error, Result};
use crate::store::Store;

/// Advisory-lock key of the gauge sampler (`'reprise g'` as an integer).
const SAMPLER_LOCK: i64 = 0x7265_7072_6973_6567;

/// One queue's waiting work.
pub(crate) struct QueueSample {
    pub(crate) task_queue: String,
    pub(crate) ready: i64,
    pub(crate) oldest_age_seconds: f64,
}

/// One sample of the shared gauges.
pub(crate) struct Sample {
    pub(crate) runs: Vec<QueueSample>,
    pub(crate) activities: Vec<QueueSample>,
    pub(crate) parked: Vec<(ParkKind, i64)>,
    pub(crate) limits: Vec<crate::flow_control::LimitUsage>,
}

/// Samples every `interval` while this process is the sampler, until `stop` turns true.
pub(crate) async fn sample_gauges(
    store: Store,
    metrics: Metrics,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut sampler: Option<PgConnection> = None;
    loop {
        match sample_once(&store, &mut sampler).await {
            Ok(Some(sample)) => metrics.sampled(&sample),
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(error = %e, "sampling the gauges failed; trying again");
                // Closing the connection frees the lock for another process.
                sampler = None;
            }
        }
        tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// A sample if this process is (or becomes) the sampler.
async fn sample_once(store: &Store, sampler: &mut Option<PgConnection>) -> Result<Option<Sample>> {
    if sampler.is_none() {
        let options = store.pool().connect_options();
        let mut conn = PgConnection::connect_with(&options)
            .await
            .map_err(Error::from_db)?;
        let won: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(SAMPLER_LOCK)
            .fetch_one(&mut conn)
            .await
            .map_err(Error::from_db)?;
        if !won {
            return Ok(None);
        }
        *sampler = Some(conn);
    }
    let Some(conn) = sampler.as_mut() else {
        return Ok(None);
    };
    let offset = store.offset();
    let runs = queues(
        conn,
        "SELECT r.task_queue, count(*), EXTRACT(EPOCH FROM reprise.db_now($1) - min(q.ready_at))::float8
           FROM reprise.ready_runs q JOIN reprise.runs r USING (run_id)
          WHERE q.ready_at <= reprise.db_now($1)
          GROUP BY r.task_queue",
        offset,
    )
    .await?;
    let activities = queues(
        conn,
        "SELECT task_queue, count(*), EXTRACT(EPOCH FROM reprise.db_now($1) - min(visible_at))::float8
           FROM reprise.activity_tasks
          WHERE lease_owner IS NULL AND visible_at <= reprise.db_now($1)
          GROUP BY task_queue",
        offset,
    )
    .await?;
    // The reason's opening words name its kind; grouping on them keeps the result small.
    let rows = sqlx::query(
        "SELECT left(parked_reason, 40) AS reason, count(*) AS n FROM reprise.runs
          WHERE status = 'running' AND parked_reason IS NOT NULL GROUP BY 1",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(Error::from_db)?;
    let mut parked = Vec::with_capacity(rows.len());
    for row in rows {
        let reason: String = row.try_get("reason").map_err(Error::from_db)?;
        let n: i64 = row.try_get("n").map_err(Error::from_db)?;
        parked.push((ParkKind::of(&reason), n));
    }
    Ok(Some(Sample {
        runs,
        activities,
        parked,
        limits: store.task_limits().await?,
    }))
}

async fn queues(
    conn: &mut PgConnection,
    sql: &'static str,
    offset: i64,
) -> Result<Vec<QueueSample>> {
    let rows = sqlx::query(sql)
        .bind(offset)
        .fetch_all(&mut *conn)
        .await
        .map_err(Error::from_db)?;
    rows.iter()
        .map(|row| {
            Ok(QueueSample {
                task_queue: row.try_get(0).map_err(Error::from_db)?,
                ready: row.try_get(1).map_err(Error::from_db)?,
                oldest_age_seconds: row
                    .try_get::<Option<f64>, _>(2)
                    .map_err(Error::from_db)?
                    .unwrap_or(0.0),
            })
        })
        .collect()
}

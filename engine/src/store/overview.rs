//! What an operator sees across runs: open runs per workflow type, and each task queue's
//! backlog and who serves it.

use reprise_history::{Timestamp, WorkflowType};
use sqlx::Row;

use crate::error::{Error, Result};
use crate::store::{Store, to_timestamp};

/// Open runs of one workflow type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeUsage {
    /// The workflow type.
    pub workflow_type: WorkflowType,
    /// Its open runs.
    pub open_runs: u64,
    /// Of those, the parked ones.
    pub parked: u64,
}

/// One activity task queue's backlog and servers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueBacklog {
    /// The task queue.
    pub task_queue: String,
    /// Attempts due and waiting for a worker.
    pub ready: u64,
    /// Since when the oldest of those has been due.
    pub oldest_ready_at: Option<Timestamp>,
    /// Attempts leased to a worker now.
    pub running: u64,
    /// Attempts waiting for a retry's backoff.
    pub backing_off: u64,
    /// Workers that announced they serve it.
    pub workers: u64,
}

fn count(row: &sqlx::postgres::PgRow, column: &str) -> Result<u64> {
    let n: i64 = row.try_get(column).map_err(Error::from_db)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

impl Store {
    /// Open runs per workflow type (parked ones counted too), most first.
    pub(crate) async fn open_runs_by_type(&self) -> Result<Vec<TypeUsage>> {
        sqlx::query(
            "SELECT workflow_type, count(*) AS open,
                    count(*) FILTER (WHERE parked_reason IS NOT NULL) AS parked
               FROM reprise.runs WHERE status = 'running'
              GROUP BY workflow_type ORDER BY open DESC, workflow_type",
        )
        .fetch_all(self.pool())
        .await
        .map_err(Error::from_db)?
        .iter()
        .map(|row| {
            Ok(TypeUsage {
                workflow_type: WorkflowType::new(
                    row.try_get::<String, _>("workflow_type")
                        .map_err(Error::from_db)?,
                )?,
                open_runs: count(row, "open")?,
                parked: count(row, "parked")?,
            })
        })
        .collect()
    }

    /// Each activity task queue with work or a worker: its backlog and servers.
    pub(crate) async fn queue_backlogs(&self) -> Result<Vec<QueueBacklog>> {
        sqlx::query(
            "WITH now AS (SELECT reprise.db_now($1) AS at),
             tasks AS (
                 SELECT task_queue,
                        count(*) FILTER (WHERE lease_owner IS NULL AND visible_at <= now.at) AS ready,
                        min(visible_at) FILTER (WHERE lease_owner IS NULL AND visible_at <= now.at) AS oldest,
                        count(*) FILTER (WHERE lease_owner IS NOT NULL) AS running,
                        count(*) FILTER (WHERE lease_owner IS NULL AND visible_at > now.at) AS backing_off
                   FROM reprise.activity_tasks, now GROUP BY task_queue),
             servers AS (
                 SELECT queue AS task_queue, count(*) AS workers
                   FROM reprise.workers, unnest(queues) AS queue GROUP BY queue)
             SELECT task_queue, coalesce(ready, 0) AS ready, oldest, coalesce(running, 0) AS running,
                    coalesce(backing_off, 0) AS backing_off, coalesce(workers, 0) AS workers
               FROM tasks FULL JOIN servers USING (task_queue) ORDER BY task_queue",
        )
        .bind(self.offset())
        .fetch_all(self.pool())
        .await
        .map_err(Error::from_db)?
        .iter()
        .map(|row| {
            Ok(QueueBacklog {
                task_queue: row.try_get("task_queue").map_err(Error::from_db)?,
                ready: count(row, "ready")?,
                oldest_ready_at: row
                    .try_get::<Option<chrono::DateTime<chrono::Utc>>, _>("oldest")
                    .map_err(Error::from_db)?
                    .map(to_timestamp),
                running: count(row, "running")?,
                backing_off: count(row, "backing_off")?,
                workers: count(row, "workers")?,
            })
        })
        .collect()
    }
}

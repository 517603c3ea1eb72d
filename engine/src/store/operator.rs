//! The operator paths: what people and tools do to runs from outside, never on a step's path
//! (retrying parked runs, retention, listing, patch usage, the deploy check's sample).
//! Cancelling and terminating live in `lifecycle.rs`, which steps use too.

use reprise_history::{PatchId, RunId, RunState, WorkflowId, WorkflowType};
use sqlx::Row;

use crate::error::{Error, Result};
use crate::store::rows::run_state;
use crate::store::{RUNS_CHANNEL, Store, micros, to_datetime, to_timestamp};

/// A run as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunSummary {
    /// The run.
    pub run_id: RunId,
    /// Its workflow id.
    pub workflow_id: WorkflowId,
    /// Its workflow type.
    pub workflow_type: WorkflowType,
    /// Its status.
    pub status: RunState,
    /// Why it is parked, if it is.
    pub parked_reason: Option<String>,
    /// When it was created (database time).
    pub created_at: reprise_history::Timestamp,
    /// When it closed, if it has.
    pub closed_at: Option<reprise_history::Timestamp>,
    /// When its last event was recorded (its last step, or the last input it received).
    pub last_event_at: reprise_history::Timestamp,
}

/// Which runs to list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// Only this status.
    pub status: Option<RunState>,
    /// Only parked runs.
    pub parked: bool,
    /// Only this workflow type.
    pub workflow_type: Option<WorkflowType>,
    /// Only runs created at or after this time.
    pub created_from: Option<reprise_history::Timestamp>,
    /// Only runs created before this time.
    pub created_before: Option<reprise_history::Timestamp>,
}

/// Where a page of runs ends: pass it to get the next page (keyset paging, not offsets).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunCursor {
    created_at: reprise_history::Timestamp,
    run_id: RunId,
}

impl Store {
    /// Makes a parked run claimable now by any process that knows its type, and wakes
    /// engines, in one statement.
    pub(crate) async fn retry_parked(&self, run_id: RunId) -> Result<bool> {
        let queued: i64 = sqlx::query_scalar("WITH unparked AS (
                 UPDATE reprise.runs SET parked_build = NULL
                  WHERE run_id = $2 AND status = 'running' AND parked_reason IS NOT NULL RETURNING run_id),
             queued AS (
                 INSERT INTO reprise.ready_runs (run_id, ready_at) SELECT run_id, reprise.db_now($1) FROM unparked
                 ON CONFLICT (run_id) DO UPDATE SET ready_at = EXCLUDED.ready_at RETURNING run_id)
             SELECT (SELECT count(*) FROM queued),
                    (SELECT count(*) FROM (SELECT pg_notify($3, '') WHERE EXISTS (SELECT 1 FROM queued)) n)")
        .bind(self.offset())
        .bind(run_id.as_uuid())
        .bind(RUNS_CHANNEL)
        .fetch_one(self.pool())
        .await
        .map_err(Error::from_db)?;
        Ok(queued == 1)
    }

    /// Deletes up to `batch` runs closed before `now - older_than`, with their history, inbox,
    /// tasks and patch records, through `reprise.prune_closed_runs` (migration 0012): the one
    /// way a role other than the schema's owner deletes history. Open runs are never touched
    /// (the database refuses it too).
    pub(crate) async fn prune_closed(
        &self,
        older_than: std::time::Duration,
        batch: i64,
    ) -> Result<u64> {
        let pruned: i64 = sqlx::query_scalar("SELECT reprise.prune_closed_runs($1, $2, $3)")
            .bind(self.offset())
            .bind(micros(older_than))
            .bind(batch)
            .fetch_one(self.pool())
            .await
            .map_err(Error::from_db)?;
        Ok(u64::try_from(pruned).unwrap_or(0))
    }

    /// One page of runs, newest first.
    pub(crate) async fn list(
        &self,
        filter: &RunFilter,
        after: Option<RunCursor>,
        limit: i64,
    ) -> Result<(Vec<RunSummary>, Option<RunCursor>)> {
        let rows = sqlx::query(
            "SELECT run_id, workflow_id, workflow_type, status, parked_reason, created_at, closed_at,
                    (SELECT h.recorded_at FROM reprise.history h
                      WHERE h.run_id = runs.run_id AND h.seq = runs.head_seq) AS last_event_at
               FROM reprise.runs
              WHERE ($1::text IS NULL OR status = $1)
                AND (NOT $2 OR parked_reason IS NOT NULL)
                AND ($3::text IS NULL OR workflow_type = $3)
                AND ($4::timestamptz IS NULL OR created_at >= $4)
                AND ($5::timestamptz IS NULL OR created_at < $5)
                AND ($6::timestamptz IS NULL OR (created_at, run_id) < ($6, $7))
              ORDER BY created_at DESC, run_id DESC LIMIT $8",
        )
        .bind(filter.status.map(RunState::as_str))
        .bind(filter.parked)
        .bind(filter.workflow_type.as_ref().map(WorkflowType::as_str))
        .bind(filter.created_from.map(to_datetime).transpose()?)
        .bind(filter.created_before.map(to_datetime).transpose()?)
        .bind(after.map(|c| to_datetime(c.created_at)).transpose()?)
        .bind(after.map(|c| *c.run_id.as_uuid()))
        .bind(limit)
        .fetch_all(self.pool())
        .await
        .map_err(Error::from_db)?;
        let runs = rows
            .iter()
            .map(|row| {
                Ok(RunSummary {
                    run_id: RunId::from_uuid(row.try_get("run_id").map_err(Error::from_db)?),
                    workflow_id: WorkflowId::new(
                        row.try_get::<String, _>("workflow_id")
                            .map_err(Error::from_db)?,
                    )?,
                    workflow_type: WorkflowType::new(
                        row.try_get::<String, _>("workflow_type")
                            .map_err(Error::from_db)?,
                    )?,
                    status: run_state(row, "status")?,
                    parked_reason: row.try_get("parked_reason").map_err(Error::from_db)?,
                    created_at: to_timestamp(row.try_get("created_at").map_err(Error::from_db)?),
                    closed_at: row
                        .try_get::<Option<chrono::DateTime<chrono::Utc>>, _>("closed_at")
                        .map_err(Error::from_db)?
                        .map(to_timestamp),
                    last_event_at: to_timestamp(
                        row.try_get("last_event_at").map_err(Error::from_db)?,
                    ),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let next = if runs.len() as i64 == limit {
            runs.last().map(|r| RunCursor {
                created_at: r.created_at,
                run_id: r.run_id,
            })
        } else {
            None
        };
        Ok((runs, next))
    }
}

/// An open run picked for the deploy check.
#[derive(Clone, Debug)]
pub(crate) struct SampledRun {
    pub(crate) run_id: RunId,
    pub(crate) workflow_id: WorkflowId,
    pub(crate) workflow_type: WorkflowType,
}

/// How open runs of a workflow type stand with one patch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatchUsage {
    /// The patch id.
    pub patch_id: PatchId,
    /// Open runs that recorded its marker (they take the new branch).
    pub open_runs_with_marker: u64,
    /// Open runs that did not (they may still need the old branch).
    pub open_runs_without_marker: u64,
}

impl Store {
    /// For each patch recorded by runs of `workflow_type`: open runs with and without its marker.
    pub(crate) async fn patch_usage(&self, workflow_type: &str) -> Result<Vec<PatchUsage>> {
        let rows = sqlx::query(
            "WITH open_runs AS (
                 SELECT run_id FROM reprise.runs WHERE workflow_type = $1 AND status = 'running'),
             patches AS (
                 SELECT DISTINCT p.patch_id FROM reprise.run_patches p
                   JOIN reprise.runs r ON r.run_id = p.run_id WHERE r.workflow_type = $1)
             SELECT patches.patch_id,
                    (SELECT count(*) FROM open_runs o JOIN reprise.run_patches p
                       ON p.run_id = o.run_id AND p.patch_id = patches.patch_id) AS with_marker,
                    (SELECT count(*) FROM open_runs) AS open
               FROM patches ORDER BY patches.patch_id",
        )
        .bind(workflow_type)
        .fetch_all(self.pool())
        .await
        .map_err(Error::from_db)?;
        rows.iter()
            .map(|row| {
                let with: i64 = row.try_get("with_marker").map_err(Error::from_db)?;
                let open: i64 = row.try_get("open").map_err(Error::from_db)?;
                let counts = u64::try_from(with)
                    .ok()
                    .zip(u64::try_from(open - with).ok());
                let Some((with, without)) = counts else {
                    return Err(Error::Corrupt {
                        what: "patch usage".to_string(),
                        reason: format!("{with} of {open} open runs"),
                    });
                };
                Ok(PatchUsage {
                    patch_id: PatchId::new(
                        row.try_get::<String, _>("patch_id")
                            .map_err(Error::from_db)?,
                    )?,
                    open_runs_with_marker: with,
                    open_runs_without_marker: without,
                })
            })
            .collect()
    }

    /// Up to `sample` open runs that have taken their first step, chosen at random.
    pub(crate) async fn sample_open_runs(&self, sample: i64) -> Result<Vec<SampledRun>> {
        let rows = sqlx::query(
            "SELECT run_id, workflow_id, workflow_type FROM reprise.runs
              WHERE status = 'running' AND applied_seq > 0 ORDER BY random() LIMIT $1",
        )
        .bind(sample)
        .fetch_all(self.pool())
        .await
        .map_err(Error::from_db)?;
        rows.iter()
            .map(|row| {
                let text = |column| row.try_get::<String, _>(column).map_err(Error::from_db);
                Ok(SampledRun {
                    run_id: RunId::from_uuid(row.try_get("run_id").map_err(Error::from_db)?),
                    workflow_id: WorkflowId::new(text("workflow_id")?)?,
                    workflow_type: WorkflowType::new(text("workflow_type")?)?,
                })
            })
            .collect()
    }
}

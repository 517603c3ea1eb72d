//! The operator paths: what people and tools do to runs from outside, never on a step's path
//! (retrying parked runs, retention, patch usage, the deploy check's sample). Listing lives in
//! `listing.rs`.
//! Cancelling and terminating live in `lifecycle.rs`, which steps use too.

use reprise_history::{PatchId, RunId, WorkflowId, WorkflowType};
use sqlx::Row;

use crate::error::{Error, Result};
use crate::store::{RUNS_CHANNEL, Store, micros};

/// Makes a parked run claimable now by any process that knows its type, and wakes engines,
/// in one statement. Returns false if the run is not parked.
pub(crate) async fn retry_parked_in(
    conn: &mut sqlx::PgConnection,
    offset: i64,
    run_id: RunId,
) -> Result<bool> {
    let queued: i64 = sqlx::query_scalar("WITH unparked AS (
             UPDATE reprise.runs SET parked_build = NULL
              WHERE run_id = $2 AND status = 'running' AND parked_reason IS NOT NULL RETURNING run_id),
         queued AS (
             INSERT INTO reprise.ready_runs (run_id, ready_at) SELECT run_id, reprise.db_now($1) FROM unparked
             ON CONFLICT (run_id) DO UPDATE SET ready_at = EXCLUDED.ready_at RETURNING run_id)
         SELECT (SELECT count(*) FROM queued),
                (SELECT count(*) FROM (SELECT pg_notify($3, '') WHERE EXISTS (SELECT 1 FROM queued)) n)")
    .bind(offset)
    .bind(run_id.as_uuid())
    .bind(RUNS_CHANNEL)
    .fetch_one(&mut *conn)
    .await
    .map_err(Error::from_db)?;
    Ok(queued == 1)
}

impl Store {
    /// Makes a parked run claimable now by any process that knows its type, and wakes
    /// engines, in one statement.
    pub(crate) async fn retry_parked(&self, run_id: RunId) -> Result<bool> {
        let mut conn = self.pool().acquire().await.map_err(Error::from_db)?;
        retry_parked_in(&mut conn, self.offset(), run_id).await
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

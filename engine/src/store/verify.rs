//! Verifying stored histories: every link of a run's chain (keyed where it is keyed), and the
//! run's recorded head against the chain's, without decoding an event (`reprise verify`).

use reprise_history::{ChainHash, RunId, Seq, WorkflowId, chain};
use sqlx::Row;

use crate::error::{Error, Result};
use crate::store::Store;
use crate::store::rows::{links_from_rows, run_id, seq};

/// What verifying one run's history found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainVerdict {
    /// Every link verifies, keyed from this seq on (with the key this process holds): no
    /// writer without the key changed an event from there on.
    Keyed {
        /// The first keyed link.
        from: Seq,
    },
    /// Every link verifies, and none is keyed: whole, but a writer with database access could
    /// have rewritten it (a history written before a chain key was set, or without one).
    Unkeyed,
    /// The first link that does not verify, or a head that is not the chain's.
    Broken {
        /// The first bad seq.
        seq: Seq,
        /// Why, in words.
        reason: String,
    },
}

/// One run's verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunVerification {
    /// Its workflow id.
    pub workflow_id: WorkflowId,
    /// The run.
    pub run_id: RunId,
    /// Events read.
    pub events: u64,
    /// What was found.
    pub verdict: ChainVerdict,
}

impl Store {
    /// Verifies one run's history against its chain and its recorded head, both read in one
    /// snapshot (a step committing in between would otherwise look like a broken head).
    pub(crate) async fn verify_run(&self, run: RunId) -> Result<Option<RunVerification>> {
        let mut conn = self.pool().begin().await.map_err(Error::from_db)?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *conn)
            .await
            .map_err(Error::from_db)?;
        let Some(head) = sqlx::query(
            "SELECT workflow_id, head_seq, head_hash FROM reprise.runs WHERE run_id = $1",
        )
        .bind(run.as_uuid())
        .fetch_optional(&mut *conn)
        .await
        .map_err(Error::from_db)?
        else {
            conn.rollback().await.map_err(Error::from_db)?;
            return Ok(None);
        };
        let workflow_id: String = head.try_get("workflow_id").map_err(Error::from_db)?;
        let head_seq = seq(&head, "head_seq")?;
        let head_hash: Vec<u8> = head.try_get("head_hash").map_err(Error::from_db)?;
        let rows = sqlx::query(
            "SELECT seq, event, hash FROM reprise.history WHERE run_id = $1 ORDER BY seq",
        )
        .bind(run.as_uuid())
        .fetch_all(&mut *conn)
        .await
        .map_err(Error::from_db)?;
        let links = links_from_rows(&rows)?;
        let verdict = match chain::verify_keyed(links.iter().copied(), self.chain_key()) {
            Ok(verified) => {
                let last = links.last().map_or(Seq::new(0), |l| l.seq);
                if last != head_seq {
                    ChainVerdict::Broken {
                        seq: Seq::new(last.get().min(head_seq.get()) + 1),
                        reason: format!(
                            "the run's recorded head is seq {head_seq}, its history ends at seq {last}"
                        ),
                    }
                } else if verified.head != ChainHash::from_slice(&head_hash)? {
                    ChainVerdict::Broken {
                        seq: head_seq,
                        reason: format!(
                            "the run's recorded head hash is not its chain's (seq {head_seq})"
                        ),
                    }
                } else {
                    match verified.keyed_from {
                        Some(from) => ChainVerdict::Keyed { from },
                        None => ChainVerdict::Unkeyed,
                    }
                }
            }
            Err(e) => {
                let seq = match &e {
                    reprise_history::Error::ChainMismatch { seq }
                    | reprise_history::Error::ChainNotKeyed { seq } => *seq,
                    reprise_history::Error::SeqOutOfOrder { expected, .. } => *expected,
                    _ => Seq::new(1),
                };
                ChainVerdict::Broken {
                    seq,
                    reason: e.to_string(),
                }
            }
        };
        conn.commit().await.map_err(Error::from_db)?;
        Ok(Some(RunVerification {
            workflow_id: WorkflowId::new(workflow_id)?,
            run_id: run,
            events: links.len() as u64,
            verdict,
        }))
    }

    /// Up to `limit` run ids after `after`, in id order: the runs `verify --all` walks.
    pub(crate) async fn run_ids_after(
        &self,
        after: Option<RunId>,
        limit: i64,
    ) -> Result<Vec<RunId>> {
        let rows = sqlx::query(
            "SELECT run_id FROM reprise.runs WHERE $1::uuid IS NULL OR run_id > $1
              ORDER BY run_id LIMIT $2",
        )
        .bind(after.map(|r| *r.as_uuid()))
        .bind(limit)
        .fetch_all(self.pool())
        .await
        .map_err(Error::from_db)?;
        rows.iter().map(|row| run_id(row, "run_id")).collect()
    }

    /// Every run of a workflow id, oldest first.
    pub(crate) async fn runs_of(&self, workflow_id: &WorkflowId) -> Result<Vec<RunId>> {
        let rows = sqlx::query(
            "SELECT run_id FROM reprise.runs WHERE workflow_id = $1 ORDER BY created_at, run_id",
        )
        .bind(workflow_id.as_str())
        .fetch_all(self.pool())
        .await
        .map_err(Error::from_db)?;
        rows.iter().map(|row| run_id(row, "run_id")).collect()
    }
}

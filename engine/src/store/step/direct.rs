//! Direct steps: one run stepped on a notification's word, in one statement, with no claim.
//!
//! A batch costs four round trips (`BEGIN`, claim, write, `COMMIT`) because it must lock its
//! runs before it knows what to step. When a notification names the one input a run is
//! waiting for (an activity's outcome) and the engine holds that run's orchestrator at its
//! head, or names a new run, the engine reads that input (or the first event: one key lookup,
//! as notifications carry no user data), steps, and writes after: one statement that locks the
//! run, checks that nothing moved since, and writes the step, or writes nothing. Any doubt goes
//! to the batch path, which is always correct on its own: a direct step only ever saves it work.
//!
//! What the statement checks before it writes (its `fence`), on the run's row lock:
//! - the run's head is the one the engine stepped from, and it is open and not parked;
//! - the run's inbox holds exactly the inputs the step applied (nothing else arrived that
//!   arrival order would put first, and no timer is pending: the statement queues nothing);
//! - a closing run has no open child (whose parent-close policy needs statements of its own).
//!
//! An input delivered after the statement's snapshot but before its lock is not in that
//! snapshot. Its delivery wrote the run's queue row (deliveries always write a new version of
//! it), so the statement removes the queue row only if it is still the version its snapshot
//! saw: the run stays queued for the batch path to take the new input.

use reprise_history::{ChainHash, Event, Limits, RunId, Seq, TraceContext};
use reprise_sdk::Effects;
use sqlx::{Connection, PgConnection, Row};

use super::rows::{TaskRows, WriteRows};
use crate::error::{Error, Result};
use crate::store::bind::Bound;
use crate::store::notify::Notifications;
use crate::store::rows::{HistoryRows, seq_param};
use crate::store::{Store, record_update_effects, to_timestamp};

/// Writes one run's step if the run is as the step assumed (see `sql/step_directly.sql`).
pub(crate) const DIRECT_STEP_SQL: &str = include_str!("../sql/step_directly.sql");

/// The parameters of `step_directly.sql`.
#[derive(Default)]
pub(crate) struct StepDirectly {
    pub(crate) offset: i64,
    pub(crate) rows: WriteRows,
    pub(crate) run_id: uuid::Uuid,
    pub(crate) head_seq: i64,
    pub(crate) head_hash: Vec<u8>,
    pub(crate) new_head_seq: i64,
    pub(crate) new_head_hash: Vec<u8>,
    pub(crate) closing: Option<&'static str>,
    pub(crate) notes: Notifications,
    pub(crate) custom_status: Option<Vec<u8>>,
}

impl StepDirectly {
    /// Binds `$1` to `$29`.
    pub(crate) fn bind<'q>(mut self) -> Bound<'q> {
        let priorities = self.rows.tasks.take_priorities();
        let bound = self
            .rows
            .bind_to(Bound::new(DIRECT_STEP_SQL).bind(self.offset))
            .bind(self.run_id)
            .bind(self.head_seq)
            .bind(self.head_hash)
            .bind(self.new_head_seq)
            .bind(self.new_head_hash)
            .bind(self.closing);
        self.notes
            .bind_to(bound)
            .bind(priorities)
            .bind(self.custom_status)
    }
}

/// One run's step, to be written directly.
pub(crate) struct DirectStep<'a> {
    pub(crate) run_id: RunId,
    /// The head the step was taken from.
    pub(crate) head_seq: Seq,
    pub(crate) head_hash: ChainHash,
    /// The inbox rows the step applied.
    pub(crate) inbox_ids: &'a [i64],
    /// The step's events: its inputs and decisions, in order.
    pub(crate) events: &'a [Event],
    /// What they do: nothing but rows (see `Effects::are_rows_only`).
    pub(crate) effects: &'a Effects<'a>,
    /// The step's trace: its activities' attempts join it.
    pub(crate) trace: Option<&'a TraceContext>,
}

/// Reads a new run's first event for a direct step (see [`Store::hinted_start`]).
const HINTED_START_SQL: &str = "SELECT h.event FROM reprise.history h
  WHERE h.run_id = $2 AND h.seq = 1
    AND EXISTS (SELECT 1 FROM reprise.runs r
                 WHERE r.run_id = $2 AND r.head_seq = 1 AND r.closed_at IS NULL
                   AND r.parked_reason IS NULL)
    AND EXISTS (SELECT 1 FROM reprise.ready_runs q
                 WHERE q.run_id = $2 AND q.ready_at <= reprise.db_now($1))";

/// Reads one inbox row for a direct step (see [`Store::hinted_input`]).
const HINTED_INPUT_SQL: &str = "SELECT reprise.db_now($1) AS now, i.event FROM reprise.inbox i
  WHERE i.id = $3 AND i.run_id = $2 AND i.visible_at <= reprise.db_now($1)";

/// Binds [`HINTED_START_SQL`].
pub(crate) fn hinted_start<'q>(offset: i64, run: RunId) -> Bound<'q> {
    Bound::new(HINTED_START_SQL)
        .bind(offset)
        .bind(*run.as_uuid())
}

/// Binds [`HINTED_INPUT_SQL`].
pub(crate) fn hinted_input<'q>(offset: i64, run: RunId, inbox_id: i64) -> Bound<'q> {
    Bound::new(HINTED_INPUT_SQL)
        .bind(offset)
        .bind(*run.as_uuid())
        .bind(inbox_id)
}

impl Store {
    /// The first event of `run`, if it is still its only one, the run is open, not parked and
    /// due (a delayed start waits in its queue row until its time): what a direct step on a
    /// `started` notification starts from, so that a forged one runs no workflow code for a
    /// run that is not new. The step's fence checks all of it again on the run's lock, and
    /// the head hash against these bytes, so nothing here need be trusted.
    pub(crate) async fn hinted_start(
        &self,
        conn: &mut PgConnection,
        run: RunId,
    ) -> Result<Option<Vec<u8>>> {
        let row = hinted_start(self.offset(), run)
            .query()
            .fetch_optional(&mut *conn)
            .await
            .map_err(Error::from_db)?;
        row.map(|row| row.try_get("event").map_err(Error::from_db))
            .transpose()
    }

    /// The inbox row an `input` notification names, if it is `run`'s and visible: its encoded
    /// input, and the database time now, which the step records it at (as a batch records its
    /// inputs at its claim's time, so that a run's time never goes back).
    pub(crate) async fn hinted_input(
        &self,
        conn: &mut PgConnection,
        run: RunId,
        inbox_id: i64,
    ) -> Result<Option<(reprise_history::Timestamp, Vec<u8>)>> {
        let row = hinted_input(self.offset(), run, inbox_id)
            .query()
            .fetch_optional(&mut *conn)
            .await
            .map_err(Error::from_db)?;
        row.map(|row| {
            let now: chrono::DateTime<chrono::Utc> = row.try_get("now").map_err(Error::from_db)?;
            let event: Vec<u8> = row.try_get("event").map_err(Error::from_db)?;
            Ok((to_timestamp(now), event))
        })
        .transpose()
    }

    /// Writes a direct step in one statement (see the module's documentation). Returns the
    /// run's new head hash, or `None` when the run was not as the step assumed: then nothing
    /// was written, and the step must be thrown away. A step that accepted, completed or
    /// refused an update writes that too, after the statement and in its transaction, only
    /// if the statement's fence held (a handler awaiting an activity finishes on its
    /// outcome's direct step instead of costing the batch path a replay).
    pub(crate) async fn step_direct(
        &self,
        conn: &mut PgConnection,
        step: DirectStep<'_>,
    ) -> Result<Option<ChainHash>> {
        if !step.effects.touch_updates() {
            return self.step_direct_statement(conn, step).await;
        }
        let mut tx = conn.begin().await.map_err(Error::from_db)?;
        let (run_id, effects) = (step.run_id, step.effects);
        let written = self.step_direct_statement(&mut tx, step).await?;
        if written.is_some() {
            record_update_effects(&mut tx, self.write_context(), run_id, effects).await?;
            tx.commit().await.map_err(Error::from_db)?;
        } else {
            // Ended now: a dropped transaction would leave the loop's session idle in it.
            tx.rollback().await.map_err(Error::from_db)?;
        }
        Ok(written)
    }

    /// The direct step's one statement.
    async fn step_direct_statement(
        &self,
        conn: &mut PgConnection,
        step: DirectStep<'_>,
    ) -> Result<Option<ChainHash>> {
        let limits: &Limits = self.limits();
        let mut history = HistoryRows::default();
        let head_hash = history.push_run(
            step.run_id,
            step.head_hash,
            step.events,
            limits,
            self.chain_key(),
        )?;
        let head_seq = step.events.last().map_or(step.head_seq, |e| e.seq);
        let mut tasks = TaskRows::default();
        let mut notes = Notifications::default();
        for task in &step.effects.tasks {
            tasks.push(step.run_id, task, step.trace, limits)?;
            notes.task_queue(task.activity.task_queue.as_str());
        }
        let closing = step.effects.close.as_ref();
        if closing.is_some() {
            notes.closed(step.run_id);
        }
        let mut inbox_ids = step.inbox_ids.to_vec();
        inbox_ids.sort_unstable();
        let statement = StepDirectly {
            offset: self.offset(),
            rows: WriteRows {
                history,
                tasks,
                consumed: inbox_ids,
            },
            run_id: *step.run_id.as_uuid(),
            head_seq: seq_param(step.head_seq),
            head_hash: step.head_hash.as_bytes().to_vec(),
            new_head_seq: seq_param(head_seq),
            new_head_hash: head_hash.as_bytes().to_vec(),
            closing: closing.map(|c| c.state.as_str()),
            notes,
            custom_status: step.effects.status.as_ref().map(|s| s.as_bytes().to_vec()),
        };
        let row = statement
            .bind()
            .query()
            .fetch_one(conn)
            .await
            .map_err(Error::from_db)?;
        let fenced: i64 = row.try_get("fenced").map_err(Error::from_db)?;
        Ok((fenced == 1).then_some(head_hash))
    }
}

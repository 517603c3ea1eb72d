//! Steps, in batches: one transaction claims the runs that have work, each locked by its row
//! lock until the transaction ends (that lock is the run's lease: no other process can step or
//! write it meanwhile, and it ends with the transaction even if this process dies), takes
//! their visible inputs, appends each run's events with their chain hashes, carries out the
//! decisions' effects, closes the runs that ended, and releases them all at once.
//!
//! - `mod.rs`: the batch (claim, histories, commit);
//! - `effects.rs`: a step's effects carried out in SQL (`reprise_sdk::Effects`);
//! - `rows.rs`: the rows a step writes and the binders of the step statements;
//! - `direct.rs`: one run stepped in one statement, on a notification's word.
//!
//! Each statement is a file of its own in `store/sql/`, with a header saying which rules it
//! keeps.

mod direct;
mod effects;
mod rows;

use std::collections::HashMap;
use std::time::Duration;

use reprise_history::{
    ChainHash, Event, EventKind, Limits, ParentClosePolicy, RunId, RunState, Seq, Timestamp,
    TraceContext, WorkflowId,
};
use reprise_sdk::Effects;
use sqlx::{PgConnection, Postgres, Row, Transaction};

use crate::error::{Error, Result};
use crate::store::bind::Bound;
use crate::store::notify::{Notifications, RUNS_CHANNEL};
use crate::store::rows::{events_from_rows, parent_close_policy, run_id, seq};
use crate::store::{Store, WriteContext, apply_parent_close_policy, runs, to_timestamp};

pub(crate) use direct::{DirectStep, StepDirectly, hinted_input, hinted_start};
use effects::RunWriter;
pub(crate) use rows::{ClaimRuns, InsertTasks, TaskRows, WriteAndRelease, WriteSteps};
use rows::{HeadRows, WriteRows};

/// Claims up to `$4` runs whose work is due (see `sql/claim_ready_runs.sql`).
pub(crate) const CLAIM_READY_SQL: &str = include_str!("../sql/claim_ready_runs.sql");
/// Claims the runs `$4` if their work is due (see `sql/claim_given_runs.sql`).
pub(crate) const CLAIM_ONLY_SQL: &str = include_str!("../sql/claim_given_runs.sql");
/// The histories of the runs `$1`, in order (see `sql/read_histories.sql`).
pub(crate) const READ_HISTORIES_SQL: &str = include_str!("../sql/read_histories.sql");

/// Which runs a batch claims.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Claim<'a> {
    /// Up to this many runs whose work is due, the longest waiting first.
    Ready(i64),
    /// These runs, if they have work and no other process holds them.
    Only(&'a [RunId]),
}

/// A run claimed by a batch: locked until the batch commits or rolls back.
#[derive(Debug)]
pub(crate) struct BatchRun {
    pub(crate) run_id: RunId,
    pub(crate) workflow_id: WorkflowId,
    pub(crate) workflow_type: String,
    pub(crate) head_seq: Seq,
    pub(crate) head_hash: ChainHash,
    /// 0 until the first step has applied `WorkflowStarted`.
    pub(crate) applied_seq: Seq,
    /// For a child: what happens to it when its parent closes (kept by its next runs).
    parent_close_policy: Option<ParentClosePolicy>,
    /// The run's whole history, verified, when it is one event (a new run): read with the
    /// claim, so that the first step needs no read of its own.
    pub(crate) history: Option<Result<Vec<Event>>>,
    /// The inputs visible now, in arrival order.
    pub(crate) inputs: Vec<EventKind>,
    inbox_ids: Vec<i64>,
    /// Why an input of this run could not be decoded: the run is parked, not stepped.
    pub(crate) unreadable_input: Option<String>,
    /// How long the run waited from ready to claimed (schedule-to-start of a workflow step).
    pub(crate) waited: Duration,
    /// How late each timer among its inputs fires: claimed after it was due by this much.
    pub(crate) timers_late: Vec<Duration>,
}

/// A batch of steps in one transaction.
pub(crate) struct StepBatch<'c> {
    tx: Transaction<'c, Postgres>,
    /// The clock offset and limits of every write of the batch.
    cx: WriteContext,
    /// Database time of this transaction: the recorded time of everything it appends.
    pub(crate) now: Timestamp,
    pub(crate) runs: Vec<BatchRun>,
}

/// What one run's step produced, for the batch to write.
pub(crate) struct StepOutput<'a> {
    /// The run's index in [`StepBatch::runs`].
    pub(crate) run: usize,
    /// The step's events: its inputs and decisions, in order.
    pub(crate) events: &'a [Event],
    /// How many of the run's inputs the step applied (the others stay in the inbox; for a
    /// continue-as-new, its signals move on to the next run).
    pub(crate) applied: usize,
    /// What the step's decisions do (see `reprise_sdk::Effects`).
    pub(crate) effects: Effects<'a>,
    /// The step's trace: its activities' attempts join it.
    pub(crate) trace: Option<&'a TraceContext>,
}

/// A run of the batch whose code cannot go on: it is parked with the reason instead.
pub(crate) struct Park<'a> {
    /// The run's index in [`StepBatch::runs`].
    pub(crate) run: usize,
    /// The build that failed (nondeterminism, panic): it will not take the run again. `None`
    /// when no process that claimed it knows its type.
    pub(crate) build: Option<&'a str>,
    pub(crate) reason: String,
}

impl Store {
    /// Begins a batch: claims and locks runs whose work is due, of a type this process knows
    /// and on a queue it serves (parked runs only if it is not the build that parked them),
    /// and takes their visible inputs. `None` when no run has work.
    pub(crate) async fn claim_batch<'c>(
        &self,
        conn: &'c mut PgConnection,
        claim: Claim<'_>,
        known_types: &[String],
        queues: &[String],
        build: &str,
    ) -> Result<Option<StepBatch<'c>>> {
        let mut tx = sqlx::Connection::begin(conn)
            .await
            .map_err(Error::from_db)?;
        let claim = ClaimRuns {
            offset: self.offset(),
            known_types,
            build,
            claim,
            queues,
        };
        let rows = claim
            .bind()
            .query()
            .fetch_all(&mut *tx)
            .await
            .map_err(Error::from_db)?;
        let Some(first) = rows.first() else {
            // Ended now, not when the connection is next used: dropping the transaction would
            // leave an idle loop's session "idle in transaction" until its next claim, which
            // transaction-mode poolers and `idle_in_transaction_session_timeout` refuse.
            tx.rollback().await.map_err(Error::from_db)?;
            return Ok(None);
        };
        let now: chrono::DateTime<chrono::Utc> = first.try_get("now").map_err(Error::from_db)?;
        let limits = *self.limits();
        let runs = rows
            .iter()
            .map(|row| batch_run(row, now, &limits, self.chain_key()))
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(StepBatch {
            tx,
            cx: self.write_context(),
            now: to_timestamp(now),
            runs,
        }))
    }
}

fn batch_run(
    row: &sqlx::postgres::PgRow,
    now: chrono::DateTime<chrono::Utc>,
    limits: &Limits,
    key: Option<&reprise_history::ChainKey>,
) -> Result<BatchRun> {
    let since = |t: chrono::DateTime<chrono::Utc>| (now - t).to_std().unwrap_or_default();
    let ready_at: chrono::DateTime<chrono::Utc> =
        row.try_get("ready_at").map_err(Error::from_db)?;
    let head_hash: &[u8] = row.try_get("head_hash").map_err(Error::from_db)?;
    let workflow_id: String = row.try_get("workflow_id").map_err(Error::from_db)?;
    let first: Option<&[u8]> = row.try_get("event").map_err(Error::from_db)?;
    let history = first.map(|_| events_from_rows(std::slice::from_ref(row), limits, key));
    let mut run = BatchRun {
        run_id: run_id(row, "run_id")?,
        workflow_id: WorkflowId::new(workflow_id)?,
        workflow_type: row.try_get("workflow_type").map_err(Error::from_db)?,
        head_seq: seq(row, "head_seq")?,
        head_hash: ChainHash::from_slice(head_hash)?,
        applied_seq: seq(row, "applied_seq")?,
        parent_close_policy: parent_close_policy(row)?,
        history,
        inputs: Vec::new(),
        inbox_ids: Vec::new(),
        unreadable_input: None,
        waited: since(ready_at),
        timers_late: Vec::new(),
    };
    let ids: Vec<i64> = row.try_get("inbox_ids").map_err(Error::from_db)?;
    let events: Vec<Vec<u8>> = row.try_get("inbox_events").map_err(Error::from_db)?;
    let due: Vec<chrono::DateTime<chrono::Utc>> =
        row.try_get("inbox_due").map_err(Error::from_db)?;
    for ((id, bytes), due) in ids.into_iter().zip(events).zip(due) {
        let taken = take_input(&mut run, id, &bytes, limits);
        if taken && matches!(run.inputs.last(), Some(EventKind::TimerFired(_))) {
            run.timers_late.push(since(due));
        }
    }
    Ok(run)
}

/// Adds an inbox row to a claimed run's inputs (rows come in arrival order); returns whether
/// it did. An input that does not decode parks the run, not the batch.
fn take_input(run: &mut BatchRun, id: i64, bytes: &[u8], limits: &Limits) -> bool {
    match EventKind::decode(bytes, limits) {
        Ok(kind) => {
            run.inputs.push(kind);
            run.inbox_ids.push(id);
            true
        }
        Err(e) => {
            let reason = format!("inbox row {id} of run {} does not decode: {e}", run.run_id);
            run.unreadable_input.get_or_insert(reason);
            false
        }
    }
}

impl StepBatch<'_> {
    /// The histories of some runs of the batch (those the cache does not hold), each verified
    /// against its chain hashes, in one statement. A run whose history does not verify gets
    /// its own error; the others are unaffected.
    pub(crate) async fn histories(
        &mut self,
        runs: &[RunId],
    ) -> Result<HashMap<RunId, Result<Vec<Event>>>> {
        let mut histories = HashMap::new();
        if runs.is_empty() {
            return Ok(histories);
        }
        let rows = read_histories(runs)
            .query()
            .fetch_all(&mut *self.tx)
            .await
            .map_err(Error::from_db)?;
        let mut start = 0;
        while start < rows.len() {
            let run = run_id(&rows[start], "run_id")?;
            let mut end = start + 1;
            while end < rows.len() && run_id(&rows[end], "run_id")? == run {
                end += 1;
            }
            histories.insert(
                run,
                events_from_rows(&rows[start..end], &self.cx.limits, self.cx.key.as_ref()),
            );
            start = end;
        }
        for run in runs {
            histories.entry(*run).or_insert_with(|| {
                Err(Error::Corrupt {
                    what: format!("history of run {run}"),
                    reason: "is empty".to_string(),
                })
            });
        }
        Ok(histories)
    }

    /// Writes every step of the batch and releases its runs — all or nothing: events with
    /// their chain hashes, activity tasks, the other decisions, consumed inputs, closes, parks,
    /// each run's place in the ready queue, and the notifications.
    ///
    /// Most batches take one statement for all of it after the decisions that need statements
    /// of their own (timers, children, patches, a parent's inbox). Two kinds of decision need
    /// the events written first: cancelling an activity needs its task to exist, and a
    /// continue-as-new hands the next run only the inputs its run did not apply. A batch with
    /// either writes its events, tasks and applied inputs in a statement before them.
    ///
    /// Returns each stepped run's new head hash, by its index in [`StepBatch::runs`].
    pub(crate) async fn commit(
        mut self,
        steps: &[StepOutput<'_>],
        parks: &[Park<'_>],
    ) -> Result<Vec<(usize, ChainHash)>> {
        let mut notes = Notifications::default();
        let mut writes = self.step_writes(steps, &mut notes)?;
        let heads = writes.heads.iter().map(|h| (h.run, h.hash)).collect();
        if steps.iter().any(|s| s.effects.need_events_first()) {
            self.write_steps(std::mem::take(&mut writes.rows)).await?;
        }
        for step in steps {
            self.writer(step.run).carry_out(&step.effects).await?;
        }
        for step in steps {
            let Some(close) = &step.effects.close else {
                continue;
            };
            self.writer(step.run).close(close).await?;
            writes.close(step.run, close.state);
            notes.closed(self.runs[step.run].run_id);
        }
        for park in parks {
            self.park(park).await?;
        }
        self.write_and_release(writes, notes).await?;
        self.tx.commit().await.map_err(Error::from_db)?;
        Ok(heads)
    }

    fn writer(&mut self, run: usize) -> RunWriter<'_> {
        RunWriter {
            cx: self.cx,
            conn: &mut self.tx,
            now: self.now,
            run: &self.runs[run],
        }
    }

    /// What the steps write in common: their events, the tasks of the activities they
    /// scheduled (none for a run that closes in the same step: nothing would take the
    /// outcome), the inputs they applied, and each run's new head.
    fn step_writes(
        &self,
        steps: &[StepOutput<'_>],
        notes: &mut Notifications,
    ) -> Result<StepWrites> {
        let mut writes = StepWrites::default();
        for step in steps {
            let run = &self.runs[step.run];
            let rows = &mut writes.rows;
            let hash = rows.history.push_run(
                run.run_id,
                run.head_hash,
                step.events,
                &self.cx.limits,
                self.cx.key.as_ref(),
            )?;
            let head_seq = step.events.last().map_or(run.head_seq, |e| e.seq);
            writes.heads.push(Head {
                run: step.run,
                seq: head_seq,
                hash,
                closing: None,
                custom_status: step.effects.status.as_ref().map(|s| s.as_bytes().to_vec()),
            });
            for task in &step.effects.tasks {
                rows.tasks
                    .push(run.run_id, task, step.trace, &self.cx.limits)?;
                notes.task_queue(task.activity.task_queue.as_str());
            }
            rows.consumed
                .extend(run.inbox_ids.iter().take(step.applied).copied());
        }
        Ok(writes)
    }

    /// Writes the events, tasks and applied inputs alone, for a batch whose decisions need
    /// them first (see [`StepBatch::commit`]).
    async fn write_steps(&mut self, rows: WriteRows) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let statement = WriteSteps {
            offset: self.cx.offset,
            rows,
        };
        statement
            .bind()
            .query()
            .execute(&mut *self.tx)
            .await
            .map_err(Error::from_db)?;
        Ok(())
    }

    /// Parks a run whose code cannot go on (see `runs::park` for what leaves the queue).
    async fn park(&mut self, park: &Park<'_>) -> Result<()> {
        let run_id = self.runs[park.run].run_id;
        runs::park(
            &mut self.tx,
            self.cx.offset,
            run_id,
            park.build,
            &park.reason,
        )
        .await
    }

    /// Writes what is left of the steps (see [`StepBatch::commit`]) and releases the stepped
    /// runs, in one statement, then applies the parent-close policy of the open children of
    /// the runs that closed.
    ///
    /// Each stepped run gets its new head, and its status if it closed; the head update
    /// touches no indexed column, so PostgreSQL keeps it heap-only (HOT) unless the run
    /// closes. A run stays in the ready queue only while its inbox holds something other than
    /// the inputs its step applied (a timer not yet due, or inputs the step left); a closed
    /// run leaves it, with its inbox and the tasks no worker holds. Inputs arriving meanwhile
    /// queue the run themselves once this transaction lets go of its lock. Every stepped run
    /// is written, even one whose step appended nothing: recomputing its readiness is what
    /// keeps it from being claimed again for nothing.
    async fn write_and_release(&mut self, writes: StepWrites, notes: Notifications) -> Result<()> {
        if writes.heads.is_empty() {
            return notes.send(&mut self.tx).await;
        }
        let mut heads = HeadRows::default();
        for head in &writes.heads {
            heads.push(&self.runs[head.run], head);
        }
        let statement = WriteAndRelease {
            offset: self.cx.offset,
            rows: writes.rows,
            heads,
            notes,
            runs_channel: RUNS_CHANNEL,
        };
        let rows = statement
            .bind()
            .query()
            .fetch_all(&mut *self.tx)
            .await
            .map_err(Error::from_db)?;
        for row in rows {
            let child: Option<uuid::Uuid> = row.try_get("run_id").map_err(Error::from_db)?;
            let Some(child) = child else { continue };
            let policy = parent_close_policy(&row)?;
            apply_parent_close_policy(&mut self.tx, self.cx, RunId::from_uuid(child), policy)
                .await?;
        }
        Ok(())
    }
}

/// `read_histories.sql`, bound: its one parameter is the runs.
pub(crate) fn read_histories<'q>(runs: &[RunId]) -> Bound<'q> {
    let ids: Vec<uuid::Uuid> = runs.iter().map(|r| *r.as_uuid()).collect();
    Bound::new(READ_HISTORIES_SQL).bind(ids)
}

/// A stepped run's new head, and the status it closes with if its step ended it.
struct Head {
    /// The run's index in [`StepBatch::runs`].
    run: usize,
    seq: Seq,
    hash: ChainHash,
    closing: Option<RunState>,
    /// The custom status the step set, encoded.
    custom_status: Option<Vec<u8>>,
}

/// Everything a batch writes for its steps, up to the release.
#[derive(Default)]
struct StepWrites {
    rows: WriteRows,
    heads: Vec<Head>,
}

impl StepWrites {
    /// Marks a stepped run as closing with `status`.
    fn close(&mut self, run: usize, status: RunState) {
        for head in self.heads.iter_mut().filter(|h| h.run == run) {
            head.closing = Some(status);
        }
    }
}

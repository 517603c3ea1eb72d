//! Steps, in batches: one transaction claims the runs that have work, each locked by its row
//! lock until the transaction ends (that lock is the run's lease: no other process can step or
//! write it meanwhile, and it ends with the transaction even if this process dies), takes
//! their visible inputs, appends each run's events with their chain hashes, carries out the
//! decisions, closes the runs that ended, and releases them all at once.

use std::collections::HashMap;

use reprise_history::{
    ActivityCancelled, ChainHash, Event, EventKind, Limits, ParentClosePolicy, Payload, RunId,
    RunState, Seq, TimerFired, Timestamp, WorkflowId,
};
use reprise_sdk::{Close, Effects, NewChild, NewTask, NextRun};
use sqlx::{PgConnection, Postgres, Row, Transaction};

use crate::error::{Error, Result};
use crate::store::inbox::{activity_key, child_key, deliver, insert_input, timer_key};
use crate::store::rows::{
    HistoryRows, PgQuery, events_from_rows, parent_close_policy, run_id, seq, seq_param,
};
use crate::store::runs::{self, insert_run};
use crate::store::{
    CLOSED_CHANNEL, RUNS_CHANNEL, Store, TASKS_CHANNEL, apply_parent_close_policy, micros, now,
    request_cancel, to_timestamp,
};

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
}

/// A batch of steps in one transaction.
pub(crate) struct StepBatch<'c> {
    tx: Transaction<'c, Postgres>,
    offset: i64,
    limits: Limits,
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

/// The columns of `new_tasks`, the rows [`insert_tasks!`] creates tasks from.
macro_rules! new_tasks_columns {
    () => {
        "t(run_id, seq, queue, kind, input, options, stc, hb, s2c)"
    };
}

/// Creates an activity task, due now, for each row of a `new_tasks` the statement defines
/// (nine arrays unnested, see [`TaskRows::bind_to`]); `$1` is the clock offset.
macro_rules! insert_tasks {
    () => {
        concat!(
            "INSERT INTO reprise.activity_tasks (run_id, scheduled_seq, task_queue, activity_type, input, options,
                 start_to_close_micros, heartbeat_timeout_micros, scheduled_at, visible_at, schedule_to_close_deadline)
             SELECT t.run_id, t.seq, t.queue, t.kind, t.input, t.options, t.stc, t.hb, ", now!(), ", ", now!(), ",
                    ", now!(), " + t.s2c * interval '1 microsecond'
               FROM new_tasks t"
        )
    };
}

/// The `WITH` items that write what every step has in common: append the events (`$2` to
/// `$7`, see [`HistoryRows::bind_to`]), create the tasks of the activities they scheduled (`$8`
/// to `$16`) and delete the inputs they applied (`$17`); `$1` is the clock offset. With
/// `only if`, each of them writes nothing unless the condition holds (a direct step's fence).
macro_rules! write_ctes {
    () => {
        write_ctes!(@ "", "")
    };
    (only if $condition:literal) => {
        write_ctes!(@ concat!(" WHERE ", $condition), concat!(" AND ", $condition))
    };
    (@ $rows:expr, $inputs:expr) => {
        concat!(
            "appended AS (
                 INSERT INTO reprise.history (run_id, seq, recorded_at, kind, event, hash)
                 SELECT * FROM UNNEST($2::uuid[], $3::bigint[], $4::timestamptz[], $5::text[], $6::bytea[], $7::bytea[])",
            $rows,
            "),
             new_tasks AS (
                 SELECT * FROM UNNEST($8::uuid[], $9::bigint[], $10::text[], $11::text[], $12::bytea[],
                                      $13::bytea[], $14::bigint[], $15::bigint[], $16::bigint[]) AS ",
            $crate::store::step::new_tasks_columns!(),
            $rows,
            "),
             created AS (",
            $crate::store::step::insert_tasks!(),
            "),
             applied AS (DELETE FROM reprise.inbox WHERE id = ANY($17)",
            $inputs,
            ")"
        )
    };
}

pub(super) use {insert_tasks, new_tasks_columns, write_ctes};

/// Locks one queued run for a batch, unless another batch has it or it is parked against this
/// process (`$2` the known types, `$3` this build).
macro_rules! claim_run {
    () => {
        "SELECT r.run_id, r.workflow_id, r.workflow_type, r.head_seq, r.head_hash, r.applied_seq,
                r.parent_close_policy
           FROM reprise.runs r
          WHERE r.run_id = q.run_id AND r.closed_at IS NULL
            AND (r.parked_reason IS NULL OR (r.workflow_type = ANY($2) AND r.parked_build IS DISTINCT FROM $3))
            FOR NO KEY UPDATE SKIP LOCKED"
    };
}

/// Joins to a claimed run `r` its first event when it has no other (`seq`, `event`, `hash`:
/// a new run's whole history) and its visible inputs (`inbox_ids`, `inbox_events`: at most
/// 1,000, in arrival order). The inputs are locked as they are read: the statement's
/// snapshot predates the run's lock, so it may still show inputs that a batch committing in
/// between consumed, and locking skips the rows such a batch deleted. (Every other writer of
/// a run's inbox rows, a termination or retention, locks the run first.) Both subqueries have
/// a `LIMIT`, which keeps the planner from flattening them into joins that scan every first
/// event or every inbox row instead of looking up the claimed run's.
macro_rules! claimed_run_joins {
    () => {
        concat!(
            "LEFT JOIN LATERAL (
                 SELECT h.seq, h.event, h.hash FROM reprise.history h
                  WHERE h.run_id = r.run_id AND h.seq = 1 AND r.head_seq = 1 LIMIT 1) f ON true
             CROSS JOIN LATERAL (
                 SELECT COALESCE(array_agg(x.id ORDER BY x.visible_at, x.id), '{}') AS inbox_ids,
                        COALESCE(array_agg(x.event ORDER BY x.visible_at, x.id), '{}') AS inbox_events
                   FROM (SELECT id, visible_at, event FROM reprise.inbox
                          WHERE run_id = r.run_id AND visible_at <= ",
            now!(),
            " ORDER BY visible_at, id LIMIT 1000 FOR UPDATE) x) i"
        )
    };
}

/// Claims and locks up to `$4` runs whose work is due, in queue order, with their inputs and
/// a new run's first event (see [`Store::claim_batch`]).
pub(crate) const CLAIM_READY_SQL: &str = concat!(
    "SELECT ",
    now!(),
    " AS now, r.*, f.*, i.* FROM
       (SELECT run_id, ready_at FROM reprise.ready_runs
         WHERE ready_at <= ",
    now!(),
    " ORDER BY ready_at OFFSET 0) q
       CROSS JOIN LATERAL (",
    claim_run!(),
    ") r ",
    claimed_run_joins!(),
    " LIMIT $4"
);

/// Claims and locks the runs `$4` if their work is due (see [`Store::claim_batch`]).
pub(crate) const CLAIM_ONLY_SQL: &str = concat!(
    "SELECT ",
    now!(),
    " AS now, r.*, f.*, i.* FROM
       (SELECT run_id FROM reprise.ready_runs
         WHERE run_id = ANY($4) AND ready_at <= ",
    now!(),
    " OFFSET 0) q
       CROSS JOIN LATERAL (",
    claim_run!(),
    ") r ",
    claimed_run_joins!()
);

/// The histories of the runs `$1`, in order.
pub(crate) const READ_HISTORIES_SQL: &str = "SELECT run_id, seq, event, hash FROM reprise.history WHERE run_id = ANY($1) ORDER BY run_id, seq";

/// Writes the events, tasks and applied inputs of a batch's steps alone (see
/// [`StepBatch::commit`]).
pub(crate) const WRITE_STEPS_SQL: &str = concat!("WITH ", write_ctes!(), " SELECT 1");

/// Writes a batch's steps and releases its runs (see [`StepBatch::write_and_release`]).
///
/// A run whose head moved since the claim (terminated meanwhile by its parent's close in this
/// batch) is not released again. The upsert and the delete of queue rows take disjoint runs
/// (a statement may touch a row once). The batch's notifications go out with it; PostgreSQL
/// delivers them at commit. A run that still has an input due (one its step left, or past the
/// 1,000 a step takes) wakes an engine: engines sleep until the next due time, not on work due
/// already. The last part reads the open children of the runs that closed; it returns one row
/// even when there are none, so that the notifications are always sent. Rows are named by key
/// (see `store/connection.rs`); `num_nulls(lease_owner) = 1` is `lease_owner IS NULL` in a
/// form that does not send the planner through the index of every claimable task.
pub(crate) const WRITE_AND_RELEASE_SQL: &str = concat!(
    "WITH ",
    write_ctes!(),
    ",
     h AS (SELECT * FROM UNNEST($18::uuid[], $19::bigint[], $20::bigint[], $21::bytea[], $22::text[])
             AS h(run_id, claimed_head, head_seq, head_hash, closing)),
     released AS (
         UPDATE reprise.runs r
            SET (head_seq, head_hash, applied_seq, status, closed_at) = (
                    SELECT h.head_seq, h.head_hash, h.head_seq,
                           CASE WHEN h.closing IS NOT NULL AND r.status = 'running'
                                THEN h.closing ELSE r.status END,
                           CASE WHEN h.closing IS NOT NULL AND r.status = 'running'
                                THEN ", now!(), " ELSE r.closed_at END
                      FROM h WHERE h.run_id = r.run_id),
                parked_reason = NULL, parked_at = NULL, parked_build = NULL
          WHERE r.run_id = ANY (ARRAY(SELECT run_id FROM h))
            AND r.head_seq = (SELECT h.claimed_head FROM h WHERE h.run_id = r.run_id)
         RETURNING r.run_id, r.status),
     next AS (
         SELECT l.run_id, (SELECT min(i.visible_at) FROM reprise.inbox i
                            WHERE i.run_id = l.run_id AND i.id <> ALL($17)) AS at
           FROM released l WHERE l.status = 'running'),
     queued AS (
         INSERT INTO reprise.ready_runs (run_id, ready_at)
         SELECT run_id, at FROM next WHERE at IS NOT NULL
         ON CONFLICT (run_id) DO UPDATE SET ready_at = EXCLUDED.ready_at
          WHERE ready_runs.ready_at IS DISTINCT FROM EXCLUDED.ready_at),
     idle AS (
         DELETE FROM reprise.ready_runs q
          WHERE q.run_id = ANY (ARRAY(
                SELECT l.run_id FROM released l
                 WHERE NOT EXISTS (SELECT 1 FROM next n WHERE n.run_id = l.run_id AND n.at IS NOT NULL)))),
     closed_inbox AS (
         DELETE FROM reprise.inbox i
          WHERE i.run_id = ANY (ARRAY(SELECT run_id FROM h WHERE closing IS NOT NULL))),
     closed_tasks AS (
         DELETE FROM reprise.activity_tasks t
          WHERE t.run_id = ANY (ARRAY(SELECT run_id FROM h WHERE closing IS NOT NULL))
            AND num_nulls(t.lease_owner) = 1),
     notified AS (
         SELECT pg_notify(n.channel, n.payload)
           FROM (SELECT * FROM UNNEST($23::text[], $24::text[])
                 UNION ALL
                 SELECT $25, '' WHERE EXISTS (SELECT 1 FROM next WHERE at <= ", now!(), ")
                ) AS n(channel, payload))
     SELECT s.sent, c.run_id, c.parent_close_policy
       FROM (SELECT count(*) AS sent FROM notified) s
       LEFT JOIN (
            SELECT c.run_id, c.parent_close_policy FROM h CROSS JOIN LATERAL (
                   SELECT run_id, parent_close_policy, status FROM reprise.runs
                    WHERE parent_run_id = h.run_id OFFSET 0) c
             WHERE h.closing IS NOT NULL AND c.status = 'running') c ON true
      ORDER BY c.run_id"
);

impl Store {
    /// Begins a batch: claims and locks runs whose work is due (parked runs only if this
    /// process knows their type and is not the build that parked them) and takes their visible
    /// inputs. `None` when no run has work.
    pub(crate) async fn claim_batch<'c>(
        &self,
        conn: &'c mut PgConnection,
        claim: Claim<'_>,
        known_types: &[String],
        build: &str,
    ) -> Result<Option<StepBatch<'c>>> {
        let mut tx = sqlx::Connection::begin(conn)
            .await
            .map_err(Error::from_db)?;
        // The queue is read in order and each run locked as it is reached (the lateral
        // subquery), so the plan cannot start from `runs` and lock more than it returns.
        // `closed_at IS NULL` (the same as `status = 'running'`) keeps the lookup on the key.
        let query = match claim {
            Claim::Ready(limit) => sqlx::query(CLAIM_READY_SQL)
                .bind(self.offset())
                .bind(known_types)
                .bind(build)
                .bind(limit),
            Claim::Only(ids) => sqlx::query(CLAIM_ONLY_SQL)
                .bind(self.offset())
                .bind(known_types)
                .bind(build)
                .bind(ids.iter().map(|id| *id.as_uuid()).collect::<Vec<_>>()),
        };
        let rows = query.fetch_all(&mut *tx).await.map_err(Error::from_db)?;
        let Some(first) = rows.first() else {
            return Ok(None); // dropping the transaction rolls it back
        };
        let now: chrono::DateTime<chrono::Utc> = first.try_get("now").map_err(Error::from_db)?;
        let limits = *self.limits();
        let runs = rows
            .iter()
            .map(|row| batch_run(row, &limits))
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(StepBatch {
            tx,
            offset: self.offset(),
            limits: *self.limits(),
            now: to_timestamp(now),
            runs,
        }))
    }
}

fn batch_run(row: &sqlx::postgres::PgRow, limits: &Limits) -> Result<BatchRun> {
    let head_hash: &[u8] = row.try_get("head_hash").map_err(Error::from_db)?;
    let workflow_id: String = row.try_get("workflow_id").map_err(Error::from_db)?;
    let first: Option<&[u8]> = row.try_get("event").map_err(Error::from_db)?;
    let history = first.map(|_| events_from_rows(std::slice::from_ref(row), limits));
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
    };
    let ids: Vec<i64> = row.try_get("inbox_ids").map_err(Error::from_db)?;
    let events: Vec<Vec<u8>> = row.try_get("inbox_events").map_err(Error::from_db)?;
    for (id, bytes) in ids.into_iter().zip(events) {
        take_input(&mut run, id, &bytes, limits);
    }
    Ok(run)
}

/// Adds an inbox row to a claimed run's inputs (rows come in arrival order). An input that does
/// not decode parks the run, not the batch.
fn take_input(run: &mut BatchRun, id: i64, bytes: &[u8], limits: &Limits) {
    match EventKind::decode(bytes, limits) {
        Ok(kind) => {
            run.inputs.push(kind);
            run.inbox_ids.push(id);
        }
        Err(e) => {
            let reason = format!("inbox row {id} of run {} does not decode: {e}", run.run_id);
            run.unreadable_input.get_or_insert(reason);
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
        let ids: Vec<uuid::Uuid> = runs.iter().map(|r| *r.as_uuid()).collect();
        let rows = sqlx::query(READ_HISTORIES_SQL)
            .bind(ids)
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
            histories.insert(run, events_from_rows(&rows[start..end], &self.limits));
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
            notes.closed(self.runs[step.run].run_id, Some(close.event), &self.limits);
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
            conn: &mut self.tx,
            offset: self.offset,
            limits: &self.limits,
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
            let hash =
                rows.history
                    .push_run(run.run_id, run.head_hash, step.events, &self.limits)?;
            let head_seq = step.events.last().map_or(run.head_seq, |e| e.seq);
            writes.heads.push(Head {
                run: step.run,
                seq: head_seq,
                hash,
                closing: None,
            });
            for task in &step.effects.tasks {
                rows.tasks.push(run.run_id, task, &self.limits)?;
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
        if rows.history.is_empty() && rows.consumed.is_empty() {
            return Ok(());
        }
        let query = sqlx::query(WRITE_STEPS_SQL);
        rows.bind_to(query.bind(self.offset))
            .execute(&mut *self.tx)
            .await
            .map_err(Error::from_db)?;
        Ok(())
    }

    /// Parks a run whose code cannot go on (see `runs::park` for what leaves the queue).
    async fn park(&mut self, park: &Park<'_>) -> Result<()> {
        let run_id = self.runs[park.run].run_id;
        runs::park(&mut self.tx, self.offset, run_id, park.build, &park.reason).await
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
        let mut runs = Vec::with_capacity(writes.heads.len());
        let mut claimed = Vec::with_capacity(writes.heads.len());
        let mut seqs = Vec::with_capacity(writes.heads.len());
        let mut hashes = Vec::with_capacity(writes.heads.len());
        let mut closing = Vec::with_capacity(writes.heads.len());
        for head in &writes.heads {
            runs.push(*self.runs[head.run].run_id.as_uuid());
            claimed.push(seq_param(self.runs[head.run].head_seq));
            seqs.push(seq_param(head.seq));
            hashes.push(head.hash.as_bytes().to_vec());
            closing.push(head.closing.map(RunState::as_str));
        }
        let query = writes
            .rows
            .bind_to(sqlx::query(WRITE_AND_RELEASE_SQL).bind(self.offset));
        let query = query
            .bind(runs)
            .bind(claimed)
            .bind(seqs)
            .bind(hashes)
            .bind(closing);
        let rows = notes
            .bind_to(query)
            .bind(RUNS_CHANNEL)
            .fetch_all(&mut *self.tx)
            .await
            .map_err(Error::from_db)?;
        for row in rows {
            let child: Option<uuid::Uuid> = row.try_get("run_id").map_err(Error::from_db)?;
            let Some(child) = child else { continue };
            let policy = parent_close_policy(&row)?;
            apply_parent_close_policy(
                &mut self.tx,
                self.offset,
                RunId::from_uuid(child),
                policy,
                &self.limits,
            )
            .await?;
        }
        Ok(())
    }
}

/// The rows a batch's steps write: events, tasks, applied inputs.
#[derive(Default)]
struct WriteRows {
    history: HistoryRows,
    tasks: TaskRows,
    consumed: Vec<i64>,
}

impl WriteRows {
    /// Binds them as `$2` to `$17` (see [`write_ctes!`]).
    fn bind_to(self, query: PgQuery<'_>) -> PgQuery<'_> {
        self.tasks
            .bind_to(self.history.bind_to(query))
            .bind(self.consumed)
    }
}

/// A stepped run's new head, and the status it closes with if its step ended it.
struct Head {
    /// The run's index in [`StepBatch::runs`].
    run: usize,
    seq: Seq,
    hash: ChainHash,
    closing: Option<RunState>,
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

/// The notifications a batch sends when it commits, each once.
#[derive(Default)]
pub(super) struct Notifications {
    sent: Vec<(&'static str, String)>,
}

impl Notifications {
    pub(super) fn task_queue(&mut self, queue: &str) {
        self.push(TASKS_CHANNEL, queue.to_string());
    }

    /// A run closed; the payload carries its closing event (as stored) when it is at most
    /// 3,000 bytes, so that a client awaiting the result need not read it.
    pub(super) fn closed(&mut self, run: RunId, closing: Option<&Event>, limits: &Limits) {
        let bytes = closing.and_then(|e| e.encode(limits).ok());
        let payload = match bytes {
            Some(bytes) if bytes.len() <= 3_000 => format!("{run} {}", hex::encode(bytes)),
            _ => run.to_string(),
        };
        self.push(CLOSED_CHANNEL, payload);
    }

    fn push(&mut self, channel: &'static str, payload: String) {
        if !self
            .sent
            .iter()
            .any(|(c, p)| *c == channel && *p == payload)
        {
            self.sent.push((channel, payload));
        }
    }

    /// Binds them as two arrays: channels and payloads.
    pub(super) fn bind_to(self, query: PgQuery<'_>) -> PgQuery<'_> {
        let (channels, payloads): (Vec<&str>, Vec<String>) = self.sent.into_iter().unzip();
        query.bind(channels).bind(payloads)
    }

    /// Queues them all in one statement; PostgreSQL delivers them when the transaction commits.
    async fn send(self, conn: &mut PgConnection) -> Result<()> {
        if self.sent.is_empty() {
            return Ok(());
        }
        self.bind_to(sqlx::query(
            "SELECT pg_notify(n.channel, n.payload) FROM UNNEST($1::text[], $2::text[]) AS n(channel, payload)",
        ))
        .execute(&mut *conn)
            .await
            .map_err(Error::from_db)?;
        Ok(())
    }
}

/// Writes what one run's step decided, inside the batch's transaction.
struct RunWriter<'a> {
    conn: &'a mut PgConnection,
    offset: i64,
    limits: &'a Limits,
    now: Timestamp,
    run: &'a BatchRun,
}

impl RunWriter<'_> {
    /// Puts an input in this run's own inbox. The batch recomputes the run's readiness as it
    /// releases it, so there is nothing to mark.
    async fn deliver_to_self(
        &mut self,
        input: &EventKind,
        key: String,
        delay: std::time::Duration,
    ) -> Result<()> {
        insert_input(
            self.conn,
            self.offset,
            self.run.run_id,
            input,
            Some(key),
            delay,
            self.limits,
        )
        .await?;
        Ok(())
    }

    /// Carries out a step's effects but its close (activity tasks are created for the whole
    /// batch beforehand), in the order `Effects` lists them.
    async fn carry_out(&mut self, effects: &Effects<'_>) -> Result<()> {
        for timer in &effects.timers {
            let fired = EventKind::TimerFired(TimerFired {
                started: timer.started,
            });
            self.deliver_to_self(&fired, timer_key(timer.started), timer.fires_after)
                .await?;
        }
        for started in &effects.cancelled_timers {
            sqlx::query("DELETE FROM reprise.inbox WHERE run_id = $1 AND dedupe_key = $2")
                .bind(self.run.run_id.as_uuid())
                .bind(timer_key(*started))
                .execute(&mut *self.conn)
                .await
                .map_err(Error::from_db)?;
        }
        for scheduled in &effects.cancelled_activities {
            self.cancel_activity(*scheduled).await?;
        }
        for child in &effects.children {
            self.start_child(child).await?;
        }
        for started in &effects.cancelled_children {
            self.cancel_child(*started).await?;
        }
        for (seq, patch_id) in &effects.patches {
            sqlx::query(
                "INSERT INTO reprise.run_patches (run_id, patch_id, seq) VALUES ($1, $2, $3)
                 ON CONFLICT (run_id, patch_id) DO NOTHING",
            )
            .bind(self.run.run_id.as_uuid())
            .bind(patch_id.as_str())
            .bind(seq_param(*seq))
            .execute(&mut *self.conn)
            .await
            .map_err(Error::from_db)?;
        }
        Ok(())
    }

    /// An attempt that is running learns of the cancellation at its next heartbeat; an
    /// activity that is not running is cancelled at once.
    async fn cancel_activity(&mut self, scheduled: Seq) -> Result<()> {
        let waiting: Option<i32> = sqlx::query_scalar(
            "UPDATE reprise.activity_tasks SET cancel_requested = true
              WHERE run_id = $1 AND scheduled_seq = $2 RETURNING CASE WHEN lease_owner IS NULL THEN attempt END",
        )
        .bind(self.run.run_id.as_uuid())
        .bind(seq_param(scheduled))
        .fetch_optional(&mut *self.conn)
        .await
        .map_err(Error::from_db)?
        .flatten();
        let Some(attempt) = waiting else {
            return Ok(());
        };
        let attempt = u32::try_from(attempt).map_err(|_| Error::Corrupt {
            what: format!("activity task {scheduled} of run {}", self.run.run_id),
            reason: format!("attempt {attempt} is negative"),
        })?;
        sqlx::query("DELETE FROM reprise.activity_tasks WHERE run_id = $1 AND scheduled_seq = $2")
            .bind(self.run.run_id.as_uuid())
            .bind(seq_param(scheduled))
            .execute(&mut *self.conn)
            .await
            .map_err(Error::from_db)?;
        let cancelled = EventKind::ActivityCancelled(ActivityCancelled {
            scheduled,
            attempt,
            details: None,
        });
        self.deliver_to_self(&cancelled, activity_key(scheduled), Default::default())
            .await
    }

    /// Starts a child run in this transaction; if its workflow id is taken, the child fails at once.
    async fn start_child(&mut self, child: &NewChild) -> Result<()> {
        let started = insert_run(
            self.conn,
            &child.started,
            self.now,
            None,
            Some(child.policy),
            self.limits,
        )
        .await?;
        if started {
            return Ok(());
        }
        let failed = child.id_in_use();
        self.deliver_to_self(&failed, child_key(child.started_seq), Default::default())
            .await
    }

    /// Asks the child started at `started` to cancel, if it still runs.
    async fn cancel_child(&mut self, started: Seq) -> Result<()> {
        let child: Option<uuid::Uuid> = sqlx::query_scalar(
            "SELECT run_id FROM reprise.runs WHERE parent_run_id = $1 AND parent_started_seq = $2 AND status = 'running'",
        )
        .bind(self.run.run_id.as_uuid())
        .bind(seq_param(started))
        .fetch_optional(&mut *self.conn)
        .await
        .map_err(Error::from_db)?;
        if let Some(child) = child {
            request_cancel(
                self.conn,
                self.offset,
                RunId::from_uuid(child),
                "its parent asked",
                self.limits,
            )
            .await?;
        }
        Ok(())
    }

    /// What closing the run takes beyond its status, before the batch closes it: the next
    /// run of a continue-as-new (which takes the signals still in the inbox) and the parent's
    /// inbox.
    async fn close(&mut self, close: &Close<'_>) -> Result<()> {
        if let Some(next) = &close.next_run {
            // Closed first: the next run takes the workflow id, which only one open run
            // may hold.
            sqlx::query(concat!(
                "UPDATE reprise.runs SET status = 'continued_as_new', closed_at = ",
                now!(),
                " WHERE run_id = $2"
            ))
            .bind(self.offset)
            .bind(self.run.run_id.as_uuid())
            .execute(&mut *self.conn)
            .await
            .map_err(Error::from_db)?;
            self.continue_as_new(next).await?;
        }
        if let Some((parent, outcome)) = &close.parent_outcome {
            deliver(
                self.conn,
                self.offset,
                parent.run_id,
                outcome,
                Some(child_key(parent.started_seq)),
                Default::default(),
                self.limits,
            )
            .await?;
        }
        Ok(())
    }

    /// Starts the next run of a continue-as-new and hands it the signals this run never took:
    /// first those its code had buffered (they arrived earlier), then those still in the inbox.
    async fn continue_as_new(&mut self, next: &NextRun) -> Result<()> {
        let run_id = self.run.run_id;
        let next_run = next.started.run_id;
        let inserted = insert_run(
            self.conn,
            &next.started,
            self.now,
            Some(run_id),
            self.run.parent_close_policy,
            self.limits,
        )
        .await?;
        if !inserted {
            return Err(Error::Conflict(format!(
                "workflow id {} is open in another run; cannot continue as new",
                self.run.workflow_id
            )));
        }
        for (name, payload) in &next.carried {
            let signal = EventKind::SignalReceived(reprise_history::SignalReceived {
                name: name.clone(),
                payload: payload.clone(),
            });
            sqlx::query(concat!(
                "INSERT INTO reprise.inbox (run_id, visible_at, kind, event) VALUES ($2, ",
                now!(),
                " - interval '1 microsecond', $3, $4)"
            ))
            .bind(self.offset)
            .bind(next_run.as_uuid())
            .bind(signal.name())
            .bind(signal.encode(self.limits)?)
            .execute(&mut *self.conn)
            .await
            .map_err(Error::from_db)?;
        }
        sqlx::query(
            "UPDATE reprise.inbox SET run_id = $2 WHERE run_id = $1 AND kind = 'SignalReceived'",
        )
        .bind(run_id.as_uuid())
        .bind(next_run.as_uuid())
        .execute(&mut *self.conn)
        .await
        .map_err(Error::from_db)?;
        Ok(())
    }
}

/// Activity tasks of one or more runs, to be created in one statement.
#[derive(Default)]
pub(super) struct TaskRows {
    runs: Vec<uuid::Uuid>,
    seqs: Vec<i64>,
    queues: Vec<String>,
    types: Vec<String>,
    inputs: Vec<Vec<u8>>,
    options: Vec<Vec<u8>>,
    start_to_close: Vec<Option<i64>>,
    heartbeat: Vec<Option<i64>>,
    schedule_to_close: Vec<Option<i64>>,
}

impl TaskRows {
    /// Adds the task of an activity `run` scheduled at `seq`.
    pub(super) fn push(&mut self, run: RunId, task: &NewTask<'_>, limits: &Limits) -> Result<()> {
        let s = task.activity;
        self.runs.push(*run.as_uuid());
        self.seqs.push(seq_param(task.scheduled));
        self.queues.push(s.task_queue.as_str().to_string());
        self.types.push(s.activity_type.as_str().to_string());
        self.inputs.push(s.input.as_bytes().to_vec());
        self.options
            .push(Payload::encode(&s.options, limits)?.as_bytes().to_vec());
        self.start_to_close
            .push(s.options.start_to_close.map(micros));
        self.heartbeat.push(s.options.heartbeat_timeout.map(micros));
        self.schedule_to_close
            .push(s.options.schedule_to_close.map(micros));
        Ok(())
    }

    /// Binds the tasks as nine arrays, in the order `new_tasks` reads them (see
    /// [`insert_tasks!`]).
    pub(super) fn bind_to(self, query: PgQuery<'_>) -> PgQuery<'_> {
        query
            .bind(self.runs)
            .bind(self.seqs)
            .bind(self.queues)
            .bind(self.types)
            .bind(self.inputs)
            .bind(self.options)
            .bind(self.start_to_close)
            .bind(self.heartbeat)
            .bind(self.schedule_to_close)
    }

    /// Creates the tasks (nothing when there are none).
    pub(super) async fn insert(self, conn: &mut PgConnection, offset: i64) -> Result<()> {
        if self.runs.is_empty() {
            return Ok(());
        }
        let sql = concat!(
            "WITH new_tasks AS (SELECT * FROM UNNEST($2::uuid[], $3::bigint[], $4::text[], $5::text[],
                 $6::bytea[], $7::bytea[], $8::bigint[], $9::bigint[], $10::bigint[]) AS ",
            new_tasks_columns!(),
            ") ",
            insert_tasks!()
        );
        self.bind_to(sqlx::query(sql).bind(offset))
            .execute(&mut *conn)
            .await
            .map_err(Error::from_db)?;
        Ok(())
    }
}

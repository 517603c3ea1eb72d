//! Activity tasks: claims by workers, heartbeats, outcomes (fenced by the lease token),
//! retries with backoff from database time, and timeouts.

use reprise_history::{
    ActivityCompleted, ActivityFailed, ActivityOptions, ActivityTimedOut, ActivityType, EventKind,
    Failure, Limits, Payload, RunId, Seq, StoredValue, TimeoutKind, Timestamp, TraceContext,
    WorkflowId,
};
use sqlx::Row;

use crate::error::{Error, Result};
use crate::store::bind::Bound;
use crate::store::inbox::activity_key;
use crate::store::notify::RUNS_CHANNEL;
use crate::store::rows::{count, seq, seq_param};
use crate::store::{Store, micros};

/// An activity attempt this worker holds the lease of.
#[derive(Clone, Debug)]
pub(crate) struct ClaimedTask {
    pub(crate) run_id: RunId,
    pub(crate) workflow_id: WorkflowId,
    pub(crate) scheduled_seq: Seq,
    pub(crate) activity_type: ActivityType,
    pub(crate) input: Payload,
    pub(crate) options: ActivityOptions,
    pub(crate) attempt: u32,
    pub(crate) lease_token: i64,
    /// Its task queue.
    pub(crate) task_queue: String,
    /// Seconds it waited from being due to being claimed.
    pub(crate) waited_seconds: f64,
    /// The trace of the step that scheduled it, if that step was traced.
    pub(crate) trace: Option<TraceContext>,
    /// When this process read the claim: its lease began a little before.
    pub(crate) claimed_at: tokio::time::Instant,
}

/// An attempt's lease when no start-to-close timeout sizes it (as `sql/claim_tasks.sql`).
const DEFAULT_LEASE: std::time::Duration = std::time::Duration::from_secs(600);

impl ClaimedTask {
    /// How long its lease lasts from a claim or a heartbeat: its start-to-close timeout (10
    /// minutes when none is set), or its heartbeat timeout if shorter, as the claim sized it.
    pub(crate) fn lease_length(&self) -> std::time::Duration {
        let start_to_close = self.options.start_to_close.unwrap_or(DEFAULT_LEASE);
        self.options
            .heartbeat_timeout
            .map_or(start_to_close, |beat| beat.min(start_to_close))
    }

    /// When its start-to-close timeout ends the attempt, on this process's clock: from when
    /// the claim was read, a little after the lease's own start. None without a
    /// start-to-close timeout.
    pub(crate) fn start_to_close_deadline(&self) -> Option<tokio::time::Instant> {
        let timeout = self.options.start_to_close?;
        Some(
            self.claimed_at
                .checked_add(timeout)
                .unwrap_or_else(far_future),
        )
    }

    /// When its lease ends if it was last begun or extended at `extended`: a lease length
    /// later, but never after the start-to-close deadline (see `Store::heartbeat`).
    pub(crate) fn lease_ends(&self, extended: tokio::time::Instant) -> tokio::time::Instant {
        let by_length = extended
            .checked_add(self.lease_length())
            .unwrap_or_else(far_future);
        self.start_to_close_deadline()
            .map_or(by_length, |deadline| deadline.min(by_length))
    }
}

/// A deadline no attempt reaches: for a start-to-close timeout too long to add to an instant.
fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + std::time::Duration::from_secs(100 * 365 * 24 * 3_600)
}

/// How an attempt ended.
pub(crate) enum TaskOutcome {
    Completed(Payload),
    Failed(Failure),
}

/// What one claim got: the attempts leased, and, when a rate limit held it back, how long
/// until that limit holds a claim's worth of tokens again.
#[derive(Debug, Default)]
pub(crate) struct TaskClaim {
    pub(crate) tasks: Vec<ClaimedTask>,
    pub(crate) retry_in: Option<std::time::Duration>,
}

/// What happened to a reported outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Recorded {
    /// The outcome is in the run's inbox.
    Outcome,
    /// The attempt failed and another one is scheduled.
    Retry,
    /// The lease was lost (timed out, taken over), or the attempt ran past its start-to-close
    /// timeout (the worker refuses it, see `Worker::execute`): the outcome was refused.
    Fenced,
}

/// Leases due attempts (see `sql/claim_tasks.sql`).
pub(crate) const CLAIM_TASKS_SQL: &str = include_str!("sql/claim_tasks.sql");

/// Leases due attempts when a limit applies or fairness keys are queued: limits held, keys
/// taking turns (`reprise.claim_tasks`, migrations/0006_flow_control.sql). Its parameters are
/// `claim_tasks.sql`'s.
const CLAIM_HELD_BACK_SQL: &str = "SELECT * FROM reprise.claim_tasks($1, $2, $3, $4, $5)";

/// Records outcomes, each only while its lease holds (see `sql/finish_tasks.sql`).
pub(crate) const FINISH_TASKS_SQL: &str = include_str!("sql/finish_tasks.sql");

/// The parameters of `claim_tasks.sql` (and of `reprise.claim_tasks`).
#[derive(Clone, Copy)]
pub(crate) struct ClaimTasks<'a> {
    pub(crate) offset: i64,
    pub(crate) queues: &'a [String],
    pub(crate) limit: i64,
    pub(crate) owner: &'a str,
    pub(crate) activity_types: &'a [String],
}

impl<'a> ClaimTasks<'a> {
    /// Binds `$1` to `$5`.
    pub(crate) fn bind(self) -> Bound<'a> {
        self.bind_to(Bound::new(CLAIM_TASKS_SQL))
    }

    /// Binds `$1` to `$5` of the claim held back by limits or fairness keys.
    pub(crate) fn bind_held_back(self) -> Bound<'a> {
        self.bind_to(Bound::new(CLAIM_HELD_BACK_SQL))
    }

    fn bind_to(self, bound: Bound<'a>) -> Bound<'a> {
        bound
            .bind(self.offset)
            .bind(self.queues)
            .bind(self.limit)
            .bind(self.owner)
            .bind(self.activity_types)
    }
}

/// The parameters of `finish_tasks.sql`.
#[derive(Default)]
pub(crate) struct FinishTasks<'a> {
    pub(crate) offset: i64,
    pub(crate) outcomes: OutcomeRows,
    pub(crate) owner: &'a str,
    pub(crate) runs_channel: &'static str,
    pub(crate) tasks_channel: &'static str,
}

impl<'a> FinishTasks<'a> {
    /// Binds `$1` to `$12`.
    pub(crate) fn bind(self) -> Bound<'a> {
        self.outcomes
            .bind_to(Bound::new(FINISH_TASKS_SQL).bind(self.offset))
            .bind(self.owner)
            .bind(self.runs_channel)
            .bind(self.tasks_channel)
    }
}

impl Store {
    /// Leases up to `limit` due attempts of the given queues and activity types (each claim is
    /// a new attempt): in one statement, or, when a limit applies or fairness keys are queued,
    /// in a second one that holds the limits (`reprise.claim_tasks`).
    /// The claim commits without waiting for its WAL flush (`synchronous_commit` off for this
    /// transaction alone): a claim lost in a crash only means the attempt runs again, which
    /// at-least-once activities allow, and its outcome (whose commit does wait) is refused by
    /// the lease token that never became durable. Every write after it waits for the flush,
    /// which covers the claim too, so nothing durable can depend on a lost claim.
    pub(crate) async fn claim_tasks(
        &self,
        conn: &mut sqlx::PgConnection,
        queues: &[String],
        activity_types: &[String],
        owner: &str,
        limit: i64,
    ) -> Result<TaskClaim> {
        let claim = ClaimTasks {
            offset: self.offset(),
            queues,
            limit,
            owner,
            activity_types,
        };
        let mut rows = claim
            .bind()
            .query()
            .fetch_all(&mut *conn)
            .await
            .map_err(Error::from_db)?;
        let held_back = match rows.last() {
            Some(row) => row
                .try_get::<Option<bool>, _>("held_back")
                .map_err(Error::from_db)?
                .unwrap_or(false),
            None => false,
        };
        if held_back {
            rows = claim
                .bind_held_back()
                .query()
                .fetch_all(&mut *conn)
                .await
                .map_err(Error::from_db)?;
        }
        let mut claim = TaskClaim::default();
        for row in &rows {
            let run: Option<uuid::Uuid> = row.try_get("run_id").map_err(Error::from_db)?;
            if run.is_some() {
                claim.tasks.push(self.task_from_row(row)?);
            } else if held_back {
                let seconds: Option<f64> =
                    row.try_get("retry_in_seconds").map_err(Error::from_db)?;
                claim.retry_in =
                    seconds.and_then(|s| std::time::Duration::try_from_secs_f64(s.max(0.0)).ok());
            }
        }
        Ok(claim)
    }

    fn task_from_row(&self, row: &sqlx::postgres::PgRow) -> Result<ClaimedTask> {
        let input: Vec<u8> = row.try_get("input").map_err(Error::from_db)?;
        let options: Vec<u8> = row.try_get("options").map_err(Error::from_db)?;
        let id: uuid::Uuid = row.try_get("run_id").map_err(Error::from_db)?;
        let workflow_id: String = row.try_get("workflow_id").map_err(Error::from_db)?;
        let activity_type: String = row.try_get("activity_type").map_err(Error::from_db)?;
        Ok(ClaimedTask {
            run_id: RunId::from_uuid(id),
            workflow_id: WorkflowId::new(workflow_id)?,
            scheduled_seq: seq(row, "scheduled_seq")?,
            activity_type: ActivityType::new(activity_type)?,
            input: Payload::from_bytes(input)?,
            options: ActivityOptions::from_stored(&options)?,
            attempt: count(row, "attempt")?,
            lease_token: row.try_get("lease_token").map_err(Error::from_db)?,
            task_queue: row.try_get("task_queue").map_err(Error::from_db)?,
            waited_seconds: row.try_get("waited_seconds").map_err(Error::from_db)?,
            claimed_at: tokio::time::Instant::now(),
            trace: trace_context(row)?,
        })
    }

    /// The details of the last heartbeat an earlier attempt of `task` recorded: what a retried
    /// attempt resumes from. Read only for attempts after the first, so a first attempt's
    /// claim reads nothing more.
    pub(crate) async fn last_details(&self, task: &ClaimedTask) -> Result<Option<Payload>> {
        let details: Option<Option<Vec<u8>>> = sqlx::query_scalar(
            "SELECT heartbeat_details FROM reprise.activity_tasks WHERE run_id = $1 AND scheduled_seq = $2",
        )
        .bind(task.run_id.as_uuid())
        .bind(seq_param(task.scheduled_seq))
        .fetch_optional(self.pool())
        .await
        .map_err(Error::from_db)?;
        Ok(details.flatten().map(Payload::from_bytes).transpose()?)
    }

    /// Extends an attempt's lease and records progress. Returns `Some(cancel_requested)`, or
    /// `None` if the lease is lost (the attempt should stop: its outcome will be refused).
    ///
    /// The lease is extended by the heartbeat timeout (or the start-to-close timeout, if
    /// shorter), but never past what is left of the attempt's start-to-close timeout: a
    /// heartbeating attempt still ends when that runs out. What is left comes from this
    /// process's clock, since the lease's start is not stored (keeping the claim as it is).
    pub(crate) async fn heartbeat(
        &self,
        task: &ClaimedTask,
        owner: &str,
        details: &Payload,
    ) -> Result<Option<bool>> {
        let left = task.start_to_close_deadline().map(|deadline| {
            micros(deadline.saturating_duration_since(tokio::time::Instant::now()))
        });
        sqlx::query_scalar("UPDATE reprise.activity_tasks t
                SET heartbeat_at = reprise.db_now($1), heartbeat_details = $5,
                    lease_expires_at = reprise.db_now($1)
                + LEAST(COALESCE(t.start_to_close_micros, 600000000),
                        COALESCE(t.heartbeat_timeout_micros, 9223372036854775807),
                        COALESCE($7, 9223372036854775807))
                  * interval '1 microsecond'
              WHERE t.run_id = $2 AND t.scheduled_seq = $3 AND t.lease_owner = $4 AND t.lease_token = $6
          RETURNING t.cancel_requested")
            .bind(self.offset())
            .bind(task.run_id.as_uuid())
            .bind(seq_param(task.scheduled_seq))
            .bind(owner)
            .bind(details.as_bytes())
            .bind(task.lease_token)
            .bind(left)
            .fetch_optional(self.pool())
            .await
            .map_err(Error::from_db)
    }

    /// Records the outcomes of attempts this worker ran, in one statement, each only if the
    /// worker still holds its lease: a result or final failure goes to its run's inbox (and
    /// queues the run), a failure the policy retries schedules the next attempt after its
    /// backoff (database time) unless the schedule-to-close deadline has passed. Returns what
    /// happened to each, in order.
    ///
    /// Lock order everywhere is run rows, then task rows (steps and terminations take the run
    /// first and then touch its tasks), and run rows in id order: taking them any other way
    /// can deadlock. In one statement that order takes some care: the runs are locked by a
    /// materialized subquery that the task lock's filter counts, and PostgreSQL evaluates
    /// such a constant filter once, before the first task row is read. Whether each run
    /// still runs comes from the locked row, which is its newest version, not from the
    /// statement's older snapshot. Each task is looked up by its key alone, in a subquery the
    /// planner keeps apart (`OFFSET 0`), and the lease is checked on the row it locked: a
    /// condition on the lease inside would let the planner read a partial index on leases
    /// instead (see `store/connection.rs`).
    ///
    /// The statement commits without waiting for its WAL flush, as a claim does: an outcome
    /// lost in a crash leaves its attempt leased, so it runs again once the lease expires,
    /// which at-least-once activities allow. Nothing durable can depend on a lost outcome:
    /// the step that applies it commits after it and waits for its own flush, which covers
    /// everything written before. A lone delivered outcome's notification names its inbox row
    /// (see `store/step/direct.rs`, `store/notify.rs`), so that the engine holding its run can
    /// read it and step at once.
    pub(crate) async fn finish_tasks(
        &self,
        conn: &mut sqlx::PgConnection,
        owner: &str,
        finished: &[(ClaimedTask, TaskOutcome)],
    ) -> Result<Vec<Recorded>> {
        let mut rows = OutcomeRows::default();
        for (task, outcome) in finished {
            rows.push(task, outcome, self.limits())?;
        }
        let statement = FinishTasks {
            offset: self.offset(),
            outcomes: rows,
            owner,
            runs_channel: RUNS_CHANNEL,
            tasks_channel: crate::store::TASKS_CHANNEL,
        };
        let found = statement
            .bind()
            .query()
            .fetch_all(conn)
            .await
            .map_err(Error::from_db)?;
        let mut held = std::collections::HashMap::with_capacity(found.len());
        for row in found {
            let run: uuid::Uuid = row.try_get("run_id").map_err(Error::from_db)?;
            let seq: i64 = row.try_get("scheduled_seq").map_err(Error::from_db)?;
            let retry: bool = row.try_get("retry").map_err(Error::from_db)?;
            held.insert((run, seq), retry);
        }
        Ok(finished
            .iter()
            .map(|(task, _)| {
                match held.get(&(*task.run_id.as_uuid(), seq_param(task.scheduled_seq))) {
                    Some(true) => Recorded::Retry,
                    Some(false) => Recorded::Outcome,
                    None => Recorded::Fenced,
                }
            })
            .collect())
    }

    /// Deletes finished tasks and puts their outcomes in their runs' inboxes, queueing the
    /// runs and waking engines, in one statement. The caller holds the runs' row locks.
    async fn resolve_tasks(
        &self,
        tx: &mut sqlx::PgConnection,
        outcomes: &[(RunId, Seq, EventKind)],
    ) -> Result<()> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let mut runs = Vec::with_capacity(outcomes.len());
        let mut seqs = Vec::with_capacity(outcomes.len());
        let mut kinds = Vec::with_capacity(outcomes.len());
        let mut events = Vec::with_capacity(outcomes.len());
        let mut keys = Vec::with_capacity(outcomes.len());
        for (run, seq, input) in outcomes {
            runs.push(*run.as_uuid());
            seqs.push(seq_param(*seq));
            kinds.push(input.name());
            events.push(input.encode(self.limits())?);
            keys.push(activity_key(*seq));
        }
        sqlx::query("WITH k AS (SELECT * FROM UNNEST($2::uuid[], $3::bigint[], $4::text[], $5::bytea[], $6::text[])
                          AS k(run_id, seq, kind, event, dedupe_key)),
                  done AS (DELETE FROM reprise.activity_tasks t USING k
                            WHERE t.run_id = k.run_id AND t.scheduled_seq = k.seq),
                  delivered AS (
                      INSERT INTO reprise.inbox (run_id, visible_at, kind, event, dedupe_key)
                      SELECT run_id, reprise.db_now($1), kind, event, dedupe_key FROM k
                      ON CONFLICT (run_id, dedupe_key) DO NOTHING RETURNING run_id),
                  readied AS (
                      INSERT INTO reprise.ready_runs (run_id, ready_at)
                      SELECT r.run_id, reprise.db_now($1) FROM reprise.runs r
                       WHERE r.run_id IN (SELECT run_id FROM delivered)
                         AND r.status = 'running' AND r.parked_reason IS NULL
                      ON CONFLICT (run_id) DO UPDATE
                         SET ready_at = LEAST(ready_runs.ready_at, EXCLUDED.ready_at))
             SELECT pg_notify($7, '') WHERE EXISTS (SELECT 1 FROM delivered)")
        .bind(self.offset())
        .bind(runs)
        .bind(seqs)
        .bind(kinds)
        .bind(events)
        .bind(keys)
        .bind(crate::store::RUNS_CHANNEL)
        .execute(&mut *tx)
        .await
        .map_err(Error::from_db)?;
        Ok(())
    }

    /// Gives a failed attempt's task back for its next attempt, after the policy's backoff
    /// (database time), keeping the failure for `describe`.
    async fn schedule_retry(
        &self,
        tx: &mut sqlx::PgConnection,
        task: &ClaimedTask,
        failure: &Failure,
    ) -> Result<()> {
        let backoff = task
            .options
            .retry
            .backoff(task.attempt, rand::random::<f64>());
        let failure = failure.to_stored(self.limits())?;
        sqlx::query("UPDATE reprise.activity_tasks SET lease_owner = NULL, lease_expires_at = NULL, last_failure = $4,
                    visible_at = reprise.db_now($1) + $5::bigint * interval '1 microsecond',
                    start_deadline = reprise.db_now($1)
                        + ($5::bigint + schedule_to_start_micros) * interval '1 microsecond'
              WHERE run_id = $2 AND scheduled_seq = $3")
        .bind(self.offset())
        .bind(task.run_id.as_uuid())
        .bind(seq_param(task.scheduled_seq))
        .bind(&failure)
        .bind(micros(backoff))
        .execute(&mut *tx)
        .await
        .map_err(Error::from_db)?;
        Ok(())
    }

    /// Gives an attempt back so another worker takes it at once (a draining worker's unfinished
    /// attempts): it does not count as an attempt. Returns false if the lease was already lost.
    pub(crate) async fn hand_back(&self, task: &ClaimedTask, owner: &str) -> Result<bool> {
        let mut tx = self.pool().begin().await.map_err(Error::from_db)?;
        let queue: Option<String> = sqlx::query_scalar(
            "UPDATE reprise.activity_tasks SET lease_owner = NULL, lease_expires_at = NULL,
                    attempt = GREATEST(attempt - 1, 0), visible_at = reprise.db_now($1),
                    start_deadline = reprise.db_now($1) + schedule_to_start_micros * interval '1 microsecond'
              WHERE run_id = $2 AND scheduled_seq = $3 AND lease_owner = $4 AND lease_token = $5
          RETURNING task_queue",
        )
        .bind(self.offset())
        .bind(task.run_id.as_uuid())
        .bind(seq_param(task.scheduled_seq))
        .bind(owner)
        .bind(task.lease_token)
        .fetch_optional(&mut *tx)
        .await
        .map_err(Error::from_db)?;
        if let Some(queue) = &queue {
            crate::store::notify(&mut tx, crate::store::TASKS_CHANNEL, queue).await?;
        }
        tx.commit().await.map_err(Error::from_db)?;
        Ok(queue.is_some())
    }

    /// Ends attempts whose lease ran out (worker died, start-to-close or heartbeat timeout),
    /// activities past their schedule-to-close deadline, and attempts no worker took before
    /// their schedule-to-start deadline (never retried: no worker serves them): retry them,
    /// or time them out.
    /// Returns how many it handled.
    /// It locks the tasks and their runs without waiting (`SKIP LOCKED`), so it cannot
    /// deadlock with steps, which lock a run and then its tasks.
    pub(crate) async fn reap_tasks(&self, limit: i64) -> Result<usize> {
        let mut tx = self.pool().begin().await.map_err(Error::from_db)?;
        // The columns of a claimed task (`task_from_row`); it is not waiting to start.
        let mut rows = sqlx::query("SELECT t.run_id, r.workflow_id, t.scheduled_seq, t.activity_type, t.input, t.options, t.attempt, t.lease_token,
                    t.task_queue, 0::float8 AS waited_seconds, t.traceparent, t.tracestate, t.last_failure, t.heartbeat_details,
                    -- The heartbeat timeout ended it unless a start-to-close timeout did:
                    -- there is none, or it is longer and the last heartbeat's lease was not
                    -- cut short by what was left of it (`Store::heartbeat`).
                    (t.heartbeat_timeout_micros IS NOT NULL
                     AND (t.start_to_close_micros IS NULL
                          OR (t.start_to_close_micros > t.heartbeat_timeout_micros
                              AND COALESCE(t.lease_expires_at >= t.heartbeat_at
                                  + t.heartbeat_timeout_micros * interval '1 microsecond', true))))
                        AS by_heartbeat,
                    (t.schedule_to_close_deadline IS NOT NULL AND t.schedule_to_close_deadline <= reprise.db_now($1)) AS past_deadline,
                    false AS not_taken
               FROM reprise.activity_tasks t JOIN reprise.runs r ON r.run_id = t.run_id
              WHERE (t.lease_owner IS NOT NULL AND t.lease_expires_at < reprise.db_now($1))
                 OR (t.schedule_to_close_deadline < reprise.db_now($1))
              LIMIT $2 FOR UPDATE OF t, r SKIP LOCKED")
        .bind(self.offset())
        .bind(limit)
        .fetch_all(&mut *tx)
        .await
        .map_err(Error::from_db)?;
        // Attempts nobody took by their schedule-to-start deadline, in a statement of their own
        // so that each look keeps its index (`activity_tasks_start_deadline`); those past
        // their schedule-to-close deadline too were taken above.
        let not_taken = sqlx::query("SELECT t.run_id, r.workflow_id, t.scheduled_seq, t.activity_type, t.input, t.options, t.attempt, t.lease_token,
                    t.task_queue, 0::float8 AS waited_seconds, t.traceparent, t.tracestate, t.last_failure, t.heartbeat_details, false AS by_heartbeat,
                    false AS past_deadline, true AS not_taken
               FROM reprise.activity_tasks t JOIN reprise.runs r ON r.run_id = t.run_id
              WHERE t.lease_owner IS NULL AND t.start_deadline < reprise.db_now($1)
                AND NOT COALESCE(t.schedule_to_close_deadline < reprise.db_now($1), false)
              LIMIT $2 FOR UPDATE OF t, r SKIP LOCKED")
        .bind(self.offset())
        .bind(limit)
        .fetch_all(&mut *tx)
        .await
        .map_err(Error::from_db)?;
        rows.extend(not_taken);
        let count = rows.len();
        let mut timeouts = Vec::new();
        for row in &rows {
            let task = self.task_from_row(row)?;
            let past_deadline: bool = row.try_get("past_deadline").map_err(Error::from_db)?;
            let not_taken: bool = row.try_get("not_taken").map_err(Error::from_db)?;
            let by_heartbeat: bool = row.try_get("by_heartbeat").map_err(Error::from_db)?;
            let last_failure: Option<Vec<u8>> =
                row.try_get("last_failure").map_err(Error::from_db)?;
            let last_heartbeat: Option<Vec<u8>> =
                row.try_get("heartbeat_details").map_err(Error::from_db)?;
            let timeout = if past_deadline {
                TimeoutKind::ScheduleToClose
            } else if not_taken {
                TimeoutKind::ScheduleToStart
            } else if by_heartbeat {
                TimeoutKind::Heartbeat
            } else {
                TimeoutKind::StartToClose
            };
            let failure = timeout.failure(task.attempt);
            timeouts.push((task.activity_type.clone(), task.task_queue.clone(), timeout));
            let final_timeout = past_deadline || not_taken;
            if !final_timeout && task.options.retry.retries(&failure, task.attempt) {
                self.schedule_retry(&mut tx, &task, &failure).await?;
                continue;
            }
            let last_failure = match last_failure {
                Some(bytes) => Some(Failure::from_stored(&bytes)?),
                None => Some(failure),
            };
            let input = EventKind::ActivityTimedOut(ActivityTimedOut {
                scheduled: task.scheduled_seq,
                timeout,
                attempt: task.attempt,
                last_failure,
                last_heartbeat: last_heartbeat.map(Payload::from_bytes).transpose()?,
            });
            self.resolve_tasks(&mut tx, &[(task.run_id, task.scheduled_seq, input)])
                .await?;
        }
        tx.commit().await.map_err(Error::from_db)?;
        for (activity_type, task_queue, kind) in timeouts {
            self.metrics()
                .timed_out(activity_type.as_str(), &task_queue, kind);
        }
        Ok(count)
    }
}

/// A task row's trace context. One a tracer would refuse is dropped, not an error: the
/// attempt runs either way, outside the trace.
fn trace_context(row: &sqlx::postgres::PgRow) -> Result<Option<TraceContext>> {
    let parent: Option<String> = row.try_get("traceparent").map_err(Error::from_db)?;
    let state: Option<String> = row.try_get("tracestate").map_err(Error::from_db)?;
    Ok(parent.and_then(|p| TraceContext::new(p, state.unwrap_or_default()).ok()))
}

/// An activity that has not finished.
#[derive(Clone, Debug)]
pub struct PendingActivity {
    /// The seq of its `ActivityScheduled`.
    pub scheduled_seq: Seq,
    /// Its type.
    pub activity_type: ActivityType,
    /// Attempts started so far.
    pub attempt: u32,
    /// Whether an attempt is running now.
    pub running: bool,
    /// The failure of the last failed attempt.
    pub last_failure: Option<String>,
    /// The details of the last heartbeat any attempt recorded: its progress, and the
    /// checkpoint the next attempt resumes from (`ActivityContext::last_details`).
    pub progress: Option<Payload>,
    /// When the running attempt last heartbeat (database time).
    pub last_heartbeat_at: Option<Timestamp>,
    /// The worker holding the running attempt's lease, if one does.
    pub lease_owner: Option<String>,
    /// When that lease runs out unless the attempt heartbeats or finishes.
    pub lease_expires_at: Option<Timestamp>,
    /// When the next attempt is due (after a retry's backoff), if none is running.
    pub next_attempt_at: Option<Timestamp>,
}

/// An optional time column.
fn time(row: &sqlx::postgres::PgRow, column: &str) -> Result<Option<Timestamp>> {
    Ok(row
        .try_get::<Option<chrono::DateTime<chrono::Utc>>, _>(column)
        .map_err(Error::from_db)?
        .map(super::to_timestamp))
}

impl Store {
    /// The custom status a run last set, and when (`None`: never set).
    pub(crate) async fn custom_status(
        &self,
        run_id: RunId,
    ) -> Result<Option<(Payload, Timestamp)>> {
        let row: Option<(Vec<u8>, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
            "SELECT custom_status, custom_status_at FROM reprise.runs
                  WHERE run_id = $1 AND custom_status IS NOT NULL AND custom_status_at IS NOT NULL",
        )
        .bind(run_id.as_uuid())
        .fetch_optional(self.pool())
        .await
        .map_err(Error::from_db)?;
        row.map(|(bytes, at)| Ok((Payload::from_bytes(bytes)?, super::to_timestamp(at))))
            .transpose()
    }

    /// The activities of a run that have not finished, with their attempts and last failure.
    pub(crate) async fn pending_activities(&self, run_id: RunId) -> Result<Vec<PendingActivity>> {
        let rows = sqlx::query(
            "SELECT scheduled_seq, activity_type, attempt, lease_owner IS NOT NULL AS running, last_failure,
                    heartbeat_details, heartbeat_at, lease_owner, lease_expires_at,
                    CASE WHEN lease_owner IS NULL THEN visible_at END AS next_attempt_at
               FROM reprise.activity_tasks WHERE run_id = $1 ORDER BY scheduled_seq",
        )
        .bind(run_id.as_uuid())
        .fetch_all(self.pool())
        .await
        .map_err(Error::from_db)?;
        let mut pending = Vec::with_capacity(rows.len());
        for row in rows {
            let failure: Option<Vec<u8>> = row.try_get("last_failure").map_err(Error::from_db)?;
            let last_failure = match failure {
                Some(bytes) => Some(Failure::from_stored(&bytes)?.to_string()),
                None => None,
            };
            pending.push(PendingActivity {
                scheduled_seq: seq(&row, "scheduled_seq")?,
                activity_type: ActivityType::new(
                    row.try_get::<String, _>("activity_type")
                        .map_err(Error::from_db)?,
                )?,
                attempt: count(&row, "attempt")?,
                running: row.try_get("running").map_err(Error::from_db)?,
                last_failure,
                progress: row
                    .try_get::<Option<Vec<u8>>, _>("heartbeat_details")
                    .map_err(Error::from_db)?
                    .map(Payload::from_bytes)
                    .transpose()?,
                last_heartbeat_at: time(&row, "heartbeat_at")?,
                lease_owner: row.try_get("lease_owner").map_err(Error::from_db)?,
                lease_expires_at: time(&row, "lease_expires_at")?,
                next_attempt_at: time(&row, "next_attempt_at")?,
            });
        }
        Ok(pending)
    }
}

/// Reported outcomes, to be recorded in one statement: each attempt's task and lease token,
/// the input its run receives, and for a failure the policy retries, its backoff.
#[derive(Default)]
pub(crate) struct OutcomeRows {
    runs: Vec<uuid::Uuid>,
    seqs: Vec<i64>,
    tokens: Vec<i64>,
    kinds: Vec<&'static str>,
    events: Vec<Vec<u8>>,
    keys: Vec<String>,
    retry_after: Vec<Option<i64>>,
    failures: Vec<Option<Vec<u8>>>,
}

impl OutcomeRows {
    fn push(&mut self, task: &ClaimedTask, outcome: &TaskOutcome, limits: &Limits) -> Result<()> {
        let (input, retry_after, failure) = match outcome {
            TaskOutcome::Completed(result) => {
                let input = EventKind::ActivityCompleted(ActivityCompleted {
                    scheduled: task.scheduled_seq,
                    result: result.clone(),
                    attempt: task.attempt,
                });
                (input, None, None)
            }
            TaskOutcome::Failed(failure) => {
                let retry = &task.options.retry;
                let retry_after = retry
                    .retries(failure, task.attempt)
                    .then(|| micros(retry.backoff(task.attempt, rand::random::<f64>())));
                let payload = failure.to_stored(limits)?;
                let input = EventKind::ActivityFailed(ActivityFailed {
                    scheduled: task.scheduled_seq,
                    failure: failure.clone(),
                    attempt: task.attempt,
                });
                (input, retry_after, Some(payload))
            }
        };
        self.runs.push(*task.run_id.as_uuid());
        self.seqs.push(seq_param(task.scheduled_seq));
        self.tokens.push(task.lease_token);
        self.kinds.push(input.name());
        self.events.push(input.encode(limits)?);
        self.keys.push(activity_key(task.scheduled_seq));
        self.retry_after.push(retry_after);
        self.failures.push(failure);
        Ok(())
    }

    /// Binds them as eight arrays: run, scheduled seq, lease token, input kind, input bytes,
    /// dedupe key, retry after, failure.
    fn bind_to(self, bound: Bound<'_>) -> Bound<'_> {
        bound
            .bind(self.runs)
            .bind(self.seqs)
            .bind(self.tokens)
            .bind(self.kinds)
            .bind(self.events)
            .bind(self.keys)
            .bind(self.retry_after)
            .bind(self.failures)
    }
}

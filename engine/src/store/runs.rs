//! Runs and their history: starting, claiming, stepping in one transaction, parking.

use reprise_history::{
    ActivityCancelled, ChainHash, ChildWorkflowCompleted, ChildWorkflowFailed, Event, EventKind,
    Failure, FailureKind, Limits, ParentRun, Payload, RunId, RunOrigin, Seq, TaskQueue, TimerFired,
    Timestamp, WorkflowId, WorkflowStarted, WorkflowType, chain,
};
use sqlx::{PgConnection, Postgres, Row, Transaction};

use crate::error::{Error, Result};
use crate::store::inbox::{activity_key, child_key, deliver, timer_key};
use crate::store::{
    CLOSED_CHANNEL, RUNS_CHANNEL, Store, TASKS_CHANNEL, micros, now, to_datetime, to_timestamp,
};

/// A run to start.
#[derive(Clone, Debug)]
pub(crate) struct NewRun {
    pub(crate) workflow_type: WorkflowType,
    pub(crate) workflow_id: WorkflowId,
    pub(crate) input: Payload,
    pub(crate) task_queue: TaskQueue,
}

/// What starting a run did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StartOutcome {
    pub(crate) run_id: RunId,
    /// False when a run of the workflow id was already open (its id is returned).
    pub(crate) created: bool,
}

/// A run this process holds the lease of.
#[derive(Clone, Debug)]
pub(crate) struct ClaimedRun {
    pub(crate) run_id: RunId,
    pub(crate) workflow_type: String,
    pub(crate) lease_token: i64,
}

/// A run as stored.
#[derive(Clone, Debug)]
pub(crate) struct RunRow {
    pub(crate) run_id: RunId,
    pub(crate) workflow_type: String,
    pub(crate) status: String,
    pub(crate) head_seq: Seq,
    pub(crate) parked_reason: Option<String>,
    pub(crate) next_run_id: Option<RunId>,
}

fn run_id(row: &sqlx::postgres::PgRow, column: &str) -> Result<RunId> {
    let id: uuid::Uuid = row.try_get(column).map_err(Error::from_db)?;
    Ok(RunId::from_uuid(id))
}

fn seq(row: &sqlx::postgres::PgRow, column: &str) -> Result<Seq> {
    let n: i64 = row.try_get(column).map_err(Error::from_db)?;
    u64::try_from(n).map(Seq::new).map_err(|_| Error::Corrupt {
        what: column.to_string(),
        reason: format!("negative seq {n}"),
    })
}

fn seq_param(seq: Seq) -> i64 {
    i64::try_from(seq.get()).unwrap_or(i64::MAX)
}

/// Inserts a run and its `WorkflowStarted` event; false if a run of its id is open.
async fn insert_run(
    conn: &mut PgConnection,
    started: &WorkflowStarted,
    at: Timestamp,
    parent_run_id: Option<RunId>,
    previous_run_id: Option<RunId>,
    limits: &Limits,
) -> Result<bool> {
    let event = Event {
        seq: Seq::FIRST,
        recorded_at: at,
        kind: EventKind::WorkflowStarted(started.clone()),
    };
    let bytes = event.encode(limits)?;
    let hash = ChainHash::GENESIS.next(&bytes);
    let at = to_datetime(at)?;
    let inserted = sqlx::query(
        "INSERT INTO reprise.runs (run_id, workflow_id, workflow_type, task_queue, head_seq, head_hash,
                                   ready_at, created_at, parent_run_id, previous_run_id)
         VALUES ($1, $2, $3, $4, 1, $5, $6, $6, $7, $8)
         ON CONFLICT (workflow_id) WHERE status = 'running' DO NOTHING",
    )
    .bind(started.run_id.as_uuid())
    .bind(started.workflow_id.as_str())
    .bind(started.workflow_type.as_str())
    .bind(started.task_queue.as_str())
    .bind(hash.as_bytes().as_slice())
    .bind(at)
    .bind(parent_run_id.map(|r| *r.as_uuid()))
    .bind(previous_run_id.map(|r| *r.as_uuid()))
    .execute(&mut *conn)
    .await
    .map_err(Error::from_db)?
    .rows_affected()
        == 1;
    if !inserted {
        return Ok(false);
    }
    sqlx::query("INSERT INTO reprise.history (run_id, seq, recorded_at, kind, event, hash) VALUES ($1, 1, $2, $3, $4, $5)")
        .bind(started.run_id.as_uuid())
        .bind(at)
        .bind(event.kind.name())
        .bind(bytes)
        .bind(hash.as_bytes().as_slice())
        .execute(&mut *conn)
        .await
        .map_err(Error::from_db)?;
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(RUNS_CHANNEL)
        .execute(&mut *conn)
        .await
        .map_err(Error::from_db)?;
    Ok(true)
}

/// Reads a run's history on `conn`, verifying the chain as it goes.
async fn read_history(
    conn: &mut PgConnection,
    run_id: RunId,
    limits: &Limits,
) -> Result<Vec<Event>> {
    let rows =
        sqlx::query("SELECT seq, event, hash FROM reprise.history WHERE run_id = $1 ORDER BY seq")
            .bind(run_id.as_uuid())
            .fetch_all(&mut *conn)
            .await
            .map_err(Error::from_db)?;
    let mut links = Vec::with_capacity(rows.len());
    for row in &rows {
        let bytes: &[u8] = row.try_get("event").map_err(Error::from_db)?;
        let hash: &[u8] = row.try_get("hash").map_err(Error::from_db)?;
        links.push(chain::ChainLink {
            seq: seq(row, "seq")?,
            bytes,
            hash: ChainHash::from_slice(hash)?,
        });
    }
    chain::verify(links.iter().copied())?;
    links
        .iter()
        .map(|l| Ok(Event::decode(l.bytes, limits)?))
        .collect()
}

async fn tx_now(conn: &mut PgConnection, offset: i64) -> Result<Timestamp> {
    let t: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(concat!("SELECT ", now!()))
        .bind(offset)
        .fetch_one(&mut *conn)
        .await
        .map_err(Error::from_db)?;
    Ok(to_timestamp(t))
}

impl Store {
    /// Starts a run in one transaction (run row and first event), unless a run of the same
    /// workflow id is open: then that run's id comes back with `created: false`.
    pub(crate) async fn start_run(&self, new: NewRun) -> Result<StartOutcome> {
        let mut tx = self.pool().begin().await.map_err(Error::from_db)?;
        let at = tx_now(&mut tx, self.offset()).await?;
        let started = WorkflowStarted {
            workflow_type: new.workflow_type,
            workflow_id: new.workflow_id,
            run_id: RunId::random(),
            input: new.input,
            task_queue: new.task_queue,
            origin: RunOrigin::Client,
            parent: None,
        };
        if insert_run(&mut tx, &started, at, None, None, self.limits()).await? {
            tx.commit().await.map_err(Error::from_db)?;
            return Ok(StartOutcome {
                run_id: started.run_id,
                created: true,
            });
        }
        drop(tx);
        let open = self.open_run(&started.workflow_id).await?.ok_or_else(|| {
            Error::Conflict(format!(
                "workflow id {} was in use and then not",
                started.workflow_id
            ))
        })?;
        Ok(StartOutcome {
            run_id: open.run_id,
            created: false,
        })
    }

    fn row_to_run(row: &sqlx::postgres::PgRow) -> Result<RunRow> {
        Ok(RunRow {
            run_id: run_id(row, "run_id")?,
            workflow_type: row.try_get("workflow_type").map_err(Error::from_db)?,
            status: row.try_get("status").map_err(Error::from_db)?,
            head_seq: seq(row, "head_seq")?,
            parked_reason: row.try_get("parked_reason").map_err(Error::from_db)?,
            next_run_id: row
                .try_get::<Option<uuid::Uuid>, _>("next_run_id")
                .map_err(Error::from_db)?
                .map(RunId::from_uuid),
        })
    }

    const RUN_COLUMNS: &'static str = "SELECT r.run_id, r.workflow_type, r.status, r.head_seq, r.parked_reason,
        (SELECT n.run_id FROM reprise.runs n WHERE n.previous_run_id = r.run_id LIMIT 1) AS next_run_id
        FROM reprise.runs r";

    /// The open run of a workflow id.
    pub(crate) async fn open_run(&self, workflow_id: &WorkflowId) -> Result<Option<RunRow>> {
        let sql = format!(
            "{} WHERE r.workflow_id = $1 AND r.status = 'running'",
            Self::RUN_COLUMNS
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(workflow_id.as_str())
            .fetch_optional(self.pool())
            .await
            .map_err(Error::from_db)?;
        row.as_ref().map(Self::row_to_run).transpose()
    }

    /// The latest run of a workflow id, open or closed.
    pub(crate) async fn latest_run(&self, workflow_id: &WorkflowId) -> Result<Option<RunRow>> {
        let sql = format!(
            "{} WHERE r.workflow_id = $1 ORDER BY r.created_at DESC, r.run_id DESC LIMIT 1",
            Self::RUN_COLUMNS
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(workflow_id.as_str())
            .fetch_optional(self.pool())
            .await
            .map_err(Error::from_db)?;
        row.as_ref().map(Self::row_to_run).transpose()
    }

    /// A run by id.
    pub(crate) async fn run(&self, run_id: RunId) -> Result<Option<RunRow>> {
        let sql = format!("{} WHERE r.run_id = $1", Self::RUN_COLUMNS);
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(run_id.as_uuid())
            .fetch_optional(self.pool())
            .await
            .map_err(Error::from_db)?;
        row.as_ref().map(Self::row_to_run).transpose()
    }

    /// Leases up to `limit` runs that have work (or whose lease ran out). Parked runs are
    /// taken only by a process that knows their type and is not the build that parked them.
    pub(crate) async fn claim_runs(
        &self,
        owner: &str,
        known_types: &[String],
        build: &str,
        limit: i64,
        lease: std::time::Duration,
    ) -> Result<Vec<ClaimedRun>> {
        let rows = sqlx::query(concat!(
            "WITH candidates AS (
                SELECT run_id FROM reprise.runs
                WHERE ((ready_at <= ", now!(), " AND lease_owner IS NULL)
                       OR (lease_owner IS NOT NULL AND lease_expires_at < ", now!(), "))
                  AND status = 'running'
                  AND (parked_reason IS NULL OR (workflow_type = ANY($2) AND parked_build IS DISTINCT FROM $3))
                ORDER BY ready_at NULLS LAST
                LIMIT $4
                FOR UPDATE SKIP LOCKED)
             UPDATE reprise.runs r
                SET lease_owner = $5, lease_token = r.lease_token + 1,
                    lease_expires_at = ", now!(), " + $6::bigint * interval '1 microsecond'
               FROM candidates c
              WHERE r.run_id = c.run_id
          RETURNING r.run_id, r.workflow_type, r.lease_token"
        ))
        .bind(self.offset())
        .bind(known_types)
        .bind(build)
        .bind(limit)
        .bind(owner)
        .bind(micros(lease))
        .fetch_all(self.pool())
        .await
        .map_err(Error::from_db)?;
        rows.iter()
            .map(|row| {
                Ok(ClaimedRun {
                    run_id: run_id(row, "run_id")?,
                    workflow_type: row.try_get("workflow_type").map_err(Error::from_db)?,
                    lease_token: row.try_get("lease_token").map_err(Error::from_db)?,
                })
            })
            .collect()
    }

    /// How long until an unleased run next has work, if any does: engines sleep until then.
    pub(crate) async fn next_ready_in(&self) -> Result<Option<std::time::Duration>> {
        let micros: Option<i64> = sqlx::query_scalar(concat!(
            "SELECT (EXTRACT(EPOCH FROM (min(ready_at) - ", now!(), ")) * 1000000)::bigint
               FROM reprise.runs WHERE ready_at IS NOT NULL AND lease_owner IS NULL AND parked_reason IS NULL"
        ))
        .bind(self.offset())
        .fetch_one(self.pool())
        .await
        .map_err(Error::from_db)?;
        Ok(micros.map(|m| std::time::Duration::from_micros(u64::try_from(m).unwrap_or(0))))
    }

    /// A run's history, verified against its chain hashes (naming the first bad seq).
    pub(crate) async fn history(&self, run_id: RunId) -> Result<Vec<Event>> {
        let mut conn = self.pool().acquire().await.map_err(Error::from_db)?;
        read_history(&mut conn, run_id, self.limits()).await
    }

    /// Begins a step of a run this process leases: locks the run (checking the lease token:
    /// fencing) and takes the inputs visible now from its inbox.
    pub(crate) async fn begin_step(&self, run: &ClaimedRun, owner: &str) -> Result<StepTx> {
        let mut tx = self.pool().begin().await.map_err(Error::from_db)?;
        let row = sqlx::query(concat!(
            "SELECT ", now!(), " AS now, workflow_id, head_seq, head_hash, applied_seq, parent_run_id
               FROM reprise.runs WHERE run_id = $2 AND lease_owner = $3 AND lease_token = $4 FOR UPDATE"
        ))
        .bind(self.offset())
        .bind(run.run_id.as_uuid())
        .bind(owner)
        .bind(run.lease_token)
        .fetch_optional(&mut *tx)
        .await
        .map_err(Error::from_db)?
        .ok_or(Error::LeaseLost { run_id: run.run_id })?;
        let now: chrono::DateTime<chrono::Utc> = row.try_get("now").map_err(Error::from_db)?;
        let head_hash: &[u8] = row.try_get("head_hash").map_err(Error::from_db)?;
        let workflow_id: String = row.try_get("workflow_id").map_err(Error::from_db)?;
        let mut step = StepTx {
            offset: self.offset(),
            limits: *self.limits(),
            run_id: run.run_id,
            workflow_id: WorkflowId::new(workflow_id)?,
            now: to_timestamp(now),
            head_seq: seq(&row, "head_seq")?,
            head_hash: ChainHash::from_slice(head_hash)?,
            applied_seq: seq(&row, "applied_seq")?,
            inputs: Vec::new(),
            inbox_ids: Vec::new(),
            tx,
        };
        let rows = sqlx::query(concat!(
            "SELECT id, event FROM reprise.inbox WHERE run_id = $2 AND visible_at <= ",
            now!(),
            " ORDER BY visible_at, id LIMIT 1000 FOR UPDATE"
        ))
        .bind(step.offset)
        .bind(run.run_id.as_uuid())
        .fetch_all(&mut *step.tx)
        .await
        .map_err(Error::from_db)?;
        for row in rows {
            let id: i64 = row.try_get("id").map_err(Error::from_db)?;
            let bytes: &[u8] = row.try_get("event").map_err(Error::from_db)?;
            let kind = EventKind::decode(bytes, &step.limits).map_err(|e| Error::Corrupt {
                what: format!("inbox row {id} of run {}", run.run_id),
                reason: e.to_string(),
            })?;
            step.inputs.push(kind);
            step.inbox_ids.push(id);
        }
        Ok(step)
    }

    /// Parks a run with its reason (releasing the lease); it keeps its inbox and readiness.
    /// `build` is set when the code failed (nondeterminism, panic): that build will not take it
    /// again. Without it (unknown type), any process that knows the type will.
    pub(crate) async fn park(
        &self,
        run: &ClaimedRun,
        owner: &str,
        build: Option<&str>,
        reason: &str,
    ) -> Result<()> {
        sqlx::query(concat!(
            "UPDATE reprise.runs SET parked_reason = $5, parked_build = $6, parked_at = COALESCE(parked_at, ",
            now!(),
            "), lease_owner = NULL, lease_expires_at = NULL WHERE run_id = $2 AND lease_owner = $3 AND lease_token = $4"
        ))
        .bind(self.offset())
        .bind(run.run_id.as_uuid())
        .bind(owner)
        .bind(run.lease_token)
        .bind(reason)
        .bind(build)
        .execute(self.pool())
        .await
        .map_err(Error::from_db)?;
        Ok(())
    }
}

/// One step of one run, inside its transaction.
pub(crate) struct StepTx {
    tx: Transaction<'static, Postgres>,
    offset: i64,
    limits: Limits,
    pub(crate) run_id: RunId,
    pub(crate) workflow_id: WorkflowId,
    /// Database time of this transaction: the recorded time of everything it appends.
    pub(crate) now: Timestamp,
    pub(crate) head_seq: Seq,
    pub(crate) head_hash: ChainHash,
    /// 0 until the first step has applied `WorkflowStarted`.
    pub(crate) applied_seq: Seq,
    /// The inputs visible now, in arrival order.
    pub(crate) inputs: Vec<EventKind>,
    inbox_ids: Vec<i64>,
}

/// How a step leaves its run.
pub(crate) enum Closing<'a> {
    Open,
    Closed {
        status: &'static str,
        outcome: Result<&'a Payload, Failure>,
    },
    ContinuedAsNew(&'a reprise_history::WorkflowContinuedAsNew),
}

impl StepTx {
    /// The run's history, read in this step's transaction (a step never needs a second
    /// connection, so steps cannot starve the pool).
    pub(crate) async fn history(&mut self) -> Result<Vec<Event>> {
        read_history(&mut self.tx, self.run_id, &self.limits).await
    }

    /// Appends `events` (this step's inputs and decisions), carries out the decisions, takes
    /// the consumed inputs out of the inbox, and releases the run — all or nothing.
    pub(crate) async fn commit(
        mut self,
        events: &[Event],
        closing: Closing<'_>,
        parent: Option<&ParentRun>,
    ) -> Result<()> {
        self.append(events).await?;
        let mut queues = Vec::new();
        for event in events {
            self.carry_out(event, &mut queues).await?;
        }
        sqlx::query("DELETE FROM reprise.inbox WHERE id = ANY($1)")
            .bind(&self.inbox_ids)
            .execute(&mut *self.tx)
            .await
            .map_err(Error::from_db)?;
        let head_seq = events.last().map_or(self.head_seq, |e| e.seq);
        self.close(&closing, parent).await?;
        sqlx::query(
            "UPDATE reprise.runs SET head_seq = $2, head_hash = $3, applied_seq = $2,
                    lease_owner = NULL, lease_expires_at = NULL,
                    parked_reason = NULL, parked_at = NULL, parked_build = NULL,
                    ready_at = CASE WHEN status = 'running'
                               THEN (SELECT min(visible_at) FROM reprise.inbox WHERE run_id = $1) END
              WHERE run_id = $1",
        )
        .bind(self.run_id.as_uuid())
        .bind(seq_param(head_seq))
        .bind(self.head_hash.as_bytes().as_slice())
        .execute(&mut *self.tx)
        .await
        .map_err(Error::from_db)?;
        queues.sort();
        queues.dedup();
        for queue in queues {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(TASKS_CHANNEL)
                .bind(queue)
                .execute(&mut *self.tx)
                .await
                .map_err(Error::from_db)?;
        }
        self.tx.commit().await.map_err(Error::from_db)
    }

    /// Appends events to history with their chain hashes, in one statement.
    async fn append(&mut self, events: &[Event]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut seqs = Vec::with_capacity(events.len());
        let mut times = Vec::with_capacity(events.len());
        let mut kinds = Vec::with_capacity(events.len());
        let mut bodies = Vec::with_capacity(events.len());
        let mut hashes = Vec::with_capacity(events.len());
        for event in events {
            let bytes = event.encode(&self.limits)?;
            self.head_hash = self.head_hash.next(&bytes);
            seqs.push(seq_param(event.seq));
            times.push(to_datetime(event.recorded_at)?);
            kinds.push(event.kind.name());
            bodies.push(bytes);
            hashes.push(self.head_hash.as_bytes().to_vec());
        }
        sqlx::query(
            "INSERT INTO reprise.history (run_id, seq, recorded_at, kind, event, hash)
             SELECT $1, * FROM UNNEST($2::bigint[], $3::timestamptz[], $4::text[], $5::bytea[], $6::bytea[])",
        )
        .bind(self.run_id.as_uuid())
        .bind(seqs)
        .bind(times)
        .bind(kinds)
        .bind(bodies)
        .bind(hashes)
        .execute(&mut *self.tx)
        .await
        .map_err(Error::from_db)?;
        Ok(())
    }

    /// Does what a decision asks: create an activity task, set a timer, start a child, ...
    async fn carry_out(&mut self, event: &Event, queues: &mut Vec<String>) -> Result<()> {
        let conn: &mut PgConnection = &mut self.tx;
        match &event.kind {
            EventKind::ActivityScheduled(s) => {
                let options = Payload::encode(&s.options, &self.limits)?;
                sqlx::query(concat!(
                    "INSERT INTO reprise.activity_tasks (run_id, scheduled_seq, task_queue, activity_type, input, options,
                         start_to_close_micros, heartbeat_timeout_micros, scheduled_at, visible_at, schedule_to_close_deadline)
                     VALUES ($2, $3, $4, $5, $6, $7, $8, $9, ", now!(), ", ", now!(), ", ",
                    now!(), " + $10::bigint * interval '1 microsecond')"
                ))
                .bind(self.offset)
                .bind(self.run_id.as_uuid())
                .bind(seq_param(event.seq))
                .bind(s.task_queue.as_str())
                .bind(s.activity_type.as_str())
                .bind(s.input.as_bytes())
                .bind(options.as_bytes())
                .bind(s.options.start_to_close.map(micros))
                .bind(s.options.heartbeat_timeout.map(micros))
                .bind(s.options.schedule_to_close.map(micros))
                .execute(&mut *conn)
                .await
                .map_err(Error::from_db)?;
                queues.push(s.task_queue.to_string());
            }
            EventKind::ActivityCancelRequested(c) => {
                // An attempt that is running learns of it at its next heartbeat; one that is
                // not running is cancelled at once.
                let waiting: Option<i32> = sqlx::query_scalar(
                    "UPDATE reprise.activity_tasks SET cancel_requested = true
                      WHERE run_id = $1 AND scheduled_seq = $2 RETURNING CASE WHEN lease_owner IS NULL THEN attempt END",
                )
                .bind(self.run_id.as_uuid())
                .bind(seq_param(c.scheduled))
                .fetch_optional(&mut *conn)
                .await
                .map_err(Error::from_db)?
                .flatten();
                if let Some(attempt) = waiting {
                    sqlx::query("DELETE FROM reprise.activity_tasks WHERE run_id = $1 AND scheduled_seq = $2")
                        .bind(self.run_id.as_uuid())
                        .bind(seq_param(c.scheduled))
                        .execute(&mut *conn)
                        .await
                        .map_err(Error::from_db)?;
                    let cancelled = EventKind::ActivityCancelled(ActivityCancelled {
                        scheduled: c.scheduled,
                        attempt: u32::try_from(attempt).unwrap_or(0),
                        details: None,
                    });
                    let key = Some(activity_key(c.scheduled));
                    deliver(
                        conn,
                        self.offset,
                        self.run_id,
                        &cancelled,
                        key,
                        Default::default(),
                        &self.limits,
                    )
                    .await?;
                }
            }
            EventKind::TimerStarted(t) => {
                let fired = EventKind::TimerFired(TimerFired { started: event.seq });
                let key = Some(timer_key(event.seq));
                deliver(
                    conn,
                    self.offset,
                    self.run_id,
                    &fired,
                    key,
                    t.duration,
                    &self.limits,
                )
                .await?;
            }
            EventKind::MarkerRecorded(reprise_history::Marker::Patch { patch_id }) => {
                sqlx::query(
                    "INSERT INTO reprise.run_patches (run_id, patch_id, seq) VALUES ($1, $2, $3)
                     ON CONFLICT (run_id, patch_id) DO NOTHING",
                )
                .bind(self.run_id.as_uuid())
                .bind(patch_id.as_str())
                .bind(seq_param(event.seq))
                .execute(&mut *conn)
                .await
                .map_err(Error::from_db)?;
            }
            EventKind::TimerCancelled(t) => {
                sqlx::query("DELETE FROM reprise.inbox WHERE run_id = $1 AND dedupe_key = $2")
                    .bind(self.run_id.as_uuid())
                    .bind(timer_key(t.started))
                    .execute(&mut *conn)
                    .await
                    .map_err(Error::from_db)?;
            }
            EventKind::ChildWorkflowStarted(c) => {
                let started = WorkflowStarted {
                    workflow_type: c.workflow_type.clone(),
                    workflow_id: c.workflow_id.clone(),
                    run_id: c.run_id,
                    input: c.input.clone(),
                    task_queue: c.task_queue.clone(),
                    origin: RunOrigin::Client,
                    parent: Some(ParentRun {
                        workflow_id: self.workflow_id.clone(),
                        run_id: self.run_id,
                        started_seq: event.seq,
                    }),
                };
                if !insert_run(
                    conn,
                    &started,
                    self.now,
                    Some(self.run_id),
                    None,
                    &self.limits,
                )
                .await?
                {
                    let failed = EventKind::ChildWorkflowFailed(ChildWorkflowFailed {
                        started: event.seq,
                        failure: Failure::application(
                            "WorkflowIdInUse",
                            format!("a run of workflow id {} is already open", c.workflow_id),
                        )
                        .retryable(false),
                    });
                    let key = Some(child_key(event.seq));
                    deliver(
                        conn,
                        self.offset,
                        self.run_id,
                        &failed,
                        key,
                        Default::default(),
                        &self.limits,
                    )
                    .await?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Closes the run when the step ended it: status, the next run of a continue-as-new, the
    /// parent's inbox, and a notification for clients awaiting the result.
    async fn close(&mut self, closing: &Closing<'_>, parent: Option<&ParentRun>) -> Result<()> {
        let status = match closing {
            Closing::Open => return Ok(()),
            Closing::Closed { status, .. } => *status,
            Closing::ContinuedAsNew(_) => "continued_as_new",
        };
        let conn: &mut PgConnection = &mut self.tx;
        sqlx::query(concat!(
            "UPDATE reprise.runs SET status = $3, closed_at = ",
            now!(),
            " WHERE run_id = $2"
        ))
        .bind(self.offset)
        .bind(self.run_id.as_uuid())
        .bind(status)
        .execute(&mut *conn)
        .await
        .map_err(Error::from_db)?;
        // Timers and tasks of a closed run will never be wanted.
        sqlx::query("DELETE FROM reprise.inbox WHERE run_id = $1")
            .bind(self.run_id.as_uuid())
            .execute(&mut *conn)
            .await
            .map_err(Error::from_db)?;
        sqlx::query("DELETE FROM reprise.activity_tasks WHERE run_id = $1 AND lease_owner IS NULL")
            .bind(self.run_id.as_uuid())
            .execute(&mut *conn)
            .await
            .map_err(Error::from_db)?;
        match closing {
            Closing::ContinuedAsNew(next) => {
                let started = WorkflowStarted {
                    workflow_type: next.workflow_type.clone(),
                    workflow_id: self.workflow_id.clone(),
                    run_id: next.new_run_id,
                    input: next.input.clone(),
                    task_queue: next.task_queue.clone(),
                    origin: RunOrigin::ContinuedAsNew {
                        previous_run_id: self.run_id,
                    },
                    parent: parent.cloned(),
                };
                let parent_run = parent.map(|p| p.run_id);
                if !insert_run(
                    conn,
                    &started,
                    self.now,
                    parent_run,
                    Some(self.run_id),
                    &self.limits,
                )
                .await?
                {
                    return Err(Error::Conflict(format!(
                        "workflow id {} is open in another run; cannot continue as new",
                        self.workflow_id
                    )));
                }
            }
            Closing::Closed { outcome, .. } => {
                if let Some(parent) = parent {
                    let kind = match outcome {
                        Ok(result) => EventKind::ChildWorkflowCompleted(ChildWorkflowCompleted {
                            started: parent.started_seq,
                            result: (*result).clone(),
                        }),
                        Err(failure) => EventKind::ChildWorkflowFailed(ChildWorkflowFailed {
                            started: parent.started_seq,
                            failure: failure.clone(),
                        }),
                    };
                    let key = Some(child_key(parent.started_seq));
                    deliver(
                        conn,
                        self.offset,
                        parent.run_id,
                        &kind,
                        key,
                        Default::default(),
                        &self.limits,
                    )
                    .await?;
                }
            }
            Closing::Open => {}
        }
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CLOSED_CHANNEL)
            .bind(self.run_id.to_string())
            .execute(&mut *conn)
            .await
            .map_err(Error::from_db)?;
        Ok(())
    }
}

/// The closing of a run as its status text and outcome.
pub(crate) fn runs_closing(status: &reprise_sdk::RunStatus) -> Closing<'_> {
    use reprise_sdk::RunStatus;
    match status {
        RunStatus::Running => Closing::Open,
        RunStatus::Completed(result) => Closing::Closed {
            status: "completed",
            outcome: Ok(result),
        },
        RunStatus::Failed(failure) => Closing::Closed {
            status: "failed",
            outcome: Err(failure.clone()),
        },
        RunStatus::Cancelled => Closing::Closed {
            status: "cancelled",
            outcome: Err(Failure::of_kind(
                FailureKind::Cancelled,
                "the workflow was cancelled",
            )),
        },
        RunStatus::Terminated => Closing::Closed {
            status: "terminated",
            outcome: Err(Failure::of_kind(
                FailureKind::Terminated,
                "the workflow was terminated",
            )),
        },
        RunStatus::ContinuedAsNew(next) => Closing::ContinuedAsNew(next),
    }
}

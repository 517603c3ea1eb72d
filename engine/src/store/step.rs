//! One step of one run, in one transaction: lock the run with its lease token, take the
//! visible inputs, append the events with their chain hashes, carry out the decisions, close
//! the run if it ended, release it.

use reprise_history::{
    ActivityCancelled, ChainHash, ChildWorkflowFailed, Event, EventKind, Failure, Limits,
    ParentRun, Payload, RunId, RunOrigin, Seq, TimerFired, Timestamp, WorkflowId, WorkflowStarted,
};
use sqlx::{PgConnection, Postgres, Row, Transaction};

use crate::error::{Error, Result};
use crate::store::inbox::{activity_key, child_key, deliver, timer_key};
use crate::store::runs::{ClaimedRun, append_events, insert_run, read_history, seq, seq_param};
use crate::store::{
    CLOSED_CHANNEL, Store, TASKS_CHANNEL, close_children, micros, now, policy_name, request_cancel,
    to_timestamp,
};

impl Store {
    /// Begins a step of a run this process leases: locks the run (checking the lease token:
    /// fencing) and takes the inputs visible now from its inbox.
    pub(crate) async fn begin_step(&self, run: &ClaimedRun, owner: &str) -> Result<StepTx> {
        let mut tx = self.pool().begin().await.map_err(Error::from_db)?;
        let row = sqlx::query(concat!(
            "SELECT ", now!(), " AS now, workflow_id, head_seq, head_hash, applied_seq, parent_close_policy
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
            parent_close_policy: row.try_get("parent_close_policy").map_err(Error::from_db)?,
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
    /// For a child: what happens to it when its parent closes (kept by its next runs).
    parent_close_policy: Option<String>,
    /// The inputs visible now, in arrival order.
    pub(crate) inputs: Vec<EventKind>,
    inbox_ids: Vec<i64>,
}

/// How a step leaves its run.
pub(crate) enum Closing<'a> {
    Open,
    /// Closed with this status; the parent (if any) learns the outcome from the closing event.
    Closed {
        status: &'static str,
    },
    ContinuedAsNew {
        next: &'a reprise_history::WorkflowContinuedAsNew,
        /// Signals the run received but its code never took: they go to the next run.
        carried: Vec<(reprise_history::SignalName, Payload)>,
    },
}

impl StepTx {
    /// Only the first `applied` inputs were applied: the others stay in the inbox (for a
    /// continue-as-new, its signals move on to the next run).
    pub(crate) fn keep_unapplied(&mut self, applied: usize) {
        self.inbox_ids.truncate(applied);
    }

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
        let scheduled: Vec<(Seq, &reprise_history::ActivityScheduled)> = events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::ActivityScheduled(s) => Some((e.seq, s)),
                _ => None,
            })
            .collect();
        insert_activity_tasks(
            &mut self.tx,
            self.offset,
            self.run_id,
            &scheduled,
            &self.limits,
        )
        .await?;
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
        let closing_event = events.last().map(|e| &e.kind).filter(|k| k.is_closing());
        self.close(&closing, closing_event, parent).await?;
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

    /// Appends events to history with their chain hashes.
    async fn append(&mut self, events: &[Event]) -> Result<()> {
        self.head_hash = append_events(
            &mut self.tx,
            self.run_id,
            self.head_hash,
            events,
            &self.limits,
        )
        .await?;
        Ok(())
    }

    /// Puts an input in a run's inbox within this step's transaction.
    async fn deliver(
        &mut self,
        run_id: RunId,
        input: &EventKind,
        key: String,
        delay: std::time::Duration,
    ) -> Result<()> {
        deliver(
            &mut self.tx,
            self.offset,
            run_id,
            input,
            Some(key),
            delay,
            &self.limits,
        )
        .await?;
        Ok(())
    }

    /// Does what a decision asks (activity tasks are created for the whole step beforehand).
    async fn carry_out(&mut self, event: &Event, queues: &mut Vec<String>) -> Result<()> {
        match &event.kind {
            EventKind::ActivityScheduled(s) => queues.push(s.task_queue.to_string()),
            EventKind::ActivityCancelRequested(c) => self.cancel_activity(c.scheduled).await?,
            EventKind::TimerStarted(t) => {
                let fired = EventKind::TimerFired(TimerFired { started: event.seq });
                self.deliver(self.run_id, &fired, timer_key(event.seq), t.duration)
                    .await?;
            }
            EventKind::TimerCancelled(t) => {
                sqlx::query("DELETE FROM reprise.inbox WHERE run_id = $1 AND dedupe_key = $2")
                    .bind(self.run_id.as_uuid())
                    .bind(timer_key(t.started))
                    .execute(&mut *self.tx)
                    .await
                    .map_err(Error::from_db)?;
            }
            EventKind::MarkerRecorded(reprise_history::Marker::Patch { patch_id }) => {
                sqlx::query(
                    "INSERT INTO reprise.run_patches (run_id, patch_id, seq) VALUES ($1, $2, $3)
                     ON CONFLICT (run_id, patch_id) DO NOTHING",
                )
                .bind(self.run_id.as_uuid())
                .bind(patch_id.as_str())
                .bind(seq_param(event.seq))
                .execute(&mut *self.tx)
                .await
                .map_err(Error::from_db)?;
            }
            EventKind::ChildWorkflowStarted(c) => self.start_child(event.seq, c).await?,
            EventKind::ChildWorkflowCancelRequested(c) => self.cancel_child(c.started).await?,
            _ => {}
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
        .bind(self.run_id.as_uuid())
        .bind(seq_param(scheduled))
        .fetch_optional(&mut *self.tx)
        .await
        .map_err(Error::from_db)?
        .flatten();
        let Some(attempt) = waiting else {
            return Ok(());
        };
        sqlx::query("DELETE FROM reprise.activity_tasks WHERE run_id = $1 AND scheduled_seq = $2")
            .bind(self.run_id.as_uuid())
            .bind(seq_param(scheduled))
            .execute(&mut *self.tx)
            .await
            .map_err(Error::from_db)?;
        let cancelled = EventKind::ActivityCancelled(ActivityCancelled {
            scheduled,
            attempt: u32::try_from(attempt).unwrap_or(0),
            details: None,
        });
        self.deliver(
            self.run_id,
            &cancelled,
            activity_key(scheduled),
            Default::default(),
        )
        .await
    }

    /// Starts a child run in this transaction; if its workflow id is taken, the child fails at once.
    async fn start_child(
        &mut self,
        seq: Seq,
        c: &reprise_history::ChildWorkflowStarted,
    ) -> Result<()> {
        let parent = ParentRun {
            workflow_id: self.workflow_id.clone(),
            run_id: self.run_id,
            started_seq: seq,
        };
        let started = c.child_run_started(parent);
        let policy = policy_name(c.parent_close_policy);
        if insert_run(
            &mut self.tx,
            &started,
            self.now,
            None,
            Some(policy),
            &self.limits,
        )
        .await?
        {
            return Ok(());
        }
        let failed = EventKind::ChildWorkflowFailed(ChildWorkflowFailed {
            started: seq,
            failure: Failure::application(
                "WorkflowIdInUse",
                format!("a run of workflow id {} is already open", c.workflow_id),
            )
            .retryable(false),
        });
        self.deliver(self.run_id, &failed, child_key(seq), Default::default())
            .await
    }

    /// Asks the child started at `started` to cancel, if it still runs.
    async fn cancel_child(&mut self, started: Seq) -> Result<()> {
        let child: Option<uuid::Uuid> = sqlx::query_scalar(
            "SELECT run_id FROM reprise.runs WHERE parent_run_id = $1 AND parent_started_seq = $2 AND status = 'running'",
        )
        .bind(self.run_id.as_uuid())
        .bind(seq_param(started))
        .fetch_optional(&mut *self.tx)
        .await
        .map_err(Error::from_db)?;
        if let Some(child) = child {
            request_cancel(
                &mut self.tx,
                self.offset,
                RunId::from_uuid(child),
                "its parent asked",
                &self.limits,
            )
            .await?;
        }
        Ok(())
    }

    /// Closes the run when the step ended it: status, the next run of a continue-as-new, the
    /// parent's inbox, the children's policies, and a notification for clients awaiting it.
    async fn close(
        &mut self,
        closing: &Closing<'_>,
        closing_event: Option<&EventKind>,
        parent: Option<&ParentRun>,
    ) -> Result<()> {
        let status = match closing {
            Closing::Open => return Ok(()),
            Closing::Closed { status } => *status,
            Closing::ContinuedAsNew { .. } => "continued_as_new",
        };
        sqlx::query(concat!(
            "UPDATE reprise.runs SET status = $3, closed_at = ",
            now!(),
            " WHERE run_id = $2"
        ))
        .bind(self.offset)
        .bind(self.run_id.as_uuid())
        .bind(status)
        .execute(&mut *self.tx)
        .await
        .map_err(Error::from_db)?;
        if let Closing::ContinuedAsNew { next, carried } = closing {
            self.continue_as_new(next, carried, parent).await?;
        }
        let outcome = parent.and_then(|p| Some((p, closing_event?.child_outcome(p.started_seq)?)));
        if let Some((parent, outcome)) = outcome {
            self.deliver(
                parent.run_id,
                &outcome,
                child_key(parent.started_seq),
                Default::default(),
            )
            .await?;
        }
        // Timers and tasks of a closed run will never be wanted.
        for drop_pending in [
            "DELETE FROM reprise.inbox WHERE run_id = $1",
            "DELETE FROM reprise.activity_tasks WHERE run_id = $1 AND lease_owner IS NULL",
        ] {
            sqlx::query(drop_pending)
                .bind(self.run_id.as_uuid())
                .execute(&mut *self.tx)
                .await
                .map_err(Error::from_db)?;
        }
        close_children(&mut self.tx, self.offset, self.run_id, &self.limits).await?;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CLOSED_CHANNEL)
            .bind(self.run_id.to_string())
            .execute(&mut *self.tx)
            .await
            .map_err(Error::from_db)?;
        Ok(())
    }

    /// Starts the next run of a continue-as-new and hands it the signals this run never took:
    /// first those its code had buffered (they arrived earlier), then those still in the inbox.
    async fn continue_as_new(
        &mut self,
        next: &reprise_history::WorkflowContinuedAsNew,
        carried: &[(reprise_history::SignalName, Payload)],
        parent: Option<&ParentRun>,
    ) -> Result<()> {
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
        let policy = self.parent_close_policy.clone();
        if !insert_run(
            &mut self.tx,
            &started,
            self.now,
            Some(self.run_id),
            policy.as_deref(),
            &self.limits,
        )
        .await?
        {
            return Err(Error::Conflict(format!(
                "workflow id {} is open in another run; cannot continue as new",
                self.workflow_id
            )));
        }
        for (name, payload) in carried {
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
            .bind(next.new_run_id.as_uuid())
            .bind(signal.name())
            .bind(signal.encode(&self.limits)?)
            .execute(&mut *self.tx)
            .await
            .map_err(Error::from_db)?;
        }
        sqlx::query(
            "UPDATE reprise.inbox SET run_id = $2 WHERE run_id = $1 AND kind = 'SignalReceived'",
        )
        .bind(self.run_id.as_uuid())
        .bind(next.new_run_id.as_uuid())
        .execute(&mut *self.tx)
        .await
        .map_err(Error::from_db)?;
        Ok(())
    }
}

/// How an execution's status closes its run; a continue-as-new takes along the signals the
/// code never received.
pub(crate) fn runs_closing(execution: &reprise_sdk::Execution) -> Closing<'_> {
    use reprise_sdk::RunStatus;
    match execution.status() {
        RunStatus::Running => Closing::Open,
        RunStatus::Completed(_) => Closing::Closed {
            status: "completed",
        },
        RunStatus::Failed(_) => Closing::Closed { status: "failed" },
        RunStatus::Cancelled => Closing::Closed {
            status: "cancelled",
        },
        RunStatus::Terminated => Closing::Closed {
            status: "terminated",
        },
        RunStatus::ContinuedAsNew(next) => Closing::ContinuedAsNew {
            next,
            carried: execution.unreceived_signals(),
        },
    }
}

/// Creates the tasks of scheduled activities, due now, in one statement (shared by steps and
/// resets: a fan-out of a hundred activities costs one round trip, not a hundred).
pub(super) async fn insert_activity_tasks(
    conn: &mut PgConnection,
    offset: i64,
    run_id: RunId,
    scheduled: &[(Seq, &reprise_history::ActivityScheduled)],
    limits: &Limits,
) -> Result<()> {
    if scheduled.is_empty() {
        return Ok(());
    }
    let mut seqs = Vec::with_capacity(scheduled.len());
    let mut queues = Vec::with_capacity(scheduled.len());
    let mut types = Vec::with_capacity(scheduled.len());
    let mut inputs = Vec::with_capacity(scheduled.len());
    let mut options = Vec::with_capacity(scheduled.len());
    let mut start_to_close = Vec::with_capacity(scheduled.len());
    let mut heartbeat = Vec::with_capacity(scheduled.len());
    let mut schedule_to_close = Vec::with_capacity(scheduled.len());
    for (seq, s) in scheduled {
        seqs.push(seq_param(*seq));
        queues.push(s.task_queue.as_str());
        types.push(s.activity_type.as_str());
        inputs.push(s.input.as_bytes());
        options.push(Payload::encode(&s.options, limits)?.as_bytes().to_vec());
        start_to_close.push(s.options.start_to_close.map(micros));
        heartbeat.push(s.options.heartbeat_timeout.map(micros));
        schedule_to_close.push(s.options.schedule_to_close.map(micros));
    }
    sqlx::query(concat!(
        "INSERT INTO reprise.activity_tasks (run_id, scheduled_seq, task_queue, activity_type, input, options,
             start_to_close_micros, heartbeat_timeout_micros, scheduled_at, visible_at, schedule_to_close_deadline)
         SELECT $2, t.seq, t.queue, t.kind, t.input, t.options, t.stc, t.hb, ", now!(), ", ", now!(), ",
                ", now!(), " + t.s2c * interval '1 microsecond'
           FROM UNNEST($3::bigint[], $4::text[], $5::text[], $6::bytea[], $7::bytea[], $8::bigint[], $9::bigint[], $10::bigint[])
             AS t(seq, queue, kind, input, options, stc, hb, s2c)"
    ))
    .bind(offset)
    .bind(run_id.as_uuid())
    .bind(seqs)
    .bind(queues)
    .bind(types)
    .bind(inputs)
    .bind(options)
    .bind(start_to_close)
    .bind(heartbeat)
    .bind(schedule_to_close)
    .execute(&mut *conn)
    .await
    .map_err(Error::from_db)?;
    Ok(())
}

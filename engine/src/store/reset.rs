//! Reset: a new run of a closed run's workflow that keeps its history up to a chosen step and
//! goes on live from there (for example after the bug that failed it is fixed).

use reprise_history::{
    ChainHash, Event, EventClass, EventKind, RunId, RunOrigin, Seq, TimerFired, WorkflowStarted,
};

use reprise_sdk::{Effects, RunIdentity};

use crate::error::{Error, Result};
use crate::store::bind::Bound;
use crate::store::inbox::{Delivery, deliver, timer_key};
use crate::store::rows::seq_param;
use crate::store::runs::append_events;
use crate::store::step::{InsertTasks, TaskRows};
use crate::store::{RUNS_CHANNEL, Store, TASKS_CHANNEL, notify, to_timestamp};

/// Inserts the run a reset starts (see `sql/insert_reset_run.sql`).
pub(crate) const INSERT_RESET_RUN_SQL: &str = include_str!("sql/insert_reset_run.sql");

/// The parameters of `insert_reset_run.sql`.
#[derive(Default)]
pub(crate) struct InsertResetRun<'a> {
    pub(crate) run_id: uuid::Uuid,
    pub(crate) workflow_id: &'a str,
    pub(crate) workflow_type: &'a str,
    pub(crate) task_queue: &'a str,
    pub(crate) head_seq: i64,
    pub(crate) head_hash: Vec<u8>,
    pub(crate) created_at: chrono::DateTime<chrono::Utc>,
    pub(crate) parent_run_id: Option<uuid::Uuid>,
    pub(crate) parent_started_seq: Option<i64>,
    pub(crate) source_run_id: uuid::Uuid,
}

impl<'a> InsertResetRun<'a> {
    /// Binds `$1` to `$10`.
    pub(crate) fn bind(self) -> Bound<'a> {
        Bound::new(INSERT_RESET_RUN_SQL)
            .bind(self.run_id)
            .bind(self.workflow_id)
            .bind(self.workflow_type)
            .bind(self.task_queue)
            .bind(self.head_seq)
            .bind(self.head_hash)
            .bind(self.created_at)
            .bind(self.parent_run_id)
            .bind(self.parent_started_seq)
            .bind(self.source_run_id)
    }
}

/// The activities and timers a history left open, by the seq that started them.
fn open_operations(events: &[Event]) -> Result<Vec<&Event>> {
    let mut open: Vec<&Event> = Vec::new();
    for event in events {
        let resolved = match &event.kind {
            EventKind::ActivityScheduled(_) | EventKind::TimerStarted(_) => {
                open.push(event);
                None
            }
            EventKind::ChildWorkflowStarted(_) => {
                return Err(Error::CannotReset(format!(
                    "seq {} starts a child workflow; resetting past child workflows is not supported",
                    event.seq
                )));
            }
            EventKind::ActivityCompleted(e) => Some(e.scheduled),
            EventKind::ActivityFailed(e) => Some(e.scheduled),
            EventKind::ActivityTimedOut(e) => Some(e.scheduled),
            EventKind::ActivityCancelled(e) => Some(e.scheduled),
            EventKind::TimerFired(e) => Some(e.started),
            EventKind::TimerCancelled(e) => Some(e.started),
            // A cancellation requested is still open until its outcome arrives. A local
            // activity's outcome is written by the step that schedules it (or the call was
            // dropped), so at a step's end none is open; its backoff's timer is a timer. The
            // rest opens and resolves nothing the new run inherits (an update accepted and
            // not completed is re-run by the new run's handler; its caller waited on the
            // source run, closed before any reset, and was told so; a retry with its id
            // reaches the new run, which runs it once).
            EventKind::WorkflowStarted(_)
            | EventKind::UpdateAccepted(_)
            | EventKind::UpdateCompleted(_)
            | EventKind::LocalActivityScheduled(_)
            | EventKind::LocalActivityBackoff(_)
            | EventKind::ActivityCancelRequested(_)
            | EventKind::SignalReceived(_)
            | EventKind::ChildWorkflowCompleted(_)
            | EventKind::ChildWorkflowFailed(_)
            | EventKind::ChildWorkflowCancelRequested(_)
            | EventKind::CancelRequested(_)
            | EventKind::MarkerRecorded(_)
            | EventKind::WorkflowCompleted(_)
            | EventKind::WorkflowFailed(_)
            | EventKind::WorkflowCancelled(_)
            | EventKind::WorkflowTerminated(_)
            | EventKind::WorkflowTimedOut(_)
            | EventKind::WorkflowContinuedAsNew(_) => None,
        };
        if let Some(seq) = resolved {
            open.retain(|e| e.seq != seq);
        }
    }
    Ok(open)
}

/// The new run's history: the source's events up to `to` (which must end a step), its first
/// event naming the new run and recording the reset.
fn reset_history(
    history: &[Event],
    source: RunId,
    to: Seq,
    new_run: RunId,
) -> Result<(Vec<Event>, WorkflowStarted)> {
    let last = history
        .last()
        .ok_or_else(|| Error::CannotReset("the run has no history".into()))?;
    if !last.kind.is_closing() {
        return Err(Error::CannotReset(
            "the run is still open; terminate or cancel it first".into(),
        ));
    }
    let keep = usize::try_from(to.get()).unwrap_or(usize::MAX);
    if keep == 0 || keep >= history.len() || history[keep].kind.class() != EventClass::Input {
        return Err(Error::CannotReset(format!(
            "seq {to} does not end a step: reset to the last event before an input (1 to {})",
            history.len() - 1
        )));
    }
    let mut events: Vec<Event> = history[..keep].to_vec();
    let EventKind::WorkflowStarted(started) = &events[0].kind else {
        return Err(Error::Corrupt {
            what: format!("history of run {source}"),
            reason: "no WorkflowStarted".into(),
        });
    };
    let started = WorkflowStarted {
        run_id: new_run,
        origin: RunOrigin::Reset {
            source_run_id: source,
            reset_to: to,
        },
        ..started.clone()
    };
    events[0].kind = EventKind::WorkflowStarted(started.clone());
    Ok((events, started))
}

impl Store {
    /// Starts a new run of a closed run's workflow whose history is the closed run's up to
    /// `to` (which must end a step: the event after it is an input), recorded as a reset.
    /// Activities and timers still open at that point are scheduled again.
    pub(crate) async fn reset(&self, source: RunId, to: Seq) -> Result<RunId> {
        let new_run = RunId::random();
        let (events, started) = reset_history(&self.history(source).await?, source, to, new_run)?;
        let open = open_operations(&events)?;

        let mut tx = self.pool().begin().await.map_err(Error::from_db)?;
        let now: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT reprise.db_now($1)")
            .bind(self.offset())
            .fetch_one(&mut *tx)
            .await
            .map_err(Error::from_db)?;
        let hash = crate::store::chain_head(&events, self.limits(), self.chain_key())?;
        let statement = InsertResetRun {
            run_id: *new_run.as_uuid(),
            workflow_id: started.workflow_id.as_str(),
            workflow_type: started.workflow_type.as_str(),
            task_queue: started.task_queue.as_str(),
            head_seq: seq_param(to),
            head_hash: hash.as_bytes().to_vec(),
            created_at: now,
            parent_run_id: started.parent.as_ref().map(|p| *p.run_id.as_uuid()),
            parent_started_seq: started.parent.as_ref().map(|p| seq_param(p.started_seq)),
            source_run_id: *source.as_uuid(),
        };
        let inserted = statement
            .bind()
            .query()
            .execute(&mut *tx)
            .await
            .map_err(Error::from_db)?
            .rows_affected();
        if inserted == 0 {
            return Err(Error::CannotReset(format!(
                "workflow {} has an open run",
                started.workflow_id
            )));
        }
        append_events(
            &mut tx,
            new_run,
            ChainHash::GENESIS,
            &events,
            self.limits(),
            self.chain_key(),
        )
        .await?;
        let open: Vec<Event> = open.into_iter().cloned().collect();
        let identity = RunIdentity {
            workflow_id: &started.workflow_id,
            run_id: new_run,
            parent: started.parent.as_ref(),
            trace: started.trace_context.as_ref(),
        };
        self.reschedule(&mut tx, identity, &open, to_timestamp(now))
            .await?;
        notify(&mut tx, RUNS_CHANNEL, "").await?;
        tx.commit().await.map_err(Error::from_db)?;
        Ok(new_run)
    }

    /// Schedules again the activities and timers a reset run inherits open (a timer fires when
    /// it would have; if that time has passed, at once), as their effects say.
    async fn reschedule(
        &self,
        tx: &mut sqlx::PgConnection,
        new_run: RunIdentity<'_>,
        open: &[Event],
        now: reprise_history::Timestamp,
    ) -> Result<()> {
        let effects = Effects::of_recorded(new_run, open);
        let mut tasks = TaskRows::default();
        for task in &effects.tasks {
            tasks.push(new_run.run_id, task, new_run.trace, self.limits())?;
            notify(&mut *tx, TASKS_CHANNEL, task.activity.task_queue.as_str()).await?;
        }
        if !tasks.is_empty() {
            let statement = InsertTasks {
                offset: self.offset(),
                tasks,
            };
            statement
                .bind()
                .query()
                .execute(&mut *tx)
                .await
                .map_err(Error::from_db)?;
        }
        for timer in &effects.timers {
            let started_at = open
                .iter()
                .find(|e| e.seq == timer.started)
                .map_or(now, |e| e.recorded_at);
            let fire_at = started_at
                .saturating_add(timer.fires_after)
                .as_unix_micros();
            let delay = std::time::Duration::from_micros(
                u64::try_from(fire_at - now.as_unix_micros()).unwrap_or(0),
            );
            let fired = EventKind::TimerFired(TimerFired {
                started: timer.started,
            });
            let delivery = Delivery {
                delay,
                ..Delivery::once(new_run.run_id, &fired, timer_key(timer.started))
            };
            deliver(&mut *tx, self.write_context(), delivery).await?;
        }
        Ok(())
    }
}

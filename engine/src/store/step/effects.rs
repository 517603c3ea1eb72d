//! A step's effects carried out in SQL, inside the batch's transaction: what
//! `reprise_sdk::Effects` says each decision does (the testkit carries out the same effects in
//! memory). Activity tasks are not here: the batch creates every step's tasks in its one
//! write statement.

use reprise_history::{ActivityCancelled, EventKind, RunId, RunState, Seq, TimerFired, Timestamp};
use reprise_sdk::{Close, Effects, NewChild, NextRun};
use sqlx::PgConnection;

use super::BatchRun;
use crate::error::{Error, Result};
use crate::store::deadlines::{ExecutionPolicy, inherit_policy, retry_failed, set_policy};
use crate::store::inbox::{Delivery, activity_key, child_key, deliver, insert_input, timer_key};
use crate::store::rows::seq_param;
use crate::store::runs::{RunToInsert, insert_run};
use crate::store::{WriteContext, request_cancel};

/// Writes what one run's step decided, inside the batch's transaction.
pub(super) struct RunWriter<'a> {
    pub(super) conn: &'a mut PgConnection,
    pub(super) cx: WriteContext,
    /// Database time of the batch's transaction.
    pub(super) now: Timestamp,
    pub(super) run: &'a BatchRun,
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
        let delivery = Delivery {
            delay,
            ..Delivery::once(self.run.run_id, input, key)
        };
        insert_input(self.conn, self.cx, delivery).await?;
        Ok(())
    }

    /// Carries out a step's effects but its close (activity tasks are created for the whole
    /// batch beforehand), in the order `Effects` lists them.
    pub(super) async fn carry_out(&mut self, effects: &Effects<'_>) -> Result<()> {
        for (scheduled, timeout) in effects.waiting_tasks() {
            sqlx::query(
                "UPDATE reprise.activity_tasks
                    SET schedule_to_start_micros = $3,
                        start_deadline = visible_at + $3 * interval '1 microsecond'
                  WHERE run_id = $1 AND scheduled_seq = $2",
            )
            .bind(self.run.run_id.as_uuid())
            .bind(seq_param(scheduled))
            .bind(crate::store::micros(timeout))
            .execute(&mut *self.conn)
            .await
            .map_err(Error::from_db)?;
        }
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
        crate::store::record_update_effects(self.conn, self.cx, self.run.run_id, effects).await?;
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

    /// Starts a child run in this transaction, with the deadlines and retry policy its parent
    /// gave it; if its workflow id is taken, or those options are unusable (a zero timeout),
    /// the child fails at once.
    async fn start_child(&mut self, child: &NewChild) -> Result<()> {
        let policy = ExecutionPolicy {
            run_timeout: child.run_timeout,
            execution_timeout: child.execution_timeout,
            retry: child.retry.clone(),
        };
        if let Err(refused) = policy.check() {
            let failed = child.refused(&refused.to_string());
            return self
                .deliver_to_self(&failed, child_key(child.started_seq), Default::default())
                .await;
        }
        let run = RunToInsert {
            parent_close_policy: Some(child.policy),
            ..RunToInsert::inherited(&child.started, self.now)
        };
        let started = insert_run(self.conn, run, &self.cx.limits, self.cx.key.as_ref()).await?;
        if started {
            if !policy.is_empty() {
                set_policy(self.conn, child.started.run_id, &policy, self.now).await?;
            }
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
            let child = RunId::from_uuid(child);
            request_cancel(self.conn, self.cx, child, "its parent asked").await?;
        }
        Ok(())
    }

    /// What closing the run takes beyond its status, before the batch closes it: the next
    /// run of a continue-as-new (which takes the signals still in the inbox) and the parent's
    /// inbox.
    pub(super) async fn close(&mut self, close: &Close<'_>) -> Result<()> {
        if let Some(next) = &close.next_run {
            // Closed first: the next run takes the workflow id, which only one open run
            // may hold.
            sqlx::query("UPDATE reprise.runs SET status = 'continued_as_new', closed_at = reprise.db_now($1) WHERE run_id = $2")
            .bind(self.cx.offset)
            .bind(self.run.run_id.as_uuid())
            .execute(&mut *self.conn)
            .await
            .map_err(Error::from_db)?;
            self.continue_as_new(next).await?;
        }
        if let EventKind::WorkflowFailed(failed) = &close.event.kind
            && retry_failed(
                self.conn,
                self.cx,
                self.run.run_id,
                RunState::Failed,
                &failed.failure.clone().retryable(true),
            )
            .await?
            .is_some()
        {
            // The workflow goes on in its next attempt: its parent hears when the last ends.
            return Ok(());
        }
        if let Some((parent, outcome)) = &close.parent_outcome {
            let key = child_key(parent.started_seq);
            deliver(
                self.conn,
                self.cx,
                Delivery::once(parent.run_id, outcome, key),
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
        let run = RunToInsert {
            previous_run_id: Some(run_id),
            parent_close_policy: self.run.parent_close_policy,
            ..RunToInsert::inherited(&next.started, self.now)
        };
        let inserted = insert_run(self.conn, run, &self.cx.limits, self.cx.key.as_ref()).await?;
        if !inserted {
            return Err(Error::Conflict(format!(
                "workflow id {} is open in another run; cannot continue as new",
                self.run.workflow_id
            )));
        }
        inherit_policy(self.conn, run_id, next_run, 1, self.now).await?;
        for (name, payload) in &next.carried {
            let signal = EventKind::SignalReceived(reprise_history::SignalReceived {
                name: name.clone(),
                payload: payload.clone(),
            });
            sqlx::query("INSERT INTO reprise.inbox (run_id, visible_at, kind, event) VALUES ($2, reprise.db_now($1) - interval '1 microsecond', $3, $4)")
            .bind(self.cx.offset)
            .bind(next_run.as_uuid())
            .bind(signal.name())
            .bind(signal.encode(&self.cx.limits)?)
            .execute(&mut *self.conn)
            .await
            .map_err(Error::from_db)?;
        }
        // Re-stamped to now, after the carried signals (now - 1 µs): the next run takes the
        // signals its predecessor's code had buffered first, then these, in arrival order.
        sqlx::query(
            "UPDATE reprise.inbox SET run_id = $3, visible_at = reprise.db_now($1)
              WHERE run_id = $2 AND kind = 'SignalReceived'",
        )
        .bind(self.cx.offset)
        .bind(run_id.as_uuid())
        .bind(next_run.as_uuid())
        .execute(&mut *self.conn)
        .await
        .map_err(Error::from_db)?;
        Ok(())
    }
}

//! The inbox: everything from outside a run lands here and marks the run ready.

use std::time::Duration;

use reprise_history::{EventKind, RunId, Seq};
use sqlx::PgConnection;

use crate::error::{Error, Result};
use crate::store::{RUNS_CHANNEL, Store, WriteContext, micros, notify};

/// An input on its way to a run's inbox.
pub(crate) struct Delivery<'a> {
    /// The run it is for.
    pub(crate) run_id: RunId,
    /// The input.
    pub(crate) input: &'a EventKind,
    /// With a key, a second input with the same key for the run is ignored.
    pub(crate) dedupe_key: Option<String>,
    /// Visible (due) this long after the transaction's database time.
    pub(crate) delay: Duration,
}

impl<'a> Delivery<'a> {
    /// An input due now, without a dedupe key (a signal).
    pub(crate) fn now(run_id: RunId, input: &'a EventKind) -> Delivery<'a> {
        Delivery {
            run_id,
            input,
            dedupe_key: None,
            delay: Duration::ZERO,
        }
    }

    /// An input due now, recorded once whatever number of times it is delivered.
    pub(crate) fn once(run_id: RunId, input: &'a EventKind, key: String) -> Delivery<'a> {
        Delivery {
            dedupe_key: Some(key),
            ..Delivery::now(run_id, input)
        }
    }
}

/// Puts an input in a run's inbox, visible after its delay, and marks the run ready then.
/// Returns false if its dedupe key was delivered before (nothing is written).
pub(crate) async fn deliver(
    conn: &mut PgConnection,
    cx: WriteContext,
    delivery: Delivery<'_>,
) -> Result<bool> {
    let (run_id, delay) = (delivery.run_id, delivery.delay);
    let inserted = insert_input(conn, cx, delivery).await?;
    if inserted {
        mark_ready(conn, cx, run_id, delay).await?;
    }
    Ok(inserted)
}

/// Puts an input in a run's inbox without marking the run ready: for the step of the run
/// itself, which recomputes its readiness as it releases the run.
pub(crate) async fn insert_input(
    conn: &mut PgConnection,
    cx: WriteContext,
    delivery: Delivery<'_>,
) -> Result<bool> {
    let Delivery {
        run_id,
        input,
        dedupe_key,
        delay,
    } = delivery;
    let bytes = input.encode(&cx.limits)?;
    let inserted = sqlx::query("INSERT INTO reprise.inbox (run_id, visible_at, kind, event, dedupe_key) VALUES ($2, reprise.db_now($1) + $3::bigint * interval '1 microsecond', $4, $5, $6) ON CONFLICT (run_id, dedupe_key) DO NOTHING")
    .bind(cx.offset)
    .bind(run_id.as_uuid())
    .bind(micros(delay))
    .bind(input.name())
    .bind(bytes)
    .bind(dedupe_key)
    .execute(&mut *conn)
    .await
    .map_err(Error::from_db)?
    .rows_affected()
        == 1;
    Ok(inserted)
}

/// Queues an open run to be stepped no later than `now + delay`, and wakes engines. A parked
/// run stays parked: only a build that may take it back queues it ([`Store::adopt_parked`]).
pub(crate) async fn mark_ready(
    conn: &mut PgConnection,
    cx: WriteContext,
    run_id: RunId,
    delay: Duration,
) -> Result<()> {
    // The run's row lock first: a batch stepping the run recomputes its readiness under the
    // same lock, so this waits for it and cannot be undone by it.
    // A delayed start's run is not due before its start, whatever arrives (`GREATEST`
    // passes over its NULL for every other run).
    sqlx::query("WITH run AS (SELECT run_id, start_at FROM reprise.runs
                       WHERE run_id = $2 AND status = 'running' AND parked_reason IS NULL
                         FOR NO KEY UPDATE)
         INSERT INTO reprise.ready_runs (run_id, ready_at)
         SELECT run_id, GREATEST(reprise.db_now($1) + $3::bigint * interval '1 microsecond', start_at)
           FROM run
         ON CONFLICT (run_id) DO UPDATE SET ready_at = LEAST(ready_runs.ready_at, EXCLUDED.ready_at)")
    .bind(cx.offset)
    .bind(run_id.as_uuid())
    .bind(micros(delay))
    .execute(&mut *conn)
    .await
    .map_err(Error::from_db)?;
    if delay.is_zero() {
        notify(conn, RUNS_CHANNEL, "").await?;
    }
    Ok(())
}

/// The dedupe key of an activity's outcome: one per activity, whatever the attempts.
pub(crate) fn activity_key(scheduled: Seq) -> String {
    format!("activity:{scheduled}")
}

/// The dedupe key of a timer's firing, also used to cancel it.
pub(crate) fn timer_key(started: Seq) -> String {
    format!("timer:{started}")
}

/// The dedupe key of a child's outcome in its parent's inbox.
pub(crate) fn child_key(started: Seq) -> String {
    format!("child:{started}")
}

impl Store {
    /// Puts an input in a run's inbox now (signals).
    pub(crate) async fn deliver_now(&self, run_id: RunId, input: &EventKind) -> Result<()> {
        let mut tx = self.pool().begin().await.map_err(Error::from_db)?;
        deliver(&mut tx, self.write_context(), Delivery::now(run_id, input)).await?;
        tx.commit().await.map_err(Error::from_db)
    }

    /// Queues an open run to be stepped now, with no input (see [`mark_ready`]).
    pub(crate) async fn queue_now(&self, run_id: RunId) -> Result<()> {
        let mut tx = self.pool().begin().await.map_err(Error::from_db)?;
        mark_ready(&mut tx, self.write_context(), run_id, Duration::ZERO).await?;
        tx.commit().await.map_err(Error::from_db)
    }
}

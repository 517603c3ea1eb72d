//! A run's life beyond its steps, shared by steps and operators: cancel requests, immediate
//! termination, and what happens to children when their parent closes.

use futures::future::BoxFuture;
use reprise_history::{
    CancelRequested, ChainHash, Event, EventKind, Failure, ParentClosePolicy, RunId, RunState, Seq,
    WorkflowTerminated,
};
use sqlx::{PgConnection, Row};

use crate::error::{Error, Result};
use crate::store::deadlines::retry_failed;
use crate::store::inbox::{Delivery, child_key, deliver};
use crate::store::rows::{links_from_rows, parent_close_policy, run_state, seq, seq_param};
use crate::store::runs::append_events;
use crate::store::{CLOSED_CHANNEL, Store, WriteContext, notify, to_datetime, to_timestamp};

/// The dedupe key of a cancel request: asking twice is asking once.
pub(crate) const CANCEL_KEY: &str = "cancel";

/// Asks a run to cancel (its code decides how).
pub(crate) async fn request_cancel(
    conn: &mut PgConnection,
    cx: WriteContext,
    run_id: RunId,
    reason: &str,
) -> Result<()> {
    let input = EventKind::CancelRequested(CancelRequested {
        reason: reason.to_string(),
    });
    let delivery = Delivery::once(run_id, &input, CANCEL_KEY.to_string());
    deliver(conn, cx, delivery).await?;
    Ok(())
}

/// Applies each open child's parent-close policy: terminate it, ask it to cancel, or leave it.
pub(super) fn close_children(
    conn: &mut PgConnection,
    cx: WriteContext,
    parent: RunId,
) -> BoxFuture<'_, Result<()>> {
    Box::pin(async move {
        let children = sqlx::query(
            "SELECT run_id, parent_close_policy FROM reprise.runs
              WHERE parent_run_id = $1 AND status = 'running' ORDER BY run_id",
        )
        .bind(parent.as_uuid())
        .fetch_all(&mut *conn)
        .await
        .map_err(Error::from_db)?;
        for child in children {
            let run_id = RunId::from_uuid(child.try_get("run_id").map_err(Error::from_db)?);
            let policy = parent_close_policy(&child)?;
            apply_parent_close_policy(conn, cx, run_id, policy).await?;
        }
        Ok(())
    })
}

/// Applies an open child's parent-close policy, its parent having closed.
pub(crate) fn apply_parent_close_policy(
    conn: &mut PgConnection,
    cx: WriteContext,
    child: RunId,
    policy: Option<ParentClosePolicy>,
) -> BoxFuture<'_, Result<()>> {
    Box::pin(async move {
        // A child always has a policy; a run without one is no child, and nothing applies.
        match policy {
            Some(ParentClosePolicy::Terminate) => {
                terminate_in(conn, cx, child, "its parent closed").await?;
            }
            Some(ParentClosePolicy::RequestCancel) => {
                request_cancel(conn, cx, child, "its parent closed").await?
            }
            Some(ParentClosePolicy::Abandon) | None => {}
        }
        Ok(())
    })
}

/// Terminates an open run at once, inside the caller's transaction: appends
/// `WorkflowTerminated` (after any batch stepping the run has committed: it locks the run),
/// closes the run, drops its pending work, tells its parent and applies its children's
/// policies. Returns false if the run was not open.
pub(crate) fn terminate_in<'a>(
    conn: &'a mut PgConnection,
    cx: WriteContext,
    run_id: RunId,
    reason: &'a str,
) -> BoxFuture<'a, Result<bool>> {
    let kind = EventKind::WorkflowTerminated(WorkflowTerminated {
        reason: reason.to_string(),
    });
    close_by_engine(conn, cx, run_id, kind, None)
}

/// Refuses to append to `run` without the chain key when its head link is keyed: the plain
/// link would read as a forgery to every process holding the key (a CLI or client run
/// without `REPRISE_CHAIN_KEY` terminating a run of a keyed deployment).
async fn refuse_if_keyed(
    conn: &mut PgConnection,
    run_id: RunId,
    head_seq: Seq,
    head_hash: &[u8],
) -> Result<()> {
    let rows = sqlx::query(
        "SELECT seq, event, hash FROM reprise.history
          WHERE run_id = $1 AND seq BETWEEN $2 - 1 AND $2 ORDER BY seq",
    )
    .bind(run_id.as_uuid())
    .bind(seq_param(head_seq))
    .fetch_all(&mut *conn)
    .await
    .map_err(Error::from_db)?;
    let links = links_from_rows(&rows)?;
    let (prev, head) = match links.as_slice() {
        [head] => (ChainHash::GENESIS, head),
        [prev, head] => (prev.hash, head),
        _ => return Ok(()),
    };
    if head.hash.as_bytes() == head_hash && prev.next(head.bytes) != head.hash {
        return Err(Error::InvalidConfig(format!(
            "the history of run {run_id} is keyed, and this process holds no chain key: set REPRISE_CHAIN_KEY (or Store::with_chain_key) to append to it"
        )));
    }
    Ok(())
}

/// Closes an open run with `closing`, an event its code did not decide (a termination, a
/// deadline), inside the caller's transaction: appends it (after any batch stepping the run
/// has committed: it locks the run), closes the run, drops its pending work, and then either
/// starts its retry (when `retry` is the failure it stands for and the workflow's retry
/// policy allows one) or tells its parent; its children's policies apply either way.
/// Returns false if the run was not open.
pub(crate) fn close_by_engine<'a>(
    conn: &'a mut PgConnection,
    cx: WriteContext,
    run_id: RunId,
    closing: EventKind,
    retry: Option<&'a Failure>,
) -> BoxFuture<'a, Result<bool>> {
    Box::pin(async move {
        let row = sqlx::query("SELECT reprise.db_now($1) AS now, status, head_seq, head_hash, parent_run_id, parent_started_seq
               FROM reprise.runs WHERE run_id = $2 FOR UPDATE")
        .bind(cx.offset)
        .bind(run_id.as_uuid())
        .fetch_optional(&mut *conn)
        .await
        .map_err(Error::from_db)?;
        let Some(row) = row else { return Ok(false) };
        if !run_state(&row, "status")?.is_open() {
            return Ok(false);
        }
        let status = RunState::closed_by(&closing)
            .ok_or_else(|| Error::Conflict(format!("{} does not close a run", closing.name())))?;
        let at = to_timestamp(row.try_get("now").map_err(Error::from_db)?);
        let head_hash: &[u8] = row.try_get("head_hash").map_err(Error::from_db)?;
        let head_seq = seq(&row, "head_seq")?;
        if cx.key.is_none() {
            refuse_if_keyed(conn, run_id, head_seq, head_hash).await?;
        }
        let event = Event {
            seq: head_seq.next(),
            recorded_at: at,
            kind: closing,
        };
        let hash = append_events(
            conn,
            run_id,
            ChainHash::from_slice(head_hash)?,
            std::slice::from_ref(&event),
            &cx.limits,
            cx.key.as_ref(),
        )
        .await?;
        mark_closed(conn, run_id, status, &event, hash).await?;
        let retried = match retry {
            Some(failure) => retry_failed(conn, cx, run_id, status, failure).await?,
            None => None,
        };
        if retried.is_none() {
            tell_parent(conn, cx, &row, &event.kind).await?;
        }
        close_children(conn, cx, run_id).await?;
        notify(conn, CLOSED_CHANNEL, &run_id.to_string()).await?;
        Ok(true)
    })
}

/// Closes a run the engine ended: status, head, and its pending work (queue entry, inbox,
/// tasks).
async fn mark_closed(
    conn: &mut PgConnection,
    run_id: RunId,
    status: RunState,
    event: &Event,
    hash: ChainHash,
) -> Result<()> {
    sqlx::query(
        "UPDATE reprise.runs SET status = $5, closed_at = $2, head_seq = $3, head_hash = $4,
                    applied_seq = $3, parked_reason = NULL, parked_at = NULL, parked_build = NULL
              WHERE run_id = $1",
    )
    .bind(run_id.as_uuid())
    .bind(to_datetime(event.recorded_at)?)
    .bind(seq_param(event.seq))
    .bind(hash.as_bytes().as_slice())
    .bind(status.as_str())
    .execute(&mut *conn)
    .await
    .map_err(Error::from_db)?;
    for table in [
        "DELETE FROM reprise.ready_runs WHERE run_id = $1",
        "DELETE FROM reprise.inbox WHERE run_id = $1",
        "DELETE FROM reprise.activity_tasks WHERE run_id = $1",
    ] {
        sqlx::query(table)
            .bind(run_id.as_uuid())
            .execute(&mut *conn)
            .await
            .map_err(Error::from_db)?;
    }
    Ok(())
}

/// Tells a closed child's parent (if any) how the child ended.
async fn tell_parent(
    conn: &mut PgConnection,
    cx: WriteContext,
    row: &sqlx::postgres::PgRow,
    closing: &EventKind,
) -> Result<()> {
    let parent: Option<uuid::Uuid> = row.try_get("parent_run_id").map_err(Error::from_db)?;
    let Some(parent) = parent else {
        return Ok(());
    };
    let started = seq(row, "parent_started_seq")?;
    if let Some(outcome) = closing.child_outcome(started) {
        let parent = RunId::from_uuid(parent);
        deliver(
            conn,
            cx,
            Delivery::once(parent, &outcome, child_key(started)),
        )
        .await?;
    }
    Ok(())
}

impl Store {
    /// Terminates the open run, in its own transaction.
    pub(crate) async fn terminate(&self, run_id: RunId, reason: &str) -> Result<bool> {
        let mut tx = self.pool().begin().await.map_err(Error::from_db)?;
        let done = terminate_in(&mut tx, self.write_context(), run_id, reason).await?;
        tx.commit().await.map_err(Error::from_db)?;
        Ok(done)
    }

    /// Asks the open run to cancel.
    pub(crate) async fn cancel(&self, run_id: RunId, reason: &str) -> Result<()> {
        let mut tx = self.pool().begin().await.map_err(Error::from_db)?;
        request_cancel(&mut tx, self.write_context(), run_id, reason).await?;
        tx.commit().await.map_err(Error::from_db)
    }
}

//! A workflow's deadlines and retries: the run timeout, the execution timeout and the retry
//! policy its starter set, kept on its runs' rows (not in history: the engine enforces them
//! and history records what happened, `WorkflowTimedOut` and `RunOrigin::Retried`).
//!
//! Both timeouts count from the first step: a delayed start's clock starts when it does. The
//! execution deadline is fixed at the first run's first step and kept by every run after it
//! (continue-as-new and retries); the run timeout starts again with each run. Engines sweep
//! the open runs whose deadline passed (`runs_deadlines`) and close each with
//! `WorkflowTimedOut`, as a termination would: its pending work dropped, its parent told, its
//! children handled by their parent-close policy.
//!
//! A run that fails, or reaches its run timeout, is retried by the policy when it allows
//! (its `max_attempts` and `non_retryable_error_types`; a workflow failure's own retryable
//! flag is not asked, since `WorkflowError::failed` records every failure as final):
//! a new run of the same workflow id, input and parent starts after the policy's backoff,
//! with its origin `Retried`. Its parent hears nothing until the last attempt ends. The
//! execution timeout is never retried, and a retry whose backoff would end past the
//! execution deadline does not happen.

use std::time::Duration;

use reprise_history::{
    Event, EventKind, Failure, RetryPolicy, RunId, RunOrigin, RunState, Seq, Timestamp,
    WorkflowStarted, WorkflowTimedOut, WorkflowTimeout,
};
use sqlx::{PgConnection, Row};

use crate::error::{Error, Result};
use crate::store::lifecycle::close_by_engine;
use crate::store::runs::{RunToInsert, insert_run};
use crate::store::{Store, WriteContext, micros, to_datetime, to_timestamp};

/// Deadlines and retries of a workflow, as its starter set them. Empty by default: no
/// deadline, no retry.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct ExecutionPolicy {
    /// Longest one run may take from its first step.
    pub(crate) run_timeout: Option<Duration>,
    /// Longest the workflow may take from its first run's first step, across
    /// continue-as-new and retries.
    pub(crate) execution_timeout: Option<Duration>,
    /// How a failed run is retried; `None`: it is not.
    pub(crate) retry: Option<RetryPolicy>,
}

impl ExecutionPolicy {
    /// Whether it sets nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.run_timeout.is_none() && self.execution_timeout.is_none() && self.retry.is_none()
    }

    /// Refuses a zero timeout (a deadline already passed when the run starts is a mistake,
    /// not a wish) and a retry policy that cannot be stored.
    pub(crate) fn check(&self) -> Result<()> {
        let problem = reprise_history::workflow_terms_problem(
            self.run_timeout,
            self.execution_timeout,
            self.retry.as_ref(),
        );
        match problem {
            Some(problem) => Err(Error::InvalidArgument(problem)),
            None => Ok(()),
        }
    }
}

/// Sets a new workflow's policy on its first run, whose first step is at `first_step`.
pub(crate) async fn set_policy(
    conn: &mut PgConnection,
    run_id: RunId,
    policy: &ExecutionPolicy,
    first_step: Timestamp,
) -> Result<()> {
    let execution_deadline = policy
        .execution_timeout
        .map(|t| first_step.saturating_add(t));
    let run_deadline = policy.run_timeout.map(|t| first_step.saturating_add(t));
    let deadline = match (run_deadline, execution_deadline) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let retry = policy
        .retry
        .as_ref()
        .map(serde_json::to_value)
        .transpose()
        .map_err(|e| Error::InvalidArgument(format!("the retry policy cannot be stored: {e}")))?;
    sqlx::query(
        "UPDATE reprise.runs SET run_timeout_micros = $2, execution_deadline = $3, deadline = $4,
                retry_policy = $5
          WHERE run_id = $1",
    )
    .bind(run_id.as_uuid())
    .bind(policy.run_timeout.map(micros))
    .bind(execution_deadline.map(to_datetime).transpose()?)
    .bind(deadline.map(to_datetime).transpose()?)
    .bind(retry)
    .execute(&mut *conn)
    .await
    .map_err(Error::from_db)?;
    Ok(())
}

/// Hands the policy of `previous` to `next`, the run after it (a continue-as-new: attempt 1;
/// a retry: the attempt after), whose first step is at `first_step`. Writes nothing when
/// `previous` has no policy.
pub(crate) async fn inherit_policy(
    conn: &mut PgConnection,
    previous: RunId,
    next: RunId,
    attempt: u32,
    first_step: Timestamp,
) -> Result<()> {
    sqlx::query(
        "UPDATE reprise.runs n
            SET run_timeout_micros = p.run_timeout_micros, execution_deadline = p.execution_deadline,
                retry_policy = p.retry_policy, attempt = $3,
                deadline = LEAST(p.execution_deadline,
                                 $4::timestamptz + p.run_timeout_micros * interval '1 microsecond')
           FROM reprise.runs p
          WHERE n.run_id = $2 AND p.run_id = $1
            AND (p.run_timeout_micros IS NOT NULL OR p.execution_deadline IS NOT NULL
                 OR p.retry_policy IS NOT NULL)",
    )
    .bind(previous.as_uuid())
    .bind(next.as_uuid())
    .bind(i32::try_from(attempt).unwrap_or(i32::MAX))
    .bind(to_datetime(first_step)?)
    .execute(&mut *conn)
    .await
    .map_err(Error::from_db)?;
    Ok(())
}

/// Starts the next attempt of a run that just closed as `status` with `failure`, if its
/// workflow's retry policy allows one before the execution deadline. A run with a policy is
/// closed here first (only one open run may hold the workflow id); one without costs this
/// one statement. Returns the new run's id, or `None` when the run is not retried (and its
/// parent should hear).
pub(crate) async fn retry_failed(
    conn: &mut PgConnection,
    cx: WriteContext,
    run_id: RunId,
    status: RunState,
    failure: &Failure,
) -> Result<Option<RunId>> {
    let row = sqlx::query(
        "UPDATE reprise.runs SET status = $3, closed_at = COALESCE(closed_at, reprise.db_now($1))
          WHERE run_id = $2 AND retry_policy IS NOT NULL
      RETURNING retry_policy, attempt, execution_deadline, parent_close_policy,
                reprise.db_now($1) AS now",
    )
    .bind(cx.offset)
    .bind(run_id.as_uuid())
    .bind(status.as_str())
    .fetch_optional(&mut *conn)
    .await
    .map_err(Error::from_db)?;
    let Some(row) = row else { return Ok(None) };
    let corrupt = |reason: String| Error::Corrupt {
        what: format!("retry policy of run {run_id}"),
        reason,
    };
    let policy: serde_json::Value = row.try_get("retry_policy").map_err(Error::from_db)?;
    let policy: RetryPolicy = serde_json::from_value(policy).map_err(|e| corrupt(e.to_string()))?;
    let attempt: i32 = row.try_get("attempt").map_err(Error::from_db)?;
    let attempt = u32::try_from(attempt).map_err(|_| corrupt(format!("attempt {attempt}")))?;
    if !policy.retries(failure, attempt) {
        return Ok(None);
    }
    let now = to_timestamp(row.try_get("now").map_err(Error::from_db)?);
    let first_step = now.saturating_add(policy.backoff(attempt, rand::random::<f64>()));
    let execution_deadline: Option<chrono::DateTime<chrono::Utc>> =
        row.try_get("execution_deadline").map_err(Error::from_db)?;
    if execution_deadline.is_some_and(|d| to_timestamp(d) <= first_step) {
        return Ok(None);
    }
    let first = first_event(conn, run_id, cx).await?;
    let next = WorkflowStarted {
        run_id: RunId::random(),
        origin: RunOrigin::Retried {
            previous_run_id: run_id,
            attempt: attempt + 1,
        },
        ..first
    };
    let policy_name: Option<String> = row.try_get("parent_close_policy").map_err(Error::from_db)?;
    let run = RunToInsert {
        previous_run_id: Some(run_id),
        parent_close_policy: policy_name
            .map(|name| reprise_history::ParentClosePolicy::parse(&name))
            .transpose()?,
        start_at: Some(first_step),
        ..RunToInsert::inherited(&next, first_step)
    };
    if !insert_run(conn, run, &cx.limits, cx.key.as_ref()).await? {
        // Another run of the id opened meanwhile (a start that reused it): that one goes on.
        return Ok(None);
    }
    inherit_policy(conn, run_id, next.run_id, attempt + 1, first_step).await?;
    Ok(Some(next.run_id))
}

/// The `WorkflowStarted` of a run, read back for its retry.
async fn first_event(
    conn: &mut PgConnection,
    run_id: RunId,
    cx: WriteContext,
) -> Result<WorkflowStarted> {
    let bytes: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT event FROM reprise.history WHERE run_id = $1 AND seq = $2")
            .bind(run_id.as_uuid())
            .bind(crate::store::rows::seq_param(Seq::FIRST))
            .fetch_optional(&mut *conn)
            .await
            .map_err(Error::from_db)?;
    let corrupt = |reason: &str| Error::Corrupt {
        what: format!("first event of run {run_id}"),
        reason: reason.to_string(),
    };
    let bytes = bytes.ok_or_else(|| corrupt("is missing"))?;
    match Event::decode(&bytes, &cx.limits)?.kind {
        EventKind::WorkflowStarted(started) => Ok(started),
        _ => Err(corrupt("is not WorkflowStarted")),
    }
}

impl Store {
    /// Closes up to `limit` open runs whose deadline passed, each with `WorkflowTimedOut`
    /// (retrying a run timeout when the policy allows), in one transaction; returns how many.
    /// Runs another engine holds are skipped (`SKIP LOCKED`) and found at the next sweep.
    pub(crate) async fn time_out_runs(&self, limit: i64) -> Result<usize> {
        let mut tx = self.pool().begin().await.map_err(Error::from_db)?;
        let rows = sqlx::query(
            "SELECT run_id, workflow_type, execution_deadline IS NOT NULL
                            AND execution_deadline <= reprise.db_now($1) AS execution
               FROM reprise.runs
              WHERE status = 'running' AND deadline <= reprise.db_now($1)
              ORDER BY deadline LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .bind(self.offset())
        .bind(limit)
        .fetch_all(&mut *tx)
        .await
        .map_err(Error::from_db)?;
        let cx = self.write_context();
        let mut closed = Vec::with_capacity(rows.len());
        for row in &rows {
            let run_id = RunId::from_uuid(row.try_get("run_id").map_err(Error::from_db)?);
            let execution: bool = row.try_get("execution").map_err(Error::from_db)?;
            let timeout = if execution {
                WorkflowTimeout::Execution
            } else {
                WorkflowTimeout::Run
            };
            let kind = EventKind::WorkflowTimedOut(WorkflowTimedOut { timeout });
            let failure = timeout.failure();
            if close_by_engine(&mut tx, cx, run_id, kind, Some(&failure)).await? {
                closed.push(
                    row.try_get::<String, _>("workflow_type")
                        .map_err(Error::from_db)?,
                );
            }
        }
        tx.commit().await.map_err(Error::from_db)?;
        for workflow_type in &closed {
            self.metrics()
                .run_closed(workflow_type, reprise_history::RunState::TimedOut);
        }
        Ok(rows.len())
    }

    /// Which attempt of its workflow a run is (from 1) and when the engine closes it if it
    /// is still open (`None`: no deadline).
    pub(crate) async fn attempt_and_deadline(
        &self,
        run_id: RunId,
    ) -> Result<(u32, Option<Timestamp>)> {
        let row = sqlx::query("SELECT attempt, deadline FROM reprise.runs WHERE run_id = $1")
            .bind(run_id.as_uuid())
            .fetch_optional(self.pool())
            .await
            .map_err(Error::from_db)?;
        let Some(row) = row else {
            return Ok((1, None));
        };
        let attempt: i32 = row.try_get("attempt").map_err(Error::from_db)?;
        let attempt = u32::try_from(attempt).map_err(|_| Error::Corrupt {
            what: format!("run {run_id}"),
            reason: format!("attempt {attempt}"),
        })?;
        let deadline: Option<chrono::DateTime<chrono::Utc>> =
            row.try_get("deadline").map_err(Error::from_db)?;
        Ok((attempt, deadline.map(to_timestamp)))
    }

    /// How long until the earliest deadline of an open run (zero if one passed); `None`
    /// when no open run has one.
    pub(crate) async fn next_deadline(&self) -> Result<Option<Duration>> {
        let seconds: Option<f64> = sqlx::query_scalar(
            "SELECT GREATEST(EXTRACT(EPOCH FROM (MIN(deadline) - reprise.db_now($1))), 0)::float8
               FROM reprise.runs WHERE status = 'running' AND deadline IS NOT NULL",
        )
        .bind(self.offset())
        .fetch_one(self.pool())
        .await
        .map_err(Error::from_db)?;
        Ok(seconds.and_then(|s| Duration::try_from_secs_f64(s).ok()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_timeouts_and_unusable_retry_policies_are_refused() {
        let zero = ExecutionPolicy {
            run_timeout: Some(Duration::ZERO),
            ..ExecutionPolicy::default()
        };
        assert!(
            zero.check()
                .unwrap_err()
                .to_string()
                .contains("run timeout")
        );
        let zero = ExecutionPolicy {
            execution_timeout: Some(Duration::ZERO),
            ..ExecutionPolicy::default()
        };
        assert!(
            zero.check()
                .unwrap_err()
                .to_string()
                .contains("execution timeout")
        );
        for retry in [
            RetryPolicy {
                max_attempts: Some(0),
                ..RetryPolicy::default()
            },
            RetryPolicy {
                backoff_multiplier: f64::NAN,
                ..RetryPolicy::default()
            },
            RetryPolicy {
                jitter: 2.0,
                ..RetryPolicy::default()
            },
        ] {
            let policy = ExecutionPolicy {
                retry: Some(retry.clone()),
                ..ExecutionPolicy::default()
            };
            assert!(policy.check().is_err(), "{retry:?}");
        }
        let fine = ExecutionPolicy {
            run_timeout: Some(Duration::from_secs(1)),
            execution_timeout: Some(Duration::from_secs(2)),
            retry: Some(RetryPolicy::default()),
        };
        fine.check().unwrap();
        assert!(ExecutionPolicy::default().is_empty());
        assert!(!fine.is_empty());
    }
}

//! Bulk operations (migration 0013): one action over every run a filter matches, a chunk at a
//! time. A chunk's actions and the batch's cursor commit in one transaction under the batch
//! row's lock: interrupted anywhere, a batch resumes where it stopped, from any process, and
//! no run is handled twice (a signal's inbox dedupe key names the batch, so even a chunk
//! retried after a lost commit answer signals each run once).

use reprise_history::{
    CancelRequested, EventKind, Payload, RunId, RunState, SignalName, SignalReceived, TaskQueue,
    Timestamp, WorkflowType,
};
use serde_json::{Value, json};
use sqlx::{PgConnection, Row};

use crate::error::{Error, Result};
use crate::store::inbox::{Delivery, deliver};
use crate::store::lifecycle::{CANCEL_KEY, terminate_in};
use crate::store::listing::{Order, RunCursor, RunFilter, RunSummary, list_in};
use crate::store::operator::retry_parked_in;
use crate::store::{Store, WriteContext, to_datetime, to_timestamp};

/// What a bulk operation does to each run it matches.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum BulkAction {
    /// Ask each open run to cancel (asking twice is asking once).
    Cancel {
        /// Why, recorded in each run's `CancelRequested`.
        reason: String,
    },
    /// Terminate each open run.
    Terminate {
        /// Why, recorded in each run's `WorkflowTerminated`.
        reason: String,
    },
    /// Queue each parked run again (see [`crate::Client::retry_parked`]).
    RetryParked,
    /// Send each open run this signal: a broadcast, delivered once per run per batch.
    Signal {
        /// The signal's name.
        name: SignalName,
        /// Its payload, encoded with the client's codecs.
        payload: Payload,
    },
}

impl BulkAction {
    /// The stored name: `cancel`, `terminate`, `retry_parked`, `signal`.
    pub fn name(&self) -> &'static str {
        match self {
            BulkAction::Cancel { .. } => "cancel",
            BulkAction::Terminate { .. } => "terminate",
            BulkAction::RetryParked => "retry_parked",
            BulkAction::Signal { .. } => "signal",
        }
    }

    /// The runs of `filter` it can act on: open ones, and for a retry, parked ones; `None`
    /// when the filter asks for closed runs only, of which it can act on none.
    pub(crate) fn covers(&self, filter: &RunFilter) -> Option<RunFilter> {
        if filter.status.is_some_and(|s| s != RunState::Running) {
            return None;
        }
        let mut covered = filter.clone();
        covered.status = Some(RunState::Running);
        if let BulkAction::RetryParked = self {
            covered.parked = true;
        }
        Some(covered)
    }
}

/// A bulk operation and how far it has come.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchProgress {
    /// Its id: resume it with [`crate::Client::run_batch`].
    pub batch_id: uuid::Uuid,
    /// What it does.
    pub action: BulkAction,
    /// The runs it covers (open ones, created before it was).
    pub filter: RunFilter,
    /// How many runs matched when it was created.
    pub matched: u64,
    /// Runs it acted on.
    pub done: u64,
    /// Runs it found nothing to do to (closed meanwhile, asked to cancel already, not parked
    /// any more).
    pub skipped: u64,
    /// Runs where the action failed; [`BatchProgress::last_error`] says why for the last.
    pub failed: u64,
    /// The last failure.
    pub last_error: Option<String>,
    /// When it was created (database time).
    pub created_at: Timestamp,
    /// When it last moved on.
    pub updated_at: Timestamp,
    /// When it finished, if it has.
    pub finished_at: Option<Timestamp>,
}

impl BatchProgress {
    /// Runs handled so far, whatever became of them.
    pub fn handled(&self) -> u64 {
        self.done + self.skipped + self.failed
    }
}

/// A filter as stored in `batches.filter`.
pub(crate) fn filter_json(filter: &RunFilter) -> Value {
    json!({
        "status": filter.status.map(RunState::as_str),
        "parked": filter.parked,
        "workflow_type": filter.workflow_type.as_ref().map(WorkflowType::as_str),
        "workflow_id_prefix": filter.workflow_id_prefix,
        "task_queue": filter.task_queue.as_ref().map(TaskQueue::as_str),
        "created_from": filter.created_from.map(Timestamp::as_unix_micros),
        "created_before": filter.created_before.map(Timestamp::as_unix_micros),
    })
}

/// Reads a filter [`filter_json`] wrote.
pub(crate) fn filter_from_json(value: &Value) -> Result<RunFilter> {
    let corrupt = |reason: String| Error::Corrupt {
        what: "batch filter".to_string(),
        reason,
    };
    let text = |field: &str| -> Result<Option<String>> {
        match value.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(corrupt(format!("{field} is {other}"))),
        }
    };
    let micros = |field: &str| -> Result<Option<Timestamp>> {
        match value.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_i64()
                .map(|m| Some(Timestamp::from_unix_micros(m)))
                .ok_or_else(|| corrupt(format!("{field} is {v}"))),
        }
    };
    Ok(RunFilter {
        status: text("status")?
            .map(|s| RunState::parse(&s).map_err(|e| corrupt(e.to_string())))
            .transpose()?,
        parked: value
            .get("parked")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        workflow_type: text("workflow_type")?.map(WorkflowType::new).transpose()?,
        workflow_id_prefix: text("workflow_id_prefix")?,
        task_queue: text("task_queue")?.map(TaskQueue::new).transpose()?,
        created_from: micros("created_from")?,
        created_before: micros("created_before")?,
    })
}

/// The columns [`batch_row`] reads (a macro, so that statements stay `&'static str`).
macro_rules! batch_columns {
    () => {
        "batch_id, action, filter, reason, signal_name, signal_payload, created_at, updated_at,
         finished_at, cursor_created_at, cursor_run_id, matched, done, skipped, failed,
         last_error"
    };
}

fn count(row: &sqlx::postgres::PgRow, column: &str) -> Result<u64> {
    let n: i64 = row.try_get(column).map_err(Error::from_db)?;
    u64::try_from(n).map_err(|_| Error::Corrupt {
        what: format!("batch {column}"),
        reason: format!("{n} is negative"),
    })
}

/// A batch row and its cursor.
fn batch_row(row: &sqlx::postgres::PgRow) -> Result<(BatchProgress, Option<RunCursor>)> {
    let batch_id: uuid::Uuid = row.try_get("batch_id").map_err(Error::from_db)?;
    let action: String = row.try_get("action").map_err(Error::from_db)?;
    let reason: String = row.try_get("reason").map_err(Error::from_db)?;
    let action = match action.as_str() {
        "cancel" => BulkAction::Cancel { reason },
        "terminate" => BulkAction::Terminate { reason },
        "retry_parked" => BulkAction::RetryParked,
        "signal" => {
            let name: Option<String> = row.try_get("signal_name").map_err(Error::from_db)?;
            let bytes: Option<Vec<u8>> = row.try_get("signal_payload").map_err(Error::from_db)?;
            BulkAction::Signal {
                name: SignalName::new(name.unwrap_or_default())?,
                payload: Payload::from_bytes(bytes.unwrap_or_default())?,
            }
        }
        other => {
            return Err(Error::Corrupt {
                what: format!("batch {batch_id}"),
                reason: format!("unknown action {other:?}"),
            });
        }
    };
    let filter: Value = row.try_get("filter").map_err(Error::from_db)?;
    let time = |column| {
        row.try_get::<Option<chrono::DateTime<chrono::Utc>>, _>(column)
            .map_err(Error::from_db)
            .map(|t| t.map(to_timestamp))
    };
    let cursor_run: Option<uuid::Uuid> = row.try_get("cursor_run_id").map_err(Error::from_db)?;
    let cursor = time("cursor_created_at")?
        .zip(cursor_run)
        .map(|(at, run)| RunCursor::at(at, RunId::from_uuid(run)));
    let progress = BatchProgress {
        batch_id,
        action,
        filter: filter_from_json(&filter)?,
        matched: count(row, "matched")?,
        done: count(row, "done")?,
        skipped: count(row, "skipped")?,
        failed: count(row, "failed")?,
        last_error: row.try_get("last_error").map_err(Error::from_db)?,
        created_at: to_timestamp(row.try_get("created_at").map_err(Error::from_db)?),
        updated_at: to_timestamp(row.try_get("updated_at").map_err(Error::from_db)?),
        finished_at: time("finished_at")?,
    };
    Ok((progress, cursor))
}

/// What one run's action came to.
enum Handled {
    Done,
    Skipped,
}

/// Applies the action to one run, in the caller's transaction.
async fn act(
    conn: &mut PgConnection,
    cx: WriteContext,
    batch_id: uuid::Uuid,
    action: &BulkAction,
    run: &RunSummary,
) -> Result<Handled> {
    let handled = |acted: bool| {
        if acted {
            Handled::Done
        } else {
            Handled::Skipped
        }
    };
    if !run.status.is_open() {
        return Ok(Handled::Skipped);
    }
    match action {
        BulkAction::Cancel { reason } => {
            let input = EventKind::CancelRequested(CancelRequested {
                reason: reason.clone(),
            });
            let delivery = Delivery::once(run.run_id, &input, CANCEL_KEY.to_string());
            Ok(handled(deliver(conn, cx, delivery).await?))
        }
        BulkAction::Terminate { reason } => {
            Ok(handled(terminate_in(conn, cx, run.run_id, reason).await?))
        }
        BulkAction::RetryParked => Ok(handled(retry_parked_in(conn, cx.offset, run.run_id).await?)),
        BulkAction::Signal { name, payload } => {
            let input = EventKind::SignalReceived(SignalReceived {
                name: name.clone(),
                payload: payload.clone(),
            });
            let delivery = Delivery::once(run.run_id, &input, format!("batch:{batch_id}"));
            Ok(handled(deliver(conn, cx, delivery).await?))
        }
    }
}

impl Store {
    /// Records a bulk operation over the open runs `filter` matches that exist now, with
    /// how many they are; nothing is done to them yet.
    pub(crate) async fn create_batch(
        &self,
        filter: &RunFilter,
        action: &BulkAction,
    ) -> Result<BatchProgress> {
        let now = self.now().await?;
        let (mut filter, nothing) = match action.covers(filter) {
            Some(covered) => (covered, false),
            None => (filter.clone(), true),
        };
        filter.created_before = Some(filter.created_before.map_or(now, |t| t.min(now)));
        let matched = if nothing {
            0
        } else {
            self.count_matching(&filter).await?
        };
        let (signal_name, signal_payload, reason) = match action {
            BulkAction::Signal { name, payload } => {
                (Some(name.as_str()), Some(payload.as_bytes()), "")
            }
            BulkAction::Cancel { reason } | BulkAction::Terminate { reason } => {
                (None, None, reason.as_str())
            }
            BulkAction::RetryParked => (None, None, ""),
        };
        let sql = concat!(
            "INSERT INTO reprise.batches (batch_id, action, filter, reason, signal_name,
                     signal_payload, created_at, updated_at, matched)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8) RETURNING ",
            batch_columns!(),
            ""
        );
        let row = sqlx::query(sql)
            .bind(uuid::Uuid::new_v4())
            .bind(action.name())
            .bind(filter_json(&filter))
            .bind(reason)
            .bind(signal_name)
            .bind(signal_payload)
            .bind(to_datetime(now)?)
            .bind(i64::try_from(matched).unwrap_or(i64::MAX))
            .fetch_one(self.pool())
            .await
            .map_err(Error::from_db)?;
        Ok(batch_row(&row)?.0)
    }

    /// A batch's progress.
    pub(crate) async fn batch(&self, batch_id: uuid::Uuid) -> Result<BatchProgress> {
        let sql = concat!(
            "SELECT ",
            batch_columns!(),
            " FROM reprise.batches WHERE batch_id = $1"
        );
        let row = sqlx::query(sql)
            .bind(batch_id)
            .fetch_optional(self.pool())
            .await
            .map_err(Error::from_db)?
            .ok_or(Error::UnknownBatch { batch_id })?;
        Ok(batch_row(&row)?.0)
    }

    /// The latest batches, newest first.
    pub(crate) async fn batches(&self, limit: i64) -> Result<Vec<BatchProgress>> {
        let sql = concat!(
            "SELECT ",
            batch_columns!(),
            " FROM reprise.batches ORDER BY created_at DESC LIMIT $1"
        );
        sqlx::query(sql)
            .bind(limit)
            .fetch_all(self.pool())
            .await
            .map_err(Error::from_db)?
            .iter()
            .map(|row| Ok(batch_row(row)?.0))
            .collect()
    }

    /// Handles the batch's next `chunk` runs and moves its cursor past them, in one
    /// transaction; marks it finished when no run is left. Returns its progress after.
    pub(crate) async fn batch_chunk(
        &self,
        batch_id: uuid::Uuid,
        chunk: i64,
    ) -> Result<BatchProgress> {
        let mut tx = self.pool().begin().await.map_err(Error::from_db)?;
        let sql = concat!(
            "SELECT ",
            batch_columns!(),
            " FROM reprise.batches WHERE batch_id = $1 FOR NO KEY UPDATE"
        );
        let row = sqlx::query(sql)
            .bind(batch_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(Error::from_db)?
            .ok_or(Error::UnknownBatch { batch_id })?;
        let (mut progress, cursor) = batch_row(&row)?;
        if progress.finished_at.is_some() {
            return Ok(progress);
        }
        // A filter of closed runs (kept as given, to show it) has nothing to act on.
        let (runs, next) = match progress.action.covers(&progress.filter) {
            Some(_) => {
                list_in(&mut tx, &progress.filter, cursor, chunk, Order::OldestFirst).await?
            }
            None => (Vec::new(), None),
        };
        let cx = self.write_context();
        // In run id order, as a worker's outcomes lock runs: no lock cycle with them or with
        // another batch. (A termination also locks children and a parent, in its own order:
        // a deadlock is possible then, PostgreSQL ends it, and the chunk is tried again.)
        let mut ordered: Vec<&RunSummary> = runs.iter().collect();
        ordered.sort_by_key(|r| r.run_id);
        for run in ordered {
            // Each run in a savepoint: one that cannot be handled is counted and reported,
            // and the others go on.
            let mut one = sqlx::Acquire::begin(&mut *tx)
                .await
                .map_err(Error::from_db)?;
            match act(&mut one, cx, batch_id, &progress.action, run).await {
                Ok(handled) => {
                    one.commit().await.map_err(Error::from_db)?;
                    match handled {
                        Handled::Done => progress.done += 1,
                        Handled::Skipped => progress.skipped += 1,
                    }
                }
                Err(e) if e.is_retryable() => return Err(e),
                Err(e) => {
                    one.rollback().await.map_err(Error::from_db)?;
                    progress.failed += 1;
                    progress.last_error = Some(format!("run {}: {e}", run.run_id));
                }
            }
        }
        let cursor = runs.last().map(RunCursor::after).or(cursor);
        let sql = concat!(
            "UPDATE reprise.batches SET done = $2, skipped = $3, failed = $4, last_error = $5,
                    cursor_created_at = $6, cursor_run_id = $7, updated_at = reprise.db_now($8),
                    finished_at = CASE WHEN $9 THEN reprise.db_now($8) END
              WHERE batch_id = $1 RETURNING ",
            batch_columns!(),
            ""
        );
        let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let row = sqlx::query(sql)
            .bind(batch_id)
            .bind(as_i64(progress.done))
            .bind(as_i64(progress.skipped))
            .bind(as_i64(progress.failed))
            .bind(&progress.last_error)
            .bind(cursor.map(|c| to_datetime(c.created_at())).transpose()?)
            .bind(cursor.map(|c| *c.run_id().as_uuid()))
            .bind(self.offset())
            .bind(next.is_none())
            .fetch_one(&mut *tx)
            .await
            .map_err(Error::from_db)?;
        tx.commit().await.map_err(Error::from_db)?;
        Ok(batch_row(&row)?.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_reads_back_what_was_stored() {
        let filter = RunFilter {
            status: Some(RunState::Running),
            parked: true,
            workflow_type: WorkflowType::new("checkout").ok(),
            workflow_id_prefix: Some("order-".to_string()),
            task_queue: TaskQueue::new("payments").ok(),
            created_from: Some(Timestamp::from_unix_micros(1)),
            created_before: Some(Timestamp::from_unix_micros(2)),
        };
        assert_eq!(filter_from_json(&filter_json(&filter)).ok(), Some(filter));
        assert_eq!(
            filter_from_json(&filter_json(&RunFilter::default())).ok(),
            Some(RunFilter::default())
        );
    }

    #[test]
    fn a_stored_filter_of_the_wrong_shape_is_corrupt() {
        for bad in [
            json!({ "status": "sleeping" }),
            json!({ "workflow_type": 7 }),
            json!({ "created_from": "yesterday" }),
        ] {
            assert!(
                matches!(filter_from_json(&bad), Err(Error::Corrupt { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn bulk_actions_only_touch_open_runs() {
        let closed = RunFilter {
            status: Some(RunState::Completed),
            ..RunFilter::default()
        };
        assert_eq!(BulkAction::RetryParked.covers(&closed), None);
        let retried = BulkAction::RetryParked.covers(&RunFilter::default());
        assert!(retried.is_some_and(|f| f.parked && f.status == Some(RunState::Running)));
        let terminate = BulkAction::Terminate {
            reason: String::new(),
        };
        let any = terminate.covers(&RunFilter::default());
        assert_eq!(any.and_then(|f| f.status), Some(RunState::Running));
    }
}

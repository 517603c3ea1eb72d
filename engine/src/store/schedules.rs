//! Schedules (`reprise.schedules`, migration 0008): creating and changing them, and firing
//! them. A firing happens in one transaction that holds the schedule's row: the pure tick
//! of `reprise-schedule` decides, this module starts the runs (ids derived from the
//! scheduled time, never reused), asks or terminates the run the overlap policy names, and
//! writes the state back. A tick that dies rolls back whole; another engine redoes it.

use std::time::Duration;

use reprise_history::{
    Payload, Priority, RunId, ScheduleId, TaskQueue, Timestamp, WorkflowId, WorkflowType,
};
use reprise_schedule::{
    Firing, Instruction, OverlapPolicy, Schedule, ScheduleAction, SchedulePolicies, ScheduleSpec,
    ScheduleState, StartResult, Tick,
};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use crate::error::{Error, Result};
use crate::store::bind::Bound;
use crate::store::deadlines::{ExecutionPolicy, set_policy};
use crate::store::lifecycle::{request_cancel, terminate_in};
use crate::store::notify::SCHEDULES_CHANNEL;
use crate::store::runs::{RunToInsert, insert_run, tx_now};
use crate::store::{Store, WriteContext, notify, to_datetime, to_timestamp};

pub(crate) const INSERT_SCHEDULE_SQL: &str = include_str!("sql/insert_schedule.sql");
pub(crate) const REPLACE_SCHEDULE_SQL: &str = include_str!("sql/replace_schedule.sql");

/// The parameters of `insert_schedule.sql` and `replace_schedule.sql`.
#[derive(Default)]
pub(crate) struct ScheduleRow {
    schedule_id: String,
    spec: String,
    policies: String,
    workflow_type: String,
    task_queue: String,
    input: Vec<u8>,
    priority: i16,
    fairness_key: Option<String>,
    state: String,
    next_fire_at: Option<chrono::DateTime<chrono::Utc>>,
    now: chrono::DateTime<chrono::Utc>,
    waiting_on: Option<String>,
    start_terms: Option<String>,
}

/// The deadlines and retry policy of the workflows a schedule starts, as stored.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct StartTerms {
    #[serde(default)]
    run_timeout: Option<std::time::Duration>,
    #[serde(default)]
    execution_timeout: Option<std::time::Duration>,
    #[serde(default)]
    retry: Option<reprise_history::RetryPolicy>,
}

/// What a schedule's action sets of its workflows' deadlines and retries.
fn start_terms(action: &ScheduleAction) -> ExecutionPolicy {
    ExecutionPolicy {
        run_timeout: action.run_timeout,
        execution_timeout: action.execution_timeout,
        retry: action.retry.clone(),
    }
}

impl ScheduleRow {
    fn new(
        id: &ScheduleId,
        schedule: &Schedule,
        state: &ScheduleState,
        now: Timestamp,
    ) -> Result<ScheduleRow> {
        let action = &schedule.action;
        Ok(ScheduleRow {
            schedule_id: id.to_string(),
            spec: to_json(&schedule.spec)?,
            policies: to_json(&schedule.policies)?,
            workflow_type: action.workflow_type.to_string(),
            task_queue: action.task_queue.to_string(),
            input: action.input.as_bytes().to_vec(),
            priority: i16::from(action.priority.get()),
            fairness_key: action.fairness_key.clone(),
            state: to_json(state)?,
            next_fire_at: state
                .next_fire_at(id, &schedule.spec)
                .map(to_datetime)
                .transpose()?,
            now: to_datetime(now)?,
            waiting_on: waiting_on(state),
            start_terms: {
                let terms = start_terms(action);
                terms.check()?;
                if terms.is_empty() {
                    None
                } else {
                    Some(to_json(&StartTerms {
                        run_timeout: terms.run_timeout,
                        execution_timeout: terms.execution_timeout,
                        retry: terms.retry,
                    })?)
                }
            },
        })
    }

    /// Binds `$1` to `$13` of `insert_schedule.sql`.
    pub(crate) fn bind_insert<'q>(self) -> Bound<'q> {
        let start_terms = self.start_terms.clone();
        self.bind_common(Bound::new(INSERT_SCHEDULE_SQL))
            .bind(start_terms)
    }

    /// Binds `$1` to `$14` of `replace_schedule.sql`.
    pub(crate) fn bind_replace<'q>(self) -> Bound<'q> {
        let waiting_on = self.waiting_on.clone();
        let start_terms = self.start_terms.clone();
        self.bind_common(Bound::new(REPLACE_SCHEDULE_SQL))
            .bind(waiting_on)
            .bind(start_terms)
    }

    fn bind_common(self, bound: Bound<'_>) -> Bound<'_> {
        bound
            .bind(self.schedule_id)
            .bind(self.spec)
            .bind(self.policies)
            .bind(self.workflow_type)
            .bind(self.task_queue)
            .bind(self.input)
            .bind(self.priority)
            .bind(self.fairness_key)
            .bind(self.state)
            .bind(self.next_fire_at)
            .bind(self.now)
            .bind(SCHEDULES_CHANNEL)
    }
}

/// A schedule as stored.
#[derive(Clone, Debug)]
pub(crate) struct ScheduleRecord {
    pub(crate) schedule_id: ScheduleId,
    pub(crate) schedule: Schedule,
    pub(crate) paused: bool,
    pub(crate) note: Option<String>,
    pub(crate) state: ScheduleState,
    pub(crate) created_at: Timestamp,
    pub(crate) updated_at: Timestamp,
}

impl ScheduleRecord {
    fn from_row(row: &PgRow) -> Result<ScheduleRecord> {
        let get = |column: &str| -> Result<String> {
            row.try_get::<String, _>(column).map_err(Error::from_db)
        };
        let id_text = get("schedule_id")?;
        let corrupt = |what: &str, reason: String| Error::Corrupt {
            what: format!("schedule {id_text:?}'s {what}"),
            reason,
        };
        let schedule_id = ScheduleId::new(id_text.clone())?;
        let spec: ScheduleSpec =
            serde_json::from_str(&get("spec")?).map_err(|e| corrupt("spec", e.to_string()))?;
        let policies: SchedulePolicies = serde_json::from_str(&get("policies")?)
            .map_err(|e| corrupt("policies", e.to_string()))?;
        let state: ScheduleState =
            serde_json::from_str(&get("state")?).map_err(|e| corrupt("state", e.to_string()))?;
        let priority: i16 = row.try_get("priority").map_err(Error::from_db)?;
        let terms: StartTerms = match row
            .try_get::<Option<String>, _>("start_terms")
            .map_err(Error::from_db)?
        {
            Some(json) => {
                serde_json::from_str(&json).map_err(|e| corrupt("start terms", e.to_string()))?
            }
            None => StartTerms::default(),
        };
        let action = ScheduleAction {
            workflow_type: WorkflowType::new(get("workflow_type")?)?,
            input: Payload::from_bytes(
                row.try_get::<Vec<u8>, _>("input").map_err(Error::from_db)?,
            )?,
            task_queue: TaskQueue::new(get("task_queue")?)?,
            priority: Priority::new(i64::from(priority))?,
            fairness_key: row.try_get("fairness_key").map_err(Error::from_db)?,
            run_timeout: terms.run_timeout,
            execution_timeout: terms.execution_timeout,
            retry: terms.retry,
        };
        Ok(ScheduleRecord {
            schedule_id,
            schedule: Schedule {
                spec,
                action,
                policies,
            },
            paused: row.try_get("paused").map_err(Error::from_db)?,
            note: row.try_get("note").map_err(Error::from_db)?,
            state,
            created_at: to_timestamp(row.try_get("created_at").map_err(Error::from_db)?),
            updated_at: to_timestamp(row.try_get("updated_at").map_err(Error::from_db)?),
        })
    }
}

/// What one firing of a trigger or a backfill came to.
#[derive(Clone, Debug)]
pub(crate) struct Fired {
    /// The starts the tick made, with what came of each.
    pub(crate) starts: Vec<(Firing, WorkflowId, StartResult)>,
    /// The state it left.
    pub(crate) state: ScheduleState,
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::InvalidArgument(e.to_string()))
}

/// The workflow a schedule's buffered firings wait for, if any wait.
fn waiting_on(state: &ScheduleState) -> Option<String> {
    if state.buffered.is_empty() {
        None
    } else {
        state.watched.as_ref().map(ToString::to_string)
    }
}

fn unknown(id: &ScheduleId) -> Error {
    Error::UnknownSchedule {
        schedule_id: id.to_string(),
    }
}

async fn open_run_of(conn: &mut PgConnection, workflow_id: &WorkflowId) -> Result<Option<RunId>> {
    let id: Option<uuid::Uuid> = sqlx::query_scalar(
        "SELECT run_id FROM reprise.runs WHERE workflow_id = $1 AND status = 'running'",
    )
    .bind(workflow_id.as_str())
    .fetch_optional(&mut *conn)
    .await
    .map_err(Error::from_db)?;
    Ok(id.map(RunId::from_uuid))
}

/// Starts the run of one firing, unless its workflow id was ever used.
async fn start_firing(
    conn: &mut PgConnection,
    cx: WriteContext,
    record: &ScheduleRecord,
    firing: Firing,
    workflow_id: &WorkflowId,
    now: Timestamp,
) -> Result<StartResult> {
    let used: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM reprise.runs WHERE workflow_id = $1)")
            .bind(workflow_id.as_str())
            .fetch_one(&mut *conn)
            .await
            .map_err(Error::from_db)?;
    if used {
        return Ok(StartResult::AlreadyStarted);
    }
    let action = &record.schedule.action;
    let started = action.first_event(
        &record.schedule_id,
        firing.scheduled_at,
        workflow_id,
        RunId::random(),
    );
    let run = RunToInsert::started(
        &started,
        now,
        action.priority,
        action.fairness_key.as_deref(),
    );
    if insert_run(conn, run, &cx.limits, cx.key.as_ref()).await? {
        let terms = start_terms(action);
        if !terms.is_empty() {
            set_policy(conn, started.run_id, &terms, now).await?;
        }
        Ok(StartResult::Started(started.run_id))
    } else {
        Ok(StartResult::AlreadyStarted)
    }
}

/// Runs a tick on a schedule whose row `conn`'s transaction holds, carries out what it
/// decided and writes the state back.
async fn fire_locked(
    conn: &mut PgConnection,
    cx: WriteContext,
    mut record: ScheduleRecord,
    now: Timestamp,
    extra: Vec<Firing>,
    overlap: Option<OverlapPolicy>,
) -> Result<Fired> {
    let watched_open = match &record.state.watched {
        Some(workflow_id) => open_run_of(conn, workflow_id).await?.is_some(),
        None => false,
    };
    let tick = Tick {
        schedule_id: &record.schedule_id,
        spec: &record.schedule.spec,
        policies: &record.schedule.policies,
        paused: record.paused,
        now,
        watched_open,
    };
    let mut state = record.state.clone();
    let plan = state.tick(&tick, extra, overlap);
    let mut starts = Vec::new();
    let reason = |what: &str| {
        format!(
            "{what} by schedule {} (overlap policy {})",
            record.schedule_id,
            overlap.unwrap_or(record.schedule.policies.overlap)
        )
    };
    for instruction in plan.instructions {
        match instruction {
            Instruction::Start {
                firing,
                workflow_id,
            } => {
                let result = start_firing(conn, cx, &record, firing, &workflow_id, now).await?;
                state.record_start(firing, workflow_id.clone(), result, now);
                starts.push((firing, workflow_id, result));
            }
            Instruction::Cancel { workflow_id } => {
                if let Some(run) = open_run_of(conn, &workflow_id).await? {
                    request_cancel(conn, cx, run, &reason("cancelled")).await?;
                }
            }
            Instruction::Terminate { workflow_id } => {
                if let Some(run) = open_run_of(conn, &workflow_id).await? {
                    terminate_in(conn, cx, run, &reason("terminated")).await?;
                }
            }
        }
    }
    sqlx::query(
        "UPDATE reprise.schedules
            SET state = $2::text::jsonb, next_fire_at = $3, waiting_on = $4, updated_at = $5
          WHERE schedule_id = $1",
    )
    .bind(record.schedule_id.as_str())
    .bind(to_json(&state)?)
    .bind(plan.next_fire_at.map(to_datetime).transpose()?)
    .bind(waiting_on(&state))
    .bind(to_datetime(now)?)
    .execute(&mut *conn)
    .await
    .map_err(Error::from_db)?;
    record.state = state.clone();
    Ok(Fired { starts, state })
}

impl Store {
    /// Creates a schedule; its times after now fire. A schedule of the same id: `ScheduleExists`.
    pub(crate) async fn create_schedule(&self, id: &ScheduleId, schedule: &Schedule) -> Result<()> {
        schedule.spec.validate()?;
        let mut conn = self.pool().acquire().await.map_err(Error::from_db)?;
        let now = tx_now(&mut conn, self.offset()).await?;
        let state = ScheduleState::new(now);
        let created = ScheduleRow::new(id, schedule, &state, now)?
            .bind_insert()
            .query()
            .fetch_optional(&mut *conn)
            .await
            .map_err(Error::from_db)?;
        match created {
            Some(_) => Ok(()),
            None => Err(Error::ScheduleExists {
                schedule_id: id.to_string(),
            }),
        }
    }

    /// Replaces a schedule's spec, action and policies; its times from now on fire (none
    /// between its last firing and now), and what it buffered, watches and counted stays.
    pub(crate) async fn replace_schedule(
        &self,
        id: &ScheduleId,
        schedule: &Schedule,
    ) -> Result<()> {
        schedule.spec.validate()?;
        let mut tx = self.pool().begin().await.map_err(Error::from_db)?;
        let (record, now) = self.lock_schedule(&mut tx, id).await?;
        let mut state = record.state;
        state.skip_to(now);
        ScheduleRow::new(id, schedule, &state, now)?
            .bind_replace()
            .query()
            .execute(&mut *tx)
            .await
            .map_err(Error::from_db)?;
        tx.commit().await.map_err(Error::from_db)
    }

    /// Pauses or resumes a schedule, with a note saying why. A resumed schedule fires its
    /// times from now on: those that passed while it was paused are not caught up.
    pub(crate) async fn pause_schedule(
        &self,
        id: &ScheduleId,
        paused: bool,
        note: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.pool().begin().await.map_err(Error::from_db)?;
        let (record, now) = self.lock_schedule(&mut tx, id).await?;
        let mut state = record.state;
        if record.paused && !paused {
            state.skip_to(now);
        }
        sqlx::query(
            "UPDATE reprise.schedules
                SET paused = $2, note = $3, state = $4::text::jsonb, next_fire_at = $5,
                    updated_at = $6
              WHERE schedule_id = $1",
        )
        .bind(id.as_str())
        .bind(paused)
        .bind(note)
        .bind(to_json(&state)?)
        .bind(
            state
                .next_fire_at(id, &record.schedule.spec)
                .map(to_datetime)
                .transpose()?,
        )
        .bind(to_datetime(now)?)
        .execute(&mut *tx)
        .await
        .map_err(Error::from_db)?;
        notify(&mut tx, SCHEDULES_CHANNEL, "").await?;
        tx.commit().await.map_err(Error::from_db)
    }

    /// Deletes a schedule; the workflows it started run on. False if there was none.
    pub(crate) async fn delete_schedule(&self, id: &ScheduleId) -> Result<bool> {
        let deleted = sqlx::query("DELETE FROM reprise.schedules WHERE schedule_id = $1")
            .bind(id.as_str())
            .execute(self.pool())
            .await
            .map_err(Error::from_db)?;
        Ok(deleted.rows_affected() > 0)
    }

    /// A schedule as stored, and the time now.
    pub(crate) async fn read_schedule(
        &self,
        id: &ScheduleId,
    ) -> Result<(ScheduleRecord, Timestamp)> {
        let mut conn = self.pool().acquire().await.map_err(Error::from_db)?;
        let now = tx_now(&mut conn, self.offset()).await?;
        let row = sqlx::query(
            "SELECT schedule_id, spec::text AS spec, policies::text AS policies, workflow_type,
                task_queue, input, priority, fairness_key, paused, note, state::text AS state, start_terms::text AS start_terms,
                created_at, updated_at
               FROM reprise.schedules WHERE schedule_id = $1",
        )
        .bind(id.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(Error::from_db)?
        .ok_or_else(|| unknown(id))?;
        Ok((ScheduleRecord::from_row(&row)?, now))
    }

    /// Up to `limit` schedules in id order, after `after`.
    pub(crate) async fn list_schedules(
        &self,
        after: Option<&ScheduleId>,
        limit: i64,
    ) -> Result<Vec<ScheduleRecord>> {
        let rows = sqlx::query(
            "SELECT schedule_id, spec::text AS spec, policies::text AS policies, workflow_type,
                task_queue, input, priority, fairness_key, paused, note, state::text AS state, start_terms::text AS start_terms,
                created_at, updated_at
               FROM reprise.schedules
              WHERE $1::text IS NULL OR schedule_id > $1 ORDER BY schedule_id LIMIT $2",
        )
        .bind(after.map(ScheduleId::as_str))
        .bind(limit)
        .fetch_all(self.pool())
        .await
        .map_err(Error::from_db)?;
        rows.iter().map(ScheduleRecord::from_row).collect()
    }

    /// Fires a schedule now with `extra` firings (a trigger, a backfill's times), waiting for
    /// an engine's tick that holds it, under `overlap` if given.
    pub(crate) async fn fire_schedule(
        &self,
        id: &ScheduleId,
        extra: impl FnOnce(Timestamp) -> Vec<Firing>,
        overlap: Option<OverlapPolicy>,
    ) -> Result<Fired> {
        let mut tx = self.pool().begin().await.map_err(Error::from_db)?;
        let (record, now) = self.lock_schedule(&mut tx, id).await?;
        let fired = fire_locked(
            &mut tx,
            self.write_context(),
            record,
            now,
            extra(now),
            overlap,
        )
        .await?;
        tx.commit().await.map_err(Error::from_db)?;
        Ok(fired)
    }

    /// Fires the schedules that are due, or else those whose buffered firings no longer wait,
    /// up to `limit`, in one transaction (one commit for a second's firings, not one each):
    /// it holds their rows, so another engine's batch passes over them. Returns how many it
    /// fired. A schedule that cannot be fired (its row does not decode, its start is refused)
    /// is rolled back to a savepoint and paused with the reason as its note, so that it
    /// neither blocks the others nor is lost; a retryable error fails the whole batch.
    pub(crate) async fn fire_due_schedules(&self, limit: i64) -> Result<usize> {
        let mut tx = self.pool().begin().await.map_err(Error::from_db)?;
        let now = tx_now(&mut tx, self.offset()).await?;
        // Two statements: PostgreSQL locks no rows under a UNION.
        let mut rows = sqlx::query(
            "SELECT schedule_id, spec::text AS spec, policies::text AS policies, workflow_type,
                    task_queue, input, priority, fairness_key, paused, note, state::text AS state, start_terms::text AS start_terms,
                    created_at, updated_at
               FROM reprise.schedules
              WHERE NOT paused AND next_fire_at <= $1
              ORDER BY next_fire_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .bind(to_datetime(now)?)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await
        .map_err(Error::from_db)?;
        if rows.is_empty() {
            rows = sqlx::query(
                "SELECT schedule_id, spec::text AS spec, policies::text AS policies, workflow_type,
                    task_queue, input, priority, fairness_key, paused, note, state::text AS state, start_terms::text AS start_terms,
                    created_at, updated_at
                   FROM reprise.schedules s
                  WHERE waiting_on IS NOT NULL AND NOT paused
                    AND NOT EXISTS (SELECT 1 FROM reprise.runs r
                                     WHERE r.workflow_id = s.waiting_on AND r.status = 'running')
                  LIMIT $1 FOR UPDATE SKIP LOCKED",
            )
            .bind(limit)
            .fetch_all(&mut *tx)
            .await
            .map_err(Error::from_db)?;
        }
        if rows.is_empty() {
            return Ok(0);
        }
        let cx = self.write_context();
        for row in &rows {
            let mut savepoint = sqlx::Acquire::begin(&mut tx)
                .await
                .map_err(Error::from_db)?;
            let fired = match ScheduleRecord::from_row(row) {
                Ok(record) => fire_locked(&mut savepoint, cx, record, now, Vec::new(), None)
                    .await
                    .map(drop),
                Err(error) => Err(error),
            };
            match fired {
                Ok(()) => savepoint.commit().await.map_err(Error::from_db)?,
                Err(error) if error.is_retryable() => return Err(error),
                Err(error) => {
                    savepoint.rollback().await.map_err(Error::from_db)?;
                    let id: String = row.try_get("schedule_id").map_err(Error::from_db)?;
                    tracing::error!(schedule_id = %id, %error, "schedule cannot fire: paused");
                    sqlx::query(
                        "UPDATE reprise.schedules SET paused = true, note = $2
                          WHERE schedule_id = $1",
                    )
                    .bind(&id)
                    .bind(format!("paused by the engine: {error}"))
                    .execute(&mut *tx)
                    .await
                    .map_err(Error::from_db)?;
                }
            }
        }
        tx.commit().await.map_err(Error::from_db)?;
        Ok(rows.len())
    }

    /// How long until the next schedule is due (zero if one is); `None` if no schedule will
    /// fire by itself.
    pub(crate) async fn next_schedule_due(&self) -> Result<Option<Duration>> {
        let due_in: Option<i64> = sqlx::query_scalar(
            "SELECT (EXTRACT(EPOCH FROM (min(next_fire_at) - reprise.db_now($1))) * 1e6)::bigint
               FROM reprise.schedules WHERE NOT paused",
        )
        .bind(self.offset())
        .fetch_one(self.pool())
        .await
        .map_err(Error::from_db)?;
        Ok(due_in.map(|micros| Duration::from_micros(u64::try_from(micros).unwrap_or(0))))
    }

    /// Locks a schedule's row in `tx` (waiting for an engine's tick that holds it) and reads it.
    async fn lock_schedule(
        &self,
        tx: &mut PgConnection,
        id: &ScheduleId,
    ) -> Result<(ScheduleRecord, Timestamp)> {
        let now = tx_now(tx, self.offset()).await?;
        let row = sqlx::query(
            "SELECT schedule_id, spec::text AS spec, policies::text AS policies, workflow_type,
                task_queue, input, priority, fairness_key, paused, note, state::text AS state, start_terms::text AS start_terms,
                created_at, updated_at
               FROM reprise.schedules WHERE schedule_id = $1 FOR UPDATE",
        )
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(Error::from_db)?
        .ok_or_else(|| unknown(id))?;
        Ok((ScheduleRecord::from_row(&row)?, now))
    }
}

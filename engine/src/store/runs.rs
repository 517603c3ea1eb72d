//! Runs and their history: starting, claiming, stepping in one transaction, parking.

use reprise_history::{
    ChainHash, ChainKey, Event, EventKind, Limits, ParentClosePolicy, Payload, ReplayRules, RunId,
    RunOrigin, RunState, Seq, TaskQueue, Timestamp, TraceContext, WorkflowId, WorkflowStarted,
    WorkflowType,
};
use sqlx::{PgConnection, Row};

use crate::error::{Error, Result};
use crate::store::bind::Bound;
use crate::store::deadlines::{ExecutionPolicy, set_policy};
use crate::store::inbox::{Delivery, deliver};
use crate::store::notify::RUNS_CHANNEL;
use crate::store::rows::{HistoryRows, events_from_rows, run_id, run_state, seq_param};
use crate::store::{Store, to_datetime, to_timestamp};
use reprise_history::Priority;

/// A run to start.
#[derive(Clone, Debug)]
pub(crate) struct NewRun {
    pub(crate) workflow_type: WorkflowType,
    pub(crate) workflow_id: WorkflowId,
    pub(crate) input: Payload,
    pub(crate) task_queue: TaskQueue,
    /// The starter's trace, recorded in the run's first event.
    pub(crate) trace_context: Option<TraceContext>,
    /// Its priority and fairness key (flow control; not history).
    pub(crate) priority: Priority,
    pub(crate) fairness_key: Option<String>,
    /// When its first step may happen: after this delay from the start's database time, and
    /// not before `start_at` (a time past: at once).
    pub(crate) start_delay: std::time::Duration,
    pub(crate) start_at: Option<Timestamp>,
    /// Its deadlines and retry policy.
    pub(crate) policy: ExecutionPolicy,
}

impl NewRun {
    /// Whether it may go in the statement concurrent plain starts share: its first step does
    /// not wait and it has no deadline or retry policy to write.
    pub(crate) fn is_plain(&self) -> bool {
        self.start_delay.is_zero() && self.start_at.is_none() && self.policy.is_empty()
    }

    /// When the first step of a run started at `now` happens, if later than now.
    fn first_step_at(&self, now: Timestamp) -> Option<Timestamp> {
        let after_delay = now.saturating_add(self.start_delay);
        let at = self.start_at.map_or(after_delay, |t| t.max(after_delay));
        (at > now).then_some(at)
    }

    /// The first event of the new run (a fresh run id), started by a client.
    fn started(&self) -> WorkflowStarted {
        WorkflowStarted {
            workflow_type: self.workflow_type.clone(),
            workflow_id: self.workflow_id.clone(),
            run_id: RunId::random(),
            input: self.input.clone(),
            task_queue: self.task_queue.clone(),
            origin: RunOrigin::Client,
            parent: None,
            trace_context: self.trace_context.clone(),
            replay_rules: ReplayRules::CURRENT,
        }
    }
}

/// What starting a workflow id does when an earlier run of it is closed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IdReusePolicy {
    /// Start a new run whatever the last one did.
    #[default]
    AllowDuplicate,
    /// Start a new run only if the last one failed, was cancelled or was terminated.
    AllowDuplicateFailedOnly,
    /// Never start a second run of the id.
    RejectDuplicate,
}

/// Refuses a start that the reuse policy forbids, given the id's latest closed run.
async fn check_reuse(
    conn: &mut PgConnection,
    workflow_id: &WorkflowId,
    reuse: IdReusePolicy,
) -> Result<()> {
    if reuse == IdReusePolicy::AllowDuplicate {
        return Ok(());
    }
    let row = sqlx::query(
        "SELECT status FROM reprise.runs WHERE workflow_id = $1 ORDER BY created_at DESC LIMIT 1",
    )
    .bind(workflow_id.as_str())
    .fetch_optional(&mut *conn)
    .await
    .map_err(Error::from_db)?;
    let last = row.map(|row| run_state(&row, "status")).transpose()?;
    let refused = match (reuse, last) {
        (_, None) => false,
        (IdReusePolicy::RejectDuplicate, Some(_)) => true,
        (IdReusePolicy::AllowDuplicateFailedOnly, Some(status)) => match status {
            RunState::Failed | RunState::Cancelled | RunState::Terminated | RunState::TimedOut => {
                false
            }
            RunState::Running | RunState::Completed | RunState::ContinuedAsNew => true,
        },
        (IdReusePolicy::AllowDuplicate, Some(_)) => false,
    };
    match last {
        Some(status) if refused => Err(Error::WorkflowIdReused {
            workflow_id: workflow_id.to_string(),
            last_status: status,
        }),
        _ => Ok(()),
    }
}

/// What starting a run did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StartOutcome {
    pub(crate) run_id: RunId,
    /// False when a run of the workflow id was already open (its id is returned).
    pub(crate) created: bool,
}

/// A run as stored.
#[derive(Clone, Debug)]
pub(crate) struct RunRow {
    pub(crate) run_id: RunId,
    pub(crate) workflow_type: WorkflowType,
    pub(crate) status: RunState,
}

/// A run's first event, encoded, and its chain hash.
fn first_event(
    started: &WorkflowStarted,
    at: Timestamp,
    limits: &Limits,
    key: Option<&ChainKey>,
) -> Result<(Vec<u8>, ChainHash)> {
    let event = Event {
        seq: Seq::FIRST,
        recorded_at: at,
        kind: EventKind::WorkflowStarted(started.clone()),
    };
    let bytes = event.encode(limits)?;
    let hash = ChainHash::GENESIS.next_with(key, &bytes);
    Ok((bytes, hash))
}

/// Inserts a run, its first event and its queue row (see `sql/insert_run.sql`).
pub(crate) const INSERT_RUN_SQL: &str = include_str!("sql/insert_run.sql");
/// Starts runs of new workflows in one statement (see `sql/start_runs.sql`).
pub(crate) const START_RUNS_SQL: &str = include_str!("sql/start_runs.sql");

/// The parameters of `insert_run.sql`.
#[derive(Default)]
pub(crate) struct InsertRun<'a> {
    pub(crate) run_id: uuid::Uuid,
    pub(crate) workflow_id: &'a str,
    pub(crate) workflow_type: &'a str,
    pub(crate) task_queue: &'a str,
    pub(crate) head_hash: Vec<u8>,
    pub(crate) at: chrono::DateTime<chrono::Utc>,
    pub(crate) parent_run_id: Option<uuid::Uuid>,
    pub(crate) parent_started_seq: Option<i64>,
    pub(crate) previous_run_id: Option<uuid::Uuid>,
    pub(crate) parent_close_policy: Option<&'static str>,
    pub(crate) event: Vec<u8>,
    pub(crate) runs_channel: &'static str,
    pub(crate) priority: Option<i16>,
    pub(crate) fairness_key: Option<&'a str>,
    pub(crate) start_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl<'a> InsertRun<'a> {
    /// Binds `$1` to `$15`.
    pub(crate) fn bind(self) -> Bound<'a> {
        Bound::new(INSERT_RUN_SQL)
            .bind(self.run_id)
            .bind(self.workflow_id)
            .bind(self.workflow_type)
            .bind(self.task_queue)
            .bind(self.head_hash)
            .bind(self.at)
            .bind(self.parent_run_id)
            .bind(self.parent_started_seq)
            .bind(self.previous_run_id)
            .bind(self.parent_close_policy)
            .bind(self.event)
            .bind(self.runs_channel)
            .bind(self.priority)
            .bind(self.fairness_key)
            .bind(self.start_at)
    }
}

/// A run to insert with its first event.
pub(crate) struct RunToInsert<'a> {
    /// Its first event.
    pub(crate) started: &'a WorkflowStarted,
    /// The first event's recorded time (database time).
    pub(crate) at: Timestamp,
    /// For a continue-as-new, the run it continues.
    pub(crate) previous_run_id: Option<RunId>,
    /// For a child, what happens to it when its parent closes first.
    pub(crate) parent_close_policy: Option<ParentClosePolicy>,
    /// Its priority and fairness key, given by its starter; `None`: a child's or a continued
    /// run's, inherited from the run before.
    pub(crate) scheduling: Option<(Priority, Option<&'a str>)>,
    /// A delayed start's first step; `None`: at once.
    pub(crate) start_at: Option<Timestamp>,
}

impl<'a> RunToInsert<'a> {
    /// A run a client starts, at `at`.
    pub(crate) fn started(
        started: &'a WorkflowStarted,
        at: Timestamp,
        priority: Priority,
        fairness_key: Option<&'a str>,
    ) -> RunToInsert<'a> {
        RunToInsert {
            started,
            at,
            previous_run_id: None,
            parent_close_policy: None,
            scheduling: Some((priority, fairness_key)),
            start_at: None,
        }
    }

    /// A run its parent (a child) or the run before (a continue-as-new) starts, at `at`: its
    /// priority and fairness key are that run's.
    pub(crate) fn inherited(started: &'a WorkflowStarted, at: Timestamp) -> RunToInsert<'a> {
        RunToInsert {
            started,
            at,
            previous_run_id: None,
            parent_close_policy: None,
            scheduling: None,
            start_at: None,
        }
    }
}

/// Inserts a run and its `WorkflowStarted` event and wakes engines, in one statement; false
/// if a run of its id is open (then nothing is written).
pub(crate) async fn insert_run(
    conn: &mut PgConnection,
    run: RunToInsert<'_>,
    limits: &Limits,
    key: Option<&ChainKey>,
) -> Result<bool> {
    let RunToInsert {
        started,
        at,
        previous_run_id,
        parent_close_policy,
        scheduling,
        start_at,
    } = run;
    let (event, hash) = first_event(started, at, limits, key)?;
    let statement = InsertRun {
        run_id: *started.run_id.as_uuid(),
        workflow_id: started.workflow_id.as_str(),
        workflow_type: started.workflow_type.as_str(),
        task_queue: started.task_queue.as_str(),
        head_hash: hash.as_bytes().to_vec(),
        at: to_datetime(at)?,
        parent_run_id: started.parent.as_ref().map(|p| *p.run_id.as_uuid()),
        parent_started_seq: started.parent.as_ref().map(|p| seq_param(p.started_seq)),
        previous_run_id: previous_run_id.map(|r| *r.as_uuid()),
        parent_close_policy: parent_close_policy.map(ParentClosePolicy::as_str),
        event,
        runs_channel: RUNS_CHANNEL,
        priority: scheduling.map(|(p, _)| i16::from(p.get())),
        fairness_key: scheduling.and_then(|(_, key)| key),
        start_at: start_at.map(to_datetime).transpose()?,
    };
    let inserted: Option<sqlx::postgres::PgRow> = statement
        .bind()
        .query()
        .fetch_optional(&mut *conn)
        .await
        .map_err(Error::from_db)?;
    Ok(inserted.is_some())
}

/// The parameters of `start_runs.sql`: the rows of plain starts, as arrays, and their time.
#[derive(Default)]
pub(crate) struct StartRuns {
    run_ids: Vec<uuid::Uuid>,
    workflow_ids: Vec<String>,
    workflow_types: Vec<String>,
    task_queues: Vec<String>,
    hashes: Vec<Vec<u8>>,
    events: Vec<Vec<u8>>,
    at: chrono::DateTime<chrono::Utc>,
    runs_channel: &'static str,
    priorities: Vec<i16>,
    fairness_keys: Vec<Option<String>>,
}

impl StartRuns {
    /// Binds `$1` to `$10`.
    pub(crate) fn bind<'q>(self) -> Bound<'q> {
        Bound::new(START_RUNS_SQL)
            .bind(self.run_ids)
            .bind(self.workflow_ids)
            .bind(self.workflow_types)
            .bind(self.task_queues)
            .bind(self.hashes)
            .bind(self.events)
            .bind(self.at)
            .bind(self.runs_channel)
            .bind(self.priorities)
            .bind(self.fairness_keys)
    }

    fn push(
        &mut self,
        new: &NewRun,
        at: Timestamp,
        limits: &Limits,
        key: Option<&ChainKey>,
    ) -> Result<()> {
        let started = &new.started();
        let (bytes, hash) = first_event(started, at, limits, key)?;
        self.hashes.push(hash.as_bytes().to_vec());
        self.events.push(bytes);
        self.run_ids.push(*started.run_id.as_uuid());
        self.workflow_ids
            .push(started.workflow_id.as_str().to_string());
        self.workflow_types
            .push(started.workflow_type.as_str().to_string());
        self.task_queues
            .push(started.task_queue.as_str().to_string());
        self.priorities.push(i16::from(new.priority.get()));
        self.fairness_keys.push(new.fairness_key.clone());
        Ok(())
    }
}

/// Appends events after `prev` (the chain hash of the event before the first), in one
/// statement; returns the new head hash.
pub(super) async fn append_events(
    conn: &mut PgConnection,
    run_id: RunId,
    prev: ChainHash,
    events: &[Event],
    limits: &Limits,
    key: Option<&ChainKey>,
) -> Result<ChainHash> {
    let mut rows = HistoryRows::default();
    let head = rows.push_run(run_id, prev, events, limits, key)?;
    rows.insert(conn).await?;
    Ok(head)
}

/// Reads a run's history on `conn`, verifying the chain as it goes.
pub(super) async fn read_history(
    conn: &mut PgConnection,
    run_id: RunId,
    limits: &Limits,
    key: Option<&ChainKey>,
) -> Result<Vec<Event>> {
    let rows =
        sqlx::query("SELECT seq, event, hash FROM reprise.history WHERE run_id = $1 ORDER BY seq")
            .bind(run_id.as_uuid())
            .fetch_all(&mut *conn)
            .await
            .map_err(Error::from_db)?;
    events_from_rows(&rows, limits, key)
}

pub(crate) async fn tx_now(conn: &mut PgConnection, offset: i64) -> Result<Timestamp> {
    let t: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT reprise.db_now($1)")
        .bind(offset)
        .fetch_one(&mut *conn)
        .await
        .map_err(Error::from_db)?;
    Ok(to_timestamp(t))
}

impl Store {
    /// Starts a run in one transaction (run row and first event), unless a run of the same
    /// workflow id is open: then that run's id comes back with `created: false`. A closed
    /// earlier run is checked against the reuse policy. With a signal, it is delivered to the
    /// started (or open) run in the same transaction (signal-with-start).
    pub(crate) async fn start_run(
        &self,
        new: NewRun,
        reuse: IdReusePolicy,
        signal: Option<EventKind>,
    ) -> Result<StartOutcome> {
        if reuse == IdReusePolicy::AllowDuplicate && signal.is_none() && new.is_plain() {
            return self.start_plain(new).await;
        }
        let mut tx = self.pool().begin().await.map_err(Error::from_db)?;
        let at = tx_now(&mut tx, self.offset()).await?;
        let outcome = match self.open_run_in(&mut tx, &new.workflow_id).await? {
            Some(run_id) => StartOutcome {
                run_id,
                created: false,
            },
            None => {
                check_reuse(&mut tx, &new.workflow_id, reuse).await?;
                let started = new.started();
                let key = new.fairness_key.as_deref();
                // A delayed run starts at its start time as far as its code can tell: its
                // first event is recorded then, so `ctx.now()` and its first decisions are
                // stamped when its first step happens, as a timer's would be.
                let start_at = new.first_step_at(at);
                let first_step = start_at.unwrap_or(at);
                let mut run = RunToInsert::started(&started, first_step, new.priority, key);
                run.start_at = start_at;
                if insert_run(&mut tx, run, self.limits(), self.chain_key()).await? {
                    if !new.policy.is_empty() {
                        set_policy(&mut tx, started.run_id, &new.policy, first_step).await?;
                    }
                    StartOutcome {
                        run_id: started.run_id,
                        created: true,
                    }
                } else {
                    // Another start won the race: that run is the one.
                    let run_id = self
                        .open_run_in(&mut tx, &new.workflow_id)
                        .await?
                        .ok_or_else(|| {
                            Error::Conflict(format!(
                                "workflow id {} was in use and then not",
                                new.workflow_id
                            ))
                        })?;
                    StartOutcome {
                        run_id,
                        created: false,
                    }
                }
            }
        };
        if let Some(signal) = signal {
            let delivery = Delivery::now(outcome.run_id, &signal);
            deliver(&mut tx, self.write_context(), delivery).await?;
        }
        tx.commit().await.map_err(Error::from_db)?;
        Ok(outcome)
    }

    /// The common start (any earlier run may be reused, no signal): one statement that writes
    /// the run unless one of its id is open, in which case that run's id comes back.
    async fn start_plain(&self, new: NewRun) -> Result<StartOutcome> {
        let mut conn = self.pool().acquire().await.map_err(Error::from_db)?;
        let started = new.started();
        // The open run may close between the insert that found it and the lookup: try again.
        for _ in 0..3 {
            let at = tx_now(&mut conn, self.offset()).await?;
            let key = new.fairness_key.as_deref();
            let run = RunToInsert::started(&started, at, new.priority, key);
            if insert_run(&mut conn, run, self.limits(), self.chain_key()).await? {
                return Ok(StartOutcome {
                    run_id: started.run_id,
                    created: true,
                });
            }
            if let Some(run_id) = self.open_run_in(&mut conn, &new.workflow_id).await? {
                return Ok(StartOutcome {
                    run_id,
                    created: false,
                });
            }
        }
        Err(Error::Conflict(format!(
            "workflow id {} kept opening and closing while starting it",
            new.workflow_id
        )))
    }

    /// Starts runs of new workflows in one statement (at most one row per workflow id; the
    /// common start: any earlier run may be reused, no signal). Returns, for each, its run id
    /// if it was written, or `None` if a run of its id is open (nothing is written for it).
    /// Rows go in in workflow id order, so that two such statements racing on the same ids
    /// wait for each other in the same order and cannot deadlock.
    pub(crate) async fn start_plain_runs(&self, news: &[NewRun]) -> Result<Vec<Option<RunId>>> {
        let mut order: Vec<usize> = (0..news.len()).collect();
        order.sort_by(|&a, &b| {
            news[a]
                .workflow_id
                .as_str()
                .cmp(news[b].workflow_id.as_str())
        });
        let mut conn = self.pool().acquire().await.map_err(Error::from_db)?;
        let at = tx_now(&mut conn, self.offset()).await?;
        let mut rows = StartRuns {
            at: to_datetime(at)?,
            runs_channel: RUNS_CHANNEL,
            ..StartRuns::default()
        };
        for &i in &order {
            rows.push(&news[i], at, self.limits(), self.chain_key())?;
        }
        let run_ids = rows.run_ids.clone();
        let inserted: Vec<uuid::Uuid> = rows
            .bind()
            .query()
            .fetch_all(&mut *conn)
            .await
            .map_err(Error::from_db)?
            .iter()
            .map(|row| row.try_get("run_id").map_err(Error::from_db))
            .collect::<Result<_>>()?;
        let inserted: std::collections::HashSet<uuid::Uuid> = inserted.into_iter().collect();
        let mut started = vec![None; news.len()];
        for (row, &i) in order.iter().enumerate() {
            let run_id = run_ids[row];
            if inserted.contains(&run_id) {
                started[i] = Some(RunId::from_uuid(run_id));
            }
        }
        Ok(started)
    }

    async fn open_run_in(
        &self,
        conn: &mut PgConnection,
        workflow_id: &WorkflowId,
    ) -> Result<Option<RunId>> {
        let id: Option<uuid::Uuid> =
            sqlx::query_scalar("SELECT run_id FROM reprise.runs WHERE workflow_id = $1 AND status = 'running' FOR UPDATE")
                .bind(workflow_id.as_str())
                .fetch_optional(&mut *conn)
                .await
                .map_err(Error::from_db)?;
        Ok(id.map(RunId::from_uuid))
    }

    fn row_to_run(row: &sqlx::postgres::PgRow) -> Result<RunRow> {
        Ok(RunRow {
            run_id: run_id(row, "run_id")?,
            workflow_type: WorkflowType::new(
                row.try_get::<String, _>("workflow_type")
                    .map_err(Error::from_db)?,
            )?,
            status: run_state(row, "status")?,
        })
    }

    async fn fetch_run(
        &self,
        query: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<Option<RunRow>> {
        let row = query
            .fetch_optional(self.pool())
            .await
            .map_err(Error::from_db)?;
        row.as_ref().map(Self::row_to_run).transpose()
    }

    /// The open run of a workflow id.
    pub(crate) async fn open_run(&self, workflow_id: &WorkflowId) -> Result<Option<RunRow>> {
        let query = sqlx::query(
            "SELECT r.run_id, r.workflow_type, r.status
               FROM reprise.runs r WHERE r.workflow_id = $1 AND r.status = 'running'",
        );
        self.fetch_run(query.bind(workflow_id.as_str())).await
    }

    /// The latest run of a workflow id, open or closed.
    pub(crate) async fn latest_run(&self, workflow_id: &WorkflowId) -> Result<Option<RunRow>> {
        let query = sqlx::query(
            "SELECT r.run_id, r.workflow_type, r.status
               FROM reprise.runs r WHERE r.workflow_id = $1
              ORDER BY r.created_at DESC, r.run_id DESC LIMIT 1",
        );
        self.fetch_run(query.bind(workflow_id.as_str())).await
    }

    /// How long until a queued run next has work that is not due yet (a timer), if one has:
    /// engines sleep until then. Work due already comes with a notification; counting it here
    /// would wake idle engines in a loop while another batch holds it.
    pub(crate) async fn next_ready_in(&self) -> Result<Option<std::time::Duration>> {
        let micros: Option<i64> = sqlx::query_scalar(
            "SELECT (EXTRACT(EPOCH FROM (min(ready_at) - reprise.db_now($1))) * 1000000)::bigint
               FROM reprise.ready_runs WHERE ready_at > reprise.db_now($1)",
        )
        .bind(self.offset())
        .fetch_one(self.pool())
        .await
        .map_err(Error::from_db)?;
        Ok(micros.map(|m| std::time::Duration::from_micros(u64::try_from(m).unwrap_or(0))))
    }

    /// A run's history, verified against its chain hashes (naming the first bad seq).
    pub(crate) async fn history(&self, run_id: RunId) -> Result<Vec<Event>> {
        let mut conn = self.pool().acquire().await.map_err(Error::from_db)?;
        read_history(&mut conn, run_id, self.limits(), self.chain_key()).await
    }

    /// Parks a run whose step fails by itself (its decisions cannot be carried out), so that
    /// it stops holding up the batches it is claimed in. `build` will not take it again.
    pub(crate) async fn park_run(&self, run_id: RunId, build: &str, reason: &str) -> Result<()> {
        let mut conn = self.pool().acquire().await.map_err(Error::from_db)?;
        park(&mut conn, self.offset(), run_id, Some(build), reason).await
    }

    /// Queues again the parked runs this process may take back: those of a type it knows, on
    /// a queue it serves, parked by another build; wakes engines if there were any, in the
    /// same statement. Returns how many.
    pub(crate) async fn adopt_parked(
        &self,
        known_types: &[String],
        queues: &[String],
        build: &str,
    ) -> Result<u64> {
        let adopted: i64 = sqlx::query_scalar("WITH parked AS (
                 SELECT run_id FROM reprise.runs
                  WHERE parked_reason IS NOT NULL AND status = 'running'
                    AND workflow_type = ANY($2) AND parked_build IS DISTINCT FROM $3
                    AND task_queue = ANY($5)
                    FOR NO KEY UPDATE SKIP LOCKED),
             queued AS (
                 INSERT INTO reprise.ready_runs (run_id, ready_at) SELECT run_id, reprise.db_now($1) FROM parked ON CONFLICT (run_id) DO NOTHING RETURNING run_id)
             SELECT (SELECT count(*) FROM queued),
                    (SELECT count(*) FROM (SELECT pg_notify($4, '') WHERE EXISTS (SELECT 1 FROM queued)) n)")
        .bind(self.offset())
        .bind(known_types)
        .bind(build)
        .bind(RUNS_CHANNEL)
        .bind(queues)
        .fetch_one(self.pool())
        .await
        .map_err(Error::from_db)?;
        Ok(u64::try_from(adopted).unwrap_or(0))
    }
}

/// Parks an open run with its reason; it keeps its inbox. `build` is the build whose code
/// failed on it: that build will not take it again, and the run leaves the ready queue so that
/// claims do not pass over it; another build that knows its type queues it again
/// ([`Store::adopt_parked`]). `None` (its type was unknown here) keeps it queued, for any
/// process that knows the type to take at once.
pub(super) async fn park(
    conn: &mut PgConnection,
    offset: i64,
    run_id: RunId,
    build: Option<&str>,
    reason: &str,
) -> Result<()> {
    sqlx::query("WITH parked AS (
             UPDATE reprise.runs SET parked_reason = $3, parked_build = $4, parked_at = COALESCE(parked_at, reprise.db_now($1)) WHERE run_id = $2 AND status = 'running' RETURNING run_id)
         DELETE FROM reprise.ready_runs q USING parked p WHERE q.run_id = p.run_id AND $4::text IS NOT NULL")
    .bind(offset)
    .bind(run_id.as_uuid())
    .bind(reason)
    .bind(build)
    .execute(&mut *conn)
    .await
    .map_err(Error::from_db)?;
    Ok(())
}

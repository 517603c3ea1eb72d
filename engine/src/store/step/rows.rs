//! The rows a step writes (events, tasks, applied inputs, heads) and the binders of the step
//! statements: one struct per statement, whose fields are its parameters in order (see
//! `store/bind.rs`).

use reprise_history::{Limits, RunId, StoredValue, TraceContext};
use reprise_sdk::NewTask;

use super::{BatchRun, Claim, Head};
use crate::error::Result;
use crate::store::bind::Bound;
use crate::store::micros;
use crate::store::notify::Notifications;
use crate::store::rows::{HistoryRows, seq_param};

/// Writes a batch's steps alone (see `sql/write_steps.sql`).
pub(crate) const WRITE_STEPS_SQL: &str = include_str!("../sql/write_steps.sql");
/// Writes a batch's steps and releases its runs (see `sql/write_steps_and_release.sql`).
pub(crate) const WRITE_AND_RELEASE_SQL: &str = include_str!("../sql/write_steps_and_release.sql");
/// Creates activity tasks (see `sql/insert_tasks.sql`).
pub(crate) const INSERT_TASKS_SQL: &str = include_str!("../sql/insert_tasks.sql");

/// The parameters of `claim_ready_runs.sql` and `claim_given_runs.sql`.
pub(crate) struct ClaimRuns<'a> {
    pub(crate) offset: i64,
    pub(crate) known_types: &'a [String],
    pub(crate) build: &'a str,
    pub(crate) claim: Claim<'a>,
    pub(crate) queues: &'a [String],
}

impl<'a> ClaimRuns<'a> {
    /// Binds `$1` to `$5`.
    pub(crate) fn bind(self) -> Bound<'a> {
        let (sql, limit, ids) = match self.claim {
            Claim::Ready(limit) => (super::CLAIM_READY_SQL, Some(limit), None),
            Claim::Only(ids) => {
                let ids: Vec<uuid::Uuid> = ids.iter().map(|id| *id.as_uuid()).collect();
                (super::CLAIM_ONLY_SQL, None, Some(ids))
            }
        };
        let bound = Bound::new(sql)
            .bind(self.offset)
            .bind(self.known_types)
            .bind(self.build);
        let bound = match (limit, ids) {
            (Some(limit), _) => bound.bind(limit),
            (None, ids) => bound.bind(ids.unwrap_or_default()),
        };
        bound.bind(self.queues)
    }
}

/// The rows a batch's steps write: events, tasks, applied inputs.
#[derive(Default)]
pub(crate) struct WriteRows {
    pub(crate) history: HistoryRows,
    pub(crate) tasks: TaskRows,
    pub(crate) consumed: Vec<i64>,
}

impl WriteRows {
    /// Whether there is nothing to write.
    pub(crate) fn is_empty(&self) -> bool {
        self.history.is_empty() && self.tasks.runs.is_empty() && self.consumed.is_empty()
    }

    /// Binds them as `$2` to `$17` of the step statements: six arrays of events, nine of
    /// tasks, the applied inbox rows.
    pub(crate) fn bind_to(self, bound: Bound<'_>) -> Bound<'_> {
        self.tasks
            .bind_to(self.history.bind_to(bound))
            .bind(self.consumed)
    }
}

/// The parameters of `write_steps.sql`.
#[derive(Default)]
pub(crate) struct WriteSteps {
    pub(crate) offset: i64,
    pub(crate) rows: WriteRows,
}

impl WriteSteps {
    /// Binds `$1` to `$20`.
    pub(crate) fn bind<'q>(mut self) -> Bound<'q> {
        let priorities = self.rows.tasks.take_priorities();
        self.rows
            .bind_to(Bound::new(WRITE_STEPS_SQL).bind(self.offset))
            .bind(priorities)
    }
}

/// The runs a batch releases, as arrays: run, head when claimed, new head, status if closed,
/// custom status if set.
#[derive(Default)]
pub(crate) struct HeadRows {
    runs: Vec<uuid::Uuid>,
    claimed: Vec<i64>,
    seqs: Vec<i64>,
    hashes: Vec<Vec<u8>>,
    closing: Vec<Option<&'static str>>,
    custom_status: Vec<Option<Vec<u8>>>,
}

impl HeadRows {
    /// Adds a claimed run's new head.
    pub(super) fn push(&mut self, run: &BatchRun, head: &Head) {
        self.runs.push(*run.run_id.as_uuid());
        self.claimed.push(seq_param(run.head_seq));
        self.seqs.push(seq_param(head.seq));
        self.hashes.push(head.hash.as_bytes().to_vec());
        self.closing.push(head.closing.map(|s| s.as_str()));
        self.custom_status.push(head.custom_status.clone());
    }
}

/// The parameters of `write_steps_and_release.sql`.
#[derive(Default)]
pub(crate) struct WriteAndRelease {
    pub(crate) offset: i64,
    pub(crate) rows: WriteRows,
    pub(crate) heads: HeadRows,
    pub(crate) notes: Notifications,
    pub(crate) runs_channel: &'static str,
}

impl WriteAndRelease {
    /// Binds `$1` to `$29`.
    pub(crate) fn bind<'q>(mut self) -> Bound<'q> {
        let priorities = self.rows.tasks.take_priorities();
        let bound = self
            .rows
            .bind_to(Bound::new(WRITE_AND_RELEASE_SQL).bind(self.offset))
            .bind(self.heads.runs)
            .bind(self.heads.claimed)
            .bind(self.heads.seqs)
            .bind(self.heads.hashes)
            .bind(self.heads.closing);
        self.notes
            .bind_to(bound)
            .bind(self.runs_channel)
            .bind(priorities)
            .bind(self.heads.custom_status)
    }
}

/// Activity tasks of one or more runs, to be created in one statement.
#[derive(Default)]
pub(crate) struct TaskRows {
    runs: Vec<uuid::Uuid>,
    seqs: Vec<i64>,
    queues: Vec<String>,
    types: Vec<String>,
    inputs: Vec<Vec<u8>>,
    options: Vec<Vec<u8>>,
    start_to_close: Vec<Option<i64>>,
    heartbeat: Vec<Option<i64>>,
    schedule_to_close: Vec<Option<i64>>,
    traceparents: Vec<Option<String>>,
    tracestates: Vec<Option<String>>,
    /// Bound apart, as each statement's last parameter (added after the statements'
    /// numbering was set).
    priorities: Vec<Option<i16>>,
}

impl TaskRows {
    /// Adds the task of an activity `run` scheduled, in the trace of the step that did.
    pub(crate) fn push(
        &mut self,
        run: RunId,
        task: &NewTask<'_>,
        trace: Option<&TraceContext>,
        limits: &Limits,
    ) -> Result<()> {
        let s = task.activity;
        self.runs.push(*run.as_uuid());
        self.seqs.push(seq_param(task.scheduled));
        self.queues.push(s.task_queue.as_str().to_string());
        self.types.push(s.activity_type.as_str().to_string());
        self.inputs.push(s.input.as_bytes().to_vec());
        self.options.push(s.options.to_stored(limits)?);
        self.start_to_close
            .push(s.options.start_to_close.map(micros));
        self.heartbeat.push(s.options.heartbeat_timeout.map(micros));
        self.schedule_to_close
            .push(s.options.schedule_to_close.map(micros));
        self.traceparents
            .push(trace.map(|t| t.traceparent().to_string()));
        self.tracestates
            .push(trace.map(|t| t.tracestate().to_string()));
        self.priorities.push(s.priority.map(|p| i16::from(p.get())));
        Ok(())
    }

    /// The tasks' priorities given at their calls (NULL: the run's), taken out to be bound as
    /// the statement's last parameter.
    pub(crate) fn take_priorities(&mut self) -> Vec<Option<i16>> {
        std::mem::take(&mut self.priorities)
    }

    /// Whether there are no tasks.
    pub(crate) fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Binds the tasks as eleven arrays: run, scheduled seq, queue, activity type, input,
    /// options, the three timeouts in µs, and the trace context (traceparent, tracestate).
    pub(crate) fn bind_to(self, bound: Bound<'_>) -> Bound<'_> {
        bound
            .bind(self.runs)
            .bind(self.seqs)
            .bind(self.queues)
            .bind(self.types)
            .bind(self.inputs)
            .bind(self.options)
            .bind(self.start_to_close)
            .bind(self.heartbeat)
            .bind(self.schedule_to_close)
            .bind(self.traceparents)
            .bind(self.tracestates)
    }
}

/// The parameters of `insert_tasks.sql`.
#[derive(Default)]
pub(crate) struct InsertTasks {
    pub(crate) offset: i64,
    pub(crate) tasks: TaskRows,
}

impl InsertTasks {
    /// Binds `$1` to `$13`.
    pub(crate) fn bind<'q>(mut self) -> Bound<'q> {
        let priorities = self.tasks.take_priorities();
        self.tasks
            .bind_to(Bound::new(INSERT_TASKS_SQL).bind(self.offset))
            .bind(priorities)
    }
}

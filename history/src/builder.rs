//! `HistoryBuilder`: writes histories by hand for tests (pure replay tests, fixtures).

use std::time::Duration;

use crate::ReplayRules;
use crate::error::Result;
use crate::event::{Event, EventKind, WorkflowStarted};
use crate::file::RecordedHistory;
use crate::ids::{RunId, Seq, TaskQueue, WorkflowId, WorkflowType};
use crate::options::RunOrigin;
use crate::payload::Payload;
use crate::time::Timestamp;

/// Appends events with consecutive seqs and advancing timestamps.
#[derive(Clone, Debug)]
pub struct HistoryBuilder {
    events: Vec<Event>,
    now: Timestamp,
}

impl HistoryBuilder {
    /// A history starting with `started`, recorded at `at`.
    pub fn new(started: WorkflowStarted, at: Timestamp) -> HistoryBuilder {
        let mut builder = HistoryBuilder {
            events: Vec::new(),
            now: at,
        };
        builder.push(EventKind::WorkflowStarted(started));
        builder
    }

    /// A history of a workflow started by a client, with a fresh run id, on queue `default`.
    pub fn started(
        workflow_type: &str,
        workflow_id: &str,
        input: Payload,
    ) -> Result<HistoryBuilder> {
        let started = WorkflowStarted {
            workflow_type: WorkflowType::new(workflow_type)?,
            workflow_id: WorkflowId::new(workflow_id)?,
            run_id: RunId::random(),
            input,
            task_queue: TaskQueue::new("default")?,
            origin: RunOrigin::Client,
            parent: None,
            trace_context: None,
            replay_rules: ReplayRules::CURRENT,
        };
        Ok(HistoryBuilder::new(
            started,
            Timestamp::from_unix_micros(1_767_225_600_000_000),
        ))
    }

    /// Appends an event at the current time and returns its seq.
    pub fn push(&mut self, kind: EventKind) -> Seq {
        let seq = Seq::new(self.events.len() as u64 + 1);
        self.events.push(Event {
            seq,
            recorded_at: self.now,
            kind,
        });
        seq
    }

    /// Moves the clock forward for the events that follow.
    pub fn advance(&mut self, by: Duration) -> &mut HistoryBuilder {
        self.now = self.now.saturating_add(by);
        self
    }

    /// The events so far.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Validates the events and returns the recorded history.
    pub fn build(self) -> Result<RecordedHistory> {
        RecordedHistory::new(self.events)
    }
}

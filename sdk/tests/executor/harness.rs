//! A run driven by hand: the test plays the world (activity results, timers, signals) and
//! every live step is checked by replaying the whole history from scratch.

use std::time::Duration;

use reprise_sdk::history::*;
use reprise_sdk::{Execution, Registry, RunStatus};
use serde::Serialize;

pub(crate) struct Run {
    pub(crate) registry: Registry,
    pub(crate) execution: Execution,
    pub(crate) history: Vec<Event>,
    pub(crate) now: Timestamp,
}

pub(crate) fn payload<T: Serialize>(value: T) -> Payload {
    Payload::encode(&value, &Limits::DEFAULT).unwrap()
}

impl Run {
    pub(crate) fn start<I: Serialize>(registry: Registry, workflow_type: &str, input: I) -> Run {
        let started = HistoryBuilder::started(workflow_type, "wf-1", payload(input))
            .unwrap()
            .events()[0]
            .clone();
        let now = started.recorded_at;
        let (execution, step) = Execution::start(&registry, started).unwrap();
        let run = Run {
            registry,
            execution,
            history: step.events,
            now,
        };
        run.check_replay();
        run
    }

    /// Applies one input live, then checks that a fresh replay of the whole history agrees.
    pub(crate) fn input(&mut self, kind: EventKind) {
        self.now = self.now.saturating_add(Duration::from_millis(10));
        let step = self.execution.step([(self.now, kind)]).unwrap();
        self.history.extend(step.events);
        self.check_replay();
    }

    pub(crate) fn try_input(&mut self, kind: EventKind) -> Result<(), reprise_sdk::Error> {
        self.now = self.now.saturating_add(Duration::from_millis(10));
        let step = self.execution.step([(self.now, kind)])?;
        self.history.extend(step.events);
        Ok(())
    }

    pub(crate) fn check_replay(&self) {
        RecordedHistory::new(self.history.clone()).expect("live history is valid");
        let replayed = Execution::replay(&self.registry, &self.history).expect("history replays");
        assert_eq!(replayed.status(), self.execution.status());
        assert_eq!(replayed.last_seq(), self.execution.last_seq());
    }

    pub(crate) fn status(&self) -> &RunStatus {
        self.execution.status()
    }

    pub(crate) fn output<T: serde::de::DeserializeOwned>(&self) -> T {
        match self.status() {
            RunStatus::Completed(p) => p.decode().unwrap(),
            other => panic!("run is {other:?}, not completed"),
        }
    }

    pub(crate) fn kinds(&self) -> Vec<&'static str> {
        self.history.iter().map(|e| e.kind.name()).collect()
    }

    fn is_resolved(&self, seq: Seq) -> bool {
        self.history.iter().any(|e| match &e.kind {
            EventKind::ActivityCompleted(x) => x.scheduled == seq,
            EventKind::ActivityFailed(x) => x.scheduled == seq,
            EventKind::ActivityTimedOut(x) => x.scheduled == seq,
            EventKind::ActivityCancelled(x) => x.scheduled == seq,
            EventKind::TimerFired(x) => x.started == seq,
            EventKind::TimerCancelled(x) => x.started == seq,
            EventKind::ChildWorkflowCompleted(x) => x.started == seq,
            EventKind::ChildWorkflowFailed(x) => x.started == seq,
            _ => false,
        })
    }

    /// Open activities: scheduled and not resolved, oldest first, with their type names.
    pub(crate) fn open_activities(&self) -> Vec<(Seq, String)> {
        self.history
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::ActivityScheduled(s) if !self.is_resolved(e.seq) => {
                    Some((e.seq, s.activity_type.to_string()))
                }
                _ => None,
            })
            .collect()
    }

    pub(crate) fn open_timers(&self) -> Vec<Seq> {
        self.history
            .iter()
            .filter(|e| matches!(e.kind, EventKind::TimerStarted(_)) && !self.is_resolved(e.seq))
            .map(|e| e.seq)
            .collect()
    }

    pub(crate) fn open_children(&self) -> Vec<Seq> {
        self.history
            .iter()
            .filter(|e| {
                matches!(e.kind, EventKind::ChildWorkflowStarted(_)) && !self.is_resolved(e.seq)
            })
            .map(|e| e.seq)
            .collect()
    }

    /// Completes the oldest open activity named `name` with `result`.
    pub(crate) fn complete<T: Serialize>(&mut self, name: &str, result: T) -> Seq {
        let seq = self.open_activity(name);
        self.input(EventKind::ActivityCompleted(ActivityCompleted {
            scheduled: seq,
            result: payload(result),
            attempt: 1,
        }));
        seq
    }

    pub(crate) fn open_activity(&self, name: &str) -> Seq {
        self.open_activities()
            .into_iter()
            .find(|(_, n)| n == name)
            .map(|(seq, _)| seq)
            .unwrap_or_else(|| panic!("no open activity {name}; history: {:?}", self.kinds()))
    }

    pub(crate) fn fire(&mut self, started: Seq) {
        self.input(EventKind::TimerFired(TimerFired { started }));
    }

    pub(crate) fn signal<T: Serialize>(&mut self, name: &str, value: T) {
        self.input(EventKind::SignalReceived(SignalReceived {
            name: SignalName::new(name).unwrap(),
            payload: payload(value),
        }));
    }

    pub(crate) fn cancel(&mut self) {
        self.input(EventKind::CancelRequested(CancelRequested {
            reason: "test".into(),
        }));
    }
}

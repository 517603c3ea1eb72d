//! The direct path: a run stepped on a notification's word, in one statement with no claim
//! (see `store/step/direct.rs` for what the statement checks).

use reprise_history::{ChainHash, Event, EventKind, RunId, Seq, Timestamp};
use reprise_sdk::{Effects, Execution, RunIdentity};

use super::spans::{Orchestrator, StepOf, StepSpan};
use super::{Cached, Engine};
use crate::store::{DirectStep, LoopConnection, RunHint};
use crate::telemetry::StepPath;

/// What a hint named, read from the tables.
enum HintRead {
    /// A new run's first event, as stored.
    Started { run_id: RunId, event: Vec<u8> },
    /// One input in a held run's inbox: its row, its time and its encoded input.
    Input {
        run_id: RunId,
        inbox_id: i64,
        at: Timestamp,
        input: Vec<u8>,
    },
}

/// A step taken on a hint's word, not yet written.
struct HintedStep {
    /// The orchestrator, stepped.
    cached: Cached,
    /// The head it was stepped from.
    head_seq: Seq,
    /// The inbox rows the step applied.
    inbox_ids: Vec<i64>,
    /// The step's events.
    events: Vec<Event>,
    /// Whether it is the run's first step.
    first: bool,
    span: StepSpan,
}

impl Engine {
    /// Steps the run a lone notification names, in one statement with no claim (see
    /// `store/step/direct.rs`), if this engine can: the notification names a new run, or one
    /// input for a run whose orchestrator this engine holds at its head. Returns whether the
    /// step was written. When it was not, nothing was, the orchestrator it stepped is dropped
    /// (the batch path rebuilds it from history), and the batch path takes the run.
    pub(super) async fn step_hinted(&self, conn: &mut LoopConnection, hint: RunHint) -> bool {
        let run_id = hint.run_id();
        let read = match self.read_hinted(conn, hint).await {
            Ok(read) => read,
            Err(e) => {
                tracing::debug!(run_id = %run_id, error = %e, "reading what a hint names failed; the batch path takes the run");
                return false;
            }
        };
        let Some(mut direct) = read.and_then(|read| self.step_from_hint(read)) else {
            tracing::debug!(run_id = %run_id, "a hint this engine cannot use");
            return false;
        };
        let identity = RunIdentity {
            workflow_id: &direct.cached.workflow_id,
            run_id,
            parent: direct.cached.parent.as_ref(),
            trace: direct.span.context(),
        };
        let effects = Effects::of_step(identity, &direct.events, &direct.cached.execution);
        // Local activities run only while a batch holds the run (see `local.rs`). What a step
        // does to updates is written with it, in one transaction (see `store/step/direct.rs`).
        if !effects.are_rows_and_updates_only() || direct.cached.execution.awaits_local_activities()
        {
            tracing::debug!(run_id = %run_id, "a step with statements or local activities of its own; the batch path takes the run");
            direct.span.refused();
            return false;
        }
        let closes = effects.close.is_some();
        let step = DirectStep {
            run_id,
            head_seq: direct.head_seq,
            head_hash: direct.cached.head_hash,
            inbox_ids: &direct.inbox_ids,
            events: &direct.events,
            effects: &effects,
            trace: direct.span.context(),
        };
        match conn
            .run(async |conn| self.store.step_direct(conn, step).await)
            .await
        {
            Ok(Some(head_hash)) => {
                drop(effects);
                direct.cached.execution.written();
                direct.span.written(direct.head_seq, &direct.events);
                self.count_step(&direct.cached, direct.first);
                if !closes {
                    direct.cached.head_hash = head_hash;
                    self.put_cached(run_id, direct.cached);
                }
                true
            }
            Ok(None) => {
                tracing::debug!(run_id = %run_id, "the run moved since the hint; the batch path takes it");
                direct.span.refused();
                false
            }
            Err(e) => {
                tracing::debug!(run_id = %run_id, error = %e, "a direct step failed; the batch path takes the run");
                direct.span.refused();
                false
            }
        }
    }

    /// What a hint names, read (notifications carry no user data), if this engine can use it:
    /// not for a run it already holds (a start) or does not hold (an input). `None` also when
    /// the run is not due or the row is gone. (A start of a type or queue this engine does not
    /// serve is passed over once its first event is decoded.)
    async fn read_hinted(
        &self,
        conn: &mut LoopConnection,
        hint: RunHint,
    ) -> crate::error::Result<Option<HintRead>> {
        match hint {
            RunHint::Started { run_id } => {
                if self.is_cached(run_id) {
                    return Ok(None);
                }
                let event = conn
                    .run(async |conn| self.store.hinted_start(conn, run_id).await)
                    .await?;
                Ok(event.map(|event| HintRead::Started { run_id, event }))
            }
            RunHint::Input { run_id, inbox_id } => {
                if !self.is_cached(run_id) {
                    return Ok(None);
                }
                let input = conn
                    .run(async |conn| self.store.hinted_input(conn, run_id, inbox_id).await)
                    .await?;
                Ok(input.map(|(at, input)| HintRead::Input {
                    run_id,
                    inbox_id,
                    at,
                    input,
                }))
            }
        }
    }

    /// The step a hint asks for, taken on the orchestrator it concerns: a new one started live
    /// from the run's first event, or this engine's cached one. `None` when the hint cannot be
    /// used here (a run held elsewhere or already here, a type or a queue this process does not
    /// run, bytes that do not decode, a step that fails: the batch path deals with each
    /// properly).
    fn step_from_hint(&self, hint: HintRead) -> Option<HintedStep> {
        let limits = self.store.limits();
        match hint {
            HintRead::Started { run_id, event } => {
                let started = Event::decode(&event, limits).ok()?;
                let EventKind::WorkflowStarted(s) = &started.kind else {
                    return None;
                };
                let known = self
                    .known_types
                    .iter()
                    .any(|t| t == s.workflow_type.as_str())
                    && self
                        .options
                        .queues
                        .iter()
                        .any(|q| q == s.task_queue.as_str());
                if started.seq != Seq::new(1)
                    || s.run_id != run_id
                    || !known
                    || self.is_cached(run_id)
                {
                    return None;
                }
                let parent = s.parent.clone();
                let workflow_id = s.workflow_id.clone();
                let workflow_type = s.workflow_type.clone();
                let trace = s.trace_context.clone();
                let head_hash = ChainHash::GENESIS.next_with(self.store.chain_key(), &event);
                let of = StepOf {
                    workflow_type: &workflow_type,
                    workflow_id: &workflow_id,
                    run_id,
                    recorded: trace.as_ref(),
                };
                let span = StepSpan::begin(of, StepPath::direct, Orchestrator::New);
                let (execution, step) = span
                    .in_scope(|| Execution::start(&self.registry, started))
                    .ok()?;
                self.foreign.watch(run_id, &execution);
                Some(HintedStep {
                    cached: Cached {
                        execution,
                        workflow_id,
                        workflow_type,
                        parent,
                        head_hash,
                        trace,
                    },
                    head_seq: Seq::new(1),
                    inbox_ids: Vec::new(),
                    events: step.events.into_iter().skip(1).collect(),
                    first: true,
                    span,
                })
            }
            HintRead::Input {
                run_id,
                inbox_id,
                at,
                input,
            } => {
                let input = EventKind::decode(&input, limits).ok()?;
                let mut cached = self.take_cached(run_id)?;
                self.store.metrics().cache_lookup(true);
                let head_seq = cached.execution.last_seq();
                let span = StepSpan::begin(
                    cached.step_of(run_id),
                    StepPath::direct,
                    Orchestrator::Cached,
                );
                let step = span
                    .in_scope(|| cached.execution.step([(at, input)]))
                    .ok()?;
                Some(HintedStep {
                    cached,
                    head_seq,
                    inbox_ids: vec![inbox_id],
                    events: step.events,
                    first: false,
                    span,
                })
            }
        }
    }
}

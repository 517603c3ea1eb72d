//! The direct path: a run stepped on a notification's word, in one statement with no claim
//! (see `store/step/direct.rs` for what the statement checks).

use reprise_history::{ChainHash, Event, EventKind, Seq};
use reprise_sdk::{Effects, Execution, RunIdentity};

use super::spans::{Orchestrator, StepOf, StepSpan};
use super::{Cached, Engine};
use crate::store::{DirectStep, LoopConnection, RunHint};
use crate::telemetry::StepPath;

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
    /// `store/step/direct.rs`), if this engine can: the notification carries a new run's first
    /// event, or one input for a run whose orchestrator this engine holds at its head. Returns
    /// whether the step was written. When it was not, nothing was, the orchestrator it stepped
    /// is dropped (the batch path rebuilds it from history), and the batch path takes the run.
    pub(super) async fn step_hinted(&self, conn: &mut LoopConnection, hint: RunHint) -> bool {
        let run_id = hint.run_id();
        let Some(mut direct) = self.step_from_hint(hint) else {
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

    /// The step a hint asks for, taken on the orchestrator it concerns: a new one started live
    /// from the hint's first event, or this engine's cached one. `None` when the hint cannot be
    /// used here (a run held elsewhere or already here, a type or a queue this process does not
    /// run, bytes that do not decode, a step that fails: the batch path deals with each
    /// properly).
    fn step_from_hint(&self, hint: RunHint) -> Option<HintedStep> {
        let limits = self.store.limits();
        match hint {
            RunHint::Started { run_id, event } => {
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
                let head_hash = ChainHash::GENESIS.next(&event);
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
            RunHint::Input {
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

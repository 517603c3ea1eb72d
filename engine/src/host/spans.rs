//! The span of each step: which run, which events, which path, whether the orchestrator came
//! from the cache; a child of the run's recorded trace context, so that a run's steps join
//! the trace its starter began, in whichever engine process takes them.

use reprise_history::{Event, RunId, Seq, TraceContext, WorkflowId, WorkflowType};
use tracing::Span;
use tracing::field::Empty;

use crate::telemetry::StepPath;
use crate::telemetry::trace;

/// Where a step's orchestrator came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Orchestrator {
    /// The sticky cache (a hit).
    Cached,
    /// Replayed from history (a miss).
    Replayed,
    /// Started: the run's first step.
    New,
}

impl Orchestrator {
    fn as_str(self) -> &'static str {
        match self {
            Orchestrator::Cached => "cached",
            Orchestrator::Replayed => "replayed",
            Orchestrator::New => "new",
        }
    }
}

/// One run's step, traced.
pub(super) struct StepSpan {
    span: Span,
    /// What the step's effects carry on: the step span's context when it is traced, else the
    /// run's recorded one (so that activities and children still join the starter's trace
    /// when this process exports nothing).
    context: Option<TraceContext>,
}

/// Which run a step belongs to, for its span.
pub(super) struct StepOf<'a> {
    pub(super) workflow_type: &'a WorkflowType,
    pub(super) workflow_id: &'a WorkflowId,
    pub(super) run_id: RunId,
    /// The trace the run was started in.
    pub(super) recorded: Option<&'a TraceContext>,
}

impl StepSpan {
    /// The span of a step taken on `path`, with an orchestrator that was in the cache
    /// ([`Orchestrator::Cached`]), rebuilt from history, or new.
    pub(super) fn begin(run: StepOf<'_>, path: StepPath, from: Orchestrator) -> StepSpan {
        let span = tracing::info_span!(
            "workflow_step",
            workflow_type = %run.workflow_type,
            workflow_id = %run.workflow_id,
            run_id = %run.run_id,
            path = ?path,
            orchestrator = from.as_str(),
            first_seq = Empty,
            last_seq = Empty,
            outcome = Empty,
        );
        if let Some(recorded) = run.recorded {
            trace::set_parent(&span, recorded);
        }
        let context = trace::context_of(&span).or_else(|| run.recorded.cloned());
        StepSpan { span, context }
    }

    /// Records that a direct step was thrown away unwritten (the batch path takes the run).
    pub(super) fn refused(&self) {
        self.span.record("outcome", "refused");
    }

    /// Runs `f` (the orchestrator's step) inside the span.
    pub(super) fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        self.span.in_scope(f)
    }

    /// The trace the step's activities and children join.
    pub(super) fn context(&self) -> Option<&TraceContext> {
        self.context.as_ref()
    }

    /// Records that the step was written, and the seqs it wrote after `head`; a step that
    /// had nothing to write (its run was claimed with no input it could apply) is `empty`.
    pub(super) fn written(&self, head: Seq, events: &[Event]) {
        let Some(last) = events.last() else {
            self.span.record("outcome", "empty");
            return;
        };
        self.span.record("outcome", "written");
        self.span.record("first_seq", head.get() + 1);
        self.span.record("last_seq", last.seq.get());
    }
}

//! Trace context across processes and time: a span's OpenTelemetry context as the W3C
//! [`TraceContext`] that history and task rows record, and back.
//!
//! A client's start records its span's context in the run's first event; each step's span is
//! a child of that context (or, for a child run, of the parent's step); each activity attempt's
//! span is a child of the step that scheduled it, through the context its task row carries.
//! So one trace shows start -> steps -> activities -> children whichever processes ran them,
//! even weeks apart. Without an OpenTelemetry layer in the process's subscriber every span's
//! context is empty and nothing is recorded: tracing costs a run nothing when it is off.

use std::str::FromStr;

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use reprise_history::TraceContext;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The context of `span`, if an OpenTelemetry layer traces it.
pub(crate) fn context_of(span: &Span) -> Option<TraceContext> {
    if span.is_disabled() {
        return None;
    }
    let cx = span.context();
    let otel = cx.span();
    let sc = otel.span_context();
    if !sc.is_valid() {
        return None;
    }
    let parent = format!(
        "00-{}-{}-{:02x}",
        sc.trace_id(),
        sc.span_id(),
        sc.trace_flags().to_u8()
    );
    TraceContext::new(parent, sc.trace_state().header()).ok()
}

/// The context of the caller's current span, if it is traced.
pub(crate) fn current() -> Option<TraceContext> {
    context_of(&Span::current())
}

/// Makes `span` a child of a recorded context. Call before the span is first entered; a
/// span no OpenTelemetry layer traces is left alone.
pub(crate) fn set_parent(span: &Span, recorded: &TraceContext) {
    if span.is_disabled() {
        return;
    }
    let Some(remote) = span_context(recorded) else {
        return;
    };
    let cx = opentelemetry::Context::new().with_remote_span_context(remote);
    if let Err(e) = span.set_parent(cx) {
        tracing::debug!(error = %e, "a recorded trace context was not applied");
    }
}

/// A recorded context as OpenTelemetry's, remote. `TraceContext` is validated when built, so
/// `None` means only that OpenTelemetry reads it differently (it is then not used).
fn span_context(recorded: &TraceContext) -> Option<SpanContext> {
    let trace_id = TraceId::from_hex(recorded.trace_id()).ok()?;
    let span_id = SpanId::from_hex(recorded.span_id()).ok()?;
    let flags = if recorded.sampled() {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    let state = TraceState::from_str(recorded.tracestate()).unwrap_or_default();
    Some(SpanContext::new(trace_id, span_id, flags, true, state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_context_reads_back_as_the_same_span_context() {
        let recorded = TraceContext::new(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "congo=t61rcWkgMzE",
        )
        .unwrap();
        let sc = span_context(&recorded).unwrap();
        assert!(sc.is_valid() && sc.is_remote() && sc.is_sampled());
        assert_eq!(sc.trace_id().to_string(), recorded.trace_id());
        assert_eq!(sc.span_id().to_string(), recorded.span_id());
        assert_eq!(sc.trace_state().header(), "congo=t61rcWkgMzE");
    }

    #[test]
    fn without_a_layer_nothing_is_recorded() {
        let span = tracing::info_span!("untraced");
        assert_eq!(context_of(&span), None);
        set_parent(
            &span,
            &TraceContext::new(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "",
            )
            .unwrap(),
        );
    }
}

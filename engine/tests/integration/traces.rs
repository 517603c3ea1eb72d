//! One trace from the caller to every activity: the client's start records its span's context
//! in the run's first event; each step's span is its child; each activity attempt's span is a
//! child of the step that scheduled it, through the context its task row carries (the worker
//! has no span of the step in memory); a child run's steps are children of the parent's step.

use std::collections::{HashMap, HashSet};

use opentelemetry::trace::{SpanId, TraceId, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use reprise_engine::{Client, Store};
use reprise_history::EventKind;
use reprise_sdk::{Registry, WorkflowContext, WorkflowDef, WorkflowError};
use tracing::Instrument;
use tracing_subscriber::prelude::*;

use crate::engine::{GREET, HELLO, registry, within};
use crate::hosts::{Running, engine_options, run_engine, run_worker, worker_options};
use crate::support::TestDb;

const ORDER: WorkflowDef<String, String> = WorkflowDef::new("traced-order");

async fn order(ctx: WorkflowContext, name: String) -> Result<String, WorkflowError> {
    let greeting = ctx.activity(GREET, &name).await?;
    let child = ctx.child(HELLO, &format!("{name}-child"), &name).await?;
    Ok(format!("{greeting} / {child}"))
}

fn traced_registry() -> Registry {
    registry().workflow(ORDER, order).build().unwrap()
}

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.as_str().into_owned())
}

/// Everything runs on this test's one thread, so the subscriber set for the thread sees the
/// spans of the client, the engine and the worker.
#[tokio::test(flavor = "current_thread")]
async fn one_trace_holds_the_start_the_steps_the_attempts_and_the_child() {
    let db = TestDb::migrated().await;
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    let _guard = tracing::subscriber::set_default(subscriber);

    let store = Store::new(db.pool.clone());
    let client = Client::new(store.clone());
    let mut running = Running::new();
    run_engine(&store, traced_registry(), engine_options(), &mut running);
    run_worker(&store, traced_registry(), worker_options(), &mut running);

    let request = tracing::info_span!("request");
    let handle = client
        .start(ORDER, "order-1", &"Ada".to_string())
        .instrument(request.clone())
        .await
        .unwrap();
    let result = within(handle.result()).await.unwrap();
    assert_eq!(result, "hello, Ada / hello, Ada");
    let history = client.export(handle.run_id()).await.unwrap();
    drop(request);
    // The caller hears of the close at the commit; the engine ends the step's span just
    // after, and the child's steps and the attempts end in their own tasks: wait for the
    // parent's closing step, both attempts and the child's two steps to be exported.
    let closing_seq = history.events().len().to_string();
    let parent_run = handle.run_id().to_string();
    let spans = within(async {
        loop {
            let spans = exporter.get_finished_spans().unwrap();
            let written = |s: &&SpanData| {
                s.name == "workflow_step" && attribute(s, "outcome").as_deref() == Some("written")
            };
            let closed = spans.iter().filter(written).any(|s| {
                attribute(s, "run_id").as_deref() == Some(parent_run.as_str())
                    && attribute(s, "last_seq").as_deref() == Some(closing_seq.as_str())
            });
            let child_steps = spans
                .iter()
                .filter(written)
                .filter(|s| attribute(s, "run_id").as_deref() != Some(parent_run.as_str()))
                .count();
            let attempts = spans
                .iter()
                .filter(|s| s.name == "activity_attempt")
                .count();
            if closed && child_steps >= 2 && attempts == 2 {
                return spans;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    drop(running);

    let named =
        |name: &str| -> Vec<&SpanData> { spans.iter().filter(|s| s.name == name).collect() };
    let one = |name: &str| -> &SpanData {
        let found = named(name);
        assert_eq!(found.len(), 1, "one {name} span in {spans:#?}");
        found[0]
    };
    let request = one("request");
    let trace: TraceId = request.span_context.trace_id();
    let start = one("start_workflow");
    assert_eq!(start.parent_span_id, request.span_context.span_id());
    assert_eq!(attribute(start, "workflow_id").as_deref(), Some("order-1"));

    // The run's first event holds the start span's context.
    let EventKind::WorkflowStarted(started) = &history.events()[0].kind else {
        panic!("no WorkflowStarted");
    };
    let recorded = started.trace_context.as_ref().expect("a recorded context");
    assert_eq!(recorded.trace_id(), trace.to_string());
    assert_eq!(recorded.span_id(), start.span_context.span_id().to_string());

    // A direct step the engine threw away (the batch path took the run) is traced too, as
    // refused; the steps written are what the trace is about.
    let steps: Vec<&SpanData> = named("workflow_step")
        .into_iter()
        .filter(|s| attribute(s, "outcome").as_deref() == Some("written"))
        .collect();
    let (parent_steps, child_steps): (Vec<&SpanData>, Vec<&SpanData>) = steps
        .iter()
        .partition(|s| attribute(s, "run_id").as_deref() == Some(parent_run.as_str()));
    assert!(
        parent_steps.len() >= 3,
        "start, activity, child: {steps:#?}"
    );
    assert!(child_steps.len() >= 2, "start, activity: {steps:#?}");
    let ids = |spans: &[&SpanData]| -> HashSet<SpanId> {
        spans.iter().map(|s| s.span_context.span_id()).collect()
    };
    let parent_step_ids = ids(&parent_steps);
    let child_step_ids = ids(&child_steps);
    for step in &steps {
        assert_eq!(step.span_context.trace_id(), trace, "{step:#?}");
        assert!(attribute(step, "last_seq").is_some(), "{step:#?}");
    }
    for step in &parent_steps {
        assert_eq!(
            step.parent_span_id,
            start.span_context.span_id(),
            "{step:#?}"
        );
    }
    for step in &child_steps {
        assert!(parent_step_ids.contains(&step.parent_span_id), "{step:#?}");
    }

    // Each attempt is a child of the step that scheduled it: the parent's greeting of a
    // parent step, the child's of a child step.
    let attempts = named("activity_attempt");
    assert_eq!(attempts.len(), 2, "{attempts:#?}");
    let by_run: HashMap<String, &SpanData> = attempts
        .iter()
        .map(|a| (attribute(a, "run_id").unwrap(), *a))
        .collect();
    let parents_attempt = by_run[&parent_run];
    assert_eq!(parents_attempt.span_context.trace_id(), trace);
    assert!(parent_step_ids.contains(&parents_attempt.parent_span_id));
    let childs_attempt = by_run
        .iter()
        .find(|(run, _)| **run != parent_run)
        .map(|(_, a)| *a)
        .unwrap();
    assert_eq!(childs_attempt.span_context.trace_id(), trace);
    assert!(child_step_ids.contains(&childs_attempt.parent_span_id));

    let result_spans = named("workflow_result");
    assert!(!result_spans.is_empty());
    db.drop_database().await;
}

/// Without an OpenTelemetry layer nothing is recorded: a run's first event keeps the shape
/// (and bytes) it had before traces existed.
#[tokio::test(flavor = "current_thread")]
async fn an_untraced_start_records_no_context() {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let client = Client::new(store.clone());
    let mut running = Running::new();
    run_engine(&store, traced_registry(), engine_options(), &mut running);
    run_worker(&store, traced_registry(), worker_options(), &mut running);
    let handle = client
        .start(ORDER, "order-2", &"Bo".to_string())
        .await
        .unwrap();
    within(handle.result()).await.unwrap();
    let history = client.export(handle.run_id()).await.unwrap();
    let EventKind::WorkflowStarted(started) = &history.events()[0].kind else {
        panic!("no WorkflowStarted");
    };
    assert_eq!(started.trace_context, None);
    drop(running);
    db.drop_database().await;
}

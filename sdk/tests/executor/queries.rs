//! Queries and custom status: answered from the live run and from a replay alike, recording
//! nothing; status written once per live change, never on replay.

use reprise_sdk::history::*;
use reprise_sdk::*;
use serde::{Deserialize, Serialize};

use crate::harness::{Run, payload};

const STEP: ActivityDef<u32, u32> = ActivityDef::new("step");
const DONE: QueryDef<(), u32> = QueryDef::new("done");
const PLUS: QueryDef<u32, u32> = QueryDef::new("plus");
const BOOM: QueryDef<(), u32> = QueryDef::new("boom");

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Progress {
    done: u32,
    of: u32,
}

async fn counter(ctx: WorkflowContext, n: u32) -> Result<u32, WorkflowError> {
    let done = WorkflowState::new(0u32);
    ctx.on_query(DONE, &done, |done, ()| *done);
    ctx.on_query(PLUS, &done, |done, more| *done + more);
    ctx.on_query(BOOM, &done, |_, ()| panic!("a query handler that panics"));
    for i in 0..n {
        ctx.activity(STEP, &i).await?;
        done.update(|d| *d += 1);
        ctx.set_status(&Progress { done: i + 1, of: n })
            .map_err(|e| WorkflowError::failed("Status", e.to_string()))?;
    }
    Ok(done.get())
}

fn registry() -> Registry {
    Registry::builder()
        .workflow(WorkflowDef::<u32, u32>::new("counter"), counter)
        .build()
        .unwrap()
}

fn ask<I: Serialize>(execution: &Execution, name: &str, input: I) -> Result<u32, QueryError> {
    execution
        .query(name, &payload(input))
        .map(|answer| answer.decode().unwrap())
}

#[test]
fn a_query_reads_the_state_live_and_replayed_and_records_nothing() {
    let mut run = Run::start(registry(), "counter", 3u32);
    assert_eq!(ask(&run.execution, "done", ()), Ok(0));
    run.complete("step", 0u32);
    run.complete("step", 1u32);
    let before = run.history.len();
    assert_eq!(ask(&run.execution, "done", ()), Ok(2));
    assert_eq!(ask(&run.execution, "plus", 40u32), Ok(42));
    assert_eq!(run.history.len(), before, "a query appends nothing");
    let replayed = Execution::replay(&run.registry, &run.history).unwrap();
    assert_eq!(
        ask(&replayed, "done", ()),
        Ok(2),
        "replay rebuilds the same state"
    );
    // The run goes on as if never asked.
    run.complete("step", 2u32);
    assert_eq!(run.output::<u32>(), 3);
    let closed = Execution::replay(&run.registry, &run.history).unwrap();
    assert_eq!(
        ask(&closed, "done", ()),
        Ok(3),
        "a closed run answers from its history"
    );
}

#[test]
fn an_unknown_query_names_the_registered_ones_and_bad_input_is_typed() {
    let run = Run::start(registry(), "counter", 1u32);
    match ask(&run.execution, "nope", ()) {
        Err(QueryError::UnknownQuery { name, registered }) => {
            assert_eq!(name, "nope");
            assert_eq!(registered, ["boom", "done", "plus"]);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        ask(&run.execution, "plus", "not a number"),
        Err(QueryError::UndecodableInput { .. })
    ));
}

#[test]
fn a_panicking_query_is_an_error_and_the_run_goes_on() {
    let mut run = Run::start(registry(), "counter", 1u32);
    match ask(&run.execution, "boom", ()) {
        Err(QueryError::Panicked { name, message }) => {
            assert_eq!(name, "boom");
            assert!(message.contains("panics"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(ask(&run.execution, "done", ()), Ok(0));
    run.complete("step", 0u32);
    assert_eq!(run.output::<u32>(), 1);
}

#[test]
fn the_status_is_unwritten_after_a_live_change_only() {
    let mut run = Run::start(registry(), "counter", 2u32);
    assert_eq!(run.execution.unwritten_status(), None, "not set yet");
    run.complete("step", 0u32);
    let status = run.execution.unwritten_status().expect("set by the step");
    assert_eq!(
        status.decode::<Progress>().unwrap(),
        Progress { done: 1, of: 2 }
    );
    run.execution.written();
    assert_eq!(run.execution.unwritten_status(), None, "written");
    // Replay sets it on the way: the rebuilt run holds it, with nothing left to write.
    let replayed = Execution::replay(&run.registry, &run.history).unwrap();
    assert_eq!(replayed.custom_status(), Some(status));
    assert_eq!(replayed.unwritten_status(), None);
    let effects_status = {
        let mut run2 = run;
        run2.complete("step", 1u32);
        run2.execution.unwritten_status()
    };
    assert_eq!(
        effects_status.unwrap().decode::<Progress>().unwrap(),
        Progress { done: 2, of: 2 }
    );
}

#[test]
fn a_status_over_the_limit_is_refused_and_the_old_one_stays() {
    const BIG: WorkflowDef<u32, String> = WorkflowDef::new("big");
    let registry = Registry::builder()
        .workflow(BIG, |ctx: WorkflowContext, _: u32| async move {
            ctx.set_status("small").unwrap();
            let refused = ctx.set_status(&"x".repeat(MAX_STATUS_BYTES + 1));
            Ok(match refused {
                Err(StatusError::TooLarge { limit, .. }) => format!("refused over {limit}"),
                other => format!("{other:?}"),
            })
        })
        .build()
        .unwrap();
    let run = Run::start(registry, "big", 0u32);
    assert_eq!(
        run.output::<String>(),
        format!("refused over {MAX_STATUS_BYTES}")
    );
    let status = run.execution.unwritten_status().unwrap();
    assert_eq!(status.decode::<String>().unwrap(), "small");
}

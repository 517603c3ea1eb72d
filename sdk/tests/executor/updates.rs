//! Updates: checked before they are recorded, handled beside the main code, completed as a
//! decision, and replayed from the recorded acceptance.

use reprise_sdk::history::*;
use reprise_sdk::*;

use crate::harness::{Run, payload};

const RESERVE: ActivityDef<u32, u32> = ActivityDef::new("reserve");
const ADD: UpdateDef<u32, u32> = UpdateDef::new("add");
const CLOSE: UpdateDef<(), ()> = UpdateDef::new("close");

/// Collects items through `add` (each reserved by an activity first) until `close`; refuses
/// an `add` of zero and one after closing.
async fn basket(ctx: WorkflowContext, (): ()) -> Result<u32, WorkflowError> {
    #[derive(Default)]
    struct Basket {
        total: u32,
        closed: bool,
    }
    let basket = WorkflowState::new(Basket::default());
    let state = basket.clone();
    ctx.on_update(ADD, move |ctx, n: u32| {
        let state = state.clone();
        async move {
            let reserved = ctx.activity(RESERVE, &n).await?;
            Ok(state.update(|b| {
                b.total += reserved;
                b.total
            }))
        }
    });
    ctx.validate_update(ADD, &basket, |b, n| {
        if *n == 0 {
            Err("nothing to add".to_string())
        } else if b.closed {
            Err("the basket is closed".to_string())
        } else {
            Ok(())
        }
    });
    let state = basket.clone();
    ctx.on_update(CLOSE, move |_, ()| {
        let state = state.clone();
        async move {
            state.update(|b| b.closed = true);
            Ok(())
        }
    });
    let closed = basket.clone();
    ctx.wait_until(move || closed.read(|b| b.closed)).await?;
    Ok(basket.read(|b| b.total))
}

fn registry() -> Registry {
    Registry::builder()
        .workflow(WorkflowDef::<(), u32>::new("basket"), basket)
        .build()
        .unwrap()
}

fn update(id: &str, name: &str, input: Payload) -> EventKind {
    EventKind::UpdateAccepted(UpdateAccepted {
        update_id: UpdateId::new(id).unwrap(),
        name: UpdateName::new(name).unwrap(),
        input,
    })
}

fn rejections(run: &Run) -> Vec<(String, UpdateRefusal)> {
    run.execution
        .unwritten_rejections()
        .into_iter()
        .map(|r| (r.update_id.to_string(), r.refusal))
        .collect()
}

#[test]
fn an_accepted_update_runs_its_handler_and_completes_as_a_decision() {
    let mut run = Run::start(registry(), "basket", ());
    run.input(update("u1", "add", payload(2u32)));
    assert_eq!(
        run.kinds()[1..],
        ["UpdateAccepted", "ActivityScheduled"],
        "the handler runs at once"
    );
    run.complete("reserve", 2u32);
    let EventKind::UpdateCompleted(done) = &run.history.last().unwrap().kind else {
        panic!("{:?}", run.kinds())
    };
    assert_eq!(done.accepted, Seq::new(2));
    assert_eq!(done.update_id.as_str(), "u1");
    let UpdateOutcome::Completed(result) = &done.outcome else {
        panic!("{:?}", done.outcome)
    };
    assert_eq!(result.decode::<u32>().unwrap(), 2);
    // The main code sees the state the handler changed: the condition is checked again.
    run.input(update("u2", "close", payload(())));
    assert_eq!(run.output::<u32>(), 2);
}

#[test]
fn a_refused_update_is_not_recorded_and_the_run_goes_on() {
    let mut run = Run::start(registry(), "basket", ());
    let before = run.history.len();
    run.input(update("zero", "add", payload(0u32)));
    run.input(update("typo", "ad", payload(1u32)));
    run.input(update("text", "add", payload("two")));
    assert_eq!(
        run.history.len(),
        before,
        "nothing recorded: {:?}",
        run.kinds()
    );
    let refused = rejections(&run);
    assert_eq!(refused.len(), 3, "{refused:?}");
    assert_eq!(
        refused[0],
        (
            "zero".to_string(),
            UpdateRefusal::Rejected {
                name: "add".into(),
                reason: "nothing to add".into()
            }
        )
    );
    assert!(matches!(
        &refused[1].1,
        UpdateRefusal::UnknownUpdate { registered, .. } if registered == &["add", "close"]
    ));
    assert!(matches!(
        &refused[2].1,
        UpdateRefusal::UndecodableInput { .. }
    ));
    run.execution.written();
    assert!(rejections(&run).is_empty());
    // The validator reads the state as it stands: closed, an add is refused.
    run.input(update("c", "close", payload(())));
    assert_eq!(run.output::<u32>(), 0);
}

#[test]
fn a_recorded_update_whose_handler_is_gone_is_nondeterminism() {
    let mut run = Run::start(registry(), "basket", ());
    run.input(update("u1", "add", payload(1u32)));
    let without = Registry::builder()
        .workflow(
            WorkflowDef::<(), u32>::new("basket"),
            |ctx: WorkflowContext, ()| async move {
                ctx.cancel_requested().await;
                Ok(0)
            },
        )
        .build()
        .unwrap();
    match Execution::replay(&without, &run.history) {
        Err(reprise_sdk::Error::Nondeterminism(nd)) => {
            assert_eq!(nd.kind.code(), "ND04");
            assert!(nd.to_string().contains("UpdateAccepted(\"add\")"), "{nd}");
        }
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("replayed without the handler"),
    }
}

const APPROVE: UpdateDef<(), ()> = UpdateDef::new("approve");
const SHIPPED: SignalDef<()> = SignalDef::new("shipped");

/// Waits until an update approves it; the update's handler changes the state and then waits
/// for a signal, deciding nothing in between.
async fn approval(ctx: WorkflowContext, (): ()) -> Result<String, WorkflowError> {
    let approved = WorkflowState::new(false);
    let state = approved.clone();
    ctx.on_update(APPROVE, move |ctx, ()| {
        let state = state.clone();
        async move {
            state.update(|a| *a = true);
            ctx.signal(SHIPPED).await?;
            Ok(())
        }
    });
    let seen = approved.clone();
    ctx.wait_until(move || seen.get()).await?;
    Ok("approved".to_string())
}

#[test]
fn a_condition_sees_a_change_a_handler_made_without_deciding_anything() {
    let registry = Registry::builder()
        .workflow(WorkflowDef::<(), String>::new("approval"), approval)
        .build()
        .unwrap();
    let mut run = Run::start(registry, "approval", ());
    run.input(update("a1", "approve", payload(())));
    assert_eq!(run.output::<String>(), "approved", "{:?}", run.kinds());
}

#[test]
fn an_id_accepted_before_runs_once_and_its_outcome_is_given_again() {
    let mut run = Run::start(registry(), "basket", ());
    run.input(update("u1", "add", payload(2u32)));
    run.complete("reserve", 2u32);
    let events = run.history.len();
    run.input(update("u1", "add", payload(5u32)));
    assert_eq!(
        run.history.len(),
        events,
        "nothing recorded: {:?}",
        run.kinds()
    );
    let answers = run.execution.unwritten_answers();
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].0.as_str(), "u1");
    let UpdateOutcome::Completed(result) = &answers[0].1 else {
        panic!("{:?}", answers[0].1)
    };
    assert_eq!(result.decode::<u32>().unwrap(), 2, "the first outcome");
    // While the first is still running, a repeat is swallowed: its completion answers both.
    run.input(update("u2", "add", payload(1u32)));
    run.execution.written();
    run.input(update("u2", "add", payload(1u32)));
    assert!(run.execution.unwritten_answers().is_empty());
    assert!(rejections(&run).is_empty());
}

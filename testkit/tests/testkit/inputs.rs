//! A workflow whose inputs come from `HashMap` order: every decision matches by type, so only
//! comparing inputs finds it — `check_determinism` and the strict `Replayer` do, at the seq of
//! the first moved input and the line of the call.

use std::collections::HashMap;

use reprise_sdk::*;
use reprise_testkit::{Error, Replayer, TestEnv, check_determinism};

const RESERVE: ActivityDef<String, u32> = ActivityDef::new("reserve");
const ALLOCATE: WorkflowDef<u32, u32> = WorkflowDef::new("allocate");

/// The line of `allocate`'s `ctx.activity` call, found in this file (the needle is split so
/// that it matches only the call).
fn reserve_line() -> u32 {
    let needle = concat!("ctx.activity(RESERVE", ", warehouse)");
    let index = include_str!("inputs.rs")
        .lines()
        .position(|line| line.contains(needle))
        .expect("the call is in this file");
    u32::try_from(index + 1).unwrap()
}

/// Reserves `units` at each of twelve warehouses. The bug: each map has its own order, so on
/// replay the reservations are attached to other warehouses.
async fn allocate(ctx: WorkflowContext, units: u32) -> Result<u32, WorkflowError> {
    let warehouses: HashMap<String, u32> = (0..12).map(|i| (format!("warehouse-{i}"), i)).collect();
    let reservations = warehouses
        .keys()
        .map(|warehouse| ctx.activity(RESERVE, warehouse));
    let mut reserved = 0;
    for reservation in futures::future::join_all(reservations).await {
        reserved += reservation?;
    }
    Ok(reserved * units)
}

fn env() -> Result<TestEnv, Error> {
    let registry = Registry::builder()
        .workflow(ALLOCATE, allocate)
        .build()
        .map_err(Error::from)?;
    let mut env = TestEnv::new(registry);
    env.stand_in(RESERVE, |_: String, _| Ok(1))?;
    Ok(env)
}

fn assert_nd08_at_the_call(error: &reprise_sdk::Error) {
    let reprise_sdk::Error::Nondeterminism(n) = error else {
        panic!("expected ND08, got {error}");
    };
    assert_eq!(n.kind.code(), "ND08", "{n}");
    // Seq 1 is the start; the twelve reservations follow it.
    assert!((2..=13).contains(&n.seq.get()), "{n}");
    assert_eq!(n.location.map(|l| l.line), Some(reserve_line()), "{n}");
    assert!(
        n.to_string().contains(
            "history has ActivityScheduled(\"reserve\"), but the code gives it another input (first different at $)"
        ),
        "{n}"
    );
}

#[test]
fn check_determinism_finds_inputs_drawn_from_hashmap_order() {
    let err = check_determinism(env, ALLOCATE, &2, 0..20).unwrap_err();
    match &err {
        Error::NotDeterministic { source, .. } => assert_nd08_at_the_call(source),
        other => panic!("expected a nondeterminism, got {other}"),
    }
}

#[test]
fn the_strict_replayer_finds_them_and_the_default_one_lets_them_pass() {
    let mut env = env().unwrap();
    env.start(ALLOCATE, "allocate-1", &2).unwrap();
    env.run_until_idle().unwrap();
    let history = env.history("allocate-1").unwrap();
    let registry = env.registry().clone();
    Replayer::new(registry.clone()).replay(&history).unwrap();
    match Replayer::new(registry).strict().replay(&history) {
        Err(reprise_testkit::ReplayProblem::Replay(e)) => assert_nd08_at_the_call(&e),
        Err(other) => panic!("expected ND08, got {other}"),
        Ok(()) => panic!("expected ND08, the history replayed"),
    }
}

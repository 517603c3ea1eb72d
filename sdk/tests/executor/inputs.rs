//! Replay rule `COMPARE_INPUTS`: a replayed decision given another input is ND08 — reported by
//! default, failed when strict — and runs recorded before the rule replay as they always did.

use std::collections::HashMap;

use reprise_sdk::history::*;
use reprise_sdk::*;
use serde::{Deserialize, Serialize};

use crate::harness::{Run, payload};

const RESERVE: ActivityDef<Reservation, u32> = ActivityDef::new("reserve");
const COUNT: ActivityDef<HashMap<String, u32>, u32> = ActivityDef::new("count");
const CHILD: WorkflowDef<u32, u32> = WorkflowDef::new("child");
const WF: WorkflowDef<u32, u32> = WorkflowDef::new("wf");

#[derive(Serialize, Deserialize)]
struct Reservation {
    warehouse: String,
    units: u32,
}

fn reserving(warehouse: &'static str) -> Registry {
    Registry::builder()
        .workflow(WF, move |ctx: WorkflowContext, units: u32| async move {
            let reservation = Reservation {
                warehouse: warehouse.into(),
                units,
            };
            Ok(ctx.activity(RESERVE, &reservation).await?)
        })
        .build()
        .unwrap()
}

fn strict(registry: &Registry, history: &[Event]) -> Result<Execution, reprise_sdk::Error> {
    Execution::replay_with(registry, history, InputChanges::Fail)
}

/// The history of `registry`'s run, with its start recorded under `rules`.
fn recorded_under(rules: ReplayRules, registry: Registry) -> Vec<Event> {
    let mut history = Run::start(registry, "wf", 5u32).history;
    if let EventKind::WorkflowStarted(started) = &mut history[0].kind {
        started.replay_rules = rules;
    }
    history
}

/// Recorded: reserve 5 units at "north". Replayed: at "south".
#[test]
fn nd08_a_changed_input_fails_a_strict_replay_at_its_seq_and_line() {
    let history = recorded_under(ReplayRules::CURRENT, reserving("north"));
    let line = line!() + 7;
    let south = Registry::builder()
        .workflow(WF, |ctx: WorkflowContext, units: u32| async move {
            let reservation = Reservation {
                warehouse: "south".into(),
                units,
            };
            Ok(ctx.activity(RESERVE, &reservation).await?)
        })
        .build()
        .unwrap();
    let n = match strict(&south, &history) {
        Err(reprise_sdk::Error::Nondeterminism(n)) => *n,
        Err(other) => panic!("expected ND08, got {other}"),
        Ok(_) => panic!("expected ND08, the history replayed"),
    };
    assert_eq!((n.seq, n.kind.code()), (Seq::new(2), "ND08"));
    assert_eq!(n.location.map(|l| l.line), Some(line));
    let text = n.to_string();
    assert!(
        text.starts_with(
            "nondeterminism ND08 at seq 2: history has ActivityScheduled(\"reserve\"), but the code gives it another input (first different at $.warehouse); "
        ),
        "{text}"
    );
}

#[test]
fn by_default_a_changed_input_is_reported_and_the_replay_goes_on() {
    let history = recorded_under(ReplayRules::CURRENT, reserving("north"));
    let mut replayed = Execution::replay(&reserving("south"), &history).unwrap();
    let changes = replayed.take_input_changes();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(
        (changes[0].seq, changes[0].kind.code()),
        (Seq::new(2), "ND08")
    );
    assert!(replayed.take_input_changes().is_empty(), "taken once");
    // The run goes on with the recorded input: the recorded result resolves the call.
    let step = replayed
        .step([(
            history[1].recorded_at,
            EventKind::ActivityCompleted(ActivityCompleted {
                scheduled: Seq::new(2),
                result: payload(9u32),
                attempt: 1,
            }),
        )])
        .unwrap();
    assert_eq!(step.applied_inputs, 1);
    assert!(matches!(replayed.status(), RunStatus::Completed(_)));
}

#[test]
fn the_same_input_is_not_reported() {
    let history = recorded_under(ReplayRules::CURRENT, reserving("north"));
    let mut replayed = strict(&reserving("north"), &history).unwrap();
    assert!(replayed.take_input_changes().is_empty());
}

/// Runs recorded before the rule keep replaying exactly as they did, strict or not.
#[test]
fn a_run_recorded_before_the_rule_replays_a_changed_input_unchanged() {
    let history = recorded_under(ReplayRules::NONE, reserving("north"));
    let mut replayed = strict(&reserving("south"), &history).unwrap();
    assert!(replayed.take_input_changes().is_empty());
    let mut replayed = Execution::replay(&reserving("south"), &history).unwrap();
    assert!(replayed.take_input_changes().is_empty());
}

/// A `HashMap` in an input serializes in its own order each time; the value is what counts.
#[test]
fn a_map_input_in_another_key_order_is_the_same_input() {
    let registry = Registry::builder()
        .workflow(WF, |ctx: WorkflowContext, n: u32| async move {
            let counts: HashMap<String, u32> = (0..n).map(|i| (format!("bin-{i}"), i)).collect();
            Ok(ctx.activity(COUNT, &counts).await?)
        })
        .build()
        .unwrap();
    let mut history = Run::start(registry.clone(), "wf", 32u32).history;
    for _ in 0..8 {
        let mut replayed = strict(&registry, &history).unwrap();
        assert!(replayed.take_input_changes().is_empty());
    }
    // A value that really changed is still found, at its key.
    if let EventKind::ActivityScheduled(scheduled) = &mut history[1].kind {
        let mut counts: HashMap<String, u32> = scheduled.input.decode().unwrap();
        counts.insert("bin-7".into(), 70);
        scheduled.input = payload(counts);
    }
    let history = RecordedHistory::new(history).unwrap().events().to_vec();
    let err = strict(&registry, &history).err().unwrap().to_string();
    assert!(err.contains("(first different at $[\"bin-7\"])"), "{err}");
}

/// Children and continue-as-new carry inputs too.
#[test]
fn child_and_continue_as_new_inputs_are_compared() {
    let parent = |offset: u32| {
        Registry::builder()
            .workflow(WF, move |ctx: WorkflowContext, n: u32| async move {
                if n == 0 {
                    return Ok(ctx.child(CHILD, "child-1", &offset).await?);
                }
                Err(ctx.continue_as_new(&(n + offset))?)
            })
            .workflow(CHILD, |_ctx: WorkflowContext, n: u32| async move { Ok(n) })
            .build()
            .unwrap()
    };
    let with_child = Run::start(parent(1), "wf", 0u32).history;
    let n = strict(&parent(2), &with_child).err().unwrap().to_string();
    assert!(
        n.starts_with("nondeterminism ND08 at seq 2: history has ChildWorkflowStarted("),
        "{n}"
    );
    let continued = Run::start(parent(1), "wf", 4u32).history;
    let n = strict(&parent(2), &continued).err().unwrap().to_string();
    assert!(
        n.starts_with("nondeterminism ND08 at seq 2: history has WorkflowContinuedAsNew"),
        "{n}"
    );
}

/// A run started by a newer build under rules this one does not know waits for that build.
#[test]
fn rules_this_build_does_not_know_are_refused() {
    let history = recorded_under(ReplayRules::from_bits(1 << 40), reserving("north"));
    match Execution::replay(&reserving("north"), &history) {
        Err(reprise_sdk::Error::UnknownReplayRules { unknown }) => {
            assert_eq!(unknown.bits(), 1 << 40)
        }
        Err(other) => panic!("expected unknown rules, got {other}"),
        Ok(_) => panic!("expected unknown rules, the history replayed"),
    }
}

/// A call's priority is recorded with its decision but is scheduling, not a decision: code
/// that gives another one replays the run, even strictly.
#[test]
fn a_changed_priority_is_recorded_and_never_compared() {
    let at = |priority: Priority| {
        Registry::builder()
            .workflow(WF, move |ctx: WorkflowContext, units: u32| async move {
                let reservation = Reservation {
                    warehouse: "north".into(),
                    units,
                };
                Ok(ctx
                    .activity(RESERVE, &reservation)
                    .priority(priority)
                    .await?)
            })
            .build()
            .unwrap()
    };
    let history = recorded_under(ReplayRules::CURRENT, at(Priority::HIGHEST));
    let given: Vec<_> = history
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ActivityScheduled(s) => Some(s.priority),
            _ => None,
        })
        .collect();
    assert_eq!(given, [Some(Priority::HIGHEST)]);
    let mut replayed = strict(&at(Priority::LOWEST), &history).unwrap();
    assert!(replayed.take_input_changes().is_empty());
    let mut replayed = strict(&reserving("north"), &history).unwrap();
    assert!(replayed.take_input_changes().is_empty());
}

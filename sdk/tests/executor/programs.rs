//! Property tests over random orchestrator programs: each program runs live under a random
//! order of activity results, timer firings and signals; its history must replay to the same
//! decisions (updates arrive among the inputs, and a query asked after each step answers the
//! same from the live run and from a replay, recording nothing), and any single mutation of a recorded decision (kind, name, duration, order,
//! deletion, insertion) must be reported as nondeterminism at that seq. Activities take random
//! inputs: changing only a recorded input is ND08 at its seq in a strict replay, reported and
//! replayed on by default, and never seen in a run recorded before inputs were compared.
//!
//! Cases: 400 programs in each test (set `PROPTEST_CASES` to change it).

use std::collections::BTreeMap;
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, join_all, select_all};
use proptest::prelude::*;
use proptest::sample::Index;
use reprise_sdk::history::*;
use reprise_sdk::*;

use crate::harness::{Run, payload};

const ACTIVITIES: [ActivityDef<u64, u64>; 4] = [
    ActivityDef::new("a0"),
    ActivityDef::new("a1"),
    ActivityDef::new("a2"),
    ActivityDef::new("a3"),
];
const SIGNALS: [SignalDef<u64>; 3] = [
    SignalDef::new("s0"),
    SignalDef::new("s1"),
    SignalDef::new("s2"),
];
const PROGRAM: WorkflowDef<(), u64> = WorkflowDef::new("program");
/// Every program handles this update: an activity chosen by the input, then its result.
const UPDATE: UpdateDef<u64, u64> = UpdateDef::new("up");
/// Every program answers this query: the sum of its updates' results so far.
const UPDATED: QueryDef<(), u64> = QueryDef::new("updated");
/// Updates the world sends a program, at most.
const UPDATES: usize = 2;

/// A random orchestrator, as a tree.
#[derive(Clone, Debug)]
enum Op {
    /// An activity (by index) and its input.
    Activity(usize, u64),
    Sleep(u64),
    Signal(usize),
    SideEffect(u64),
    Patch(u8, Box<Op>),
    Join(Vec<Op>),
    Select(Vec<Op>),
    Seq(Vec<Op>),
}

/// A program: a sequence of 2 to 5 random trees.
fn program() -> impl Strategy<Value = Op> {
    prop::collection::vec(op(), 2..6).prop_map(Op::Seq)
}

fn op() -> impl Strategy<Value = Op> {
    let leaf = prop_oneof![
        4 => (0usize..4, 0u64..1_000).prop_map(|(n, input)| Op::Activity(n, input)),
        2 => (1u64..5).prop_map(Op::Sleep),
        1 => (0usize..3).prop_map(Op::Signal),
        1 => (0u64..100).prop_map(Op::SideEffect),
    ];
    leaf.prop_recursive(4, 40, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..4).prop_map(Op::Join),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Op::Select),
            prop::collection::vec(inner.clone(), 1..4).prop_map(Op::Seq),
            (0u8..3, inner).prop_map(|(p, op)| Op::Patch(p, Box::new(op))),
        ]
    })
}

fn signal_count(op: &Op, counts: &mut BTreeMap<usize, usize>) {
    match op {
        Op::Signal(n) => *counts.entry(*n).or_default() += 1,
        Op::Patch(_, op) => signal_count(op, counts),
        Op::Join(ops) | Op::Select(ops) | Op::Seq(ops) => {
            ops.iter().for_each(|op| signal_count(op, counts))
        }
        _ => {}
    }
}

/// Runs a program tree; the result folds in every value so it depends on order and outcomes.
fn interpret(ctx: WorkflowContext, op: Op) -> BoxFuture<'static, Result<u64, WorkflowError>> {
    async move {
        Ok(match op {
            Op::Activity(n, input) => match ctx.activity(ACTIVITIES[n], &input).await {
                Ok(v) => v,
                Err(e) if e.end == OperationEnd::Cancelled => return Err(e.into()),
                Err(e) => 1_000 + u64::from(e.attempts),
            },
            Op::Sleep(s) => {
                ctx.sleep(Duration::from_secs(s)).await?;
                s
            }
            Op::Signal(n) => ctx.signal(SIGNALS[n]).await?,
            Op::SideEffect(v) => ctx.side_effect(|| v)?,
            Op::Patch(p, op) => {
                if ctx.patched(&format!("p{p}")) {
                    interpret(ctx, *op).await?
                } else {
                    7
                }
            }
            Op::Join(ops) => {
                let results = join_all(ops.into_iter().map(|op| interpret(ctx.clone(), op))).await;
                results
                    .into_iter()
                    .try_fold(0u64, |acc, r| r.map(|v| acc.wrapping_add(v)))?
            }
            Op::Select(ops) => {
                let (first, index, _losers) =
                    select_all(ops.into_iter().map(|op| interpret(ctx.clone(), op))).await;
                first?.wrapping_mul(3).wrapping_add(index as u64)
            }
            Op::Seq(ops) => {
                let mut total = 0u64;
                for op in ops {
                    total = total
                        .wrapping_mul(31)
                        .wrapping_add(interpret(ctx.clone(), op).await?);
                }
                total
            }
        })
    }
    .boxed()
}

fn registry(program: Op) -> Registry {
    Registry::builder()
        .workflow(PROGRAM, move |ctx: WorkflowContext, ()| {
            let updated = WorkflowState::new(0u64);
            ctx.on_query(UPDATED, &updated, |sum, ()| *sum);
            ctx.on_update(UPDATE, move |ctx, n: u64| {
                let updated = updated.clone();
                async move {
                    let v = interpret(ctx, Op::Activity((n % 4) as usize, n)).await?;
                    updated.update(|sum| *sum = sum.wrapping_add(v));
                    Ok(v)
                }
            });
            interpret(ctx, program.clone())
        })
        .build()
        .unwrap()
}

/// The `updated` query's answer.
fn updated(execution: &Execution) -> u64 {
    execution
        .query(UPDATED.name(), &payload(()))
        .unwrap()
        .decode()
        .unwrap()
}

/// Whether an activity had its cancellation requested.
fn cancel_requested(run: &Run, scheduled: Seq) -> bool {
    run.history.iter().any(
        |e| matches!(&e.kind, EventKind::ActivityCancelRequested(c) if c.scheduled == scheduled),
    )
}

/// Plays the world: at each turn, one of the things the run waits for happens, picked by `choices`.
fn drive(program: &Op, choices: &[(Index, bool)]) -> Run {
    let mut run = Run::start(registry(program.clone()), "program", ());
    let mut unsent = BTreeMap::new();
    signal_count(program, &mut unsent);
    let mut updates_sent = 0;
    for (pick, fail) in choices {
        if run.status() != &RunStatus::Running {
            break;
        }
        let mut actions: Vec<EventKind> = Vec::new();
        for (seq, name) in run.open_activities() {
            let n: u64 = name[1..].parse().unwrap();
            actions.push(if cancel_requested(&run, seq) {
                EventKind::ActivityCancelled(ActivityCancelled {
                    scheduled: seq,
                    attempt: 1,
                    details: None,
                })
            } else if *fail {
                EventKind::ActivityFailed(ActivityFailed {
                    scheduled: seq,
                    failure: Failure::application("Boom", "random failure"),
                    attempt: 2,
                })
            } else {
                EventKind::ActivityCompleted(ActivityCompleted {
                    scheduled: seq,
                    result: payload(n * 2 + 1),
                    attempt: 1,
                })
            });
        }
        for started in run.open_timers() {
            actions.push(EventKind::TimerFired(TimerFired { started }));
        }
        for (&n, &left) in &unsent {
            if left > 0 {
                actions.push(EventKind::SignalReceived(SignalReceived {
                    name: SignalName::new(format!("s{n}")).unwrap(),
                    payload: payload(100 + n as u64),
                }));
            }
        }
        if updates_sent < UPDATES {
            actions.push(EventKind::UpdateAccepted(UpdateAccepted {
                update_id: UpdateId::new(format!("u{updates_sent}")).unwrap(),
                name: UpdateName::new(UPDATE.name()).unwrap(),
                input: payload(updates_sent as u64 + 1),
            }));
        }
        if actions.is_empty() {
            break;
        }
        let action = actions.swap_remove(pick.index(actions.len()));
        if let EventKind::SignalReceived(s) = &action {
            let n: usize = s.name.as_str()[1..].parse().unwrap();
            *unsent.get_mut(&n).unwrap() -= 1;
        }
        if let EventKind::UpdateAccepted(_) = &action {
            updates_sent += 1;
        }
        run.input(action); // applies live, then replays the whole history and compares
        // A query records nothing, and a replay answers it as the live run does.
        let events = run.history.len();
        let live = updated(&run.execution);
        assert_eq!(run.history.len(), events);
        let replayed = Execution::replay(&run.registry, &run.history).unwrap();
        assert_eq!(updated(&replayed), live);
    }
    run
}

/// What identifies a decision for replay (kind, names, durations, patch ids; not inputs, which
/// only a strict replay compares).
fn identity(kind: &EventKind) -> Option<String> {
    (kind.class() == EventClass::Decision).then(|| match kind {
        EventKind::ActivityScheduled(s) => format!("activity {}", s.activity_type),
        EventKind::MarkerRecorded(Marker::SideEffect { .. }) => "side effect".to_string(),
        EventKind::WorkflowCompleted(_) => "completed".to_string(),
        other => format!("{other:?}"),
    })
}

fn is_patch(kind: &EventKind) -> bool {
    matches!(kind, EventKind::MarkerRecorded(Marker::Patch { .. }))
}

/// Renumbers events after an insertion or deletion at `at` (`delta` = +1 or -1), references too.
fn shift(events: &mut [Event], from: u64, delta: i64) {
    let fix = |s: &mut Seq| {
        if s.get() >= from {
            *s = Seq::new((s.get() as i64 + delta) as u64);
        }
    };
    for e in events.iter_mut() {
        fix(&mut e.seq);
        match &mut e.kind {
            EventKind::ActivityCompleted(x) => fix(&mut x.scheduled),
            EventKind::ActivityFailed(x) => fix(&mut x.scheduled),
            EventKind::ActivityTimedOut(x) => fix(&mut x.scheduled),
            EventKind::ActivityCancelRequested(x) => fix(&mut x.scheduled),
            EventKind::ActivityCancelled(x) => fix(&mut x.scheduled),
            EventKind::TimerFired(x) => fix(&mut x.started),
            EventKind::TimerCancelled(x) => fix(&mut x.started),
            EventKind::ChildWorkflowCompleted(x) => fix(&mut x.started),
            EventKind::ChildWorkflowFailed(x) => fix(&mut x.started),
            EventKind::ChildWorkflowCancelRequested(x) => fix(&mut x.started),
            EventKind::UpdateCompleted(x) => fix(&mut x.accepted),
            _ => {}
        }
    }
}

/// A decision no program ever makes.
fn foreign_timer() -> EventKind {
    EventKind::TimerStarted(TimerStarted {
        duration: Duration::from_secs(987_654),
    })
}

#[derive(Clone, Copy, Debug)]
enum Mutation {
    Kind,
    Name,
    Duration,
    Swap,
    Delete,
    Insert,
}

/// Applies `mutation` at the `pick`-th decision it applies to; returns the mutated history and
/// the seq replay must name, or `None` if no decision of this history admits the mutation.
fn mutate(history: &[Event], mutation: Mutation, pick: Index) -> Option<(Vec<Event>, Seq)> {
    let decisions: Vec<usize> = (1..history.len())
        .filter(|&i| history[i].kind.class() == EventClass::Decision)
        .filter(|&i| {
            let kind = &history[i].kind;
            let next = history.get(i + 1).and_then(|e| identity(&e.kind));
            match mutation {
                Mutation::Kind | Mutation::Insert => true,
                Mutation::Name => matches!(kind, EventKind::ActivityScheduled(_)),
                Mutation::Duration => matches!(kind, EventKind::TimerStarted(_)),
                // Swapping or deleting one of two identical neighbours changes nothing visible.
                // A patch marker missing where the code asks `patched()` means "the old code ran
                // here" (it answers false, by design), so moving one away (swap) or removing it
                // is a history of the old code: any mismatch shows where the branches part.
                Mutation::Swap => {
                    next.is_some()
                        && next != identity(kind)
                        && !is_patch(kind)
                        && !history.get(i + 1).is_some_and(|e| is_patch(&e.kind))
                }
                Mutation::Delete => !is_patch(kind) && next != identity(kind),
            }
        })
        .collect();
    if decisions.is_empty() {
        return None;
    }
    let i = decisions[pick.index(decisions.len())];
    let seq = history[i].seq;
    let mut events = history.to_vec();
    match mutation {
        Mutation::Kind => events[i].kind = foreign_timer(),
        Mutation::Name => {
            if let EventKind::ActivityScheduled(s) = &mut events[i].kind {
                s.activity_type = ActivityType::new("renamed").unwrap();
            }
        }
        Mutation::Duration => {
            if let EventKind::TimerStarted(t) = &mut events[i].kind {
                t.duration += Duration::from_millis(1);
            }
        }
        Mutation::Swap => {
            let (a, b) = (events[i].seq, events[i + 1].seq);
            events.swap(i, i + 1);
            // Everything keeps its seq by position; references follow the moved events.
            events[i].seq = a;
            events[i + 1].seq = b;
            for e in events.iter_mut() {
                let fix = |s: &mut Seq| {
                    *s = if *s == a {
                        b
                    } else if *s == b {
                        a
                    } else {
                        *s
                    }
                };
                match &mut e.kind {
                    EventKind::ActivityCompleted(x) => fix(&mut x.scheduled),
                    EventKind::ActivityFailed(x) => fix(&mut x.scheduled),
                    EventKind::ActivityCancelRequested(x) => fix(&mut x.scheduled),
                    EventKind::ActivityCancelled(x) => fix(&mut x.scheduled),
                    EventKind::TimerFired(x) => fix(&mut x.started),
                    EventKind::TimerCancelled(x) => fix(&mut x.started),
                    _ => {}
                }
            }
        }
        Mutation::Delete => {
            events.remove(i);
            shift(&mut events[i..], seq.get() + 1, -1);
        }
        Mutation::Insert => {
            shift(&mut events[i..], seq.get(), 1);
            let at = history[i].recorded_at;
            events.insert(
                i,
                Event {
                    seq,
                    recorded_at: at,
                    kind: foreign_timer(),
                },
            );
        }
    }
    Some((events, seq))
}

/// Changes the input of the `pick`-th scheduled activity by `by` (not zero); returns the history
/// and that activity's seq, or `None` if no activity was scheduled.
fn change_input(history: &[Event], pick: Index, by: u64) -> Option<(Vec<Event>, Seq)> {
    let scheduled: Vec<usize> = (1..history.len())
        .filter(|&i| matches!(history[i].kind, EventKind::ActivityScheduled(_)))
        .collect();
    if scheduled.is_empty() {
        return None;
    }
    let i = scheduled[pick.index(scheduled.len())];
    let mut events = history.to_vec();
    if let EventKind::ActivityScheduled(s) = &mut events[i].kind {
        let input: u64 = s.input.decode().unwrap();
        s.input = payload(input.wrapping_add(by));
    }
    Some((events, history[i].seq))
}

/// `history` as if its run had been started before inputs were compared.
fn before_the_rule(mut history: Vec<Event>) -> Vec<Event> {
    if let EventKind::WorkflowStarted(s) = &mut history[0].kind {
        s.replay_rules = ReplayRules::NONE;
    }
    history
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        Just(Mutation::Kind),
        Just(Mutation::Name),
        Just(Mutation::Duration),
        Just(Mutation::Swap),
        Just(Mutation::Delete),
        Just(Mutation::Insert),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// 400 programs: live history is valid and replays (the harness replays after every step).
    #[test]
    fn random_programs_replay_to_the_same_decisions(
        program in program(),
        choices in prop::collection::vec((any::<Index>(), prop::bool::weighted(0.15)), 20..120),
    ) {
        let run = drive(&program, &choices);
        RecordedHistory::new(run.history.clone()).unwrap();
        let replayed = Execution::replay(&run.registry, &run.history).unwrap();
        prop_assert_eq!(replayed.status(), run.status());
    }

    /// 400 programs, each with one recorded decision mutated: replay names that seq.
    #[test]
    fn any_mutated_decision_is_nondeterminism_at_its_seq(
        program in program(),
        choices in prop::collection::vec((any::<Index>(), prop::bool::weighted(0.15)), 20..120),
        mutation in mutation(),
        pick in any::<Index>(),
    ) {
        let run = drive(&program, &choices);
        let Some((mutated, seq)) = mutate(&run.history, mutation, pick) else {
            return Ok(());
        };
        match Execution::replay(&run.registry, &mutated) {
            Err(reprise_sdk::Error::Nondeterminism(n)) => prop_assert_eq!(
                n.seq, seq, "{:?} at seq {} reported as {}", mutation, seq, n
            ),
            Err(other) => prop_assert!(false, "{:?} at seq {}: {}", mutation, seq, other),
            Ok(_) => prop_assert!(false, "{:?} at seq {} replayed without error", mutation, seq),
        }
    }

    /// 400 programs, each with one recorded activity input changed: strict replay names that
    /// seq (ND08); default replay reports exactly that change and ends where the run did; a run
    /// recorded before the rule replays it strictly without a word.
    #[test]
    fn a_changed_input_is_nd08_at_its_seq_only_when_strict(
        program in program(),
        choices in prop::collection::vec((any::<Index>(), prop::bool::weighted(0.15)), 20..120),
        pick in any::<Index>(),
        by in 1u64..1_000,
    ) {
        let run = drive(&program, &choices);
        let Some((changed, seq)) = change_input(&run.history, pick, by) else {
            return Ok(());
        };
        match Execution::replay_with(&run.registry, &changed, InputChanges::Fail) {
            Err(reprise_sdk::Error::Nondeterminism(n)) => {
                prop_assert_eq!((n.seq, n.kind.code()), (seq, "ND08"), "{}", n)
            }
            Err(other) => prop_assert!(false, "input at seq {}: {}", seq, other),
            Ok(_) => prop_assert!(false, "input at seq {} replayed without error", seq),
        }
        let mut replayed = Execution::replay(&run.registry, &changed).unwrap();
        prop_assert_eq!(replayed.status(), run.status());
        let changes = replayed.take_input_changes();
        prop_assert_eq!(changes.len(), 1);
        prop_assert_eq!((changes[0].seq, changes[0].kind.code()), (seq, "ND08"));
        let mut old = Execution::replay_with(
            &run.registry,
            &before_the_rule(changed),
            InputChanges::Fail,
        )
        .unwrap();
        prop_assert!(old.take_input_changes().is_empty());
    }
}

//! The state one run's orchestrator shares with its context and operation futures.
//!
//! Decisions are matched against history the moment the code makes them, not afterwards:
//! `patched()` and `side_effect()` must know at once what history recorded at that point.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Waker;

use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use reprise_history::{
    DataConverter, Event, EventKind, Marker, Payload, ReplayRules, RunId, Seq, SignalName,
    TaskQueue, Timestamp, UpdateId, UpdateOutcome, WorkflowId, WorkflowType,
};

use crate::error::OperationFailed;
use crate::inputs::{InputChanges, InputComparison, compare_inputs, decision_input};
use crate::local::LocalActivityRequest;
use crate::nondeterminism::{
    Nondeterminism, NondeterminismKind, SourceLocation, describe, same_decision,
};
use crate::query::QueryHandlers;
use crate::update::{UpdateHandlers, UpdateRejection};

/// The run state behind a mutex, shared by the executor, the context and operation futures.
/// The lock is never held while user code runs.
#[derive(Clone)]
pub(crate) struct Shared(Arc<Mutex<RunState>>);

impl Shared {
    pub(crate) fn new(state: RunState) -> Shared {
        Shared(Arc::new(Mutex::new(state)))
    }

    /// Decodes a payload the code receives, outside the lock (a `Deserialize` impl is user
    /// code). One that does not decode fails the step with
    /// [`crate::error::UndecodablePayload`] (the run waits for code that can read it), and
    /// `None` comes back: the caller's future then stays pending.
    pub(crate) fn decode_or_fail<T: serde::de::DeserializeOwned>(
        &self,
        payload: &Payload,
        seq: Seq,
        holder: impl FnOnce() -> String,
    ) -> Option<T> {
        let converter = self.lock().converter.clone();
        match converter.from_payload::<T>(payload) {
            Ok(value) => Some(value),
            Err(source) => {
                self.lock().fail(crate::error::UndecodablePayload {
                    seq,
                    holder: holder(),
                    rust_type: std::any::type_name::<T>(),
                    source,
                });
                None
            }
        }
    }

    /// Locks the state. A panic in user code never happens under this lock, so a poisoned
    /// lock still holds consistent state.
    pub(crate) fn lock(&self) -> MutexGuard<'_, RunState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether the executor is reproducing recorded history or making new history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Replaying,
    Live,
}

/// What kind of operation a slot tracks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum OpKind {
    Activity,
    /// Run by the host inside the step: never cancelled in history, never late.
    LocalActivity,
    Timer,
    Child,
}

/// How an operation ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// A result, and the seq of the event that holds it (named if it does not decode).
    Value(Payload, Seq),
    Failed(OperationFailed),
    Cancelled,
    /// A local activity's attempts failed; the next one comes after a durable wait.
    Backoff {
        /// Attempts made so far.
        attempt: u32,
        /// How long until the next.
        backoff: std::time::Duration,
    },
}

#[derive(Debug)]
enum OpStatus {
    Pending,
    Done(Outcome),
}

#[derive(Debug)]
struct Op {
    kind: OpKind,
    name: String,
    status: OpStatus,
    waker: Option<Waker>,
}

/// Everything one run's orchestrator knows.
pub(crate) struct RunState {
    pub(crate) run_id: RunId,
    pub(crate) workflow_id: WorkflowId,
    pub(crate) workflow_type: WorkflowType,
    pub(crate) task_queue: TaskQueue,
    /// How the run came to be: a client, a schedule's firing, a retry, ...
    pub(crate) origin: reprise_history::RunOrigin,
    /// Encodes the decisions' payloads and decodes what the code receives.
    pub(crate) converter: DataConverter,
    /// Recorded time of the input being applied.
    pub(crate) now: Timestamp,
    rng: ChaCha8Rng,
    pub(crate) mode: Mode,
    next_seq: Seq,
    /// Replaying: the recorded decisions that must follow the input being applied.
    expected: VecDeque<Event>,
    /// Live: the decisions made while applying the current input.
    emitted: Vec<Event>,
    /// The first disagreement with history, or misuse of the context; the step fails with it.
    pub(crate) error: Option<crate::Error>,
    ops: BTreeMap<Seq, Op>,
    /// Activities and children whose cancellation was decided: their outcome may still
    /// arrive, and is then ignored.
    late: BTreeSet<Seq>,
    /// Signals received and not yet taken, with the seq of the event that brought each.
    signals: BTreeMap<SignalName, VecDeque<(Payload, Seq)>>,
    waiters: Vec<Waker>,
    pub(crate) cancel_requested: bool,
    patches: BTreeMap<String, bool>,
    pub(crate) closed: bool,
    /// Set while the executor discards the orchestrator: dropping futures then decides nothing.
    pub(crate) tearing_down: bool,
    /// Signal and cancel waits in progress (futures that returned Pending and still live).
    waiting: usize,
    /// The replay rules the run was recorded under.
    rules: ReplayRules,
    /// What a replayed decision with another input does.
    input_changes: InputChanges,
    /// Inputs found changed (ND08) and reported, not failed.
    pub(crate) changed_inputs: Vec<Nondeterminism>,
    /// Local activities awaiting their outcome, by the seq of their scheduling, and whether
    /// the host was handed each already.
    local: BTreeMap<Seq, (LocalActivityRequest, bool)>,
    /// The query handlers the code has registered.
    pub(crate) queries: QueryHandlers,
    /// The last custom status set, encoded.
    pub(crate) custom_status: Option<Payload>,
    /// Whether `custom_status` was set live since the host last wrote it.
    pub(crate) status_unwritten: bool,
    /// The update handlers and validators the code has registered.
    pub(crate) updates: UpdateHandlers,
    /// Updates refused live since the host last wrote the refusals.
    pub(crate) rejections: Vec<UpdateRejection>,
    /// Every update id the run accepted, with its outcome once its handler returned.
    pub(crate) accepted_updates: BTreeMap<UpdateId, Option<UpdateOutcome>>,
    /// Updates sent again with a finished id since the host last wrote them: their outcomes.
    pub(crate) answers: Vec<(UpdateId, UpdateOutcome)>,
}

impl RunState {
    pub(crate) fn new(
        started: &Event,
        s: &reprise_history::WorkflowStarted,
        converter: DataConverter,
        input_changes: InputChanges,
    ) -> RunState {
        let seed = blake3::derive_key(
            "reprise workflow randomness v1",
            s.run_id.as_uuid().as_bytes(),
        );
        RunState {
            run_id: s.run_id,
            workflow_id: s.workflow_id.clone(),
            workflow_type: s.workflow_type.clone(),
            task_queue: s.task_queue.clone(),
            origin: s.origin.clone(),
            converter,
            now: started.recorded_at,
            rng: ChaCha8Rng::from_seed(seed),
            mode: Mode::Replaying,
            next_seq: started.seq.next(),
            expected: VecDeque::new(),
            emitted: Vec::new(),
            error: None,
            ops: BTreeMap::new(),
            late: BTreeSet::new(),
            signals: BTreeMap::new(),
            waiters: Vec::new(),
            cancel_requested: false,
            patches: BTreeMap::new(),
            closed: false,
            tearing_down: false,
            waiting: 0,
            rules: s.replay_rules,
            input_changes,
            changed_inputs: Vec::new(),
            local: BTreeMap::new(),
            queries: QueryHandlers::default(),
            custom_status: None,
            status_unwritten: false,
            updates: UpdateHandlers::default(),
            rejections: Vec::new(),
            accepted_updates: BTreeMap::new(),
            answers: Vec::new(),
        }
    }

    pub(crate) fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }

    /// Starts applying an input: the decisions that follow it in history (when replaying).
    pub(crate) fn begin_input(&mut self, input: &Event, expected: VecDeque<Event>) {
        self.now = input.recorded_at;
        self.next_seq = input.seq.next();
        self.expected = expected;
        self.emitted.clear();
    }

    /// Ends applying an input: recorded decisions the code did not make are an error.
    pub(crate) fn end_input(&mut self) -> Vec<Event> {
        if let Some(missing) = self.expected.pop_front() {
            self.fail(Nondeterminism {
                seq: missing.seq,
                kind: NondeterminismKind::MissingDecision {
                    recorded: describe(&missing.kind),
                },
                location: None,
            });
        }
        std::mem::take(&mut self.emitted)
    }

    /// The seq of the last event applied or decided.
    pub(crate) fn last_seq(&self) -> Seq {
        Seq::new(self.next_seq.get().saturating_sub(1))
    }

    pub(crate) fn fail(&mut self, error: impl Into<crate::Error>) {
        if self.error.is_none() {
            self.error = Some(error.into());
        }
    }

    /// The code makes a decision: replaying, it must be the next recorded one; live, it is
    /// recorded. Returns its seq.
    pub(crate) fn decide(&mut self, kind: EventKind, location: Option<SourceLocation>) -> Seq {
        let seq = self.next_seq;
        self.next_seq = seq.next();
        match self.mode {
            Mode::Live => self.emitted.push(Event {
                seq,
                recorded_at: self.now,
                kind,
            }),
            Mode::Replaying => match self.expected.pop_front() {
                Some(recorded) if same_decision(&recorded.kind, &kind) => {
                    self.compare_input(&recorded, &kind, location);
                }
                Some(recorded) => self.fail(Nondeterminism {
                    seq: recorded.seq,
                    kind: NondeterminismKind::DecisionMismatch {
                        recorded: describe(&recorded.kind),
                        made: describe(&kind),
                    },
                    location,
                }),
                None => self.fail(Nondeterminism {
                    seq,
                    kind: NondeterminismKind::ExtraDecision {
                        made: describe(&kind),
                    },
                    location,
                }),
            },
        }
        seq
    }

    /// Replaying, under `COMPARE_INPUTS`: reports (or fails on) a decision the code gives
    /// another input than the recorded one.
    fn compare_input(
        &mut self,
        recorded: &Event,
        made: &EventKind,
        location: Option<SourceLocation>,
    ) {
        if !self.rules.contains(ReplayRules::COMPARE_INPUTS) {
            return;
        }
        let (Some(recorded_input), Some(made_input)) =
            (decision_input(&recorded.kind), decision_input(made))
        else {
            return;
        };
        let InputComparison::Changed { path } =
            compare_inputs(&self.converter, recorded_input, made_input)
        else {
            return;
        };
        let change = Nondeterminism {
            seq: recorded.seq,
            kind: NondeterminismKind::InputChanged {
                recorded: describe(&recorded.kind),
                path,
            },
            location,
        };
        match self.input_changes {
            InputChanges::Report => self.changed_inputs.push(change),
            InputChanges::Fail => self.fail(change),
        }
    }

    /// Changes a decision made during the current input (live; replay compares no options).
    pub(crate) fn amend_decision(&mut self, seq: Seq, change: impl FnOnce(&mut EventKind)) {
        if let Some(event) = self.emitted.iter_mut().find(|e| e.seq == seq) {
            change(&mut event.kind);
        }
    }

    /// Replaying: the next recorded decision if it is a marker (for `patched`, `side_effect`).
    pub(crate) fn next_recorded_marker(&self) -> Option<&Marker> {
        match self.expected.front().map(|e| &e.kind) {
            Some(EventKind::MarkerRecorded(marker)) => Some(marker),
            _ => None,
        }
    }

    /// Replaying: the next recorded decision and its seq, if it is a marker.
    pub(crate) fn next_recorded_marker_with_seq(&self) -> Option<(Seq, Marker)> {
        match self.expected.front() {
            Some(Event {
                seq,
                kind: EventKind::MarkerRecorded(marker),
                ..
            }) => Some((*seq, marker.clone())),
            _ => None,
        }
    }

    /// Consumes the next recorded decision (after `next_recorded_marker` said it fits).
    pub(crate) fn take_recorded(&mut self) {
        if self.expected.pop_front().is_some() {
            self.next_seq = self.next_seq.next();
        }
    }

    pub(crate) fn patch(&self, id: &str) -> Option<bool> {
        self.patches.get(id).copied()
    }

    pub(crate) fn remember_patch(&mut self, id: &str, value: bool) {
        self.patches.insert(id.to_string(), value);
    }

    pub(crate) fn open_op(&mut self, seq: Seq, kind: OpKind, name: String) {
        self.ops.insert(
            seq,
            Op {
                kind,
                name,
                status: OpStatus::Pending,
                waker: None,
            },
        );
    }

    /// Polls an operation: its outcome once resolved (removing it), else registers the waker.
    pub(crate) fn poll_op(&mut self, seq: Seq, waker: &Waker) -> Option<Outcome> {
        let op = self.ops.get_mut(&seq)?;
        if matches!(op.status, OpStatus::Done(_)) {
            let op = self.ops.remove(&seq)?;
            return match op.status {
                OpStatus::Done(outcome) => Some(outcome),
                _ => None,
            };
        }
        op.waker = Some(waker.clone());
        None
    }

    /// The future of an operation was dropped. If it was still pending (and the run goes on),
    /// returns what kind it was so the caller can decide its cancellation.
    pub(crate) fn abandon_op(&mut self, seq: Seq) -> Option<OpKind> {
        let op = self.ops.remove(&seq)?;
        let pending = matches!(op.status, OpStatus::Pending);
        if op.kind == OpKind::LocalActivity {
            // Not run (or its outcome not recorded): nothing to cancel in history.
            self.local.remove(&seq);
            return None;
        }
        if !pending || self.tearing_down || self.closed {
            return None;
        }
        if op.kind != OpKind::Timer {
            self.late.insert(seq);
        }
        Some(op.kind)
    }

    /// An input resolves the operation started at `seq`.
    pub(crate) fn resolve(
        &mut self,
        input: &Event,
        seq: Seq,
        kind: OpKind,
        outcome: impl FnOnce(&str) -> Outcome,
    ) {
        if self.late.remove(&seq) {
            return;
        }
        if kind == OpKind::LocalActivity {
            self.local.remove(&seq);
        }
        match self.ops.get_mut(&seq) {
            Some(op) if op.kind == kind && matches!(op.status, OpStatus::Pending) => {
                op.status = OpStatus::Done(outcome(&op.name));
                if let Some(waker) = op.waker.take() {
                    waker.wake();
                }
            }
            _ => self.unexpected(input),
        }
    }

    /// The kind of operation an activity outcome for `seq` resolves: a local activity's if
    /// one waits there, else an activity's.
    pub(crate) fn activity_kind(&self, seq: Seq) -> OpKind {
        match self.ops.get(&seq) {
            Some(op) if op.kind == OpKind::LocalActivity => OpKind::LocalActivity,
            _ => OpKind::Activity,
        }
    }

    /// A local activity was scheduled: the host runs it before the step is written.
    pub(crate) fn request_local(&mut self, request: LocalActivityRequest) {
        self.local.insert(request.scheduled, (request, false));
    }

    /// Changes a local activity's options before the host is handed it.
    pub(crate) fn amend_local(&mut self, seq: Seq, change: impl FnOnce(&mut LocalActivityRequest)) {
        if let Some((request, false)) = self.local.get_mut(&seq) {
            change(request);
        }
    }

    /// The local activities the host has not been handed yet, in seq order.
    pub(crate) fn take_local(&mut self) -> Vec<LocalActivityRequest> {
        self.local
            .values_mut()
            .filter(|(_, handed)| !*handed)
            .map(|(request, handed)| {
                *handed = true;
                request.clone()
            })
            .collect()
    }

    /// Whether a local activity scheduled at `seq` still waits for its outcome.
    pub(crate) fn awaits_local(&self, seq: Seq) -> bool {
        self.local.contains_key(&seq)
    }

    /// Whether any local activity waits for its outcome.
    pub(crate) fn has_local(&self) -> bool {
        !self.local.is_empty()
    }

    fn unexpected(&mut self, input: &Event) {
        self.fail(Nondeterminism {
            seq: input.seq,
            kind: NondeterminismKind::UnexpectedInput {
                input: describe(&input.kind),
            },
            location: None,
        });
    }

    pub(crate) fn push_signal(&mut self, name: SignalName, payload: Payload, seq: Seq) {
        self.signals
            .entry(name)
            .or_default()
            .push_back((payload, seq));
        self.wake_waiters();
    }

    /// Signals that arrived and were never received, by name (each name in arrival order).
    pub(crate) fn buffered_signals(&self) -> Vec<(SignalName, Payload)> {
        self.signals
            .iter()
            .flat_map(|(name, queue)| queue.iter().map(move |(p, _)| (name.clone(), p.clone())))
            .collect()
    }

    pub(crate) fn pop_signal(&mut self, name: &SignalName) -> Option<(Payload, Seq)> {
        self.signals.get_mut(name).and_then(VecDeque::pop_front)
    }

    /// Registers a signal or cancel wait's waker; `first` counts the wait as in progress.
    pub(crate) fn wait(&mut self, waker: &Waker, first: bool) {
        self.waiters.push(waker.clone());
        if first {
            self.waiting += 1;
        }
    }

    /// A signal or cancel wait that was in progress ended.
    pub(crate) fn end_wait(&mut self) {
        self.waiting = self.waiting.saturating_sub(1);
    }

    /// Whether the orchestrator waits on anything Reprise will resolve: an operation whose
    /// future is alive, or a signal or cancel wait.
    pub(crate) fn has_live_waits(&self) -> bool {
        !self.ops.is_empty() || self.waiting > 0
    }

    /// The seq the next decision will take: it moves whenever the code decides something.
    pub(crate) fn next_seq(&self) -> Seq {
        self.next_seq
    }

    /// Wakes every signal, cancel and condition wait, to look again.
    pub(crate) fn wake_waiters(&mut self) {
        for waker in self.waiters.drain(..) {
            waker.wake();
        }
    }

    /// The run was asked to cancel: every pending operation ends as cancelled (its
    /// cancellation is decided, in seq order), and every waiter wakes.
    pub(crate) fn request_cancel(&mut self) -> Vec<(Seq, OpKind)> {
        self.cancel_requested = true;
        let mut cancelled = Vec::new();
        for (seq, op) in self.ops.iter_mut() {
            if matches!(op.status, OpStatus::Pending) {
                op.status = OpStatus::Done(Outcome::Cancelled);
                if let Some(waker) = op.waker.take() {
                    waker.wake();
                }
                match op.kind {
                    OpKind::Timer => {}
                    OpKind::LocalActivity => {
                        self.local.remove(seq);
                    }
                    OpKind::Activity | OpKind::Child => {
                        self.late.insert(*seq);
                    }
                }
                cancelled.push((*seq, op.kind.clone()));
            }
        }
        self.wake_waiters();
        cancelled
    }
}

/// The decision that cancels a pending operation of `kind` started at `seq`; none for a local
/// activity, which the host has not run (or whose outcome it has not recorded) yet.
pub(crate) fn cancel_decision(kind: &OpKind, seq: Seq) -> Option<EventKind> {
    Some(match kind {
        OpKind::Activity => {
            EventKind::ActivityCancelRequested(reprise_history::ActivityCancelRequested {
                scheduled: seq,
            })
        }
        OpKind::Timer => {
            EventKind::TimerCancelled(reprise_history::TimerCancelled { started: seq })
        }
        OpKind::Child => {
            EventKind::ChildWorkflowCancelRequested(reprise_history::ChildWorkflowCancelRequested {
                started: seq,
            })
        }
        OpKind::LocalActivity => return None,
    })
}

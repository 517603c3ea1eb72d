//! The orchestrator host: claims runs that have work and steps them in batches, one
//! transaction a batch, keeping live orchestrators in a bounded cache so that a step costs its
//! new events, not a replay.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use lru::LruCache;
use reprise_history::{
    ChainHash, Event, EventKind, ParentRun, RunId, RunState, Seq, Timestamp, TraceContext,
    WorkflowId, WorkflowType,
};
use reprise_sdk::{Effects, Execution, Registry, RunIdentity, RunStatus};
use sqlx::PgConnection;
use tokio::sync::watch;

mod deadlines;
mod direct;
mod foreign;
mod local;
mod options;
mod queries;
mod scheduler;
mod spans;

pub use options::{EngineOptions, default_build, executable_build};

use crate::backoff::Backoff;
use crate::error::{Error, Result};
use crate::listen::{EngineWakeups, Heard, wait};
use crate::store::{BatchRun, Claim, LoopConnection, Park, RunHint, StepBatch, StepOutput, Store};
use crate::telemetry::StepPath;
use foreign::ForeignWakes;
use spans::{Orchestrator, StepOf, StepSpan};

/// A run of a batch ready to step.
struct Loaded {
    /// Its index in the batch.
    index: usize,
    cached: Cached,
    /// The decisions its first step already made (`Execution::start`), if it was started live.
    decisions: Vec<Event>,
    /// The step's span, begun as the orchestrator was found (a first step decides as it
    /// starts).
    span: StepSpan,
}

struct Cached {
    execution: Execution,
    workflow_id: WorkflowId,
    /// For metrics, which are labelled by type.
    workflow_type: WorkflowType,
    parent: Option<ParentRun>,
    /// The chain hash of the run's last event (that of `execution.last_seq()`).
    head_hash: ChainHash,
    /// The trace the run was started in (from its first event).
    trace: Option<TraceContext>,
}

impl Cached {
    /// Who the run is, for a step's span.
    fn step_of(&self, run_id: RunId) -> StepOf<'_> {
        StepOf {
            workflow_type: &self.workflow_type,
            workflow_id: &self.workflow_id,
            run_id,
            recorded: self.trace.as_ref(),
        }
    }
}

/// What an engine has done since it was created: counters for metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Runs stepped in batches (each claimed run counts, stepped or parked).
    pub batched_steps: u64,
    /// Runs stepped directly, on a notification's word, in one statement each.
    pub direct_steps: u64,
    /// Notifications that named a run's work but went to the batch path: the run was not
    /// as the notification said, was not cached here, or its step needed more than a
    /// direct step writes.
    pub direct_refused: u64,
    /// Batches that failed with an error (a lost connection, a deadlock, ...): their runs are
    /// claimed again.
    pub failed_batches: u64,
    /// Schedule ticks this engine committed (each fired one schedule: started, buffered or
    /// skipped what was due).
    pub schedule_ticks: u64,
}

struct Counters {
    batched_steps: AtomicU64,
    direct_steps: AtomicU64,
    direct_refused: AtomicU64,
    failed_batches: AtomicU64,
    schedule_ticks: AtomicU64,
    /// Loops stepping at this moment (see [`Working`]).
    working: AtomicUsize,
    /// The counters as of the last step written, for whoever waits on progress.
    progress: watch::Sender<EngineStats>,
}

impl Default for Counters {
    fn default() -> Counters {
        Counters {
            batched_steps: AtomicU64::default(),
            direct_steps: AtomicU64::default(),
            direct_refused: AtomicU64::default(),
            failed_batches: AtomicU64::default(),
            schedule_ticks: AtomicU64::default(),
            working: AtomicUsize::default(),
            progress: watch::Sender::new(EngineStats::default()),
        }
    }
}

/// A loop at work, counted in [`Counters::working`] until dropped.
struct Working<'a> {
    working: &'a AtomicUsize,
    /// How many other loops were at work when this one began.
    others: usize,
}

impl<'a> Working<'a> {
    fn begin(working: &'a AtomicUsize) -> Working<'a> {
        let others = working.fetch_add(1, Ordering::SeqCst);
        Working { working, others }
    }
}

impl Drop for Working<'_> {
    fn drop(&mut self) {
        self.working.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Hosts orchestrators: the engine process.
#[derive(Clone)]
pub struct Engine {
    store: Store,
    registry: Arc<Registry>,
    options: EngineOptions,
    known_types: Vec<String>,
    cache: Arc<Mutex<LruCache<RunId, Cached>>>,
    /// Whether it takes work (see [`Engine::readiness`]).
    ready: Arc<watch::Sender<bool>>,
    /// The connection [`Engine::run_once`] steps on (see [`LoopConnection`]).
    stepping: Arc<tokio::sync::Mutex<LoopConnection>>,
    counters: Arc<Counters>,
    /// Runs whose workflow something outside Reprise woke (see `foreign.rs`).
    foreign: Arc<ForeignWakes>,
}

impl Engine {
    /// An engine running `registry`'s workflows on `store`.
    pub fn new(store: Store, registry: Registry, options: EngineOptions) -> Engine {
        let known_types = registry.workflow_types().map(ToString::to_string).collect();
        let capacity = NonZeroUsize::new(options.cache_capacity).unwrap_or(NonZeroUsize::MIN);
        let stepping = Arc::new(tokio::sync::Mutex::new(LoopConnection::new(&store)));
        Engine {
            store,
            registry: Arc::new(registry),
            options,
            known_types,
            cache: Arc::new(Mutex::new(LruCache::new(capacity))),
            ready: Arc::new(watch::Sender::new(false)),
            stepping,
            counters: Arc::default(),
            foreign: Arc::default(),
        }
    }

    /// What this engine (and its clones) has done so far.
    pub fn stats(&self) -> EngineStats {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        EngineStats {
            batched_steps: read(&self.counters.batched_steps),
            direct_steps: read(&self.counters.direct_steps),
            direct_refused: read(&self.counters.direct_refused),
            failed_batches: read(&self.counters.failed_batches),
            schedule_ticks: read(&self.counters.schedule_ticks),
        }
    }

    /// The engine's counters, changing each time it (or a clone) has written a step or parked
    /// a run: for waiting on its progress without polling, then reading what changed.
    pub fn progress(&self) -> watch::Receiver<EngineStats> {
        self.counters.progress.subscribe()
    }

    /// Publishes the counters. They are read under the watch's lock, so that of two writers
    /// the later snapshot is the one that stays.
    fn progressed(&self) {
        self.counters
            .progress
            .send_modify(|stats| *stats = self.stats());
    }

    /// Readiness as it changes: for a health endpoint or a test waiting for it.
    pub fn readiness(&self) -> watch::Receiver<bool> {
        self.ready.subscribe()
    }

    /// Whether the engine is taking work: true while it runs, false once it stops claiming.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// The options in use.
    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// Runs until `shutdown` resolves: [`EngineOptions::concurrent_batches`] loops claim ready
    /// runs and step them, each waiting on `LISTEN/NOTIFY` (or until the next timer is due, or
    /// the idle poll) when there is no work. A batch in flight at shutdown is finished.
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
        let wakeups = EngineWakeups::spawn(&self.store);
        let heard = &wakeups.runs;
        let (stop, stopped) = watch::channel(false);
        self.ready.send_replace(true);
        let batches = futures::future::try_join_all(
            (0..self.options.concurrent_batches.max(1))
                .map(|_| self.batch_loop(heard, stopped.clone())),
        );
        let gauges = crate::telemetry::sample_gauges(
            self.store.clone(),
            self.store.metrics().clone(),
            self.options.gauge_interval,
            stopped.clone(),
        );
        let loops = futures::future::try_join3(
            batches,
            futures::future::try_join3(
                self.parked_sweeper(stopped.clone()),
                self.queue_foreign_wakes(stopped.clone()),
                self.answer_queries(&wakeups.queries, stopped.clone()),
            ),
            futures::future::try_join3(
                self.run_schedules(&wakeups.schedules, stopped.clone()),
                self.enforce_deadlines(stopped.clone()),
                async {
                    gauges.await;
                    Ok(())
                },
            ),
        );
        tokio::pin!(loops, shutdown);
        let result = tokio::select! {
            result = &mut loops => result,
            () = &mut shutdown => {
                let _ = stop.send(true);
                loops.await
            }
        };
        self.ready.send_replace(false);
        result.map(drop)
    }

    async fn batch_loop(&self, heard: &Heard, mut stop: watch::Receiver<bool>) -> Result<()> {
        let notify = heard.notify();
        let mut conn = LoopConnection::new(&self.store);
        let mut next_due = tokio::time::Instant::now();
        let mut backoff = Backoff::default();
        while !*stop.borrow() {
            // A lone notification that names its run's work is stepped directly, by a loop
            // that is the only one at work: an engine with work coming faster than one
            // statement at a time is better off with batches, which share statements and
            // commits. Anything else (or a direct step that did not hold) is the batch path's.
            let working = Working::begin(&self.counters.working);
            let hint = heard.take_lone_payload().and_then(|p| RunHint::parse(&p));
            let direct = match hint {
                Some(hint) if working.others == 0 && self.options.direct_steps => {
                    let started = std::time::Instant::now();
                    let direct = self.step_hinted(&mut conn, hint).await;
                    if direct {
                        let metrics = self.store.metrics();
                        metrics.stepped(StepPath::direct, 1, started.elapsed());
                    }
                    let counter = if direct {
                        &self.counters.direct_steps
                    } else {
                        &self.counters.direct_refused
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    if direct {
                        self.progressed();
                    }
                    direct
                }
                Some(_) | None => false,
            };
            if direct {
                drop(working);
                // A direct step queues nothing (no timer, nothing left in the inbox), so the
                // next due time this loop waits for is the one it knew before.
                let idle = next_due.saturating_duration_since(tokio::time::Instant::now());
                tokio::select! {
                    _ = stop.changed() => {}
                    () = wait(notify, idle) => {}
                }
                continue;
            }
            let stepped = conn.run(async |conn| self.run_once_on(conn).await).await;
            drop(working);
            if stepped.is_ok() {
                backoff.reset();
            }
            match stepped {
                // A full batch means more work is likely waiting: wake another loop to share it,
                // and claim again. After a partial (or empty) one, the queue held no more
                // claimable work: what arrives later comes with a notification, or is a timer
                // (waited for).
                Ok(n) if i64::try_from(n).unwrap_or(i64::MAX) >= self.options.batch_size => {
                    notify.notify_one();
                }
                Ok(_) => {
                    let idle = self.idle_wait().await;
                    next_due = tokio::time::Instant::now() + idle;
                    tokio::select! {
                        _ = stop.changed() => {}
                        () = wait(notify, idle) => {}
                    }
                }
                Err(e) if e.is_retryable() => {
                    self.counters.failed_batches.fetch_add(1, Ordering::Relaxed);
                    self.store.metrics().failed_batch();
                    tracing::warn!(error = %e, "engine loop: retrying after a database error");
                    tokio::select! {
                        _ = stop.changed() => {}
                        () = backoff.wait() => {}
                    }
                }
                // Runs that fail by themselves are parked; anything else is logged loudly and
                // tried again after the idle poll, never in a hot loop.
                Err(e) => {
                    self.counters.failed_batches.fetch_add(1, Ordering::Relaxed);
                    self.store.metrics().failed_batch();
                    tracing::error!(error = %e, "engine loop: a batch failed");
                    tokio::select! {
                        _ = stop.changed() => {}
                        () = tokio::time::sleep(self.options.idle_poll) => {}
                    }
                }
            }
        }
        Ok(())
    }

    /// Queues the runs other builds parked that this one may take back: at start, then every
    /// [`EngineOptions::parked_sweep`]. A failed sweep is logged and tried at the next.
    async fn parked_sweeper(&self, mut stop: watch::Receiver<bool>) -> Result<()> {
        while !*stop.borrow() {
            match self
                .store
                .adopt_parked(&self.known_types, &self.options.queues, &self.options.build)
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::info!(runs = n, "took back runs another build parked"),
                Err(e) => tracing::warn!(error = %e, "looking for parked runs failed"),
            }
            tokio::select! {
                _ = stop.changed() => {}
                () = tokio::time::sleep(self.options.parked_sweep) => {}
            }
        }
        Ok(())
    }

    /// How long to wait for work: until the next timer is due, at most the idle poll.
    async fn idle_wait(&self) -> Duration {
        match self.store.next_ready_in().await {
            Ok(Some(wait)) => wait.min(self.options.idle_poll),
            _ => self.options.idle_poll,
        }
    }

    /// Claims one batch of runs and steps them in one transaction; returns how many it
    /// claimed. If the batch fails for a reason other than the database's state (a run whose
    /// decisions cannot be carried out), its runs are stepped one by one, and a run whose
    /// step fails alone is parked with the reason, so that it cannot hold up the others.
    /// It runs on a connection of this engine's own, set up as the batch loops' are, so that
    /// stepping by hand takes the same plans; concurrent calls take turns.
    pub async fn run_once(&self) -> Result<usize> {
        let mut conn = self.stepping.lock().await;
        conn.run(async |conn| self.run_once_on(conn).await).await
    }

    /// [`Engine::run_once`] on a given connection (a batch loop's own).
    async fn run_once_on(&self, conn: &mut PgConnection) -> Result<usize> {
        let mut claimed = Vec::new();
        let error = match self
            .step_batch(conn, Claim::Ready(self.options.batch_size), &mut claimed)
            .await
        {
            Ok(count) => return Ok(count),
            Err(e) => e,
        };
        if error.is_retryable() || claimed.is_empty() {
            return Err(error);
        }
        if let [run] = claimed.as_slice() {
            self.park_failing(*run, &error).await?;
            return Ok(1);
        }
        tracing::warn!(error = %error, runs = claimed.len(), "a batch failed; stepping its runs one by one");
        for run in &claimed {
            self.step_alone(conn, *run).await?;
        }
        Ok(claimed.len())
    }

    /// Steps one run in its own transaction; parks it if its step fails by itself.
    async fn step_alone(&self, conn: &mut PgConnection, run: RunId) -> Result<()> {
        match self
            .step_batch(conn, Claim::Only(&[run]), &mut Vec::new())
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_retryable() => Err(e),
            Err(e) => self.park_failing(run, &e).await,
        }
    }

    async fn park_failing(&self, run: RunId, error: &Error) -> Result<()> {
        tracing::warn!(run_id = %run, error = %error, "parking a run whose step fails");
        self.store.metrics().parked(&error.to_string());
        self.store
            .park_run(run, &self.options.build, &error.to_string())
            .await?;
        self.progressed();
        Ok(())
    }

    fn is_cached(&self, run_id: RunId) -> bool {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&run_id)
    }

    fn take_cached(&self, run_id: RunId) -> Option<Cached> {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop(&run_id)
    }

    fn put_cached(&self, run_id: RunId, cached: Cached) {
        let evicted = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(run_id, cached);
        if evicted.is_some_and(|(id, _)| id != run_id) {
            self.store.metrics().cache_eviction();
        }
    }

    /// Counts a written step's start or close in the metrics.
    fn count_step(&self, cached: &Cached, first: bool) {
        let metrics = self.store.metrics();
        let workflow_type = cached.workflow_type.as_str();
        if first {
            metrics.run_started(workflow_type);
        }
        let closed = match cached.execution.status() {
            RunStatus::Running => return,
            RunStatus::Completed(_) => RunState::Completed,
            RunStatus::Failed(_) => RunState::Failed,
            RunStatus::Cancelled => RunState::Cancelled,
            RunStatus::ContinuedAsNew(_) => RunState::ContinuedAsNew,
            RunStatus::Terminated => RunState::Terminated,
            RunStatus::TimedOut(_) => RunState::TimedOut,
        };
        metrics.run_closed(workflow_type, closed);
    }

    /// One batch: claim, load each run's orchestrator (cache or history), step each with its
    /// inputs, write everything in the batch's transaction. `claimed` learns the runs as soon
    /// as they are claimed.
    async fn step_batch(
        &self,
        conn: &mut PgConnection,
        claim: Claim<'_>,
        claimed: &mut Vec<RunId>,
    ) -> Result<usize> {
        let started = std::time::Instant::now();
        let Some(mut batch) = self
            .store
            .claim_batch(
                conn,
                claim,
                &self.known_types,
                &self.options.queues,
                &self.options.build,
            )
            .await?
        else {
            return Ok(0);
        };
        claimed.extend(batch.runs.iter().map(|r| r.run_id));
        let (loaded, mut parks) = self.load_all(&mut batch).await?;
        let mut stepped = Vec::with_capacity(loaded.len());
        for loaded in loaded {
            let Loaded {
                index: i,
                mut cached,
                decisions: mut events,
                span,
            } = loaded;
            let run = &batch.runs[i];
            let inputs: Vec<(Timestamp, EventKind)> =
                if cached.execution.status() == &RunStatus::Running {
                    run.inputs.iter().map(|k| (batch.now, k.clone())).collect()
                } else {
                    Vec::new() // closed by its first step: its inputs are not for this run
                };
            match span.in_scope(|| cached.execution.step(inputs)) {
                Ok(step) => {
                    events.extend(step.events);
                    stepped.push((i, cached, events, step.applied_inputs, span));
                }
                Err(e) => parks.push(self.park_for(run, i, e.into())?),
            }
        }
        if stepped
            .iter()
            .any(|(_, cached, ..)| cached.execution.awaits_local_activities())
        {
            // Run while the batch holds every one of its runs; all runs' at once.
            let (registry, metrics) = (&self.registry, self.store.metrics());
            let ran =
                futures::future::join_all(stepped.iter_mut().map(|(_, cached, events, _, _)| {
                    let execution = &mut cached.execution;
                    local::run_local_activities(registry, metrics, execution, events, batch.now)
                }))
                .await;
            let mut kept = Vec::with_capacity(stepped.len());
            for (entry, ran) in stepped.into_iter().zip(ran) {
                match ran {
                    Ok(()) => kept.push(entry),
                    Err(e) => parks.push(self.park_for(&batch.runs[entry.0], entry.0, e.into())?),
                }
            }
            stepped = kept;
        }
        let outputs: Vec<StepOutput<'_>> = stepped
            .iter()
            .map(|(i, cached, events, applied, span)| {
                let identity = RunIdentity {
                    workflow_id: &cached.workflow_id,
                    run_id: batch.runs[*i].run_id,
                    parent: cached.parent.as_ref(),
                    trace: span.context(),
                };
                StepOutput {
                    run: *i,
                    events,
                    applied: *applied,
                    effects: Effects::of_step(identity, events, &cached.execution),
                    trace: span.context(),
                }
            })
            .collect();
        let count = batch.runs.len();
        let ids: Vec<RunId> = batch.runs.iter().map(|r| r.run_id).collect();
        let firsts: Vec<bool> = batch
            .runs
            .iter()
            .map(|r| r.applied_seq.get() == 0)
            .collect();
        let heads_before: Vec<Seq> = batch.runs.iter().map(|r| r.head_seq).collect();
        let waits: Vec<_> = batch
            .runs
            .iter_mut()
            .map(|r| (r.waited, std::mem::take(&mut r.timers_late)))
            .collect();
        let heads = batch.commit(&outputs, &parks).await?;
        let metrics = self.store.metrics();
        metrics.stepped(StepPath::batch, count, started.elapsed());
        for (waited, late) in &waits {
            metrics.claimed_run(*waited, late);
        }
        parks.iter().for_each(|p| metrics.parked(&p.reason));
        self.counters
            .batched_steps
            .fetch_add(u64::try_from(count).unwrap_or(u64::MAX), Ordering::Relaxed);
        drop(outputs);
        for (i, mut cached, events, _, span) in stepped {
            cached.execution.written();
            span.written(heads_before[i], &events);
            self.count_step(&cached, firsts[i]);
            let head = heads.iter().find(|(run, _)| *run == i);
            if let (RunStatus::Running, Some((_, hash))) = (cached.execution.status(), head) {
                cached.head_hash = *hash;
                self.put_cached(ids[i], cached);
            }
        }
        // Told once the orchestrators are back in the cache: whoever waits on progress then
        // finds the engine as the step left it.
        self.progressed();
        Ok(count)
    }

    /// The orchestrator of each run of the batch: from the cache if it is there and current,
    /// else rebuilt from history (all misses read in one statement). A run whose type is
    /// unknown here or whose history cannot be replayed is to be parked instead.
    async fn load_all(&self, batch: &mut StepBatch<'_>) -> Result<(Vec<Loaded>, Vec<Park<'_>>)> {
        let mut loaded = Vec::with_capacity(batch.runs.len());
        let mut parks = Vec::new();
        let mut misses = Vec::new();
        for (i, run) in batch.runs.iter().enumerate() {
            if let Some(reason) = &run.unreadable_input {
                parks.push(Park {
                    run: i,
                    build: Some(&self.options.build),
                    reason: reason.clone(),
                });
                continue;
            }
            if !self.known_types.contains(&run.workflow_type) {
                let reason = format!(
                    "unknown workflow type {:?}: no process that claimed it registers it (known here: {})",
                    run.workflow_type,
                    self.known_types.join(", ")
                );
                parks.push(Park {
                    run: i,
                    build: None,
                    reason,
                });
                continue;
            }
            match self.take_cached(run.run_id) {
                // The stored head must be the one this engine left: a history changed under a
                // cached run (rows rewritten, its head recomputed) is read again, and its
                // chain verified, instead of being extended.
                Some(c)
                    if c.execution.last_seq() == run.head_seq && c.head_hash == run.head_hash =>
                {
                    self.store.metrics().cache_lookup(true);
                    let span = StepSpan::begin(
                        c.step_of(run.run_id),
                        StepPath::batch,
                        Orchestrator::Cached,
                    );
                    loaded.push(Loaded {
                        index: i,
                        cached: c,
                        decisions: Vec::new(),
                        span,
                    });
                }
                _ => {
                    self.store.metrics().cache_lookup(false);
                    misses.push(i);
                }
            }
        }
        // A new run's history came with the claim; the other misses are read in one statement.
        let mut histories: HashMap<RunId, Result<Vec<Event>>> = misses
            .iter()
            .filter_map(|&i| Some((batch.runs[i].run_id, batch.runs[i].history.take()?)))
            .collect();
        let miss_ids: Vec<RunId> = misses
            .iter()
            .map(|&i| batch.runs[i].run_id)
            .filter(|id| !histories.contains_key(id))
            .collect();
        histories.extend(batch.histories(&miss_ids).await?);
        for i in misses {
            let run = &batch.runs[i];
            let history = histories.remove(&run.run_id).unwrap_or_else(|| {
                Err(Error::Conflict(format!(
                    "no history read for run {}",
                    run.run_id
                )))
            });
            match history.and_then(|h| self.load(run, h)) {
                Ok(mut load) => {
                    load.index = i;
                    loaded.push(load);
                }
                Err(e) => parks.push(self.park_for(run, i, e)?),
            }
        }
        Ok((loaded, parks))
    }

    /// A cache miss: rebuild the orchestrator from history. A run whose first step has not
    /// happened starts live; any other replays its whole history strictly.
    fn load(&self, run: &BatchRun, history: Vec<Event>) -> Result<Loaded> {
        let first_step = run.applied_seq.get() == 0;
        let (workflow_id, workflow_type, parent, trace) = match history.first().map(|e| &e.kind) {
            Some(EventKind::WorkflowStarted(s)) => (
                s.workflow_id.clone(),
                s.workflow_type.clone(),
                s.parent.clone(),
                s.trace_context.clone(),
            ),
            _ => {
                return Err(Error::Corrupt {
                    what: format!("history of run {}", run.run_id),
                    reason: "does not start with WorkflowStarted".to_string(),
                });
            }
        };
        let of = StepOf {
            workflow_type: &workflow_type,
            workflow_id: &workflow_id,
            run_id: run.run_id,
            recorded: trace.as_ref(),
        };
        let (execution, decisions, span) = if first_step && history.len() == 1 {
            let started = history
                .into_iter()
                .next()
                .ok_or_else(|| Error::Conflict("empty history".into()))?;
            // A first step decides as it starts: inside its span.
            let span = StepSpan::begin(of, StepPath::batch, Orchestrator::New);
            let (execution, step) = span.in_scope(|| Execution::start(&self.registry, started))?;
            (execution, step.events.into_iter().skip(1).collect(), span)
        } else {
            let span = StepSpan::begin(of, StepPath::batch, Orchestrator::Replayed);
            self.store.metrics().replayed(history.len());
            let mut execution =
                Execution::replay_with(&self.registry, &history, self.options.input_changes)?;
            for change in execution.take_input_changes() {
                self.store.metrics().input_changed(workflow_type.as_str());
                tracing::warn!(
                    workflow_id = %workflow_id,
                    run_id = %run.run_id,
                    "{change}"
                );
            }
            (execution, Vec::new(), span)
        };
        self.foreign.watch(run.run_id, &execution);
        let cached = Cached {
            execution,
            workflow_id,
            workflow_type,
            parent,
            head_hash: run.head_hash,
            trace,
        };
        Ok(Loaded {
            index: 0,
            cached,
            decisions,
            span,
        })
    }

    /// A run whose code cannot go on is parked with the reason, so that it waits for fixed
    /// code instead of failing or retrying in a loop. Database trouble is not a reason to park:
    /// it fails the batch, to be tried again.
    fn park_for(&self, run: &BatchRun, index: usize, error: Error) -> Result<Park<'_>> {
        if matches!(error, Error::Database(_)) {
            return Err(error);
        }
        tracing::warn!(run_id = %run.run_id, reason = %error, "parking run");
        if let Error::Sdk(reprise_sdk::Error::Nondeterminism(nd)) = &error {
            self.store
                .metrics()
                .nondeterminism(&run.workflow_type, nd.kind.code());
        }
        Ok(Park {
            run: index,
            build: Some(&self.options.build),
            reason: error.to_string(),
        })
    }
}

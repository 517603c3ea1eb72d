//! Activity workers: take attempts from named task queues (with a concurrency limit), run
//! them, heartbeat, and record outcomes — refused if the lease was lost meanwhile.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use reprise_history::{Failure, FailureKind, Payload, RunId, Seq};
use reprise_sdk::{
    ActivityContext, ActivityInfo, ActivityRunner, CachePolicy, CancellationSignal, Registry,
};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::AbortHandle;
use tracing::Instrument;

use crate::backoff::Backoff;
use crate::error::{Error, Result};
use crate::listen::{spawn_listener, wait};
use crate::store::{CacheKey, Recorded};
use crate::store::{ClaimedTask, LoopConnection, Store, TASKS_CHANNEL, TaskOutcome};
use crate::telemetry::AttemptOutcome;
use crate::telemetry::trace;

mod heartbeats;
use heartbeats::PendingHeartbeat;

/// What one claim did: attempts started, out of the slots that were free, and how long until
/// a rate limit that held it back holds a claim's worth of tokens again.
struct Claimed {
    started: usize,
    free: usize,
    retry_in: Option<Duration>,
}

/// How a worker process behaves.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// This process's name in leases (unique per process).
    pub owner: String,
    /// The task queues it takes activities from.
    pub queues: Vec<String>,
    /// Attempts running at once.
    pub max_concurrent: usize,
    /// Longest wait between polls when no notification comes.
    pub idle_poll: Duration,
    /// How often heartbeats of a running attempt reach the database, at most.
    pub heartbeat_interval: Duration,
    /// On shutdown, how long running attempts may take to finish before they are handed back.
    pub shutdown_grace: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            owner: format!(
                "worker-{}-{}",
                std::process::id(),
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
            queues: vec!["default".to_string()],
            max_concurrent: 64,
            idle_poll: Duration::from_secs(1),
            heartbeat_interval: Duration::from_millis(500),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// How often a worker looks for attempts whose lease ran out.
const REAP_INTERVAL: Duration = Duration::from_millis(250);

/// Attempts timed out in one transaction, at most.
const REAP_BATCH: i64 = 100;

/// Outcomes recorded in one transaction, at most.
const OUTCOMES_PER_TRANSACTION: usize = 256;

/// An attempt's outcome on its way to the database, and who waits to learn what came of it.
struct Finished {
    task: ClaimedTask,
    outcome: TaskOutcome,
    /// When the attempt's lease runs out, as far as this process knows: past it, the outcome is
    /// refused by its token, so a write that keeps failing is given up.
    lease_ends: Instant,
    recorded: oneshot::Sender<Option<Recorded>>,
}

/// The attempts a worker is running, by activity, with the handle that stops each.
type InFlight = BTreeMap<(RunId, Seq), (ClaimedTask, AbortHandle)>;

/// What a worker has done since it was created: counters for metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Outcomes recorded: a result or a final failure in the run's inbox.
    pub outcomes_recorded: u64,
    /// Failed attempts whose retry was scheduled.
    pub retries_scheduled: u64,
    /// Outcomes refused because the attempt's lease was lost (fencing), or because the
    /// attempt ran past its start-to-close timeout (the reaper times it out instead).
    pub outcomes_fenced: u64,
    /// Outcomes that could not be written (a database error): their attempts run again once
    /// their leases run out.
    pub failed_writes: u64,
    /// Heartbeats written (each extends its attempt's lease).
    pub heartbeats_written: u64,
    /// Attempts claimed and started.
    pub attempts_started: u64,
    /// Passes of the reaper, which times out attempts whose lease ran out and activities past
    /// their deadline.
    pub reaper_passes: u64,
}

struct WorkerCounters {
    outcomes_recorded: AtomicU64,
    retries_scheduled: AtomicU64,
    outcomes_fenced: AtomicU64,
    failed_writes: AtomicU64,
    heartbeats_written: AtomicU64,
    attempts_started: AtomicU64,
    reaper_passes: AtomicU64,
    /// The counters as of the last write, for whoever waits on progress.
    progress: tokio::sync::watch::Sender<WorkerStats>,
}

impl Default for WorkerCounters {
    fn default() -> WorkerCounters {
        WorkerCounters {
            outcomes_recorded: AtomicU64::default(),
            retries_scheduled: AtomicU64::default(),
            outcomes_fenced: AtomicU64::default(),
            failed_writes: AtomicU64::default(),
            heartbeats_written: AtomicU64::default(),
            attempts_started: AtomicU64::default(),
            reaper_passes: AtomicU64::default(),
            progress: tokio::sync::watch::Sender::new(WorkerStats::default()),
        }
    }
}

/// Runs activities: the worker process.
#[derive(Clone)]
pub struct Worker {
    store: Store,
    registry: Arc<Registry>,
    /// The activity types it claims: those it registers.
    activity_types: Arc<[String]>,
    options: WorkerOptions,
    slots: Arc<Semaphore>,
    in_flight: Arc<Mutex<InFlight>>,
    /// Woken when the last attempt in flight ends (a drain waits for it).
    emptied: Arc<tokio::sync::Notify>,
    /// Whether it takes work (see [`Worker::readiness`]).
    ready: Arc<tokio::sync::watch::Sender<bool>>,
    /// The connection claims go through, and outcomes recorded while the worker is not
    /// running (see [`LoopConnection`]).
    claims: Arc<tokio::sync::Mutex<LoopConnection>>,
    /// While the worker runs: the queue of outcomes to record (see [`record_outcomes`]).
    outcomes: Arc<Mutex<Option<mpsc::UnboundedSender<Finished>>>>,
    counters: Arc<WorkerCounters>,
}

impl Worker {
    /// A worker running `registry`'s activities on `store`.
    pub fn new(store: Store, registry: Registry, options: WorkerOptions) -> Worker {
        let slots = Arc::new(Semaphore::new(options.max_concurrent.max(1)));
        let activity_types = registry.activity_types().map(ToString::to_string).collect();
        Worker {
            claims: Arc::new(tokio::sync::Mutex::new(LoopConnection::new(&store))),
            store,
            activity_types,
            registry: Arc::new(registry),
            options,
            slots,
            in_flight: Arc::default(),
            emptied: Arc::default(),
            ready: Arc::new(tokio::sync::watch::Sender::new(false)),
            outcomes: Arc::default(),
            counters: Arc::default(),
        }
    }

    /// The options in use.
    pub fn options(&self) -> &WorkerOptions {
        &self.options
    }

    /// What this worker (and its clones) has done so far.
    pub fn stats(&self) -> WorkerStats {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        WorkerStats {
            outcomes_recorded: read(&self.counters.outcomes_recorded),
            retries_scheduled: read(&self.counters.retries_scheduled),
            outcomes_fenced: read(&self.counters.outcomes_fenced),
            failed_writes: read(&self.counters.failed_writes),
            heartbeats_written: read(&self.counters.heartbeats_written),
            attempts_started: read(&self.counters.attempts_started),
            reaper_passes: read(&self.counters.reaper_passes),
        }
    }

    /// The worker's counters, changing each time it (or a clone) has written an outcome or a
    /// heartbeat: for waiting on its progress without polling, then reading what changed.
    pub fn progress(&self) -> tokio::sync::watch::Receiver<WorkerStats> {
        self.counters.progress.subscribe()
    }

    /// Counts one event and publishes the counters, read under the watch's lock so that of two
    /// writers the later snapshot is the one that stays.
    fn count(&self, counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
        self.counters
            .progress
            .send_modify(|stats| *stats = self.stats());
    }

    /// Readiness as it changes: for a health endpoint or a test waiting for it.
    pub fn readiness(&self) -> tokio::sync::watch::Receiver<bool> {
        self.ready.subscribe()
    }

    /// Whether the worker is taking work: true while it runs, false once it drains.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Drains: lets running attempts finish within the grace period, then hands the rest back
    /// so that another worker takes them at once. Returns how many it handed back.
    async fn drain(&self) -> Result<usize> {
        self.ready.send_replace(false);
        let deadline = tokio::time::Instant::now() + self.options.shutdown_grace;
        loop {
            // Registered before the check, so that an attempt ending in between still wakes it.
            let emptied = self.emptied.notified();
            tokio::pin!(emptied);
            emptied.as_mut().enable();
            if self.lock_in_flight().is_empty() {
                break;
            }
            if tokio::time::timeout_at(deadline, emptied).await.is_err() {
                break;
            }
        }
        let rest: Vec<(ClaimedTask, AbortHandle)> = std::mem::take(&mut *self.lock_in_flight())
            .into_values()
            .collect();
        for (task, abort) in &rest {
            abort.abort();
            self.store.hand_back(task, &self.options.owner).await?;
        }
        Ok(rest.len())
    }

    fn lock_in_flight(&self) -> std::sync::MutexGuard<'_, InFlight> {
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs until `shutdown` resolves, then drains (see [`WorkerOptions::shutdown_grace`]).
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
        let owner = &self.options.owner;
        // What it serves is announced for `limits set` to check names against; a worker that
        // cannot announce itself still works (the database may be restarting).
        let announced = self
            .store
            .announce_worker(owner, &self.options.queues, &self.activity_types)
            .await;
        if let Err(e) = announced {
            tracing::warn!(error = %e, "announcing the worker failed");
        }
        let notify = spawn_listener(&self.store, &[TASKS_CHANNEL]);
        let (queue, queued) = mpsc::unbounded_channel();
        *self.lock_outcomes() = Some(queue);
        let stopping = CancellationToken::new();
        let recorder = tokio::spawn(record_outcomes(
            self.store.clone(),
            self.options.owner.clone(),
            queued,
            stopping.clone(),
        ));
        let reaper = tokio::spawn(self.clone().reap_forever());
        let result = self.poll_until(&notify, shutdown).await;
        reaper.abort();
        // The queue closes once the last attempt has sent its outcome; the recorder then
        // records what is left and stops. A database that is away is waited for one grace
        // period more, not for whole leases: those hand the attempts to another worker.
        self.lock_outcomes().take();
        let mut recorder = recorder;
        if tokio::time::timeout(self.options.shutdown_grace, &mut recorder)
            .await
            .is_err()
        {
            stopping.cancel();
            let _ = recorder.await;
        }
        if let Err(e) = self.store.retire_worker(owner).await {
            tracing::warn!(error = %e, "retiring the worker failed");
        }
        result
    }

    fn lock_outcomes(&self) -> std::sync::MutexGuard<'_, Option<mpsc::UnboundedSender<Finished>>> {
        self.outcomes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn poll_until(
        &self,
        notify: &tokio::sync::Notify,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<()> {
        self.ready.send_replace(true);
        tokio::pin!(shutdown);
        let mut backoff = Backoff::default();
        loop {
            // Waiting for a free slot ends with the shutdown; a claim is never dropped half-way:
            // once its statement has leased attempts, they must start (to finish or be handed
            // back by the drain). A claim cancelled by the shutdown after its commit left them
            // leased to no one until their leases ran out (the combined-process drain test
            // caught it under load). A claim is one short statement: shutdown waits for that.
            tokio::select! {
                biased;
                _ = &mut shutdown => break,
                () = self.free_slot() => {}
            }
            let polled = self.claim_and_start().await;
            if polled.is_ok() {
                backoff.reset();
            }
            match polled {
                // Every free slot got an attempt: there may be more, claim again (as soon as a
                // slot frees). Otherwise the queue is drained, or a limit held the claim back:
                // wait for the next announcement (an attempt ending under a concurrency limit
                // makes one) or, under a rate limit, for a claim's worth of tokens; never poll.
                Ok(Claimed { started, free, .. }) if started >= free && started > 0 => {}
                Ok(Claimed { retry_in, .. }) => {
                    let idle = self.options.idle_poll;
                    let pause = retry_in.map_or(idle, |next_token| next_token.min(idle));
                    tokio::select! {
                        _ = &mut shutdown => break,
                        _ = wait(notify, pause) => {}
                    }
                }
                Err(e) if e.is_retryable() => {
                    tracing::warn!(error = %e, "worker loop: retrying after a database error");
                    tokio::select! {
                        _ = &mut shutdown => break,
                        () = backoff.wait() => {}
                    }
                }
                Err(e) => {
                    // Not ready any more: a health check must not report a stopped worker.
                    self.ready.send_replace(false);
                    return Err(e);
                }
            }
        }
        let handed_back = self.drain().await?;
        tracing::info!(handed_back, "worker drained");
        Ok(())
    }

    /// Times out what needs timing out, then claims as many attempts as there are free slots
    /// and starts them; returns how many it started.
    pub async fn poll_once(&self) -> Result<usize> {
        self.store.reap_tasks(REAP_BATCH).await?;
        self.free_slot().await;
        Ok(self.claim_and_start().await?.started)
    }

    /// Times out attempts and activities a few times a second, beside the claims: a claim is
    /// on the path of every activity, a timeout is not. Errors are logged and tried again.
    async fn reap_forever(self) {
        loop {
            let reaped = self.store.reap_tasks(REAP_BATCH).await;
            self.count(&self.counters.reaper_passes);
            match reaped {
                // A full batch: more may be waiting.
                Ok(n) if i64::try_from(n).unwrap_or(i64::MAX) >= REAP_BATCH => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "timing out activities failed"),
            }
            tokio::time::sleep(REAP_INTERVAL).await;
        }
    }

    /// Returns once a slot is free. When every slot is busy, the next claim comes as soon as
    /// one frees up, without waiting for a notification (the work may have been announced
    /// while the slots were full).
    async fn free_slot(&self) {
        if self.slots.available_permits() == 0 {
            let _ = self.slots.acquire().await.map(drop);
        }
    }

    /// Claims as many attempts as there are free slots and starts them.
    async fn claim_and_start(&self) -> Result<Claimed> {
        let free = self.slots.available_permits();
        let limit = i64::try_from(free).unwrap_or(1);
        let claim = self
            .claims
            .lock()
            .await
            .run(async |conn| {
                let (queues, owner) = (&self.options.queues, &self.options.owner);
                let types = &self.activity_types;
                self.store
                    .claim_tasks(conn, queues, types, owner, limit)
                    .await
            })
            .await?;
        let count = claim.tasks.len();
        for task in claim.tasks {
            let Ok(permit) = self.slots.clone().acquire_owned().await else {
                break;
            };
            let claimed_copy = task.clone();
            let worker = self.clone();
            let key = (task.run_id, task.scheduled_seq);
            let span = tracing::info_span!("activity_attempt", workflow_id = %task.workflow_id,
                run_id = %task.run_id, seq = %task.scheduled_seq, activity_type = %task.activity_type,
                task_queue = %task.task_queue, attempt = task.attempt);
            // A child of the step that scheduled it, across processes (see `telemetry::trace`).
            if let Some(scheduled_by) = &task.trace {
                trace::set_parent(&span, scheduled_by);
            }
            let mut in_flight = self.lock_in_flight();
            let handle = tokio::spawn(
                async move {
                    if let Err(e) = worker.execute(&task).await {
                        tracing::warn!(error = %e, "recording the activity's outcome failed; its lease will time out");
                    }
                    let mut in_flight = worker.lock_in_flight();
                    in_flight.remove(&key);
                    if in_flight.is_empty() {
                        worker.emptied.notify_waiters();
                    }
                    drop(in_flight);
                    drop(permit);
                }
                .instrument(span),
            );
            in_flight.insert(key, (claimed_copy, handle.abort_handle()));
            drop(in_flight);
            self.count(&self.counters.attempts_started);
        }
        Ok(Claimed {
            started: count,
            free,
            retry_in: claim.retry_in,
        })
    }

    /// Runs one attempt to its end and records the outcome.
    async fn execute(&self, task: &ClaimedTask) -> Result<Recorded> {
        let info = ActivityInfo {
            workflow_id: task.workflow_id.clone(),
            run_id: task.run_id,
            scheduled_seq: task.scheduled_seq,
            activity_type: task.activity_type.clone(),
            attempt: task.attempt,
        };
        let cancellation = CancellationSignal::new();
        let heartbeats = Arc::new(PendingHeartbeat::default());
        // When the lease was last begun or extended: the claim, then each heartbeat written.
        let extended = Mutex::new(task.claimed_at);
        // A retried attempt resumes from the last checkpoint an earlier one heartbeat; if it
        // cannot be read, the attempt starts over, which at-least-once code must allow anyway.
        let last_details = if task.attempt > 1 {
            self.store.last_details(task).await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "reading the last heartbeat's details failed");
                None
            })
        } else {
            None
        };
        let ctx = ActivityContext::new(
            info,
            heartbeats.clone(),
            cancellation.clone(),
            self.registry.converter().clone(),
        )
        .with_last_details(last_details);
        let metrics = self.store.metrics();
        metrics.schedule_to_start(&task.task_queue, task.waited_seconds);
        let started = std::time::Instant::now();
        let cache = self.cache_key(task);
        let cached = match &cache {
            Some((key, _)) => self.cached_result(key).await,
            None => None,
        };
        let from_cache = cached.is_some();
        let outcome = match (cached, self.registry.activity(&task.activity_type)) {
            (Some(result), _) => TaskOutcome::Completed(result),
            (None, Err(e)) => {
                TaskOutcome::Failed(Failure::application("UnknownActivityType", e.to_string()))
            }
            (None, Ok(runner)) => {
                let attempt = run_attempt(runner, ctx, task.input.clone());
                let beating = self.heartbeat_loop(task, &heartbeats, &cancellation, &extended);
                tokio::pin!(attempt);
                tokio::select! {
                    outcome = &mut attempt => outcome,
                    () = beating => attempt.await,
                }
            }
        };
        let ended = Instant::now();
        let took = started.elapsed();
        let completed = matches!(outcome, TaskOutcome::Completed(_));
        // Past its start-to-close timeout the attempt has timed out, whatever it returned
        // (most often the cancellation raised at the deadline): its lease runs out, and the
        // reaper records the timeout, which is what the workflow and its retry policy must see.
        let timed_out = !from_cache
            && task
                .start_to_close_deadline()
                .is_some_and(|deadline| ended >= deadline);
        if !completed || timed_out {
            self.flush_checkpoint(task, &heartbeats).await;
        }
        // Kept after the outcome is recorded, so that a slow cache write never costs the
        // attempt its lease; kept even when the outcome was refused, as the result is as good.
        let to_keep = match (&cache, &outcome, from_cache) {
            (Some(cache), TaskOutcome::Completed(result), false) => Some((cache, result.clone())),
            _ => None,
        };
        let recorded = if timed_out {
            self.count(&self.counters.outcomes_fenced);
            Recorded::Fenced
        } else {
            let extended = *extended.lock().unwrap_or_else(PoisonError::into_inner);
            self.record(task.clone(), outcome, task.lease_ends(extended))
                .await?
        };
        let label = match recorded {
            Recorded::Outcome if from_cache => AttemptOutcome::cached,
            Recorded::Outcome if completed => AttemptOutcome::completed,
            Recorded::Outcome => AttemptOutcome::failed,
            Recorded::Retry => AttemptOutcome::retried,
            Recorded::Fenced => AttemptOutcome::fenced,
        };
        metrics.attempt(task.activity_type.as_str(), &task.task_queue, label, took);
        if let Some(((key, policy), result)) = to_keep {
            // A failed write only costs a later run the work.
            if let Err(e) = self.store.cache_result(key, policy, &result).await {
                tracing::warn!(error = %e, "keeping the activity's result in its cache failed");
            }
        }
        if timed_out {
            tracing::warn!(
                "the attempt ran past its start-to-close timeout: its outcome was not recorded, it times out"
            );
        } else if recorded == Recorded::Fenced {
            tracing::warn!(
                "the attempt's lease was lost: its late outcome was refused and not recorded"
            );
        }
        Ok(recorded)
    }

    /// The cache key of the task's input, with its activity's cache policy, when the activity
    /// has one.
    fn cache_key(&self, task: &ClaimedTask) -> Option<(CacheKey, CachePolicy)> {
        let policy = self.registry.cache_policy(&task.activity_type)?;
        let converter = self.registry.converter();
        let key = CacheKey::new(&task.activity_type, policy, &task.input, converter)?;
        Some((key, policy.clone()))
    }

    /// The cached result for `key`; None when there is none, or when it cannot be read (the
    /// attempt then runs its code, as it would without a cache).
    async fn cached_result(&self, key: &CacheKey) -> Option<Payload> {
        self.store.cached_result(key).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "reading the activity's cache failed; running it");
            None
        })
    }

    /// Records an outcome (see [`Worker::write_outcome`]) and counts what came of it.
    async fn record(
        &self,
        task: ClaimedTask,
        outcome: TaskOutcome,
        lease_ends: Instant,
    ) -> Result<Recorded> {
        let recorded = self.write_outcome(task, outcome, lease_ends).await;
        let counter = match &recorded {
            Ok(Recorded::Outcome) => &self.counters.outcomes_recorded,
            Ok(Recorded::Retry) => &self.counters.retries_scheduled,
            Ok(Recorded::Fenced) => &self.counters.outcomes_fenced,
            Err(_) => &self.counters.failed_writes,
        };
        self.count(counter);
        recorded
    }

    /// Writes an outcome: through the running worker's queue (so that outcomes finishing
    /// together share one transaction), or directly when the worker is not running.
    async fn write_outcome(
        &self,
        task: ClaimedTask,
        outcome: TaskOutcome,
        lease_ends: Instant,
    ) -> Result<Recorded> {
        let queue = self.lock_outcomes().clone();
        let finished = match queue {
            Some(queue) => {
                let (recorded, answer) = oneshot::channel();
                let sent = queue.send(Finished {
                    task,
                    outcome,
                    lease_ends,
                    recorded,
                });
                match sent {
                    Ok(()) => {
                        return answer.await.ok().flatten().ok_or_else(|| {
                            Error::Conflict("recording the outcome failed".to_string())
                        });
                    }
                    Err(mpsc::error::SendError(finished)) => (finished.task, finished.outcome),
                }
            }
            None => (task, outcome),
        };
        let recorded = self
            .claims
            .lock()
            .await
            .run(async |conn| {
                let owner = &self.options.owner;
                self.store.finish_tasks(conn, owner, &[finished]).await
            })
            .await?;
        recorded
            .into_iter()
            .next()
            .ok_or_else(|| Error::Conflict("no outcome was recorded".to_string()))
    }
}

/// Runs an activity's code: async on this runtime, blocking on the blocking pool. A panic
/// fails the attempt (retryable) instead of the worker (or the engine, for a local activity).
pub(crate) async fn run_attempt(
    runner: ActivityRunner,
    ctx: ActivityContext,
    input: Payload,
) -> TaskOutcome {
    let joined = match runner {
        ActivityRunner::Async(run) => tokio::spawn(run(ctx, input)).await,
        ActivityRunner::Blocking(run) => tokio::task::spawn_blocking(move || run(ctx, input)).await,
    };
    match joined {
        Ok(Ok(result)) => TaskOutcome::Completed(result),
        Ok(Err(error)) => TaskOutcome::Failed(error.into_failure()),
        Err(join) => TaskOutcome::Failed(
            Failure::of_kind(
                FailureKind::Panicked,
                format!("the activity panicked: {join}"),
            )
            .retryable(true),
        ),
    }
}

/// Records queued outcomes until the queue closes: each transaction takes every outcome that
/// is waiting (up to [`OUTCOMES_PER_TRANSACTION`]), so attempts that finish while one commits
/// share the next commit. A transient database error (a restart, a failover) is retried with
/// backoff for as long as an outcome's lease can still hold: one written in time lands seconds
/// after the database is back, where one given up on would wait for its lease to run out (10
/// minutes without a start-to-close timeout) and its attempt would run again. An outcome whose
/// lease has passed is given up (its token would be refused anyway); the rest are tried again.
/// Once `stopping` fires (a grace period into the worker's stop), a failed write is not tried
/// again: the leases hand the attempts to another worker.
async fn record_outcomes(
    store: Store,
    owner: String,
    mut queue: mpsc::UnboundedReceiver<Finished>,
    stopping: CancellationToken,
) {
    let mut conn = LoopConnection::new(&store);
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < OUTCOMES_PER_TRANSACTION {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let (mut items, mut waiting): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .map(|f| ((f.task, f.outcome), (f.lease_ends, f.recorded)))
            .unzip();
        let mut backoff = Backoff::default();
        while !items.is_empty() {
            match conn
                .run(async |c| store.finish_tasks(c, &owner, &items).await)
                .await
            {
                Ok(recorded) => {
                    for (i, (_, waiter)) in waiting.drain(..).enumerate() {
                        let _ = waiter.send(recorded.get(i).copied());
                    }
                    items.clear();
                }
                Err(e) => {
                    let now = Instant::now();
                    let retry = e.is_retryable() && !stopping.is_cancelled();
                    let (mut kept_items, mut kept_waiting) = (Vec::new(), Vec::new());
                    let mut given_up = 0;
                    for (item, (lease_ends, waiter)) in items.drain(..).zip(waiting.drain(..)) {
                        if retry && lease_ends > now {
                            kept_items.push(item);
                            kept_waiting.push((lease_ends, waiter));
                        } else {
                            given_up += 1;
                            let _ = waiter.send(None);
                        }
                    }
                    (items, waiting) = (kept_items, kept_waiting);
                    if given_up > 0 {
                        tracing::warn!(error = %e, outcomes = given_up,
                            "recording outcomes failed; their leases will time out and the attempts run again");
                    }
                    if !items.is_empty() {
                        tracing::warn!(error = %e, outcomes = items.len(),
                            "recording outcomes failed; trying again while their leases hold");
                        tokio::select! {
                            () = backoff.wait() => {}
                            () = stopping.cancelled() => {}
                        }
                    }
                }
            }
        }
    }
}

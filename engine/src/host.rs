//! The orchestrator host: claims runs that have work, steps each in one transaction, and keeps
//! live orchestrators in a bounded cache so a step costs its new events, not a replay.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use lru::LruCache;
use reprise_history::{EventKind, ParentRun, RunId, Timestamp};
use reprise_sdk::{Execution, Registry, RunStatus};
use tracing::Instrument;

use crate::error::{Error, Result};
use crate::listen::{spawn_listener, wait};
use crate::store::runs_closing;
use crate::store::{ClaimedRun, RUNS_CHANNEL, StepTx, Store};

/// How an engine process behaves.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// This process's name in leases (unique per process).
    pub owner: String,
    /// Identifies the code this process runs; a run parked by nondeterminism is retried only
    /// by another build. Default: a hash of the executable.
    pub build: String,
    /// Runs claimed at once.
    pub claim_batch: i64,
    /// Steps in flight at once.
    pub max_concurrent_steps: usize,
    /// How long a claimed run is this process's alone.
    pub lease: Duration,
    /// Longest wait between polls when no notification comes.
    pub idle_poll: Duration,
    /// Live orchestrators kept between steps.
    pub cache_capacity: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            owner: format!(
                "engine-{}-{}",
                std::process::id(),
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
            build: executable_build(),
            claim_batch: 32,
            max_concurrent_steps: 16,
            lease: Duration::from_secs(30),
            idle_poll: Duration::from_secs(1),
            cache_capacity: 10_000,
        }
    }
}

/// A hash of this executable: processes running the same binary share it.
pub fn executable_build() -> String {
    std::env::current_exe()
        .and_then(std::fs::read)
        .map(|bytes| blake3::hash(&bytes).to_hex()[..16].to_string())
        .unwrap_or_else(|_| "unknown".to_string())
}

struct Cached {
    execution: Execution,
    parent: Option<ParentRun>,
}

/// Hosts orchestrators: the engine process.
#[derive(Clone)]
pub struct Engine {
    store: Store,
    registry: Arc<Registry>,
    options: EngineOptions,
    known_types: Vec<String>,
    cache: Arc<Mutex<LruCache<RunId, Cached>>>,
    ready: Arc<std::sync::atomic::AtomicBool>,
}

impl Engine {
    /// An engine running `registry`'s workflows on `store`.
    pub fn new(store: Store, registry: Registry, options: EngineOptions) -> Engine {
        let known_types = registry.workflow_types().map(ToString::to_string).collect();
        let capacity = NonZeroUsize::new(options.cache_capacity).unwrap_or(NonZeroUsize::MIN);
        Engine {
            store,
            registry: Arc::new(registry),
            options,
            known_types,
            cache: Arc::new(Mutex::new(LruCache::new(capacity))),
            ready: Arc::default(),
        }
    }

    /// Whether the engine is taking work: true while it runs, false once it stops claiming.
    pub fn is_ready(&self) -> bool {
        self.ready.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The options in use.
    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// Runs until `shutdown` resolves: claims ready runs and steps them, waiting on
    /// `LISTEN/NOTIFY` (or until the next timer is due, or the idle poll) when there is none.
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
        let notify = spawn_listener(&self.store, RUNS_CHANNEL);
        tokio::pin!(shutdown);
        self.ready.store(true, std::sync::atomic::Ordering::SeqCst);
        let stopped = self.claim_loop(&notify, &mut shutdown).await;
        self.ready.store(false, std::sync::atomic::Ordering::SeqCst);
        stopped
    }

    async fn claim_loop(
        &self,
        notify: &tokio::sync::Notify,
        shutdown: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    ) -> Result<()> {
        loop {
            // A claimed batch is always stepped to the end: stopping halfway would strand
            // the leases until they expire.
            match self.run_once().await {
                Ok(0) => {
                    let idle = self.idle_wait().await;
                    tokio::select! {
                        _ = shutdown.as_mut() => return Ok(()),
                        _ = wait(notify, idle) => {}
                    }
                }
                Ok(_) => {}
                Err(e) if e.is_retryable() => {
                    tracing::warn!(error = %e, "engine loop: retrying after a database error");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e),
            }
            if futures::poll!(shutdown.as_mut()).is_ready() {
                return Ok(());
            }
        }
    }

    /// How long to wait for work: until the next timer is due, at most the idle poll.
    async fn idle_wait(&self) -> Duration {
        match self.store.next_ready_in().await {
            Ok(Some(wait)) => wait.min(self.options.idle_poll),
            _ => self.options.idle_poll,
        }
    }

    /// Claims one batch of runs and steps them; returns how many were claimed.
    pub async fn run_once(&self) -> Result<usize> {
        let claimed = self
            .store
            .claim_runs(
                &self.options.owner,
                &self.known_types,
                &self.options.build,
                self.options.claim_batch,
                self.options.lease,
            )
            .await?;
        let count = claimed.len();
        futures::stream::iter(claimed)
            .for_each_concurrent(self.options.max_concurrent_steps, |run| async move {
                let span = tracing::info_span!("step", run_id = %run.run_id, workflow_type = %run.workflow_type);
                if let Err(e) = self.step(&run).instrument(span).await {
                    tracing::warn!(run_id = %run.run_id, error = %e, "step failed");
                }
            })
            .await;
        Ok(count)
    }

    fn take_cached(&self, run_id: RunId) -> Option<Cached> {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop(&run_id)
    }

    fn put_cached(&self, run_id: RunId, cached: Cached) {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .put(run_id, cached);
    }

    /// One step of one claimed run: inputs in, decisions out, one transaction.
    async fn step(&self, run: &ClaimedRun) -> Result<()> {
        let owner = &self.options.owner;
        if !self.known_types.contains(&run.workflow_type) {
            let reason = format!(
                "unknown workflow type {:?}: no process that claimed it registers it (known here: {})",
                run.workflow_type,
                self.known_types.join(", ")
            );
            return self.store.park(run, owner, None, &reason).await;
        }
        let mut step = self.store.begin_step(run, owner).await?;
        let (cached, mut events) = match self.take_cached(run.run_id) {
            Some(c) if c.execution.last_seq() == step.head_seq => (c, Vec::new()),
            _ => match self.load(&mut step).await {
                Ok(loaded) => loaded,
                Err(e) => {
                    drop(step);
                    return self.park_for(run, e).await;
                }
            },
        };
        let Cached {
            mut execution,
            parent,
        } = cached;
        let inputs: Vec<(Timestamp, EventKind)> = if execution.status() == &RunStatus::Running {
            step.inputs.iter().map(|k| (step.now, k.clone())).collect()
        } else {
            Vec::new() // closed by its first step: its inputs are not for this run
        };
        match execution.step(inputs) {
            Ok(s) => {
                step.keep_unapplied(s.applied_inputs);
                events.extend(s.events);
            }
            Err(e) => {
                drop(step);
                return self.park_for(run, e.into()).await;
            }
        }
        // Every step commits, even one that appended nothing (a first step that only waits,
        // a lease that ran out): the commit records the step and recomputes `ready_at`, so the
        // run cannot be claimed again for nothing.
        let closing = runs_closing(&execution);
        step.commit(&events, closing, parent.as_ref()).await?;
        if execution.status() == &RunStatus::Running {
            self.put_cached(run.run_id, Cached { execution, parent });
        }
        Ok(())
    }

    /// A cache miss: rebuild the orchestrator from history. A run whose first step has not
    /// happened starts live; any other replays its whole history strictly.
    async fn load(&self, step: &mut StepTx) -> Result<(Cached, Vec<reprise_history::Event>)> {
        let run_id = step.run_id;
        let first_step = step.applied_seq.get() == 0;
        let history = step.history().await?;
        let parent = match history.first().map(|e| &e.kind) {
            Some(EventKind::WorkflowStarted(s)) => s.parent.clone(),
            _ => {
                return Err(Error::Corrupt {
                    what: format!("history of run {run_id}"),
                    reason: "does not start with WorkflowStarted".to_string(),
                });
            }
        };
        if first_step && history.len() == 1 {
            let started = history
                .into_iter()
                .next()
                .ok_or_else(|| Error::Conflict("empty history".into()))?;
            let (execution, step) = Execution::start(&self.registry, started)?;
            let decisions = step.events.into_iter().skip(1).collect();
            return Ok((Cached { execution, parent }, decisions));
        }
        let execution = Execution::replay(&self.registry, &history)?;
        Ok((Cached { execution, parent }, Vec::new()))
    }

    /// Parks a run whose code cannot go on, with the reason, so that it waits for fixed code
    /// instead of failing or retrying in a loop. Database trouble is not a reason to park.
    async fn park_for(&self, run: &ClaimedRun, error: Error) -> Result<()> {
        if matches!(error, Error::Database(_) | Error::LeaseLost { .. }) {
            return Err(error);
        }
        tracing::warn!(run_id = %run.run_id, reason = %error, "parking run");
        self.store
            .park(
                run,
                &self.options.owner,
                Some(&self.options.build),
                &error.to_string(),
            )
            .await
    }
}

//! Engines and workers running in the background of a test, stopped when dropped.

use std::time::Duration;

use futures::FutureExt;
use reprise_engine::{Engine, EngineOptions, Store, Worker, WorkerOptions};
use reprise_sdk::Registry;
use tokio::sync::oneshot;

pub(crate) fn engine_options() -> EngineOptions {
    EngineOptions {
        idle_poll: Duration::from_millis(50),
        ..EngineOptions::default()
    }
}

pub(crate) fn worker_options() -> WorkerOptions {
    WorkerOptions {
        idle_poll: Duration::from_millis(50),
        heartbeat_interval: Duration::from_millis(20),
        ..WorkerOptions::default()
    }
}

/// Runs an engine and a worker in the background until the returned guard is dropped.
pub(crate) struct Running {
    stops: Vec<oneshot::Sender<()>>,
    engines: Vec<Engine>,
    workers: Vec<Worker>,
}

pub(crate) fn run_engine(
    store: &Store,
    registry: Registry,
    options: EngineOptions,
    running: &mut Running,
) -> Engine {
    let (stop, stopped) = oneshot::channel::<()>();
    let engine = Engine::new(store.clone(), registry, options);
    let runs = engine.clone();
    tokio::spawn(async move {
        if let Err(e) = runs.run(async { stopped.await.unwrap_or(()) }).await {
            eprintln!("engine stopped: {e}");
        }
    });
    running.stops.push(stop);
    running.engines.push(engine.clone());
    engine
}

pub(crate) fn run_worker(
    store: &Store,
    registry: Registry,
    options: WorkerOptions,
    running: &mut Running,
) -> Worker {
    let (stop, stopped) = oneshot::channel::<()>();
    let worker = Worker::new(store.clone(), registry, options);
    let runs = worker.clone();
    tokio::spawn(async move {
        if let Err(e) = runs.run(async { stopped.await.unwrap_or(()) }).await {
            eprintln!("worker stopped: {e}");
        }
    });
    running.stops.push(stop);
    running.workers.push(worker.clone());
    worker
}

impl Running {
    pub(crate) fn new() -> Running {
        Running {
            stops: Vec::new(),
            engines: Vec::new(),
            workers: Vec::new(),
        }
    }

    /// Waits until `check` holds, checking again each time an engine or a worker of this test
    /// has written something (a step, a parked run, a claim, a heartbeat, an outcome): a run's
    /// state changes only by those, or by a call the test makes itself, so this needs no
    /// polling. Call it inside the test's `within`.
    pub(crate) async fn until(&self, mut check: impl AsyncFnMut() -> bool) {
        let mut engines: Vec<_> = self.engines.iter().map(Engine::progress).collect();
        let mut workers: Vec<_> = self.workers.iter().map(Worker::progress).collect();
        assert!(
            !engines.is_empty() || !workers.is_empty(),
            "nothing runs in this test"
        );
        loop {
            engines.iter_mut().for_each(|p| p.mark_unchanged());
            workers.iter_mut().for_each(|p| p.mark_unchanged());
            if check().await {
                return;
            }
            let changes = engines
                .iter_mut()
                .map(|p| p.changed().boxed())
                .chain(workers.iter_mut().map(|p| p.changed().boxed()));
            let (changed, _, _) = futures::future::select_all(changes).await;
            changed.expect("the counters live as long as their engine or worker");
        }
    }

    /// Stops every engine and worker and waits until each has: an engine woken just before
    /// would otherwise still step what arrives meanwhile, with the code being replaced.
    pub(crate) async fn stop(mut self) {
        let mut readiness: Vec<_> = self.engines.iter().map(Engine::readiness).collect();
        readiness.extend(self.workers.iter().map(Worker::readiness));
        self.stops.clear();
        for ready in &mut readiness {
            tokio::time::timeout(Duration::from_secs(30), ready.wait_for(|ready| !*ready))
                .await
                .expect("stopped within 30 s")
                .expect("the readiness lives as long as its engine or worker");
        }
    }

    /// The first worker this test runs.
    pub(crate) fn worker(&self) -> &Worker {
        self.workers.first().expect("a worker runs in this test")
    }

    /// An engine and a worker, each with its own registry built by `registry`.
    pub(crate) fn both(store: &Store, registry: impl Fn() -> Registry) -> Running {
        let mut running = Running::new();
        run_engine(store, registry(), engine_options(), &mut running);
        run_worker(store, registry(), worker_options(), &mut running);
        running
    }
}

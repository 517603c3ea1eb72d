//! Engines and workers running in the background of a test, stopped when dropped.

use std::time::Duration;

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
    engine
}

pub(crate) fn run_worker(
    store: &Store,
    registry: Registry,
    options: WorkerOptions,
    running: &mut Running,
) {
    let (stop, stopped) = oneshot::channel::<()>();
    let worker = Worker::new(store.clone(), registry, options);
    tokio::spawn(async move {
        if let Err(e) = worker.run(async { stopped.await.unwrap_or(()) }).await {
            eprintln!("worker stopped: {e}");
        }
    });
    running.stops.push(stop);
}

impl Running {
    pub(crate) fn new() -> Running {
        Running { stops: Vec::new() }
    }

    /// An engine and a worker, each with its own registry built by `registry`.
    pub(crate) fn both(store: &Store, registry: impl Fn() -> Registry) -> Running {
        let mut running = Running::new();
        run_engine(store, registry(), engine_options(), &mut running);
        run_worker(store, registry(), worker_options(), &mut running);
        running
    }
}

//! [`Reprise`]: a client, an engine and a worker of one process, built and run together — one
//! registry, one pool, one shutdown, readiness, a graceful drain.
//!
//! ```no_run
//! # async fn example(registry: reprise_sdk::Registry) -> reprise_engine::Result<()> {
//! use reprise_engine::{EngineOptions, Reprise, WorkerOptions};
//!
//! let reprise = Reprise::builder()
//!     .database_url("postgres://reprise@localhost/reprise")
//!     .registry(registry)
//!     .engine(EngineOptions::default())
//!     .worker(WorkerOptions::default())
//!     .start()
//!     .await?;
//! let client = reprise.client().clone();
//! // ... start workflows with `client`; on SIGTERM:
//! reprise.run_until(tokio::signal::ctrl_c().map(drop)).await
//! # }
//! # use futures::FutureExt;
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use reprise_sdk::Registry;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::host::{Engine, EngineOptions};
use crate::store::Store;
use crate::telemetry::http::Endpoints;
use crate::worker::{Worker, WorkerOptions};
use crate::{Pool, pool_options};

/// Connections in a pool the builder opens, unless told otherwise.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;

/// Where the database comes from.
enum Database {
    Url(String),
    Pool(Pool),
}

/// Builds a [`Reprise`]: say where the database is, what code runs, and which of engine and
/// worker this process runs (a process with neither is a client only).
#[must_use = "a builder does nothing until `start` is awaited"]
pub struct RepriseBuilder {
    database: Option<Database>,
    max_connections: u32,
    acquire_timeout: Option<Duration>,
    migrate: bool,
    registry: Option<Registry>,
    engine: Option<EngineOptions>,
    worker: Option<WorkerOptions>,
    http: Option<SocketAddr>,
    http_routes: Option<axum::Router>,
    shutdown: CancellationToken,
    chain_key: Option<reprise_history::ChainKey>,
}

/// A running Reprise process: its client, and the engine, worker and HTTP endpoints it runs.
///
/// Stop it with [`Reprise::shutdown`] (or [`Reprise::run_until`] a signal): the engine finishes
/// its batches in flight, the worker its activities within `shutdown_grace`, then both return.
/// Dropped without that, it cancels its loops and aborts their tasks: nothing is lost (every
/// step is a transaction, every lease runs out), but in-flight work is redone elsewhere.
pub struct Reprise {
    store: Store,
    client: Client,
    engine: Option<Engine>,
    worker: Option<Worker>,
    endpoints: Endpoints,
    http: Option<SocketAddr>,
    shutdown: CancellationToken,
    tasks: JoinSet<(&'static str, Result<()>)>,
}

impl Reprise {
    /// A builder with nothing set.
    pub fn builder() -> RepriseBuilder {
        RepriseBuilder {
            database: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            acquire_timeout: None,
            migrate: true,
            registry: None,
            engine: None,
            worker: None,
            http: None,
            http_routes: None,
            shutdown: CancellationToken::new(),
            chain_key: None,
        }
    }

    /// The client, sharing the process's pool and the registry's payload converter.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The store (pool, metrics, clock) everything here shares.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The engine, if this process runs one.
    pub fn engine(&self) -> Option<&Engine> {
        self.engine.as_ref()
    }

    /// The worker, if this process runs one.
    pub fn worker(&self) -> Option<&Worker> {
        self.worker.as_ref()
    }

    /// Where the HTTP endpoints listen, if they were asked for (with the port the system
    /// picked for port 0).
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http
    }

    /// `/metrics`, `/healthz` and `/readyz` for this process, to merge into an application's
    /// own router (`endpoints().router()`) instead of listening apart.
    pub fn endpoints(&self) -> Endpoints {
        self.endpoints.clone()
    }

    /// The token that stops everything here when cancelled (then await
    /// [`Reprise::shutdown`] or [`Reprise::run_until`] for the drain to end).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Waits until the engine and the worker (those this process runs) take work.
    pub async fn ready(&self) {
        let mut watches = Vec::new();
        watches.extend(self.engine.iter().map(Engine::readiness));
        watches.extend(self.worker.iter().map(Worker::readiness));
        for mut ready in watches {
            // An error means the loop's sender is gone: nothing to wait for any more.
            let _ = ready.wait_for(|ready| *ready).await;
        }
    }

    /// Stops taking work, waits for the drain, and returns the first error a loop ended with.
    pub async fn shutdown(mut self) -> Result<()> {
        self.drain().await
    }

    /// [`Reprise::shutdown`], in place.
    pub(crate) async fn drain(&mut self) -> Result<()> {
        self.shutdown.cancel();
        self.join_all(Ok(())).await
    }

    /// Runs until `signal` resolves (or a loop fails), then drains as [`Reprise::shutdown`].
    pub async fn run_until(mut self, signal: impl Future<Output = ()>) -> Result<()> {
        let first = tokio::select! {
            () = signal => Ok(()),
            () = self.shutdown.cancelled() => Ok(()),
            ended = self.tasks.join_next(), if !self.tasks.is_empty() => match ended {
                None => Ok(()),
                Some(ended) => ended_early(ended),
            },
        };
        self.shutdown.cancel();
        self.join_all(first).await
    }

    async fn join_all(&mut self, mut first: Result<()>) -> Result<()> {
        while let Some(ended) = self.tasks.join_next().await {
            let outcome = match ended {
                Ok((_, outcome)) => outcome,
                Err(join) => Err(Error::Conflict(format!("a Reprise task ended: {join}"))),
            };
            if first.is_ok() {
                first = outcome;
            }
        }
        first
    }
}

/// A loop that ended before it was asked to: its error, or an error saying so.
fn ended_early(
    ended: std::result::Result<(&'static str, Result<()>), tokio::task::JoinError>,
) -> Result<()> {
    match ended {
        Ok((_, Err(e))) => Err(e),
        Ok((what, Ok(()))) => Err(Error::Conflict(format!(
            "the {what} stopped without being asked to"
        ))),
        Err(join) => Err(Error::Conflict(format!("a Reprise task ended: {join}"))),
    }
}

impl Drop for Reprise {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl RepriseBuilder {
    /// Connect to this database (`postgres://...`; `?host=/path` for a unix socket).
    pub fn database_url(mut self, url: impl Into<String>) -> RepriseBuilder {
        self.database = Some(Database::Url(url.into()));
        self
    }

    /// Use this pool (its size and options are the caller's; see [`crate::pool_options`]).
    pub fn pool(mut self, pool: Pool) -> RepriseBuilder {
        self.database = Some(Database::Pool(pool));
        self
    }

    /// The most connections the pool opened from [`RepriseBuilder::database_url`] holds
    /// (default [`DEFAULT_MAX_CONNECTIONS`]). An engine uses one per concurrent batch plus
    /// one to listen; a worker one to claim, one to listen and one per recorder.
    pub fn max_connections(mut self, max: u32) -> RepriseBuilder {
        self.max_connections = max.max(1);
        self
    }

    /// How long a call waits for a free connection before it fails (sqlx's default: 30 s).
    pub fn acquire_timeout(mut self, timeout: Duration) -> RepriseBuilder {
        self.acquire_timeout = Some(timeout);
        self
    }

    /// Whether `start` applies Reprise's migrations (default: yes; they run under an advisory
    /// lock, so processes starting together apply them once).
    pub fn migrate(mut self, migrate: bool) -> RepriseBuilder {
        self.migrate = migrate;
        self
    }

    /// The chain key the engine and the client write and verify histories with (see
    /// [`Store::with_chain_key`]); `REPRISE_CHAIN_KEY` in the example binary and the CLI.
    pub fn chain_key(mut self, key: reprise_history::ChainKey) -> RepriseBuilder {
        self.chain_key = Some(key);
        self
    }

    /// The workflow and activity code (and payload converter) the engine, the worker and the
    /// client share.
    pub fn registry(mut self, registry: Registry) -> RepriseBuilder {
        self.registry = Some(registry);
        self
    }

    /// Run an engine (hosts the registry's workflows).
    pub fn engine(mut self, options: EngineOptions) -> RepriseBuilder {
        self.engine = Some(options);
        self
    }

    /// Run a worker (runs the registry's activities).
    pub fn worker(mut self, options: WorkerOptions) -> RepriseBuilder {
        self.worker = Some(options);
        self
    }

    /// Serve `/metrics`, `/healthz` and `/readyz` on this address (port 0: any free port,
    /// see [`Reprise::http_addr`]).
    pub fn http(mut self, addr: SocketAddr) -> RepriseBuilder {
        self.http = Some(addr);
        self
    }

    /// Also serve these routes on the HTTP listener ([`RepriseBuilder::http`]): the web UI
    /// (`reprise_ui::Ui::router` with a base path such as `/ui`).
    pub fn http_routes(mut self, routes: axum::Router) -> RepriseBuilder {
        self.http_routes = Some(routes);
        self
    }

    /// Stop when this token is cancelled (for a process that already has one); the default
    /// is a token of its own ([`Reprise::shutdown_token`]).
    pub fn shutdown_token(mut self, token: CancellationToken) -> RepriseBuilder {
        self.shutdown = token;
        self
    }

    /// Connects, migrates, and starts the engine, worker and endpoints asked for.
    pub async fn start(self) -> Result<Reprise> {
        let runs_code = self.engine.is_some() || self.worker.is_some();
        if runs_code && self.registry.is_none() {
            return Err(Error::InvalidConfig(
                "an engine or a worker needs a registry: call RepriseBuilder::registry".into(),
            ));
        }
        let pool = match self.database {
            Some(Database::Pool(pool)) => pool,
            Some(Database::Url(url)) => {
                let mut options = pool_options().max_connections(self.max_connections);
                if let Some(timeout) = self.acquire_timeout {
                    options = options.acquire_timeout(timeout);
                }
                options.connect(&url).await.map_err(Error::from_db)?
            }
            None => {
                return Err(Error::InvalidConfig(
                    "no database: call RepriseBuilder::database_url or RepriseBuilder::pool".into(),
                ));
            }
        };
        if self.migrate {
            crate::schema::migrate(&pool).await?;
        }
        // Bound before anything runs, so a taken address fails the start and nothing else.
        let listener = match self.http {
            Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                Error::InvalidConfig(format!("cannot listen for HTTP on {addr}: {e}"))
            })?),
            None => None,
        };
        let mut store = Store::new(pool);
        if let Some(key) = self.chain_key {
            store = store.with_chain_key(key);
        }
        let mut client = Client::new(store.clone());
        if let Some(registry) = &self.registry {
            client = client.with_converter(registry.converter().clone());
        }
        let mut endpoints = Endpoints::new(store.clone());
        if let Some(routes) = self.http_routes {
            endpoints = endpoints.with_routes(routes);
        }
        let mut tasks = JoinSet::new();
        let stop = || self.shutdown.clone().cancelled_owned();
        let engine = match (self.engine, &self.registry) {
            (Some(options), Some(registry)) => {
                let engine = Engine::new(store.clone(), registry.clone(), options);
                endpoints = endpoints.watch(engine.readiness());
                let (running, stop) = (engine.clone(), stop());
                tasks.spawn(async move { ("engine", running.run(stop).await) });
                Some(engine)
            }
            _ => None,
        };
        let worker = match (self.worker, &self.registry) {
            (Some(options), Some(registry)) => {
                let worker = Worker::new(store.clone(), registry.clone(), options);
                endpoints = endpoints.watch(worker.readiness());
                let (running, stop) = (worker.clone(), stop());
                tasks.spawn(async move { ("worker", running.run(stop).await) });
                Some(worker)
            }
            _ => None,
        };
        let http = listener.as_ref().and_then(|l| l.local_addr().ok());
        if let Some(listener) = listener {
            let (serving, stop) = (endpoints.clone(), stop());
            tasks.spawn(async move { ("HTTP listener", serving.serve(listener, stop).await) });
        }
        Ok(Reprise {
            store,
            client,
            engine,
            worker,
            endpoints,
            http,
            shutdown: self.shutdown,
            tasks,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(result: Result<Reprise>) -> String {
        match result {
            Err(Error::InvalidConfig(why)) => why,
            Err(other) => panic!("expected an invalid configuration, got {other}"),
            Ok(_) => panic!("expected an invalid configuration, it started"),
        }
    }

    #[tokio::test]
    async fn a_builder_without_a_database_or_a_registry_says_what_is_missing() {
        let why = invalid(Reprise::builder().start().await);
        assert!(why.starts_with("no database"), "{why}");
        let why = invalid(
            Reprise::builder()
                .database_url("postgres://nowhere.invalid/reprise")
                .engine(EngineOptions::default())
                .start()
                .await,
        );
        assert!(
            why.starts_with("an engine or a worker needs a registry"),
            "{why}"
        );
    }
}

//! [`TestCluster`] (feature `testing`): a database of the test's own on a real PostgreSQL,
//! migrated, with an engine and a worker running the test's registry — an integration test
//! of an application in a few lines, like Temporal's local test server.
//!
//! The server is the one `DATABASE_URL` names, or else the project's private PostgreSQL
//! (`reprise-devdb`: the system's binaries, a cluster under `.reprise/` at the workspace root,
//! started on first use and reused). Each cluster creates a database named
//! `reprise_test_<uuid>` and drops it when stopped or dropped.
//!
//! `reprise_testkit::TestEnv` is the other way to test workflows: in memory, in virtual time,
//! activities stood in for — for a workflow's logic. A `TestCluster` runs the real engine and
//! worker on PostgreSQL in real time — for the application around them.
//!
//! ```no_run
//! # async fn example(registry: reprise_sdk::Registry) -> reprise_engine::Result<()> {
//! let cluster = reprise_engine::testing::TestCluster::start(registry).await?;
//! let client = cluster.client();
//! // client.start(...), client.signal(...), handle.result_within(...), client.describe(...)
//! cluster.stop().await
//! # }
//! ```

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use reprise_sdk::Registry;
use sqlx::ConnectOptions;
use sqlx::postgres::PgConnectOptions;

use crate::app::Reprise;
use crate::client::Client;
use crate::error::{Error, Result};
use crate::host::EngineOptions;
use crate::store::Store;
use crate::worker::WorkerOptions;

/// Engine options for tests: short idle polls, so nothing waits on a missed notification.
pub fn engine_options() -> EngineOptions {
    EngineOptions {
        idle_poll: Duration::from_millis(50),
        parked_sweep: Duration::from_millis(200),
        ..EngineOptions::default()
    }
}

/// Worker options for tests: short idle polls and heartbeats.
pub fn worker_options() -> WorkerOptions {
    WorkerOptions {
        idle_poll: Duration::from_millis(50),
        heartbeat_interval: Duration::from_millis(20),
        ..WorkerOptions::default()
    }
}

/// A fresh database with an engine and a worker running a registry's code. Stop it with
/// [`TestCluster::stop`] to see a loop's error; dropped, it stops and drops its database too.
pub struct TestCluster {
    reprise: Reprise,
    /// Some until dropped.
    database: Option<TestDatabase>,
}

/// The test's own database, and a connection to the server to drop it with.
struct TestDatabase {
    admin: PgConnectOptions,
    name: String,
}

impl TestCluster {
    /// A cluster running `registry` with [`engine_options`] and [`worker_options`].
    pub async fn start(registry: Registry) -> Result<TestCluster> {
        TestCluster::start_with(registry, engine_options(), worker_options()).await
    }

    /// A cluster with the engine and worker options given.
    pub async fn start_with(
        registry: Registry,
        engine: EngineOptions,
        worker: WorkerOptions,
    ) -> Result<TestCluster> {
        let admin = PgConnectOptions::from_str(&server_url().await?).map_err(Error::from_db)?;
        let name = format!("reprise_test_{}", uuid::Uuid::new_v4().simple());
        let mut server = admin.connect().await.map_err(Error::from_db)?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut server)
            .await
            .map_err(Error::from_db)?;
        let database = TestDatabase { admin, name };
        let pool = crate::pool_options()
            .max_connections(8)
            .connect_with(database.admin.clone().database(&database.name))
            .await
            .map_err(Error::from_db)?;
        let reprise = Reprise::builder()
            .pool(pool)
            .registry(registry)
            .engine(engine)
            .worker(worker)
            .start()
            .await?;
        reprise.ready().await;
        Ok(TestCluster {
            reprise,
            database: Some(database),
        })
    }

    /// The client (with the registry's payload converter).
    pub fn client(&self) -> &Client {
        self.reprise().client()
    }

    /// The store, for what the client does not offer (its pool is `store().pool()`).
    pub fn store(&self) -> &Store {
        self.reprise().store()
    }

    /// The running engine, worker and client.
    pub fn reprise(&self) -> &Reprise {
        &self.reprise
    }

    /// Drains the engine and the worker, then drops the database. Returns the first error a
    /// loop ended with.
    pub async fn stop(mut self) -> Result<()> {
        let drained = self.reprise.drain().await;
        self.reprise.store().pool().close().await;
        if let Some(database) = self.database.take() {
            database.drop_now().await?;
        }
        drained
    }
}

impl TestDatabase {
    async fn drop_now(self) -> Result<()> {
        let mut server = self.admin.connect().await.map_err(Error::from_db)?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut server)
        .await
        .map_err(Error::from_db)?;
        Ok(())
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        // The loops stop on the token (the Reprise cancels it as it drops, after this); the
        // database is dropped WITH (FORCE) from a thread of its own (a runtime cannot be
        // blocked on from inside another), within a few seconds.
        self.reprise.shutdown_token().cancel();
        let Some(database) = self.database.take() else {
            return;
        };
        let dropping = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                // The timer is made inside the runtime: `block_on` enters it for its future.
                let _ = runtime.block_on(async {
                    tokio::time::timeout(Duration::from_secs(5), database.drop_now()).await
                });
            }
        });
        let _ = dropping.join();
    }
}

/// `DATABASE_URL`, or the private PostgreSQL of the workspace the test runs in.
async fn server_url() -> Result<String> {
    if let Some(url) = reprise_devdb::database_url_from_env() {
        return Ok(url);
    }
    let project = project_root();
    tokio::task::spawn_blocking(move || {
        let dev = reprise_devdb::DevPostgres::for_project(&project)?;
        dev.ensure_running().map(|started| started.url)
    })
    .await
    .map_err(|e| Error::InvalidConfig(format!("starting the private PostgreSQL: {e}")))?
    .map_err(|e| {
        Error::InvalidConfig(format!(
            "no DATABASE_URL, and the private PostgreSQL did not start: {e}"
        ))
    })
}

/// The workspace root: the outermost folder above the test's crate (`CARGO_MANIFEST_DIR`, set
/// by cargo when it runs tests) that holds a `Cargo.lock`; else that crate's folder, else the
/// current one.
fn project_root() -> PathBuf {
    let start = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_else(|| PathBuf::from("."));
    start
        .ancestors()
        .filter(|dir| dir.join("Cargo.lock").is_file())
        .last()
        .map_or_else(|| start.clone(), Path::to_path_buf)
}

//! The benchmark's environment: a fresh database, and engine and worker processes (or tasks).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::Duration;

use reprise_engine::{Client, Engine, EngineOptions, Store, Worker, WorkerOptions};
use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::sync::oneshot;

use crate::measure::peak_rss_mib;

/// Where the hosts run.
enum Hosts {
    None,
    Processes { engine: Child, worker: Child },
    InProcess { stops: Vec<oneshot::Sender<()>> },
}

/// A fresh `reprise_bench` database with hosts running the benchmark workflows.
pub(crate) struct Bench {
    pub(crate) url: String,
    /// The same database as a plain libpq URL (for pgbench: no sqlx-only parameters).
    pub(crate) libpq_url: String,
    pub(crate) store: Store,
    pub(crate) client: Client,
    pub(crate) pg_bin: PathBuf,
    in_process: bool,
    hosts: Hosts,
}

fn server_url() -> anyhow::Result<String> {
    if let Some(url) = reprise_devdb::database_url_from_env() {
        return Ok(url);
    }
    let project = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    Ok(reprise_devdb::DevPostgres::for_project(project)?
        .ensure_running()?
        .url)
}

impl Bench {
    pub(crate) async fn new(in_process: bool) -> anyhow::Result<Bench> {
        let server = PgConnectOptions::from_str(&server_url()?)?;
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(server.clone())
            .await?;
        sqlx::query("DROP DATABASE IF EXISTS reprise_bench WITH (FORCE)")
            .execute(&admin)
            .await?;
        sqlx::query("CREATE DATABASE reprise_bench")
            .execute(&admin)
            .await?;
        admin.close().await;
        let options = server.database("reprise_bench");
        let url = options.to_url_lossy().to_string();
        let mut libpq = options.to_url_lossy();
        libpq.set_query(None);
        let libpq_url = libpq.to_string();
        let pool = reprise_engine::pool_options()
            .max_connections(32)
            .connect_with(options)
            .await?;
        reprise_engine::schema::migrate(&pool).await?;
        let store = Store::new(pool);
        Ok(Bench {
            url,
            libpq_url,
            client: Client::new(store.clone()),
            store,
            pg_bin: reprise_devdb::PgBinaries::find()?.dir().to_path_buf(),
            in_process,
            hosts: Hosts::None,
        })
    }

    pub(crate) fn settings(&self) -> String {
        let e = EngineOptions::default();
        let w = WorkerOptions::default();
        format!(
            "{}; engine: up to {} runs a batch, {} batches at once, cache {} runs; worker: {} activities at once",
            if self.in_process {
                "client, engine and worker in one process"
            } else {
                "one engine process and one worker process"
            },
            e.batch_size,
            e.concurrent_batches,
            e.cache_capacity,
            w.max_concurrent
        )
    }

    /// Starts fresh hosts (so each workload's peak memory is its own) and waits until they run.
    pub(crate) async fn start_hosts(&mut self) -> anyhow::Result<()> {
        self.hosts = if self.in_process {
            let registry = reprise_examples::workflows::registry_without_patterns()?;
            let (stop_engine, engine_stopped) = oneshot::channel::<()>();
            let engine = Engine::new(self.store.clone(), registry, EngineOptions::default());
            tokio::spawn(async move {
                engine
                    .run(async { engine_stopped.await.unwrap_or(()) })
                    .await
            });
            Hosts::InProcess {
                stops: vec![stop_engine, self.worker_in_process()?],
            }
        } else {
            Hosts::Processes {
                engine: self.spawn_example(&["engine"])?,
                worker: self.spawn_example(&["worker", "--queue", "default"])?,
            }
        };
        // Warm up: both hosts answer.
        let handle = self
            .client
            .start(
                reprise_examples::bench::HELLO,
                &format!("warm-up-{}", uuid()),
                &0,
            )
            .await?;
        tokio::time::timeout(Duration::from_secs(60), handle.result()).await??;
        Ok(())
    }

    /// The processes whose CPU a workload costs besides PostgreSQL's: this one (the client, and
    /// in-process the hosts) and the engine and worker processes.
    pub(crate) fn host_pids(&self) -> Vec<u32> {
        let mut pids = vec![std::process::id()];
        if let Hosts::Processes { engine, worker } = &self.hosts {
            pids.extend([engine.id(), worker.id()]);
        }
        pids
    }

    /// Stops the hosts; returns their peak memory in MiB (engine, worker; the same process when
    /// in-process).
    pub(crate) async fn stop_hosts(&mut self) -> anyhow::Result<(f64, f64)> {
        let peaks = match std::mem::replace(&mut self.hosts, Hosts::None) {
            Hosts::None => (0.0, 0.0),
            Hosts::InProcess { stops } => {
                drop(stops);
                let own = peak_rss_mib(std::process::id());
                (own, own)
            }
            Hosts::Processes {
                mut engine,
                mut worker,
            } => {
                let peaks = (peak_rss_mib(engine.id()), peak_rss_mib(worker.id()));
                terminate(&mut engine);
                terminate(&mut worker);
                peaks
            }
        };
        Ok(peaks)
    }
}

/// A name suffix unique to this moment.
pub(crate) fn uuid() -> String {
    let nanos = std::time::SystemTime::UNIX_EPOCH
        .elapsed()
        .map_or(0, |d| d.as_nanos());
    format!("{nanos:x}")
}

/// Workers started beside the hosts' one for a workload, stopped (drained) when dropped.
pub(crate) enum ExtraWorkers {
    Processes(Vec<Child>),
    /// Dropping the senders stops the workers.
    InProcess(#[allow(dead_code)] Vec<oneshot::Sender<()>>),
}

impl ExtraWorkers {
    /// Their process ids (none in-process: their CPU is this process's).
    pub(crate) fn pids(&self) -> Vec<u32> {
        match self {
            ExtraWorkers::Processes(children) => children.iter().map(Child::id).collect(),
            ExtraWorkers::InProcess(_) => Vec::new(),
        }
    }
}

impl Drop for ExtraWorkers {
    fn drop(&mut self) {
        if let ExtraWorkers::Processes(children) = self {
            children.iter_mut().for_each(terminate);
        }
    }
}

impl Bench {
    /// Starts `n` more workers on the default queue, in this process or as processes as the
    /// hosts are.
    pub(crate) fn extra_workers(&self, n: usize) -> anyhow::Result<ExtraWorkers> {
        if self.in_process {
            let stops = (0..n).map(|_| self.worker_in_process());
            return Ok(ExtraWorkers::InProcess(
                stops.collect::<anyhow::Result<_>>()?,
            ));
        }
        let children = (0..n).map(|_| self.spawn_example(&["worker", "--queue", "default"]));
        Ok(ExtraWorkers::Processes(
            children.collect::<anyhow::Result<_>>()?,
        ))
    }

    /// Runs a worker of the benchmark registry in this process until the sender is dropped.
    fn worker_in_process(&self) -> anyhow::Result<oneshot::Sender<()>> {
        let registry = reprise_examples::workflows::registry_without_patterns()?;
        let worker = Worker::new(self.store.clone(), registry, WorkerOptions::default());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move { worker.run(async { stopped.await.unwrap_or(()) }).await });
        Ok(stop)
    }

    /// Starts `reprise-example` (built beside this binary) on the bench's database, quietly.
    fn spawn_example(&self, args: &[&str]) -> anyhow::Result<Child> {
        let exe = std::env::current_exe()?.with_file_name("reprise-example");
        Ok(Command::new(exe)
            .arg("--without-patterns")
            .args(args)
            .env("DATABASE_URL", &self.url)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?)
    }
}

/// Stops a host process as an operator would (SIGTERM: it drains) and waits for it.
fn terminate(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

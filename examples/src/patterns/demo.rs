//! What the pattern examples run on: a database, an engine and a worker — in this process, or
//! as separate `reprise-example` processes (`--processes`) — and a client. Not part of any
//! pattern: an application has its own `main` that starts Reprise once.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use reprise_engine::{Client, Description, EngineOptions, Reprise, WorkerOptions, WorkflowHandle};
use tokio::process::{Child, Command};

use super::Build;

/// Where and how a demo runs.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// The database's URL.
    pub url: String,
    /// Engine and worker as separate processes of `exe` rather than in this one.
    pub processes: bool,
    /// The `reprise-example` binary, for the processes a demo starts.
    pub exe: PathBuf,
    /// The key histories are chained with (the processes started read `REPRISE_CHAIN_KEY`).
    pub chain_key: Option<reprise_history::ChainKey>,
}

/// A running demo: the client, and the engine and worker it talks to.
pub struct Demo {
    options: DemoOptions,
    build: Build,
    client: Client,
    /// The engine and worker in this process, or only the client when they are processes;
    /// None once stopped.
    local: Option<Reprise>,
    processes: Vec<Child>,
}

impl Demo {
    /// Migrates the database and starts an engine and a worker of `build` on the default
    /// queues.
    pub async fn start(options: DemoOptions, build: Build) -> anyhow::Result<Demo> {
        let (local, processes) = Demo::launch(&options, build).await?;
        Ok(Demo {
            client: local.client().clone(),
            options,
            build,
            local: Some(local),
            processes,
        })
    }

    async fn launch(options: &DemoOptions, build: Build) -> anyhow::Result<(Reprise, Vec<Child>)> {
        let mut builder = Reprise::builder()
            .database_url(options.url.clone())
            .registry(super::registry(build)?);
        if let Some(key) = &options.chain_key {
            builder = builder.chain_key(*key);
        }
        let mut processes = Vec::new();
        if options.processes {
            for role in ["engine", "worker"] {
                processes.push(spawn(options, build, &[role])?);
            }
        } else {
            builder = builder
                .engine(EngineOptions {
                    build: build.id().to_string(),
                    ..EngineOptions::default()
                })
                .worker(WorkerOptions::default());
        }
        let reprise = builder.start().await?;
        reprise.ready().await;
        Ok((reprise, processes))
    }

    /// The client: start, signal, cancel, describe.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The build the engine and worker run.
    pub fn build(&self) -> Build {
        self.build
    }

    /// Deploys another build: the engine and worker stop (finishing what they hold) and ones
    /// with the other build's code start.
    pub async fn deploy(&mut self, build: Build) -> anyhow::Result<()> {
        self.stop_engine_and_worker().await?;
        let (local, processes) = Demo::launch(&self.options, build).await?;
        self.client = local.client().clone();
        self.local = Some(local);
        self.processes = processes;
        self.build = build;
        Ok(())
    }

    /// Starts a worker process for `queues`, whatever the demo's mode: one a demo can kill.
    pub fn spawn_worker(&self, queues: &[&str]) -> anyhow::Result<WorkerProcess> {
        let mut args = vec!["worker"];
        for queue in queues {
            args.extend(["--queue", queue]);
        }
        Ok(WorkerProcess(spawn(&self.options, self.build, &args)?))
    }

    /// A read-only web UI on a free port of this machine; returns its address.
    pub async fn serve_ui(&self) -> anyhow::Result<String> {
        let options = reprise_ui::UiOptions {
            read_only: true,
            ..reprise_ui::UiOptions::default()
        };
        let ui = reprise_ui::Ui::new(self.client.clone(), None, options);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = format!("http://{}", listener.local_addr()?);
        tokio::spawn(ui.serve(listener, std::future::pending()));
        Ok(address)
    }

    /// Stops the engine and worker (SIGTERM for processes: they drain).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.stop_engine_and_worker().await
    }

    async fn stop_engine_and_worker(&mut self) -> anyhow::Result<()> {
        for child in self.processes.drain(..) {
            terminate(child).await?;
        }
        if let Some(local) = self.local.take() {
            local.shutdown().await?;
        }
        Ok(())
    }
}

/// A worker process a demo started; SIGKILLed when dropped.
pub struct WorkerProcess(Child);

impl WorkerProcess {
    /// SIGKILL: the process dies mid-attempt, as in a crash or an OOM kill.
    pub async fn kill(mut self) -> anyhow::Result<()> {
        self.0.kill().await?;
        Ok(())
    }

    /// SIGTERM: the worker finishes or hands back what it runs, then exits.
    pub async fn stop(self) -> anyhow::Result<()> {
        terminate(self.0).await
    }
}

/// `reprise-example --http off --build <build> <args>` on the demo's database.
fn spawn(options: &DemoOptions, build: Build, args: &[&str]) -> anyhow::Result<Child> {
    Command::new(&options.exe)
        .args(["--http", "off", "--build", build.name()])
        .args(args)
        .env("DATABASE_URL", &options.url)
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {} {}", options.exe.display(), args.join(" ")))
}

async fn terminate(mut child: Child) -> anyhow::Result<()> {
    if let Some(pid) = child.id() {
        let sent = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await?;
        if sent.success() {
            // A worker drains for its grace period (10 s by default) at most.
            if tokio::time::timeout(Duration::from_secs(30), child.wait())
                .await
                .is_ok()
            {
                return Ok(());
            }
        }
    }
    child.kill().await?;
    Ok(())
}

/// A suffix that keeps one demo's workflow ids apart from an earlier one's on the same
/// database.
pub fn unique_suffix() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}", now.as_millis() % 100_000_000)
}

/// One activity of a run, as its history tells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// The activity type.
    pub activity: String,
    /// How it ended; None while it runs.
    pub end: Option<StepEnd>,
}

/// How an activity ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepEnd {
    /// It returned its result.
    Completed,
    /// It failed for good.
    Failed,
    /// It ran out of time.
    TimedOut,
    /// The workflow cancelled it.
    Cancelled,
}

/// The activities of a run in the order they were scheduled, with how each ended.
pub async fn steps_of(
    client: &Client,
    run_id: reprise_history::RunId,
) -> anyhow::Result<Vec<Step>> {
    use reprise_history::EventKind;
    let history = client.export(run_id).await?;
    let mut steps: Vec<(reprise_history::Seq, Step)> = Vec::new();
    for event in history.events() {
        let ended = match &event.kind {
            EventKind::ActivityScheduled(scheduled) => {
                steps.push((
                    event.seq,
                    Step {
                        activity: scheduled.activity_type.to_string(),
                        end: None,
                    },
                ));
                continue;
            }
            EventKind::ActivityCompleted(e) => (e.scheduled, StepEnd::Completed),
            EventKind::ActivityFailed(e) => (e.scheduled, StepEnd::Failed),
            EventKind::ActivityTimedOut(e) => (e.scheduled, StepEnd::TimedOut),
            EventKind::ActivityCancelled(e) => (e.scheduled, StepEnd::Cancelled),
            // The workflow stopped waiting for it: a late outcome is recorded but not seen.
            EventKind::ActivityCancelRequested(e) => (e.scheduled, StepEnd::Cancelled),
            _ => continue,
        };
        if let Some((_, step)) = steps.iter_mut().find(|(seq, _)| *seq == ended.0)
            && step.end != Some(StepEnd::Cancelled)
        {
            step.end = Some(ended.1);
        }
    }
    Ok(steps.into_iter().map(|(_, step)| step).collect())
}

/// Prints steps as `book-flight ✓ → book-car ✗ → ...`.
pub fn print_steps(steps: &[Step]) {
    let shown: Vec<String> = steps
        .iter()
        .map(|step| {
            let mark = match step.end {
                Some(StepEnd::Completed) => "✓",
                Some(StepEnd::Failed) => "✗ failed",
                Some(StepEnd::TimedOut) => "✗ timed out",
                Some(StepEnd::Cancelled) => "✗ cancelled",
                None => "…",
            };
            format!("{} {mark}", step.activity)
        })
        .collect();
    println!("  activities: {}", shown.join(" → "));
}

/// Describes the workflow every 50 ms until `check` finds what it waits for (`what`, for
/// the error after a minute without it).
pub async fn wait_for<T>(
    client: &Client,
    workflow_id: &str,
    what: &str,
    mut check: impl FnMut(&Description) -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(found) = check(&client.describe(workflow_id).await?)? {
            return Ok(found);
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("{workflow_id}: no {what} within a minute");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the workflow's open run has a running attempt of `activity`.
pub async fn wait_for_running(
    client: &Client,
    workflow_id: &str,
    activity: &str,
) -> anyhow::Result<()> {
    wait_for(
        client,
        workflow_id,
        &format!("running {activity}"),
        |described| {
            let running = described
                .pending_activities
                .iter()
                .any(|a| a.running && a.activity_type.as_str() == activity);
            Ok(running.then_some(()))
        },
    )
    .await
}

/// The run's result if it closes within `wait`; None while it is still open.
pub async fn result_within<O: serde::de::DeserializeOwned>(
    handle: &WorkflowHandle<O>,
    wait: Duration,
) -> anyhow::Result<Option<O>> {
    match handle.result_within(wait).await {
        Ok(result) => Ok(Some(result)),
        Err(reprise_engine::Error::Timeout { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

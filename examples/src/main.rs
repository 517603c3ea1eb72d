//! `reprise-example`: the development binary. It runs the example workflows as an engine
//! process, a worker process, or both, and the quickstart. With no `DATABASE_URL` it uses the
//! project's private PostgreSQL (started on demand, reused while it runs).

use std::path::Path;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use reprise_devdb::DevPostgres;
use reprise_engine::telemetry::otlp::OtlpTracing;
use reprise_engine::{EngineOptions, Reprise, WorkerOptions};
use reprise_examples::patterns::demo::{Demo, DemoOptions};
use reprise_examples::patterns::{self, Build};
use reprise_examples::workflows;

/// Run Reprise's examples against PostgreSQL.
#[derive(Parser)]
#[command(name = "reprise-example", about)]
struct Cli {
    /// Where engine and worker processes serve `/metrics`, `/healthz` and `/readyz`
    /// (`off` for nowhere; the default picks a free port and prints it).
    #[arg(long, global = true, default_value = "127.0.0.1:0")]
    http: String,
    /// How log lines are written: `text` for people, `json` for log collectors.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Which build of the examples' code engine and worker processes run (`v1`: before the
    /// invoice parser's fix, for the dead-letter example); also their engine's build id.
    #[arg(long, global = true, value_enum)]
    build: Option<Build>,
    /// Engine and worker processes run the quickstart's and benchmarks' workflows only, not
    /// the patterns' (what `reprise-bench` starts, so that its figures stay comparable).
    #[arg(long, global = true, hide = true, conflicts_with = "build")]
    without_patterns: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, fields as fields.
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Start PostgreSQL (private, or DATABASE_URL), run engine and worker in this process, run the
    /// greeting workflow, and print its result and history (the default).
    Quickstart {
        /// Who to greet.
        #[arg(default_value = "world")]
        name: String,
    },
    /// Run as an engine process (hosts orchestrators) until SIGINT or SIGTERM.
    Engine {
        /// Workflow task queues to run the workflows of.
        #[arg(long = "workflow-queue", default_value = "default")]
        workflow_queues: Vec<String>,
        /// The database role to run under (`none`: the login role's own rights).
        #[arg(long, env = "REPRISE_ENGINE_ROLE", default_value = "reprise_engine")]
        role: String,
    },
    /// Run as a worker process (runs activities) until SIGINT or SIGTERM.
    Worker {
        /// Task queues to take activities from.
        #[arg(long = "queue", default_value = "default")]
        queues: Vec<String>,
        /// On SIGTERM, how long running activities may take to finish before they are handed
        /// back to other workers.
        #[arg(long, default_value_t = 10_000)]
        shutdown_grace_ms: u64,
        /// The database role to run under (`none`: the login role's own rights).
        #[arg(long, env = "REPRISE_WORKER_ROLE", default_value = "reprise_worker")]
        role: String,
    },
    /// Run engine and worker in one process, for development, until SIGINT or SIGTERM.
    Dev {
        /// On SIGTERM, how long running activities may take to finish before they are handed
        /// back to other workers.
        #[arg(long, default_value_t = 10_000)]
        shutdown_grace_ms: u64,
    },
    /// Run `ship-order` workflows of one version on PostgreSQL and write their histories
    /// (`.rhist` and `.json`) to a folder: the fixtures of the versioning example.
    RecordVersioning {
        /// `v1` or `v2`.
        #[arg(long)]
        version: String,
        /// How many runs.
        #[arg(long, default_value_t = 3)]
        runs: u32,
        /// Where to write the histories.
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Replay a sample of open runs against this binary's code; fail if any would break.
    CheckDeploy {
        /// How many open runs to sample.
        #[arg(long, default_value_t = 100)]
        sample: i64,
        /// Fail also if the code gives a recorded decision another input (ND08).
        #[arg(long)]
        strict: bool,
    },
    /// Trip booking saga: a failed booking and a cancelled trip undo what was booked.
    Saga(DemoArgs),
    /// Approval: expenses wait for approve/reject, or escalate when nobody answers.
    Approval(DemoArgs),
    /// A failing flow: find the failed run, read why, deploy the fix, reset it.
    DeadLetters(DemoArgs),
    /// Batch processing: 1,000 items, a bounded window in flight, progress as custom status.
    Batch {
        #[command(flatten)]
        demo: DemoArgs,
        /// How many items.
        #[arg(long, default_value_t = 1_000)]
        items: u32,
        /// At most this many in flight.
        #[arg(long, default_value_t = 50)]
        window: u32,
    },
    /// Media pipeline: validate, safety check, transcode and tag in parallel, package; a
    /// media worker is SIGKILLed mid-transcode and the next attempt resumes from its
    /// checkpoint. Shows the run live in the web UI.
    Media {
        #[command(flatten)]
        demo: DemoArgs,
        /// How many segments the video has.
        #[arg(long, default_value_t = 20)]
        segments: u32,
        /// How long encoding one takes, in milliseconds (at most 600).
        #[arg(long, default_value_t = 250,
              value_parser = clap::value_parser!(u64).range(1..=patterns::media::MAX_MILLIS_PER_SEGMENT))]
        millis_per_segment: u64,
    },
    /// A scheduled report: a nightly cron schedule, fired now and backfilled, with catch-up
    /// explained.
    NightlyReport(DemoArgs),
    /// A data pipeline whose expensive step is cached: a second run on the same data takes
    /// the first run's result.
    Caching(DemoArgs),
    /// Manage the private PostgreSQL.
    Db {
        #[command(subcommand)]
        action: DbAction,
    },
}

/// Which code engine and worker processes run.
#[derive(Clone, Copy)]
enum Code {
    /// Every example, as this build has them (`--build`; also the engine's build id).
    Build(Option<Build>),
    /// The quickstart's and benchmarks' workflows only (`--without-patterns`).
    WithoutPatterns,
}

/// How a pattern example runs.
#[derive(clap::Args)]
struct DemoArgs {
    /// Engine and worker as separate processes (this binary's `engine` and `worker`) instead
    /// of inside this one.
    #[arg(long)]
    processes: bool,
}

#[derive(Subcommand)]
enum DbAction {
    /// Start it (reusing it if it runs) and print its URL.
    Start,
    /// Stop it cleanly.
    Stop,
    /// Say whether it runs.
    Status,
}

/// The workspace root, where the private cluster's folder `.reprise/` lives.
fn project_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let traces = init_telemetry(cli.log_format)?;
    let outcome = run(cli).await;
    if let Some(traces) = traces {
        traces.shutdown();
    }
    outcome
}

/// Logs to stderr (`RUST_LOG`, default `warn`), and traces to an OTLP collector when the
/// `OTEL_*` variables name one (`REPRISE_TRACE_FILTER`, default `info`, says which spans).
fn init_telemetry(format: LogFormat) -> anyhow::Result<Option<OtlpTracing>> {
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::{EnvFilter, Layer, fmt};
    let log_filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    let logs = fmt::layer().with_writer(std::io::stderr);
    let logs = match format {
        LogFormat::Text => logs.boxed(),
        LogFormat::Json => logs.json().flatten_event(true).boxed(),
    }
    .with_filter(log_filter);
    let traces = OtlpTracing::from_env("reprise-example")?;
    let trace_layer = traces.as_ref().map(|t| {
        let filter = EnvFilter::try_from_env("REPRISE_TRACE_FILTER")
            .unwrap_or_else(|_| EnvFilter::new("info"));
        t.layer().with_filter(filter)
    });
    tracing_subscriber::registry()
        .with(logs)
        .with(trace_layer)
        .init();
    Ok(traces)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let http = cli.http.clone();
    let build = cli.build;
    let code = match cli.without_patterns {
        true => Code::WithoutPatterns,
        false => Code::Build(cli.build),
    };
    let serve = |engine: Option<Vec<String>>, worker, role: String| {
        serve(engine, worker, role, http.clone(), code)
    };
    match cli.command.unwrap_or(Command::Quickstart {
        name: "world".into(),
    }) {
        Command::Quickstart { name } => quickstart(&name).await,
        Command::Engine {
            workflow_queues,
            role,
        } => serve(Some(workflow_queues), None, role).await,
        Command::Worker {
            queues,
            shutdown_grace_ms,
            role,
        } => {
            let grace = std::time::Duration::from_millis(shutdown_grace_ms);
            serve(None, Some((queues, grace)), role).await
        }
        Command::Dev { shutdown_grace_ms } => {
            let grace = std::time::Duration::from_millis(shutdown_grace_ms);
            let default = vec!["default".to_string()];
            // Engine, worker and client in one process: the login role's own rights.
            serve(Some(default.clone()), Some((default, grace)), "none".into()).await
        }
        Command::CheckDeploy { sample, strict } => check_deploy(sample, strict).await,
        Command::RecordVersioning { version, runs, out } => {
            record_versioning(&version, runs, &out).await
        }
        Command::Saga(args) => {
            pattern(args, build, async |demo| {
                patterns::saga::demo(demo).await.map(drop)
            })
            .await
        }
        Command::Approval(args) => {
            pattern(args, build, async |demo| {
                patterns::approval::demo(demo).await.map(drop)
            })
            .await
        }
        Command::DeadLetters(args) => {
            pattern(args, build, async |demo| {
                patterns::dead_letters::demo(demo).await.map(drop)
            })
            .await
        }
        Command::Batch {
            demo: args,
            items,
            window,
        } => {
            pattern(args, build, async |demo| {
                patterns::batch::demo(demo, items, window).await.map(drop)
            })
            .await
        }
        Command::Media {
            demo: args,
            segments,
            millis_per_segment,
        } => {
            pattern(args, build, async |demo| {
                let job = patterns::media::MediaJob {
                    file: "holiday.mov".to_string(),
                    segments,
                    millis_per_segment,
                };
                patterns::media::demo(demo, job).await.map(drop)
            })
            .await
        }
        Command::NightlyReport(args) => {
            pattern(args, build, async |demo| {
                patterns::nightly_report::demo(demo).await.map(drop)
            })
            .await
        }
        Command::Caching(args) => {
            pattern(args, build, async |demo| {
                patterns::caching::demo(demo).await.map(drop)
            })
            .await
        }
        Command::Db { action } => db(action),
    }
}

/// Runs a pattern example: the database, an engine and a worker (here or as processes), the
/// demo, then a clean stop.
async fn pattern(
    args: DemoArgs,
    build: Option<Build>,
    run: impl AsyncFnOnce(&mut Demo) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let (url, server) = database()?;
    println!("database: {server}");
    let options = DemoOptions {
        url,
        processes: args.processes,
        exe: std::env::current_exe()?,
        chain_key: chain_key_from_env()?,
    };
    if args.processes {
        println!("engine and worker: separate processes");
    }
    let mut demo = Demo::start(options, build.unwrap_or_default()).await?;
    let outcome = run(&mut demo).await;
    let stopped = demo.stop().await;
    // The demo's own error first: a failed stop after it would hide it.
    outcome?;
    stopped
}

/// The database to use (its URL) and a description of it.
fn database() -> anyhow::Result<(String, String)> {
    match reprise_devdb::database_url_from_env() {
        Some(url) => Ok((url, "the server named by DATABASE_URL".to_string())),
        None => {
            let dev = DevPostgres::for_project(project_dir())?;
            let started = dev.ensure_running()?;
            let how = if started.started_now {
                "started"
            } else {
                "already running"
            };
            let server = format!(
                "the private PostgreSQL ({how}), data in {}",
                dev.root().display()
            );
            Ok((started.url, server))
        }
    }
}

/// A Reprise on the database, with the example workflows' registry (migrated, not running
/// anything yet: add an engine or a worker), and the chain key `REPRISE_CHAIN_KEY` holds.
fn reprise(url: String) -> anyhow::Result<reprise_engine::RepriseBuilder> {
    reprise_with(url, workflows::registry()?)
}

/// [`reprise`] with another registry.
fn reprise_with(
    url: String,
    registry: reprise_sdk::Registry,
) -> anyhow::Result<reprise_engine::RepriseBuilder> {
    let builder = Reprise::builder().database_url(url).registry(registry);
    Ok(match chain_key_from_env()? {
        Some(key) => builder.chain_key(key),
        None => builder,
    })
}

/// The chain key `REPRISE_CHAIN_KEY` holds, if it is set.
fn chain_key_from_env() -> anyhow::Result<Option<reprise_history::ChainKey>> {
    match std::env::var("REPRISE_CHAIN_KEY") {
        Ok(hex) => Ok(Some(
            reprise_history::ChainKey::from_hex(&hex).context("REPRISE_CHAIN_KEY")?,
        )),
        Err(_) => Ok(None),
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}

async fn serve(
    engine: Option<Vec<String>>,
    worker: Option<(Vec<String>, std::time::Duration)>,
    role: String,
    http: String,
    code: Code,
) -> anyhow::Result<()> {
    let (url, server) = database()?;
    eprintln!("using {server}");
    let (registry, build) = match code {
        Code::Build(build) => (patterns::registry(build.unwrap_or_default())?, build),
        Code::WithoutPatterns => (workflows::registry_without_patterns()?, None),
    };
    let mut builder = reprise_with(url.clone(), registry)?;
    if role != "none" {
        // Migrated by the login role (the schema's owner here), then run under `role`, with
        // only what this kind of process uses (docs/operations.md, "Database roles").
        let owner = reprise_engine::connect(&url).await?;
        reprise_engine::schema::migrate(&owner).await?;
        owner.close().await;
        match reprise_engine::connect_as(&url, &role).await {
            Ok(pool) => {
                eprintln!("running as database role {role}");
                builder = builder.pool(pool).migrate(false);
            }
            // A login that is not a member of the role runs with its own rights, as before
            // roles existed, and says so.
            Err(e) if e.is_permission_denied() => {
                eprintln!(
                    "cannot take database role {role} ({e}); running with the login's own rights"
                );
            }
            Err(e) => {
                return Err(e).with_context(|| format!("connecting as database role {role:?}"));
            }
        }
    }
    if let Some(queues) = engine {
        let mut options = EngineOptions {
            queues,
            ..EngineOptions::default()
        };
        if let Some(build) = build {
            options.build = build.id().to_string();
        }
        builder = builder.engine(options);
    }
    if let Some((queues, shutdown_grace)) = worker {
        builder = builder.worker(WorkerOptions {
            queues,
            shutdown_grace,
            ..WorkerOptions::default()
        });
    }
    if http != "off" {
        let addr = http.parse().with_context(|| {
            format!("--http {http}: expected an address such as 127.0.0.1:9000")
        })?;
        builder = builder.http(addr);
        if let Some(ui) = embedded_ui(&url, addr).await? {
            builder = builder.http_routes(ui.router());
        }
    }
    let reprise = builder.start().await?;
    if let Some(engine) = reprise.engine() {
        let options = engine.options();
        eprintln!(
            "engine {} ready on workflow queues {}",
            options.owner,
            options.queues.join(", ")
        );
    }
    if let Some(worker) = reprise.worker() {
        let options = worker.options();
        eprintln!(
            "worker {} ready on {}",
            options.owner,
            options.queues.join(", ")
        );
    }
    if let Some(addr) = reprise.http_addr() {
        eprintln!(
            "http on http://{addr} (/metrics, /healthz, /readyz; the web UI, read-only, at /ui)"
        );
    }
    reprise.run_until(shutdown_signal()).await?;
    eprintln!("stopped: drained");
    Ok(())
}

/// A read-only web UI under `/ui` on the process's HTTP listener, reading as
/// `reprise_observer` (the login's own rights when it cannot take it). None on an address
/// beyond this machine without `REPRISE_UI_TOKEN`: it would show every payload to anyone.
async fn embedded_ui(
    url: &str,
    addr: std::net::SocketAddr,
) -> anyhow::Result<Option<reprise_ui::Ui>> {
    let options = reprise_ui::UiOptions {
        access_token: std::env::var("REPRISE_UI_TOKEN").ok(),
        read_only: true,
        base_path: "/ui".to_string(),
    };
    if let Err(e) = reprise_ui::check_listen_address(addr, &options) {
        eprintln!("no web UI on {addr}: {e}");
        return Ok(None);
    }
    let pool = match reprise_engine::connect_as(url, "reprise_observer").await {
        Ok(pool) => pool,
        Err(e) if e.is_permission_denied() => reprise_engine::connect(url).await?,
        Err(e) => return Err(e.into()),
    };
    let mut store = reprise_engine::Store::new(pool);
    if let Some(key) = chain_key_from_env()? {
        store = store.with_chain_key(key);
    }
    let reader = reprise_engine::Client::new(store)
        .with_converter(workflows::registry()?.converter().clone());
    Ok(Some(reprise_ui::Ui::new(reader, None, options)))
}

async fn quickstart(name: &str) -> anyhow::Result<()> {
    let (url, server) = database()?;
    println!("database: {server}");
    println!(
        "schema version: {}",
        reprise_engine::schema::expected_version()
    );
    let reprise = reprise(url)?
        .engine(EngineOptions::default())
        .worker(WorkerOptions::default())
        .start()
        .await?;
    let client = reprise.client().clone();
    let workflow_id = format!("greeting-{}", std::process::id());
    let handle = client
        .start(workflows::GREETING, &workflow_id, &name.to_string())
        .await?;
    let result = handle.result().await?;
    println!("workflow {workflow_id} returned: {result:?}");
    let history = client.export(handle.run_id()).await?;
    println!(
        "history ({} events, head hash {}):",
        history.events().len(),
        history.head_hash()?
    );
    print!(
        "{}",
        reprise_history::timeline::render(history.events(), client.converter())
    );
    reprise.shutdown().await?;
    if reprise_devdb::database_url_from_env().is_none() {
        println!(
            "the private PostgreSQL keeps running; stop it with: cargo run -p reprise-examples -- db stop"
        );
    }
    Ok(())
}

async fn record_versioning(version: &str, runs: u32, out: &Path) -> anyhow::Result<()> {
    use reprise_examples::versioning;
    let registry = match version {
        "v1" => versioning::v1::registry,
        "v2" => versioning::v2::registry,
        other => anyhow::bail!("no version {other:?} to record (v1 or v2)"),
    };
    let (url, server) = database()?;
    eprintln!("recording on {server}");
    let reprise = Reprise::builder()
        .database_url(url)
        .registry(registry()?)
        .engine(EngineOptions::default())
        .worker(WorkerOptions::default())
        .start()
        .await?;
    let client = reprise.client();
    std::fs::create_dir_all(out)?;
    let batch = std::process::id();
    for i in 1..=runs {
        let id = format!("ship-{version}-{batch}-{i}");
        let handle = client
            .start(versioning::SHIP, &id, &format!("order-{i}"))
            .await?;
        handle.result().await?;
        let history = client.export(handle.run_id()).await?;
        std::fs::write(out.join(format!("ship-{i}.rhist")), history.to_bytes()?)?;
        std::fs::write(out.join(format!("ship-{i}.json")), history.to_json()?)?;
        println!("recorded {id}: {} events", history.events().len());
    }
    reprise.shutdown().await?;
    Ok(())
}

async fn check_deploy(sample: i64, strict: bool) -> anyhow::Result<()> {
    let (url, _) = database()?;
    let reprise = reprise(url)?.start().await?;
    let check =
        reprise_engine::check_deploy(reprise.store(), &workflows::registry()?, sample).await?;
    print!("{check}");
    if !check.is_safe() {
        anyhow::bail!("deploying this build would strand running workflows");
    }
    if strict && !check.is_safe_strict() {
        anyhow::bail!("this build gives recorded decisions other inputs (--strict)");
    }
    println!();
    Ok(())
}

fn db(action: DbAction) -> anyhow::Result<()> {
    let dev = DevPostgres::for_project(project_dir())?;
    match action {
        DbAction::Start => println!("{}", dev.ensure_running()?.url),
        DbAction::Stop => println!(
            "{}",
            if dev.stop()? {
                "stopped"
            } else {
                "was not running"
            }
        ),
        DbAction::Status => println!(
            "{}",
            if dev.is_running()? {
                "running"
            } else {
                "not running"
            }
        ),
    }
    Ok(())
}

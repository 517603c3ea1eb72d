//! `reprise`: the operator CLI. Everything here works without the workflows' code.

use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use reprise_engine::{Client, RunFilter, StartOptions, Store};
use reprise_history::{RunState, TaskQueue, WorkflowType};

mod batch;
mod limits;
mod payloads;
mod schedules;
mod show;
mod terms;
mod ui;
mod verify;

/// Operate a Reprise database.
#[derive(Parser)]
#[command(name = "reprise", version, about)]
struct Cli {
    /// PostgreSQL URL of the Reprise database.
    #[arg(long, env = "DATABASE_URL", global = true)]
    database_url: Option<String>,
    /// Run under this database role (`reprise_operator`, `reprise_observer`, ...): the login
    /// role must be a member of it (docs/operations.md, "Database roles").
    #[arg(long, env = "REPRISE_DATABASE_ROLE", global = true)]
    role: Option<String>,
    /// The chain key histories are written and verified with: 64 hex characters.
    #[arg(long, env = "REPRISE_CHAIN_KEY", global = true, hide_env_values = true)]
    chain_key: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply pending schema migrations (safe to run from several processes at once).
    Migrate,
    /// Print the schema version of the database and the one this build expects.
    SchemaVersion,
    /// Show a workflow's latest run: status, input, outcome, times, parked reason, pending
    /// activities.
    Describe {
        /// The workflow id.
        workflow_id: String,
        /// Print JSON for tools.
        #[arg(long)]
        json: bool,
    },
    /// Start a workflow with JSON input (idempotent while a run of the id is open).
    Start {
        /// The workflow type.
        workflow_type: String,
        /// The workflow id.
        workflow_id: String,
        /// The input, as JSON text.
        #[arg(long, default_value = "null")]
        input: String,
        /// The task queue of its orchestrator.
        #[arg(long, default_value = "default")]
        queue: String,
        /// How urgent its activities are, from 1 (lowest) to 9 (highest).
        #[arg(long, default_value_t = 5)]
        priority: i64,
        /// The tenant or customer its activities share capacity as.
        #[arg(long)]
        fairness_key: Option<String>,
        /// Delay its first step (`90s`, `2h`); the run exists at once and takes signals.
        #[arg(long, value_parser = humantime::parse_duration)]
        delay: Option<Duration>,
        /// Its first step at this time (RFC 3339) at the earliest; a past time: at once.
        #[arg(long)]
        start_at: Option<String>,
        #[command(flatten)]
        terms: terms::RunTerms,
        /// Print JSON for tools.
        #[arg(long)]
        json: bool,
    },
    /// Send a signal with a JSON payload to a workflow's open run.
    Signal {
        /// The workflow id.
        workflow_id: String,
        /// The signal name.
        name: String,
        /// The payload, as JSON text.
        #[arg(long, default_value = "null")]
        payload: String,
    },
    /// Ask a workflow's latest run a query and print the answer as JSON (an engine running
    /// the workflow's type answers; nothing is recorded).
    Query {
        /// The workflow id.
        workflow_id: String,
        /// The query name.
        name: String,
        /// The input, as JSON text.
        #[arg(long, default_value = "null")]
        input: String,
        /// How long to wait for an answer, in seconds.
        #[arg(long, default_value_t = 10.0)]
        timeout: f64,
    },
    /// Send an update to a workflow's open run and print its result as JSON, once its
    /// handler has run (a refused update records nothing).
    Update {
        /// The workflow id.
        workflow_id: String,
        /// The update name.
        name: String,
        /// The input, as JSON text.
        #[arg(long, default_value = "null")]
        input: String,
        /// The update's id: sent again with the same id, it runs once (default: a new id).
        #[arg(long)]
        id: Option<String>,
    },
    /// Print a workflow's result (or failure); with --wait, wait for it to close.
    Result {
        /// The workflow id.
        workflow_id: String,
        /// Wait until the run closes (following continue-as-new); a parked run is reported.
        #[arg(long)]
        wait: bool,
        /// Print JSON for tools.
        #[arg(long)]
        json: bool,
    },
    /// Print a workflow's latest run's history as a timeline, with payloads decoded.
    History {
        /// The workflow id.
        workflow_id: String,
        /// Print JSON for tools.
        #[arg(long)]
        json: bool,
    },
    /// List runs, newest first.
    List {
        /// Only this status (running, completed, failed, cancelled, terminated, continued_as_new).
        #[arg(long)]
        status: Option<RunState>,
        /// Only this workflow type.
        #[arg(long = "type")]
        workflow_type: Option<String>,
        /// Only parked runs (the dead-letter view).
        #[arg(long)]
        parked: bool,
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Print JSON for tools.
        #[arg(long)]
        json: bool,
    },
    /// Ask a workflow to cancel (its code may clean up).
    Cancel {
        /// The workflow id.
        workflow_id: String,
        /// Why.
        #[arg(long, default_value = "cancelled by an operator")]
        reason: String,
    },
    /// Terminate a workflow at once, recording the reason.
    Terminate {
        /// The workflow id.
        workflow_id: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Retry a parked run now.
    RetryParked {
        /// The workflow id.
        workflow_id: String,
    },
    /// Reset a workflow's closed run to the end of a step: a new run goes on from there.
    Reset {
        /// The workflow id.
        workflow_id: String,
        /// The last seq the new run keeps (the event after it must be an input).
        #[arg(long)]
        seq: u64,
    },
    /// Write a workflow's latest run's history to a file (`.json` for the readable form).
    Export {
        /// The workflow id.
        workflow_id: String,
        /// The file to write.
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// For each patch of a workflow type: open runs with and without its marker.
    Patches {
        /// The workflow type.
        workflow_type: String,
        /// Print JSON for tools.
        #[arg(long)]
        json: bool,
    },
    /// Fleet-wide limits on activity attempts per task queue or activity type.
    Limits {
        #[command(subcommand)]
        command: limits::LimitsCommand,
    },
    /// Schedules: start workflows on a calendar (cron, intervals) or by hand.
    Schedule {
        #[command(subcommand)]
        command: Box<schedules::ScheduleCommand>,
    },
    /// Verify histories: every link of each run's hash chain (keyed links with the chain key)
    /// and its recorded head. Names the first bad seq of a broken run; exits with status 1 if
    /// one is broken, or (with --require-keyed) not keyed.
    Verify {
        /// The workflow id whose runs to verify.
        workflow_id: Option<String>,
        /// Verify every run in the database.
        #[arg(long)]
        all: bool,
        /// Count a run none of whose links is keyed as a failure.
        #[arg(long)]
        require_keyed: bool,
    },
    /// Bulk operations over a filter: cancel, terminate, retry parked, signal; resume one.
    Batch {
        #[command(subcommand)]
        command: batch::BatchCommand,
    },
    /// Serve the web UI: runs, histories as timelines, parked runs' reports, queues,
    /// schedules, actions and bulk actions (docs/ui.md).
    Ui {
        /// Where to listen; an address other than a loopback one needs --token.
        #[arg(long, default_value = "127.0.0.1:8233")]
        listen: std::net::SocketAddr,
        /// The access token every request must carry (bearer header, or the login page).
        #[arg(long, env = "REPRISE_UI_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Show everything, change nothing.
        #[arg(long)]
        read_only: bool,
        /// The database role the UI reads as; the login's own rights when it cannot take it.
        #[arg(long, env = "REPRISE_UI_READ_ROLE", default_value = "reprise_observer")]
        read_role: String,
    },
    /// Delete runs closed more than N days ago, with everything they stored.
    Prune {
        /// Age in days.
        #[arg(long)]
        older_than_days: u64,
    },
    /// Empty the result cache of cached activities (`RegistryBuilder::cache`).
    ClearCache {
        /// Only this activity type's results (default: every type's).
        #[arg(long = "type")]
        activity_type: Option<String>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let url = cli
        .database_url
        .context("no database: pass --database-url or set DATABASE_URL")?;
    let pool = match &cli.role {
        Some(role) => reprise_engine::connect_as(&url, role).await?,
        None => reprise_engine::connect(&url).await?,
    };
    let converter = payloads::converter_from_env()?;
    let mut store = Store::new(pool.clone());
    if let Some(key) = &cli.chain_key {
        let key =
            reprise_history::ChainKey::from_hex(key).context("--chain-key (REPRISE_CHAIN_KEY)")?;
        store = store.with_chain_key(key);
    }
    let client = Client::new(store.clone()).with_converter(converter.clone());
    match cli.command {
        Command::Batch { command } => batch::batch(&client, command).await?,
        Command::Ui {
            listen,
            token,
            read_only,
            read_role,
        } => {
            ui::serve(ui::Serve {
                url: &url,
                writer: client,
                store,
                listen,
                token,
                read_only,
                read_role,
            })
            .await?
        }
        Command::Migrate => println!(
            "schema version {}",
            reprise_engine::schema::migrate(&pool).await?
        ),
        Command::SchemaVersion => {
            let expected = reprise_engine::schema::expected_version();
            match reprise_engine::schema::schema_version(&pool).await? {
                Some(v) => println!("schema version {v} (this build expects {expected})"),
                None => println!("not migrated (this build expects {expected})"),
            }
        }
        Command::Describe { workflow_id, json } => {
            let d = client.describe(&workflow_id).await?;
            if json {
                println!("{}", show::description_json(&converter, &d));
            } else {
                println!("{}", show::description_text(&converter, &d));
            }
        }
        Command::Start {
            workflow_type,
            workflow_id,
            input,
            queue,
            priority,
            fairness_key,
            delay,
            start_at,
            terms,
            json,
        } => {
            let start_at = start_at
                .map(|t| {
                    reprise_history::Timestamp::parse_rfc3339(t.trim())
                        .with_context(|| format!("--start-at {t:?} is not an RFC 3339 time"))
                })
                .transpose()?;
            let options = terms.apply(StartOptions {
                task_queue: TaskQueue::new(&queue)?,
                priority: reprise_engine::Priority::new(priority)?,
                fairness_key,
                start_delay: delay.unwrap_or_default(),
                start_at,
                ..StartOptions::default()
            });
            let handle = client
                .start_json(&workflow_type, &workflow_id, &input, options)
                .await?;
            if json {
                let started = serde_json::json!({
                    "workflow_id": workflow_id,
                    "run_id": handle.run_id().to_string(),
                });
                println!("{started}");
            } else {
                println!("started {workflow_id} as run {}", handle.run_id());
            }
        }
        Command::Signal {
            workflow_id,
            name,
            payload,
        } => {
            client.signal_json(&workflow_id, &name, &payload).await?;
            println!("signal {name} sent to {workflow_id}");
        }
        Command::Query {
            workflow_id,
            name,
            input,
            timeout,
        } => {
            let timeout = Duration::try_from_secs_f64(timeout)
                .context("--timeout must be a number of seconds, at least 0")?;
            let answer = client
                .query_json(&workflow_id, &name, &input, timeout)
                .await?;
            println!("{}", show::payload_json(&converter, &answer));
        }
        Command::Update {
            workflow_id,
            name,
            input,
            id,
        } => {
            let id = id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            let result = client.update_json(&workflow_id, &id, &name, &input).await?;
            println!("{}", show::payload_json(&converter, &result));
        }
        Command::Result {
            workflow_id,
            wait,
            json,
        } => result(&client, &workflow_id, wait, json).await?,
        Command::History { workflow_id, json } => {
            let run_id = client.describe(&workflow_id).await?.run_id;
            let history = client.export(run_id).await?;
            if json {
                println!("{}", show::history_json(&converter, history.events()));
            } else {
                print!(
                    "{}",
                    reprise_history::timeline::render(history.events(), &converter)
                );
            }
        }
        Command::List {
            status,
            workflow_type,
            parked,
            limit,
            json,
        } => {
            let filter = RunFilter {
                status,
                workflow_type: workflow_type.map(WorkflowType::new).transpose()?,
                parked,
                ..RunFilter::default()
            };
            let runs = client.list(&filter, None, limit).await?.runs;
            if json {
                let runs: Vec<_> = runs.iter().map(show::summary_json).collect();
                println!("{}", serde_json::Value::Array(runs));
                return Ok(());
            }
            for run in runs {
                let parked = run
                    .parked_reason
                    .map(|r| format!("  parked: {r}"))
                    .unwrap_or_default();
                println!(
                    "{}  {}  {}  {}  {}{parked}",
                    run.created_at, run.workflow_id, run.workflow_type, run.status, run.run_id
                );
            }
        }
        Command::Cancel {
            workflow_id,
            reason,
        } => client.cancel(&workflow_id, &reason).await?,
        Command::Terminate {
            workflow_id,
            reason,
        } => client.terminate(&workflow_id, &reason).await?,
        Command::RetryParked { workflow_id } => {
            let retried = client.retry_parked(&workflow_id).await?;
            println!("{}", if retried { "retrying" } else { "not parked" });
        }
        Command::Reset { workflow_id, seq } => {
            println!("new run {}", client.reset(&workflow_id, seq).await?)
        }
        Command::Export { workflow_id, out } => {
            let run_id = client.describe(&workflow_id).await?.run_id;
            let history = client.export(run_id).await?;
            let bytes = if out.extension().is_some_and(|e| e == "json") {
                history.to_json()?.into_bytes()
            } else {
                history.to_bytes()?
            };
            std::fs::write(&out, bytes).with_context(|| format!("writing {}", out.display()))?;
            println!(
                "{} events written to {}",
                history.events().len(),
                out.display()
            );
        }
        Command::Patches {
            workflow_type,
            json,
        } => {
            let usage = client.patch_usage(&workflow_type).await?;
            if json {
                let usage: Vec<_> = usage
                    .iter()
                    .map(|p| {
                        serde_json::json!({
                            "patch_id": p.patch_id.as_str(),
                            "open_runs_with_marker": p.open_runs_with_marker,
                            "open_runs_without_marker": p.open_runs_without_marker,
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(usage));
                return Ok(());
            }
            for p in usage {
                println!(
                    "{}: {} open runs with the marker, {} without",
                    p.patch_id, p.open_runs_with_marker, p.open_runs_without_marker
                );
            }
        }
        Command::Limits { command } => limits::run(&client, command).await?,
        Command::Schedule { command } => schedules::run(&client, *command).await?,
        Command::Verify {
            workflow_id,
            all,
            require_keyed,
        } => {
            let tally = verify::run(&client, workflow_id.as_deref(), all).await?;
            if tally.broken > 0 || (require_keyed && tally.unkeyed > 0) {
                std::process::exit(1);
            }
        }
        Command::Prune { older_than_days } => {
            let deleted = client
                .prune(Duration::from_secs(older_than_days * 86_400))
                .await?;
            println!("deleted {deleted} closed runs");
        }
        Command::ClearCache { activity_type } => {
            let removed = client
                .clear_activity_cache(activity_type.as_deref())
                .await?;
            println!("removed {removed} cached results");
        }
    }
    Ok(())
}

/// `reprise result`: the outcome of a closed run; an open one says so (or, with `--wait`, is
/// waited for).
async fn result(client: &Client, workflow_id: &str, wait: bool, json: bool) -> anyhow::Result<()> {
    let converter = client.converter();
    if wait {
        let handle = client.handle_json(workflow_id).await?;
        match handle.result().await {
            Ok(value) if json => {
                println!(
                    "{}",
                    serde_json::json!({"status": "completed", "result": value})
                )
            }
            Ok(value) => println!("completed: {value}"),
            Err(reprise_engine::Error::WorkflowFailed { failure, .. }) => {
                let failure = reprise_engine::RunOutcome::Failed { failure: *failure };
                return report_closed(converter, &failure, json);
            }
            Err(e) => return Err(e.into()),
        }
        return Ok(());
    }
    let d = client.describe(workflow_id).await?;
    match &d.outcome {
        Some(outcome) => report_closed(converter, outcome, json),
        None => {
            let state = match &d.parked_reason {
                Some(reason) => format!("parked: {reason}"),
                None => "still running".to_string(),
            };
            anyhow::bail!(
                "workflow {workflow_id} has no result yet ({state}); pass --wait to wait for it"
            )
        }
    }
}

/// Prints a closed run's outcome; one other than completion makes the command fail.
fn report_closed(
    converter: &reprise_history::DataConverter,
    outcome: &reprise_engine::RunOutcome,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        println!("{}", show::outcome_json(converter, outcome));
    } else {
        println!("{}", show::outcome_text(converter, outcome));
    }
    match outcome {
        reprise_engine::RunOutcome::Completed { .. } => Ok(()),
        _ => std::process::exit(1),
    }
}

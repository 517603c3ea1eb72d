//! `reprise`: the operator CLI. Everything here works without the workflows' code.

use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use reprise_engine::{Client, RunFilter, Store};
use reprise_history::{RunState, WorkflowType};

/// Operate a Reprise database.
#[derive(Parser)]
#[command(name = "reprise", version, about)]
struct Cli {
    /// PostgreSQL URL of the Reprise database.
    #[arg(long, env = "DATABASE_URL", global = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply pending schema migrations (safe to run from several processes at once).
    Migrate,
    /// Print the schema version of the database and the one this build expects.
    SchemaVersion,
    /// Show a workflow's latest run: status, parked reason, pending activities.
    Describe {
        /// The workflow id.
        workflow_id: String,
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
    },
    /// Delete runs closed more than N days ago, with everything they stored.
    Prune {
        /// Age in days.
        #[arg(long)]
        older_than_days: u64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let url = cli
        .database_url
        .context("no database: pass --database-url or set DATABASE_URL")?;
    let pool = reprise_engine::connect(&url).await?;
    let client = Client::new(Store::new(pool.clone()));
    match cli.command {
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
        Command::Describe { workflow_id } => {
            let d = client.describe(&workflow_id).await?;
            println!(
                "run {}  type {}  status {}  head seq {}",
                d.run_id, d.workflow_type, d.status, d.head_seq
            );
            if let Some(reason) = d.parked_reason {
                println!("parked: {reason}");
            }
            for a in d.pending_activities {
                let state = if a.running { "running" } else { "waiting" };
                let failure = a
                    .last_failure
                    .map(|f| format!(", last failure: {f}"))
                    .unwrap_or_default();
                println!(
                    "  seq {} {} attempt {} ({state}{failure})",
                    a.scheduled_seq, a.activity_type, a.attempt
                );
            }
        }
        Command::List {
            status,
            workflow_type,
            parked,
            limit,
        } => {
            let filter = RunFilter {
                status,
                workflow_type: workflow_type.map(WorkflowType::new).transpose()?,
                parked,
                ..RunFilter::default()
            };
            for run in client.list(&filter, None, limit).await?.runs {
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
        Command::Patches { workflow_type } => {
            for p in client.patch_usage(&workflow_type).await? {
                println!(
                    "{}: {} open runs with the marker, {} without",
                    p.patch_id, p.open_runs_with_marker, p.open_runs_without_marker
                );
            }
        }
        Command::Prune { older_than_days } => {
            let deleted = client
                .prune(Duration::from_secs(older_than_days * 86_400))
                .await?;
            println!("deleted {deleted} closed runs");
        }
    }
    Ok(())
}

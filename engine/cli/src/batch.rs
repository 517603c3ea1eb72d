//! `reprise batch`: cancel, terminate, retry parked runs or broadcast a signal to every open
//! run a filter matches, with the count first and a progress bar; `resume` goes on with one
//! that was interrupted, and running one again is harmless.

use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use reprise_engine::{BatchProgress, BulkAction, Client};
use reprise_ui::{FilterQuery, bulk_action};

/// Runs per transaction.
const DEFAULT_CHUNK: u32 = 200;

/// Which runs a batch covers (open ones only, whatever the filter says).
#[derive(Args, Clone, Debug)]
pub(crate) struct FilterArgs {
    /// Only runs of this workflow type.
    #[arg(long = "type")]
    workflow_type: Option<String>,
    /// Only workflow ids that start with this.
    #[arg(long)]
    id_prefix: Option<String>,
    /// Only runs whose orchestrator runs on this task queue.
    #[arg(long)]
    queue: Option<String>,
    /// Only parked runs.
    #[arg(long)]
    parked: bool,
    /// Only runs created at or after this time (RFC 3339, or YYYY-MM-DDTHH:MM in UTC).
    #[arg(long)]
    created_from: Option<String>,
    /// Only runs created before this time.
    #[arg(long)]
    created_before: Option<String>,
    /// Do not ask before starting (the count is still printed).
    #[arg(long, short = 'y')]
    yes: bool,
    /// Runs per transaction.
    #[arg(long, default_value_t = DEFAULT_CHUNK)]
    chunk: u32,
    /// Print JSON for tools (the final progress).
    #[arg(long)]
    json: bool,
}

/// `reprise batch ...`.
#[derive(Subcommand)]
pub(crate) enum BatchCommand {
    /// Ask every matching open run to cancel (asking twice is asking once).
    Cancel {
        #[command(flatten)]
        filter: FilterArgs,
        /// Recorded in each run's cancel request.
        #[arg(long, default_value = "bulk cancel")]
        reason: String,
    },
    /// Terminate every matching open run.
    Terminate {
        #[command(flatten)]
        filter: FilterArgs,
        /// Recorded in each run's termination.
        #[arg(long, default_value = "bulk terminate")]
        reason: String,
    },
    /// Retry every matching parked run.
    RetryParked {
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Send a signal to every matching open run: once per run, however often it is resumed.
    Signal {
        /// The signal name.
        name: String,
        /// The payload, as JSON text.
        #[arg(long, default_value = "null")]
        payload: String,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Go on with a batch that was interrupted (harmless on one that finished).
    Resume {
        /// The batch id.
        batch_id: uuid::Uuid,
        /// Runs per transaction.
        #[arg(long, default_value_t = DEFAULT_CHUNK)]
        chunk: u32,
    },
    /// Show a batch's progress.
    Show {
        /// The batch id.
        batch_id: uuid::Uuid,
    },
    /// List the latest batches.
    List,
}

impl FilterArgs {
    fn query(&self) -> FilterQuery {
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        FilterQuery {
            status: String::new(),
            workflow_type: text(&self.workflow_type),
            id: text(&self.id_prefix),
            queue: text(&self.queue),
            from: text(&self.created_from),
            to: text(&self.created_before),
            parked: if self.parked {
                "on".into()
            } else {
                String::new()
            },
            after: String::new(),
        }
    }
}

fn line(p: &BatchProgress) -> String {
    let total = p.matched.max(p.handled()).max(1);
    let width = 30;
    let filled = usize::try_from(p.handled() * width / total)
        .unwrap_or(0)
        .min(30);
    format!(
        "[{}{}] {}/{}  done {}  skipped {}  failed {}",
        "#".repeat(filled),
        "-".repeat(30 - filled),
        p.handled(),
        p.matched,
        p.done,
        p.skipped,
        p.failed
    )
}

/// Runs a batch to its end with a progress bar on stderr.
async fn run(client: &Client, batch_id: uuid::Uuid, chunk: u32, json: bool) -> anyhow::Result<()> {
    let tty = std::io::stderr().is_terminal();
    let mut last_line = Instant::now();
    let outcome = client
        .run_batch(batch_id, chunk, |p| {
            if tty {
                eprint!("\r{}", line(p));
                let _ = std::io::stderr().flush();
            } else if last_line.elapsed() >= Duration::from_secs(2) || p.finished_at.is_some() {
                eprintln!("{}", line(p));
                last_line = Instant::now();
            }
        })
        .await;
    if tty {
        eprintln!();
    }
    let progress = outcome.with_context(|| {
        format!("batch {batch_id} stopped; what was done is kept: `reprise batch resume {batch_id}` goes on")
    })?;
    if json {
        println!("{}", reprise_ui::json::batch_json(&progress));
    } else {
        println!(
            "batch {batch_id} finished: {} done, {} skipped, {} failed",
            progress.done, progress.skipped, progress.failed
        );
        if let Some(error) = &progress.last_error {
            println!("last failure: {error}");
        }
    }
    Ok(())
}

fn confirm(count: u64, what: &str) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "{count} run(s) would be affected; pass --yes to {what} them without a prompt"
        );
    }
    eprint!("{what} {count} run(s)? [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// Runs a `reprise batch` command.
pub(crate) async fn batch(client: &Client, command: BatchCommand) -> anyhow::Result<()> {
    let (filter, action) = match command {
        BatchCommand::Resume { batch_id, chunk } => {
            return run(client, batch_id, chunk, false).await;
        }
        BatchCommand::Show { batch_id } => {
            let p = client.batch(batch_id).await?;
            println!("{}", reprise_ui::json::batch_json(&p));
            return Ok(());
        }
        BatchCommand::List => {
            for p in client.batches(50).await? {
                println!(
                    "{}  {}  {}  {}/{}{}",
                    p.batch_id,
                    p.created_at,
                    p.action.name(),
                    p.handled(),
                    p.matched,
                    if p.finished_at.is_some() {
                        "  finished"
                    } else {
                        ""
                    }
                );
            }
            return Ok(());
        }
        BatchCommand::Cancel { filter, reason } => {
            (filter, bulk_action(client, "cancel", &reason, "", ""))
        }
        BatchCommand::Terminate { filter, reason } => {
            (filter, bulk_action(client, "terminate", &reason, "", ""))
        }
        BatchCommand::RetryParked { filter } => {
            (filter, bulk_action(client, "retry_parked", "", "", ""))
        }
        BatchCommand::Signal {
            name,
            payload,
            filter,
        } => (filter, bulk_action(client, "signal", "", &name, &payload)),
    };
    let action: BulkAction = action.map_err(anyhow::Error::msg)?;
    let run_filter = filter.query().filter().map_err(anyhow::Error::msg)?;
    let count = client.count_for_batch(&run_filter, &action).await?;
    eprintln!("{} would act on {count} open run(s)", action.name());
    if count == 0 {
        println!("nothing matches: nothing done");
        return Ok(());
    }
    if !filter.yes && !confirm(count, action.name())? {
        eprintln!("nothing done");
        return Ok(());
    }
    let created = client.create_batch(&run_filter, &action).await?;
    eprintln!(
        "batch {}: resume it with `reprise batch resume {}` if it is interrupted",
        created.batch_id, created.batch_id
    );
    run(client, created.batch_id, filter.chunk, filter.json).await
}

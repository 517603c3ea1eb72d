//! `reprise-chaos`: the long chaos run (issue 19), printing its figures — and, as
//! `reprise-chaos host <role>`, one engine or worker process of the fleet it SIGKILLs.
//!
//! ```sh
//! cargo run --release -p reprise-examples --bin reprise-chaos -- --minutes 10
//! REPRISE_CHAOS_SEED=42 cargo run --release -p reprise-examples --bin reprise-chaos -- --minutes 1
//! ```
//!
//! It runs its own PostgreSQL in a temporary folder (never the project's: that one is shared
//! with the tests, and this one gets restarted); it needs the server binaries, not a server.

use clap::{Parser, Subcommand};
use reprise_examples::chaos::{self, Config, HostRole};

/// Kill engines and workers, restart PostgreSQL, then audit every run.
#[derive(Parser)]
#[command(name = "reprise-chaos", about)]
struct Cli {
    /// Minutes of faults (kills every 300–700 ms, a restart every 40–80 s).
    #[arg(long, default_value_t = 10)]
    minutes: u64,
    /// The seed of the plan (default: `REPRISE_CHAOS_SEED`, else a fresh one).
    #[arg(long)]
    seed: Option<u64>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// One process of the fleet (`engine`, `chaos-worker`, `steady-worker`) on `DATABASE_URL`;
    /// started by the run itself.
    #[command(hide = true)]
    Host {
        /// Its role.
        role: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Some(Command::Host { role }) = cli.command {
        let role =
            HostRole::from_arg(&role).ok_or_else(|| anyhow::anyhow!("no host role {role:?}"))?;
        let url = reprise_devdb::database_url_from_env()
            .ok_or_else(|| anyhow::anyhow!("a host needs DATABASE_URL"))?;
        return chaos::serve_host(&url, role).await;
    }
    let seed = cli.seed.unwrap_or_else(chaos::seed_from_env);
    let config = Config::long(std::env::current_exe()?, seed, cli.minutes);
    eprintln!(
        "chaos: seed {seed}, {} workflows, {} restarts over {} min",
        config.workflows,
        config.restarts.len(),
        cli.minutes
    );
    let report = chaos::run(config).await?;
    print!("{report}");
    anyhow::ensure!(
        report.problems.is_empty(),
        "the audit found {} problems",
        report.problems.len()
    );
    Ok(())
}

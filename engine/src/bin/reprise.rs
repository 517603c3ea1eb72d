//! `reprise`: the operator CLI. Today: apply migrations and show the schema version.

use anyhow::Context as _;
use clap::{Parser, Subcommand};

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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let url = cli
        .database_url
        .context("no database: pass --database-url or set DATABASE_URL")?;
    let pool = reprise_engine::connect(&url).await?;
    match cli.command {
        Command::Migrate => {
            let version = reprise_engine::schema::migrate(&pool).await?;
            println!("schema version {version}");
        }
        Command::SchemaVersion => {
            let version = reprise_engine::schema::schema_version(&pool).await?;
            let expected = reprise_engine::schema::expected_version();
            match version {
                Some(v) => println!("schema version {v} (this build expects {expected})"),
                None => println!("not migrated (this build expects {expected})"),
            }
        }
    }
    Ok(())
}

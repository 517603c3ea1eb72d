//! `reprise-example`: the development binary. With no `DATABASE_URL` it runs against the
//! project's private PostgreSQL (started on demand, reused while it runs).

use std::path::Path;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use reprise_devdb::DevPostgres;

/// Run Reprise's examples against PostgreSQL.
#[derive(Parser)]
#[command(name = "reprise-example", about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Start the private PostgreSQL (or use DATABASE_URL), migrate it, and report (the default).
    Quickstart,
    /// Manage the private PostgreSQL.
    Db {
        #[command(subcommand)]
        action: DbAction,
    },
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
    match Cli::parse().command.unwrap_or(Command::Quickstart) {
        Command::Quickstart => quickstart().await,
        Command::Db { action } => db(action),
    }
}

async fn quickstart() -> anyhow::Result<()> {
    let (url, server) = match reprise_devdb::database_url_from_env() {
        Some(url) => (url, "the server named by DATABASE_URL".to_string()),
        None => {
            let dev = DevPostgres::for_project(project_dir())?;
            let started = dev.ensure_running()?;
            let how = if started.started_now {
                "started"
            } else {
                "already running"
            };
            let server = format!(
                "the private PostgreSQL ({how}) from {}, data in {}",
                dev.binaries().dir().display(),
                dev.root().display()
            );
            (started.url, server)
        }
    };
    let pool = reprise_engine::connect(&url)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let server_version = reprise_engine::server_version(&pool).await?;
    let version = reprise_engine::schema::migrate(&pool).await?;
    println!("server:         {server}");
    println!("url:            {url}");
    println!("postgres:       {server_version}");
    println!("schema version: {version}");
    if reprise_devdb::database_url_from_env().is_none() {
        println!("stop it with:   cargo run -p reprise-examples -- db stop");
    }
    Ok(())
}

fn db(action: DbAction) -> anyhow::Result<()> {
    let dev = DevPostgres::for_project(project_dir())?;
    match action {
        DbAction::Start => {
            let started = dev.ensure_running()?;
            println!("{}", started.url);
        }
        DbAction::Stop => {
            let was_running = dev.stop()?;
            println!(
                "{}",
                if was_running {
                    "stopped"
                } else {
                    "was not running"
                }
            );
        }
        DbAction::Status => {
            let running = dev.is_running()?;
            println!("{}", if running { "running" } else { "not running" });
        }
    }
    Ok(())
}

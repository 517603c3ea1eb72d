//! `reprise-bench`: Reprise's benchmarks, printing figures (never asserting timings).
//!
//! Runs each workload three times against a fresh `reprise_bench` database on the private
//! PostgreSQL (or the server `DATABASE_URL` names), with one engine process and one worker
//! process (`reprise-example`, built beside this binary) — or, with `--in-process`, client,
//! engine and worker in this process — and prints one table of medians with min and max:
//!
//! ```sh
//! cargo build --release -p reprise-examples --bins
//! ./target/release/reprise-bench            # every workload
//! ./target/release/reprise-bench hello long # some of them
//! ```

mod codecs;
mod local;
mod measure;
mod queries;
mod rated;
mod schedules;
mod setup;
mod ui;
mod updates;
mod workloads;

use std::collections::BTreeMap;

use clap::{Parser, ValueEnum};

use crate::setup::Bench;
use crate::workloads::Figure;

/// Reprise's benchmarks.
#[derive(Parser)]
#[command(name = "reprise-bench", about)]
struct Cli {
    /// Client, engine and worker in this process instead of separate processes.
    #[arg(long)]
    in_process: bool,
    /// Repetitions of each workload.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Configure limits on the benchmark activity's type that never bind (at most 100,000
    /// at once, 1,000,000 a second), so that every claim takes the limited path: what limits
    /// cost the claim path.
    #[arg(long)]
    with_limits: bool,
    /// Workloads to run (default: all but `ui`).
    workloads: Vec<Workload>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
enum Workload {
    /// W1: 1 activity; throughput of 2,000 and latency of 200.
    Hello,
    /// W2: 10 sequential activities, 300 workflows.
    Chain10,
    /// W2 against W2 with local activities, alternated: steps/s of each and their cost.
    Local,
    /// W3: 100 concurrent activities, 20 runs.
    Fanout100,
    /// W4: 500 one-second timers.
    Timer,
    /// A 50/s rate limit held by 4 workers over 60 s: the rate and its cost per attempt.
    Rated,
    /// W5: 5,000 sequential activities, step time by history length.
    Long,
    /// W6: replay speed of a 10,000-event history.
    Replay,
    /// Query latency on a cached run and on an evicted run of 1,000 events.
    Queries,
    /// Update round trips: a handler that answers at once, one that runs an activity.
    Updates,
    /// Database CPU of 10,000 idle schedules; lateness of firings every second.
    Schedules,
    /// Payload codecs: encode + decode per payload, JSON against bincode, with encryption.
    Codecs,
    /// pgbench's single-row INSERT ceiling of the same server.
    Ceiling,
    /// The web UI: the runs page over 1,000,000 runs, a run of 10,000 events (run it alone:
    /// it writes the million runs into the benchmark database).
    Ui,
}

impl Workload {
    fn label(self) -> &'static str {
        match self {
            Workload::Hello => "W1 hello",
            Workload::Chain10 => "W2 chain10",
            Workload::Local => "W2 local",
            Workload::Fanout100 => "W3 fanout100",
            Workload::Timer => "W4 timer",
            Workload::Rated => "rate limit",
            Workload::Long => "W5 long",
            Workload::Replay => "W6 replay",
            Workload::Queries => "queries",
            Workload::Updates => "updates",
            Workload::Schedules => "schedules",
            Workload::Codecs => "codecs",
            Workload::Ceiling => "ceiling",
            Workload::Ui => "ui",
        }
    }

    /// Whether the engine and worker hosts must run for it.
    fn needs_hosts(self) -> bool {
        matches!(
            self,
            Workload::Hello
                | Workload::Chain10
                | Workload::Local
                | Workload::Fanout100
                | Workload::Timer
                | Workload::Rated
                | Workload::Schedules
        )
    }

    async fn run(self, bench: &Bench) -> anyhow::Result<Vec<Figure>> {
        match self {
            Workload::Hello => workloads::hello(bench).await,
            Workload::Chain10 => workloads::chain10(bench).await,
            Workload::Local => local::local(bench).await,
            Workload::Fanout100 => workloads::fanout100(bench).await,
            Workload::Timer => workloads::timer(bench).await,
            Workload::Rated => rated::rated(bench).await,
            Workload::Long => workloads::long(bench).await,
            Workload::Replay => workloads::replay(bench).await,
            Workload::Queries => queries::queries(bench).await,
            Workload::Updates => updates::updates(bench).await,
            Workload::Schedules => schedules::schedules(bench).await,
            Workload::Codecs => codecs::codecs().await,
            Workload::Ceiling => workloads::ceiling(bench).await,
            Workload::Ui => ui::ui(bench).await,
        }
    }
}

fn stats(values: &mut [f64]) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    (
        values[values.len() / 2],
        values[0],
        values[values.len() - 1],
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Quiet unless `RUST_LOG` asks (for example `sqlx::query=debug` to time every statement).
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut chosen = cli.workloads.clone();
    if chosen.is_empty() {
        // Every workload but the UI's, which writes a million runs: ask for it by name.
        chosen = Workload::value_variants()
            .iter()
            .copied()
            .filter(|w| *w != Workload::Ui)
            .collect();
    }
    chosen.sort();
    chosen.dedup();
    let mut bench = Bench::new(cli.in_process).await?;
    let version: String = sqlx::query_scalar("SELECT version()")
        .fetch_one(bench.store.pool())
        .await?;
    let sync: String = sqlx::query_scalar(
        "SELECT current_setting('synchronous_commit') || ', fsync ' || current_setting('fsync')",
    )
    .fetch_one(bench.store.pool())
    .await?;
    println!(
        "reprise-bench: {} repetitions each; {}{}",
        cli.repeats,
        bench.settings(),
        if cli.with_limits {
            "; never-binding limits on the benchmark activity"
        } else {
            ""
        }
    );
    println!(
        "server: {version}; synchronous_commit {sync}; {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!(
        "{:<14} {:<30} {:>12} {:>12} {:>12}  unit",
        "workload", "figure", "median", "min", "max"
    );
    let mut medians: BTreeMap<(&str, &str), f64> = BTreeMap::new();
    for workload in chosen {
        if workload.needs_hosts() {
            bench.start_hosts().await?;
            if cli.with_limits {
                let never_binding = reprise_engine::Limit {
                    max_concurrent: Some(100_000),
                    rate: Some(reprise_engine::Rate {
                        per_second: 1_000_000.0,
                        burst: 1_000_000,
                    }),
                };
                let scope = reprise_engine::LimitScope::ActivityType(
                    reprise_examples::bench::INCREMENT.name().to_string(),
                );
                bench.client.set_limit(scope, never_binding).await?;
            }
        }
        let mut series: BTreeMap<&'static str, (Vec<f64>, &'static str, usize)> = BTreeMap::new();
        for _ in 0..cli.repeats.max(1) {
            for (order, f) in workload.run(&bench).await?.into_iter().enumerate() {
                series
                    .entry(f.name)
                    .or_insert((Vec::new(), f.unit, order))
                    .0
                    .push(f.value);
            }
        }
        let mut rows: Vec<_> = series.into_iter().collect();
        rows.sort_by_key(|(_, (_, _, order))| *order);
        for (name, (mut values, unit, _)) in rows {
            let (median, min, max) = stats(&mut values);
            medians.insert((workload.label(), name), median);
            println!(
                "{:<14} {:<30} {:>12.2} {:>12.2} {:>12.2}  {unit}",
                workload.label(),
                name,
                median,
                min,
                max
            );
        }
        if workload.needs_hosts() {
            let (engine, worker) = bench.stop_hosts().await?;
            let what = if cli.in_process {
                "peak RSS (one process)"
            } else {
                "peak RSS engine / worker"
            };
            println!(
                "{:<14} {:<30} {:>12.1} {:>12.1}  MiB",
                workload.label(),
                what,
                engine,
                worker
            );
        }
    }
    if let (Some(ceiling), Some(latency)) = (
        medians.get(&("ceiling", "INSERT, 16 clients")),
        medians.get(&("ceiling", "INSERT, 1 client latency")),
    ) {
        println!();
        println!(
            "against the ceiling ({ceiling:.0} INSERT tx/s at 16 clients, {latency:.3} ms at 1 client):"
        );
        if let Some(v) = medians.get(&("W1 hello", "throughput")) {
            println!(
                "  W1 workflows/s / INSERT rate     = {:.3} (target >= 0.1)",
                v / ceiling
            );
        }
        if let Some(v) = medians.get(&("W2 chain10", "activities")) {
            println!(
                "  W2 activities/s / INSERT rate    = {:.3} (target >= 0.25)",
                v / ceiling
            );
        }
        if let Some(v) = medians.get(&("W1 hello", "latency p50")) {
            println!(
                "  W1 p50 / INSERT latency          = {:.1} (target: p50 <= 3 x latency + 2 ms = {:.2} ms)",
                v / latency,
                3.0 * latency + 2.0
            );
        }
    }
    Ok(())
}

//! `reprise limits`: fleet-wide limits on activity attempts, set, shown and cleared.

use clap::{Args, Subcommand};
use reprise_engine::{Client, Limit, LimitScope, LimitUsage, Rate};

/// What `reprise limits` does.
#[derive(Subcommand)]
pub(crate) enum LimitsCommand {
    /// Set the limit of a task queue or an activity type (replacing any it had).
    Set {
        #[command(flatten)]
        scope: ScopeArgs,
        /// Most attempts running at once, over every worker.
        #[arg(long)]
        max_concurrent: Option<u32>,
        /// Most attempts started per second (a token bucket; needs --burst).
        #[arg(long, requires = "burst")]
        rate: Option<f64>,
        /// Most attempts started at once after a quiet spell (the bucket's size).
        #[arg(long, requires = "rate")]
        burst: Option<u32>,
    },
    /// Show every limit with what runs and waits under it now.
    Show {
        /// Print JSON for tools.
        #[arg(long)]
        json: bool,
    },
    /// Remove the limit of a task queue or an activity type.
    Clear {
        #[command(flatten)]
        scope: ScopeArgs,
    },
}

/// Which scope a limit applies to: exactly one of the two.
#[derive(Args)]
#[group(required = true, multiple = false)]
pub(crate) struct ScopeArgs {
    /// A task queue: every activity attempt on it.
    #[arg(long)]
    queue: Option<String>,
    /// An activity type: every attempt of it, on any queue.
    #[arg(long)]
    activity_type: Option<String>,
}

impl ScopeArgs {
    fn scope(self) -> anyhow::Result<LimitScope> {
        match (self.queue, self.activity_type) {
            (Some(queue), None) => Ok(LimitScope::Queue(queue)),
            (None, Some(activity_type)) => Ok(LimitScope::ActivityType(activity_type)),
            _ => anyhow::bail!("give one of --queue and --activity-type"),
        }
    }
}

/// Runs `reprise limits ...`.
pub(crate) async fn run(client: &Client, command: LimitsCommand) -> anyhow::Result<()> {
    match command {
        LimitsCommand::Set {
            scope,
            max_concurrent,
            rate,
            burst,
        } => {
            let scope = scope.scope()?;
            let rate = match (rate, burst) {
                (Some(per_second), Some(burst)) => Some(Rate { per_second, burst }),
                _ => None,
            };
            let limit = Limit {
                max_concurrent,
                rate,
            };
            client.set_limit(scope.clone(), limit).await?;
            println!("{scope}: {}", describe(&limit));
        }
        LimitsCommand::Show { json } => {
            let limits = client.limits().await?;
            if json {
                let rows: Vec<_> = limits.iter().map(usage_json).collect();
                println!("{}", serde_json::Value::Array(rows));
            } else if limits.is_empty() {
                println!("no limits");
            } else {
                for usage in &limits {
                    println!("{}", usage_text(usage));
                }
            }
        }
        LimitsCommand::Clear { scope } => {
            let scope = scope.scope()?;
            if client.clear_limit(&scope).await? {
                println!("{scope}: no limit");
            } else {
                println!("{scope} had no limit");
            }
        }
    }
    Ok(())
}

fn describe(limit: &Limit) -> String {
    let mut parts = Vec::new();
    if let Some(max) = limit.max_concurrent {
        parts.push(format!("at most {max} at once"));
    }
    if let Some(rate) = limit.rate {
        parts.push(format!(
            "at most {}/s (burst {})",
            rate.per_second, rate.burst
        ));
    }
    parts.join(", ")
}

fn usage_text(usage: &LimitUsage) -> String {
    let tokens = usage
        .tokens
        .map(|t| format!(", {t:.1} tokens"))
        .unwrap_or_default();
    format!(
        "{}: {}; {} running, {} waiting{tokens}",
        usage.scope,
        describe(&usage.limit),
        usage.running,
        usage.waiting
    )
}

fn usage_json(usage: &LimitUsage) -> serde_json::Value {
    let (kind, name) = match &usage.scope {
        LimitScope::Queue(name) => ("queue", name),
        LimitScope::ActivityType(name) => ("activity_type", name),
    };
    serde_json::json!({
        "scope": kind,
        "name": name,
        "max_concurrent": usage.limit.max_concurrent,
        "rate_per_second": usage.limit.rate.map(|r| r.per_second),
        "burst": usage.limit.rate.map(|r| r.burst),
        "running": usage.running,
        "waiting": usage.waiting,
        "tokens": usage.tokens,
    })
}

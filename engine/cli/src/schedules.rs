//! `reprise schedule`: create, change, show, pause, trigger, backfill and delete schedules.

use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use reprise_engine::history::{TaskQueue, Timestamp};
use reprise_engine::schedule::{CronSpec, IntervalSpec, TimeRange, TimeZone};
use reprise_engine::{
    Client, OverlapPolicy, Priority, Schedule, ScheduleDescription, ScheduleSpec, StartOptions,
    TriggerOutcome,
};
use serde_json::{Value, json};

/// What `reprise schedule` does.
#[derive(Subcommand)]
pub(crate) enum ScheduleCommand {
    /// Create a schedule: its times after now fire.
    Create {
        /// The schedule id (the prefix of the workflow ids it starts).
        schedule_id: String,
        #[command(flatten)]
        definition: Definition,
    },
    /// Replace a schedule's spec, action and policies (give them all again); its times from
    /// now on fire.
    Update {
        /// The schedule id.
        schedule_id: String,
        #[command(flatten)]
        definition: Definition,
    },
    /// Show a schedule: its spec, next 10 fire times, the workflows it started last.
    Describe {
        /// The schedule id.
        schedule_id: String,
        /// Print JSON for tools.
        #[arg(long)]
        json: bool,
    },
    /// List schedules in id order.
    List {
        /// Start after this id (the last of the previous page).
        #[arg(long)]
        after: Option<String>,
        /// How many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Print JSON for tools.
        #[arg(long)]
        json: bool,
    },
    /// Pause a schedule: nothing fires until it is resumed.
    Pause {
        /// The schedule id.
        schedule_id: String,
        /// Why (shown by describe).
        #[arg(long, default_value = "paused by an operator")]
        note: String,
    },
    /// Resume a schedule: its times from now on fire (those missed while paused do not).
    Resume {
        /// The schedule id.
        schedule_id: String,
        /// Why (shown by describe).
        #[arg(long, default_value = "resumed by an operator")]
        note: String,
    },
    /// Fire a schedule now, under its overlap policy.
    Trigger {
        /// The schedule id.
        schedule_id: String,
    },
    /// Fire the schedule's times in a past range now (a time that fired already is not
    /// started again).
    Backfill {
        /// The schedule id.
        schedule_id: String,
        /// The range's start (RFC 3339).
        #[arg(long)]
        from: String,
        /// The range's end, inclusive (RFC 3339).
        #[arg(long)]
        to: String,
        /// The overlap policy for these times (default: the schedule's).
        #[arg(long)]
        overlap: Option<OverlapPolicy>,
    },
    /// Delete a schedule; the workflows it started run on.
    Delete {
        /// The schedule id.
        schedule_id: String,
    },
}

/// A schedule as flags: when it fires, what it starts, how it behaves.
#[derive(Args)]
pub(crate) struct Definition {
    /// The workflow type each firing starts.
    #[arg(long = "type")]
    workflow_type: String,
    /// Its input, as JSON text.
    #[arg(long, default_value = "null")]
    input: String,
    /// The orchestrator task queue.
    #[arg(long, default_value = "default")]
    queue: String,
    /// The started runs' priority, 1 (lowest) to 9 (highest).
    #[arg(long, default_value_t = 5)]
    priority: i64,
    /// The started runs' fairness key.
    #[arg(long)]
    fairness_key: Option<String>,
    /// A cron expression (5 fields, or 6 with seconds first); repeat for several.
    #[arg(long)]
    cron: Vec<String>,
    /// The zone cron expressions are read in (IANA name).
    #[arg(long, default_value = "UTC")]
    time_zone: String,
    /// A fixed interval (`90s`, `15m`, `1h`), with `--offset` into each; repeat for several.
    #[arg(long, value_parser = humantime::parse_duration)]
    every: Vec<Duration>,
    /// Where in each `--every` interval it fires (one per interval, in order; default 0).
    #[arg(long, value_parser = humantime::parse_duration)]
    offset: Vec<Duration>,
    /// The most a firing is delayed past its time (a stable draw per firing).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    jitter: Duration,
    /// No firing before this time (RFC 3339).
    #[arg(long)]
    start: Option<String>,
    /// No firing after this time (RFC 3339).
    #[arg(long)]
    end: Option<String>,
    /// A range that does not fire, `FROM..UNTIL` (RFC 3339); repeat for several.
    #[arg(long)]
    exclude: Vec<String>,
    /// What a firing does while the last workflow is open: skip, buffer_one, buffer_all,
    /// cancel_other, terminate_other, allow_all.
    #[arg(long, default_value = "skip")]
    overlap: OverlapPolicy,
    /// After downtime, times at most this old still fire.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1day")]
    catchup_window: Duration,
    #[command(flatten)]
    terms: crate::terms::RunTerms,
}

fn time(flag: &str, text: &str) -> anyhow::Result<Timestamp> {
    Timestamp::parse_rfc3339(text.trim())
        .with_context(|| format!("{flag} {text:?} is not an RFC 3339 time"))
}

impl Definition {
    fn schedule(self, client: &Client) -> anyhow::Result<Schedule> {
        let mut spec = ScheduleSpec {
            crons: self
                .cron
                .iter()
                .map(|c| CronSpec::parse(c))
                .collect::<Result<_, _>>()?,
            time_zone: TimeZone::named(&self.time_zone)?,
            jitter: self.jitter,
            start_at: self
                .start
                .as_deref()
                .map(|t| time("--start", t))
                .transpose()?,
            end_at: self.end.as_deref().map(|t| time("--end", t)).transpose()?,
            ..ScheduleSpec::default()
        };
        anyhow::ensure!(
            self.offset.len() <= self.every.len(),
            "--offset is given more times than --every"
        );
        for (i, every) in self.every.iter().enumerate() {
            let offset = self.offset.get(i).copied().unwrap_or_default();
            spec.intervals.push(IntervalSpec::new(*every, offset)?);
        }
        for range in &self.exclude {
            let (from, until) = range
                .split_once("..")
                .with_context(|| format!("--exclude {range:?} is not FROM..UNTIL"))?;
            spec.exclude.push(TimeRange::new(
                time("--exclude", from)?,
                time("--exclude", until)?,
            )?);
        }
        let options = self.terms.apply(StartOptions {
            task_queue: TaskQueue::new(&self.queue)?,
            priority: Priority::new(self.priority)?,
            fairness_key: self.fairness_key,
            ..StartOptions::default()
        });
        let action = client.schedule_action_json(&self.workflow_type, &self.input, &options)?;
        Ok(Schedule::new(spec, action)
            .overlap(self.overlap)
            .catchup_window(self.catchup_window))
    }
}

/// Runs `reprise schedule ...`.
pub(crate) async fn run(client: &Client, command: ScheduleCommand) -> anyhow::Result<()> {
    match command {
        ScheduleCommand::Create {
            schedule_id,
            definition,
        } => {
            let schedule = definition.schedule(client)?;
            client.create_schedule(&schedule_id, &schedule).await?;
            println!("created schedule {schedule_id}");
        }
        ScheduleCommand::Update {
            schedule_id,
            definition,
        } => {
            let schedule = definition.schedule(client)?;
            client.update_schedule(&schedule_id, &schedule).await?;
            println!("updated schedule {schedule_id}");
        }
        ScheduleCommand::Describe { schedule_id, json } => {
            let d = client.describe_schedule(&schedule_id).await?;
            if json {
                println!("{}", description_json(&d));
            } else {
                print!("{}", description_text(&d));
            }
        }
        ScheduleCommand::List { after, limit, json } => {
            let schedules = client.list_schedules(after.as_deref(), limit).await?;
            if json {
                let all: Vec<Value> = schedules.iter().map(description_json).collect();
                println!("{}", Value::Array(all));
                return Ok(());
            }
            for d in schedules {
                let next = d
                    .upcoming
                    .first()
                    .map_or_else(|| "-".to_string(), ToString::to_string);
                let state = if d.paused { "paused" } else { "active" };
                println!(
                    "{}  {}  {state}  next {next}  started {}",
                    d.schedule_id, d.workflow_type, d.counts.started
                );
            }
        }
        ScheduleCommand::Pause { schedule_id, note } => {
            client.pause_schedule(&schedule_id, &note).await?;
            println!("paused schedule {schedule_id}");
        }
        ScheduleCommand::Resume { schedule_id, note } => {
            client.resume_schedule(&schedule_id, &note).await?;
            println!("resumed schedule {schedule_id}");
        }
        ScheduleCommand::Trigger { schedule_id } => {
            match client.trigger_schedule(&schedule_id).await? {
                TriggerOutcome::Started {
                    workflow_id,
                    run_id,
                } => println!("started {workflow_id} as run {run_id}"),
                TriggerOutcome::Buffered => {
                    println!("buffered: it starts when the open workflow closes")
                }
                TriggerOutcome::Skipped => {
                    println!("skipped: the last workflow is open and the policy skips")
                }
                TriggerOutcome::AlreadyStarted { workflow_id } => {
                    println!("{workflow_id} was started already")
                }
            }
        }
        ScheduleCommand::Backfill {
            schedule_id,
            from,
            to,
            overlap,
        } => {
            let report = client
                .backfill_schedule(
                    &schedule_id,
                    time("--from", &from)?,
                    time("--to", &to)?,
                    overlap,
                )
                .await?;
            println!(
                "{} times: {} started, {} started before, {} buffered, {} skipped",
                report.times,
                report.started,
                report.already_started,
                report.buffered,
                report.skipped
            );
        }
        ScheduleCommand::Delete { schedule_id } => {
            client.delete_schedule(&schedule_id).await?;
            println!("deleted schedule {schedule_id}");
        }
    }
    Ok(())
}

fn description_json(d: &ScheduleDescription) -> Value {
    json!({
        "schedule_id": d.schedule_id.as_str(),
        "workflow_type": d.workflow_type.as_str(),
        "task_queue": d.task_queue.as_str(),
        "run_timeout_ms": d.run_timeout.map(|t| t.as_millis() as u64),
        "execution_timeout_ms": d.execution_timeout.map(|t| t.as_millis() as u64),
        "retry": d.retry,
        "spec": d.spec,
        "policies": d.policies,
        "paused": d.paused,
        "note": d.note,
        "upcoming": d.upcoming.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "recent": d.recent.iter().map(|a| json!({
            "scheduled_at": a.firing.scheduled_at.to_string(),
            "origin": a.firing.origin,
            "started_at": a.started_at.to_string(),
            "workflow_id": a.workflow_id.as_str(),
            "run_id": a.run_id.to_string(),
        })).collect::<Vec<_>>(),
        "started": d.counts.started,
        "skipped": d.counts.skipped,
        "missed": d.counts.missed,
        "buffered": d.buffered,
        "watched": d.watched.as_ref().map(|w| w.as_str()),
        "created_at": d.created_at.to_string(),
        "updated_at": d.updated_at.to_string(),
    })
}

fn description_text(d: &ScheduleDescription) -> String {
    let mut out = format!(
        "schedule {}: starts {} on queue {}\n",
        d.schedule_id, d.workflow_type, d.task_queue
    );
    let crons: Vec<&str> = d.spec.crons.iter().map(CronSpec::as_str).collect();
    if !crons.is_empty() {
        out += &format!("  cron: {} ({})\n", crons.join(" | "), d.spec.time_zone);
    }
    for interval in &d.spec.intervals {
        out += &format!(
            "  every {} at offset {}\n",
            humantime::format_duration(interval.every()),
            humantime::format_duration(interval.offset())
        );
    }
    for (what, timeout) in [
        ("run timeout", d.run_timeout),
        ("execution timeout", d.execution_timeout),
    ] {
        if let Some(timeout) = timeout {
            out += &format!("  {what}: {}\n", humantime::format_duration(timeout));
        }
    }
    if let Some(retry) = &d.retry {
        let attempts = retry
            .max_attempts
            .map_or("unlimited".to_string(), |n| n.to_string());
        out += &format!("  retries: {attempts} attempts\n");
    }
    out += &format!(
        "  overlap: {}, catch-up window: {}\n",
        d.policies.overlap,
        humantime::format_duration(d.policies.catchup_window)
    );
    match (&d.paused, &d.note) {
        (true, Some(note)) => out += &format!("  PAUSED: {note}\n"),
        (true, None) => out += "  PAUSED\n",
        (false, _) => {}
    }
    out += &format!(
        "  started {}, skipped {}, missed {}, buffered {}\n",
        d.counts.started, d.counts.skipped, d.counts.missed, d.buffered
    );
    out += "  next:\n";
    for t in &d.upcoming {
        out += &format!("    {t}\n");
    }
    out += "  recent:\n";
    for a in &d.recent {
        out += &format!(
            "    {}  {}  run {}\n",
            a.firing.scheduled_at, a.workflow_id, a.run_id
        );
    }
    out
}

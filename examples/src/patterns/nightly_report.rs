//! **A scheduled report.** A cron schedule starts the nightly report at 02:00 Berlin time.
//! Each firing is a workflow with its own id (`<schedule id>-<time>`), so it starts once
//! however many engines run. The report covers the night of the time it was *scheduled
//! for*, read from that id, not the time it ran: a firing caught up after an outage,
//! backfilled for last week, retried or reset, reports on its own night.
//!
//! Catch-up: if no engine runs at 02:00 (a deploy, the database away), the firing is not
//! lost. When an engine is back, the times missed within the schedule's catch-up window (6
//! hours here) fire late; older ones are counted as missed and can be backfilled.
//!
//! Run it: `cargo run -p reprise-examples -- nightly-report`. The guide: `docs/schedules.md`.

use std::time::Duration;

use reprise_engine::schedule::firing_time_of;
use reprise_engine::{Client, OverlapPolicy, Schedule, ScheduleSpec, StartOptions};
use reprise_history::Timestamp;
use reprise_sdk::{ActivityContext, ActivityDef, ActivityError, RegistryBuilder};
use reprise_sdk::{WorkflowContext, WorkflowDef, WorkflowError};
use serde::{Deserialize, Serialize};

/// The nightly report for an audience (`"sales"`); returns what was sent.
pub const NIGHTLY_REPORT: WorkflowDef<String, String> = WorkflowDef::new("nightly-report");
/// The day's figures (orders, revenue) from the warehouse.
pub const GATHER_FIGURES: ActivityDef<String, Figures> = ActivityDef::new("gather-figures");
/// Sends the report; returns a line saying what went where.
pub const SEND_REPORT: ActivityDef<Report, String> = ActivityDef::new("send-report");

/// The schedule's times: 02:00 every night, Berlin time (the cron is read in the zone, so
/// the run stays at 02:00 across daylight-saving changes).
pub const CRON: &str = "0 2 * * *";
/// The zone the cron is read in.
pub const TIME_ZONE: &str = "Europe/Berlin";
/// How late a missed firing may still start: a report at 07:00 is still useful; one from
/// yesterday is better backfilled on purpose.
pub const CATCHUP_WINDOW: Duration = Duration::from_secs(6 * 3600);

/// One day's figures.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Figures {
    /// Orders placed.
    pub orders: u32,
    /// Revenue, in cents.
    pub revenue_cents: u64,
}

/// A report to send.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    /// Who it is for.
    pub audience: String,
    /// The day it covers, `YYYY-MM-DD`.
    pub day: String,
    /// Its figures.
    pub figures: Figures,
}

async fn nightly_report(ctx: WorkflowContext, audience: String) -> Result<String, WorkflowError> {
    let day = day_reported_on(&ctx);
    let figures = ctx.activity(GATHER_FIGURES, &day).await?;
    let report = Report {
        audience,
        day,
        figures,
    };
    Ok(ctx.activity(SEND_REPORT, &report).await?)
}

/// The day before the time the firing was for (a run started by hand: before its start).
/// Read from the workflow id, which every run of the firing shares: `ctx.origin()` names the
/// schedule only on the first run, a retried or reset one says `Retried` or `Reset`. At 02:00
/// Berlin time the firing's UTC date is Berlin's date too; a zone east of UTC by more than
/// two hours would convert the time into its zone first.
fn day_reported_on(ctx: &WorkflowContext) -> String {
    let fired_for = firing_time_of(&ctx.workflow_id()).unwrap_or_else(|| ctx.now());
    const DAY_MICROS: i64 = 86_400_000_000;
    let day_before = Timestamp::from_unix_micros(fired_for.as_unix_micros() - DAY_MICROS);
    day_before
        .to_rfc3339()
        .and_then(|text| text.get(..10).map(str::to_string))
        .unwrap_or_else(|| "unknown day".to_string())
}

async fn gather_figures(_: ActivityContext, day: String) -> Result<Figures, ActivityError> {
    // A query against the warehouse; here, figures derived from the date.
    let seed = day.bytes().map(u32::from).sum::<u32>();
    Ok(Figures {
        orders: 100 + seed % 50,
        revenue_cents: u64::from(seed) * 1_234,
    })
}

async fn send_report(_: ActivityContext, report: Report) -> Result<String, ActivityError> {
    Ok(format!(
        "sent {} the report for {}: {} orders, {}.{:02} EUR",
        report.audience,
        report.day,
        report.figures.orders,
        report.figures.revenue_cents / 100,
        report.figures.revenue_cents % 100
    ))
}

/// Registers the report workflow and its activities.
pub fn register(builder: RegistryBuilder) -> RegistryBuilder {
    builder
        .workflow(NIGHTLY_REPORT, nightly_report)
        .activity(GATHER_FIGURES, gather_figures)
        .activity(SEND_REPORT, send_report)
}

/// The nightly schedule: [`CRON`] in [`TIME_ZONE`], one report at a time (a firing while the
/// last report still runs is skipped), catching up [`CATCHUP_WINDOW`].
pub fn nightly_schedule(client: &Client, audience: &str) -> anyhow::Result<Schedule> {
    let spec = ScheduleSpec::cron(CRON)?.in_time_zone(TIME_ZONE)?;
    let action = client.schedule_action(
        NIGHTLY_REPORT,
        &audience.to_string(),
        &StartOptions::default(),
    )?;
    Ok(Schedule::new(spec, action)
        .overlap(OverlapPolicy::Skip)
        .catchup_window(CATCHUP_WINDOW))
}

// ---- The demo: what `cargo run -p reprise-examples -- nightly-report` does. ----

/// Creates the schedule, fires it once now, backfills the last three nights, and deletes it.
/// Returns what each report sent: the triggered one first, then the backfilled ones.
pub async fn demo(demo: &super::demo::Demo) -> anyhow::Result<Vec<String>> {
    let client = demo.client();
    let id = format!("nightly-sales-{}", super::demo::unique_suffix());
    client
        .create_schedule(&id, &nightly_schedule(client, "sales")?)
        .await?;
    println!("created schedule {id}; from a shell:");
    println!(
        "  reprise schedule create {id} --type nightly-report --input '\"sales\"' \\\n    \
         --cron '{CRON}' --time-zone {TIME_ZONE} --overlap skip --catchup-window 6h"
    );
    let described = client.describe_schedule(&id).await?;
    let next: Vec<String> = described
        .upcoming
        .iter()
        .take(3)
        .filter_map(|t| t.to_rfc3339())
        .collect();
    println!("  next firings (UTC): {}", next.join(", "));

    println!("\nnot waiting for 02:00: reprise schedule trigger {id}");
    let mut sent = Vec::new();
    let mut triggered = None;
    match client.trigger_schedule(&id).await? {
        reprise_engine::TriggerOutcome::Started { workflow_id, .. } => {
            let line = report_of(client, &workflow_id).await?;
            println!("  {workflow_id}: {line}");
            sent.push(line);
            triggered = Some(workflow_id);
        }
        other => println!("  {other:?}"),
    }

    let now = Timestamp::from_system_time(std::time::SystemTime::now());
    let three_nights_ago = Timestamp::from_unix_micros(now.as_unix_micros() - 3 * 86_400_000_000);
    println!(
        "\nthe engines were down for three nights, longer than the 6 h catch-up window, so those \
         firings were counted as missed. Backfill them:"
    );
    println!(
        "  reprise schedule backfill {id} --from {} --to {} --overlap allow_all",
        three_nights_ago.to_rfc3339().unwrap_or_default(),
        now.to_rfc3339().unwrap_or_default()
    );
    let report = client
        .backfill_schedule(&id, three_nights_ago, now, Some(OverlapPolicy::AllowAll))
        .await?;
    println!("  {} times, {} started", report.times, report.started);
    let described = client.describe_schedule(&id).await?;
    let mut backfilled: Vec<_> = described
        .recent
        .into_iter()
        .map(|recent| recent.workflow_id)
        .filter(|workflow_id| Some(workflow_id) != triggered.as_ref())
        .collect();
    backfilled.sort();
    for workflow_id in backfilled {
        let line = report_of(client, &workflow_id).await?;
        println!("  {workflow_id}: {line}");
        sent.push(line);
    }
    println!("  each report covers the night its firing was for, not the night it ran");

    client.delete_schedule(&id).await?;
    println!("\ndeleted {id} (reprise schedule delete {id}); its runs stay in history");
    Ok(sent)
}

/// What the report run of `workflow_id` sent, once it has.
async fn report_of(
    client: &Client,
    workflow_id: &reprise_history::WorkflowId,
) -> anyhow::Result<String> {
    let handle = client.handle(NIGHTLY_REPORT, workflow_id.as_str()).await?;
    Ok(handle.result().await?)
}

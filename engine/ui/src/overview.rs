//! Pages across runs: workflow types (open runs, parked ones, and which patches open runs
//! still need), queues (backlog, oldest due, workers) with their limits, and schedules.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::html;

use reprise_engine::{PatchUsage, TypeUsage};

use crate::Ui;
use crate::layout::{PageResult, page, render, runs_link, span, time};

/// Schedules listed.
const SCHEDULES_SHOWN: usize = 200;

/// `GET /types`.
pub(crate) async fn types_page(State(ui): State<Ui>) -> Response {
    render(&ui, types(&ui).await)
}

/// Open runs per workflow type, each with its patch markers' usage (the page and the API).
pub(crate) async fn types_with_patches(
    client: &reprise_engine::Client,
) -> reprise_engine::Result<Vec<(TypeUsage, Vec<PatchUsage>)>> {
    let mut out = Vec::new();
    for t in client.open_runs_by_type().await? {
        let patches = client.patch_usage(t.workflow_type.as_str()).await?;
        out.push((t, patches));
    }
    Ok(out)
}

async fn types(ui: &Ui) -> PageResult {
    let usage = types_with_patches(ui.reader()).await?;
    let body = html! {
        h1 { "Workflow types" }
        p.muted { "Open runs per type, and per patch marker how many open runs recorded it: a patch's old branch can go once no open run lacks its marker." }
        @if usage.is_empty() { p.empty { "No open runs." } }
        @for (t, patches) in &usage {
            section.type-usage {
                h2 { a href=(runs_link(ui, &[("type", t.workflow_type.as_str()), ("status", "running")])) { (t.workflow_type.as_str()) } }
                p { (t.open_runs) " open" @if t.parked > 0 { ", " a href=(runs_link(ui, &[("type", t.workflow_type.as_str()), ("parked", "on")])) { (t.parked) " parked" } } }
                @if !patches.is_empty() {
                    table {
                        thead { tr { th { "Patch" } th { "Open runs with its marker" } th { "Open runs without" } th { "Old branch" } } }
                        tbody { @for p in patches {
                            tr {
                                td { code { (p.patch_id.as_str()) } }
                                td { (p.open_runs_with_marker) }
                                td { (p.open_runs_without_marker) }
                                td { @if p.open_runs_without_marker == 0 { "no open run needs it: it can go" } @else { "still needed" } }
                            }
                        } }
                    }
                }
            }
        }
    };
    Ok(page(ui, None, "Workflow types", body).into_response())
}

/// `GET /queues`.
pub(crate) async fn queues_page(State(ui): State<Ui>) -> Response {
    render(&ui, queues(&ui).await)
}

async fn queues(ui: &Ui) -> PageResult {
    let client = ui.reader();
    let (backlogs, limits, now) = tokio::try_join!(
        client.queue_backlogs(),
        client.limits(),
        client.store().now()
    )?;
    let body = html! {
        h1 { "Queues" }
        @if backlogs.is_empty() { p.empty { "No activity is waiting and no worker has announced itself." } }
        @else {
            table #queues {
                thead { tr { th { "Task queue" } th { "Due" } th { "Oldest due for" } th { "Running" } th { "Backing off" } th { "Workers" } } }
                tbody { @for q in &backlogs {
                    tr {
                        td { (q.task_queue) }
                        td { (q.ready) }
                        td { @if let Some(oldest) = q.oldest_ready_at { (span(now.as_unix_micros() - oldest.as_unix_micros())) } }
                        td { (q.running) }
                        td { (q.backing_off) }
                        td { @if q.workers == 0 && q.ready > 0 { span.error { "none" } } @else { (q.workers) } }
                    }
                } }
            }
        }
        h2 { "Limits" }
        @if limits.is_empty() { p.empty { "No limits: set one with `reprise limits set`." } }
        @else {
            table #limits {
                thead { tr { th { "Scope" } th { "Concurrency" } th { "Rate" } th { "Running" } th { "Waiting" } th { "Tokens" } } }
                tbody { @for l in &limits {
                    tr {
                        td { (l.scope.to_string()) }
                        td { @if let Some(max) = l.limit.max_concurrent { (l.running) " / " (max) } @else { "—" } }
                        td { @if let Some(rate) = l.limit.rate { (format!("{}/s, burst {}", rate.per_second, rate.burst)) } @else { "—" } }
                        td { (l.running) }
                        td { (l.waiting) }
                        td { @if let Some(t) = l.tokens { (format!("{t:.1}")) } }
                    }
                } }
            }
        }
    };
    Ok(page(ui, None, "Queues & limits", body).into_response())
}

/// `GET /schedules`.
pub(crate) async fn schedules_page(State(ui): State<Ui>) -> Response {
    render(&ui, schedules(&ui).await)
}

async fn schedules(ui: &Ui) -> PageResult {
    let list = ui.reader().list_schedules(None, SCHEDULES_SHOWN).await?;
    let body = html! {
        h1 { "Schedules" }
        @if list.is_empty() { p.empty { "No schedules: create one with `reprise schedule create`." } }
        @else {
            table #schedules {
                thead { tr { th { "Schedule" } th { "Starts" } th { "When" } th { "Next" } th { "Last started" } th { "State" } } }
                tbody { @for s in &list {
                    tr {
                        td { code { (s.schedule_id.as_str()) } }
                        td { a href=(runs_link(ui, &[("type", s.workflow_type.as_str())])) { (s.workflow_type.as_str()) } }
                        td {
                            @for cron in &s.spec.crons { code { (cron.to_string()) } " " }
                            @for interval in &s.spec.intervals { "every " (format!("{:?}", interval.every())) " " }
                            span.muted { (s.spec.time_zone.to_string()) }
                        }
                        td { @if let Some(next) = s.upcoming.first() { (time(*next)) } }
                        td { @if let Some(recent) = s.recent.first() { a href=(ui.href(&format!("/runs/{}", recent.run_id))) { (recent.workflow_id.as_str()) } } }
                        td { @if s.paused { span.badge.status-parked { "paused" } } @else { "active" } }
                    }
                } }
            }
        }
    };
    Ok(page(ui, None, "Schedules", body).into_response())
}

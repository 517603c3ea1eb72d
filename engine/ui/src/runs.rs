//! The runs page: a filter, counts per status, one keyset page of runs, live refresh, and the
//! form that starts a bulk action over the filter.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use reprise_engine::{RunSummary, StatusCount};
use reprise_history::RunState;
use serde::Deserialize;

use crate::Ui;
use crate::access::Csrf;
use crate::filters::FilterQuery;
use crate::layout::{PageError, PageResult, page, render, status_badge, time};

/// Runs per page.
pub(crate) const PAGE_SIZE: i64 = 50;
/// Counts per status stop here (an index scan each, bounded), shown as "10,000+".
pub(crate) const COUNT_CAP: u64 = 10_000;

/// The runs page's query: the filter, and whether only the live part is wanted.
#[derive(Deserialize)]
pub(crate) struct RunsQuery {
    #[serde(flatten)]
    filter: FilterQuery,
    /// `1`: only the counts and the table, for the page's live refresh.
    #[serde(default)]
    fragment: String,
}

/// A count as people read it.
pub(crate) fn count_text(count: &StatusCount) -> String {
    if count.more {
        format!("{}+", count.count)
    } else {
        count.count.to_string()
    }
}

/// `GET /runs`.
pub(crate) async fn runs_page(
    State(ui): State<Ui>,
    axum::Extension(csrf): axum::Extension<Csrf>,
    Query(query): Query<RunsQuery>,
) -> Response {
    render(&ui, runs(&ui, &csrf, &query).await)
}

async fn runs(ui: &Ui, csrf: &Csrf, query: &RunsQuery) -> PageResult {
    let filter = query.filter.filter().map_err(PageError::BadRequest)?;
    let cursor = query.filter.cursor().map_err(PageError::BadRequest)?;
    let client = ui.reader();
    let (page_of_runs, counts) = tokio::try_join!(
        client.list(&filter, cursor, PAGE_SIZE),
        client.count_by_status(&filter, COUNT_CAP)
    )?;
    let next = page_of_runs.next.map(|c| c.token());
    let live = html! {
        (counts_bar(ui, &query.filter, &counts))
        (runs_table(ui, &page_of_runs.runs, &query.filter))
        nav.pager {
            @if cursor.is_some() { a href=(format!("{}?{}", ui.href("/runs"), query.filter.query_string())) { "« newest" } " " }
            @if let Some(next) = &next {
                a.next href=(format!("{}?{}&after={next}", ui.href("/runs"), query.filter.query_string())) { "older »" }
            }
        }
    };
    if query.fragment == "1" {
        return Ok(live.into_response());
    }
    let body = html! {
        h1 { "Runs" }
        (filter_form(ui, &query.filter))
        div #runs-live data-live=(format!("{}?{}&fragment=1{}", ui.href("/runs"), query.filter.query_string(),
            cursor.map(|c| format!("&after={}", c.token())).unwrap_or_default())) { (live) }
        @if ui.writer().is_some() { (bulk_form(ui, csrf, &query.filter)) }
    };
    Ok(page(ui, Some(csrf), "Runs", body).into_response())
}

fn filter_form(ui: &Ui, q: &FilterQuery) -> Markup {
    html! {
        form.filters method="get" action=(ui.href("/runs")) {
            label { "Status "
                select name="status" {
                    option value="" selected[q.status.is_empty()] { "any" }
                    @for s in RunState::ALL { option value=(s.as_str()) selected[q.status == s.as_str()] { (s.as_str()) } }
                }
            }
            label { "Type " input name="type" value=(q.workflow_type) placeholder="any"; }
            label { "Workflow id starts with " input name="id" value=(q.id) placeholder="any"; }
            label { "Task queue " input name="queue" value=(q.queue) placeholder="any"; }
            label { "Created from " input name="from" value=(q.from) placeholder="2026-12-01T09:30"; }
            label { "to " input name="to" value=(q.to) placeholder="UTC"; }
            label.check { input type="checkbox" name="parked" checked[!q.parked.is_empty()]; " parked only" }
            button type="submit" { "Filter" }
            @if !q.is_empty() { " " a href=(ui.href("/runs")) { "clear" } }
            label.check.live { input type="checkbox" #live-toggle checked; " live" }
        }
    }
}

fn counts_bar(ui: &Ui, q: &FilterQuery, counts: &[StatusCount]) -> Markup {
    html! {
        ul.counts {
            @for count in counts {
                @let link = FilterQuery { status: count.status.as_str().to_string(), after: String::new(), ..q.clone() };
                li { a href=(format!("{}?{}", ui.href("/runs"), link.query_string())) data-status=(count.status.as_str()) {
                    (status_badge(count.status, false)) " " span.count { (count_text(count)) }
                } }
            }
        }
    }
}

fn runs_table(ui: &Ui, runs: &[RunSummary], q: &FilterQuery) -> Markup {
    if runs.is_empty() {
        return html! {
            p.empty #no-runs {
                @if q.is_empty() { "No runs yet: start a workflow and it appears here." }
                @else { "No runs match this filter. " a href=(ui.href("/runs")) { "Show all runs" } }
            }
        };
    }
    html! {
        table.runs #runs {
            thead { tr { th { "Workflow id" } th { "Type" } th { "Status" } th { "Queue" } th { "Created" } th { "Closed / last event" } } }
            tbody {
                @for run in runs {
                    tr data-run=(run.run_id.to_string()) {
                        td { a href=(ui.href(&format!("/runs/{}", run.run_id))) { (run.workflow_id.as_str()) } }
                        td { (run.workflow_type.as_str()) }
                        td { (status_badge(run.status, run.parked_reason.is_some())) }
                        td { (run.task_queue.as_str()) }
                        td { (time(run.created_at)) }
                        td { (time(run.closed_at.unwrap_or(run.last_event_at))) }
                    }
                }
            }
        }
    }
}

fn bulk_form(ui: &Ui, csrf: &Csrf, q: &FilterQuery) -> Markup {
    html! {
        details.bulk {
            summary { "Act on every open run this filter matches…" }
            form #bulk-form method="post" action=(ui.href("/batches/new")) {
                input type="hidden" name="csrf" value=(csrf.0);
                (q.hidden_fields())
                label { "Action "
                    select name="action" {
                        option value="cancel" { "cancel" }
                        option value="terminate" { "terminate" }
                        option value="retry_parked" { "retry parked" }
                        option value="signal" { "signal (broadcast)" }
                    }
                }
                label { "Reason " input name="reason" value="bulk action from the web UI"; }
                label { "Signal name " input name="signal_name" placeholder="for a signal"; }
                label { "Payload (JSON) " textarea name="payload" rows="2" { "null" } }
                button type="submit" { "Count and review…" }
            }
        }
    }
}

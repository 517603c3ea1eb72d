//! One run: its state, input and outcome, pending activities, relations, the parked report,
//! a timeline and the event list of one page of its history, and the actions an open (or,
//! for a reset, closed) run takes. A long history is read a page at a time.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use reprise_engine::{Description, RunOutcome, RunRelations};
use reprise_history::timeline::describe_event;
use reprise_history::{DataConverter, Event, RunId, Seq};
use serde::Deserialize;

use crate::Ui;
use crate::access::Csrf;
use crate::layout::{
    PageError, PageResult, failure, page, payload, render, runs_link, span, status_badge, time,
};
use crate::parked;

/// Events per page of a history.
pub(crate) const EVENTS_PAGE: u32 = 200;
/// Children listed on a run's page.
const CHILDREN_SHOWN: u32 = 100;

/// The run page's query.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RunQuery {
    /// Show the events after this seq (a page of [`EVENTS_PAGE`]).
    #[serde(default)]
    after: Option<u64>,
    /// What the last action did, to say so.
    #[serde(default)]
    done: Option<String>,
}

/// What an action left to show on the page it renders again: an error beside its form, or
/// a query's answer.
#[derive(Debug, Default)]
pub(crate) struct Feedback {
    /// The form (`signal`, `query`, `update`, `cancel`, …) and what to say beside it.
    pub(crate) form_error: Option<(&'static str, String)>,
    /// The text the user typed, kept so they can fix it.
    pub(crate) kept: Option<(&'static str, String, String)>,
    /// A notice at the top (what an action did).
    pub(crate) notice: Option<String>,
    /// A query's or update's answer: (title, payload as stored).
    pub(crate) answer: Option<(String, reprise_history::Payload)>,
}

pub(crate) fn parse_run_id(text: &str) -> Result<RunId, PageError> {
    uuid::Uuid::parse_str(text)
        .map(RunId::from_uuid)
        .map_err(|_| PageError::NotFound(format!("{text:?} is not a run id")))
}

/// `GET /runs/{run_id}`.
pub(crate) async fn run_page(
    State(ui): State<Ui>,
    axum::Extension(csrf): axum::Extension<Csrf>,
    Path(run_id): Path<String>,
    Query(query): Query<RunQuery>,
) -> Response {
    let feedback = Feedback {
        notice: query.done.clone(),
        ..Feedback::default()
    };
    let result = match parse_run_id(&run_id) {
        Ok(run_id) => run_view(&ui, &csrf, run_id, query.after, feedback).await,
        Err(e) => Err(e),
    };
    render(&ui, result)
}

/// `GET /workflows/{workflow_id}`: the workflow's latest run.
pub(crate) async fn latest_run_page(
    State(ui): State<Ui>,
    Path(workflow_id): Path<String>,
) -> Response {
    let result = match ui.reader().describe(&workflow_id).await {
        Ok(d) => Ok(Redirect::to(&ui.href(&format!("/runs/{}", d.run_id))).into_response()),
        Err(e) => Err(PageError::from(e)),
    };
    render(&ui, result)
}

/// The run page, with what an action left to show.
pub(crate) async fn run_view(
    ui: &Ui,
    csrf: &Csrf,
    run_id: RunId,
    after: Option<u64>,
    feedback: Feedback,
) -> PageResult {
    let client = ui.reader();
    let run = client.describe_run(run_id).await?;
    // By default the last page: where a run is now is what people look for.
    let after = after.unwrap_or_else(|| run.head_seq.get().saturating_sub(u64::from(EVENTS_PAGE)));
    let (events, relations, latest, now) = tokio::try_join!(
        client.history_page(run_id, Seq::new(after), EVENTS_PAGE),
        client.relations(run_id, CHILDREN_SHOWN),
        client.latest_run_id(run.workflow_id.as_str()),
        client.store().now()
    )?;
    // Actions by workflow id act on its latest run: only its page offers them.
    let is_latest = latest == run_id;
    let report = match &run.parked_reason {
        Some(reason) => {
            Some(parked::report(ui, run_id, reason, run.parked_build.as_deref()).await?)
        }
        None => None,
    };
    let converter = client.converter();
    let body = html! {
        div.run data-watch=(ui.href(&format!("/api/runs/{run_id}/head"))) data-head=(run.head_seq.get()) data-status=(run.status.as_str()) {
            h1 { (run.workflow_id.as_str()) " " (status_badge(run.status, run.parked_reason.is_some())) }
            @if let Some(notice) = &feedback.notice { p.notice role="status" { (notice) } }
            (facts(ui, &run, &relations))
            @if let Some(report) = report { (report) }
            (outcome(converter, &run))
            @if !run.pending_activities.is_empty() { (pending(converter, &run, now)) }
            @if let Some((title, answer)) = &feedback.answer {
                section.answer #answer { h2 { (title) } (payload(converter, answer)) }
            }
            @if !is_latest {
                p.muted #not-latest { "A later run of this workflow exists; actions are on its page: "
                    a href=(ui.href(&format!("/runs/{latest}"))) { (latest.to_string()) } "." }
            } @else if ui.writer().is_some() {
                (crate::actions::panel(ui, csrf, &run, &feedback))
            }
            section {
                h2 { "Timeline" }
                (crate::timeline::svg(&events, now))
            }
            (event_list(ui, csrf, converter, &run, &events, after, is_latest))
        }
    };
    Ok(page(ui, Some(csrf), run.workflow_id.as_str(), body).into_response())
}

fn facts(ui: &Ui, run: &Description, relations: &RunRelations) -> Markup {
    let run_link =
        |id: RunId| html! { a href=(ui.href(&format!("/runs/{id}"))) { (id.to_string()) } };
    html! {
        dl.facts {
            dt { "Run" } dd { code { (run.run_id.to_string()) } }
            dt { "Type" } dd { a href=(runs_link(ui, &[("type", run.workflow_type.as_str())])) { (run.workflow_type.as_str()) } }
            dt { "Task queue" } dd { (run.task_queue.as_str()) }
            dt { "Started" } dd { (time(run.started_at)) }
            @match run.closed_at {
                Some(closed) => { dt { "Closed" } dd { (time(closed)) " (after " (span(closed.as_unix_micros() - run.started_at.as_unix_micros())) ")" } },
                None => { dt { "Last event" } dd { (time(run.last_event_at)) } },
            }
            dt { "Events" } dd { (run.head_seq.get()) }
            @if run.attempt > 1 { dt { "Attempt" } dd { (run.attempt) } }
            @if let Some(deadline) = run.deadline { dt { "Times out" } dd { (time(deadline)) } }
            @if let Some(parent) = run.parent_run_id { dt { "Parent" } dd { (run_link(parent)) } }
            @if let Some(previous) = run.previous_run_id { dt { "Continues" } dd { (run_link(previous)) } }
            @if let Some(next) = relations.next_run_id { dt { "Continued by" } dd { (run_link(next)) } }
            @if !relations.children.is_empty() {
                dt { "Children" }
                dd { ul.children { @for child in &relations.children {
                    li { a href=(ui.href(&format!("/runs/{}", child.run_id))) { (child.workflow_id.as_str()) } " " (status_badge(child.status, child.parked_reason.is_some())) }
                } } }
            }
        }
    }
}

fn outcome(converter: &DataConverter, run: &Description) -> Markup {
    html! {
        section.io {
            div { h2 { "Input" } (payload(converter, &run.input)) }
            @if let Some((status, at)) = &run.custom_status {
                div #custom-status { h2 { "Custom status" } (payload(converter, status)) p.muted { "set " (time(*at)) } }
            }
            @match &run.outcome {
                Some(RunOutcome::Completed { result }) => div #result { h2 { "Result" } (payload(converter, result)) },
                Some(RunOutcome::Failed { failure: f }) => div #result { h2 { "Failure" } (failure(converter, f)) },
                Some(RunOutcome::Cancelled { details }) => div #result { h2 { "Cancelled" }
                    @if let Some(d) = details { (payload(converter, d)) } },
                Some(RunOutcome::Terminated { reason }) => div #result { h2 { "Terminated" } p { (reason) } },
                Some(RunOutcome::ContinuedAsNew { .. }) => div #result { h2 { "Continued as new" } },
                Some(RunOutcome::TimedOut { timeout }) => div #result { h2 { "Timed out" } p { (format!("{timeout:?}")) } },
                Some(other) => div #result { h2 { "Outcome" } p { (format!("{other:?}")) } },
                None => {},
            }
        }
    }
}

fn pending(
    converter: &DataConverter,
    run: &Description,
    now: reprise_history::Timestamp,
) -> Markup {
    html! {
        section #pending {
            h2 { "Pending activities" }
            table {
                thead { tr { th { "Seq" } th { "Activity" } th { "Attempt" } th { "State" } th { "Last failure" } th { "Progress" } } }
                tbody { @for a in &run.pending_activities {
                    tr {
                        td { a href=(format!("#seq-{}", a.scheduled_seq)) { (a.scheduled_seq.get()) } }
                        td { (a.activity_type.as_str()) }
                        td { (a.attempt) }
                        td {
                            @if a.running {
                                "running on " (a.lease_owner.as_deref().unwrap_or("?"))
                                @if let Some(expires) = a.lease_expires_at { br; span.muted { "lease ends in " (span(expires.as_unix_micros() - now.as_unix_micros())) } }
                                @if let Some(beat) = a.last_heartbeat_at { br; span.muted { "heartbeat " (span(now.as_unix_micros() - beat.as_unix_micros())) " ago" } }
                            } @else if let Some(next) = a.next_attempt_at {
                                @if next > now { "next attempt in " (span(next.as_unix_micros() - now.as_unix_micros())) } @else { "waiting for a worker" }
                            }
                        }
                        td { @if let Some(f) = &a.last_failure { span.error { (f) } } }
                        td { @if let Some(p) = &a.progress { (payload(converter, p)) } }
                    }
                } }
            }
        }
    }
}

fn event_list(
    ui: &Ui,
    csrf: &Csrf,
    converter: &DataConverter,
    run: &Description,
    events: &[Event],
    after: u64,
    latest: bool,
) -> Markup {
    let head = run.head_seq.get();
    let page = u64::from(EVENTS_PAGE);
    let base = ui.href(&format!("/runs/{}", run.run_id));
    let can_reset = latest && ui.writer().is_some() && !run.status.is_open();
    html! {
        section #events {
            h2 { "Events " span.muted { (after + 1) "–" (after + events.len() as u64) " of " (head) } }
            nav.pager {
                @if after > 0 {
                    a href=(format!("{base}?after=0#events")) { "« first" } " "
                    a href=(format!("{base}?after={}#events", after.saturating_sub(page))) { "‹ earlier" } " "
                }
                @if after + (events.len() as u64) < head {
                    a href=(format!("{base}?after={}#events", after + page)) { "later ›" } " "
                    a href=(format!("{base}#events")) { "latest »" }
                }
            }
            table.events {
                thead { tr { th { "Seq" } th { "Recorded" } th { "Event" } th { "Details" } @if can_reset { th {} } } }
                tbody { @for event in events {
                    tr id=(format!("seq-{}", event.seq)) class=(format!("event {}", event.kind.name())) {
                        td { (event.seq.get()) }
                        td.time { (time(event.recorded_at)) }
                        td { (event.kind.name()) }
                        td.details { (describe_event(converter, &event.kind, 400)) }
                        @if can_reset {
                            td { form method="post" action=(format!("{base}/reset")) data-confirm=(format!("Reset {} to event {}? A new run keeps the history up to there and goes on live.", run.workflow_id, event.seq)) {
                                input type="hidden" name="csrf" value=(csrf.0);
                                input type="hidden" name="seq" value=(event.seq.get());
                                button.small type="submit" { "reset here" }
                            } }
                        }
                    }
                } }
            }
        }
    }
}

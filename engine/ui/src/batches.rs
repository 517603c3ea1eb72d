//! Bulk actions over a filter: count first and confirm, then run in chunks in the background
//! with progress; a batch this process is not running (it stopped, or another process ran
//! it and went away) can be resumed, and resuming is harmless (see the engine's
//! `store/batches.rs`).

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use reprise_engine::{BatchProgress, BulkAction, Client};
use serde::Deserialize;

use crate::Ui;
use crate::access::Csrf;
use crate::filters::FilterQuery;
use crate::layout::{PageError, PageResult, page, render, time};

/// Runs per transaction of a batch.
pub(crate) const CHUNK: u32 = 200;
/// Batches listed.
const BATCHES_SHOWN: u32 = 50;

/// The bulk form: the filter and the action.
#[derive(Deserialize)]
pub(crate) struct BulkForm {
    #[serde(flatten)]
    filter: FilterQuery,
    action: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    signal_name: String,
    #[serde(default)]
    payload: String,
}

/// The action a bulk form or command asks for by name (`cancel`, `terminate`,
/// `retry_parked`, `signal`), its signal's JSON encoded with `client`'s codecs.
pub fn bulk_action(
    client: &Client,
    action: &str,
    reason: &str,
    signal_name: &str,
    payload: &str,
) -> Result<BulkAction, String> {
    let reason = if reason.trim().is_empty() {
        "bulk action from the web UI".to_string()
    } else {
        reason.to_string()
    };
    match action {
        "cancel" => Ok(BulkAction::Cancel { reason }),
        "terminate" => Ok(BulkAction::Terminate { reason }),
        "retry_parked" => Ok(BulkAction::RetryParked),
        "signal" => {
            let text = if payload.trim().is_empty() {
                "null"
            } else {
                payload
            };
            client
                .signal_action_json(signal_name.trim(), text)
                .map_err(|e| format!("signal: {e}"))
        }
        other => Err(format!(
            "{other:?} is not a bulk action (cancel, terminate, retry_parked, signal)"
        )),
    }
}

fn writer(ui: &Ui) -> Result<&Client, PageError> {
    ui.writer()
        .ok_or_else(|| PageError::BadRequest("this UI is read-only".to_string()))
}

fn describe(action: &BulkAction) -> String {
    match action {
        BulkAction::Cancel { reason } => format!("ask to cancel (reason: {reason})"),
        BulkAction::Terminate { reason } => format!("terminate (reason: {reason})"),
        BulkAction::RetryParked => "retry if parked".to_string(),
        BulkAction::Signal { name, .. } => format!("send signal {name} (once per run)"),
        other => format!("{other:?}"),
    }
}

/// `POST /batches/new`: how many runs it would touch, and a button to start.
pub(crate) async fn confirm_batch(
    State(ui): State<Ui>,
    axum::Extension(csrf): axum::Extension<Csrf>,
    axum::Form(form): axum::Form<BulkForm>,
) -> Response {
    let result = async {
        let client = writer(&ui)?;
        let filter = form.filter.filter().map_err(PageError::BadRequest)?;
        let action = bulk_action(client, &form.action, &form.reason, &form.signal_name, &form.payload)
            .map_err(PageError::BadRequest)?;
        let count = ui.reader().count_for_batch(&filter, &action).await?;
        let body = html! {
            section.narrow #confirm-batch {
                h1 { "Confirm a bulk action" }
                p { "It would " strong { (describe(&action)) } " for " strong #batch-count { (count) } " open run(s) matching "
                    a href=(format!("{}?{}", ui.href("/runs"), form.filter.query_string())) { "this filter" } "." }
                @if count == 0 { p.empty { "Nothing matches: there is nothing to do." } }
                @else {
                    form method="post" action=(ui.href("/batches/start")) {
                        input type="hidden" name="csrf" value=(csrf.0);
                        (form.filter.hidden_fields())
                        input type="hidden" name="action" value=(form.action);
                        input type="hidden" name="reason" value=(form.reason);
                        input type="hidden" name="signal_name" value=(form.signal_name);
                        input type="hidden" name="payload" value=(form.payload);
                        button.danger type="submit" #start-batch { "Start: " (describe(&action)) " × " (count) }
                    }
                    p.muted { "Runs started from now on are not included. It runs in chunks of " (CHUNK) "; if it is interrupted, resume it from its page, and no run is acted on twice." }
                }
            }
        };
        Ok(page(&ui, Some(&csrf), "Confirm a bulk action", body).into_response())
    }
    .await;
    render(&ui, result)
}

/// Runs a batch in the background unless this process runs it already.
fn spawn_run(ui: &Ui, batch_id: uuid::Uuid) {
    let Some(client) = ui.writer().cloned() else {
        return;
    };
    {
        let mut running = ui
            .batches_running()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !running.insert(batch_id) {
            return;
        }
    }
    let ui = ui.clone();
    tokio::spawn(async move {
        if let Err(e) = client.run_batch(batch_id, CHUNK, |_| {}).await {
            tracing::warn!(%batch_id, error = %e, "a batch stopped; resume it from its page");
        }
        ui.batches_running()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&batch_id);
    });
}

/// `POST /batches/start`: records the batch and runs it in the background.
pub(crate) async fn start_batch(
    State(ui): State<Ui>,
    axum::Form(form): axum::Form<BulkForm>,
) -> Response {
    let result = async {
        let client = writer(&ui)?;
        let filter = form.filter.filter().map_err(PageError::BadRequest)?;
        let action = bulk_action(
            client,
            &form.action,
            &form.reason,
            &form.signal_name,
            &form.payload,
        )
        .map_err(PageError::BadRequest)?;
        let batch = client.create_batch(&filter, &action).await?;
        spawn_run(&ui, batch.batch_id);
        Ok(Redirect::to(&ui.href(&format!("/batches/{}", batch.batch_id))).into_response())
    }
    .await;
    render(&ui, result)
}

/// `POST /batches/{batch_id}/resume`.
pub(crate) async fn resume_batch(State(ui): State<Ui>, Path(batch_id): Path<String>) -> Response {
    let result = async {
        writer(&ui)?;
        let batch_id = parse_batch_id(&batch_id)?;
        ui.reader().batch(batch_id).await?;
        spawn_run(&ui, batch_id);
        Ok(Redirect::to(&ui.href(&format!("/batches/{batch_id}"))).into_response())
    }
    .await;
    render(&ui, result)
}

fn parse_batch_id(text: &str) -> Result<uuid::Uuid, PageError> {
    uuid::Uuid::parse_str(text)
        .map_err(|_| PageError::NotFound(format!("{text:?} is not a batch id")))
}

/// A batch's progress bar and counts.
pub(crate) fn progress(batch: &BatchProgress) -> Markup {
    let total = batch.matched.max(batch.handled()).max(1);
    let percent = (batch.handled() as f64 / total as f64 * 100.0).min(100.0);
    html! {
        div.progress {
            progress max="100" value=(format!("{percent:.0}")) {}
            span #batch-progress { (batch.handled()) " of " (batch.matched) " handled: " (batch.done) " done, " (batch.skipped) " skipped, " (batch.failed) " failed" }
            @if batch.finished_at.is_some() { " " span.badge.status-completed #batch-finished { "finished" } }
        }
        @if let Some(error) = &batch.last_error { p.error { "Last failure: " (error) } }
    }
}

/// `GET /batches/{batch_id}`.
pub(crate) async fn batch_page(
    State(ui): State<Ui>,
    axum::Extension(csrf): axum::Extension<Csrf>,
    Path(batch_id): Path<String>,
) -> Response {
    let result = async {
        let batch_id = parse_batch_id(&batch_id)?;
        let batch = ui.reader().batch(batch_id).await?;
        let running_here = ui.batches_running().lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains(&batch_id);
        let body = html! {
            section #batch data-refresh=(if batch.finished_at.is_none() { "1" } else { "" }) {
                h1 { "Batch " code { (batch_id.to_string()) } }
                p { strong { (describe(&batch.action)) } ", created " (time(batch.created_at)) }
                (progress(&batch))
                @if batch.finished_at.is_none() && !running_here && ui.writer().is_some() {
                    form method="post" action=(ui.href(&format!("/batches/{batch_id}/resume"))) {
                        input type="hidden" name="csrf" value=(csrf.0);
                        p { "Not running in this process (last moved " (time(batch.updated_at)) ")." }
                        button type="submit" #resume-batch { "Resume" }
                    }
                }
            }
        };
        Ok(page(&ui, Some(&csrf), "Batch", body).into_response())
    }
    .await;
    render(&ui, result)
}

/// `GET /batches`.
pub(crate) async fn batches_page(State(ui): State<Ui>) -> Response {
    render(&ui, batches_list(&ui).await)
}

async fn batches_list(ui: &Ui) -> PageResult {
    let batches = ui.reader().batches(BATCHES_SHOWN).await?;
    let body = html! {
        h1 { "Batches" }
        p.muted { "Bulk actions over a filter, started from the runs page or `reprise batch`." }
        @if batches.is_empty() { p.empty { "No batch yet." } }
        @else {
            table.runs {
                thead { tr { th { "Batch" } th { "Action" } th { "Created" } th { "Progress" } } }
                tbody { @for b in &batches {
                    tr {
                        td { a href=(ui.href(&format!("/batches/{}", b.batch_id))) { code { (b.batch_id.to_string()) } } }
                        td { (describe(&b.action)) }
                        td { (time(b.created_at)) }
                        td { (b.handled()) " / " (b.matched) @if b.finished_at.is_some() { " ✓" } }
                    }
                } }
            }
        }
    };
    Ok(page(ui, None, "Batches", body).into_response())
}

//! Actions on one run: signal, query, update, cancel, terminate, retry a parked run, reset.
//! Each form asks for confirmation in the browser (`data-confirm`) and carries the CSRF
//! token (checked in `access.rs`). A form with malformed JSON comes back with the parser's
//! message beside the field, and nothing is sent.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use reprise_engine::{Client, DEFAULT_QUERY_DEADLINE, Description};
use serde::Deserialize;

use crate::Ui;
use crate::access::Csrf;
use crate::layout::{PageError, PageResult, render};
use crate::run::{Feedback, parse_run_id, run_view};

/// A form that names something and carries JSON (signal, query, update).
#[derive(Deserialize)]
pub(crate) struct NamedJson {
    name: String,
    #[serde(default)]
    payload: String,
}

/// A form with a reason (cancel, terminate).
#[derive(Deserialize)]
pub(crate) struct Reason {
    #[serde(default)]
    reason: String,
}

/// The reset form.
#[derive(Deserialize)]
pub(crate) struct ResetForm {
    seq: u64,
}

/// The forms on the page of a workflow's latest run (the reset buttons live in the event
/// list).
pub(crate) fn panel(ui: &Ui, csrf: &Csrf, run: &Description, feedback: &Feedback) -> Markup {
    let base = ui.href(&format!("/runs/{}", run.run_id));
    let error_for = |form: &str| {
        feedback
            .form_error
            .as_ref()
            .filter(|(f, _)| *f == form)
            .map(|(_, e)| e.clone())
    };
    let kept = |form: &str| {
        feedback
            .kept
            .as_ref()
            .filter(|(f, _, _)| *f == form)
            .map(|(_, name, payload)| (name.clone(), payload.clone()))
            .unwrap_or_else(|| (String::new(), "null".to_string()))
    };
    let named = |form: &'static str, title: &str, verb: &str| {
        let (name, payload) = kept(form);
        html! {
            form.action id=(format!("{form}-form")) method="post" action=(format!("{base}/{form}"))
                data-confirm=(format!("{verb} {} ?", run.workflow_id)) {
                h3 { (title) }
                input type="hidden" name="csrf" value=(csrf.0);
                label { "Name " input name="name" required value=(name); }
                label { "JSON " textarea name="payload" rows="3" { (payload) } }
                @if let Some(error) = error_for(form) { p.error.field-error role="alert" { (error) } }
                button type="submit" { (title) }
            }
        }
    };
    let open = run.status.is_open();
    html! {
        section.actions #actions {
            h2 { "Actions" }
            div.action-grid {
                @if open {
                    (named("signal", "Signal", "Send this signal to"))
                    (named("update", "Update", "Send this update to"))
                }
                (named("query", "Query", "Ask this query of"))
                @if open {
                    form.action #cancel-form method="post" action=(format!("{base}/cancel")) data-confirm=(format!("Ask {} to cancel?", run.workflow_id)) {
                        h3 { "Cancel" }
                        input type="hidden" name="csrf" value=(csrf.0);
                        label { "Reason " input name="reason" value="cancelled from the web UI"; }
                        button type="submit" { "Request cancel" }
                    }
                    form.action #terminate-form method="post" action=(format!("{base}/terminate")) data-confirm=(format!("Terminate {} now? Nothing of it runs afterwards.", run.workflow_id)) {
                        h3 { "Terminate" }
                        input type="hidden" name="csrf" value=(csrf.0);
                        label { "Reason " input name="reason" value="terminated from the web UI"; }
                        button.danger type="submit" { "Terminate" }
                    }
                }
                @if run.parked_reason.is_some() {
                    form.action #retry-form method="post" action=(format!("{base}/retry")) data-confirm=(format!("Retry {} now?", run.workflow_id)) {
                        h3 { "Retry" }
                        input type="hidden" name="csrf" value=(csrf.0);
                        p.muted { "Once the cause is fixed: any build that knows its type takes it." }
                        button type="submit" { "Retry parked run" }
                    }
                }
                @if !open { p.muted { "Closed: pick an event below to reset the run to it." } }
            }
        }
    }
}

fn writer(ui: &Ui) -> Result<&Client, PageError> {
    ui.writer()
        .ok_or_else(|| PageError::BadRequest("this UI is read-only".to_string()))
}

/// Checks a form's JSON; the parser's message (with line and column) when it is not.
fn checked_json(text: &str) -> Result<String, String> {
    let text = if text.trim().is_empty() { "null" } else { text };
    serde_json::from_str::<serde_json::Value>(text)
        .map(|_| text.to_string())
        .map_err(|e| format!("not JSON: {e}"))
}

/// Back to the run's page with what was done.
fn done(ui: &Ui, run: &Description, what: &str) -> Response {
    let what: String = form_urlencoded::byte_serialize(what.as_bytes()).collect();
    Redirect::to(&ui.href(&format!("/runs/{}?done={what}", run.run_id))).into_response()
}

/// The run's page again, with an error beside the form and the text kept.
async fn again(
    ui: &Ui,
    csrf: &Csrf,
    run: &Description,
    form: &'static str,
    sent: &NamedJson,
    error: String,
) -> PageResult {
    let feedback = Feedback {
        form_error: Some((form, error)),
        kept: Some((form, sent.name.clone(), sent.payload.clone())),
        ..Feedback::default()
    };
    let mut response = run_view(ui, csrf, run.run_id, None, feedback).await?;
    *response.status_mut() = axum::http::StatusCode::BAD_REQUEST;
    Ok(response)
}

/// The run a form was on, if it is still its workflow's latest: the client acts on a
/// workflow's latest run, and a page of an earlier one (before a retry, a continue-as-new, a
/// reset) must not act on another run than the one it shows.
async fn run_of(ui: &Ui, run_id: &str) -> Result<Description, PageError> {
    let run = ui.reader().describe_run(parse_run_id(run_id)?).await?;
    let latest = ui.reader().latest_run_id(run.workflow_id.as_str()).await?;
    if latest != run.run_id {
        return Err(PageError::BadRequest(format!(
            "run {} is no longer the latest of workflow {}: run {latest} is; act on it from its page",
            run.run_id, run.workflow_id
        )));
    }
    Ok(run)
}

/// The actions that name something and carry JSON.
#[derive(Clone, Copy)]
enum Named {
    Signal,
    Query,
    Update,
}

impl Named {
    /// The form's name on the page.
    fn form(self) -> &'static str {
        match self {
            Named::Signal => "signal",
            Named::Query => "query",
            Named::Update => "update",
        }
    }
}

/// Checks the form's JSON, sends it, and shows what came of it: back to the run after a
/// signal, the answer of a query or update on the run's page, an error beside the form.
async fn named(ui: &Ui, csrf: &Csrf, run_id: &str, form: &NamedJson, kind: Named) -> PageResult {
    let run = run_of(ui, run_id).await?;
    let json = match checked_json(&form.payload) {
        Ok(json) => json,
        Err(e) => return again(ui, csrf, &run, kind.form(), form, e).await,
    };
    let client = writer(ui)?;
    let (id, name) = (run.workflow_id.as_str(), form.name.trim());
    let outcome = match kind {
        Named::Signal => client.signal_json(id, name, &json).await.map(|()| None),
        Named::Query => client
            .query_json(id, name, &json, DEFAULT_QUERY_DEADLINE)
            .await
            .map(|answer| Some((format!("Answer to {name}"), answer))),
        Named::Update => {
            let update_id = uuid::Uuid::new_v4().to_string();
            client
                .update_json(id, &update_id, name, &json)
                .await
                .map(|result| Some((format!("Result of update {name}"), result)))
        }
    };
    match outcome {
        Ok(None) => Ok(done(ui, &run, &format!("signal {name} sent"))),
        Ok(Some((title, payload))) => {
            let feedback = Feedback {
                answer: Some((title, payload)),
                ..Feedback::default()
            };
            run_view(ui, csrf, run.run_id, None, feedback).await
        }
        // The run closed, the name is unknown, the update was refused: said beside the form.
        Err(e) if !e.is_retryable() => {
            again(ui, csrf, &run, kind.form(), form, e.to_string()).await
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /runs/{run_id}/signal`.
pub(crate) async fn signal(
    State(ui): State<Ui>,
    axum::Extension(csrf): axum::Extension<Csrf>,
    Path(run_id): Path<String>,
    axum::Form(form): axum::Form<NamedJson>,
) -> Response {
    render(&ui, named(&ui, &csrf, &run_id, &form, Named::Signal).await)
}

/// `POST /runs/{run_id}/query`: the answer is shown on the page.
pub(crate) async fn query(
    State(ui): State<Ui>,
    axum::Extension(csrf): axum::Extension<Csrf>,
    Path(run_id): Path<String>,
    axum::Form(form): axum::Form<NamedJson>,
) -> Response {
    render(&ui, named(&ui, &csrf, &run_id, &form, Named::Query).await)
}

/// `POST /runs/{run_id}/update`: the result is shown on the page.
pub(crate) async fn update(
    State(ui): State<Ui>,
    axum::Extension(csrf): axum::Extension<Csrf>,
    Path(run_id): Path<String>,
    axum::Form(form): axum::Form<NamedJson>,
) -> Response {
    render(&ui, named(&ui, &csrf, &run_id, &form, Named::Update).await)
}

/// `POST /runs/{run_id}/cancel`.
pub(crate) async fn cancel(
    State(ui): State<Ui>,
    Path(run_id): Path<String>,
    axum::Form(form): axum::Form<Reason>,
) -> Response {
    let result = async {
        let run = run_of(&ui, &run_id).await?;
        writer(&ui)?
            .cancel(run.workflow_id.as_str(), &form.reason)
            .await?;
        Ok(done(&ui, &run, "cancel requested"))
    }
    .await;
    render(&ui, result)
}

/// `POST /runs/{run_id}/terminate`.
pub(crate) async fn terminate(
    State(ui): State<Ui>,
    Path(run_id): Path<String>,
    axum::Form(form): axum::Form<Reason>,
) -> Response {
    let result = async {
        let run = run_of(&ui, &run_id).await?;
        writer(&ui)?
            .terminate(run.workflow_id.as_str(), &form.reason)
            .await?;
        Ok(done(&ui, &run, "terminated"))
    }
    .await;
    render(&ui, result)
}

/// `POST /runs/{run_id}/retry`.
pub(crate) async fn retry(State(ui): State<Ui>, Path(run_id): Path<String>) -> Response {
    let result = async {
        let run = run_of(&ui, &run_id).await?;
        let retried = writer(&ui)?.retry_parked(run.workflow_id.as_str()).await?;
        Ok(done(
            &ui,
            &run,
            if retried { "retrying" } else { "not parked" },
        ))
    }
    .await;
    render(&ui, result)
}

/// `POST /runs/{run_id}/reset`: to the new run's page.
pub(crate) async fn reset(
    State(ui): State<Ui>,
    Path(run_id): Path<String>,
    axum::Form(form): axum::Form<ResetForm>,
) -> Response {
    let result = async {
        let run = run_of(&ui, &run_id).await?;
        let new_run = writer(&ui)?
            .reset(run.workflow_id.as_str(), form.seq)
            .await?;
        let what: String = form_urlencoded::byte_serialize(
            format!("reset to event {} of run {}", form.seq, run.run_id).as_bytes(),
        )
        .collect();
        Ok(Redirect::to(&ui.href(&format!("/runs/{new_run}?done={what}"))).into_response())
    }
    .await;
    render(&ui, result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_json_says_where() {
        let error = checked_json("{\"amount\": 12,").unwrap_err();
        assert!(error.starts_with("not JSON: "), "{error}");
        assert!(error.contains("line 1"), "{error}");
        assert_eq!(checked_json("  ").unwrap(), "null");
        assert_eq!(checked_json("{\"a\":1}").unwrap(), "{\"a\":1}");
    }
}

//! Parked runs: their list, and a run's report side by side — what its history holds at the
//! seq where the code disagreed, and what the code did there, with its source line and the
//! build that parked it.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use reprise_engine::RunFilter;
use reprise_history::timeline::describe_event;
use reprise_history::{RunId, Seq};

use crate::Ui;
use crate::access::Csrf;
use crate::layout::{PageError, PageResult, page, render, time};

/// Parked runs listed on the page.
const PARKED_SHOWN: i64 = 200;

/// A nondeterminism as a parked reason states it (`Nondeterminism`'s display, which names
/// a stable code, the seq and the source line).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Disagreement {
    /// `ND01`…
    pub(crate) code: String,
    /// The event where code and history disagree.
    pub(crate) seq: u64,
    /// What the code did (or the whole statement, for kinds that name no decision).
    pub(crate) code_did: String,
    /// `file:line:column` of the workflow code, when known.
    pub(crate) location: Option<String>,
}

/// Reads a parked reason; `None` when the run parked for another reason (a payload it
/// cannot decode, an unknown type…), which is then shown as it is.
pub(crate) fn disagreement(reason: &str) -> Option<Disagreement> {
    let at = reason.find("nondeterminism ND")?;
    let rest = &reason[at + "nondeterminism ".len()..];
    let (code, rest) = rest.split_once(" at seq ")?;
    let (seq, statement) = rest.split_once(": ")?;
    let seq = seq.parse().ok()?;
    let (statement, location) = match statement.rfind(" (workflow code at ") {
        Some(i) => (
            &statement[..i],
            Some(
                statement[i + " (workflow code at ".len()..]
                    .trim_end_matches(')')
                    .to_string(),
            ),
        ),
        None => (statement, None),
    };
    let code_did = match statement.split_once(", but the code made ") {
        Some((_, made)) => format!("made {made}"),
        None => match statement.strip_prefix("the code made ") {
            Some(made) => format!(
                "made {}",
                made.split(", but history").next().unwrap_or(made)
            ),
            None => statement.to_string(),
        },
    };
    Some(Disagreement {
        code: code.to_string(),
        seq,
        code_did,
        location,
    })
}

/// The report on a parked run's page.
pub(crate) async fn report(
    ui: &Ui,
    run_id: RunId,
    reason: &str,
    build: Option<&str>,
) -> Result<Markup, PageError> {
    let build_line = html! {
        @match build {
            Some(build) => p { "Parked by build " code { (build) } ": that build will not take it again; a build that knows its type and was not the one to park it takes it back, or retry it here once the cause is fixed." },
            None => p { "Parked; any build that knows its type may take it back." },
        }
    };
    let Some(d) = disagreement(reason) else {
        return Ok(html! {
            section.parked #parked-report {
                h2 { "Parked" }
                p.error { (reason) }
                (build_line)
            }
        });
    };
    let client = ui.reader();
    let held = client
        .history_page(run_id, Seq::new(d.seq.saturating_sub(1)), 1)
        .await?;
    let converter = client.converter();
    Ok(html! {
        section.parked #parked-report {
            h2 { "Parked: nondeterminism " (d.code) " at event " (d.seq) }
            div.sides {
                div.side.history {
                    h3 { "What history holds" }
                    @match held.first() {
                        Some(event) => {
                            p { a href=(format!("#seq-{}", event.seq)) { "event " (event.seq.get()) } ", recorded " (time(event.recorded_at)) }
                            p.event-kind { strong { (event.kind.name()) } }
                            pre.payload { (describe_event(converter, &event.kind, 2_000)) }
                        },
                        None => p { "No event " (d.seq) ": the history ends before it." },
                    }
                }
                div.side.code {
                    h3 { "What the code did" }
                    p.event-kind { strong { (d.code_did) } }
                    @if let Some(location) = &d.location { p { "at " code.source { (location) } } }
                }
            }
            details { summary { "The whole message" } p { (reason) } }
            (build_line)
        }
    })
}

/// `GET /parked`.
pub(crate) async fn parked_page(
    State(ui): State<Ui>,
    axum::Extension(csrf): axum::Extension<Csrf>,
) -> Response {
    render(&ui, parked_list(&ui, &csrf).await)
}

async fn parked_list(ui: &Ui, csrf: &Csrf) -> PageResult {
    let filter = RunFilter {
        parked: true,
        ..RunFilter::default()
    };
    let runs = ui.reader().list(&filter, None, PARKED_SHOWN).await?.runs;
    let body = html! {
        h1 { "Parked runs" }
        p.muted { "Runs whose code cannot go on: they wait for fixed code instead of failing. Open one for its report." }
        @if runs.is_empty() { p.empty { "No run is parked." } }
        @else {
            table.runs #parked {
                thead { tr { th { "Workflow id" } th { "Type" } th { "Why" } th { "Build" } th { "Last event" } } }
                tbody { @for run in &runs {
                    tr {
                        td { a href=(ui.href(&format!("/runs/{}", run.run_id))) { (run.workflow_id.as_str()) } }
                        td { (run.workflow_type.as_str()) }
                        td.reason { (run.parked_reason.as_deref().map(short_reason).unwrap_or_default()) }
                        td { code { (run.parked_build.as_deref().unwrap_or("")) } }
                        td { (time(run.last_event_at)) }
                    }
                } }
            }
            @if ui.writer().is_some() {
                form method="post" action=(ui.href("/batches/new")) {
                    input type="hidden" name="csrf" value=(csrf.0);
                    input type="hidden" name="parked" value="on";
                    input type="hidden" name="action" value="retry_parked";
                    button type="submit" { "Retry every parked run…" }
                }
            }
        }
    };
    Ok(page(ui, Some(csrf), "Parked runs", body).into_response())
}

fn short_reason(reason: &str) -> String {
    match disagreement(reason) {
        Some(d) => format!("{} at event {}: the code {}", d.code, d.seq, d.code_did),
        None => reason.chars().take(160).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decision_mismatch_reads_as_both_sides() {
        let reason = "workflow code failed: nondeterminism ND01 at seq 5: history has ActivityScheduled(\"charge\"), but the code made ActivityScheduled(\"refund\") (workflow code at examples/src/shop.rs:42:17)";
        assert_eq!(
            disagreement(reason),
            Some(Disagreement {
                code: "ND01".to_string(),
                seq: 5,
                code_did: "made ActivityScheduled(\"refund\")".to_string(),
                location: Some("examples/src/shop.rs:42:17".to_string()),
            })
        );
    }

    #[test]
    fn an_extra_decision_and_other_kinds_are_read_too() {
        let extra = disagreement("nondeterminism ND03 at seq 9: the code made TimerStarted(60s), but history has no decision here").unwrap();
        assert_eq!(
            (extra.seq, extra.code_did.as_str()),
            (9, "made TimerStarted(60s)")
        );
        assert_eq!(extra.location, None);
        let wake = disagreement(
            "nondeterminism ND05 at seq 3: the workflow was woken by something other than Reprise",
        )
        .unwrap();
        assert_eq!(wake.code, "ND05");
        assert!(disagreement("unknown workflow type \"x\"").is_none());
    }
}

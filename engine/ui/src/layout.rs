//! The page shell (navigation, assets), what every page shows the same way (times, statuses,
//! payloads), and error pages.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};
use reprise_engine::Error;
use reprise_history::{DataConverter, Failure, Payload, RunState, Timestamp};

use crate::Ui;
use crate::access::Csrf;

/// The navigation: (path, label).
const NAV: &[(&str, &str)] = &[
    ("/runs", "Runs"),
    ("/parked", "Parked"),
    ("/types", "Workflow types"),
    ("/queues", "Queues & limits"),
    ("/schedules", "Schedules"),
    ("/batches", "Batches"),
];

/// A whole page: `csrf` is given to pages that show forms (scripts read it from the page).
pub(crate) fn page(ui: &Ui, csrf: Option<&Csrf>, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(csrf) = csrf { meta name="reprise-csrf" content=(csrf.0); }
                title { (title) " · Reprise" }
                link rel="stylesheet" href=(ui.href("/assets/ui.css"));
                script src=(ui.href("/assets/ui.js")) defer {}
            }
            body {
                header.top {
                    a.brand href=(ui.href("/runs")) { "Reprise" }
                    nav { @for (path, label) in NAV { a href=(ui.href(path)) { (label) } } }
                    form.search method="get" action=(ui.href("/runs")) {
                        input type="search" name="id" placeholder="workflow id…" aria-label="Find a workflow id";
                    }
                    @if ui.writer().is_none() { span.badge.readonly { "read-only" } }
                }
                main { (body) }
            }
        }
    }
}

/// The runs page filtered by `pairs` (`("type", "checkout")`...), its values encoded.
pub(crate) fn runs_link(ui: &Ui, pairs: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.extend_pairs(pairs);
    format!("{}?{}", ui.href("/runs"), query.finish())
}

/// A rendered page, as a response.
pub(crate) fn respond(markup: Markup) -> Response {
    markup.into_response()
}

/// A time as people read it, in UTC to the second.
pub(crate) fn time(t: Timestamp) -> String {
    t.to_rfc3339()
        .map(|s| {
            let s = s.replace('T', " ");
            match s.find('.') {
                Some(dot) => format!("{} UTC", &s[..dot]),
                None => s.trim_end_matches('Z').to_string() + " UTC",
            }
        })
        .unwrap_or_else(|| format!("{}µs", t.as_unix_micros()))
}

/// A duration as people read it.
pub(crate) fn span(micros: i64) -> String {
    let micros = micros.max(0);
    match micros {
        m if m < 1_000 => format!("{m}µs"),
        m if m < 1_000_000 => format!("{:.1}ms", m as f64 / 1e3),
        m if m < 60_000_000 => format!("{:.2}s", m as f64 / 1e6),
        m if m < 3_600_000_000 => format!("{}m{}s", m / 60_000_000, (m / 1_000_000) % 60),
        m => format!("{}h{}m", m / 3_600_000_000, (m / 60_000_000) % 60),
    }
}

/// A status as a badge.
pub(crate) fn status_badge(status: RunState, parked: bool) -> Markup {
    html! {
        span class=(format!("badge status-{}", status.as_str())) { (status.as_str()) }
        @if parked { " " span.badge.status-parked { "parked" } }
    }
}

/// A payload through the reader's codecs: pretty JSON, or what stands in the way (a key this
/// UI does not hold, an old binary format).
pub(crate) fn payload(converter: &DataConverter, payload: &Payload) -> Markup {
    match converter.to_json(payload) {
        Ok(Some(value)) => {
            let text = serde_json::to_string_pretty(&value).unwrap_or_else(|_| value.to_string());
            html! { pre.payload { (text) } }
        }
        Ok(None) => {
            html! { span.unreadable { "bincode, " (payload.len()) " bytes (no JSON view)" } }
        }
        Err(e) => html! { span.unreadable { (unreadable(&e)) } },
    }
}

/// Why a payload cannot be shown, in a sentence: an encrypted one names its key.
fn unreadable(error: &reprise_history::Error) -> String {
    use reprise_history::{CodecError, Error as HistoryError};
    match error {
        HistoryError::CodecNotConfigured { codec, note } if codec.starts_with("aes") => {
            format!("encrypted with key {note} (this UI holds no payload keys)")
        }
        HistoryError::Codec {
            source: CodecError::UnknownKey { key_id, .. },
            ..
        } => format!("encrypted with key {key_id} (not held by this UI)"),
        HistoryError::CodecNotConfigured { codec, .. } => {
            format!("encoded with {codec}, which this UI is not configured with")
        }
        other => format!("cannot show: {other}"),
    }
}

/// A failure with its cause chain.
pub(crate) fn failure(converter: &DataConverter, f: &Failure) -> Markup {
    html! {
        div.failure {
            p { strong { (f.error_type) } ": " (f.message) }
            @if !f.causes.is_empty() {
                ol.causes { @for cause in &f.causes { li { strong { (cause.error_type) } ": " (cause.message) } } }
            }
            @if let Some(details) = &f.details { (payload(converter, details)) }
        }
    }
}

/// What a page could not do, as a page.
#[derive(Debug)]
pub(crate) enum PageError {
    /// The run or workflow is not there: 404 with a search box.
    NotFound(String),
    /// The request is wrong (a filter, a form): 400 with why.
    BadRequest(String),
    /// The database or engine failed: 500, or 503 while the database is away.
    Engine(Error),
}

impl From<Error> for PageError {
    fn from(e: Error) -> PageError {
        match e {
            Error::UnknownRun { .. }
            | Error::UnknownWorkflow { .. }
            | Error::UnknownBatch { .. }
            | Error::UnknownSchedule { .. } => PageError::NotFound(e.to_string()),
            other => PageError::Engine(other),
        }
    }
}

/// A page rendered with what it needs, for [`PageError`] to be rendered with too.
pub(crate) struct ErrorPage<'a> {
    pub(crate) ui: &'a Ui,
    pub(crate) error: PageError,
}

impl IntoResponse for ErrorPage<'_> {
    fn into_response(self) -> Response {
        let ui = self.ui;
        let (status, title, message) = match &self.error {
            PageError::NotFound(m) => (StatusCode::NOT_FOUND, "Not found", m.clone()),
            PageError::BadRequest(m) => (StatusCode::BAD_REQUEST, "Bad request", m.clone()),
            PageError::Engine(e) if e.is_retryable() => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Database unavailable",
                e.to_string(),
            ),
            PageError::Engine(e) => (StatusCode::INTERNAL_SERVER_ERROR, "Error", e.to_string()),
        };
        let body = html! {
            section.narrow {
                h1 { (title) }
                p.error role="alert" { (message) }
                form method="get" action=(ui.href("/runs")) {
                    label { "Find a workflow id " input type="search" name="id" autofocus; }
                    button type="submit" { "Search" }
                }
            }
        };
        (status, page(ui, None, title, body)).into_response()
    }
}

/// A page handler's result.
pub(crate) type PageResult = Result<Response, PageError>;

/// Renders a handler's result, its error as an error page.
pub(crate) fn render(ui: &Ui, result: PageResult) -> Response {
    match result {
        Ok(response) => response,
        Err(error) => ErrorPage { ui, error }.into_response(),
    }
}

/// Any path the UI does not serve: 404 with a search box.
pub(crate) async fn not_found(State(ui): State<Ui>) -> Response {
    ErrorPage {
        ui: &ui,
        error: PageError::NotFound("There is no such page.".to_string()),
    }
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_in_the_unit_that_fits() {
        assert_eq!(span(250), "250µs");
        assert_eq!(span(2_500), "2.5ms");
        assert_eq!(span(1_250_000), "1.25s");
        assert_eq!(span(125_000_000), "2m5s");
        assert_eq!(span(7_260_000_000), "2h1m");
        assert_eq!(span(-5), "0µs");
    }

    #[test]
    fn an_encrypted_payload_names_its_key_and_never_shows_its_bytes() {
        use reprise_codecs::{Aes256Gcm, Keyring};
        let keys = Keyring::new("k1", [7; 32]).unwrap();
        let sealing = DataConverter::default()
            .with_codec(Aes256Gcm::new(keys))
            .unwrap();
        let sealed = sealing.to_payload(&"card 4242").unwrap();
        let shown = payload(&sealing, &sealed).into_string();
        assert!(shown.contains("card 4242"), "{shown}");
        let keyless = payload(&DataConverter::default(), &sealed).into_string();
        assert!(keyless.contains("encrypted with key k1"), "{keyless}");
        assert!(!keyless.contains("4242"), "{keyless}");
        let other_key = DataConverter::default()
            .with_codec(Aes256Gcm::new(Keyring::new("k2", [9; 32]).unwrap()))
            .unwrap();
        let wrong = payload(&other_key, &sealed).into_string();
        assert!(wrong.contains("encrypted with key k1"), "{wrong}");
    }

    #[test]
    fn times_read_to_the_second_in_utc() {
        let t = Timestamp::from_unix_micros(1_764_547_200_123_456);
        assert_eq!(time(t), "2025-12-01 00:00:00 UTC");
    }
}

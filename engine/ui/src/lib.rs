//! Reprise's web UI: every run and its history, served by Reprise itself.
//!
//! Server-rendered HTML (axum, maud), a little plain JavaScript for live refresh and
//! confirmations, every asset compiled into the binary: it works offline and behind any
//! proxy. Each page has a JSON twin under `/api`. Reads go through the reader client (the
//! `reprise_observer` role, which can change nothing), actions through the writer; without a
//! writer the UI is read-only. See `docs/ui.md`.
//!
//! - [`Ui::router`]: the routes, to serve alone ([`Ui::serve`], `reprise ui`) or to merge
//!   into an engine's HTTP listener (`Endpoints::router().merge(ui.router())`).
//! - Safety: an access token (bearer header or login cookie) on every request when one is
//!   set, and [`check_listen_address`] refuses a non-loopback address without one; a CSRF
//!   token on every action; payloads shown only through the reader's codecs.

mod access;
mod actions;
mod api;
mod assets;
mod batches;
mod filters;
pub mod json;
mod layout;
mod overview;
mod parked;
mod run;
mod runs;
mod timeline;

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::{get, post};
use reprise_engine::Client;

pub use batches::bulk_action;
pub use filters::FilterQuery;

/// How the UI behaves.
#[derive(Clone, Debug, Default)]
pub struct UiOptions {
    /// When set, every request must carry it: `Authorization: Bearer <token>`, or the cookie
    /// the login page sets. Required on a non-loopback address.
    pub access_token: Option<String>,
    /// Show everything, change nothing: no action is offered or accepted.
    pub read_only: bool,
    /// Where the UI is mounted (`""` at the root, `"/ui"` under an engine's listener).
    pub base_path: String,
}

/// Why the UI will not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UiError {
    /// A non-loopback address without an access token would show every payload to anyone
    /// who can reach it.
    #[error(
        "refusing to listen on {address} without an access token: anyone who can reach it could read every run and act on it; set --token (REPRISE_UI_TOKEN) or listen on 127.0.0.1"
    )]
    TokenRequired {
        /// The address asked for.
        address: SocketAddr,
    },
    /// An empty token protects nothing.
    #[error("the access token is empty")]
    EmptyToken,
}

/// Refuses to serve on `address` without an access token unless it is a loopback address.
pub fn check_listen_address(address: SocketAddr, options: &UiOptions) -> Result<(), UiError> {
    match options.access_token.as_deref() {
        Some("") => Err(UiError::EmptyToken),
        Some(_) => Ok(()),
        None if address.ip().is_loopback() => Ok(()),
        None => Err(UiError::TokenRequired { address }),
    }
}

/// The web UI over one Reprise database.
#[derive(Clone)]
pub struct Ui(Arc<Shared>);

pub(crate) struct Shared {
    reader: Client,
    writer: Option<Client>,
    options: UiOptions,
    /// Batches this process is running now (others' show as resumable when they stall).
    running_batches: Mutex<HashSet<uuid::Uuid>>,
}

impl Ui {
    /// A UI that reads through `reader` and acts through `writer` (`None`, or
    /// `options.read_only`: a read-only UI). Payloads are decoded with the reader's
    /// converter: give it the codecs and keys the application uses.
    pub fn new(reader: Client, writer: Option<Client>, mut options: UiOptions) -> Ui {
        let writer = writer.filter(|_| !options.read_only);
        // `/ui/` and `/ui` are one place, and `/` is the root.
        let base = options.base_path.trim_matches('/');
        options.base_path = if base.is_empty() {
            String::new()
        } else {
            format!("/{base}")
        };
        Ui(Arc::new(Shared {
            reader,
            writer,
            options,
            running_batches: Mutex::new(HashSet::new()),
        }))
    }

    pub(crate) fn reader(&self) -> &Client {
        &self.0.reader
    }

    pub(crate) fn writer(&self) -> Option<&Client> {
        self.0.writer.as_ref()
    }

    pub(crate) fn options(&self) -> &UiOptions {
        &self.0.options
    }

    /// A path of the UI, under its base path.
    pub(crate) fn href(&self, path: &str) -> String {
        format!("{}{path}", self.0.options.base_path)
    }

    pub(crate) fn batches_running(&self) -> &Mutex<HashSet<uuid::Uuid>> {
        &self.0.running_batches
    }

    /// The UI's routes: pages, actions, the JSON API and the assets, behind the access and
    /// CSRF checks.
    pub fn router(&self) -> Router {
        let routes = Router::new()
            .route("/", get(runs::runs_page))
            .route("/runs", get(runs::runs_page))
            .route("/runs/{run_id}", get(run::run_page))
            .route("/workflows/{workflow_id}", get(run::latest_run_page))
            .route("/parked", get(parked::parked_page))
            .route("/types", get(overview::types_page))
            .route("/queues", get(overview::queues_page))
            .route("/schedules", get(overview::schedules_page))
            .route("/batches", get(batches::batches_page))
            .route("/batches/new", post(batches::confirm_batch))
            .route("/batches/start", post(batches::start_batch))
            .route("/batches/{batch_id}", get(batches::batch_page))
            .route("/batches/{batch_id}/resume", post(batches::resume_batch))
            .route("/runs/{run_id}/signal", post(actions::signal))
            .route("/runs/{run_id}/query", post(actions::query))
            .route("/runs/{run_id}/update", post(actions::update))
            .route("/runs/{run_id}/cancel", post(actions::cancel))
            .route("/runs/{run_id}/terminate", post(actions::terminate))
            .route("/runs/{run_id}/retry", post(actions::retry))
            .route("/runs/{run_id}/reset", post(actions::reset))
            .route("/login", get(access::login_page).post(access::login))
            .route("/assets/{name}", get(assets::asset))
            .merge(api::routes())
            .fallback(layout::not_found)
            .layer(axum::middleware::from_fn_with_state(
                self.clone(),
                access::guard,
            ))
            .with_state(self.clone());
        match self.0.options.base_path.as_str() {
            "" => routes,
            base => Router::new().nest(base, routes),
        }
    }

    /// Serves the UI on `listener` until `shutdown` resolves.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
    }
}

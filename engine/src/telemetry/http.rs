//! The HTTP endpoints of an engine or worker process (off unless started):
//! - `/metrics`: [`Metrics`](super::Metrics) in the OpenMetrics text format;
//! - `/healthz`: the process answers (alive);
//! - `/readyz`: the database answers, its schema is the version this build expects, and every
//!   loop watched is taking work (an engine or worker that drains is not ready).

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::store::Store;

/// How long `/readyz` waits for the database before it says it is not ready.
const DATABASE_DEADLINE: Duration = Duration::from_secs(2);

/// What the endpoints report on: a store (its pool and metrics) and the readiness of the
/// engines and workers of the process.
#[derive(Clone)]
pub struct Endpoints {
    store: Store,
    ready: Vec<watch::Receiver<bool>>,
    /// Routes served beside the endpoints (the web UI).
    routes: Option<Router>,
}

impl Endpoints {
    /// Endpoints for the process that uses `store` (and its metrics).
    pub fn new(store: Store) -> Endpoints {
        Endpoints {
            store,
            ready: Vec::new(),
            routes: None,
        }
    }

    /// Also serves `routes` on the same listener: the web UI (`reprise_ui::Ui::router`, with
    /// a base path such as `/ui`).
    pub fn with_routes(mut self, routes: Router) -> Endpoints {
        self.routes = Some(match self.routes.take() {
            Some(before) => before.merge(routes),
            None => routes,
        });
        self
    }

    /// Also requires this loop to be taking work (`Engine::readiness`, `Worker::readiness`).
    pub fn watch(mut self, ready: watch::Receiver<bool>) -> Endpoints {
        self.ready.push(ready);
        self
    }

    /// Whether the process is ready, or why not.
    pub async fn readiness(&self) -> std::result::Result<(), String> {
        if self.ready.iter().any(|r| !*r.borrow()) {
            return Err("not taking work (starting, draining or stopped)".to_string());
        }
        let pool = self.store.pool();
        let version =
            tokio::time::timeout(DATABASE_DEADLINE, crate::schema::schema_version(pool)).await;
        let expected = crate::schema::expected_version();
        match version {
            Err(_) => Err(format!(
                "the database did not answer within {DATABASE_DEADLINE:?}"
            )),
            Ok(Err(e)) => Err(format!("the database is not reachable: {e}")),
            Ok(Ok(None)) => Err(format!(
                "the schema is not migrated (this build expects version {expected})"
            )),
            Ok(Ok(Some(v))) if v != expected => Err(format!(
                "the schema is at version {v}, this build expects {expected}"
            )),
            Ok(Ok(Some(_))) => Ok(()),
        }
    }

    /// The router, to serve alone ([`Endpoints::serve`]) or to merge into an application's.
    pub fn router(self) -> Router {
        let routes = self.routes.clone();
        let endpoints = Router::new()
            .route("/metrics", get(metrics))
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(readyz))
            .with_state(self);
        match routes {
            Some(routes) => endpoints.merge(routes),
            None => endpoints,
        }
    }

    /// Serves the endpoints on `listener` until `shutdown` resolves.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|e| Error::Conflict(format!("the HTTP listener failed: {e}")))
    }
}

async fn metrics(State(endpoints): State<Endpoints>) -> impl IntoResponse {
    let pool = endpoints.store.pool();
    let idle = pool.num_idle();
    let size = pool.size();
    let metrics = endpoints.store.metrics();
    metrics.pool(
        size.saturating_sub(u32::try_from(idle).unwrap_or(u32::MAX)),
        idle,
    );
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.render(),
    )
}

async fn readyz(State(endpoints): State<Endpoints>) -> impl IntoResponse {
    match endpoints.readiness().await {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
}

//! The JSON API: what every page shows, for tools (`/api/...`, the same access token).
//! Shapes are [`crate::json`]'s, which the CLI's `--json` prints too.

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use reprise_engine::Error;
use reprise_history::Seq;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Ui;
use crate::filters::FilterQuery;
use crate::json::{batch_json, description_json, history_json, summary_json};
use crate::run::EVENTS_PAGE;
use crate::runs::{COUNT_CAP, PAGE_SIZE, count_text};

/// The API's routes.
pub(crate) fn routes() -> Router<Ui> {
    Router::new()
        .route("/api/runs", get(runs))
        .route("/api/runs/{run_id}", get(run))
        .route("/api/runs/{run_id}/head", get(head))
        .route("/api/runs/{run_id}/events", get(events))
        .route("/api/types", get(types))
        .route("/api/queues", get(queues))
        .route("/api/batches", get(batches))
        .route("/api/batches/{batch_id}", get(batch))
}

/// An API error: its status and `{"error": ...}`.
struct ApiError(StatusCode, String);

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        let status = match &e {
            Error::UnknownRun { .. }
            | Error::UnknownWorkflow { .. }
            | Error::UnknownBatch { .. } => StatusCode::NOT_FOUND,
            e if e.is_retryable() => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

fn bad(message: String) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message)
}

fn run_id(text: &str) -> Result<reprise_history::RunId, ApiError> {
    uuid::Uuid::parse_str(text)
        .map(reprise_history::RunId::from_uuid)
        .map_err(|_| ApiError(StatusCode::NOT_FOUND, format!("{text:?} is not a run id")))
}

async fn runs(State(ui): State<Ui>, Query(query): Query<FilterQuery>) -> ApiResult {
    let filter = query.filter().map_err(bad)?;
    let cursor = query.cursor().map_err(bad)?;
    let client = ui.reader();
    let (page, counts) = tokio::try_join!(
        client.list(&filter, cursor, PAGE_SIZE),
        client.count_by_status(&filter, COUNT_CAP)
    )?;
    Ok(Json(json!({
        "runs": page.runs.iter().map(summary_json).collect::<Vec<_>>(),
        "next": page.next.map(|c| c.token()),
        "counts": counts.iter().map(|c| json!({
            "status": c.status.as_str(), "count": c.count, "more": c.more, "text": count_text(c),
        })).collect::<Vec<_>>(),
    })))
}

async fn run(State(ui): State<Ui>, Path(id): Path<String>) -> ApiResult {
    let client = ui.reader();
    let run_id = run_id(&id)?;
    let (description, relations) =
        tokio::try_join!(client.describe_run(run_id), client.relations(run_id, 100))?;
    let mut value = description_json(client.converter(), &description);
    value["children"] = relations.children.iter().map(summary_json).collect();
    value["next_run_id"] = json!(relations.next_run_id.map(|r| r.to_string()));
    Ok(Json(value))
}

/// What a watching page polls: where the run is.
async fn head(State(ui): State<Ui>, Path(id): Path<String>) -> ApiResult {
    let summary = ui.reader().run(run_id(&id)?).await?;
    Ok(Json(json!({
        "head_seq": summary.head_seq.get(),
        "status": summary.status.as_str(),
        "parked": summary.parked_reason.is_some(),
    })))
}

#[derive(Deserialize)]
struct EventsQuery {
    #[serde(default)]
    after: u64,
    #[serde(default)]
    limit: Option<u32>,
}

async fn events(
    State(ui): State<Ui>,
    Path(id): Path<String>,
    Query(q): Query<EventsQuery>,
) -> ApiResult {
    let limit = q.limit.unwrap_or(EVENTS_PAGE).clamp(1, 1_000);
    let client = ui.reader();
    let events = client
        .history_page(run_id(&id)?, Seq::new(q.after), limit)
        .await?;
    let next = events
        .last()
        .filter(|_| events.len() as u32 == limit)
        .map(|e| e.seq.get());
    Ok(Json(
        json!({ "events": history_json(client.converter(), &events), "next_after": next }),
    ))
}

async fn types(State(ui): State<Ui>) -> ApiResult {
    let mut out = Vec::new();
    for (t, patches) in crate::overview::types_with_patches(ui.reader()).await? {
        out.push(json!({
            "workflow_type": t.workflow_type.as_str(),
            "open_runs": t.open_runs,
            "parked": t.parked,
            "patches": patches.iter().map(|p| json!({
                "patch_id": p.patch_id.as_str(),
                "open_runs_with_marker": p.open_runs_with_marker,
                "open_runs_without_marker": p.open_runs_without_marker,
            })).collect::<Vec<_>>(),
        }));
    }
    Ok(Json(Value::Array(out)))
}

async fn queues(State(ui): State<Ui>) -> ApiResult {
    let client = ui.reader();
    let (backlogs, limits) = tokio::try_join!(client.queue_backlogs(), client.limits())?;
    Ok(Json(json!({
        "queues": backlogs.iter().map(|q| json!({
            "task_queue": q.task_queue, "ready": q.ready,
            "oldest_ready_at": q.oldest_ready_at.map(|t| t.to_string()),
            "running": q.running, "backing_off": q.backing_off, "workers": q.workers,
        })).collect::<Vec<_>>(),
        "limits": limits.iter().map(|l| json!({
            "scope": l.scope.to_string(),
            "max_concurrent": l.limit.max_concurrent,
            "rate_per_second": l.limit.rate.map(|r| r.per_second),
            "burst": l.limit.rate.map(|r| r.burst),
            "running": l.running, "waiting": l.waiting, "tokens": l.tokens,
        })).collect::<Vec<_>>(),
    })))
}

async fn batches(State(ui): State<Ui>) -> ApiResult {
    let list = ui.reader().batches(50).await?;
    Ok(Json(Value::Array(list.iter().map(batch_json).collect())))
}

async fn batch(State(ui): State<Ui>, Path(id): Path<String>) -> ApiResult {
    let batch_id = uuid::Uuid::parse_str(&id)
        .map_err(|_| ApiError(StatusCode::NOT_FOUND, format!("{id:?} is not a batch id")))?;
    Ok(Json(batch_json(&ui.reader().batch(batch_id).await?)))
}

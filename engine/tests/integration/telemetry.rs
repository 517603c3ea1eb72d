//! What a running engine and worker show over HTTP: `/metrics` counts what happened (starts,
//! closes by status, steps, activity attempts by outcome, parked runs, the sampled gauges),
//! `/healthz` answers, and `/readyz` follows the database.

use std::net::SocketAddr;
use std::time::Duration;

use reprise_engine::telemetry::http::Endpoints;
use reprise_engine::{Client, EngineOptions, Store};
use reprise_sdk::{WorkflowContext, WorkflowDef};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::engine::{parked_reason, registry, within};
use crate::hosts::{Running, engine_options, run_engine, run_worker, worker_options};
use crate::support::TestDb;

const HELLO: WorkflowDef<String, String> = WorkflowDef::new("hello");
const RETRYING: WorkflowDef<(bool, u32), String> = WorkflowDef::new("retrying");
const NAP: WorkflowDef<u64, String> = WorkflowDef::new("nap");
/// Panics in its first step: its run is parked.
const BROKEN: WorkflowDef<(), ()> = WorkflowDef::new("broken");

/// `GET path` over plain HTTP/1.1: the status code and the body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The value of one series in a scrape (0 when absent).
fn value(scrape: &str, series: &str) -> f64 {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_count_what_happened_and_readiness_follows_the_database() {
    let db = TestDb::migrated().await;
    let store = Store::new(db.pool.clone());
    let client = Client::new(store.clone());
    let mut running = Running::new();
    let options = EngineOptions {
        gauge_interval: Duration::from_millis(100),
        ..engine_options()
    };
    let broken = registry().workflow(BROKEN, |_ctx: WorkflowContext, ()| async move {
        if true {
            panic!("broken");
        }
        Ok(())
    });
    let engine = run_engine(&store, broken.build().unwrap(), options, &mut running);
    let worker = run_worker(
        &store,
        registry().build().unwrap(),
        worker_options(),
        &mut running,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let endpoints = Endpoints::new(store.clone())
        .watch(engine.readiness())
        .watch(worker.readiness());
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(endpoints.serve(listener, async {
        let _ = http_stopped.await;
    }));

    let hello = client
        .start(HELLO, "hello-1", &"Ada".to_string())
        .await
        .unwrap();
    let nap = client.start(NAP, "nap-1", &1).await.unwrap();
    let failing = client
        .start(RETRYING, "retrying-1", &(true, 2))
        .await
        .unwrap();
    client.start(BROKEN, "broken-1", &()).await.unwrap();
    within(hello.result()).await.unwrap();
    within(nap.result()).await.unwrap();
    let gave_up = within(failing.result()).await.unwrap();
    assert!(gave_up.starts_with("gave up after 2 attempts"), "{gave_up}");
    within(parked_reason(&running, &client, "broken-1")).await;
    // A caller learns of a close from its notification, sent at the commit; the engine counts
    // it just after: wait for the engine's progress past the three closes.
    let counted = async || {
        let text = store.metrics().render();
        ["hello", "nap", "retrying"].iter().all(|t| {
            let series = format!(
                "reprise_workflows_closed_total{{workflow_type=\"{t}\",status=\"completed\"}}"
            );
            value(&text, &series) >= 1.0
        })
    };
    within(running.until(counted)).await;

    // The gauges are sampled by one process every 100 ms: wait for a sample after the park.
    let scrape = within(async {
        loop {
            let (status, body) = get(addr, "/metrics").await;
            assert_eq!(status, 200);
            if value(&body, "reprise_parked_runs{reason=\"panic\"}") == 1.0 {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    for (series, expected) in [
        (
            "reprise_workflows_started_total{workflow_type=\"hello\"}",
            1.0,
        ),
        (
            "reprise_workflows_closed_total{workflow_type=\"hello\",status=\"completed\"}",
            1.0,
        ),
        (
            "reprise_workflows_closed_total{workflow_type=\"nap\",status=\"completed\"}",
            1.0,
        ),
        (
            "reprise_workflows_closed_total{workflow_type=\"retrying\",status=\"completed\"}",
            1.0,
        ),
        (
            "reprise_activity_attempts_total{activity_type=\"greet\",task_queue=\"default\",outcome=\"completed\"}",
            1.0,
        ),
        (
            "reprise_activity_attempts_total{activity_type=\"flaky\",task_queue=\"default\",outcome=\"retried\"}",
            1.0,
        ),
        (
            "reprise_activity_attempts_total{activity_type=\"flaky\",task_queue=\"default\",outcome=\"failed\"}",
            1.0,
        ),
        ("reprise_runs_parked_total{reason=\"panic\"}", 1.0),
        ("reprise_parked_runs{reason=\"nondeterminism\"}", 0.0),
    ] {
        assert_eq!(value(&scrape, series), expected, "{series} in\n{scrape}");
    }
    let steps = value(&scrape, "reprise_steps_total{path=\"batch\"}")
        + value(&scrape, "reprise_steps_total{path=\"direct\"}");
    assert!(steps >= 6.0, "{steps} steps in\n{scrape}");
    assert!(value(&scrape, "reprise_gauge_samples_total") >= 1.0);
    // The nap's timer fired, late by however long the claim took; runs waited to be claimed.
    assert!(
        value(&scrape, "reprise_timer_lateness_seconds_count") >= 1.0,
        "{scrape}"
    );
    assert!(
        value(&scrape, "reprise_workflow_schedule_to_start_seconds_count") >= 1.0,
        "{scrape}"
    );
    assert!(
        scrape.contains("reprise_activity_schedule_to_start_seconds_count{task_queue=\"default\"}")
    );
    assert!(scrape.contains("reprise_pool_connections{result=\"in_use\"}"));
    // Labels name types, queues and outcomes, never a workflow id.
    assert!(!scrape.contains("hello-1") && !scrape.contains("broken-1"));

    assert_eq!(get(addr, "/healthz").await, (200, "ok\n".to_string()));
    assert_eq!(get(addr, "/readyz").await.0, 200);
    db.reachable(false).await;
    let (status, body) = get(addr, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.starts_with("not ready: the database"), "{body}");
    db.reachable(true).await;
    within(async {
        while get(addr, "/readyz").await.0 != 200 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let _ = stop_http.send(());
    drop(running);
    db.drop_database().await;
}

/// A writer that keeps every log line in memory.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Everything runs on this test's one thread, so the subscriber set for the thread sees every
/// line the client, engine and worker write, at every level.
#[tokio::test(flavor = "current_thread")]
async fn no_log_line_at_any_level_holds_a_payload() {
    const SECRET: &str = "secret-input-7f3a9c";
    let db = TestDb::migrated().await;
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let store = Store::new(db.pool.clone());
    let client = Client::new(store.clone());
    let running = Running::both(&store, || registry().build().unwrap());
    let hello = client
        .start(HELLO, "hello-secret", &SECRET.to_string())
        .await
        .unwrap();
    assert_eq!(
        within(hello.result()).await.unwrap(),
        format!("hello, {SECRET}")
    );
    // A parked run logs its reason: an undecodable input must not leak through it either.
    client.start(NAP, "nap-secret", &1).await.unwrap();
    drop(running);

    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    assert!(logs.lines().count() > 20, "too few lines captured:\n{logs}");
    assert!(logs.contains("TRACE") || logs.contains("DEBUG"), "{logs}");
    assert!(
        !logs.contains(SECRET),
        "a payload reached the logs:\n{logs}"
    );
    db.drop_database().await;
}

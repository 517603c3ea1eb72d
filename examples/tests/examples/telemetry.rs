//! Engine and worker processes with `--http`: what they export after workflows ran; and with
//! `OTEL_EXPORTER_OTLP_ENDPOINT`: the traces they send a collector.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use reprise_engine::{Client, Store, WorkflowHandle};
use reprise_examples::workflows::GREETING;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::TestDb;

/// A free local port (the race with another taker is harmless for a test).
fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(db: &TestDb, args: &[&str]) -> Process {
    spawn_with(db, args, &[])
}

/// [`spawn`] with more environment variables.
fn spawn_with(db: &TestDb, args: &[&str], env: &[(&str, &str)]) -> Process {
    let child = Command::new(env!("CARGO_BIN_EXE_reprise-example"))
        .args(args)
        .env("DATABASE_URL", &db.url)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    Process(child)
}

/// `GET path`: the status code and the body; `None` while nothing listens yet.
async fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

/// The value of one series in a scrape (0 when absent).
fn value(scrape: &str, series: &str) -> f64 {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// The greeting's result, within 30 s.
async fn greeted(handle: &WorkflowHandle<String>) -> String {
    tokio::time::timeout(Duration::from_secs(30), handle.result())
        .await
        .unwrap()
        .unwrap()
}

/// Scrapes until `ok` holds of the metrics (the processes count as they go).
async fn scrape_until(addr: SocketAddr, ok: impl Fn(&str) -> bool) -> String {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Some((200, body)) = get(addr, "/metrics").await
                && ok(&body)
            {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the metrics showed it within 30 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_and_worker_processes_export_what_happened() {
    let db = TestDb::migrated().await;
    let (engine_addr, worker_addr) = (free_addr(), free_addr());
    let _engine = spawn(&db, &["engine", "--http", &engine_addr.to_string()]);
    let _worker = spawn(
        &db,
        &[
            "worker",
            "--queue",
            "default",
            "--http",
            &worker_addr.to_string(),
        ],
    );
    let client = Client::new(Store::new(db.pool.clone()));
    let handle = client
        .start(GREETING, "greet-metrics", &"Ada".to_string())
        .await
        .unwrap();
    assert_eq!(greeted(&handle).await, "HELLO, ADA");

    let engine = scrape_until(engine_addr, |m| {
        value(
            m,
            "reprise_workflows_closed_total{workflow_type=\"greeting\",status=\"completed\"}",
        ) == 1.0
    })
    .await;
    assert_eq!(
        value(
            &engine,
            "reprise_workflows_started_total{workflow_type=\"greeting\"}"
        ),
        1.0
    );
    let worker = scrape_until(worker_addr, |m| {
        value(
            m,
            "reprise_activity_attempts_total{activity_type=\"shout\",task_queue=\"default\",outcome=\"completed\"}",
        ) == 1.0
    })
    .await;
    assert_eq!(
        value(
            &worker,
            "reprise_activity_attempts_total{activity_type=\"compose\",task_queue=\"default\",outcome=\"completed\"}"
        ),
        1.0
    );
    for addr in [engine_addr, worker_addr] {
        assert_eq!(get(addr, "/readyz").await.map(|r| r.0), Some(200));
    }
    db.drop_database().await;
}

/// Spans a process exported, as the collector received them.
#[derive(Clone, Default)]
struct Collector(std::sync::Arc<std::sync::Mutex<Vec<Span>>>);

impl Collector {
    /// A collector of OTLP/HTTP trace exports on a local port.
    async fn serve(&self) -> SocketAddr {
        use axum::body::Bytes;
        use prost::Message;
        let spans = self.0.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: Bytes| async move {
                if let Ok(request) = ExportTraceServiceRequest::decode(body) {
                    let received = request
                        .resource_spans
                        .into_iter()
                        .flat_map(|r| r.scope_spans)
                        .flat_map(|s| s.spans);
                    spans.lock().unwrap().extend(received);
                }
                ""
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    fn spans(&self) -> Vec<Span> {
        self.0.lock().unwrap().clone()
    }
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.clone()),
            _ => None,
        })
}

/// An engine process and a worker process export over OTLP/HTTP to a collector: the worker's
/// attempt spans are children of the engine's step spans, in the same trace, joined only by
/// the context the task rows carry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_export_one_trace_over_otlp() {
    let db = TestDb::migrated().await;
    let collector = Collector::default();
    let endpoint = format!("http://{}", collector.serve().await);
    let spawn_traced = |args: &[&str], service: &str| {
        let env = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_SERVICE_NAME", service),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ];
        spawn_with(&db, &[args, &["--http", "off"]].concat(), &env)
    };
    let _engine = spawn_traced(&["engine"], "test-engine");
    let _worker = spawn_traced(&["worker", "--queue", "default"], "test-worker");
    let client = Client::new(Store::new(db.pool.clone()));
    let handle = client
        .start(GREETING, "greet-traced", &"Ada".to_string())
        .await
        .unwrap();
    assert_eq!(greeted(&handle).await, "HELLO, ADA");

    // Both activities' attempts, each with the step that scheduled it.
    let spans = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let spans = collector.spans();
            let attempts = spans
                .iter()
                .filter(|s| s.name == "activity_attempt")
                .count();
            let parents_arrived = spans
                .iter()
                .filter(|s| s.name == "activity_attempt")
                .all(|a| {
                    spans
                        .iter()
                        .any(|s| s.name == "workflow_step" && s.span_id == a.parent_span_id)
                });
            if attempts == 2 && parents_arrived {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the collector received the attempts and their steps within 30 s");
    let run_id = handle.run_id().to_string();
    for attempt in spans.iter().filter(|s| s.name == "activity_attempt") {
        let step = spans
            .iter()
            .find(|s| s.name == "workflow_step" && s.span_id == attempt.parent_span_id)
            .unwrap();
        assert_eq!(attempt.trace_id, step.trace_id);
        assert_eq!(attribute(attempt, "run_id"), Some(run_id.clone()));
        assert_eq!(attribute(step, "run_id"), Some(run_id.clone()));
        assert_eq!(attribute(step, "outcome").as_deref(), Some("written"));
    }
    db.drop_database().await;
}

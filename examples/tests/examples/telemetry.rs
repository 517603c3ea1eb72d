//! Engine and worker processes with `--http`: what they export after workflows ran.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reprise_engine::{Client, Store};
use reprise_examples::workflows::GREETING;
use reprise_sdk::WorkflowDef;
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
    let child = Command::new(env!("CARGO_BIN_EXE_reprise-example"))
        .args(args)
        .env("DATABASE_URL", &db.url)
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
    client
        .start(
            WorkflowDef::<(), ()>::new("nobody-runs-this"),
            "orphan",
            &(),
        )
        .await
        .unwrap();
    let result = tokio::time::timeout(Duration::from_secs(30), handle.result())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(result, "HELLO, ADA");

    let engine = scrape_until(engine_addr, |m| {
        value(m, "reprise_runs_parked_total{reason=\"unknown_type\"}") >= 1.0
            && value(
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

//! The web UI at scale: the runs page and its filters over 1,000,000 runs, and the page of a
//! run with a 10,000-event history (read a page of events at a time), served in-process and
//! timed over HTTP on localhost. The runs are written straight into the tables (a realistic
//! mix of statuses, 20 workflow types and one rare one, 30 days of creation times); the long
//! run is a real history, from the testkit, chained as the engine chains it.

use std::net::SocketAddr;
use std::time::Instant;

use reprise_examples::bench::CHAIN;
use reprise_history::{ChainHash, Event, Seq};
use reprise_testkit::TestEnv;
use reprise_ui::{Ui, UiOptions};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::setup::Bench;
use crate::workloads::{Figure, figure, percentile};

/// Runs in the table.
const RUNS: i64 = 1_000_000;
/// Requests per page measured.
const SAMPLES: usize = 40;

/// Writes 1,000,000 runs (once per database), each with a first history row.
async fn seed_runs(bench: &Bench) -> anyhow::Result<()> {
    let pool = bench.store.pool();
    let have: i64 =
        sqlx::query_scalar("SELECT count(*) FROM reprise.runs WHERE workflow_id LIKE 'ui-%'")
            .fetch_one(pool)
            .await?;
    if have >= RUNS {
        return Ok(());
    }
    let started = Instant::now();
    // Statuses: 10% open, 80% completed, 5% failed, the rest cancelled, terminated, timed out.
    // Types: `type-0`..`type-19`, and `rare` for one run in 10,000.
    sqlx::query(
        "INSERT INTO reprise.runs (run_id, workflow_id, workflow_type, task_queue, status,
                                   created_at, closed_at, head_seq, head_hash)
         SELECT gen_random_uuid(), 'ui-' || lpad(i::text, 7, '0'),
                CASE WHEN i % 10000 = 0 THEN 'rare' ELSE 'type-' || (i % 20) END,
                CASE WHEN i % 7 = 0 THEN 'batch' ELSE 'default' END,
                s.status, s.created, CASE WHEN s.status = 'running' THEN NULL ELSE s.created + interval '3 seconds' END,
                1, decode(repeat('00', 32), 'hex')
           FROM generate_series(1, $1::bigint) AS i,
                LATERAL (SELECT CASE WHEN i % 100 < 10 THEN 'running' WHEN i % 100 < 90 THEN 'completed'
                                     WHEN i % 100 < 95 THEN 'failed' WHEN i % 100 < 97 THEN 'cancelled'
                                     WHEN i % 100 < 99 THEN 'terminated' ELSE 'timed_out' END AS status,
                                now() - interval '30 days' + (i * interval '30 days' / $1::bigint) AS created) s",
    )
    .bind(RUNS)
    .execute(pool)
    .await?;
    sqlx::query(
        "INSERT INTO reprise.history (run_id, seq, recorded_at, kind, event, hash)
         SELECT run_id, 1, created_at, 'WorkflowStarted', '\\x00'::bytea, head_hash
           FROM reprise.runs WHERE workflow_id LIKE 'ui-%'",
    )
    .execute(pool)
    .await?;
    // As a table long in use: hint bits set, visibility map and statistics up to date.
    sqlx::query("VACUUM ANALYZE reprise.runs")
        .execute(pool)
        .await?;
    sqlx::query("VACUUM ANALYZE reprise.history")
        .execute(pool)
        .await?;
    println!(
        "ui: wrote {RUNS} runs in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A run with a 10,000-event history: started by the client, then the rest of a real
/// history appended, chained from its first event. Returns its run id.
async fn long_run(bench: &Bench) -> anyhow::Result<String> {
    if let Ok(d) = bench.client.describe("ui-long").await {
        return Ok(d.run_id.to_string());
    }
    let registry = reprise_examples::workflows::registry()?;
    let mut env = TestEnv::new(registry);
    let run = env.start(CHAIN, "ui-long", &5_000)?;
    env.result(&run)?;
    let recorded = env.history("ui-long")?;
    let handle = bench.client.start(CHAIN, "ui-long", &5_000).await?;
    let run_id = handle.run_id();
    let pool = bench.store.pool();
    let first: Vec<u8> =
        sqlx::query_scalar("SELECT hash FROM reprise.history WHERE run_id = $1 AND seq = 1")
            .bind(run_id.as_uuid())
            .fetch_one(pool)
            .await?;
    let mut hash = ChainHash::from_slice(&first)?;
    let limits = reprise_history::Limits::DEFAULT;
    let mut tx = pool.begin().await?;
    let mut last = 1;
    for event in recorded.events().iter().skip(1) {
        let event = Event {
            seq: Seq::new(event.seq.get()),
            recorded_at: event.recorded_at,
            kind: event.kind.clone(),
        };
        let bytes = event.encode(&limits)?;
        hash = hash.next(&bytes);
        last = i64::try_from(event.seq.get())?;
        sqlx::query(
            "INSERT INTO reprise.history (run_id, seq, recorded_at, kind, event, hash)
             VALUES ($1, $2, now(), $3, $4, $5)",
        )
        .bind(run_id.as_uuid())
        .bind(last)
        .bind(event.kind.name())
        .bind(bytes)
        .bind(hash.as_bytes().as_slice())
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query("UPDATE reprise.runs SET head_seq = $2, head_hash = $3, status = 'completed', closed_at = now() WHERE run_id = $1")
        .bind(run_id.as_uuid())
        .bind(last)
        .bind(hash.as_bytes().as_slice())
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM reprise.ready_runs WHERE run_id = $1")
        .bind(run_id.as_uuid())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(run_id.to_string())
}

/// One GET, timed from connect to the last byte; fails on any status but 200.
async fn get(address: SocketAddr, path: &str) -> anyhow::Result<(f64, usize)> {
    let started = Instant::now();
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let ms = started.elapsed().as_secs_f64() * 1e3;
    anyhow::ensure!(
        response.starts_with(b"HTTP/1.1 200"),
        "GET {path}: {}",
        String::from_utf8_lossy(&response[..response.len().min(300)])
    );
    Ok((ms, response.len()))
}

/// Median and p95 of `SAMPLES` GETs of `path`.
async fn timed(address: SocketAddr, path: &str) -> anyhow::Result<(f64, f64)> {
    get(address, path).await?;
    let mut times = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        times.push(get(address, path).await?.0);
    }
    Ok((percentile(&mut times, 0.5), percentile(&mut times, 0.95)))
}

pub(crate) async fn ui(bench: &Bench) -> anyhow::Result<Vec<Figure>> {
    seed_runs(bench).await?;
    let long = long_run(bench).await?;
    let ui = Ui::new(bench.client.clone(), None, UiOptions::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let server = tokio::spawn(ui.serve(listener, std::future::pending()));
    // The second page: the cursor after the first page's last run.
    let first = bench
        .client
        .list(&reprise_engine::RunFilter::default(), None, 50)
        .await?;
    let after = first.next.map(|c| c.token()).unwrap_or_default();
    let pages: [(&'static str, &'static str, String); 10] = [
        ("runs page", "runs p95", "/runs".to_string()),
        (
            "runs, page 2",
            "runs, page 2 p95",
            format!("/runs?after={after}"),
        ),
        (
            "runs, status",
            "runs, status p95",
            "/runs?status=failed".to_string(),
        ),
        (
            "runs, type+status",
            "runs, type+status p95",
            "/runs?type=type-3&status=completed".to_string(),
        ),
        (
            "runs, rare type",
            "runs, rare type p95",
            "/runs?type=rare".to_string(),
        ),
        (
            "runs, id prefix",
            "runs, id prefix p95",
            "/runs?id=ui-09999".to_string(),
        ),
        ("runs API", "runs API p95", "/api/runs".to_string()),
        (
            "run 10k events",
            "run 10k events p95",
            format!("/runs/{long}"),
        ),
        (
            "run 10k, first page",
            "run 10k, first page p95",
            format!("/runs/{long}?after=0"),
        ),
        (
            "events API page",
            "events API page p95",
            format!("/api/runs/{long}/events?after=5000"),
        ),
    ];
    let mut figures = Vec::new();
    for (median_name, p95_name, path) in &pages {
        let (median, p95) = timed(address, path).await?;
        figures.push(figure(median_name, "ms", median));
        figures.push(figure(p95_name, "ms", p95));
    }
    let (_, bytes) = get(address, &format!("/runs/{long}")).await?;
    figures.push(figure("run 10k page size", "KiB", bytes as f64 / 1024.0));
    server.abort();
    Ok(figures)
}

//! What a workload costs: database transactions, WAL flushes, CPU of PostgreSQL and of the
//! hosts, peak memory; and the database's own ceiling, measured with pgbench.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use sqlx::PgPool;

/// Counters read before and after a workload.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct DbCounters {
    commits: i64,
    wal_syncs: i64,
    cpu_ticks: u64,
    host_ticks: u64,
}

/// What one workflow cost, averaged over a workload.
pub(crate) struct PerWorkflow {
    pub(crate) write_transactions: f64,
    pub(crate) wal_flushes: f64,
    /// Milliseconds of CPU of every `postgres` process.
    pub(crate) database_cpu_ms: f64,
    /// Milliseconds of CPU of the engine, the worker and the bench's client (one process when
    /// in-process).
    pub(crate) hosts_cpu_ms: f64,
}

/// A process's command name and CPU time (user + system clock ticks), from `/proc/<pid>/stat`.
fn process_cpu(stat_path: &Path) -> Option<(String, u64)> {
    let stat = std::fs::read_to_string(stat_path).ok()?;
    let (comm_start, comm_end) = (stat.find('(')?, stat.rfind(')')?);
    let comm = stat.get(comm_start + 1..comm_end)?.to_string();
    let fields: Vec<&str> = stat.get(comm_end + 2..)?.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some((comm, ticks))
}

/// CPU time (clock ticks) of every `postgres` process on this machine.
fn postgres_cpu_ticks() -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|e| process_cpu(&e.path().join("stat")))
        .filter(|(comm, _)| comm == "postgres")
        .map(|(_, ticks)| ticks)
        .sum()
}

/// CPU time (clock ticks) of the given processes (the hosts and this process).
fn hosts_cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|pid| process_cpu(Path::new(&format!("/proc/{pid}/stat"))))
        .map(|(_, ticks)| ticks)
        .sum()
}

/// How long until every backend has published its statistics: an idle backend that flushed
/// less than a second ago waits PostgreSQL's idle interval (10 s) before flushing again.
const STATS_SETTLE: Duration = Duration::from_millis(10_500);

impl DbCounters {
    /// Counters before a workload: waits until earlier work is published first.
    pub(crate) async fn before(pool: &PgPool, hosts: &[u32]) -> anyhow::Result<DbCounters> {
        tokio::time::sleep(STATS_SETTLE).await;
        let wal_syncs = wal_syncs(pool).await?;
        let commits = write_transactions(pool).await?;
        Ok(DbCounters {
            commits,
            wal_syncs,
            cpu_ticks: postgres_cpu_ticks(),
            host_ticks: hosts_cpu_ticks(hosts),
        })
    }

    /// Counters after a workload: transactions and CPU at once (idle polling would add to
    /// them), WAL flushes once every backend has published its statistics.
    pub(crate) async fn after(pool: &PgPool, hosts: &[u32]) -> anyhow::Result<DbCounters> {
        let commits = write_transactions(pool).await?;
        let (cpu_ticks, host_ticks) = (postgres_cpu_ticks(), hosts_cpu_ticks(hosts));
        tokio::time::sleep(STATS_SETTLE).await;
        Ok(DbCounters {
            commits,
            wal_syncs: wal_syncs(pool).await?,
            cpu_ticks,
            host_ticks,
        })
    }

    /// What one of `workflows` cost between `self` and `after`.
    pub(crate) fn per_workflow(self, after: DbCounters, workflows: u64) -> PerWorkflow {
        let n = workflows.max(1) as f64;
        let ms = |ticks: u64| ticks as f64 * 1000.0 / 100.0 / n; // Linux USER_HZ is 100
        PerWorkflow {
            write_transactions: (after.commits - self.commits - 1) as f64 / n,
            wal_flushes: (after.wal_syncs - self.wal_syncs) as f64 / n,
            database_cpu_ms: ms(after.cpu_ticks.saturating_sub(self.cpu_ticks)),
            hosts_cpu_ms: ms(after.host_ticks.saturating_sub(self.host_ticks)),
        }
    }
}

/// Peak resident memory of a process, in MiB (`VmHWM`).
pub(crate) fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_string)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The database's ceiling: single-row INSERT transactions with pgbench, for `seconds`.
/// Returns (transactions per second, average latency in ms).
pub(crate) async fn pgbench(
    pool: &PgPool,
    url: &str,
    bin: &Path,
    clients: u32,
    seconds: u32,
) -> anyhow::Result<(f64, f64)> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS bench_ceiling (id bigserial PRIMARY KEY, v int NOT NULL)",
    )
    .execute(pool)
    .await?;
    let script = std::env::temp_dir().join(format!("reprise-ceiling-{}.sql", std::process::id()));
    std::fs::write(&script, "INSERT INTO bench_ceiling (v) VALUES (1);\n")?;
    let jobs = clients.min(2).to_string();
    let out = Command::new(bin.join("pgbench"))
        .args([
            "-n",
            "-c",
            &clients.to_string(),
            "-j",
            &jobs,
            "-T",
            &seconds.to_string(),
            "-f",
        ])
        .arg(&script)
        .arg(url)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    anyhow::ensure!(
        out.status.success(),
        "pgbench failed: {}{}",
        text,
        String::from_utf8_lossy(&out.stderr)
    );
    let number_after = |label: &str| -> Option<f64> {
        let line = text.lines().find(|l| l.starts_with(label))?;
        line.split('=')
            .nth(1)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let tps = number_after("tps").unwrap_or(0.0);
    let latency = number_after("latency average").unwrap_or(0.0);
    Ok((tps, latency))
}

/// Write transactions so far: transaction ids are given out only to transactions that write,
/// and at once (unlike `pg_stat_database`, which backends publish up to 10 s late). Reading
/// takes one id itself, which the workload's figure does not count.
async fn write_transactions(pool: &PgPool) -> anyhow::Result<i64> {
    let xid: i64 = sqlx::query_scalar("SELECT pg_current_xact_id()::text::bigint")
        .fetch_one(pool)
        .await?;
    Ok(xid)
}

/// WAL flushes so far, as published.
async fn wal_syncs(pool: &PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT wal_sync FROM pg_stat_wal")
        .fetch_one(pool)
        .await?)
}

/// Checkpoints the server has started so far (timed and requested): a checkpoint makes the
/// first write of every page after it carry a full-page image, so it slows whatever runs
/// just after it. `pg_stat_checkpointer` from PostgreSQL 17, `pg_stat_bgwriter` before.
pub(crate) async fn checkpoints(pool: &PgPool) -> anyhow::Result<i64> {
    let newer = sqlx::query_scalar("SELECT num_timed + num_requested FROM pg_stat_checkpointer")
        .fetch_one(pool)
        .await;
    match newer {
        Ok(n) => Ok(n),
        Err(_) => Ok(sqlx::query_scalar(
            "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter",
        )
        .fetch_one(pool)
        .await?),
    }
}

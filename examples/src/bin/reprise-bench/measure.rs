//! What a workload costs: database transactions, WAL flushes, PostgreSQL CPU, peak memory;
//! and the database's own ceiling, measured with pgbench.

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
}

/// CPU time (clock ticks) of every `postgres` process on this machine.
fn postgres_cpu_ticks() -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|stat| {
            let (comm_end, rest) = (stat.find(')')?, stat.rfind(')')?);
            let comm = &stat[stat.find('(')? + 1..comm_end];
            if comm != "postgres" {
                return None;
            }
            let fields: Vec<&str> = stat[rest + 2..].split_whitespace().collect();
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        })
        .sum()
}

impl DbCounters {
    pub(crate) async fn read(pool: &PgPool) -> anyhow::Result<DbCounters> {
        // Statistics reach the shared counters at most once a second from idle backends.
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        let commits: i64 = sqlx::query_scalar(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
        )
        .fetch_one(pool)
        .await?;
        let wal_syncs: i64 = sqlx::query_scalar("SELECT wal_sync FROM pg_stat_wal")
            .fetch_one(pool)
            .await?;
        Ok(DbCounters {
            commits,
            wal_syncs,
            cpu_ticks: postgres_cpu_ticks(),
        })
    }

    /// Per workflow: transactions, WAL flushes, milliseconds of PostgreSQL CPU.
    pub(crate) fn per_workflow(self, after: DbCounters, workflows: u64) -> (f64, f64, f64) {
        let n = workflows.max(1) as f64;
        let ticks_per_second = 100.0; // Linux USER_HZ
        (
            (after.commits - self.commits) as f64 / n,
            (after.wal_syncs - self.wal_syncs) as f64 / n,
            (after.cpu_ticks.saturating_sub(self.cpu_ticks)) as f64 * 1000.0 / ticks_per_second / n,
        )
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

//! The chaos run (issue 19): engine and worker processes SIGKILLed at random and PostgreSQL
//! restarted (fast and immediate) while a few hundred mixed workflows run, then an audit of
//! everything they left: every run closed as expected, every chain verifying, no decision
//! recorded twice, every activity's effect applied once by its idempotency key, attempts
//! counted, the longest stall measured. `tests/examples/chaos.rs` runs the short form;
//! `reprise-chaos --minutes N` the long one. `faults.rs` holds the server and the fleet it
//! kills, `audit.rs` what is checked afterwards.
//!
//! The seed decides the workflow mix, the kill choices and the pauses; process timing is the
//! machine's, so a seed reproduces the plan, not the interleaving.

mod audit;
mod faults;

use audit::audit;
pub use audit::{Figures, Report};
use faults::{Fleet, Server, Spawner, restart, supervise};

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::File;
use std::future::Future;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use futures::future::join_all;
use reprise_devdb::{DevPostgres, StopMode};
use reprise_engine::history::{
    ActivityOptions, DataConverter, EventKind, RecordedHistory, RetryPolicy, RunId, RunState, Seq,
    TaskQueue, Timestamp,
};
use reprise_engine::{
    CancellationToken, Client, EngineOptions, Error, IdReusePolicy, Pool, Reprise, RunFilter,
    RunSummary, StartOptions, Store, WorkerOptions, WorkflowHandle,
};
use reprise_sdk::{
    ActivityCall, ActivityContext, ActivityDef, ActivityError, Cancelled, OperationFailed,
    Registry, SignalDef, WorkflowContext, WorkflowDef, WorkflowError,
};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// The one workflow type: its input says which shape it runs.
pub const CHAOS: WorkflowDef<Shape, u64> = WorkflowDef::new("chaos");
/// Applies one step's effect (a row in `chaos.effects`) and returns `step + 1`.
pub const APPLY: ActivityDef<Step, u64> = ActivityDef::new("chaos-apply");
/// Tells a `Signalled` workflow to do step `n`.
pub const POKE: SignalDef<u32> = SignalDef::new("chaos-poke");

/// What one workflow does. Every decision it makes is unique by construction (a step number,
/// a child id), so a decision recorded twice shows as a repeated key in its history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Shape {
    /// `n` activities one after another.
    Chain(u32),
    /// `n` activities at once.
    FanOut(u32),
    /// `n` activities, each followed by a durable timer of 0.3–0.9 s.
    Timers(u32),
    /// `n` children (each a `Chain(2)`) at once, then one activity.
    Parent(u32),
    /// One activity per distinct signal, until `n` distinct signals came.
    Signalled(u32),
    /// `n` activities, then an hour's timer: the driver cancels it first.
    Cancelled(u32),
    /// `n` activities on the lane whose worker is never killed (10-minute lease).
    Steady(u32),
}

/// Which workers run an activity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Lane {
    /// Workers SIGKILLed at random; attempts have a 5 s start-to-close, so a dead worker's
    /// attempt runs again after 5 s.
    Chaos,
    /// One worker that only sees the database restarts; default options, so the lease is
    /// 10 minutes and any stall here is the restart's alone (issue 19's "Done when").
    Steady,
}

impl Lane {
    /// Its task queue, and its name in `chaos.effects.lane`.
    pub fn queue(self) -> &'static str {
        match self {
            Lane::Chaos => "chaos",
            Lane::Steady => "steady",
        }
    }
}

/// An activity's input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// Unique within its workflow: with the workflow id, the effect's natural key.
    pub step: u32,
    /// Where it runs.
    pub lane: Lane,
}

/// Retried quickly, so that a lost attempt costs its lease and little more.
fn activity_options(lane: Lane) -> ActivityOptions {
    let retry = RetryPolicy {
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(1),
        ..RetryPolicy::default()
    };
    let start_to_close = match lane {
        Lane::Chaos => Some(Duration::from_secs(5)),
        Lane::Steady => None,
    };
    ActivityOptions {
        retry,
        start_to_close,
        ..ActivityOptions::default()
    }
}

fn apply(ctx: &WorkflowContext, step: u32, lane: Lane) -> Result<ActivityCall<u64>, WorkflowError> {
    let queue = TaskQueue::new(lane.queue()).map_err(|e| WorkflowError::from_error(&e))?;
    Ok(ctx
        .activity(APPLY, &Step { step, lane })
        .options(activity_options(lane))
        .task_queue(queue))
}

async fn chain(ctx: &WorkflowContext, n: u32, lane: Lane) -> Result<u64, WorkflowError> {
    let mut total = 0;
    for step in 0..n {
        total += apply(ctx, step, lane)?.await?;
    }
    Ok(total)
}

fn sum(results: Vec<Result<u64, OperationFailed>>) -> Result<u64, WorkflowError> {
    results.into_iter().try_fold(0, |total, r| Ok(total + r?))
}

async fn chaos_workflow(ctx: WorkflowContext, shape: Shape) -> Result<u64, WorkflowError> {
    match shape {
        Shape::Chain(n) => chain(&ctx, n, Lane::Chaos).await,
        Shape::Steady(n) => chain(&ctx, n, Lane::Steady).await,
        Shape::FanOut(n) => {
            let calls: Vec<_> = (0..n)
                .map(|step| apply(&ctx, step, Lane::Chaos))
                .collect::<Result<_, _>>()?;
            sum(join_all(calls).await)
        }
        Shape::Timers(n) => {
            let mut total = 0;
            for step in 0..n {
                total += apply(&ctx, step, Lane::Chaos)?.await?;
                ctx.sleep(Duration::from_millis(300 * u64::from(1 + step % 3)))
                    .await?;
            }
            Ok(total)
        }
        Shape::Parent(n) => {
            let id = ctx.workflow_id();
            let children = (0..n).map(|i| ctx.child(CHAOS, &format!("{id}.{i}"), &Shape::Chain(2)));
            let total = sum(join_all(children).await)?;
            Ok(total + apply(&ctx, 0, Lane::Chaos)?.await?)
        }
        Shape::Signalled(n) => {
            let (mut seen, mut total) = (BTreeSet::new(), 0);
            while seen.len() < n as usize {
                let poke = ctx.signal(POKE).await?;
                // A client that retried a signal whose answer it lost delivers it twice.
                if poke < n && seen.insert(poke) {
                    total += apply(&ctx, poke, Lane::Chaos)?.await?;
                }
            }
            Ok(total)
        }
        Shape::Cancelled(n) => {
            chain(&ctx, n, Lane::Chaos).await?;
            // Asked before the timer exists: a timer started after the request would run.
            if ctx.is_cancel_requested() {
                return Err(Cancelled.into());
            }
            ctx.sleep(Duration::from_secs(3_600)).await?;
            Err(WorkflowError::failed(
                "NotCancelled",
                "an hour passed without a cancel",
            ))
        }
    }
}

/// The effect of one step, applied at most once per (workflow, step). The first application
/// inserts the row, timed by the server's clock (`clock_timestamp()`: the transaction's
/// `now()` would do for one statement, but says less). A later attempt with the same
/// idempotency key changes nothing but `reruns`; another key for the same step — the step
/// decided twice — counts in `duplicates`, which must stay 0.
const APPLY_SQL: &str = "INSERT INTO chaos.effects AS e
       (workflow_id, step, idem_key, run_id, scheduled_seq, lane, applied_at)
VALUES ($1, $2, $3, $4, $5, $6, clock_timestamp())
    ON CONFLICT (workflow_id, step) DO UPDATE
   SET reruns     = e.reruns     + (e.idem_key =  EXCLUDED.idem_key)::int,
       duplicates = e.duplicates + (e.idem_key <> EXCLUDED.idem_key)::int";

/// The harness's own table, beside Reprise's schema in the test's own cluster.
const EFFECTS_TABLE_SQL: &str = "CREATE SCHEMA IF NOT EXISTS chaos;
CREATE TABLE IF NOT EXISTS chaos.effects (
    workflow_id   text        NOT NULL,
    step          bigint      NOT NULL,
    idem_key      text        NOT NULL,
    run_id        uuid        NOT NULL,
    scheduled_seq bigint      NOT NULL,
    lane          text        NOT NULL,
    applied_at    timestamptz NOT NULL,
    reruns        int         NOT NULL DEFAULT 0,
    duplicates    int         NOT NULL DEFAULT 0,
    PRIMARY KEY (workflow_id, step));";

async fn apply_effect(pool: Pool, ctx: ActivityContext, step: Step) -> Result<u64, ActivityError> {
    let info = ctx.info();
    sqlx::query(APPLY_SQL)
        .bind(info.workflow_id.as_str())
        .bind(i64::from(step.step))
        .bind(ctx.idempotency_key())
        .bind(info.run_id.as_uuid())
        .bind(i64::try_from(info.scheduled_seq.get())?)
        .bind(step.lane.queue())
        .execute(&pool)
        .await?; // a database error is a retryable failure: the next attempt applies it
    // Widens the window between the effect and its recorded outcome, where a kill or a
    // restart makes the attempt run again and the key must keep it from applying twice.
    tokio::time::sleep(Duration::from_millis(10 + 10 * u64::from(step.step % 5))).await;
    Ok(u64::from(step.step) + 1)
}

/// The chaos workflow and its activity; the activity writes its effects through `pool`.
pub fn registry(pool: Pool) -> Result<Registry, reprise_sdk::Error> {
    Registry::builder()
        .workflow(CHAOS, chaos_workflow)
        .activity(APPLY, move |ctx, step| {
            apply_effect(pool.clone(), ctx, step)
        })
        .build()
}

/// What the audit expects of a run of a shape (for `Cancelled`, upper bounds).
struct Expected {
    status: RunState,
    activities: usize,
    timers: usize,
    children: usize,
    result: Option<u64>,
}

impl Shape {
    fn expected(self) -> Expected {
        let sum = |n: u32| u64::from(n) * (u64::from(n) + 1) / 2;
        let done = |activities: u32, timers: u32, children: u32, result| Expected {
            status: RunState::Completed,
            activities: activities as usize,
            timers: timers as usize,
            children: children as usize,
            result: Some(result),
        };
        match self {
            Shape::Chain(n) | Shape::FanOut(n) | Shape::Signalled(n) | Shape::Steady(n) => {
                done(n, 0, 0, sum(n))
            }
            Shape::Timers(n) => done(n, n, 0, sum(n)),
            Shape::Parent(n) => done(1, 0, n, 3 * u64::from(n) + 1),
            Shape::Cancelled(n) => Expected {
                status: RunState::Cancelled,
                result: None,
                ..done(n, 1, 0, 0)
            },
        }
    }
}

/// One process of the fleet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostRole {
    /// An engine on the `default` workflow queue.
    Engine,
    /// A worker on the `chaos` lane.
    ChaosWorker,
    /// The worker on the `steady` lane, never killed.
    SteadyWorker,
}

impl HostRole {
    const ALL: [HostRole; 3] = [
        HostRole::Engine,
        HostRole::ChaosWorker,
        HostRole::SteadyWorker,
    ];

    /// Its argument to `reprise-chaos host`.
    pub fn arg(self) -> &'static str {
        match self {
            HostRole::Engine => "engine",
            HostRole::ChaosWorker => "chaos-worker",
            HostRole::SteadyWorker => "steady-worker",
        }
    }

    /// The role an argument names.
    pub fn from_arg(arg: &str) -> Option<HostRole> {
        HostRole::ALL.into_iter().find(|r| r.arg() == arg)
    }
}

/// Runs one host of the fleet until SIGINT (or SIGKILL, the usual end): `reprise-chaos host`.
pub async fn serve_host(url: &str, role: HostRole) -> anyhow::Result<()> {
    let pool = reprise_engine::pool_options()
        .max_connections(16)
        .connect(url)
        .await?;
    // Migrated once by the driver: a host that starts while the server restarts fails here
    // or below, exits, and is started again by the fleet.
    let builder = Reprise::builder()
        .pool(pool.clone())
        .migrate(false)
        .registry(registry(pool)?);
    let poll = Duration::from_millis(200);
    let builder = match role {
        HostRole::Engine => builder.engine(EngineOptions {
            idle_poll: poll,
            ..EngineOptions::default()
        }),
        HostRole::ChaosWorker | HostRole::SteadyWorker => {
            let lane = if role == HostRole::ChaosWorker {
                Lane::Chaos
            } else {
                Lane::Steady
            };
            builder.worker(WorkerOptions {
                queues: vec![lane.queue().to_string()],
                idle_poll: poll,
                ..WorkerOptions::default()
            })
        }
    };
    let reprise = builder.start().await?;
    reprise
        .run_until(async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        })
        .await?;
    Ok(())
}

/// SplitMix64: seeded, no dependency, good enough to pick victims and pauses.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.below(to.saturating_sub(from) + 1))
    }

    fn pause(&mut self, range: &RangeInclusive<Duration>) -> Duration {
        let millis = |d: &Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self.millis(millis(range.start()), millis(range.end()))
    }
}

/// A restart of PostgreSQL in the schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Restart {
    /// When, from the first start.
    pub at: Duration,
    /// How the server is stopped.
    pub mode: StopMode,
}

/// How a run goes.
#[derive(Clone, Debug)]
pub struct Config {
    /// Decides the mix, the victims and the pauses (printed with the report).
    pub seed: u64,
    /// The `reprise-chaos` executable the hosts run.
    pub host_exe: PathBuf,
    /// Top-level workflows (children come on top).
    pub workflows: usize,
    /// Longest chain or fan-out.
    pub max_len: u32,
    /// The starts are spread over this long.
    pub start_over: Duration,
    /// Kills and restarts happen for this long from the first start.
    pub faults_for: Duration,
    /// A kill after a pause drawn from this range.
    pub kill_every: RangeInclusive<Duration>,
    /// Restarts of PostgreSQL.
    pub restarts: Vec<Restart>,
    /// After the faults, every run must close within this long.
    pub settle_within: Duration,
    /// Longest acceptable stall on the chaos lane: a liveness bound, far above what a few
    /// killed attempts (a 5 s lease each, then backoff) cost, not a speed figure.
    pub max_stall_chaos: Duration,
    /// Longest acceptable stall on the steady lane: a liveness bound a tenth of its 10-minute
    /// lease, which an outcome given up on would wait out; the figure itself is printed.
    pub max_stall_steady: Duration,
    /// The fleet.
    pub roles: Vec<HostRole>,
}

impl Config {
    /// About a minute: 150 workflows, 30 s of faults with one fast and one immediate restart.
    pub fn short(host_exe: PathBuf, seed: u64) -> Config {
        Config {
            seed,
            host_exe,
            workflows: 150,
            max_len: 6,
            start_over: Duration::from_secs(15),
            faults_for: Duration::from_secs(30),
            kill_every: Duration::from_millis(300)..=Duration::from_millis(700),
            restarts: vec![
                Restart {
                    at: Duration::from_secs(10),
                    mode: StopMode::Fast,
                },
                Restart {
                    at: Duration::from_secs(20),
                    mode: StopMode::Immediate,
                },
            ],
            settle_within: Duration::from_secs(90),
            max_stall_chaos: Duration::from_secs(120),
            max_stall_steady: Duration::from_secs(60),
            roles: vec![
                HostRole::Engine,
                HostRole::Engine,
                HostRole::ChaosWorker,
                HostRole::ChaosWorker,
                HostRole::SteadyWorker,
            ],
        }
    }

    /// `minutes` of faults, 300 workflows a minute, a restart every 40–80 s alternating
    /// fast and immediate.
    pub fn long(host_exe: PathBuf, seed: u64, minutes: u64) -> Config {
        let faults_for = Duration::from_secs(60 * minutes.max(1));
        let mut rng = Rng(seed ^ 0x5245_5354);
        let (mut restarts, mut at) = (Vec::new(), Duration::ZERO);
        loop {
            at += rng.millis(40_000, 80_000);
            if at + Duration::from_secs(10) > faults_for {
                break;
            }
            let mode = if restarts.len() % 2 == 0 {
                StopMode::Fast
            } else {
                StopMode::Immediate
            };
            restarts.push(Restart { at, mode });
        }
        Config {
            workflows: 300 * minutes.max(1) as usize,
            max_len: 10,
            start_over: faults_for.saturating_sub(Duration::from_secs(20)),
            faults_for,
            restarts,
            settle_within: Duration::from_secs(300),
            ..Config::short(host_exe, seed)
        }
    }
}

/// `REPRISE_CHAOS_SEED` if set (to replay a plan), else a fresh one.
pub fn seed_from_env() -> u64 {
    std::env::var("REPRISE_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::UNIX_EPOCH
                .elapsed()
                .map_or(1, |d| d.as_nanos() as u64)
        })
}

/// The plan: top-level workflow ids and shapes.
fn plan(rng: &mut Rng, workflows: usize, max_len: u32) -> Vec<(String, Shape)> {
    (0..workflows)
        .map(|i| {
            let n = 1 + rng.below(u64::from(max_len)) as u32;
            let shape = match i % 7 {
                0 => Shape::Chain(n),
                1 => Shape::FanOut(2 * n),
                2 => Shape::Timers(1 + n / 3),
                3 => Shape::Parent(1 + n / 3),
                4 => Shape::Signalled(1 + n / 2),
                5 => Shape::Cancelled(1 + n / 3),
                _ => Shape::Steady(n),
            };
            (format!("chaos-{i}"), shape)
        })
        .collect()
}

/// A pause between tries of a client call, and the most tries: about a minute.
const CLIENT_PAUSE: Duration = Duration::from_millis(100);
const CLIENT_TRIES: u32 = 600;

/// Runs a client call again while it fails with a retryable error (a restart in progress);
/// returns its outcome and how many tries failed. Until the client rides through restarts
/// itself (issue 19), this is the harness's job; the count is reported, and should drop to 0.
async fn retrying<T, F: Future<Output = reprise_engine::Result<T>>>(
    mut call: impl FnMut() -> F,
) -> (reprise_engine::Result<T>, u32) {
    let mut failed = 0;
    loop {
        match call().await {
            Err(e) if e.is_retryable() && failed < CLIENT_TRIES => {
                failed += 1;
                tokio::time::sleep(CLIENT_PAUSE).await;
            }
            outcome => return (outcome, failed),
        }
    }
}

/// Starts a workflow once: a try whose answer was lost may have started it, so a retry
/// refuses a second run (`RejectDuplicate`) and takes the first one's handle instead.
async fn start_once(
    client: &Client,
    id: &str,
    shape: Shape,
) -> anyhow::Result<(WorkflowHandle<u64>, u32)> {
    let options = || StartOptions {
        id_reuse: IdReusePolicy::RejectDuplicate,
        ..StartOptions::default()
    };
    let (started, failed) =
        retrying(|| client.start_with_options(CHAOS, id, &shape, options())).await;
    match started {
        Ok(handle) => Ok((handle, failed)),
        Err(Error::WorkflowIdReused { .. }) => {
            let (handle, more) = retrying(|| client.handle(CHAOS, id)).await;
            Ok((handle?, failed + more))
        }
        Err(e) => Err(e.into()),
    }
}

/// What driving one workflow took: client tries that failed, and a call that failed for good.
struct Driven {
    retries: u32,
    problem: Option<String>,
}

/// Sends a workflow its signals or its cancel (at the planned moments), then waits for it to
/// close, through restarts.
async fn drive(
    client: Client,
    handle: WorkflowHandle<u64>,
    shape: Shape,
    pauses: Vec<Duration>,
) -> Driven {
    let id = handle.workflow_id().to_string();
    let (mut retries, mut problem) = (0, None);
    for (i, pause) in (0u32..).zip(pauses) {
        tokio::time::sleep(pause).await;
        let (sent, failed) = match shape {
            Shape::Cancelled(_) => retrying(|| client.cancel(&id, "chaos")).await,
            _ => retrying(|| client.signal(&id, POKE, &i)).await,
        };
        retries += failed;
        match sent {
            // A retry of a call whose answer was lost can find the run closed by it.
            Ok(()) | Err(Error::WorkflowClosed { .. }) => {}
            Err(e) => problem = Some(format!("{id}: {e}")),
        }
    }
    let (_, failed) = retrying(|| handle.result()).await; // the audit reads how it ended
    Driven {
        retries: retries + failed,
        problem,
    }
}

/// Runs the whole thing: cluster, fleet, faults, workflows, audit.
pub async fn run(config: Config) -> anyhow::Result<Report> {
    let name = format!("reprise-chaos-{}-{:x}", std::process::id(), config.seed);
    let dir = std::env::temp_dir().join(name);
    let server = Arc::new(tokio::task::spawn_blocking(move || Server::create(dir)).await??);
    let pool = reprise_engine::pool_options()
        .max_connections(16)
        .connect(&server.url)
        .await?;
    reprise_engine::schema::migrate(&pool).await?;
    sqlx::raw_sql(EFFECTS_TABLE_SQL).execute(&pool).await?;
    let client = Client::new(Store::new(pool.clone()));
    let log = server.dir.join("hosts.log");
    let spawner = Spawner {
        exe: config.host_exe.clone(),
        url: server.url.clone(),
        log,
    };
    let fleet = Fleet::start(spawner, &config.roles)?;

    let mut rng = Rng(config.seed);
    let began = Instant::now();
    let (stop, faults_end) = (CancellationToken::new(), began + config.faults_for);
    let every = config.kill_every.clone();
    let supervisor = tokio::spawn(supervise(
        fleet,
        Rng(rng.next()),
        every,
        faults_end,
        stop.clone(),
    ));
    let restarts = tokio::spawn(restart(server.clone(), config.restarts.clone(), began));
    let plan = plan(&mut rng, config.workflows, config.max_len);
    let (mut figures, mut problems) = (Figures::default(), Vec::new());
    let drivers = start_all(&client, &plan, &mut rng, config.start_over, &mut figures).await?;
    let (restarted, longest_restart) = restarts.await??;
    tokio::time::sleep_until(faults_end).await;
    let settling = Instant::now();
    settle(drivers, config.settle_within, &mut figures, &mut problems).await?;
    figures.settled_in = settling.elapsed();
    figures.faults_for = config.faults_for;
    figures.restarts_fast = restarted.iter().filter(|m| **m == StopMode::Fast).count() as u32;
    figures.restarts_immediate = restarted.len() as u32 - figures.restarts_fast;
    figures.longest_restart = longest_restart;
    audit(&client, &pool, &plan, &config, &mut figures, &mut problems).await?;
    stop.cancel();
    let kills = supervisor.await??;
    figures.engine_kills = kills.engines;
    figures.worker_kills = kills.workers;
    figures.hosts_exited = kills.exited;
    server.keep.store(!problems.is_empty(), Ordering::Relaxed);
    let kept = (!problems.is_empty()).then(|| server.dir.clone());
    Ok(Report {
        seed: config.seed,
        figures,
        problems,
        kept,
    })
}

/// Starts the plan's workflows, spread over `over`, each with a task that drives it.
async fn start_all(
    client: &Client,
    plan: &[(String, Shape)],
    rng: &mut Rng,
    over: Duration,
    figures: &mut Figures,
) -> anyhow::Result<JoinSet<Driven>> {
    let (mut drivers, gap) = (JoinSet::new(), over / u32::try_from(plan.len().max(1))?);
    for (id, shape) in plan {
        let (handle, failed) = start_once(client, id, *shape).await?;
        figures.client_retries += failed;
        let pauses = match shape {
            Shape::Signalled(n) => (0..*n).map(|_| rng.millis(100, 1_500)).collect(),
            Shape::Cancelled(_) => vec![rng.millis(200, 3_000)],
            _ => Vec::new(),
        };
        drivers.spawn(drive(client.clone(), handle, *shape, pauses));
        tokio::time::sleep(gap).await;
    }
    Ok(drivers)
}

/// Waits for every driver (every workflow closed) within `within`; those still going are
/// a problem, and the audit names their runs.
async fn settle(
    mut drivers: JoinSet<Driven>,
    within: Duration,
    figures: &mut Figures,
    problems: &mut Vec<String>,
) -> anyhow::Result<()> {
    let closed = tokio::time::timeout(within, async {
        while let Some(driven) = drivers.join_next().await {
            let driven = driven?;
            figures.client_retries += driven.retries;
            problems.extend(driven.problem);
        }
        anyhow::Ok(())
    })
    .await;
    match closed {
        Ok(drove) => drove,
        Err(_) => {
            problems.push(format!(
                "{} workflows still open {within:?} after the faults",
                drivers.len()
            ));
            Ok(())
        }
    }
}

//! The audit of a chaos run: what every run, history and effect must show afterwards, and
//! the figures it prints.

use super::*;

/// What a chaos run found.
#[derive(Clone, Debug, Default)]
pub struct Figures {
    /// Runs audited (children included), completed, and cancelled as asked.
    pub runs: usize,
    /// Of which completed.
    pub completed: usize,
    /// Of which cancelled.
    pub cancelled: usize,
    /// Engine processes SIGKILLed.
    pub engine_kills: u32,
    /// Worker processes SIGKILLed.
    pub worker_kills: u32,
    /// Hosts that exited on their own and were started again.
    pub hosts_exited: u32,
    /// `pg_ctl restart -m fast`.
    pub restarts_fast: u32,
    /// `pg_ctl restart -m immediate`.
    pub restarts_immediate: u32,
    /// The longest restart, stop to accepting connections.
    pub longest_restart: Duration,
    /// Activities completed.
    pub activities: usize,
    /// Attempts beyond the first, over all completed activities (from history).
    pub attempts_rerun: u64,
    /// Attempts that found their effect already applied under their key (from the effects).
    pub reapplied_by_key: i64,
    /// Effects applied a second time under another key: must be 0.
    pub effects_applied_twice: i64,
    /// Longest time from an effect to its `ActivityCompleted`, chaos lane (workers killed).
    pub longest_stall_chaos: Duration,
    /// The same on the steady lane (worker never killed, 10-minute lease).
    pub longest_stall_steady: Duration,
    /// Client calls the harness had to try again (`result()`, signals, cancels, starts).
    pub client_retries: u32,
    /// Sessions idle in a transaction for over a second once everything closed.
    pub idle_in_transaction: i64,
    /// How long faults ran.
    pub faults_for: Duration,
    /// How long after the faults the last run closed.
    pub settled_in: Duration,
}

/// The figures and every broken rule, each naming its run.
#[derive(Clone, Debug)]
pub struct Report {
    /// The seed to replay the plan with (`REPRISE_CHAOS_SEED`).
    pub seed: u64,
    /// The figures.
    pub figures: Figures,
    /// Every broken rule; a good run has none.
    pub problems: Vec<String>,
    /// The folder kept for a look (server and hosts' logs) when there were problems.
    pub kept: Option<PathBuf>,
}

/// An activity a history scheduled, and, once completed, when and on which attempt.
pub(super) struct Scheduled {
    pub(super) workflow_id: String,
    pub(super) step: u32,
    pub(super) completed: Option<(Timestamp, u32)>,
}

/// One row of `chaos.effects`.
#[derive(sqlx::FromRow)]
pub(super) struct EffectRow {
    pub(super) workflow_id: String,
    pub(super) step: i64,
    pub(super) run_id: uuid::Uuid,
    pub(super) scheduled_seq: i64,
    pub(super) lane: String,
    pub(super) applied_us: i64,
    pub(super) reruns: i32,
    pub(super) duplicates: i32,
}

/// Every run, every chain, every effect (see the module doc).
pub(super) async fn audit(
    client: &Client,
    pool: &Pool,
    plan: &[(String, Shape)],
    config: &Config,
    figures: &mut Figures,
    problems: &mut Vec<String>,
) -> anyhow::Result<()> {
    let runs = all_runs(client).await?;
    let heads: BTreeMap<uuid::Uuid, Vec<u8>> =
        sqlx::query_as("SELECT run_id, head_hash FROM reprise.runs")
            .fetch_all(pool)
            .await?
            .into_iter()
            .collect();
    let children: u32 = plan
        .iter()
        .map(|(_, s)| if let Shape::Parent(n) = s { *n } else { 0 })
        .sum();
    let ids: BTreeSet<&str> = runs.iter().map(|r| r.workflow_id.as_str()).collect();
    if runs.len() != plan.len() + children as usize || ids.len() != runs.len() {
        problems.push(format!(
            "{} runs of {} workflow ids; planned {} workflows and {children} children",
            runs.len(),
            ids.len(),
            plan.len()
        ));
    }
    let mut scheduled = BTreeMap::new();
    for run in &runs {
        let history = match client.export(run.run_id).await {
            Ok(history) => history,
            Err(e) => {
                problems.push(format!("{}: history does not verify: {e}", run.workflow_id));
                continue;
            }
        };
        let head = history.head_hash()?;
        if heads.get(run.run_id.as_uuid()).map(Vec::as_slice) != Some(head.as_bytes().as_slice()) {
            problems.push(format!(
                "{}: the run's head hash is not its chain's",
                run.workflow_id
            ));
        }
        audit_run(run, &history, client.converter(), &mut scheduled, problems);
        figures.completed += usize::from(run.status == RunState::Completed);
        figures.cancelled += usize::from(run.status == RunState::Cancelled);
    }
    figures.runs = runs.len();
    audit_effects(pool, &scheduled, config, figures, problems).await?;
    figures.idle_in_transaction = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
            AND state LIKE 'idle in transaction%'
            AND state_change < clock_timestamp() - interval '1 second'",
    )
    .fetch_one(pool)
    .await?;
    if figures.idle_in_transaction > 0 {
        problems.push(format!(
            "{} sessions idle in a transaction",
            figures.idle_in_transaction
        ));
    }
    Ok(())
}

pub(super) async fn all_runs(client: &Client) -> anyhow::Result<Vec<RunSummary>> {
    let (mut runs, mut after) = (Vec::new(), None);
    loop {
        let page = client.list(&RunFilter::default(), after, 500).await?;
        runs.extend(page.runs);
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(runs),
        }
    }
}

/// What a run decided, keyed by what makes each decision unique.
#[derive(Default)]
pub(super) struct Decisions {
    pub(super) steps: BTreeSet<u32>,
    pub(super) timers: usize,
    pub(super) children: BTreeSet<String>,
    pub(super) result: Option<u64>,
}

/// One run against its shape: how it closed, its decisions (none twice, none missing), its
/// result; its activities go into `scheduled` for the effects' audit.
pub(super) fn audit_run(
    run: &RunSummary,
    history: &RecordedHistory,
    converter: &DataConverter,
    scheduled: &mut BTreeMap<(RunId, Seq), Scheduled>,
    problems: &mut Vec<String>,
) {
    let id = run.workflow_id.as_str();
    let mut problem = |what: String| problems.push(format!("{id}: {what}"));
    let shape = match history.events().first().map(|e| &e.kind) {
        Some(EventKind::WorkflowStarted(s)) => converter.from_payload::<Shape>(&s.input),
        _ => return problem("no WorkflowStarted first".into()),
    };
    let Ok(shape) = shape else {
        return problem("its input is no Shape".into());
    };
    let expected = shape.expected();
    if run.status != expected.status || run.parked_reason.is_some() {
        let parked = &run.parked_reason;
        problem(format!(
            "{} (parked: {parked:?}), expected {}",
            run.status, expected.status
        ));
    }
    let d = decisions(run, history, converter, scheduled, &mut problem);
    let found = (d.steps.len(), d.timers, d.children.len());
    let wanted = (expected.activities, expected.timers, expected.children);
    let bounded = found.0 <= wanted.0 && found.1 <= wanted.1 && found.2 == 0;
    let right = match expected.status {
        RunState::Completed => found == wanted && d.result == expected.result,
        _ => bounded,
    };
    if !right {
        problem(format!(
            "{shape:?}: (activities, timers, children) {found:?}, result {:?}",
            d.result
        ));
    }
}

/// Reads a run's decisions (a step or child twice is a problem) and records its activities.
pub(super) fn decisions(
    run: &RunSummary,
    history: &RecordedHistory,
    converter: &DataConverter,
    scheduled: &mut BTreeMap<(RunId, Seq), Scheduled>,
    problem: &mut impl FnMut(String),
) -> Decisions {
    let mut d = Decisions::default();
    for event in history.events() {
        let seq = event.seq;
        match &event.kind {
            EventKind::ActivityScheduled(s) => match converter.from_payload::<Step>(&s.input) {
                Ok(Step { step, .. }) => {
                    if !d.steps.insert(step) {
                        problem(format!("step {step} decided twice (seq {seq})"));
                    }
                    let workflow_id = run.workflow_id.to_string();
                    scheduled.insert(
                        (run.run_id, seq),
                        Scheduled {
                            workflow_id,
                            step,
                            completed: None,
                        },
                    );
                }
                Err(e) => problem(format!("seq {seq}: {e}")),
            },
            EventKind::ActivityCompleted(c) => {
                if let Some(s) = scheduled.get_mut(&(run.run_id, c.scheduled)) {
                    s.completed = Some((event.recorded_at, c.attempt));
                }
            }
            EventKind::ActivityFailed(_) | EventKind::ActivityTimedOut(_) => {
                problem(format!("an activity gave up (seq {seq})"))
            }
            EventKind::TimerStarted(_) => d.timers += 1,
            EventKind::ChildWorkflowStarted(c) => {
                let first = d.children.insert(c.workflow_id.to_string());
                if !first {
                    problem(format!("child {} started twice", c.workflow_id));
                }
            }
            EventKind::WorkflowCompleted(c) => d.result = converter.from_payload(&c.result).ok(),
            _ => {}
        }
    }
    d
}

/// Every effect against the histories: applied once, by a scheduled activity, and, if that
/// activity completed, before its completion — the gap is the stall.
pub(super) async fn audit_effects(
    pool: &Pool,
    scheduled: &BTreeMap<(RunId, Seq), Scheduled>,
    config: &Config,
    figures: &mut Figures,
    problems: &mut Vec<String>,
) -> anyhow::Result<()> {
    let effects: Vec<EffectRow> = sqlx::query_as(
        "SELECT workflow_id, step, run_id, scheduled_seq, lane, reruns, duplicates,
                (extract(epoch FROM applied_at) * 1000000)::bigint AS applied_us
           FROM chaos.effects",
    )
    .fetch_all(pool)
    .await?;
    let mut with_effect = BTreeSet::new();
    for e in &effects {
        figures.reapplied_by_key += i64::from(e.reruns);
        figures.effects_applied_twice += i64::from(e.duplicates);
        if e.duplicates > 0 {
            problems.push(format!(
                "{} step {}: effect applied {} more times under other keys",
                e.workflow_id, e.step, e.duplicates
            ));
        }
        let key = (
            RunId::from_uuid(e.run_id),
            Seq::new(u64::try_from(e.scheduled_seq)?),
        );
        let Some(s) = scheduled
            .get(&key)
            .filter(|s| s.workflow_id == e.workflow_id && i64::from(s.step) == e.step)
        else {
            problems.push(format!(
                "{} step {}: an effect no history scheduled",
                e.workflow_id, e.step
            ));
            continue;
        };
        with_effect.insert(key);
        let Some((completed_at, _)) = s.completed else {
            continue;
        };
        let stall = Duration::from_micros(
            u64::try_from(completed_at.as_unix_micros() - e.applied_us).unwrap_or(0),
        );
        let (longest, limit) = match e.lane.as_str() {
            "steady" => (&mut figures.longest_stall_steady, config.max_stall_steady),
            _ => (&mut figures.longest_stall_chaos, config.max_stall_chaos),
        };
        *longest = (*longest).max(stall);
        if stall > limit {
            problems.push(format!(
                "{} step {}: {stall:?} from effect to completion ({} lane)",
                e.workflow_id, e.step, e.lane
            ));
        }
    }
    for (key, s) in scheduled.iter().filter(|(_, s)| s.completed.is_some()) {
        figures.activities += 1;
        figures.attempts_rerun += s
            .completed
            .map_or(0, |(_, attempt)| u64::from(attempt.saturating_sub(1)));
        if !with_effect.contains(key) {
            problems.push(format!(
                "{} step {}: completed without its effect",
                s.workflow_id, s.step
            ));
        }
    }
    Ok(())
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = &self.figures;
        writeln!(
            f,
            "chaos run, seed {} ({:?} of faults, closed {:.1?} after)",
            self.seed, g.faults_for, g.settled_in
        )?;
        writeln!(
            f,
            "runs                    {} ({} completed, {} cancelled as asked)",
            g.runs, g.completed, g.cancelled
        )?;
        writeln!(
            f,
            "kills (SIGKILL)         {} ({} engines, {} workers); {} hosts exited on their own",
            g.engine_kills + g.worker_kills,
            g.engine_kills,
            g.worker_kills,
            g.hosts_exited
        )?;
        writeln!(
            f,
            "PostgreSQL restarts     {} fast, {} immediate (longest {:.1?})",
            g.restarts_fast, g.restarts_immediate, g.longest_restart
        )?;
        writeln!(
            f,
            "activities              {} completed; {} attempts re-run; {} re-applications refused by key",
            g.activities, g.attempts_rerun, g.reapplied_by_key
        )?;
        writeln!(
            f,
            "longest stall           {:.1?} chaos lane (5 s start-to-close), {:.1?} steady lane (10-min lease)",
            g.longest_stall_chaos, g.longest_stall_steady
        )?;
        writeln!(f, "effects applied twice   {}", g.effects_applied_twice)?;
        writeln!(
            f,
            "client calls retried    {}; sessions idle in transaction {}",
            g.client_retries, g.idle_in_transaction
        )?;
        writeln!(f, "problems                {}", self.problems.len())?;
        for problem in self.problems.iter().take(30) {
            writeln!(f, "  {problem}")?;
        }
        if let Some(dir) = &self.kept {
            writeln!(
                f,
                "kept for a look: {} (server.log, hosts.log)",
                dir.display()
            )?;
        }
        Ok(())
    }
}

//! Local activities against activities: chain10 (300 workflows of 10 sequential steps) run
//! with activities and with local activities, alternated in one repetition (A, L, L, A) so
//! that both see the same machine and the same database.

use reprise_examples::bench::{CHAIN, LOCAL_CHAIN};
use reprise_sdk::WorkflowDef;

use crate::measure::{DbCounters, PerWorkflow};
use crate::setup::Bench;
use crate::workloads::{Figure, figure, start_many, wait_completed};

const WORKFLOWS: usize = 300;
const STEPS: u32 = 10;

/// One chain10 round: steps per second, and the cost per workflow.
async fn round(bench: &Bench, def: WorkflowDef<u32, u64>) -> anyhow::Result<(f64, PerWorkflow)> {
    let before = DbCounters::before(bench.store.pool(), &bench.host_pids()).await?;
    let prefix = start_many(bench, def, WORKFLOWS, &STEPS).await?;
    let span = wait_completed(bench, &prefix, WORKFLOWS).await?;
    let after = DbCounters::after(bench.store.pool(), &bench.host_pids()).await?;
    let steps = (WORKFLOWS as f64) * f64::from(STEPS) / span;
    Ok((steps, before.per_workflow(after, WORKFLOWS as u64)))
}

pub(crate) async fn local(bench: &Bench) -> anyhow::Result<Vec<Figure>> {
    let mut activities = Vec::new();
    let mut locals = Vec::new();
    for def in [CHAIN, LOCAL_CHAIN, LOCAL_CHAIN, CHAIN] {
        let measured = round(bench, def).await?;
        if def.name() == CHAIN.name() {
            activities.push(measured);
        } else {
            locals.push(measured);
        }
    }
    let mean = |rounds: &[(f64, PerWorkflow)], of: fn(&(f64, PerWorkflow)) -> f64| {
        rounds.iter().map(of).sum::<f64>() / rounds.len() as f64
    };
    let steps = |r: &(f64, PerWorkflow)| r.0;
    let transactions = |r: &(f64, PerWorkflow)| r.1.write_transactions;
    let database = |r: &(f64, PerWorkflow)| r.1.database_cpu_ms;
    let hosts = |r: &(f64, PerWorkflow)| r.1.hosts_cpu_ms;
    Ok(vec![
        figure("activities: steps", "steps/s", mean(&activities, steps)),
        figure("local: steps", "steps/s", mean(&locals, steps)),
        figure(
            "local / activities steps",
            "x",
            mean(&locals, steps) / mean(&activities, steps),
        ),
        figure(
            "activities: write tx/workflow",
            "",
            mean(&activities, transactions),
        ),
        figure("local: write tx/workflow", "", mean(&locals, transactions)),
        figure(
            "activities: DB CPU/workflow",
            "ms",
            mean(&activities, database),
        ),
        figure("local: DB CPU/workflow", "ms", mean(&locals, database)),
        figure(
            "activities: hosts CPU/workflow",
            "ms",
            mean(&activities, hosts),
        ),
        figure("local: hosts CPU/workflow", "ms", mean(&locals, hosts)),
    ])
}

//! `check_determinism`: run a workflow live under many completion orders and replay each
//! history, so nondeterminism shows up in a unit test instead of in production.

use reprise_sdk::{Execution, InputChanges, WorkflowDef};
use serde::Serialize;

use crate::env::TestEnv;
use crate::error::Error;

/// Runs the workflow once per seed in `seeds`, each time with activities finishing in the
/// order that seed draws, then replays every history against the same code, strictly: a
/// decision the code gives another input on replay (`HashMap` order, the clock) fails it with
/// ND08, naming the seq and the source line. `env` builds a fresh environment (registry and
/// stand-ins) for each run. Returns how many histories replayed.
pub fn check_determinism<I: Serialize, O>(
    env: impl Fn() -> Result<TestEnv, Error>,
    def: WorkflowDef<I, O>,
    input: &I,
    seeds: impl IntoIterator<Item = u64>,
) -> Result<usize, Error> {
    let mut checked = 0;
    for seed in seeds {
        let mut test_env = env()?.with_order_seed(seed);
        let workflow_id = format!("determinism-{seed}");
        test_env.start(def, &workflow_id, input)?;
        test_env.run_until_idle()?;
        let history = test_env.history(&workflow_id)?;
        Execution::replay_with(test_env.registry(), history.events(), InputChanges::Fail)
            .map_err(|source| Error::NotDeterministic { seed, source })?;
        checked += 1;
    }
    Ok(checked)
}

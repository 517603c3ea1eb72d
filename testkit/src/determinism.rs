//! `check_determinism`: run a workflow live under many completion orders and replay each
//! history, so nondeterminism shows up in a unit test instead of in production.

use reprise_sdk::{Execution, WorkflowDef};
use serde::Serialize;

use crate::env::TestEnv;
use crate::error::Error;

/// Runs the workflow once per seed in `seeds`, each time with activities finishing in the
/// order that seed draws, then replays every history against the same code. `env` builds a
/// fresh environment (registry and stand-ins) for each run. Returns how many histories replayed.
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
        Execution::replay(test_env.registry(), history.events())
            .map_err(|source| Error::NotDeterministic { seed, source })?;
        checked += 1;
    }
    Ok(checked)
}
